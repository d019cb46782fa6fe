//! JSON Schemas of the provider payloads, generated from the payload types.
//!
//! schemars derives a schema per Rust type; this module composes them into one schema per
//! payload kind: a `oneOf` over the known events, each pinning its event name, plus one
//! alternative for any other event name (recorded as unknown, never refused). The checked-in
//! files in `schemas/providers/` are kept equal to this output by a test.

use schemars::Schema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::payload::calcom::{CalcomBooking, CalcomEnvelope, CalcomEventType, CalcomTrigger};
use crate::payload::retell::{
    RetellCallEvent, RetellEvent, RetellFunctionCall, RetellFunctionRequest,
};
use crate::payload::stripe::{StripeEnvelope, StripeEvent, StripeInvoice, StripeSubscription};

/// A payload with a schema of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// `POST /api/retell/webhook` bodies.
    RetellWebhook,
    /// `POST /api/retell/functions/{name}` bodies.
    RetellFunction,
    CalcomWebhook,
    StripeWebhook,
}

impl PayloadKind {
    pub const ALL: [PayloadKind; 4] = [
        PayloadKind::RetellWebhook,
        PayloadKind::RetellFunction,
        PayloadKind::CalcomWebhook,
        PayloadKind::StripeWebhook,
    ];

    /// The file name under `schemas/providers/`.
    pub fn file_name(self) -> &'static str {
        match self {
            PayloadKind::RetellWebhook => "retell.json",
            PayloadKind::RetellFunction => "retell_function.json",
            PayloadKind::CalcomWebhook => "calcom.json",
            PayloadKind::StripeWebhook => "stripe.json",
        }
    }

    /// The schema, as JSON.
    pub fn schema(self) -> Value {
        match self {
            PayloadKind::RetellWebhook => retell_webhook(),
            PayloadKind::RetellFunction => {
                let mut generator = generator();
                let root = generator.root_schema_for::<RetellFunctionRequest>();
                let mut value = root.to_value();
                if let Value::Object(map) = &mut value {
                    map.insert("title".into(), json!("Retell custom-function request"));
                }
                value
            }
            PayloadKind::CalcomWebhook => calcom_webhook(),
            PayloadKind::StripeWebhook => stripe_webhook(),
        }
    }
}

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
}

/// One known event: the names that select it and the type its whole body has.
struct Variant {
    names: Vec<String>,
    body: Schema,
}

fn union(
    title: &str,
    description: &str,
    tag: &str,
    variants: Vec<Variant>,
    other_body: Option<Schema>,
    mut generator: SchemaGenerator,
) -> Value {
    let known: Vec<String> = variants.iter().flat_map(|v| v.names.clone()).collect();
    let mut alternatives: Vec<Value> = variants
        .into_iter()
        .map(|variant| {
            json!({
                "title": variant.names[0],
                "allOf": [variant.body],
                "properties": { tag: { "enum": variant.names } },
                "required": [tag],
            })
        })
        .collect();
    let mut other = json!({
        "title": "unknown event (recorded as such)",
        "type": "object",
        "properties": { tag: { "type": "string", "not": { "enum": known } } },
        "required": [tag],
    });
    if let Some(body) = other_body {
        other["allOf"] = json!([body]);
    }
    alternatives.push(other);
    let definitions: Map<String, Value> = generator.take_definitions(true);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "description": description,
        "type": "object",
        "oneOf": alternatives,
        "$defs": definitions,
    })
}

fn retell_webhook() -> Value {
    let mut generator = generator();
    let call_event = generator.subschema_for::<RetellCallEvent>();
    let function_call = generator.subschema_for::<RetellFunctionCall>();
    let variants = [
        RetellEvent::CALL_STARTED,
        RetellEvent::CALL_ENDED,
        RetellEvent::CALL_ANALYZED,
    ]
    .into_iter()
    .map(|name| Variant {
        names: vec![name.into()],
        body: call_event.clone(),
    })
    .chain([Variant {
        names: vec![RetellEvent::FUNCTION_CALL.into()],
        body: function_call,
    }])
    .collect();
    union(
        "Retell webhook delivery",
        "POST /api/retell/webhook: the seed's shape and Retell's real one (call_status, \
         disconnection_reason, call_analysis, timestamps in ms).",
        "event",
        variants,
        None,
        generator,
    )
}

fn calcom_webhook() -> Value {
    let mut generator = generator();
    let booking = generator.subschema_for::<CalcomEnvelope<CalcomBooking>>();
    let event_type = generator.subschema_for::<CalcomEnvelope<CalcomEventType>>();
    let variants =
        CalcomTrigger::ALL
            .into_iter()
            .map(|trigger| {
                let mut names = vec![trigger.as_str().to_owned(), trigger.upper_name().to_owned()];
                let mut body = booking.clone();
                match trigger {
                    CalcomTrigger::EventTypeCreated => body = event_type.clone(),
                    CalcomTrigger::BookingCancelled => {
                        names.extend(["booking.canceled".to_owned(), "BOOKING_CANCELED".to_owned()])
                    }
                    CalcomTrigger::BookingCreated | CalcomTrigger::BookingRescheduled => {
                        // The parser requires the times of a booking that is (re)scheduled.
                        body = Schema::from(json!({
                        "allOf": [booking.clone()],
                        "properties": { "payload": { "required": ["startTime", "endTime"] } },
                    }) .as_object().cloned().unwrap_or_default());
                    }
                }
                Variant { names, body }
            })
            .collect();
    union(
        "Cal.com webhook delivery",
        "POST /api/calcom/webhook: triggers in both spellings (booking.created, BOOKING_CREATED); \
         a real reschedule carries a new uid and payload.rescheduleUid.",
        "triggerEvent",
        variants,
        None,
        generator,
    )
}

fn stripe_webhook() -> Value {
    let mut generator = generator();
    let invoice = generator.subschema_for::<StripeEnvelope<StripeInvoice>>();
    let subscription = generator.subschema_for::<StripeEnvelope<StripeSubscription>>();
    let other = generator.subschema_for::<StripeEnvelope<Value>>();
    let variants = [
        (StripeEvent::INVOICE_PAYMENT_SUCCEEDED, &invoice),
        (StripeEvent::INVOICE_PAYMENT_FAILED, &invoice),
        (StripeEvent::SUBSCRIPTION_CREATED, &subscription),
        (StripeEvent::SUBSCRIPTION_UPDATED, &subscription),
        (StripeEvent::SUBSCRIPTION_DELETED, &subscription),
    ]
    .into_iter()
    .map(|(name, body)| Variant {
        names: vec![name.into()],
        body: body.clone(),
    })
    .collect();
    union(
        "Stripe webhook delivery",
        "POST /api/stripe/webhook: the event envelope, with data.object typed for invoices and \
         subscriptions.",
        "type",
        variants,
        Some(other),
        generator,
    )
}

/// Serializes a schema the way the checked-in files are written: pretty, with a final newline.
pub fn to_file_text(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a JSON value always serializes");
    text.push('\n');
    text
}
