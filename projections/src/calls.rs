//! The calls read model: one row per call, as `GET /api/calls/{id}` returns it.
//!
//! Any call event may be the first one seen (Retell may skip `call_started`, and deliveries
//! arrive out of order), so every handler upserts the row and only fills what it knows.
//! Status: `started` until an end is recorded, then `ended`, then `analyzed` once both the end
//! and the analysis are in, whatever order they came in.

use rusqlite::{OptionalExtension, params};
use switchboard_domain::event::{
    AvailabilityChecked, CallAnalyzed, CallEnded, CallLinkedToBooking, CallParties, CallStarted,
};

use crate::apply::{Applied, Cx, ts};
use crate::attribution;

/// Creates the row when this is the call's first event; true when it did.
pub(crate) fn ensure(cx: &Cx<'_>, call_id: &str) -> Result<bool, rusqlite::Error> {
    let created = cx
        .conn
        .prepare_cached(
            "INSERT INTO calls (call_id, seq, status, updated_at) VALUES (?1, ?2, 'started', ?3)
             ON CONFLICT (call_id) DO NOTHING",
        )?
        .execute(params![call_id, cx.seq(), cx.at])?;
    if created == 1 {
        // A booking that named this call before the call itself arrived: link it now.
        link_latest_booking(cx, call_id)?;
    }
    Ok(created == 1)
}

pub(crate) fn started(cx: &Cx<'_>, event: &CallStarted) -> Applied {
    ensure(cx, &event.call_id)?;
    parties(cx, &event.call_id, &event.parties)?;
    attribution::settle_call(cx, &event.call_id, hint(&event.parties), true)
}

pub(crate) fn ended(cx: &Cx<'_>, event: &CallEnded) -> Applied {
    ensure(cx, &event.call_id)?;
    parties(cx, &event.call_id, &event.parties)?;
    let outcome = &event.outcome;
    let ended_at = outcome.ended_at.map(ts).unwrap_or_else(|| cx.at.clone());
    cx.conn
        .prepare_cached(
            "UPDATE calls SET
                 ended_at = ?2,
                 status = CASE WHEN analyzed_at IS NULL THEN 'ended' ELSE 'analyzed' END,
                 duration_s = COALESCE(?3, duration_s),
                 call_status = COALESCE(?4, call_status),
                 end_reason = COALESCE(?5, end_reason),
                 recording_url = COALESCE(?6, recording_url),
                 transcript = COALESCE(?7, transcript),
                 summary = COALESCE(summary, ?8),
                 customer_name = COALESCE(?9, customer_name),
                 sentiment = COALESCE(sentiment, ?10),
                 updated_at = ?11
             WHERE call_id = ?1",
        )?
        .execute(params![
            event.call_id,
            ended_at,
            outcome.duration_s.map(|d| d as i64),
            outcome.call_status,
            outcome.end_reason,
            outcome.recording_url,
            outcome.transcript,
            outcome.summary,
            outcome.customer_name,
            outcome.sentiment,
            cx.at,
        ])?;
    attribution::settle_call(cx, &event.call_id, hint(&event.parties), true)
}

pub(crate) fn analyzed(cx: &Cx<'_>, event: &CallAnalyzed) -> Applied {
    ensure(cx, &event.call_id)?;
    let analysis = &event.analysis;
    // The analysis' summary is the considered one: it wins over the end-of-call summary.
    cx.conn
        .prepare_cached(
            "UPDATE calls SET
                 analyzed_at = ?2,
                 status = CASE WHEN ended_at IS NULL THEN status ELSE 'analyzed' END,
                 summary = COALESCE(?3, summary),
                 sentiment = COALESCE(?4, sentiment),
                 successful = COALESCE(?5, successful),
                 updated_at = ?2
             WHERE call_id = ?1",
        )?
        .execute(params![
            event.call_id,
            cx.at,
            analysis.summary,
            analysis.sentiment,
            analysis.successful,
        ])?;
    attribution::settle_call(cx, &event.call_id, None, false)
}

