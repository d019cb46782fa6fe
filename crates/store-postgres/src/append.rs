//! Appends with group commit: one writer task per store commits the appends that queue up
//! while it is busy in one transaction.
//!
//! Every append takes the store's single position-counter row lock (see `sql/schema_v1.sql`),
//! so appends, across all processes, commit one transaction at a time, in position order.
//! That makes the global order safe; group commit is what makes it fast: the lock, the round
//! trip and the WAL flush are paid once per batch, not once per append. The appends of a
//! batch are pipelined on one connection, each a single call of `switchboard_append`, which
//! answers a refusal with a row instead of an error so one caller's conflict never fails the
//! others.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Timelike, Utc};
use futures_util::future::try_join_all;
use switchboard_store::{
    AppendOutcome, AppendedEvent, ExpectedVersion, NewEvent, StoreError, check_append,
    check_event_size,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::error::{from_pg, refuses_the_data};
use crate::pool::Pool;

const APPEND: &str = include_str!("sql/append.sql");
const NOTIFY: &str = include_str!("sql/notify.sql");

/// One append, validated and laid out as the columns `switchboard_append` takes, built on
/// the caller's task so the writer only talks to the database.
pub(crate) struct AppendRequest {
    stream: String,
    expected: ExpectedVersion,
    /// `expected` as `switchboard_append` takes it: -1 any, -2 no stream, n exactly n.
    expected_code: i64,
    event_ids: Vec<Uuid>,
    event_types: Vec<String>,
    schema_versions: Vec<i64>,
    occurred_at: Vec<DateTime<Utc>>,
    occurred_nanos: Vec<i32>,
    data: Vec<String>,
    metadata: Vec<String>,
    reply: Option<oneshot::Sender<Result<AppendOutcome, StoreError>>>,
}

impl AppendRequest {
    /// Refuses what no store could record (the shared checks, then the size limit) before
    /// anything is sent; returns the request and where its answer will arrive.
    #[allow(clippy::type_complexity)]
    pub(crate) fn new(
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        max_event_bytes: usize,
    ) -> Result<(Self, oneshot::Receiver<Result<AppendOutcome, StoreError>>), StoreError> {
        check_append(stream, &events)?;
        let expected_code = match expected {
            ExpectedVersion::Any => -1,
            ExpectedVersion::NoStream => -2,
            // Versions are bigint in the database; no stream can ever reach a larger one.
            ExpectedVersion::Exact(v) => i64::try_from(v).map_err(|_| {
                StoreError::InvalidAppend(format!(
                    "stream {stream}: expected version {v} is beyond any stream's reach"
                ))
            })?,
        };
        let (reply, answer) = oneshot::channel();
        let mut request = AppendRequest {
            stream: stream.to_owned(),
            expected,
            expected_code,
            event_ids: Vec::with_capacity(events.len()),
            event_types: Vec::with_capacity(events.len()),
            schema_versions: Vec::with_capacity(events.len()),
            occurred_at: Vec::with_capacity(events.len()),
            occurred_nanos: Vec::with_capacity(events.len()),
            data: Vec::with_capacity(events.len()),
            metadata: Vec::with_capacity(events.len()),
            reply: Some(reply),
        };
        for event in events {
            // A `Value` always serializes; the error path exists only because the API has one.
            let serialize = |value: &serde_json::Value| {
                serde_json::to_string(value).map_err(|e| StoreError::InvalidAppend(e.to_string()))
            };
            let data = serialize(&event.data)?;
            let metadata = serialize(&event.metadata)?;
            check_event_size(event.event_id, data.len() + metadata.len(), max_event_bytes)?;
            request.event_ids.push(event.event_id);
            request.event_types.push(event.event_type);
            request
                .schema_versions
                .push(i64::from(event.schema_version));
            // PostgreSQL keeps microseconds and would round the rest, possibly into the next
            // second; truncating here keeps the whole seconds exact, and the nanoseconds
            // travel in their own column.
            request.occurred_at.push(event.occurred_at.trunc_subsecs(6));
            request
                .occurred_nanos
                .push(event.occurred_at.nanosecond() as i32);
            request.data.push(data);
            request.metadata.push(metadata);
        }
        Ok((request, answer))
    }

    /// Answers the caller; a caller that stopped waiting is no reason to fail the others.
    fn answer(&mut self, result: Result<AppendOutcome, StoreError>) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(result);
        }
    }
}

pub(crate) struct Writer {
    pub pool: Arc<Pool>,
    pub requests: mpsc::Receiver<AppendRequest>,
    pub head: Arc<watch::Sender<u64>>,
    pub max_batch: usize,
}

