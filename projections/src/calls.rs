//! The calls read model: one row per call, as `GET /api/calls/{id}` returns it.
//!
//! Any call event may be the first one seen (Retell may skip `call_started`, and deliveries
//! arrive out of order), so every handler upserts the row and only fills what it knows.
//! Status: `started` until an end is recorded, then `ended`, then `analyzed` once both the end
//! and the analysis are in, whatever order they came in.

use switchboard_domain::event::{
    AvailabilityChecked, CallAnalyzed, CallEnded, CallLinkedToBooking, CallParties, CallStarted,
};

use crate::apply::{Applied, CallNumbers, Cx, ts};
use crate::call_rows::Call;
use crate::sql::{SqlError, params};
use crate::{appointments, attribution};

/// What attribution needs to know about a call.
pub(crate) struct CallRow {
    /// The event in hand created the row.
    pub created: bool,
    pub tenant_id: Option<String>,
    pub branch_id: Option<String>,
    pub tenant_number: Option<String>,
    pub customer_number: Option<String>,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
}

impl CallRow {
    /// `seq` is the position of the event that created the row.
    fn of(cx: &Cx<'_, '_>, call: &Call) -> CallRow {
        CallRow {
            created: call.seq == cx.seq(),
            tenant_id: call.tenant_id.clone(),
            branch_id: call.branch_id.clone(),
            tenant_number: call.tenant_number.clone(),
            customer_number: call.customer_number.clone(),
            customer_id: call.customer_id.clone(),
            customer_name: call.customer_name.clone(),
        }
    }
}

/// Applies `merge` to the call, created by this event if it is the call's first, and, when it
/// created the row, links a booking that named this call before the call itself arrived.
fn upsert(
    cx: &Cx<'_, '_>,
    call_id: &str,
    merge: impl FnOnce(&mut Call),
) -> Result<CallRow, SqlError> {
    let row = cx.batch.calls.change(cx.conn, call_id, |slot| {
        let call = slot.get_or_insert_with(|| Call::new(call_id, cx.seq(), &cx.at));
        merge(call);
        call.updated_at.clone_from(&cx.at);
        CallRow::of(cx, call)
    })?;
    if row.created {
        link_latest_booking(cx, call_id)?;
    }
    Ok(row)
}

/// Creates the row when this is the call's first event; returns it either way.
pub(crate) fn ensure(cx: &Cx<'_, '_>, call_id: &str) -> Result<CallRow, SqlError> {
    upsert(cx, call_id, |_| {})
}

/// The call's row as it is now, for attribution triggered by another stream's event.
pub(crate) fn row(cx: &Cx<'_, '_>, call_id: &str) -> Result<Option<CallRow>, SqlError> {
    cx.batch
        .calls
        .read(cx.conn, call_id, |call| call.map(|c| CallRow::of(cx, c)))
}

/// A value the event carries replaces the row's.
pub(crate) fn newer<T: Clone>(old: &mut Option<T>, new: &Option<T>) {
    if new.is_some() {
        old.clone_from(new);
    }
}

/// The row's value stays; the event's only fills a gap.
pub(crate) fn first<T: Clone>(old: &mut Option<T>, new: &Option<T>) {
    if old.is_none() {
        old.clone_from(new);
    }
}

/// What `call_started` and `call_ended` both say: the parties, kept as sent, and the numbers
/// normalized for attribution.
fn merge_parties(call: &mut Call, parties: &CallParties, p: Parties) {
    newer(&mut call.from_number, &parties.from_number);
    newer(&mut call.to_number, &parties.to_number);
    newer(&mut call.direction, &parties.direction);
    newer(&mut call.agent_id, &parties.agent_id);
    first(&mut call.started_at, &p.started_at);
    newer(&mut call.tenant_number, p.tenant_number);
    newer(&mut call.customer_number, p.customer_number);
}

pub(crate) fn started(cx: &Cx<'_, '_>, event: &CallStarted) -> Applied {
    let p = Parties::of(cx.call_numbers, &event.parties);
    let row = upsert(cx, &event.call_id, |call| {
        merge_parties(call, &event.parties, p);
    })?;
    attribution::settle_call(cx, &event.call_id, row, hint(&event.parties), true)
}

pub(crate) fn ended(cx: &Cx<'_, '_>, event: &CallEnded) -> Applied {
    let p = Parties::of(cx.call_numbers, &event.parties);
    let outcome = &event.outcome;
    let ended_at = outcome.ended_at.map(ts).unwrap_or_else(|| cx.at.clone());
    let row = upsert(cx, &event.call_id, |call| {
        merge_parties(call, &event.parties, p);
        call.ended_at = Some(ended_at);
        call.status = if call.analyzed_at.is_none() {
            "ended"
        } else {
            "analyzed"
        }
        .to_owned();
        newer(&mut call.duration_s, &outcome.duration_s.map(|d| d as i64));
        newer(&mut call.call_status, &outcome.call_status);
        newer(&mut call.end_reason, &outcome.end_reason);
        newer(&mut call.recording_url, &outcome.recording_url);
        newer(&mut call.transcript, &outcome.transcript);
        // The analysis' summary and sentiment are the considered ones: the end's only fill gaps.
        first(&mut call.summary, &outcome.summary);
        newer(&mut call.customer_name, &outcome.customer_name);
        first(&mut call.sentiment, &outcome.sentiment);
    })?;
    attribution::settle_call(cx, &event.call_id, row, hint(&event.parties), true)
}

