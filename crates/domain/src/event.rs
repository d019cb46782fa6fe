//! The events: every fact Switchboard records, past tense.
//!
//! Each event type is a struct with a stable type name and a schema version
//! ([`EventPayload`]); [`Event`] is the one enum over all of them. The store keeps an event as
//! `(event_type, schema_version, data)`: write it with [`Event::event_type`],
//! [`Event::schema_version`] and [`Event::to_json`], read it back with [`Event::from_parts`].
//!
//! Every event names its aggregate (call id, booking uid, tenant id, …) and carries
//! `occurred_at`, the provider's time of the fact: aggregates order out-of-order deliveries by
//! it, and the policy needs the ids to reach the other stream.

use chrono::{DateTime, FixedOffset, NaiveTime, Utc};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::rejection::Rejection;

/// What every event type declares about itself.
pub trait EventPayload: Serialize + DeserializeOwned + JsonSchema + Into<Event> {
    /// Stable name stored next to the data; never rename one that has been stored.
    const EVENT_TYPE: &'static str;
    /// Bumped whenever the data's shape changes incompatibly.
    const SCHEMA_VERSION: u32;
}

// ---------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------

/// Who called whom, as far as the provider said. Both `call_started` and `call_ended` carry it;
/// Retell may skip `call_started`, so the call reads from whichever arrived.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallParties {
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: Option<String>,
    pub agent_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    /// The tenant and branch that own the business number (`to_number` of an inbound call,
    /// `from_number` of an outbound one) when the delivery was routed; None when the number
    /// was not registered then (the calls read model may still attribute it later). The
    /// calls read model takes it for inbound calls only; an outbound call is looked up by its
    /// `from_number`, as routing before 2026-12-07 named the tenant of the number called.
    pub tenant_id: Option<String>,
    pub branch_id: Option<String>,
}

impl CallParties {
    /// Whether the business placed the call (`direction` `outbound`).
    pub fn outbound(&self) -> bool {
        Self::is_outbound(self.direction.as_deref())
    }

    /// The business's side of the call, whose number names the tenant's branch (see
    /// [`CallParties::business_side`]).
    pub fn business_number(&self) -> Option<&str> {
        Self::business_side(
            self.direction.as_deref(),
            self.from_number.as_deref(),
            self.to_number.as_deref(),
        )
    }

    /// Whether a call of this `direction` was placed by the business.
    fn is_outbound(direction: Option<&str>) -> bool {
        direction == Some("outbound")
    }

