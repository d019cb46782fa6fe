//! The calls read model: one row per call, as `GET /api/calls/{id}` returns it.
//!
//! Any call event may be the first one seen (Retell may skip `call_started`, and deliveries
//! arrive out of order), so every handler upserts the row and only fills what it knows.
//! Status: `started` until an end is recorded, then `ended`, then `analyzed` once both the end
//! and the analysis are in, whatever order they came in.

use crate::sql::{OptionalExtension, SqlError, SqlResult, params};
use switchboard_domain::event::{
    AvailabilityChecked, CallAnalyzed, CallEnded, CallLinkedToBooking, CallParties, CallStarted,
};

use crate::apply::{Applied, Cx, ts};
use crate::attribution;

/// What attribution needs to know about a call, as the statement that changed it returned it.
pub(crate) struct CallRow {
    /// This event created the row.
    pub created: bool,
    pub tenant_id: Option<String>,
    pub branch_id: Option<String>,
    pub tenant_number: Option<String>,
    pub customer_number: Option<String>,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
}

/// Every upsert below returns the row, so attribution needs no second read. `seq` is only set
/// on insert: it equals this event's position exactly when this event created the row.
macro_rules! returning_row {
    ($sql:literal) => {
        concat!(
            $sql,
            " RETURNING seq, tenant_id, branch_id, tenant_number, customer_number, customer_id, customer_name"
        )
    };
}

fn returned(cx: &Cx<'_>, row: &crate::sql::Row<'_>) -> SqlResult<CallRow> {
    Ok(CallRow {
        created: row.get::<i64>(0)? == cx.seq(),
        tenant_id: row.get(1)?,
        branch_id: row.get(2)?,
        tenant_number: row.get(3)?,
        customer_number: row.get(4)?,
        customer_id: row.get(5)?,
        customer_name: row.get(6)?,
    })
}

/// Runs one of the upserts and, when it created the row, links a booking that named this
/// call before the call itself arrived.
fn upsert(
    cx: &Cx<'_>,
    sql: &'static str,
    call_id: &str,
    args: &[&dyn crate::sql::Param],
) -> Result<CallRow, SqlError> {
    let row = cx
        .conn
        .prepare_cached(sql)?
        .query_row(args, |r| returned(cx, r))?;
    if row.created {
        link_latest_booking(cx, call_id)?;
    }
    Ok(row)
}

/// Creates the row when this is the call's first event; returns it either way.
pub(crate) fn ensure(cx: &Cx<'_>, call_id: &str) -> Result<CallRow, SqlError> {
    upsert(
        cx,
        returning_row!(
            "INSERT INTO calls (call_id, seq, status, updated_at) VALUES (?1, ?2, 'started', ?3)
         ON CONFLICT (call_id) DO UPDATE SET updated_at = excluded.updated_at"
        ),
        call_id,
        params![call_id, cx.seq(), cx.at],
    )
}

/// The call's row as it is now, for attribution triggered by another stream's event.
pub(crate) fn row(cx: &Cx<'_>, call_id: &str) -> Result<Option<CallRow>, SqlError> {
    cx.conn
        .prepare_cached(
            "SELECT seq, tenant_id, branch_id, tenant_number, customer_number, customer_id,
                    customer_name
             FROM calls WHERE call_id = ?1",
        )?
        .query_row([call_id], |r| returned(cx, r))
        .optional()
}

pub(crate) fn started(cx: &Cx<'_>, event: &CallStarted) -> Applied {
    let p = Parties::of(cx, &event.parties);
    let row = upsert(
        cx,
        returning_row!(
            "INSERT INTO calls (call_id, seq, status, from_number, to_number, direction, agent_id,
                            started_at, tenant_number, customer_number, updated_at)
         VALUES (?1, ?2, 'started', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (call_id) DO UPDATE SET
             from_number = COALESCE(excluded.from_number, calls.from_number),
             to_number = COALESCE(excluded.to_number, calls.to_number),
             direction = COALESCE(excluded.direction, calls.direction),
             agent_id = COALESCE(excluded.agent_id, calls.agent_id),
             started_at = COALESCE(calls.started_at, excluded.started_at),
             tenant_number = COALESCE(excluded.tenant_number, calls.tenant_number),
             customer_number = COALESCE(excluded.customer_number, calls.customer_number),
             updated_at = excluded.updated_at"
        ),
        &event.call_id,
        params![
            event.call_id,
            cx.seq(),
            event.parties.from_number,
            event.parties.to_number,
            event.parties.direction,
            event.parties.agent_id,
            p.started_at,
            p.tenant_number,
            p.customer_number,
            cx.at,
        ],
    )?;
    attribution::settle_call(cx, &event.call_id, row, hint(&event.parties), true)
}