impl Writer {
    /// Serves appends until the store is dropped. Trouble with the database fails the batch at
    /// hand and nothing else: the loop goes on with the next one, on a fresh connection if
    /// this one died.
    pub(crate) async fn run(mut self) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while self.requests.recv_many(&mut batch, self.max_batch).await > 0 {
            let results = match self.commit(&batch).await {
                Ok(results) => results,
                Err(Failure::Unavailable(error)) => {
                    tracing::warn!(%error, appends = batch.len(), "event store batch failed");
                    batch.iter().map(|_| Err(error.clone())).collect()
                }
                // One append made PostgreSQL fail the transaction (say, a NUL character in
                // its JSON). The batch is rolled back; each append goes again on its own, so
                // only the one at fault is refused.
                Err(Failure::Statement(_)) => {
                    let mut results = Vec::with_capacity(batch.len());
                    for request in &batch {
                        let result = match self.commit(std::slice::from_ref(request)).await {
                            Ok(mut one) => one.remove(0),
                            Err(Failure::Unavailable(error)) => Err(error),
                            Err(Failure::Statement(error)) => {
                                Err(self.refusal(&request.stream, error))
                            }
                        };
                        results.push(result);
                    }
                    results
                }
            };
            // The head moves before anyone is told, so a caller that reads right after its
            // append returns, or a subscriber woken by the head, sees the commit.
            let new_head = results
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .flat_map(|outcome| outcome.events.iter().map(|e| e.position))
                .max();
            if let Some(new_head) = new_head {
                advance_head(&self.head, new_head);
            }
            for (mut request, result) in batch.drain(..).zip(results) {
                request.answer(result);
            }
        }
    }

    /// Commits `batch` in one transaction; one result per request, in order.
    async fn commit(
        &self,
        batch: &[AppendRequest],
    ) -> Result<Vec<Result<AppendOutcome, StoreError>>, Failure> {
        let target = self.pool.target();
        let mut conn = self.pool.get().await.map_err(Failure::Unavailable)?;
        let pg = |e: tokio_postgres::Error| {
            let error = from_pg(target, &e);
            if e.as_db_error().is_some() && !error.is_transient() {
                Failure::Statement(e)
            } else {
                Failure::Unavailable(error)
            }
        };
        let append = conn.statement(APPEND).await.map_err(pg)?;
        let notify = conn.statement(NOTIFY).await.map_err(pg)?;
        let tx = conn.client.transaction().await.map_err(pg)?;

        // Sent one after the other without waiting for answers; the server runs them in the
        // order sent, inside this one transaction.
        let calls = batch.iter().map(|request| {
            let params: [&(dyn ToSql + Sync); 9] = [
                &request.stream,
                &request.expected_code,
                &request.event_ids,
                &request.event_types,
                &request.schema_versions,
                &request.occurred_at,
                &request.occurred_nanos,
                &request.data,
                &request.metadata,
            ];
            let tx = &tx;
            let append = &append;
            async move { tx.query(append, &params).await }
        });
        let answers = try_join_all(calls).await.map_err(pg)?;

        let results: Vec<_> = batch
            .iter()
            .zip(&answers)
            .map(|(request, rows)| outcome(request, rows))
            .collect();
        let last_position = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter(|outcome| !outcome.already_recorded)
            .flat_map(|outcome| outcome.events.iter().map(|e| e.position))
            .max();
        if let Some(last_position) = last_position {
            tx.execute(&notify, &[&(last_position as i64)])
                .await
                .map_err(pg)?;
        }
        // If the connection fails during COMMIT the outcome is unknown; the callers hear
        // "unavailable", and their retry is harmless because appends are idempotent by id.
        tx.commit().await.map_err(pg)?;
        Ok(results)
    }

    /// The error for an append PostgreSQL refused on its own.
    fn refusal(&self, stream: &str, error: tokio_postgres::Error) -> StoreError {
        if refuses_the_data(&error) {
            let reason = error
                .as_db_error()
                .map_or_else(|| error.to_string(), |db| db.message().to_owned());
            StoreError::InvalidAppend(format!(
                "stream {stream}: PostgreSQL cannot store these events: {reason}"
            ))
        } else {
            from_pg(self.pool.target(), &error)
        }
    }
}

/// Why a batch did not commit.
enum Failure {
    /// The database cannot be used right now; nothing was written.
    Unavailable(StoreError),
    /// A statement failed and aborted the transaction; nothing was written.
    Statement(tokio_postgres::Error),
}

/// Turns `switchboard_append`'s rows into the caller's answer.
fn outcome(request: &AppendRequest, rows: &[Row]) -> Result<AppendOutcome, StoreError> {
    let stream = request.stream.clone();
    let Some(first) = rows.first() else {
        return Err(StoreError::Backend(format!(
            "stream {stream}: switchboard_append returned nothing"
        )));
    };
    let kind: &str = first.get(0);
    match kind {
        "conflict" => Err(StoreError::WrongExpectedVersion {
            stream,
            expected: request.expected,
            actual: first.get::<_, Option<i64>>(2).map(|v| v as u64),
        }),
        "partial" => Err(StoreError::PartiallyRecorded {
            stream,
            event_id: first.get(1),
        }),
        "appended" | "recorded" => Ok(AppendOutcome {
            stream,
            already_recorded: kind == "recorded",
            events: rows
                .iter()
                .map(|row| AppendedEvent {
                    event_id: row.get(1),
                    version: row.get::<_, i64>(2) as u64,
                    position: row.get::<_, i64>(3) as u64,
                })
                .collect(),
        }),
        other => Err(StoreError::Backend(format!(
            "stream {stream}: switchboard_append answered {other:?}"
        ))),
    }
}

/// Moves the head watch forward, never back: the writer and the listener both feed it, and
/// a notification may arrive after a later commit's own update.
pub(crate) fn advance_head(head: &watch::Sender<u64>, position: u64) {
    head.send_if_modified(|current| {
        let moved = position > *current;
        if moved {
            *current = position;
        }
        moved
    });
}