    /// Which of a call's two numbers is the business's: `to_number` of an inbound call,
    /// `from_number` of an outbound one (inbound when `direction` is absent). The one rule,
    /// for the stored event and for the provider's call the intake routes by
    /// (`switchboard_intake::business_number`).
    pub fn business_side<'a>(
        direction: Option<&str>,
        from_number: Option<&'a str>,
        to_number: Option<&'a str>,
    ) -> Option<&'a str> {
        if Self::is_outbound(direction) {
            from_number
        } else {
            to_number
        }
    }

    /// The other side: the customer's number.
    pub fn customer_number(&self) -> Option<&str> {
        if self.outbound() {
            self.to_number.as_deref()
        } else {
            self.from_number.as_deref()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallStarted {
    pub call_id: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub parties: CallParties,
}

/// How the call went, from `call_ended`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallOutcome {
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_s: Option<u64>,
    /// Retell's `status`, e.g. `completed`.
    pub call_status: Option<String>,
    pub end_reason: Option<String>,
    pub recording_url: Option<String>,
    pub transcript: Option<String>,
    pub summary: Option<String>,
    /// The name the agent collected (`collect_appointment_data.name`).
    pub customer_name: Option<String>,
    pub language: Option<String>,
    pub sentiment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallEnded {
    pub call_id: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub parties: CallParties,
    #[serde(flatten)]
    pub outcome: CallOutcome,
}

/// Retell's post-call analysis. The typed fields are what the read models use; `details`
/// keeps the whole analysis object so nothing the provider said is lost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallAnalysis {
    pub summary: Option<String>,
    pub sentiment: Option<String>,
    pub sentiment_score: Option<f64>,
    pub successful: Option<bool>,
    pub appointment_booked: Option<bool>,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallAnalyzed {
    pub call_id: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub analysis: CallAnalysis,
}

/// One free slot the server offered the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AvailableSlot {
    pub start: DateTime<FixedOffset>,
    pub end: DateTime<FixedOffset>,
    pub staff: Option<String>,
}

/// The answer the server gave to a `check_availability` function call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AvailabilityAnswer {
    pub available: bool,
    pub slots: Vec<AvailableSlot>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AvailabilityChecked {
    pub call_id: String,
    pub occurred_at: DateTime<Utc>,
    /// Retell's request id; None for the `/api/retell/functions/{name}` form, which has none.
    pub request_id: Option<String>,
    pub function_name: String,
    /// The arguments exactly as the agent sent them.
    pub arguments: serde_json::Value,
    pub answer: AvailabilityAnswer,
}

/// The appointment form the agent filled in during the call
/// (`custom_data.collect_appointment_data`), raw strings as spoken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AppointmentForm {
    /// `datum`, e.g. `15.04.2025`.
    pub date: Option<String>,
    /// `uhrzeit`, e.g. `14:30`.
    pub time: Option<String>,
    /// `dienstleistung`.
    pub service: Option<String>,
    pub name: Option<String>,
    /// `telefonnummer`.
    pub phone: Option<String>,
    pub email: Option<String>,
    /// `mitarbeiter_wunsch`.
    pub staff_wish: Option<String>,
    /// `kundenpraeferenzen`.
    pub preferences: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AppointmentRequested {
    pub call_id: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub form: AppointmentForm,
    /// `date` + `time` read in `time_zone`; None when they are missing or not understood
    /// (the raw strings above are kept either way).
    pub requested_start: Option<DateTime<Utc>>,
    /// IANA name of the zone the date and time were read in.
    pub time_zone: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallLinkedToBooking {
    pub call_id: String,
    pub booking_uid: String,
    /// The booking's provider time, so a call linked to several bookings (a reschedule makes
    /// a new uid) knows which one is current whatever the arrival order.
    pub occurred_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// Bookings and event types
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Organizer {
    pub id: Option<i64>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Attendee {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub time_zone: Option<String>,
}

/// What Cal.com said about a booking when it was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BookingDetails {
    /// Cal.com's numeric id (the uid is the stable key).
    pub calcom_booking_id: Option<i64>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The event type's title, e.g. `Herrenhaarschnitt`.
    pub service: Option<String>,
    pub event_type_id: Option<i64>,
    pub organizer: Option<Organizer>,
    pub attendees: Vec<Attendee>,
    /// An address, a link or a location type, whatever Cal.com gave.
    pub location: Option<String>,
    /// Cal.com's `status`, e.g. `ACCEPTED`.
    pub provider_status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BookingCreated {
    pub booking_uid: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub details: BookingDetails,
    /// `metadata.call_id`: the phone call this booking came from.
    pub call_id: Option<String>,
    /// Cal.com's `rescheduleUid`: this booking replaces that one.
    pub rescheduled_from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BookingRescheduled {
    pub booking_uid: String,
    pub occurred_at: DateTime<Utc>,
    pub previous_start: Option<DateTime<Utc>>,
    pub previous_end: Option<DateTime<Utc>>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub rescheduled_by: Option<String>,
    /// Set when Cal.com moved the booking to a new uid; the history continues there.
    pub rescheduled_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BookingCancelled {
    pub booking_uid: String,
    pub occurred_at: DateTime<Utc>,
    pub reason: Option<String>,
    pub cancelled_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BookingLinkedToCall {
    pub booking_uid: String,
    pub call_id: String,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventTypeDetails {
    pub title: Option<String>,
    pub slug: Option<String>,
    pub description: Option<String>,
    pub duration_min: Option<u32>,
    pub hidden: Option<bool>,
    /// In the currency's major unit, as Cal.com sends it.
    pub price: Option<f64>,
    pub currency: Option<String>,
    /// Cal.com user (organizer) and team that own it.
    pub user_id: Option<i64>,
    pub team_id: Option<i64>,
    pub locations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventTypeCreated {
    pub event_type_id: i64,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub details: EventTypeDetails,
}

// ---------------------------------------------------------------------------------------------
// Tenants: the registry
// ---------------------------------------------------------------------------------------------

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// One opening interval of a branch, in the branch's local time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OpeningHours {
    pub day: Weekday,
    pub opens: NaiveTime,
    pub closes: NaiveTime,
}

/// A branch as registered; phone numbers are assigned separately so a number can move.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BranchProfile {
    pub name: String,
    /// IANA name; None means the service default (Europe/Berlin).
    pub time_zone: Option<String>,
    pub opening_hours: Vec<OpeningHours>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TenantRegistered {
    pub tenant_id: String,
    pub occurred_at: DateTime<Utc>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TenantUpdated {
    pub tenant_id: String,
    pub occurred_at: DateTime<Utc>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BranchRegistered {
    pub tenant_id: String,
    pub branch_id: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub profile: BranchProfile,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BranchUpdated {
    pub tenant_id: String,
    pub branch_id: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub profile: BranchProfile,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BranchRemoved {
    pub tenant_id: String,
    pub branch_id: String,
    pub occurred_at: DateTime<Utc>,
}

/// The number now rings at this branch (moving it from any other branch of the tenant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhoneNumberAssigned {
    pub tenant_id: String,
    pub branch_id: String,
    /// E.164, e.g. `+493083793369`.
    pub phone_number: String,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhoneNumberUnassigned {
    pub tenant_id: String,
    pub branch_id: String,
    pub phone_number: String,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CalcomOrganizerLinked {
    pub tenant_id: String,
    pub organizer_id: i64,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CalcomOrganizerUnlinked {
    pub tenant_id: String,
    pub organizer_id: i64,
    pub occurred_at: DateTime<Utc>,
}

/// From now on the tenants read model attributes this customer's unattributed billing
/// (`billing-{customer}` streams) to the tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StripeCustomerLinked {
    pub tenant_id: String,
    pub stripe_customer_id: String,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StripeCustomerUnlinked {
    pub tenant_id: String,
    pub stripe_customer_id: String,
    pub occurred_at: DateTime<Utc>,
}

/// The complete set of API tokens of the tenant, as SHA-256 hex digests (the server hashes;
/// raw tokens never reach an event). Replaces the previous set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApiTokensSet {
    pub tenant_id: String,
    pub token_sha256: Vec<String>,
    pub occurred_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// Billing (on `tenant-…` streams, or `billing-…` when Stripe names no tenant)
// ---------------------------------------------------------------------------------------------

/// A Stripe subscription as one Stripe event described it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionFacts {
    /// `metadata.company_id`, when Stripe carries it.
    pub tenant_id: Option<String>,
    pub stripe_customer_id: String,
    pub subscription_id: String,
    /// Stripe's status: `active`, `trialing`, `past_due`, `canceled`, …
    pub status: String,
    pub plan: Option<String>,
    /// In the currency's minor unit (cents).
    pub amount: Option<i64>,
    pub currency: Option<String>,
    /// `month`, `year`, …
    pub interval: Option<String>,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionStarted {
    pub stripe_event_id: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub subscription: SubscriptionFacts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionUpdated {
    pub stripe_event_id: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub subscription: SubscriptionFacts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionCancelled {
    pub stripe_event_id: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub subscription: SubscriptionFacts,
}

/// A Stripe invoice as one Stripe event described it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InvoiceFacts {
    /// `metadata.company_id`, when Stripe carries it.
    pub tenant_id: Option<String>,
    pub stripe_customer_id: String,
    pub invoice_id: String,
    pub subscription_id: Option<String>,
    /// Paid (or due, for a failure), in the currency's minor unit (cents).
    pub amount: i64,
    pub currency: String,
    pub plan: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentSucceeded {
    pub stripe_event_id: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub invoice: InvoiceFacts,
    pub paid_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentFailure {
    /// `last_payment_error.code`, e.g. `card_declined`.
    pub failure_code: Option<String>,
    pub decline_code: Option<String>,
    pub failure_message: Option<String>,
    pub attempt_count: Option<u32>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentFailed {
    pub stripe_event_id: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub invoice: InvoiceFacts,
    #[serde(flatten)]
    pub failure: PaymentFailure,
}

// ---------------------------------------------------------------------------------------------
// Anomalies
// ---------------------------------------------------------------------------------------------

/// A delivery the aggregate refused. Recorded on the stream it was meant for, with the whole
/// command, so the anomalies read model can be rebuilt from the streams and the refused fact
/// is not lost. Aggregates ignore it when folding: it never changes state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TransitionRejected {
    pub occurred_at: DateTime<Utc>,
    /// The command's name, e.g. `RescheduleBooking`.
    pub command: String,
    pub reason: Rejection,
    /// The command as JSON.
    pub payload: serde_json::Value,
}

// ---------------------------------------------------------------------------------------------
// The enum over all events
// ---------------------------------------------------------------------------------------------

/// Why stored parts do not make an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventDecodeError {
    #[error("unknown event type `{0}`")]
    UnknownEventType(String),
    #[error(
        "event type `{event_type}` has schema version {supported}; cannot read version {found}"
    )]
    UnsupportedSchemaVersion {
        event_type: String,
        found: u32,
        supported: u32,
    },
    #[error("data of `{event_type}` does not match its schema: {message}")]
    InvalidData { event_type: String, message: String },
}

/// Declares the event types once: their names and versions, the [`Event`] enum and its
/// dispatch. A macro because every list below must name every event, and forgetting one in
/// `from_parts` would silently make stored events unreadable.
macro_rules! events {
    ($($name:ident = $version:literal),* $(,)?) => {
        $(
            impl EventPayload for $name {
                const EVENT_TYPE: &'static str = stringify!($name);
                const SCHEMA_VERSION: u32 = $version;
            }

            impl From<$name> for Event {
                fn from(event: $name) -> Self {
                    Event::$name(event)
                }
            }
        )*

        /// Every event Switchboard records. Serializes (for snapshots and debugging) as
        /// `{EventType: data}`; the store uses [`Event::to_json`] and [`Event::from_parts`].
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub enum Event {
            $($name($name),)*
        }

        impl Event {
            /// All event types with their schema versions, in declaration order.
            pub const TYPES: &'static [(&'static str, u32)] = &[$((stringify!($name), $version),)*];

            pub fn event_type(&self) -> &'static str {
                match self {
                    $(Event::$name(_) => <$name as EventPayload>::EVENT_TYPE,)*
                }
            }

            pub fn schema_version(&self) -> u32 {
                match self {
                    $(Event::$name(_) => <$name as EventPayload>::SCHEMA_VERSION,)*
                }
            }

            /// The provider's time of the fact (for registry changes: the time of the request).
            pub fn occurred_at(&self) -> DateTime<Utc> {
                match self {
                    $(Event::$name(event) => event.occurred_at,)*
                }
            }

            /// The event's data, without type or version (those go beside it in the store).
            pub fn to_json(&self) -> serde_json::Value {
                match self {
                    // Plain structs of strings, numbers and maps with string keys always
                    // serialize; a failure here is a programming error.
                    $(Event::$name(event) => serde_json::to_value(event)
                        .expect("event data serializes to JSON"),)*
                }
            }

            /// Reads back what [`Event::event_type`], [`Event::schema_version`] and
            /// [`Event::to_json`] stored.
            pub fn from_parts(
                event_type: &str,
                schema_version: u32,
                data: impl EventData,
            ) -> Result<Event, EventDecodeError> {
                match event_type {
                    $(stringify!($name) => decode::<$name>(schema_version, data),)*
                    other => Err(EventDecodeError::UnknownEventType(other.to_owned())),
                }
            }

            /// The JSON Schema of each event type's data, keyed by type name and version.
            pub fn schemas() -> Vec<(&'static str, u32, schemars::Schema)> {
                vec![$((stringify!($name), $version, schemars::schema_for!($name)),)*]
            }
        }
    };
}

/// What [`Event::from_parts`] reads an event's data from: a `serde_json::Value`, or the JSON
/// text as the store keeps it (`&str`), which decodes straight into the event's struct without
/// building a `Value` tree first.
pub trait EventData {
    fn deserialize_into<E: DeserializeOwned>(self) -> Result<E, serde_json::Error>;
}

impl EventData for serde_json::Value {
    fn deserialize_into<E: DeserializeOwned>(self) -> Result<E, serde_json::Error> {
        serde_json::from_value(self)
    }
}

impl EventData for &str {
    fn deserialize_into<E: DeserializeOwned>(self) -> Result<E, serde_json::Error> {
        serde_json::from_str(self)
    }
}

fn decode<E: EventPayload>(
    schema_version: u32,
    data: impl EventData,
) -> Result<Event, EventDecodeError> {
    if schema_version != E::SCHEMA_VERSION {
        return Err(EventDecodeError::UnsupportedSchemaVersion {
            event_type: E::EVENT_TYPE.to_owned(),
            found: schema_version,
            supported: E::SCHEMA_VERSION,
        });
    }
    data.deserialize_into::<E>()
        .map(Into::into)
        .map_err(|error| EventDecodeError::InvalidData {
            event_type: E::EVENT_TYPE.to_owned(),
            message: error.to_string(),
        })
}

events! {
    CallStarted = 1,
    CallEnded = 1,
    CallAnalyzed = 1,
    AvailabilityChecked = 1,
    AppointmentRequested = 1,
    CallLinkedToBooking = 1,
    BookingCreated = 1,
    BookingRescheduled = 1,
    BookingCancelled = 1,
    BookingLinkedToCall = 1,
    EventTypeCreated = 1,
    TenantRegistered = 1,
    TenantUpdated = 1,
    BranchRegistered = 1,
    BranchUpdated = 1,
    BranchRemoved = 1,
    PhoneNumberAssigned = 1,
    PhoneNumberUnassigned = 1,
    CalcomOrganizerLinked = 1,
    CalcomOrganizerUnlinked = 1,
    StripeCustomerLinked = 1,
    StripeCustomerUnlinked = 1,
    ApiTokensSet = 1,
    SubscriptionStarted = 1,
    SubscriptionUpdated = 1,
    SubscriptionCancelled = 1,
    PaymentSucceeded = 1,
    PaymentFailed = 1,
    TransitionRejected = 1,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(seconds, 0).unwrap()
    }

    fn samples() -> Vec<Event> {
        vec![
            CallEnded {
                call_id: "call_1".into(),
                occurred_at: at(1_703_244_423),
                parties: CallParties {
                    from_number: Some("+4915123456789".into()),
                    to_number: Some("+493083793369".into()),
                    ..CallParties::default()
                },
                outcome: CallOutcome {
                    duration_s: Some(300),
                    transcript: Some("Agent: Guten Tag".into()),
                    ..CallOutcome::default()
                },
            }
            .into(),
            BookingCancelled {
                booking_uid: "bkg_1".into(),
                occurred_at: at(1_744_642_800),
                reason: Some("Customer requested cancellation".into()),
                cancelled_by: None,
            }
            .into(),
            TransitionRejected {
                occurred_at: at(1_744_646_400),
                command: "RescheduleBooking".into(),
                reason: Rejection::RescheduleAfterCancellation {
                    booking_uid: "bkg_1".into(),
                    cancelled_at: at(1_744_642_800),
                },
                payload: serde_json::json!({"booking_uid": "bkg_1"}),
            }
            .into(),
        ]
    }

    #[test]
    fn stored_parts_read_back_as_the_same_event() {
        for event in samples() {
            let back =
                Event::from_parts(event.event_type(), event.schema_version(), event.to_json());
            assert_eq!(back, Ok(event));
        }
    }

    #[test]
    fn stored_text_reads_back_as_the_event_its_value_does() {
        for event in samples() {
            let text = event.to_json().to_string();
            let back = Event::from_parts(event.event_type(), event.schema_version(), &*text);
            assert_eq!(back, Ok(event));
        }
        assert!(matches!(
            Event::from_parts("BookingCancelled", 1, r#"{"booking_uid": 5}"#),
            Err(EventDecodeError::InvalidData { .. })
        ));
    }

    #[test]
    fn flattened_data_reads_as_one_flat_object() {
        let json = samples()[0].to_json();
        assert_eq!(json["from_number"], "+4915123456789");
        assert_eq!(json["duration_s"], 300);
        assert!(json.get("parties").is_none());
    }

    #[test]
    fn type_names_are_stable_strings() {
        assert_eq!(samples()[1].event_type(), "BookingCancelled");
        assert_eq!(BookingCancelled::EVENT_TYPE, "BookingCancelled");
        assert!(Event::TYPES.contains(&("PaymentFailed", 1)));
    }

    #[test]
    fn unknown_types_versions_and_shapes_are_refused_with_a_reason() {
        assert_eq!(
            Event::from_parts("CallTeleported", 1, serde_json::json!({})),
            Err(EventDecodeError::UnknownEventType("CallTeleported".into()))
        );
        assert_eq!(
            Event::from_parts("BookingCancelled", 9, samples()[1].to_json()),
            Err(EventDecodeError::UnsupportedSchemaVersion {
                event_type: "BookingCancelled".into(),
                found: 9,
                supported: 1
            })
        );
        assert!(matches!(
            Event::from_parts("BookingCancelled", 1, serde_json::json!({"booking_uid": 5})),
            Err(EventDecodeError::InvalidData { .. })
        ));
    }

    #[test]
    fn there_is_one_schema_per_event_type() {
        let schemas = Event::schemas();
        assert_eq!(schemas.len(), Event::TYPES.len());
        for ((name, version, _), (type_name, type_version)) in schemas.iter().zip(Event::TYPES) {
            assert_eq!((name, version), (type_name, type_version));
        }
    }
}