pub(crate) fn analyzed(cx: &Cx<'_, '_>, event: &CallAnalyzed) -> Applied {
    let analysis = &event.analysis;
    let row = upsert(cx, &event.call_id, |call| {
        call.analyzed_at = Some(cx.at.clone());
        // Before the end is recorded the call still reads `started`.
        if call.ended_at.is_some() {
            call.status = "analyzed".to_owned();
        }
        // The analysis' summary is the considered one: it wins over the end-of-call summary.
        newer(&mut call.summary, &analysis.summary);
        newer(&mut call.sentiment, &analysis.sentiment);
        newer(&mut call.successful, &analysis.successful);
    })?;
    attribution::settle_call(cx, &event.call_id, row, None, false)
}

pub(crate) fn availability_checked(cx: &Cx<'_, '_>, event: &AvailabilityChecked) -> Applied {
    let row = upsert(cx, &event.call_id, |call| call.availability_checks += 1)?;
    attribution::settle_call(cx, &event.call_id, row, None, false)
}

pub(crate) fn linked_to_booking(cx: &Cx<'_, '_>, event: &CallLinkedToBooking) -> Applied {
    let row = ensure(cx, &event.call_id)?;
    link_booking(
        cx,
        &event.call_id,
        &event.booking_uid,
        &ts(event.occurred_at),
    )?;
    attribution::settle_call(cx, &event.call_id, row, None, false)
}

/// Points the call at a booking, unless it already points at a newer one (a reschedule to a
/// new uid links the call twice; the booking's provider time says which link is current).
pub(crate) fn link_booking(
    cx: &Cx<'_, '_>,
    call_id: &str,
    booking_uid: &str,
    linked_at: &str,
) -> Result<(), SqlError> {
    let current = cx.batch.calls.read(cx.conn, call_id, |call| {
        call.is_some_and(|c| {
            c.booking_linked_at
                .as_deref()
                .is_none_or(|at| at <= linked_at)
        })
    })?;
    if !current {
        return Ok(());
    }
    let status = cx
        .batch
        .appointments
        .read(cx.conn, booking_uid, |row| row.map(|r| r.status.clone()))?;
    cx.batch.calls.change(cx.conn, call_id, |slot| {
        if let Some(call) = slot {
            call.booking_uid = Some(booking_uid.to_owned());
            call.booking_linked_at = Some(linked_at.to_owned());
            call.appointment_status = status;
            call.updated_at.clone_from(&cx.at);
        }
    })
}

/// Copies a booking's status onto the calls that point at it.
pub(crate) fn sync_appointment_status(
    cx: &Cx<'_, '_>,
    booking_uid: &str,
    status: &str,
) -> Result<(), SqlError> {
    cx.conn
        .prepare_cached("UPDATE calls SET appointment_status = ?2 WHERE booking_uid = ?1")?
        .execute(params![booking_uid, status])?;
    cx.batch.calls.mirror_by(booking_uid, |call| {
        call.appointment_status = Some(status.to_owned());
    });
    Ok(())
}

fn link_latest_booking(cx: &Cx<'_, '_>, call_id: &str) -> Result<(), SqlError> {
    // Latest: one with a creation time before one without, then the newest, then the last
    // recorded.
    let latest = appointments::bookings_of_call(cx, call_id)?
        .into_iter()
        .max_by(|a, b| {
            (a.created_at.is_some(), &a.created_at, a.seq).cmp(&(
                b.created_at.is_some(),
                &b.created_at,
                b.seq,
            ))
        });
    if let Some(booking) = latest {
        link_booking(
            cx,
            call_id,
            &booking.booking_uid,
            booking.created_at.as_deref().unwrap_or(&cx.at),
        )?;
    }
    Ok(())
}

/// Who called whom, with the numbers normalized to E.164 for attribution and for the customer
/// (`from_number` / `to_number` are kept as sent).
struct Parties<'a> {
    tenant_number: &'a Option<String>,
    customer_number: &'a Option<String>,
    started_at: Option<String>,
}

impl<'a> Parties<'a> {
    /// `numbers`: the event's, normalized where it was decoded.
    fn of(numbers: &'a CallNumbers, parties: &CallParties) -> Parties<'a> {
        Parties {
            tenant_number: &numbers.tenant_number,
            customer_number: &numbers.customer_number,
            started_at: parties.started_at.map(ts),
        }
    }
}

/// The owner the intake routed the delivery to, which saves looking the number up. Not taken
/// for an outbound call: deliveries stored before 2026-12-07 routed those by the number called
/// (the customer's, which another tenant may own), and outbound calls are few enough to look
/// up by the number they came from.
fn hint(parties: &CallParties) -> Option<(&str, Option<&str>)> {
    if parties.outbound() {
        return None;
    }
    parties
        .tenant_id
        .as_deref()
        .map(|tenant| (tenant, parties.branch_id.as_deref()))
}
