//! Parsing every fixture, dedupe keys, provider times, and refusals with their JSON path.

mod support;

use support::{fixture, fixtures};
use switchboard_webhooks::payload::calcom::CalcomEvent;
use switchboard_webhooks::payload::retell::RetellEvent;
use switchboard_webhooks::payload::stripe::StripeEvent;
use switchboard_webhooks::{Delivery, ParseError, Provider, parse, parse_retell_function};

const SEED_CALL: &str = "1a2b3c4d-5e6f-7g8h-9i0j-1k2l3m4n5o6p";
const REAL_CALL: &str = "8fe67ef8-3cd7-4e6b-9ad1-68546025eb8d";

fn parsed(provider: Provider, name: &str) -> (Delivery, Vec<u8>) {
    let body = fixture(provider, name);
    let delivery = parse(provider, &body).unwrap_or_else(|err| panic!("{name}: {err}"));
    (delivery, body)
}

#[test]
fn every_webhook_fixture_parses() {
    for provider in switchboard_webhooks::Provider::ALL {
        for (name, body) in fixtures(provider) {
            let result = if name.starts_with("function_request") {
                parse_retell_function(&body)
            } else {
                parse(provider, &body)
            };
            let delivery = result.unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(delivery.provider(), provider);
            assert!(
                delivery
                    .dedupe_key(&body)
                    .starts_with(&format!("{provider}:"))
            );
        }
    }
}

#[test]
fn retell_seed_call_ended_carries_the_appointment_request() {
    let (delivery, body) = parsed(Provider::Retell, "call_ended.json");
    let Delivery::Retell(RetellEvent::CallEnded(event)) = &delivery else {
        panic!("{delivery:?}")
    };
    assert_eq!(event.call.call_id, SEED_CALL);
    assert_eq!(event.call.duration_ms(), Some(300_000));
    assert_eq!(event.call.status(), Some("completed"));
    assert_eq!(event.call.end_reason(), Some("agent_ended"));
    let request = event.call.appointment_request().unwrap();
    assert_eq!(request.datum.as_deref(), Some("15.04.2025"));
    assert_eq!(request.uhrzeit.as_deref(), Some("14:30"));
    assert_eq!(request.dienstleistung.as_deref(), Some("Herrenhaarschnitt"));
    assert_eq!(request.mitarbeiter_wunsch.as_deref(), Some("Marie"));
    assert_eq!(
        request.kundenpraeferenzen.as_deref(),
        Some("Kurzer Schnitt, moderne Frisur")
    );
    assert_eq!(
        delivery.dedupe_key(&body),
        format!("retell:{SEED_CALL}:call_ended")
    );
    assert_eq!(delivery.occurred_at_unix_ms(), Some(1_703_244_423_456));
    assert_eq!(
        delivery.occurred_at_rfc3339().as_deref(),
        Some("2023-12-22T11:27:03.456Z")
    );
    assert_eq!(delivery.call_id(), Some(SEED_CALL));
}

#[test]
fn retell_real_shape_is_read_through_the_same_accessors() {
    let (delivery, body) = parsed(Provider::Retell, "call_analyzed_real.json");
    let Delivery::Retell(RetellEvent::CallAnalyzed(event)) = &delivery else {
        panic!("{delivery:?}")
    };
    assert_eq!(event.call.status(), Some("ended"));
    assert_eq!(event.call.end_reason(), Some("user_hangup"));
    assert_eq!(event.call.duration_ms(), Some(184_000));
    assert!(event.call.summary().unwrap().contains("Damenhaarschnitt"));
    let analysis = event.call.call_analysis.as_ref().unwrap();
    assert_eq!(analysis.user_sentiment.as_deref(), Some("Positive"));
    assert_eq!(
        event.call.appointment_request().unwrap().uhrzeit.as_deref(),
        Some("15:00")
    );
    // Real deliveries have no top-level timestamp: the call's end time stands in.
    assert_eq!(delivery.occurred_at_unix_ms(), event.call.end_timestamp);
    assert_eq!(
        delivery.dedupe_key(&body),
        format!("retell:{REAL_CALL}:call_analyzed")
    );

    let (started, _) = parsed(Provider::Retell, "call_started_real.json");
    assert_eq!(started.occurred_at_unix_ms(), Some(1_750_327_200_000));
}

#[test]
fn retell_function_call_and_function_request() {
    let (delivery, body) = parsed(Provider::Retell, "function_call.json");
    let Delivery::Retell(RetellEvent::FunctionCall(call)) = &delivery else {
        panic!("{delivery:?}")
    };
    assert_eq!(call.function_name, "check_availability");
    assert_eq!(call.arguments["staff"], "Marie");
    assert_eq!(
        delivery.dedupe_key(&body),
        "retell:function_call:req_xyz789"
    );

    let body = fixture(Provider::Retell, "function_request_check_availability.json");
    let delivery = parse_retell_function(&body).unwrap();
    let Delivery::RetellFunction(request) = &delivery else {
        panic!("{delivery:?}")
    };
    assert_eq!(request.name, "check_availability");
    assert_eq!(request.args["date"], "2025-06-20");
    assert_eq!(delivery.call_id(), Some(REAL_CALL));
    assert_eq!(delivery.event_type(), "function:check_availability");
    assert!(delivery.dedupe_key(&body).starts_with("retell:sha256:"));
}

