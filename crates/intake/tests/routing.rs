//! Routing choices the scenarios show only in passing: every provider fixture routes, and
//! what a delivery cannot say is an error with its JSON path.

use std::fs;
use std::path::Path;

use chrono::{TimeZone, Utc};
use switchboard_domain::command::{BillingCommand, CallCommand};
use switchboard_domain::event::AvailabilityAnswer;
use switchboard_domain::{AggregateKind, Command, StreamId};
use switchboard_intake::{Context, IntakeError, NoBranches, Route, route};
use switchboard_webhooks::{Delivery, Provider, parse, parse_retell_function};

fn fixture(relative: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/providers")
        .join(relative);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn with_patch(relative: &str, patch: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut body: serde_json::Value = serde_json::from_slice(&fixture(relative)).unwrap();
    patch(&mut body);
    serde_json::to_vec(&body).unwrap()
}

fn answer() -> AvailabilityAnswer {
    AvailabilityAnswer {
        available: true,
        slots: vec![],
        message: "frei".into(),
    }
}

fn route_body(provider: Provider, body: &[u8]) -> Result<Route, IntakeError> {
    let delivery = parse(provider, body).expect("the fixture parses");
    let context = Context::new(Utc.timestamp_opt(0, 0).unwrap(), &NoBranches)
        .with_availability_answer(answer());
    route(&delivery, &context)
}

fn decided(route: Route) -> (StreamId, Command) {
    match route {
        Route::Decide { stream, command } => (stream, command),
        other => panic!("expected a decision, got {other:?}"),
    }
}

#[test]
fn every_provider_fixture_routes_to_a_stream_of_its_command_or_is_unhandled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/providers");
    let mut decided_count = 0;
    for provider in Provider::ALL {
        for entry in fs::read_dir(root.join(provider.as_str())).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let body = fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let delivery: Delivery = if name.starts_with("function_request_") {
                parse_retell_function(&body).unwrap()
            } else {
                parse(provider, &body).unwrap_or_else(|e| panic!("{name}: {e}"))
            };
            let context = Context::new(Utc.timestamp_opt(0, 0).unwrap(), &NoBranches)
                .with_availability_answer(answer());
            match route(&delivery, &context).unwrap_or_else(|e| panic!("{name}: {e}")) {
                Route::Decide { stream, command } => {
                    assert!(
                        command.applies_to(stream.kind()),
                        "{name}: {stream} ← {}",
                        command.name()
                    );
                    if let Some(named) = command.named_stream() {
                        assert_eq!(named, stream, "{name}");
                    }
                    decided_count += 1;
                }
                Route::Unhandled { event_type, .. } => {
                    assert!(
                        delivery.is_unknown(),
                        "{name}: a known event ({event_type}) went unhandled"
                    )
                }
            }
        }
    }
    assert!(
        decided_count >= 15,
        "most fixtures mean something: {decided_count}"
    );
}

#[test]
fn stripe_routes_by_company_id_and_otherwise_keeps_the_customers_facts() {
    let (stream, _) = decided(
        route_body(
            Provider::Stripe,
            &fixture("stripe/invoice_payment_succeeded.json"),
        )
        .unwrap(),
    );
    assert_eq!(stream, StreamId::tenant("uuid-1234-5678-90ab-cdef"));

    let unattributed = with_patch("stripe/invoice_payment_succeeded.json", |body| {
        body["data"]["object"]["metadata"] = serde_json::json!({"company_id": ""});
    });
    let (stream, command) = decided(route_body(Provider::Stripe, &unattributed).unwrap());
    assert_eq!(stream, StreamId::billing("cus_1234567890abcdef"));
    let Command::Billing(BillingCommand::RecordPaymentSucceeded(payment)) = command else {
        panic!("unexpected {command:?}");
    };
    assert_eq!(
        payment.invoice.tenant_id, None,
        "an empty company_id names no tenant"
    );
    assert_eq!(
        (payment.invoice.amount, payment.invoice.currency.as_str()),
        (9900, "eur")
    );
}

#[test]
fn a_payment_without_its_amount_is_malformed_with_the_path() {
    let body = with_patch("stripe/invoice_payment_failed.json", |body| {
        body["data"]["object"]
            .as_object_mut()
            .unwrap()
            .remove("amount_due");
    });
    let error = route_body(Provider::Stripe, &body).unwrap_err();
    assert_eq!(error.code(), "malformed_payload");
    assert_eq!(error.path(), Some("$.data.object.amount_due"));
}

#[test]
fn an_empty_call_id_is_malformed_rather_than_a_stream_named_call_dash() {
    let body = with_patch("retell/call_started.json", |body| {
        body["call"]["call_id"] = "  ".into()
    });
    let error = route_body(Provider::Retell, &body).unwrap_err();
    assert_eq!(error.path(), Some("$.call.call_id"));
}

#[test]
fn retell_durations_become_whole_seconds_and_the_time_is_the_providers() {
    let (stream, command) =
        decided(route_body(Provider::Retell, &fixture("retell/call_ended_real.json")).unwrap());
    assert_eq!(stream.kind(), AggregateKind::Call);
    let Command::Call(CallCommand::EndCall(ended)) = command else {
        panic!("unexpected {command:?}");
    };
    assert_eq!(ended.outcome.duration_s, Some(184));
    // Real deliveries have no top-level timestamp: the call's end time is when it happened.
    assert_eq!(
        ended.occurred_at,
        Utc.timestamp_millis_opt(1_750_327_384_000).unwrap()
    );
    assert_eq!(
        ended.time_zone,
        chrono_tz::Europe::Berlin,
        "no branch known: the default zone"
    );
}

#[test]
fn a_booking_metadata_call_id_that_is_empty_links_nothing() {
    let body = with_patch("calcom/booking_created.json", |body| {
        body["payload"]["metadata"]["call_id"] = "".into();
    });
    let (_, command) = decided(route_body(Provider::Calcom, &body).unwrap());
    let Command::Booking(switchboard_domain::BookingCommand::CreateBooking(create)) = command
    else {
        panic!("unexpected {command:?}");
    };
    assert_eq!(create.call_id, None);
    assert_eq!(
        create.details.attendees[0].phone.as_deref(),
        Some("+4915123456789")
    );
    assert_eq!(
        create.details.location.as_deref(),
        Some("Hauptstraße 123, 10115 Berlin")
    );
}
