//! Dedupe keys and provider times: what makes two deliveries "the same", and when the
//! provider says a delivery's fact happened.
//!
//! Keys start with the provider, so ids from different providers never collide. Where the
//! provider gives an identity (Stripe's event id, Retell's call id + event, Cal.com's
//! trigger + uid + createdAt) the key is built from it, so a retry with a re-serialized body is
//! still a duplicate. Where it gives none, or the event may legitimately repeat
//! (`transcript_updated`), the key is the SHA-256 of the body: only a byte-identical retry is a
//! duplicate.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use crate::payload::Delivery;
use crate::payload::calcom::CalcomEvent;
use crate::payload::retell::RetellEvent;

impl Delivery {
    /// The key under which the store refuses a second copy of this delivery. `body` is the raw
    /// body the delivery was parsed from.
    pub fn dedupe_key(&self, body: &[u8]) -> String {
        let provider = self.provider().as_str();
        match self {
            Delivery::Retell(
                event @ (RetellEvent::CallStarted(_)
                | RetellEvent::CallEnded(_)
                | RetellEvent::CallAnalyzed(_)),
            ) => format!(
                "{provider}:{}:{}",
                event.call_id().unwrap_or_default(),
                event.event_name()
            ),
            Delivery::Retell(RetellEvent::FunctionCall(call)) => {
                format!("{provider}:function_call:{}", call.request_id)
            }
            Delivery::Calcom(
                CalcomEvent::BookingCreated(e)
                | CalcomEvent::BookingCancelled(e)
                | CalcomEvent::BookingRescheduled(e),
            ) => format!(
                "{provider}:{}:{}:{}",
                self.event_type(),
                e.payload.uid,
                rfc3339(e.created_at)
            ),
            Delivery::Calcom(CalcomEvent::EventTypeCreated(e)) => format!(
                "{provider}:{}:{}:{}",
                self.event_type(),
                e.payload.id,
                rfc3339(e.created_at)
            ),
            Delivery::Stripe(event) => format!("{provider}:{}", event.id()),
            // A custom-function request has no id of its own and may be asked twice on
            // purpose; unknown events have no known identity.
            Delivery::RetellFunction(_)
            | Delivery::Retell(RetellEvent::Other { .. })
            | Delivery::Calcom(CalcomEvent::Other { .. }) => {
                format!("{provider}:sha256:{}", hex::encode(Sha256::digest(body)))
            }
        }
    }

    /// When the provider says the fact happened, in unix ms: Retell's `timestamp` (or the
    /// call's start/end time), Cal.com's `createdAt`, Stripe's `created`. `None` when the
    /// delivery carries no time (a custom-function request, an unknown event without one).
    pub fn occurred_at_unix_ms(&self) -> Option<i64> {
        match self {
            Delivery::Retell(event) => event.occurred_at_unix_ms(),
            Delivery::RetellFunction(_) => None,
            Delivery::Calcom(event) => match event {
                CalcomEvent::BookingCreated(e)
                | CalcomEvent::BookingCancelled(e)
                | CalcomEvent::BookingRescheduled(e) => Some(e.created_at.timestamp_millis()),
                CalcomEvent::EventTypeCreated(e) => Some(e.created_at.timestamp_millis()),
                CalcomEvent::Other { created_at, .. } => created_at.map(|t| t.timestamp_millis()),
            },
            Delivery::Stripe(event) => Some(event.created().saturating_mul(1000)),
        }
    }

    /// [`Delivery::occurred_at_unix_ms`] as RFC 3339 UTC with milliseconds.
    pub fn occurred_at_rfc3339(&self) -> Option<String> {
        let ms = self.occurred_at_unix_ms()?;
        DateTime::<Utc>::from_timestamp_millis(ms).map(rfc3339)
    }
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}
