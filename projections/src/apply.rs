//! One event into every read model: decode the envelope, dispatch to the projection that owns
//! the event type, and turn what cannot be applied into an anomaly instead of a stall.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use foldhash::HashMap;
use switchboard_domain::event::{Event, EventDecodeError};
use switchboard_store::{RecordedEvent, json_without_nul, text_without_nul};

use crate::anomalies;
use crate::appointment_rows::Appointment;
use crate::call_rows::Call;
use crate::counts::BatchCounts;
use crate::customers::Customer;
use crate::held::{Held, WrittenKeys};
use crate::phone::PhoneBook;
use crate::sql::{Conn, Dialect, SqlError, SqlResult, Tx};
use crate::{ProjectionError, appointments, calls, tenants};

/// The envelope-only event the server stores with the raw webhook body (for re-derivation);
/// no read model is built from it.
pub const DELIVERY_RECEIVED: &str = "DeliveryReceived";

/// Read-model times: ISO-8601 UTC with fixed millisecond precision, so text order is time
/// order (range queries and "newer wins" comparisons rely on it).
///
/// Written digit by digit for the years 0–9999 outside a leap second, with exactly chrono's
/// `to_rfc3339_opts(Millis, true)` text (a test compares them over the whole range): every
/// event's time passes here, several of a booking's, and chrono's formatter was 3 % of the
/// rebuild fold's instructions. Other times go to chrono.
pub fn ts(at: DateTime<Utc>) -> String {
    let day = at.date_naive();
    let time = at.time();
    let year = day.year();
    if !(0..=9999).contains(&year) || time.nanosecond() >= 1_000_000_000 {
        return at.to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |from: usize, width: usize, mut value: u32| {
        for digit in text[from..from + width].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, day.month());
    put(8, 2, day.day());
    put(11, 2, time.hour());
    put(14, 2, time.minute());
    put(17, 2, time.second());
    put(20, 3, time.nanosecond() / 1_000_000);
    // ASCII digits and separators, so never the default.
    std::str::from_utf8(&text).unwrap_or_default().to_owned()
}

/// What a projection knows about the event it is applying.
pub(crate) struct Cx<'a, 'c> {
    /// The batch's transaction: its statements are prepared once per batch.
    pub conn: &'a Tx<'c>,
    pub position: u64,
    pub stream: &'a str,
    pub event_type: &'a str,
    /// The event's provider time as read-model text.
    pub at: String,
    pub phones: &'a PhoneBook,
    /// The call's numbers, normalized where the event was decoded (see [`CallNumbers`]).
    pub call_numbers: &'a CallNumbers,
    /// What the batch holds in memory: counts (written at its end) and calls (see held.rs).
    pub batch: &'a Batch,
}

impl Cx<'_, '_> {
    pub(crate) fn seq(&self) -> i64 {
        self.position as i64
    }
}

/// What a batch holds in memory: per-tenant counts, written at its end, and the call,
/// appointment and customer rows it read or changed, written as `held.rs` says. One per transaction attempt: a
/// batch retried carefully starts from a new one.
#[derive(Default)]
pub(crate) struct Batch {
    pub counts: BatchCounts,
    pub calls: Held<Call>,
    pub appointments: Held<Appointment>,
    pub customers: Held<Customer>,
    /// The owner of each number the batch looked up in `phone_numbers` (a call's tenant,
    /// asked for by most call events of a batch, of a few hundred numbers); forgotten whenever
    /// the batch assigns or unassigns a number.
    pub number_owners: NumberOwners,
}

/// Number → (tenant, branch), or None for a number no tenant owns.
pub(crate) type NumberOwners = RefCell<HashMap<String, Option<(String, Option<String>)>>>;

/// The keys written to the held tables of a replay into fresh tables (see [`WrittenKeys`]),
/// kept across its batches.
#[derive(Clone)]
pub(crate) struct FreshTables {
    calls: Arc<WrittenKeys>,
    appointments: Arc<WrittenKeys>,
    customers: Arc<WrittenKeys>,
}

impl FreshTables {
    /// For the held tables of `conn` if they are empty now; None if one of them holds a row
    /// (its key would be unknown to the filter).
    pub(crate) fn if_empty(conn: &Conn) -> SqlResult<Option<FreshTables>> {
        let empty: bool = conn.query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM calls) AND NOT EXISTS (SELECT 1 FROM appointments)
                    AND NOT EXISTS (SELECT 1 FROM customers)",
            (),
            |r| r.get(0),
        )?;
        Ok(empty.then(|| FreshTables {
            calls: WrittenKeys::new(),
            appointments: WrittenKeys::new(),
            customers: WrittenKeys::new(),
        }))
    }
}

