//! The anomalies read model: every refused transition, unattributed record, unknown event
//! type and event that could not be applied, with reason code, message, stream and position.
//! Attribution that arrives later resolves the matching `unattributed_*` rows rather than
//! deleting them, so the history of what was wrong stays readable.
//!
//! An anomaly names the tenant of what it is about, so that a tenant's token lists its own:
//! an anomaly recorded at an event is about that event's aggregate (the call, booking, tenant
//! or Stripe customer of its stream) and names that aggregate's tenant as the read models know
//! it then; one recorded before its subject was attributed is given the tenant by the event
//! that attributes the subject ([`resolve`]).

use crate::sql::{OptionalExtension, SqlResult, params};
use switchboard_domain::StreamId;
use switchboard_domain::event::TransitionRejected;

use crate::apply::{Applied, Cx};
use crate::attribution;

/// Records an anomaly about the aggregate of the event in hand: `reason` is its code.
pub(crate) fn at_event(cx: &Cx<'_, '_>, reason: &str, message: String) -> Applied {
    let (kind, id) = stream_subject(cx.stream);
    let tenant_id = subject_tenant(cx, kind, id)?;
    record(cx, (kind, id), reason, message, tenant_id)
}

/// The aggregate a stream belongs to, as (subject kind, id): `call-c1` is call `c1`,
/// `event-type-42` event type `42`; a stream of no aggregate (`delivery-…`) is about itself.
fn stream_subject(stream: &str) -> (&str, &str) {
    match StreamId::split(stream) {
        Ok((kind, id)) => (kind.prefix(), id),
        Err(_) => stream.split_once('-').unwrap_or(("stream", stream)),
    }
}

/// The tenant a stream's aggregate belongs to, as far as the read models know at this event.
fn subject_tenant(cx: &Cx<'_, '_>, kind: &str, id: &str) -> SqlResult<Option<String>> {
    match kind {
        "tenant" => Ok(Some(id.to_owned())),
        "call" => cx
            .batch
            .calls
            .read(cx.conn, id, |call| call.and_then(|c| c.tenant_id.clone())),
        // A booking's appointment row is keyed by its uid.
        "booking" => cx.batch.appointments.read(cx.conn, id, |appointment| {
            appointment.and_then(|a| a.tenant_id.clone())
        }),
        "billing" => attribution::stripe_owner(cx, None, id),
        _ => Ok(None),
    }
}

/// Records an anomaly at the event in hand about `(subject_kind, subject_id)`.
fn record(
    cx: &Cx<'_, '_>,
    (subject_kind, subject_id): (&str, &str),
    reason: &str,
    message: String,
    tenant_id: Option<String>,
) -> Applied {
    // The id is the next one explicitly, not a sequence's: rolled-back attempts must leave no
    // gaps, so live processing and a rebuild number anomalies alike. Read, then inserted: an
    // `INSERT … SELECT` from the table it inserts into went through a temporary table.
    let last: i64 = cx
        .conn
        .prepare_cached("SELECT COALESCE(MAX(anomaly_id), 0) FROM anomalies")?
        .query_row((), |r| r.get(0))?;
    cx.conn
        .prepare_cached(
            "INSERT INTO anomalies (anomaly_id, position, stream, event_type, reason, message,
                                    subject_kind, subject_id, tenant_id, occurred_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            last + 1,
            cx.seq(),
            cx.stream,
            cx.event_type,
            reason,
            message,
            subject_kind,
            subject_id,
            tenant_id,
            cx.at,
        ])?;
    Ok(())
}

/// Records an `unattributed` anomaly unless one is already open for the same subject: a call
/// that stays unattributed over three events is one problem, not three.
pub(crate) fn unattributed(
    cx: &Cx<'_, '_>,
    kind: &str,
    id: &str,
    reason: &str,
    message: String,
) -> Applied {
    let open: Option<i64> = cx
        .conn
        .prepare_cached(
            "SELECT 1 FROM anomalies
             WHERE subject_kind = ?1 AND subject_id = ?2 AND reason = ?3 AND resolved_at IS NULL",
        )?
        .query_row(params![kind, id, reason], |r| r.get(0))
        .optional()?;
    if open.is_some() {
        return Ok(());
    }
    record(cx, (kind, id), reason, message, None)
}

/// `kind` `id` now belongs to `tenant_id` (by the event in hand): its open `unattributed_*`
/// anomalies are resolved, naming the tenant, and its other anomalies recorded while it had no
/// tenant (a refused transition, an event that could not be applied) name the tenant too.
pub(crate) fn resolve(cx: &Cx<'_, '_>, kind: &str, id: &str, tenant_id: &str) -> Applied {
    // Most attributions have nothing to resolve, and looking is cheaper than updating: on the
    // 1M-event rebuild the lookup (then an existence check) took 1.7–1.9 µs and let 52,443 of
    // 84,651 UPDATEs (6.9 µs on average) be skipped. The rows found are updated by id: one
    // UPDATE that selected by `resolved_at IS NULL` and set `resolved_at` (the open-anomalies
    // index) collected its rows in a temporary table first. No anomaly is resolved or named a
    // tenant without its `resolved_at` being NULL before: the open-anomalies index holds them
    // all.
    let open = cx
        .conn
        .prepare_cached(
            "SELECT anomaly_id, reason LIKE 'unattributed%' FROM anomalies
             WHERE subject_kind = ?1 AND subject_id = ?2 AND resolved_at IS NULL
               AND (reason LIKE 'unattributed%' OR tenant_id IS NULL)",
        )?
        .query_map(params![kind, id], |r| {
            Ok((r.get::<i64>(0)?, r.get::<bool>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (anomaly_id, unattributed) in open {
        if unattributed {
            cx.conn
                .prepare_cached(
                    "UPDATE anomalies SET resolved_at = ?2, resolved_by_position = ?3, tenant_id = ?4
                     WHERE anomaly_id = ?1",
                )?
                .execute(params![anomaly_id, cx.at, cx.seq(), tenant_id])?;
        } else {
            cx.conn
                .prepare_cached("UPDATE anomalies SET tenant_id = ?2 WHERE anomaly_id = ?1")?
                .execute(params![anomaly_id, tenant_id])?;
        }
    }
    Ok(())
}

/// A transition an aggregate refused, recorded by the service on the stream it was meant for.
pub(crate) fn rejected(cx: &Cx<'_, '_>, event: &TransitionRejected) -> Applied {
    at_event(
        cx,
        event.reason.code(),
        format!("{} refused: {}", event.command, event.reason),
    )
}
