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

use crate::appointment_rows::{Appointment, DELETE_APPOINTMENT, push_entry};
use crate::sql::SqlError;
use serde_json::json;
use switchboard_domain::event::{
    AppointmentRequested, BookingCancelled, BookingCreated, BookingLinkedToCall, BookingRescheduled,
};

use crate::apply::{Applied, Cx, ts};
use crate::calls::{first, newer};
use crate::{attribution, calls, customers, tenants};

pub fn request_id(call_id: &str) -> String {
    ["request-", call_id].concat()
}

/// A booking of a call, as the lookups by call need it.
pub(crate) struct CallBooking {
    pub appointment_id: String,
    pub booking_uid: String,
    pub created_at: Option<String>,
    pub seq: i64,
    /// Still without tenant, branch or customer.
    pub unsettled: bool,
}

/// The call's bookings, through `appointments_booked_by_call`; its open request, if any, is
/// not among them (requests are not in that index: it is `request-{call_id}`, found by id).
/// Unordered: a call has a few at most, and its callers pick or sort in Rust, because
/// `ORDER BY` here made SQLite open a temporary table or a sorter for every call.
pub(crate) fn bookings_of_call(
    cx: &Cx<'_, '_>,
    call_id: &str,
) -> Result<Vec<CallBooking>, SqlError> {
    let held = &cx.batch.appointments;
    // The table's rows, less the ones the batch holds: their held version is the current one
    // (it may point at another call by now, or be gone), and is found through the batch's index.
    let mut bookings: Vec<CallBooking> = cx
        .conn
        .prepare_cached(
            "SELECT appointment_id, booking_uid, created_at, seq,
                    tenant_id IS NULL OR branch_id IS NULL OR customer_id IS NULL
             FROM appointments WHERE call_id = ?1 AND booking_uid IS NOT NULL",
        )?
        .query_map([call_id], |r| {
            Ok(CallBooking {
                appointment_id: r.get(0)?,
                booking_uid: r.get(1)?,
                created_at: r.get(2)?,
                seq: r.get(3)?,
                unsettled: r.get::<i64>(4)? != 0,
            })
        })?
        .filter(|booking| {
            booking
                .as_ref()
                .map_or(true, |b| !held.holds(&b.appointment_id))
        })
        .collect::<Result<_, _>>()?;
    held.each_by(call_id, |row| {
        if let Some(uid) = &row.booking_uid {
            bookings.push(CallBooking {
                appointment_id: row.appointment_id.clone(),
                booking_uid: uid.clone(),
                created_at: row.created_at.clone(),
                seq: row.seq,
                unsettled: row.tenant_id.is_none()
                    || row.branch_id.is_none()
                    || row.customer_id.is_none(),
            });
        }
    });
    Ok(bookings)
}

/// Creates the booking's row on its first event (which may be a cancellation that overtook
/// the creation); true when it did.
fn ensure(cx: &Cx<'_, '_>, uid: &str) -> Result<bool, SqlError> {
    cx.batch.appointments.change(cx.conn, uid, |slot| {
        if slot.is_some() {
            return false;
        }
        let mut row = Appointment::new(uid, cx.seq(), "booked", &cx.at);
        row.booking_uid = Some(uid.to_owned());
        *slot = Some(row);
        true
    })
}

fn push_history(cx: &Cx<'_, '_>, id: &str, entry: serde_json::Value) -> Applied {
    // Straight into a buffer: `Value`'s `Display` (`to_string`) writes through `fmt`, token
    // by token, at about twice the instructions.
    let entry = serde_json::to_string(&entry)?;
    cx.batch.appointments.update(cx.conn, id, |row| {
        row.push_history(&entry);
        row.updated_at.clone_from(&cx.at);
    })?;
    Ok(())
}

fn status_of(cx: &Cx<'_, '_>, id: &str) -> Result<Option<String>, SqlError> {
    cx.batch
        .appointments
        .read(cx.conn, id, |row| row.map(|r| r.status.clone()))
}

