//! The appointments read model: one row per booking, or per appointment request a call made
//! that no booking has fulfilled yet.
//!
//! * A request (`AppointmentRequested` on a call) is the row `request-{call_id}`, status
//!   `requested`. When a booking links to that call, the request is folded into the booking's
//!   row (its history first) and its own row goes away: one appointment, one row.
//! * Status: `booked` → `rescheduled`* → `cancelled`. Cancelled is terminal here as in the
//!   aggregate: no later event moves a cancelled booking back.
//! * A Cal.com reschedule makes a new uid: the old row reads `rescheduled` with
//!   `rescheduled_to`, the new one `rescheduled_from` and carries the old one's history.
//! * Every change appends one entry to `history` (JSON list), in fold order.

use crate::sql::{OptionalExtension, SqlError, params};
use serde_json::json;
use switchboard_domain::event::{
    AppointmentRequested, BookingCancelled, BookingCreated, BookingLinkedToCall, BookingRescheduled,
};

use crate::apply::{Applied, Cx, ts};
use crate::{attribution, calls, customers, tenants};

pub fn request_id(call_id: &str) -> String {
    format!("request-{call_id}")
}

/// Creates the booking's row on its first event (which may be a cancellation that overtook
/// the creation); true when it did.
fn ensure(cx: &Cx<'_>, uid: &str) -> Result<bool, SqlError> {
    let created = cx
        .conn
        .prepare_cached(
            "INSERT INTO appointments (appointment_id, seq, booking_uid, status, updated_at)
             VALUES (?1, ?2, ?1, 'booked', ?3)
             ON CONFLICT (appointment_id) DO NOTHING",
        )?
        .execute(params![uid, cx.seq(), cx.at])?;
    Ok(created == 1)
}

fn push_history(cx: &Cx<'_>, id: &str, entry: serde_json::Value) -> Result<(), SqlError> {
    cx.conn
        .prepare_cached(
            // `history` is compact JSON text only this crate writes, so appending is text work
            // both SQLite and PostgreSQL do the same way.
            "UPDATE appointments SET history = CASE WHEN history = '[]' THEN '[' || ?2 || ']'
                     ELSE substr(history, 1, length(history) - 1) || ',' || ?2 || ']' END,
                 updated_at = ?3
             WHERE appointment_id = ?1",
        )?
        .execute(params![id, entry.to_string(), cx.at])?;
    Ok(())
}