#[test]
fn repeatable_and_unknown_events_are_recorded_with_a_body_hash_key() {
    let (delivery, body) = parsed(Provider::Retell, "transcript_updated.json");
    assert!(delivery.is_unknown());
    assert_eq!(delivery.event_type(), "transcript_updated");
    assert_eq!(delivery.call_id(), Some(REAL_CALL));
    let key = delivery.dedupe_key(&body);
    assert_eq!(key.len(), "retell:sha256:".len() + 64);
    let mut other = body.clone();
    other.insert(other.len() - 2, b' ');
    assert_ne!(
        parse(Provider::Retell, &other).unwrap().dedupe_key(&other),
        key
    );

    let (delivery, body) = parsed(Provider::Calcom, "meeting_ended.json");
    assert!(
        matches!(&delivery, Delivery::Calcom(CalcomEvent::Other { trigger_event, .. }) if trigger_event == "MEETING_ENDED")
    );
    assert_eq!(delivery.event_type(), "meeting_ended");
    assert!(delivery.dedupe_key(&body).starts_with("calcom:sha256:"));

    let (delivery, body) = parsed(Provider::Stripe, "charge_refunded.json");
    assert!(matches!(&delivery, Delivery::Stripe(StripeEvent::Other(_))));
    assert_eq!(delivery.dedupe_key(&body), "stripe:evt_6789012345fghijk");
    assert_eq!(delivery.event_type(), "charge.refunded");
}

#[test]
fn calcom_both_spellings_are_the_same_event() {
    let (seed, seed_body) = parsed(Provider::Calcom, "booking_created.json");
    let (upper, _) = parsed(Provider::Calcom, "booking_created_upper.json");
    assert_eq!(seed.event_type(), "booking.created");
    assert_eq!(upper.event_type(), "booking.created");
    let Delivery::Calcom(CalcomEvent::BookingCreated(event)) = &seed else {
        panic!("{seed:?}")
    };
    assert_eq!(event.payload.uid, "bkg_abc123def456ghi789");
    assert_eq!(event.payload.call_id(), Some(SEED_CALL));
    assert_eq!(seed.call_id(), Some(SEED_CALL));
    assert_eq!(
        event.payload.start_time.unwrap().to_rfc3339(),
        "2025-04-15T12:30:00+00:00"
    );
    assert_eq!(
        seed.dedupe_key(&seed_body),
        "calcom:booking.created:bkg_abc123def456ghi789:2025-04-14T10:30:00.000Z"
    );
    assert_eq!(
        seed.occurred_at_rfc3339().as_deref(),
        Some("2025-04-14T10:30:00.000Z")
    );
    assert_eq!(upper.call_id(), Some(REAL_CALL));

    let (cancelled, _) = parsed(Provider::Calcom, "booking_cancelled_upper.json");
    assert_eq!(cancelled.event_type(), "booking.cancelled");
    let (event_type, body) = parsed(Provider::Calcom, "event_type_created_upper.json");
    let Delivery::Calcom(CalcomEvent::EventTypeCreated(created)) = &event_type else {
        panic!()
    };
    assert_eq!(created.payload.duration_minutes(), Some(45));
    assert_eq!(
        event_type.dedupe_key(&body),
        "calcom:event_type.created:7892:2025-06-18T09:00:00.000Z"
    );
}

#[test]
fn calcom_reschedule_in_both_shapes() {
    let (seed, _) = parsed(Provider::Calcom, "booking_rescheduled.json");
    let Delivery::Calcom(CalcomEvent::BookingRescheduled(event)) = &seed else {
        panic!("{seed:?}")
    };
    assert_eq!(event.payload.previous_uid(), None);
    assert!(event.payload.previous_start_time.is_some());

    let (real, _) = parsed(Provider::Calcom, "booking_rescheduled_real.json");
    let Delivery::Calcom(CalcomEvent::BookingRescheduled(event)) = &real else {
        panic!("{real:?}")
    };
    assert_eq!(event.payload.uid, "bkg_real_7q3n9p");
    assert_eq!(event.payload.previous_uid(), Some("bkg_real_5x8k2m"));
}

