//! From a verified, parsed provider delivery to the `(stream, command)` it means for the
//! domain. Pure: no IO, no clock; what the delivery itself cannot say (which branch a number
//! rings at, the server's availability answer, the time of receipt) comes in a [`Context`].
//!
//! `domain` and `webhooks` depend on nothing of ours; this crate is the one place that knows
//! both, so neither has to know the other.
//!
//! Routing (stream names are [`StreamId`]s):
//!
//! | delivery | stream | command |
//! | --- | --- | --- |
//! | Retell `call_started` / `call_ended` / `call_analyzed` | `call-{call_id}` | StartCall / EndCall / AnalyzeCall |
//! | Retell `function_call` `check_availability`, and `POST /api/retell/functions/check_availability` | `call-{call_id}` | RecordAvailabilityCheck |
//! | Cal.com `booking.created` | `booking-{uid}` | CreateBooking |
//! | Cal.com `booking.rescheduled`, same uid | `booking-{uid}` | RescheduleBooking |
//! | Cal.com `booking.rescheduled` / `created` with `rescheduleUid` ≠ uid | `booking-{new uid}` | CreateBooking with `rescheduled_from` (the policy marks the old one) |
//! | Cal.com `booking.cancelled` | `booking-{uid}` | CancelBooking |
//! | Cal.com `event_type.created` | `event-type-{id}` | CreateEventType |
//! | Stripe subscription / invoice events with `metadata.company_id` | `tenant-{company_id}` | billing commands |
//! | the same without `company_id` | `billing-{customer}` | billing commands (unattributed, kept) |
//! | `PUT /api/tenants/{id}` ([`tenant::register_tenant`]) | `tenant-{id}` | RegisterTenant |
//! | anything else (`transcript_updated`, `MEETING_ENDED`, `charge.refunded`, other functions) | — | [`Route::Unhandled`] |

mod calcom;
mod context;
mod error;
mod retell;
mod stripe;
pub mod tenant;

pub use context::{BranchDirectory, BranchRef, Context, NoBranches};
pub use error::IntakeError;
pub use retell::business_number;

use chrono::{DateTime, TimeZone, Utc};
use switchboard_domain::{Command, StreamId};
use switchboard_webhooks::Delivery;

/// What a delivery means for the domain.
#[allow(
    clippy::large_enum_variant,
    reason = "a route lives for one delivery and is moved once; boxing buys nothing"
)]
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Decide `command` on `stream` (then run the policy on what it appends).
    Decide { stream: StreamId, command: Command },
    /// The domain has no rule for this delivery (an event type without a typed payload, a
    /// custom function other than `check_availability`). Nothing to decide: the server keeps
    /// the delivery in its log and answers `accepted`; it is not an error.
    Unhandled {
        event_type: String,
        reason: &'static str,
    },
}

impl Route {
    fn decide(stream: StreamId, command: impl Into<Command>) -> Self {
        Route::Decide {
            stream,
            command: command.into(),
        }
    }
}

/// Routes one delivery. Errors name the JSON path of what is missing or wrong, for the
/// server's `400 malformed_payload`.
pub fn route(delivery: &Delivery, context: &Context<'_>) -> Result<Route, IntakeError> {
    match delivery {
        Delivery::Retell(event) => retell::route_event(event, context),
        Delivery::RetellFunction(request) => retell::route_function_request(request, context),
        Delivery::Calcom(event) => calcom::route(event),
        Delivery::Stripe(event) => stripe::route(event),
    }
}

/// A non-empty id, or the error naming where it should have been.
fn required_id(value: &str, path: &str) -> Result<String, IntakeError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(IntakeError::InvalidField {
            path: path.to_owned(),
            reason: "must be a non-empty id without whitespace".to_owned(),
        });
    }
    Ok(trimmed.to_owned())
}

/// An optional id: empty strings count as absent (providers send `""` for "none").
fn optional_id(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

fn from_unix_ms(ms: i64, path: &str) -> Result<DateTime<Utc>, IntakeError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| IntakeError::InvalidField {
            path: path.to_owned(),
            reason: format!("{ms} is not a unix time in milliseconds"),
        })
}

fn from_unix_s(seconds: i64, path: &str) -> Result<DateTime<Utc>, IntakeError> {
    Utc.timestamp_opt(seconds, 0)
        .single()
        .ok_or_else(|| IntakeError::InvalidField {
            path: path.to_owned(),
            reason: format!("{seconds} is not a unix time in seconds"),
        })
}
