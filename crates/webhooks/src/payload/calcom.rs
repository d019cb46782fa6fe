//! Cal.com payloads. Triggers arrive as `booking.created` (the seed) or `BOOKING_CREATED`
//! (Cal.com itself); both parse to the same variant. A real reschedule is a *new* booking uid
//! whose `rescheduleUid` names the old one; the seed's reschedule keeps the uid and carries
//! `previousStartTime`. Both shapes are kept and [`CalcomBooking::previous_uid`] tells them
//! apart.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A Cal.com webhook delivery, by its trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum CalcomEvent {
    BookingCreated(CalcomEnvelope<CalcomBooking>),
    BookingCancelled(CalcomEnvelope<CalcomBooking>),
    BookingRescheduled(CalcomEnvelope<CalcomBooking>),
    EventTypeCreated(CalcomEnvelope<CalcomEventType>),
    /// Any other trigger (`MEETING_ENDED`, `PING`, …): recorded, not refused.
    Other {
        trigger_event: String,
        created_at: Option<DateTime<Utc>>,
    },
}

/// The triggers Switchboard understands, with their canonical (dotted) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalcomTrigger {
    BookingCreated,
    BookingCancelled,
    BookingRescheduled,
    EventTypeCreated,
}

impl CalcomTrigger {
    pub const ALL: [CalcomTrigger; 4] = [
        CalcomTrigger::BookingCreated,
        CalcomTrigger::BookingCancelled,
        CalcomTrigger::BookingRescheduled,
        CalcomTrigger::EventTypeCreated,
    ];

    /// The canonical, dotted name: `booking.created`.
    pub fn as_str(self) -> &'static str {
        match self {
            CalcomTrigger::BookingCreated => "booking.created",
            CalcomTrigger::BookingCancelled => "booking.cancelled",
            CalcomTrigger::BookingRescheduled => "booking.rescheduled",
            CalcomTrigger::EventTypeCreated => "event_type.created",
        }
    }

    /// Cal.com's own spelling: `BOOKING_CREATED`.
    pub fn upper_name(self) -> &'static str {
        match self {
            CalcomTrigger::BookingCreated => "BOOKING_CREATED",
            CalcomTrigger::BookingCancelled => "BOOKING_CANCELLED",
            CalcomTrigger::BookingRescheduled => "BOOKING_RESCHEDULED",
            CalcomTrigger::EventTypeCreated => "EVENT_TYPE_CREATED",
        }
    }

    /// Recognises either spelling (and `canceled`, which Cal.com's API uses elsewhere).
    pub fn parse(raw: &str) -> Option<CalcomTrigger> {
        let raw = raw.trim();
        CalcomTrigger::ALL.into_iter().find(|t| {
            raw.eq_ignore_ascii_case(t.as_str())
                || raw.eq_ignore_ascii_case(t.upper_name())
                || (*t == CalcomTrigger::BookingCancelled
                    && (raw.eq_ignore_ascii_case("booking.canceled")
                        || raw.eq_ignore_ascii_case("BOOKING_CANCELED")))
        })
    }
}

/// The normalized trigger name used in dedupe keys: the canonical name of a known trigger, the
/// lowercased raw name of an unknown one.
pub fn normalize_trigger(raw: &str) -> String {
    CalcomTrigger::parse(raw)
        .map(|t| t.as_str().to_owned())
        .unwrap_or_else(|| raw.trim().to_ascii_lowercase())
}

/// The common envelope of every Cal.com delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "CalcomEnvelope_{T}")]
pub struct CalcomEnvelope<T> {
    /// As sent: `booking.created` or `BOOKING_CREATED`.
    pub trigger_event: String,
    pub created_at: DateTime<Utc>,
    pub payload: T,
}

impl<T> CalcomEnvelope<T> {
    pub fn trigger(&self) -> Option<CalcomTrigger> {
        CalcomTrigger::parse(&self.trigger_event)
    }
}

/// A booking, as `booking.*` triggers carry it. `uid` is required (it is the booking's
/// stream); start and end are required for created and rescheduled bookings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalcomBooking {
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Real Cal.com names the numeric id `bookingId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    /// `ACCEPTED`, `CANCELLED`, `PENDING`, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer: Option<CalcomPerson>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attendees: Vec<CalcomPerson>,
    /// An object in the seed, a string in real Cal.com deliveries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_calendar: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<CalcomEventTypeRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_id: Option<i64>,
    /// Free-form; Switchboard's agent puts `call_id` here to link a booking to its call.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_by: Option<String>,
    /// Seed reschedule shape: the old times on the same uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_end_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescheduled_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescheduling_reason: Option<String>,
    /// Real reschedule shape: the uid of the booking this one replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_end_time: Option<DateTime<Utc>>,
}

impl CalcomBooking {
    /// The Retell call that led to this booking, from `metadata.call_id`.
    pub fn call_id(&self) -> Option<&str> {
        self.metadata.get("call_id")?.as_str()
    }

    /// For a real reschedule, the uid of the booking this one replaces; `None` for the seed's
    /// same-uid reschedule and for every other trigger.
    pub fn previous_uid(&self) -> Option<&str> {
        self.reschedule_uid
            .as_deref()
            .filter(|old| !old.is_empty() && *old != self.uid)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalcomPerson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// The event type a booking is for.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalcomEventTypeRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// Minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
}

/// `event_type.created`: a new service offered.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalcomEventType {
    pub id: i64,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Minutes (seed); real Cal.com calls it `length`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl CalcomEventType {
    pub fn duration_minutes(&self) -> Option<i64> {
        self.duration.or(self.length)
    }
}