impl Batch {
    /// A batch of a replay into the tables `fresh` has followed since they were empty.
    pub(crate) fn replaying(fresh: &FreshTables) -> Batch {
        Batch {
            calls: Held::written_since_empty(Arc::clone(&fresh.calls)),
            appointments: Held::written_since_empty(Arc::clone(&fresh.appointments)),
            customers: Held::written_since_empty(Arc::clone(&fresh.customers)),
            ..Batch::default()
        }
    }

    /// Writes the rows changed since the last flush.
    pub(crate) fn flush_rows(&self, conn: &Tx<'_>) -> Result<(), SqlError> {
        self.calls.flush(conn)?;
        self.appointments.flush(conn)?;
        self.customers.flush(conn)
    }

    /// Drops the rows held and the numbers' owners: the event that changed them was rolled
    /// back.
    pub(crate) fn forget_rows(&self) {
        self.calls.forget();
        self.appointments.forget();
        self.customers.forget();
        self.number_owners.borrow_mut().clear();
    }
}

/// Why one event did not apply.
#[derive(Debug)]
pub(crate) enum ApplyError {
    /// The read models cannot take writes (disk full, I/O, locked): the batch must be retried,
    /// never skipped.
    Fatal(ProjectionError),
    /// This event cannot be applied (a constraint, a value out of range): its effects are
    /// rolled back and an anomaly is recorded in its place.
    Event(String),
}

impl From<SqlError> for ApplyError {
    fn from(error: SqlError) -> Self {
        if error.is_database_trouble() {
            ApplyError::Fatal(error.into())
        } else {
            ApplyError::Event(error.to_string())
        }
    }
}

impl From<serde_json::Error> for ApplyError {
    fn from(error: serde_json::Error) -> Self {
        ApplyError::Event(error.to_string())
    }
}

pub(crate) type Applied = Result<(), ApplyError>;

/// An envelope decoded for folding: the domain event, or why it is not one. Decoding needs no
/// database, so a batch is decoded before its transaction starts, and can be applied twice
/// (see [`crate::fold`]) without decoding twice.
pub(crate) struct Decoded {
    pub position: u64,
    stream: String,
    event_type: String,
    at: String,
    event: Result<Event, EventDecodeError>,
    call_numbers: CallNumbers,
}

/// A call's two numbers in E.164: the business's, which attribution looks up, and the
/// customer's (the caller's inbound, the one called outbound). Normalized where the event is
/// decoded, which in a rebuild is the reader's thread: the memo's work for nearly every call
/// event was about 4-5 % of the fold thread's time (perf, 2026-12-07). Filled for the events
/// that carry a call's parties (`CallStarted`, `CallEnded`), empty for every other.
#[derive(Default)]
pub(crate) struct CallNumbers {
    pub tenant_number: Option<String>,
    pub customer_number: Option<String>,
}

impl CallNumbers {
    fn of(event: &Event, phones: &PhoneBook) -> CallNumbers {
        let parties = match event {
            Event::CallStarted(e) => &e.parties,
            Event::CallEnded(e) => &e.parties,
            _ => return CallNumbers::default(),
        };
        CallNumbers {
            tenant_number: phones.normalize_business(parties.business_number()),
            customer_number: phones.normalize(parties.customer_number()),
        }
    }
}

