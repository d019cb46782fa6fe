//! The anomalies read model: every refused transition, unattributed record, unknown event
//! type and event that could not be applied, with reason code, message, stream and position.
//! Attribution that arrives later resolves the matching `unattributed_*` rows rather than
//! deleting them, so the history of what was wrong stays readable.

use crate::sql::{OptionalExtension, params};
use switchboard_domain::event::TransitionRejected;

use crate::apply::{Applied, Cx};

/// An anomaly about to be recorded at the event in hand.
pub(crate) struct NewAnomaly<'a> {
    pub reason: String,
    pub message: String,
    pub subject_kind: Option<&'a str>,
    pub subject_id: Option<&'a str>,
    pub tenant_id: Option<String>,
}

impl<'a> NewAnomaly<'a> {
    pub(crate) fn about(mut self, kind: &'a str, id: &'a str) -> Self {
        self.subject_kind = Some(kind);
        self.subject_id = Some(id);
        self
    }
}

pub(crate) fn record(cx: &Cx<'_, '_>, anomaly: NewAnomaly<'_>) -> Applied {
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
            anomaly.reason,
            anomaly.message,
            anomaly.subject_kind,
            anomaly.subject_id,
            anomaly.tenant_id,
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
    let anomaly = NewAnomaly {
        tenant_id: None,
        ..cx.anomaly(reason, message)
    };
    record(cx, anomaly.about(kind, id))
}

/// Marks the open `unattributed_*` anomalies about a subject as resolved by the event in hand, naming the
/// tenant the subject now belongs to.
pub(crate) fn resolve(cx: &Cx<'_, '_>, kind: &str, id: &str, tenant_id: &str) -> Applied {
    // Most attributions have nothing to resolve, and looking is cheaper than updating: on the
    // 1M-event rebuild the lookup (then an existence check) took 1.7–1.9 µs and let 52,443 of
    // 84,651 UPDATEs (6.9 µs on average) be skipped. The rows found are updated by id: one
    // UPDATE that selected by `resolved_at IS NULL` and set `resolved_at` (the open-anomalies
    // index) collected its rows in a temporary table first.
    let open = cx
        .conn
        .prepare_cached(
            "SELECT anomaly_id FROM anomalies
             WHERE subject_kind = ?1 AND subject_id = ?2 AND resolved_at IS NULL
               AND reason LIKE 'unattributed%'",
        )?
        .query_map(params![kind, id], |r| r.get::<i64>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    for anomaly_id in open {
        cx.conn
            .prepare_cached(
                "UPDATE anomalies SET resolved_at = ?2, resolved_by_position = ?3, tenant_id = ?4
                 WHERE anomaly_id = ?1",
            )?
            .execute(params![anomaly_id, cx.at, cx.seq(), tenant_id])?;
    }
    Ok(())
}

/// A transition an aggregate refused, recorded by the service on the stream it was meant for.
pub(crate) fn rejected(cx: &Cx<'_, '_>, event: &TransitionRejected) -> Applied {
    let (kind, id) = match cx.stream.split_once('-') {
        Some(("event", rest)) => ("event-type", rest.strip_prefix("type-").unwrap_or(rest)),
        Some((kind, id)) => (kind, id),
        None => ("stream", cx.stream),
    };
    let anomaly = cx
        .anomaly(
            event.reason.code(),
            format!("{} refused: {}", event.command, event.reason),
        )
        .about(kind, id);
    record(cx, anomaly)
}