pub(crate) fn ended(cx: &Cx<'_>, event: &CallEnded) -> Applied {
    let p = Parties::of(cx, &event.parties);
    let outcome = &event.outcome;
    let ended_at = outcome.ended_at.map(ts).unwrap_or_else(|| cx.at.clone());
    let row = upsert(
        cx,
        returning_row!(
            "INSERT INTO calls (call_id, seq, status, from_number, to_number, direction, agent_id,
                            started_at, tenant_number, customer_number, ended_at, duration_s,
                            call_status, end_reason, recording_url, transcript, summary,
                            customer_name, sentiment, updated_at)
         VALUES (?1, ?2, 'ended', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 ?17, ?18, ?19)
         ON CONFLICT (call_id) DO UPDATE SET
             from_number = COALESCE(excluded.from_number, calls.from_number),
             to_number = COALESCE(excluded.to_number, calls.to_number),
             direction = COALESCE(excluded.direction, calls.direction),
             agent_id = COALESCE(excluded.agent_id, calls.agent_id),
             started_at = COALESCE(calls.started_at, excluded.started_at),
             tenant_number = COALESCE(excluded.tenant_number, calls.tenant_number),
             customer_number = COALESCE(excluded.customer_number, calls.customer_number),
             ended_at = excluded.ended_at,
             status = CASE WHEN calls.analyzed_at IS NULL THEN 'ended' ELSE 'analyzed' END,
             duration_s = COALESCE(excluded.duration_s, calls.duration_s),
             call_status = COALESCE(excluded.call_status, calls.call_status),
             end_reason = COALESCE(excluded.end_reason, calls.end_reason),
             recording_url = COALESCE(excluded.recording_url, calls.recording_url),
             transcript = COALESCE(excluded.transcript, calls.transcript),
             summary = COALESCE(calls.summary, excluded.summary),
             customer_name = COALESCE(excluded.customer_name, calls.customer_name),
             sentiment = COALESCE(calls.sentiment, excluded.sentiment),
             updated_at = excluded.updated_at"
        ),
        &event.call_id,
        params![
            event.call_id,
            cx.seq(),
            event.parties.from_number,
            event.parties.to_number,
            event.parties.direction,
            event.parties.agent_id,
            p.started_at,
            p.tenant_number,
            p.customer_number,
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
        ],
    )?;
    attribution::settle_call(cx, &event.call_id, row, hint(&event.parties), true)
}

pub(crate) fn analyzed(cx: &Cx<'_>, event: &CallAnalyzed) -> Applied {
    let analysis = &event.analysis;
    // The analysis' summary is the considered one: it wins over the end-of-call summary.
    // Before the end is recorded the call still reads `started`.
    let row = upsert(
        cx,
        returning_row!(
            "INSERT INTO calls (call_id, seq, status, analyzed_at, summary, sentiment, successful,
                            updated_at)
         VALUES (?1, ?2, 'started', ?3, ?4, ?5, ?6, ?3)
         ON CONFLICT (call_id) DO UPDATE SET
             analyzed_at = excluded.analyzed_at,
             status = CASE WHEN calls.ended_at IS NULL THEN calls.status ELSE 'analyzed' END,
             summary = COALESCE(excluded.summary, calls.summary),
             sentiment = COALESCE(excluded.sentiment, calls.sentiment),
             successful = COALESCE(excluded.successful, calls.successful),
             updated_at = excluded.updated_at"
        ),
        &event.call_id,
        params![
            event.call_id,
            cx.seq(),
            cx.at,
            analysis.summary,
            analysis.sentiment,
            analysis.successful,
        ],
    )?;
    attribution::settle_call(cx, &event.call_id, row, None, false)
}

pub(crate) fn availability_checked(cx: &Cx<'_>, event: &AvailabilityChecked) -> Applied {
    let row = upsert(
        cx,
        returning_row!(
            "INSERT INTO calls (call_id, seq, status, availability_checks, updated_at)
         VALUES (?1, ?2, 'started', 1, ?3)
         ON CONFLICT (call_id) DO UPDATE SET
             availability_checks = calls.availability_checks + 1,
             updated_at = excluded.updated_at"
        ),
        &event.call_id,
        params![event.call_id, cx.seq(), cx.at],
    )?;
    attribution::settle_call(cx, &event.call_id, row, None, false)
}

pub(crate) fn linked_to_booking(cx: &Cx<'_>, event: &CallLinkedToBooking) -> Applied {
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
    cx: &Cx<'_>,
    call_id: &str,
    booking_uid: &str,
    linked_at: &str,
) -> Result<(), SqlError> {
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
) -> Result<(), SqlError> {
    cx.conn
        .prepare_cached("UPDATE calls SET appointment_status = ?2 WHERE booking_uid = ?1")?
        .execute(params![booking_uid, status])?;
    Ok(())
}

fn link_latest_booking(cx: &Cx<'_>, call_id: &str) -> Result<(), SqlError> {
    let booking: Option<(String, Option<String>)> = cx
        .conn
        .prepare_cached(
            "SELECT booking_uid, created_at FROM appointments
             WHERE call_id = ?1 AND booking_uid IS NOT NULL
             -- NULLs last on both databases (SQLite sorts them low, PostgreSQL high).
             ORDER BY created_at IS NULL, created_at DESC, seq DESC LIMIT 1",
        )?
        .query_row([call_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((uid, created_at)) = booking {
        link_booking(cx, call_id, &uid, created_at.as_deref().unwrap_or(&cx.at))?;
    }
    Ok(())
}

/// Who called whom, with the numbers normalized to E.164 for attribution and for the customer
/// (`from_number` / `to_number` are kept as sent).
struct Parties {
    tenant_number: Option<String>,
    customer_number: Option<String>,
    started_at: Option<String>,
}

impl Parties {
    fn of(cx: &Cx<'_>, parties: &CallParties) -> Parties {
        let outbound = parties.direction.as_deref() == Some("outbound");
        let (business, caller) = if outbound {
            (&parties.from_number, &parties.to_number)
        } else {
            (&parties.to_number, &parties.from_number)
        };
        Parties {
            tenant_number: cx.phones.normalize(business.as_deref()),
            customer_number: cx.phones.normalize(caller.as_deref()),
            started_at: parties.started_at.map(ts),
        }
    }
}

fn hint(parties: &CallParties) -> Option<(&str, Option<&str>)> {
    parties
        .tenant_id
        .as_deref()
        .map(|tenant| (tenant, parties.branch_id.as_deref()))
}