#[test]
fn stripe_events_are_typed() {
    let (delivery, body) = parsed(Provider::Stripe, "invoice_payment_succeeded.json");
    let Delivery::Stripe(StripeEvent::InvoicePaymentSucceeded(event)) = &delivery else {
        panic!()
    };
    assert_eq!(event.data.object.amount_paid, Some(9900));
    assert_eq!(delivery.dedupe_key(&body), "stripe:evt_1234567890abcdef");
    assert_eq!(delivery.occurred_at_unix_ms(), Some(1_703_244_123_000));

    let (failed, _) = parsed(Provider::Stripe, "invoice_payment_failed.json");
    let Delivery::Stripe(StripeEvent::InvoicePaymentFailed(event)) = &failed else {
        panic!()
    };
    let error = event.data.object.last_payment_error.as_ref().unwrap();
    assert_eq!(error.decline_code.as_deref(), Some("insufficient_funds"));

    let (created, _) = parsed(Provider::Stripe, "customer_subscription_created.json");
    let Delivery::Stripe(StripeEvent::SubscriptionCreated(event)) = &created else {
        panic!()
    };
    assert_eq!(event.data.object.plan(), Some("prod_askproai_pro"));

    let (updated, _) = parsed(Provider::Stripe, "customer_subscription_updated.json");
    let Delivery::Stripe(StripeEvent::SubscriptionUpdated(event)) = &updated else {
        panic!()
    };
    assert_eq!(event.data.object.status, "past_due");
    assert_eq!(event.data.object.plan(), Some("pro"));
    assert_eq!(
        event.data.previous_attributes.as_ref().unwrap()["status"],
        "active"
    );

    let (deleted, _) = parsed(Provider::Stripe, "customer_subscription_deleted.json");
    let Delivery::Stripe(event @ StripeEvent::SubscriptionDeleted(_)) = &deleted else {
        panic!()
    };
    assert_eq!(event.customer(), Some("cus_1234567890abcdef"));
}

#[test]
fn missing_fields_are_refused_with_their_path() {
    let cases: &[(Provider, &str, &str)] = &[
        (
            Provider::Retell,
            r#"{"event":"call_ended","call":{"agent_id":"a"}}"#,
            "$.call.call_id",
        ),
        (Provider::Retell, r#"{"event":"call_started"}"#, "$.call"),
        (Provider::Retell, r#"{"call":{"call_id":"x"}}"#, "$.event"),
        (
            Provider::Retell,
            r#"{"event":"function_call","call_id":"c","function_name":"f"}"#,
            "$.request_id",
        ),
        (
            Provider::Calcom,
            r#"{"triggerEvent":"BOOKING_CREATED","createdAt":"2025-04-14T10:30:00Z","payload":{"startTime":"2025-04-15T12:30:00Z","endTime":"2025-04-15T13:00:00Z"}}"#,
            "$.payload.uid",
        ),
        (
            Provider::Calcom,
            r#"{"triggerEvent":"booking.created","createdAt":"2025-04-14T10:30:00Z","payload":{"uid":"u","endTime":"2025-04-15T13:00:00Z"}}"#,
            "$.payload.startTime",
        ),
        (
            Provider::Calcom,
            r#"{"triggerEvent":"booking.cancelled","payload":{"uid":"u"}}"#,
            "$.createdAt",
        ),
        (
            Provider::Stripe,
            r#"{"id":"evt_1","type":"invoice.payment_failed","created":1,"data":{"object":{"id":"in_1"}}}"#,
            "$.data.object.customer",
        ),
        (
            Provider::Stripe,
            r#"{"type":"charge.refunded","created":1,"data":{"object":{}}}"#,
            "$.id",
        ),
    ];
    for (provider, body, path) in cases {
        let err = parse(*provider, body.as_bytes()).unwrap_err();
        assert_eq!(
            err,
            ParseError::MissingField {
                path: (*path).to_owned()
            },
            "{body}"
        );
        assert_eq!(err.code(), "malformed_payload");
        assert_eq!(err.to_string(), format!("{path} is missing"));
    }
}

#[test]
fn invalid_values_are_refused_with_their_path() {
    let err = parse(
        Provider::Retell,
        br#"{"event":"call_ended","call":{"call_id":"c","start_timestamp":"soon"}}"#,
    )
    .unwrap_err();
    assert!(
        matches!(&err, ParseError::InvalidField { path, .. } if path == "$.call.start_timestamp"),
        "{err:?}"
    );
    let err = parse(
        Provider::Calcom,
        br#"{"triggerEvent":"BOOKING_CANCELLED","createdAt":"yesterday","payload":{"uid":"u"}}"#,
    )
    .unwrap_err();
    assert!(
        matches!(&err, ParseError::InvalidField { path, .. } if path == "$.createdAt"),
        "{err:?}"
    );
    let err = parse(Provider::Stripe, br#"{"id":"e","type":"customer.subscription.created","created":1,"data":{"object":{"id":"s","customer":"c","status":"active","items":{"data":[{"quantity":"x"}]}}}}"#).unwrap_err();
    assert_eq!(err.path(), Some("$.data.object.items.data[0].quantity"));
}

#[test]
fn bodies_that_are_not_json_are_malformed_payloads() {
    assert_eq!(
        parse(Provider::Stripe, b"\xff{}").unwrap_err(),
        ParseError::NotUtf8 { valid_up_to: 0 }
    );
    let err = parse(Provider::Calcom, b"{\"triggerEvent\": ").unwrap_err();
    assert!(matches!(err, ParseError::NotJson { .. }), "{err:?}");
    assert_eq!(err.code(), "malformed_payload");
    assert!(matches!(
        parse(Provider::Retell, b"[1,2]").unwrap_err(),
        ParseError::InvalidField { .. }
    ));
}