/// The other phone numbers a projection normalizes when it folds this event (an attendee's
/// or a request's phone, a number being assigned), so they can be normalized ahead of the
/// fold. (A call's own are in [`CallNumbers`].)
pub(crate) fn phone_numbers(decoded: &Decoded) -> impl Iterator<Item = &str> {
    let event = decoded.event.as_ref().ok();
    let (a, b): (Option<&str>, Option<&str>) = match event {
        Some(Event::BookingCreated(e)) => (
            e.details.attendees.first().and_then(|a| a.phone.as_deref()),
            None,
        ),
        Some(Event::AppointmentRequested(e)) => (e.form.phone.as_deref(), None),
        Some(Event::PhoneNumberAssigned(e)) => (Some(e.phone_number.as_str()), None),
        Some(Event::PhoneNumberUnassigned(e)) => (Some(e.phone_number.as_str()), None),
        _ => (None, None),
    };
    a.into_iter().chain(b)
}

/// Decodes an envelope, normalizing a call's numbers through `phones`; None for envelopes no
/// read model is built from.
pub(crate) fn decode(recorded: RecordedEvent, phones: &PhoneBook) -> Option<Decoded> {
    if recorded.event_type == DELIVERY_RECEIVED {
        return unhandled_delivery(recorded);
    }
    let RecordedEvent {
        stream,
        position,
        event_type,
        schema_version,
        occurred_at,
        data,
        ..
    } = recorded;
    let event = Event::from_parts(
        &event_type,
        schema_version,
        without_nul(data.as_str()).as_ref(),
    );
    let call_numbers = event.as_ref().map_or_else(
        |_| CallNumbers::default(),
        |event| CallNumbers::of(event, phones),
    );
    Some(Decoded {
        position,
        // Stores written before names were checked for NUL may hold such a stream.
        stream: match text_without_nul(&stream) {
            Cow::Owned(replaced) => replaced,
            Cow::Borrowed(_) => stream,
        },
        event_type,
        at: ts(occurred_at),
        event,
        call_numbers,
    })
}

/// Read-model text never holds NUL: PostgreSQL's text cannot, and the read models are to be
/// the same in both databases. The event keeps it; the read models show U+FFFD in its place.
/// Only the rare event whose JSON holds the escape `\u0000` is parsed twice; the check itself
/// runs where events are decoded, which in a rebuild is the reader's thread, not the fold's.
fn without_nul(json: &str) -> Cow<'_, str> {
    // Text that is not JSON stays as it is: decoding reports what is wrong with it.
    json_without_nul(json).map_or(Cow::Borrowed(json), Cow::Owned)
}

/// What the anomalies need of a raw delivery; its body (most of it) is skipped unparsed.
#[derive(serde::Deserialize)]
struct UnhandledDelivery {
    provider: Option<String>,
    unhandled: Option<Unhandled>,
}

#[derive(serde::Deserialize)]
struct Unhandled {
    event_type: Option<String>,
    reason: Option<String>,
}

/// A raw delivery is folded only when the domain had no rule for it (the server marks it
/// `unhandled`): an event type no aggregate knows, listed as an `unknown_event_type` anomaly.
fn unhandled_delivery(recorded: RecordedEvent) -> Option<Decoded> {
    let delivery = recorded.data.parse::<UnhandledDelivery>().ok()?;
    let unhandled = delivery.unhandled?;
    let provider = delivery.provider.as_deref().unwrap_or("unknown");
    // The provider's own name for the event, which may hold anything (see `without_nul`).
    let event_type = text_without_nul(unhandled.event_type.as_deref().unwrap_or("?"));
    let reason = unhandled.reason.as_deref().unwrap_or("no rule");
    Some(Decoded {
        position: recorded.position,
        stream: recorded.stream,
        event_type: format!("{provider}:{event_type}"),
        at: ts(recorded.occurred_at),
        event: Err(EventDecodeError::UnknownEventType(format!(
            "{provider} {event_type} ({reason})"
        ))),
        call_numbers: CallNumbers::default(),
    })
}

/// How an event is applied inside the batch's transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// No savepoint: an event that cannot be applied fails the whole batch, which is then
    /// retried carefully. Events that cannot be applied are rare; savepoints on every event
    /// would cost every event.
    Optimistic,
    /// A savepoint per event: what an event cannot apply is undone as a whole and recorded as
    /// an anomaly, so no read model is left half-updated by it.
    Careful,
}

