//! Properties over arbitrary input: signing round-trips, any one-byte change fails, and
//! nothing panics on hostile headers or bodies.

use proptest::prelude::*;
use switchboard_webhooks::{
    Provider, Scheme, Secret, detect_provider, diagnose, parse, parse_retell_function, sign, verify,
};

const NOW: i64 = 1_763_900_000_000;

fn scheme() -> impl Strategy<Value = Scheme> {
    prop_oneof![
        Just(Scheme::RetellDocumented),
        Just(Scheme::RetellSdk),
        Just(Scheme::CalcomDocumented),
        Just(Scheme::CalcomApp),
        Just(Scheme::Stripe),
    ]
}

fn provider() -> impl Strategy<Value = Provider> {
    prop_oneof![
        Just(Provider::Retell),
        Just(Provider::Calcom),
        Just(Provider::Stripe)
    ]
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("X-Retell-Signature".to_owned()),
        Just("x-cal-signature".to_owned()),
        Just("X-Cal-Signature-256".to_owned()),
        Just("STRIPE-SIGNATURE".to_owned()),
        "[A-Za-z-]{1,20}",
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80),
        "(sha256=|v=|t=|v1=|d=|,|[0-9a-fA-F]{1,70}| |=)*".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sign_then_verify_round_trips(scheme in scheme(), body in proptest::collection::vec(any::<u8>(), 0..2048), secret in "[ -~]{1,40}", skew_ms in -299_000i64..299_000) {
        let secret = Secret::new(secret);
        let headers = sign(scheme, &secret, &body, NOW);
        let verified = verify(scheme.provider(), &headers, &body, &[secret], NOW + skew_ms).unwrap();
        prop_assert_eq!(verified.scheme, scheme);
    }

    #[test]
    fn any_single_byte_change_fails(scheme in scheme(), body in proptest::collection::vec(any::<u8>(), 1..1024), index in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let secret = Secret::new("whsec_property");
        let headers = sign(scheme, &secret, &body, NOW);
        let mut tampered = body.clone();
        let i = index.index(tampered.len());
        tampered[i] ^= flip;
        let err = verify(scheme.provider(), &headers, &tampered, &[secret], NOW).unwrap_err();
        prop_assert_eq!(err.code(), "invalid_signature");
    }

    #[test]
    fn nothing_panics_on_arbitrary_input(
        provider in provider(),
        headers in proptest::collection::vec((header_name(), header_value()), 0..4),
        body in proptest::collection::vec(any::<u8>(), 0..512),
        now in any::<i64>(),
        secrets in proptest::collection::vec("[ -~\n]{0,20}", 0..3),
    ) {
        let secrets: Vec<Secret> = secrets.into_iter().map(Secret::new).collect();
        let _ = detect_provider(&headers);
        let _ = verify(provider, &headers, &body, &secrets, now).map_err(|e| e.to_string());
        let _ = diagnose(provider, &headers, &body, &secrets).to_string();
        let _ = parse(provider, &body).map(|d| (d.dedupe_key(&body), d.occurred_at_rfc3339()));
        let _ = parse_retell_function(&body);
    }

    #[test]
    fn nothing_panics_on_json_shaped_bodies(
        provider in provider(),
        event in prop_oneof![Just("call_ended".to_owned()), Just("function_call".to_owned()), Just("BOOKING_CREATED".to_owned()), Just("booking.rescheduled".to_owned()), Just("invoice.payment_failed".to_owned()), Just("customer.subscription.updated".to_owned()), "[a-z._]{0,12}"],
        field in "[a-zA-Z_]{0,10}",
        value in prop_oneof![Just("null".to_owned()), Just("\"x\"".to_owned()), Just("{}".to_owned()), Just("[]".to_owned()), any::<i64>().prop_map(|n| n.to_string()), Just("1e400".to_owned())],
    ) {
        let body = format!(
            r#"{{"event":"{event}","triggerEvent":"{event}","type":"{event}","id":"e","created":{value},"createdAt":{value},"call":{{"call_id":{value},"{field}":{value}}},"payload":{{"uid":{value},"{field}":{value}}},"data":{{"object":{{"{field}":{value}}}}},"timestamp":{value}}}"#
        );
        if let Ok(delivery) = parse(provider, body.as_bytes()) {
            let _ = (delivery.dedupe_key(body.as_bytes()), delivery.occurred_at_rfc3339(), delivery.event_type());
        }
    }
}