pub(crate) fn created(cx: &Cx<'_, '_>, event: &BookingCreated) -> Applied {
    let uid = &event.booking_uid;
    ensure(cx, uid)?;
    let d = &event.details;
    let attendee = d.attendees.first();
    let organizer = d.organizer.as_ref();
    cx.batch.appointments.update(cx.conn, uid, |row| {
        if row.status != "cancelled" && row.status != "rescheduled" {
            row.status = "booked".to_owned();
        }
        first(&mut row.start_at, &Some(ts(d.start)));
        first(&mut row.end_at, &Some(ts(d.end)));
        newer(&mut row.service, &d.service);
        newer(&mut row.staff, &organizer.and_then(|o| o.name.clone()));
        row.title.clone_from(&d.title);
        row.location.clone_from(&d.location);
        row.organizer_id = organizer.and_then(|o| o.id);
        row.attendee_name = attendee.and_then(|a| a.name.clone());
        row.attendee_email = attendee.and_then(|a| a.email.clone());
        row.attendee_phone = attendee.and_then(|a| a.phone.clone());
        newer(&mut row.rescheduled_from, &event.rescheduled_from);
        row.created_at = Some(ts(event.occurred_at));
    })?;
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
        cx.batch.appointments.update(cx.conn, old, |row| {
            first(&mut row.rescheduled_to, &Some(uid.clone()));
            if row.status != "cancelled" {
                row.status = "rescheduled".to_owned();
            }
        })?;
        if let Some(status) = status_of(cx, old)? {
            calls::sync_appointment_status(cx, old, &status)?;
        }
    }
    if let Some(call_id) = &event.call_id {
        link(cx, uid, call_id, &ts(event.occurred_at))?;
    }
    settle_booking(cx, uid)
}

pub(crate) fn rescheduled(cx: &Cx<'_, '_>, event: &BookingRescheduled) -> Applied {
    let uid = &event.booking_uid;
    ensure(cx, uid)?;
    cx.batch.appointments.update(cx.conn, uid, |row| {
        if row.status != "cancelled" {
            row.status = "rescheduled".to_owned();
        }
        newer(&mut row.start_at, &event.start.map(ts));
        newer(&mut row.end_at, &event.end.map(ts));
        newer(&mut row.rescheduled_to, &event.rescheduled_to);
    })?;
    push_history(
        cx,
        uid,
        json!({"at": cx.at, "change": "rescheduled",
               "previous_start": event.previous_start.map(ts), "previous_end": event.previous_end.map(ts),
               "start": event.start.map(ts), "end": event.end.map(ts),
               "reason": event.reason, "by": event.rescheduled_by, "rescheduled_to": event.rescheduled_to}),
    )?;
    if let Some(new) = &event.rescheduled_to {
        cx.batch.appointments.update(cx.conn, new, |row| {
            first(&mut row.rescheduled_from, &Some(uid.clone()));
        })?;
    }
    if let Some(status) = status_of(cx, uid)? {
        calls::sync_appointment_status(cx, uid, &status)?;
    }
    settle_booking(cx, uid)
}

pub(crate) fn cancelled(cx: &Cx<'_, '_>, event: &BookingCancelled) -> Applied {
    let uid = &event.booking_uid;
    ensure(cx, uid)?;
    cx.batch.appointments.update(cx.conn, uid, |row| {
        row.status = "cancelled".to_owned();
        newer(&mut row.cancel_reason, &event.reason);
    })?;
    push_history(
        cx,
        uid,
        json!({"at": cx.at, "change": "cancelled", "reason": event.reason, "by": event.cancelled_by}),
    )?;
    calls::sync_appointment_status(cx, uid, "cancelled")?;
    settle_booking(cx, uid)
}

pub(crate) fn linked_to_call(cx: &Cx<'_, '_>, event: &BookingLinkedToCall) -> Applied {
    ensure(cx, &event.booking_uid)?;
    link(
        cx,
        &event.booking_uid,
        &event.call_id,
        &ts(event.occurred_at),
    )?;
    settle_booking(cx, &event.booking_uid)
}