/// Folds one decoded event into the read models inside the caller's transaction. In careful
/// mode only read-model trouble is an error; everything about the event itself ends as rows
/// or as an anomaly.
pub(crate) fn apply(
    conn: &Tx<'_>,
    phones: &PhoneBook,
    batch: &Batch,
    decoded: &Decoded,
    mode: Mode,
) -> Result<(), ApplyError> {
    let cx = Cx {
        conn,
        position: decoded.position,
        stream: &decoded.stream,
        event_type: &decoded.event_type,
        at: decoded.at.clone(),
        phones,
        call_numbers: &decoded.call_numbers,
        batch,
    };
    let event = match &decoded.event {
        Ok(event) => event,
        Err(error) => {
            let reason = match error {
                EventDecodeError::UnknownEventType(_) => "unknown_event_type",
                EventDecodeError::UnsupportedSchemaVersion { .. } => "unsupported_schema_version",
                EventDecodeError::InvalidData { .. } => "invalid_event_data",
            };
            return anomalies::at_event(&cx, reason, error.to_string())
                .map_err(|e| ApplyError::Fatal(fatal_only(e)));
        }
    };
    if mode == Mode::Optimistic {
        dispatch(&cx, event)?;
        // PostgreSQL refuses some values SQLite takes (NUL in text, over-long index entries):
        // there each event's rows are written at once, so what an event cannot write fails
        // that event wherever the batch ends (see held.rs).
        if conn.dialect() == Dialect::Postgres {
            batch.flush_rows(conn)?;
        }
        return Ok(());
    }

    conn.execute_batch("SAVEPOINT apply_event")?;
    let counted = batch.counts.snapshot();
    // The event's rows are written inside its savepoint, so rolling it back undoes them too.
    match dispatch(&cx, event).and_then(|()| Ok(batch.flush_rows(conn)?)) {
        Ok(()) => {
            conn.execute_batch("RELEASE apply_event")?;
            Ok(())
        }
        Err(failure) => {
            conn.execute_batch("ROLLBACK TO apply_event")?;
            batch.counts.restore(counted);
            batch.forget_rows();
            conn.execute_batch("RELEASE apply_event")?;
            match failure {
                ApplyError::Fatal(error) => Err(ApplyError::Fatal(error)),
                ApplyError::Event(message) => {
                    tracing::warn!(position = decoded.position, stream = %decoded.stream,
                        event_type = %decoded.event_type, %message,
                        "event could not be applied; recorded as an anomaly");
                    anomalies::at_event(&cx, "apply_failed", message)
                        .map_err(|e| ApplyError::Fatal(fatal_only(e)))
                }
            }
        }
    }
}

fn fatal_only(error: ApplyError) -> ProjectionError {
    match error {
        ApplyError::Fatal(error) => error,
        // Recording an anomaly is a plain insert of strings; if even that fails, the read
        // models cannot take writes.
        ApplyError::Event(message) => ProjectionError::Task(message),
    }
}

