//! The checked-in schemas equal what the types generate (`UPDATE_SCHEMAS=1` rewrites them),
//! and every fixture validates against its schema.

mod support;

use serde_json::Value;
use support::{fixtures, repo_root};
use switchboard_webhooks::Provider;
use switchboard_webhooks::schema::{PayloadKind, to_file_text};

fn schema_path(kind: PayloadKind) -> std::path::PathBuf {
    repo_root().join("schemas/providers").join(kind.file_name())
}

#[test]
fn checked_in_schemas_are_current() {
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for kind in PayloadKind::ALL {
        let path = schema_path(kind);
        let generated = to_file_text(&kind.schema());
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "schemas out of date (regenerate with UPDATE_SCHEMAS=1 cargo test -p switchboard-webhooks --test schemas): {stale:?}"
    );
}

fn validator(kind: PayloadKind) -> jsonschema::Validator {
    jsonschema::validator_for(&kind.schema()).unwrap_or_else(|err| panic!("{kind:?}: {err}"))
}

#[test]
fn every_fixture_validates_against_its_schema() {
    let mut checked = 0;
    for provider in Provider::ALL {
        for (name, body) in fixtures(provider) {
            let kind = match provider {
                Provider::Retell if name.starts_with("function_request") => {
                    PayloadKind::RetellFunction
                }
                Provider::Retell => PayloadKind::RetellWebhook,
                Provider::Calcom => PayloadKind::CalcomWebhook,
                Provider::Stripe => PayloadKind::StripeWebhook,
            };
            let instance: Value = serde_json::from_slice(&body).unwrap();
            let errors: Vec<String> = validator(kind)
                .iter_errors(&instance)
                .map(|e| format!("{} at {}", e, e.instance_path))
                .collect();
            assert!(errors.is_empty(), "{provider}/{name}: {errors:#?}");
            checked += 1;
        }
    }
    assert!(checked >= 24, "only {checked} fixtures found");
}

#[test]
fn schemas_refuse_what_the_parser_refuses() {
    let retell = validator(PayloadKind::RetellWebhook);
    assert!(
        !retell.is_valid(&serde_json::json!({"event": "call_ended", "call": {"agent_id": "a"}}))
    );
    assert!(retell.is_valid(&serde_json::json!({"event": "transcript_updated"})));
    let calcom = validator(PayloadKind::CalcomWebhook);
    assert!(!calcom.is_valid(&serde_json::json!({
        "triggerEvent": "BOOKING_CREATED", "createdAt": "2025-04-14T10:30:00Z", "payload": {"uid": "u"}
    })));
    let stripe = validator(PayloadKind::StripeWebhook);
    assert!(!stripe.is_valid(&serde_json::json!({
        "id": "evt_1", "type": "invoice.payment_failed", "created": 1, "data": {"object": {"id": "in_1"}}
    })));
    assert!(stripe.is_valid(&serde_json::json!({
        "id": "evt_1", "type": "charge.refunded", "created": 1, "data": {"object": {"id": "ch_1"}}
    })));
}