pub(crate) fn requested(cx: &Cx<'_, '_>, event: &AppointmentRequested) -> Applied {
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
    // The first booking recorded for the call.
    let booked = bookings_of_call(cx, call_id)?
        .into_iter()
        .min_by_key(|booking| booking.seq)
        .map(|booking| booking.appointment_id);
    let id = match booked {
        // The booking overtook the request: the request becomes part of its history.
        Some(uid) => {
            cx.batch.appointments.update(cx.conn, &uid, |row| {
                first(&mut row.service, &form.service);
            })?;
            uid
        }
        None => {
            let id = request_id(call_id);
            let requested_start = event.requested_start.map(ts);
            cx.batch.appointments.change(cx.conn, &id, |slot| {
                let row = slot.get_or_insert_with(|| {
                    let mut row = Appointment::new(&id, cx.seq(), "requested", &cx.at);
                    row.call_id = Some(call_id.clone());
                    row.created_at = Some(cx.at.clone());
                    row
                });
                newer(&mut row.start_at, &requested_start);
                newer(&mut row.service, &form.service);
                newer(&mut row.staff, &form.staff_wish);
                newer(&mut row.attendee_name, &form.name);
                newer(&mut row.attendee_email, &form.email);
                newer(&mut row.attendee_phone, &form.phone);
            })?;
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
fn link(cx: &Cx<'_, '_>, uid: &str, call_id: &str, linked_at: &str) -> Result<(), SqlError> {
    cx.batch.appointments.update(cx.conn, uid, |row| {
        row.call_id = Some(call_id.to_owned());
    })?;
    fulfil_request(cx, uid, call_id)?;
    calls::link_booking(cx, call_id, uid, linked_at)
}

/// Moves the request `request-{call_id}` into the booking: history first, then what the
/// booking does not say itself; the request's row and its counts go away.
fn fulfil_request(cx: &Cx<'_, '_>, uid: &str, call_id: &str) -> Result<(), SqlError> {
    let request_id = request_id(call_id);
    let Some(request) = cx
        .batch
        .appointments
        .read(cx.conn, &request_id, |row| row.cloned())?
    else {
        return Ok(());
    };
    let booking_history = cx
        .batch
        .appointments
        .read(cx.conn, uid, |row| row.map(|r| r.history.clone()))?
        .ok_or(SqlError::NoRows)?;
    let merged = merge_histories(&request.history, &booking_history);
    cx.batch.appointments.update(cx.conn, uid, |row| {
        row.history = merged;
        first(&mut row.service, &request.service);
    })?;
    cx.batch
        .appointments
        .delete(cx.conn, &request_id, DELETE_APPOINTMENT)?;
    if let Some(tenant) = &request.tenant_id {
        tenants::add_appointment(cx, tenant, true, request.branch_id.as_deref(), -1)?;
    }
    if let Some(customer) = &request.customer_id {
        customers::count_appointment(cx, customer, -1)?;
    }
    Ok(())
}

/// A reschedule to a new uid: the new booking's history starts with the old one's.
fn carry_over_history(cx: &Cx<'_, '_>, old: &str, new: &str) -> Result<(), SqlError> {
    let Some(old_history) = cx
        .batch
        .appointments
        .read(cx.conn, old, |row| row.map(|r| r.history.clone()))?
    else {
        return Ok(());
    };
    let new_history = cx
        .batch
        .appointments
        .read(cx.conn, new, |row| row.map(|r| r.history.clone()))?
        .ok_or(SqlError::NoRows)?;
    let merged = merge_histories(&old_history, &new_history);
    cx.batch
        .appointments
        .update(cx.conn, new, |row| row.history = merged)
}

/// The first list's entries, then the second's. Histories are this crate's own compact JSON
/// lists, so each entry is kept as its text (parsing them into values and writing them back
/// cost ~30,000 instructions a merge); one that does not parse (edited by hand) is kept as a
/// single string entry rather than dropped.
fn merge_histories(first: &str, second: &str) -> String {
    let mut merged = String::with_capacity(first.len() + second.len());
    merged.push_str("[]");
    for history in [first, second] {
        match serde_json::from_str::<Vec<&serde_json::value::RawValue>>(history) {
            Ok(entries) => {
                for entry in entries {
                    push_entry(&mut merged, entry.get());
                }
            }
            Err(_) => push_entry(
                &mut merged,
                &serde_json::Value::String(history.to_owned()).to_string(),
            ),
        }
    }
    merged
}

fn settle_booking(cx: &Cx<'_, '_>, uid: &str) -> Applied {
    attribution::settle_appointment(cx, uid, true)
}

#[cfg(test)]
mod tests {
    use super::merge_histories;

    /// What merging was before it kept entries as text: both lists parsed, written back.
    fn reparsed(first: &str, second: &str) -> String {
        let mut list: Vec<serde_json::Value> = serde_json::from_str(first).unwrap();
        list.extend(serde_json::from_str::<Vec<serde_json::Value>>(second).unwrap());
        serde_json::Value::Array(list).to_string()
    }

    #[test]
    fn merged_histories_are_the_first_lists_entries_then_the_seconds() {
        // Written as push_history writes them.
        let request = serde_json::json!([{"at": "2026-01-02T10:00:00.000Z", "change": "requested",
            "date": "2026-01-09", "name": "Zoë \"Z\" \\ \u{1}"}])
        .to_string();
        let booking = serde_json::json!([
            {"at": "2026-01-02T10:05:00.000Z", "change": "created", "end": null, "n": 1.5e-7},
            {"at": "x", "change": "cancelled", "reason": null}
        ])
        .to_string();
        for (first, second) in [
            (request.as_str(), booking.as_str()),
            ("[]", &booking),
            (&request, "[]"),
            ("[]", "[]"),
        ] {
            assert_eq!(merge_histories(first, second), reparsed(first, second));
        }
    }

    #[test]
    fn a_history_that_does_not_parse_is_kept_as_one_string_entry() {
        assert_eq!(
            merge_histories("edited [by hand", r#"[{"change":"created"}]"#),
            r#"["edited [by hand",{"change":"created"}]"#
        );
    }
}