fn status_of(cx: &Cx<'_>, id: &str) -> Result<Option<String>, SqlError> {
    cx.conn
        .prepare_cached("SELECT status FROM appointments WHERE appointment_id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()
}

pub(crate) fn created(cx: &Cx<'_>, event: &BookingCreated) -> Applied {
    let uid = &event.booking_uid;
    ensure(cx, uid)?;
    let d = &event.details;
    let attendee = d.attendees.first();
    let organizer = d.organizer.as_ref();
    cx.conn
        .prepare_cached(
            "UPDATE appointments SET
                 status = CASE WHEN status IN ('cancelled', 'rescheduled') THEN status ELSE 'booked' END,
                 start_at = COALESCE(start_at, ?2),
                 end_at = COALESCE(end_at, ?3),
                 service = COALESCE(?4, service),
                 staff = COALESCE(?5, staff),
                 title = ?6,
                 location = ?7,
                 organizer_id = ?8,
                 attendee_name = ?9,
                 attendee_email = ?10,
                 attendee_phone = ?11,
                 rescheduled_from = COALESCE(?12, rescheduled_from),
                 created_at = ?13
             WHERE appointment_id = ?1",
        )?
        .execute(params![
            uid,
            ts(d.start),
            ts(d.end),
            d.service,
            organizer.and_then(|o| o.name.clone()),
            d.title,
            d.location,
            organizer.and_then(|o| o.id),
            attendee.and_then(|a| a.name.clone()),
            attendee.and_then(|a| a.email.clone()),
            attendee.and_then(|a| a.phone.clone()),
            event.rescheduled_from,
            ts(event.occurred_at),
        ])?;
    if let Some(old) = &event.rescheduled_from {
        carry_over_history(cx, old, uid)?;
    }
    push_history(
        cx,
        uid,
        json!({"at": cx.at, "change": "created", "start": ts(d.start), "end": ts(d.end),
               "rescheduled_from": event.rescheduled_from}),
    )?;
    if let Some(old) = &event.rescheduled_from {
        // The old booking may have no BookingRescheduled of its own yet; the new uid is
        // enough to say where it went.
        cx.conn
            .prepare_cached(
                "UPDATE appointments SET rescheduled_to = COALESCE(rescheduled_to, ?2),
                     status = CASE WHEN status = 'cancelled' THEN status ELSE 'rescheduled' END
                 WHERE appointment_id = ?1",
            )?
            .execute(params![old, uid])?;
        if let Some(status) = status_of(cx, old)? {
            calls::sync_appointment_status(cx, old, &status)?;
        }
    }
    if let Some(call_id) = &event.call_id {
        link(cx, uid, call_id, &ts(event.occurred_at))?;
    }
    settle_booking(cx, uid)
}

pub(crate) fn rescheduled(cx: &Cx<'_>, event: &BookingRescheduled) -> Applied {
    let uid = &event.booking_uid;
    ensure(cx, uid)?;
    cx.conn
        .prepare_cached(
            "UPDATE appointments SET
                 status = CASE WHEN status = 'cancelled' THEN status ELSE 'rescheduled' END,
                 start_at = COALESCE(?2, start_at),
                 end_at = COALESCE(?3, end_at),
                 rescheduled_to = COALESCE(?4, rescheduled_to)
             WHERE appointment_id = ?1",
        )?
        .execute(params![
            uid,
            event.start.map(ts),
            event.end.map(ts),
            event.rescheduled_to
        ])?;
    push_history(
        cx,
        uid,
        json!({"at": cx.at, "change": "rescheduled",
               "previous_start": event.previous_start.map(ts), "previous_end": event.previous_end.map(ts),
               "start": event.start.map(ts), "end": event.end.map(ts),
               "reason": event.reason, "by": event.rescheduled_by, "rescheduled_to": event.rescheduled_to}),
    )?;
    if let Some(new) = &event.rescheduled_to {
        cx.conn
            .prepare_cached(
                "UPDATE appointments SET rescheduled_from = COALESCE(rescheduled_from, ?2)
                 WHERE appointment_id = ?1",
            )?
            .execute(params![new, uid])?;
    }
    if let Some(status) = status_of(cx, uid)? {
        calls::sync_appointment_status(cx, uid, &status)?;
    }
    settle_booking(cx, uid)
}

pub(crate) fn cancelled(cx: &Cx<'_>, event: &BookingCancelled) -> Applied {
    let uid = &event.booking_uid;
    ensure(cx, uid)?;
    cx.conn
        .prepare_cached(
            "UPDATE appointments SET status = 'cancelled', cancel_reason = COALESCE(?2, cancel_reason)
             WHERE appointment_id = ?1",
        )?
        .execute(params![uid, event.reason])?;
    push_history(
        cx,
        uid,
        json!({"at": cx.at, "change": "cancelled", "reason": event.reason, "by": event.cancelled_by}),
    )?;
    calls::sync_appointment_status(cx, uid, "cancelled")?;
    settle_booking(cx, uid)
}

pub(crate) fn linked_to_call(cx: &Cx<'_>, event: &BookingLinkedToCall) -> Applied {
    ensure(cx, &event.booking_uid)?;
    link(
        cx,
        &event.booking_uid,
        &event.call_id,
        &ts(event.occurred_at),
    )?;
    settle_booking(cx, &event.booking_uid)
}

pub(crate) fn requested(cx: &Cx<'_>, event: &AppointmentRequested) -> Applied {
    let call_id = &event.call_id;
    calls::ensure(cx, call_id)?;
    let form = &event.form;
    if let Some(name) = &form.name {
        cx.batch.calls.change(cx.conn, call_id, |slot| {
            if let Some(call) = slot {
                call.customer_name.get_or_insert_with(|| name.clone());
            }
        })?;
    }
    let entry = json!({"at": cx.at, "change": "requested", "date": form.date, "time": form.time,
        "service": form.service, "staff_wish": form.staff_wish, "preferences": form.preferences,
        "requested_start": event.requested_start.map(ts), "time_zone": event.time_zone});
    let booked: Option<String> = cx
        .conn
        .prepare_cached(
            "SELECT appointment_id FROM appointments
             WHERE call_id = ?1 AND booking_uid IS NOT NULL ORDER BY seq LIMIT 1",
        )?
        .query_row([call_id], |r| r.get(0))
        .optional()?;
    let id = match booked {
        // The booking overtook the request: the request becomes part of its history.
        Some(uid) => {
            cx.conn
                .prepare_cached(
                    "UPDATE appointments SET service = COALESCE(service, ?2) WHERE appointment_id = ?1",
                )?
                .execute(params![uid, form.service])?;
            uid
        }
        None => {
            let id = request_id(call_id);
            cx.conn
                .prepare_cached(
                    "INSERT INTO appointments (appointment_id, seq, call_id, status, start_at,
                         service, staff, attendee_name, attendee_email, attendee_phone,
                         created_at, updated_at)
                     VALUES (?1, ?2, ?3, 'requested', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
                     ON CONFLICT (appointment_id) DO UPDATE SET
                         start_at = COALESCE(excluded.start_at, appointments.start_at),
                         service = COALESCE(excluded.service, appointments.service),
                         staff = COALESCE(excluded.staff, appointments.staff),
                         attendee_name = COALESCE(excluded.attendee_name, appointments.attendee_name),
                         attendee_email = COALESCE(excluded.attendee_email, appointments.attendee_email),
                         attendee_phone = COALESCE(excluded.attendee_phone, appointments.attendee_phone)",
                )?
                .execute(params![
                    id,
                    cx.seq(),
                    call_id,
                    event.requested_start.map(ts),
                    form.service,
                    form.staff_wish,
                    form.name,
                    form.email,
                    form.phone,
                    cx.at,
                ])?;
            id
        }
    };
    push_history(cx, &id, entry)?;
    attribution::settle_appointment(cx, &id, false)?;
    match calls::row(cx, call_id)? {
        Some(call) => attribution::settle_call(cx, call_id, call, None, false),
        None => Ok(()),
    }
}

/// Connects a booking and the call it came from, both ways, and folds the call's open request
/// into the booking.
fn link(cx: &Cx<'_>, uid: &str, call_id: &str, linked_at: &str) -> Result<(), SqlError> {
    cx.conn
        .prepare_cached("UPDATE appointments SET call_id = ?2 WHERE appointment_id = ?1")?
        .execute(params![uid, call_id])?;
    fulfil_request(cx, uid, call_id)?;
    calls::link_booking(cx, call_id, uid, linked_at)
}

/// What a request row brings into the booking that fulfils it.
struct OpenRequest {
    history: String,
    service: Option<String>,
    tenant: Option<String>,
    branch: Option<String>,
    customer: Option<String>,
}

/// Moves the request `request-{call_id}` into the booking: history first, then what the
/// booking does not say itself; the request's row and its counts go away.
fn fulfil_request(cx: &Cx<'_>, uid: &str, call_id: &str) -> Result<(), SqlError> {
    let request = request_id(call_id);
    let found = cx
        .conn
        .prepare_cached(
            "SELECT history, service, tenant_id, branch_id, customer_id
             FROM appointments WHERE appointment_id = ?1",
        )?
        .query_row([&request], |r| {
            Ok(OpenRequest {
                history: r.get(0)?,
                service: r.get(1)?,
                tenant: r.get(2)?,
                branch: r.get(3)?,
                customer: r.get(4)?,
            })
        })
        .optional()?;
    let Some(OpenRequest {
        history,
        service,
        tenant,
        branch,
        customer,
    }) = found
    else {
        return Ok(());
    };
    let booking_history: String = cx
        .conn
        .prepare_cached("SELECT history FROM appointments WHERE appointment_id = ?1")?
        .query_row([uid], |r| r.get(0))?;
    let merged = merge_histories(&history, &booking_history);
    cx.conn
        .prepare_cached(
            "UPDATE appointments SET history = ?2, service = COALESCE(service, ?3)
             WHERE appointment_id = ?1",
        )?
        .execute(params![uid, merged, service])?;
    cx.conn
        .prepare_cached("DELETE FROM appointments WHERE appointment_id = ?1")?
        .execute([&request])?;
    if let Some(tenant) = tenant {
        tenants::add_appointment(cx, &tenant, true, branch.as_deref(), -1)?;
    }
    if let Some(customer) = customer {
        customers::count_appointment(cx, &customer, -1)?;
    }
    Ok(())
}

/// A reschedule to a new uid: the new booking's history starts with the old one's.
fn carry_over_history(cx: &Cx<'_>, old: &str, new: &str) -> Result<(), SqlError> {
    let old_history: Option<String> = cx
        .conn
        .prepare_cached("SELECT history FROM appointments WHERE appointment_id = ?1")?
        .query_row([old], |r| r.get(0))
        .optional()?;
    let Some(old_history) = old_history else {
        return Ok(());
    };
    let new_history: String = cx
        .conn
        .prepare_cached("SELECT history FROM appointments WHERE appointment_id = ?1")?
        .query_row([new], |r| r.get(0))?;
    cx.conn
        .prepare_cached("UPDATE appointments SET history = ?2 WHERE appointment_id = ?1")?
        .execute(params![new, merge_histories(&old_history, &new_history)])?;
    Ok(())
}

/// The first list's entries, then the second's. Histories are this crate's own JSON lists; one
/// that does not parse (edited by hand) is kept as a single raw entry rather than dropped.
fn merge_histories(first: &str, second: &str) -> String {
    let entries = |text: &str| match serde_json::from_str::<Vec<serde_json::Value>>(text) {
        Ok(list) => list,
        Err(_) => vec![serde_json::Value::String(text.to_owned())],
    };
    let mut merged = entries(first);
    merged.extend(entries(second));
    serde_json::Value::Array(merged).to_string()
}

fn settle_booking(cx: &Cx<'_>, uid: &str) -> Applied {
    attribution::settle_appointment(cx, uid, true)
}
