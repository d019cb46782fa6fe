//! Each diagnosis case: the mistake is made on purpose, and the diagnosis must name it
//! without revealing a secret or the expected digest.

use switchboard_webhooks::diagnosis::{Layout, Reencoding, SecretShape};
use switchboard_webhooks::{
    Diagnosis, Finding, Provider, Scheme, Secret, VerifyError, diagnose, sign, verify,
};

const NOW: i64 = 1_763_900_000_000;
const PRETTY: &[u8] = b"{\n  \"event\": \"call_ended\",\n  \"call\": {\n    \"call_id\": \"c1\",\n    \"tags\": []\n  }\n}";

fn mismatch(
    provider: Provider,
    headers: &[(String, String)],
    body: &[u8],
    secrets: &[Secret],
) -> Diagnosis {
    match verify(provider, headers, body, secrets, NOW) {
        Err(VerifyError::SignatureMismatch { diagnosis, .. }) => {
            let text = diagnosis.to_string();
            for secret in secrets {
                assert!(
                    !text.contains(secret.expose().trim()),
                    "diagnosis leaks a secret: {text}"
                );
            }
            diagnosis
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn body_reserialized_compact_or_pretty() {
    let secret = Secret::new("retell_secret");
    let compact = Reencoding::Compact.apply(PRETTY);
    // Signed compact, received pretty: a proxy or framework re-serialized the body.
    let headers = sign(Scheme::RetellDocumented, &secret, &compact, NOW);
    let diagnosis = mismatch(
        Provider::Retell,
        &headers,
        PRETTY,
        std::slice::from_ref(&secret),
    );
    assert!(
        diagnosis.contains(&Finding::BodyReencoded {
            secret_index: 0,
            encoding: Reencoding::Compact
        }),
        "{diagnosis:?}"
    );
    assert!(diagnosis.to_string().contains("re-serialized"));

    // Signed pretty (2 spaces), received compact.
    let headers = sign(Scheme::Stripe, &Secret::new("whsec_s"), PRETTY, NOW);
    let diagnosis = mismatch(
        Provider::Stripe,
        &headers,
        &compact,
        &[Secret::new("whsec_s")],
    );
    assert!(
        diagnosis.contains(&Finding::BodyReencoded {
            secret_index: 0,
            encoding: Reencoding::Pretty2
        }),
        "{diagnosis:?}"
    );
}

#[test]
fn trailing_newline_added_or_removed() {
    let secret = Secret::new("calcom_secret");
    let body = br#"{"triggerEvent":"PING"}"#;
    let mut with_newline = body.to_vec();
    with_newline.push(b'\n');
    let headers = sign(Scheme::CalcomApp, &secret, &with_newline, NOW);
    let diagnosis = mismatch(
        Provider::Calcom,
        &headers,
        body,
        std::slice::from_ref(&secret),
    );
    assert!(
        diagnosis.contains(&Finding::TrailingNewline {
            secret_index: 0,
            added: true
        }),
        "{diagnosis:?}"
    );

    let headers = sign(Scheme::CalcomDocumented, &secret, body, NOW);
    let diagnosis = mismatch(Provider::Calcom, &headers, &with_newline, &[secret]);
    assert!(
        diagnosis.contains(&Finding::TrailingNewline {
            secret_index: 0,
            added: false
        }),
        "{diagnosis:?}"
    );
}

#[test]
fn header_of_another_scheme() {
    let secret = Secret::new("key_0123456789abcdef0123456789");
    let body = br#"{"event":"call_started","call":{"call_id":"c"}}"#;
    // Stripe's header format sent to Retell: refused as malformed, and the message says why.
    let stripe_headers = vec![(
        "X-Retell-Signature".to_owned(),
        format!("t=1,v1={}", "0".repeat(64)),
    )];
    let err = verify(
        Provider::Retell,
        &stripe_headers,
        body,
        std::slice::from_ref(&secret),
        NOW,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("Stripe's `t=…,v1=…` form"),
        "{err}"
    );

    // SDK header whose digest was computed like the documented scheme (no timestamp).
    let documented = sign(Scheme::RetellDocumented, &secret, body, NOW);
    let digest = documented[0].1.trim_start_matches("sha256=");
    let headers = vec![(
        "X-Retell-Signature".to_owned(),
        format!("v={NOW},d={digest}"),
    )];
    let diagnosis = mismatch(
        Provider::Retell,
        &headers,
        body,
        std::slice::from_ref(&secret),
    );
    assert!(
        diagnosis.contains(&Finding::SignedLikeOtherScheme {
            secret_index: 0,
            layout: Layout::BodyWithoutTimestamp
        }),
        "{diagnosis:?}"
    );

    // SDK header whose digest uses Stripe's "{t}.{body}" layout.
    let stripe_style = sign(Scheme::Stripe, &secret, body, NOW * 1000);
    let digest = stripe_style[0].1.split("v1=").nth(1).unwrap();
    let headers = vec![(
        "X-Retell-Signature".to_owned(),
        format!("v={NOW},d={digest}"),
    )];
    let diagnosis = mismatch(Provider::Retell, &headers, body, &[secret]);
    assert!(
        diagnosis.contains(&Finding::SignedLikeOtherScheme {
            secret_index: 0,
            layout: Layout::StripeLayout
        }),
        "{diagnosis:?}"
    );

    // A request carrying another provider's header, diagnosed for the endpoint it reached.
    let diagnosis = diagnose(Provider::Calcom, &stripe_style, body, &[Secret::new("c")]);
    assert!(
        diagnosis.contains(&Finding::OtherProvidersHeader {
            provider: Provider::Stripe
        }),
        "{diagnosis:?}"
    );
}

#[test]
fn stripe_signed_without_the_timestamp_prefix_or_without_whsec() {
    let body = br#"{"id":"evt_1"}"#;
    let secret = Secret::new("whsec_abc");
    let plain = sign(Scheme::CalcomApp, &secret, body, NOW);
    let headers = vec![(
        "Stripe-Signature".to_owned(),
        format!("t={},v1={}", NOW / 1000, plain[0].1),
    )];
    let diagnosis = mismatch(
        Provider::Stripe,
        &headers,
        body,
        std::slice::from_ref(&secret),
    );
    assert!(diagnosis.contains(&Finding::SignedLikeOtherScheme {
        secret_index: 0,
        layout: Layout::BodyWithoutTimestamp
    }));

    let headers = sign(Scheme::Stripe, &Secret::new("abc"), body, NOW);
    let diagnosis = mismatch(Provider::Stripe, &headers, body, &[secret]);
    assert!(diagnosis.contains(&Finding::SignedLikeOtherScheme {
        secret_index: 0,
        layout: Layout::StripeSecretWithoutPrefix
    }));
}

#[test]
fn secret_with_whitespace() {
    let body = br#"{"event":"call_started","call":{"call_id":"c"}}"#;
    let headers = sign(
        Scheme::RetellDocumented,
        &Secret::new("retell_secret"),
        body,
        NOW,
    );
    let diagnosis = mismatch(
        Provider::Retell,
        &headers,
        body,
        &[Secret::new("retell_secret\n")],
    );
    assert!(
        diagnosis.contains(&Finding::SecretHasWhitespace {
            secret_index: 0,
            verifies_when_trimmed: true
        }),
        "{diagnosis:?}"
    );
    assert!(diagnosis.to_string().contains("matches once it is trimmed"));
}

#[test]
fn secret_shapes_that_suggest_the_wrong_credential() {
    let body = br#"{"x":1}"#;
    let cases: Vec<(Provider, Scheme, &str, SecretShape)> = vec![
        (
            Provider::Stripe,
            Scheme::Stripe,
            "abc123",
            SecretShape::StripeMissingWhsecPrefix,
        ),
        (
            Provider::Stripe,
            Scheme::Stripe,
            "sk_live_123",
            SecretShape::StripeApiKey,
        ),
        (
            Provider::Retell,
            Scheme::RetellDocumented,
            "whsec_abc",
            SecretShape::StripeSecretForOtherProvider,
        ),
        (
            Provider::Calcom,
            Scheme::CalcomApp,
            "whsec_abc",
            SecretShape::StripeSecretForOtherProvider,
        ),
        (
            Provider::Retell,
            Scheme::RetellDocumented,
            "key_0123456789abcdef",
            SecretShape::RetellApiKeyForDocumentedScheme,
        ),
        (
            Provider::Retell,
            Scheme::RetellSdk,
            "my_webhook_secret",
            SecretShape::NotARetellApiKeyForSdkScheme,
        ),
        (
            Provider::Calcom,
            Scheme::CalcomDocumented,
            "cal_live_abc",
            SecretShape::CalcomApiKey,
        ),
    ];
    for (provider, scheme, configured, shape) in cases {
        let headers = sign(scheme, &Secret::new("the_real_secret"), body, NOW);
        // Secret #0 has the right shape for the scheme, so only #1 may be flagged.
        let fine = match scheme {
            Scheme::Stripe => "whsec_fine",
            Scheme::RetellSdk => "key_fine",
            _ => "fine_looking",
        };
        let diagnosis = mismatch(
            provider,
            &headers,
            body,
            &[Secret::new(fine), Secret::new(configured)],
        );
        assert!(
            diagnosis.contains(&Finding::SecretShape {
                secret_index: 1,
                shape
            }),
            "{configured}: {diagnosis:?}"
        );
        assert!(
            !diagnosis.findings.iter().any(|f| matches!(
                f,
                Finding::SecretShape {
                    secret_index: 0,
                    ..
                }
            )),
            "{diagnosis:?}"
        );
    }
}

#[test]
fn an_unexplained_mismatch_says_so_without_leaking_the_digest() {
    let body = br#"{"x":1}"#;
    let headers = sign(
        Scheme::RetellDocumented,
        &Secret::new("sender_secret"),
        body,
        NOW,
    );
    let configured = Secret::new("another_secret");
    let diagnosis = mismatch(
        Provider::Retell,
        &headers,
        body,
        std::slice::from_ref(&configured),
    );
    assert!(diagnosis.is_empty(), "{diagnosis:?}");
    let err = verify(
        Provider::Retell,
        &headers,
        body,
        std::slice::from_ref(&configured),
        NOW,
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("no known cause found"), "{message}");
    let expected = sign(Scheme::RetellDocumented, &configured, body, NOW);
    let expected_digest = expected[0].1.trim_start_matches("sha256=");
    assert!(!message.contains(expected_digest));
    assert!(!format!("{err:?}").contains(expected_digest));
}