fn dispatch(cx: &Cx<'_, '_>, event: &Event) -> Applied {
    match event {
        Event::CallStarted(e) => calls::started(cx, e),
        Event::CallEnded(e) => calls::ended(cx, e),
        Event::CallAnalyzed(e) => calls::analyzed(cx, e),
        Event::AvailabilityChecked(e) => calls::availability_checked(cx, e),
        Event::CallLinkedToBooking(e) => calls::linked_to_booking(cx, e),
        Event::AppointmentRequested(e) => appointments::requested(cx, e),
        Event::BookingCreated(e) => appointments::created(cx, e),
        Event::BookingRescheduled(e) => appointments::rescheduled(cx, e),
        Event::BookingCancelled(e) => appointments::cancelled(cx, e),
        Event::BookingLinkedToCall(e) => appointments::linked_to_call(cx, e),
        // Services are read from the bookings themselves; the catalogue has no read model.
        Event::EventTypeCreated(_) => Ok(()),
        Event::TenantRegistered(e) => tenants::registered(cx, &e.tenant_id, &e.name),
        Event::TenantUpdated(e) => tenants::registered(cx, &e.tenant_id, &e.name),
        Event::BranchRegistered(e) => tenants::branch(cx, &e.tenant_id, &e.branch_id, &e.profile),
        Event::BranchUpdated(e) => tenants::branch(cx, &e.tenant_id, &e.branch_id, &e.profile),
        Event::BranchRemoved(e) => tenants::branch_removed(cx, e),
        Event::PhoneNumberAssigned(e) => tenants::phone_number_assigned(cx, e),
        Event::PhoneNumberUnassigned(e) => tenants::phone_number_unassigned(cx, e),
        Event::CalcomOrganizerLinked(e) => tenants::organizer_linked(cx, e),
        Event::CalcomOrganizerUnlinked(e) => tenants::organizer_unlinked(cx, e),
        Event::StripeCustomerLinked(e) => tenants::stripe_customer_linked(cx, e),
        Event::StripeCustomerUnlinked(e) => tenants::stripe_customer_unlinked(cx, e),
        Event::ApiTokensSet(e) => tenants::api_tokens_set(cx, e),
        Event::SubscriptionStarted(e) => {
            tenants::subscription(cx, &e.stripe_event_id, &e.subscription)
        }
        Event::SubscriptionUpdated(e) => {
            tenants::subscription(cx, &e.stripe_event_id, &e.subscription)
        }
        Event::SubscriptionCancelled(e) => {
            tenants::subscription(cx, &e.stripe_event_id, &e.subscription)
        }
        Event::PaymentSucceeded(e) => tenants::payment(cx, &e.stripe_event_id, &e.invoice, None),
        Event::PaymentFailed(e) => {
            tenants::payment(cx, &e.stripe_event_id, &e.invoice, Some(&e.failure))
        }
        Event::TransitionRejected(e) => anomalies::rejected(cx, e),
    }
}

#[cfg(test)]
mod tests {
    use super::{ts, without_nul};
    use chrono::{DateTime, SecondsFormat, Utc};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_read_model_time_is_chronos_rfc3339_in_millis(
            // Year -300 to 12000; a leap second (its nanoseconds past 1e9) below.
            seconds in -71_640_000_000i64..316_560_000_000,
            nanos in 0u32..1_000_000_000,
        ) {
            let at = DateTime::<Utc>::from_timestamp(seconds, nanos).unwrap();
            prop_assert_eq!(ts(at), at.to_rfc3339_opts(SecondsFormat::Millis, true));
        }
    }

    #[test]
    fn read_model_times_at_the_edges_of_the_written_years_are_chronos() {
        for text in [
            "0000-01-01T00:00:00.000Z",
            "9999-12-31T23:59:59.999Z",
            "2026-12-07T17:45:03.007Z",
            "2024-02-29T12:00:00.5Z",
        ] {
            let at: DateTime<Utc> = text.parse().unwrap();
            assert_eq!(ts(at), at.to_rfc3339_opts(SecondsFormat::Millis, true));
        }
        let leap_second = DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap();
        assert_eq!(ts(leap_second), "2016-12-31T23:59:60.500Z");
    }

    #[test]
    fn text_without_a_nul_is_passed_through_unparsed() {
        let json = r#"{"b": "x",  "a": 1}"#;
        assert!(matches!(without_nul(json), std::borrow::Cow::Borrowed(j) if j == json));
    }

    #[test]
    fn a_nul_in_any_string_becomes_the_replacement_character() {
        let json = r#"{"transcript":"a\u0000b","attendees":[{"name":"\u0000"}],"n":0}"#;
        assert_eq!(
            without_nul(json),
            r#"{"attendees":[{"name":"�"}],"n":0,"transcript":"a�b"}"#
        );
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_no_nul() {
        let json = r#"{"text":"C:\\u0000"}"#;
        let cleaned = without_nul(json);
        let value: serde_json::Value = serde_json::from_str(&cleaned).unwrap();
        assert_eq!(value["text"], "C:\\u0000");
    }
}