pub(crate) fn availability_checked(cx: &Cx<'_>, event: &AvailabilityChecked) -> Applied {
    ensure(cx, &event.call_id)?;
    cx.conn
        .prepare_cached(
            "UPDATE calls SET availability_checks = availability_checks + 1, updated_at = ?2
             WHERE call_id = ?1",
        )?
        .execute(params![event.call_id, cx.at])?;
    attribution::settle_call(cx, &event.call_id, None, false)
}

pub(crate) fn linked_to_booking(cx: &Cx<'_>, event: &CallLinkedToBooking) -> Applied {
    ensure(cx, &event.call_id)?;
    link_booking(
        cx,
        &event.call_id,
        &event.booking_uid,
        &ts(event.occurred_at),
    )?;
    attribution::settle_call(cx, &event.call_id, None, false)
}

/// Points the call at a booking, unless it already points at a newer one (a reschedule to a
/// new uid links the call twice; the booking's provider time says which link is current).
pub(crate) fn link_booking(
    cx: &Cx<'_>,
    call_id: &str,
    booking_uid: &str,
    linked_at: &str,
) -> Result<(), rusqlite::Error> {
    cx.conn
        .prepare_cached(
            "UPDATE calls SET
                 booking_uid = ?2,
                 booking_linked_at = ?3,
                 appointment_status =
                     (SELECT status FROM appointments WHERE appointment_id = ?2),
                 updated_at = ?4
             WHERE call_id = ?1 AND (booking_linked_at IS NULL OR booking_linked_at <= ?3)",
        )?
        .execute(params![call_id, booking_uid, linked_at, cx.at])?;
    Ok(())
}

/// Copies a booking's status onto the calls that point at it.
pub(crate) fn sync_appointment_status(
    cx: &Cx<'_>,
    booking_uid: &str,
    status: &str,
) -> Result<(), rusqlite::Error> {
    cx.conn
        .prepare_cached("UPDATE calls SET appointment_status = ?2 WHERE booking_uid = ?1")?
        .execute(params![booking_uid, status])?;
    Ok(())
}

fn link_latest_booking(cx: &Cx<'_>, call_id: &str) -> Result<(), rusqlite::Error> {
    let booking: Option<(String, Option<String>)> = cx
        .conn
        .prepare_cached(
            "SELECT booking_uid, created_at FROM appointments
             WHERE call_id = ?1 AND booking_uid IS NOT NULL
             ORDER BY created_at DESC, seq DESC LIMIT 1",
        )?
        .query_row([call_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((uid, created_at)) = booking {
        link_booking(cx, call_id, &uid, created_at.as_deref().unwrap_or(&cx.at))?;
    }
    Ok(())
}

/// Records who called whom; the numbers are normalized to E.164 for attribution and for the
/// customer, and kept as sent in `from_number` / `to_number`.
fn parties(cx: &Cx<'_>, call_id: &str, parties: &CallParties) -> Result<(), rusqlite::Error> {
    let outbound = parties.direction.as_deref() == Some("outbound");
    let (business, caller) = if outbound {
        (&parties.from_number, &parties.to_number)
    } else {
        (&parties.to_number, &parties.from_number)
    };
    let tenant_number = cx.phones.normalize(business.as_deref());
    let customer_number = cx.phones.normalize(caller.as_deref());
    cx.conn
        .prepare_cached(
            "UPDATE calls SET
                 from_number = COALESCE(?2, from_number),
                 to_number = COALESCE(?3, to_number),
                 direction = COALESCE(?4, direction),
                 agent_id = COALESCE(?5, agent_id),
                 started_at = COALESCE(started_at, ?6),
                 tenant_number = COALESCE(?7, tenant_number),
                 customer_number = COALESCE(?8, customer_number),
                 updated_at = ?9
             WHERE call_id = ?1",
        )?
        .execute(params![
            call_id,
            parties.from_number,
            parties.to_number,
            parties.direction,
            parties.agent_id,
            parties.started_at.map(ts),
            tenant_number,
            customer_number,
            cx.at,
        ])?;
    Ok(())
}

fn hint(parties: &CallParties) -> Option<(&str, Option<&str>)> {
    parties
        .tenant_id
        .as_deref()
        .map(|tenant| (tenant, parties.branch_id.as_deref()))
}
