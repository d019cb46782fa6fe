//! Appends with group commit: one writer task per store commits the appends that queue up
//! while it is busy in one transaction.
//!
//! Every append transaction takes the store's single position-counter row lock first (see
//! `sql/schema_v1.sql`), so appends, across all processes, commit one transaction at a time,
//! in position order. That makes the global order safe; group commit is what makes it fast:
//! the lock, the round trips and the WAL flush are paid once per batch, not once per append.
//! A batch is a handful of set-based statements, pipelined on one connection:
//! lock and read what the batch's streams and ids hold, decide in memory (`batch.rs`),
//! write all events in one INSERT, commit.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Timelike, Utc};
use switchboard_store::{
    AppendOutcome, AppendedEvent, ExpectedVersion, NewEvent, StoreError, check_append,
    check_event_size, json_without_nul,
};

use crate::batch::{Known, decide};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::error::{from_pg, refuses_the_data};
use crate::pool::Pool;

const LOCK_POSITIONS: &str = include_str!("sql/lock_positions.sql");
const FIND_RECORDED: &str = include_str!("sql/find_recorded.sql");
const STREAM_VERSIONS: &str = include_str!("sql/stream_versions.sql");
const INSERT_EVENTS: &str = include_str!("sql/insert_events.sql");
const UPSERT_STREAMS: &str = include_str!("sql/upsert_streams.sql");
const ADVANCE_POSITIONS: &str = include_str!("sql/advance_positions.sql");
const NOTIFY: &str = include_str!("sql/notify.sql");

/// Where each part of a batch ends: consecutive appends up to `max_bytes` together, and an
/// append larger than that on its own.
fn chunk_ends(sizes: impl Iterator<Item = usize>, max_bytes: usize) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut bytes = 0;
    let mut count = 0;
    for (index, size) in sizes.enumerate() {
        if count > 0 && bytes + size > max_bytes {
            ends.push(index);
            bytes = 0;
            count = 0;
        }
        bytes += size;
        count += 1;
    }
    if count > 0 {
        ends.push(ends.last().copied().unwrap_or(0) + count);
    }
    ends
}

/// A value as its jsonb column takes it, and its exact JSON when jsonb cannot hold that: a
/// string or key with a NUL character, stored with U+FFFD in the jsonb column.
fn for_jsonb(value: &serde_json::Value) -> Result<(String, Option<String>), StoreError> {
    // A `Value` always serializes; the error path exists only because the API has one.
    let exact =
        serde_json::to_string(value).map_err(|e| StoreError::InvalidAppend(e.to_string()))?;
    Ok(match json_without_nul(&exact) {
        Some(storable) => (storable, Some(exact)),
        None => (exact, None),
    })
}

/// One append, validated, serialized and laid out as columns on the caller's task, so the
/// writer only decides and talks to the database.
pub(crate) struct AppendRequest {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub event_ids: Vec<Uuid>,
    pub event_types: Vec<String>,
    pub schema_versions: Vec<i64>,
    pub occurred_at: Vec<DateTime<Utc>>,
    pub occurred_nanos: Vec<i32>,
    /// What the jsonb columns get: the JSON, with U+FFFD for NUL where it held one.
    pub data: Vec<String>,
    pub metadata: Vec<String>,
    /// The exact JSON of an event whose text held NUL, which jsonb cannot (`sql/schema_v2.sql`).
    pub data_exact: Vec<Option<String>>,
    pub metadata_exact: Vec<Option<String>>,
    reply: Option<oneshot::Sender<Answer>>,
}

/// What the caller of one append is told.
pub(crate) type Answer = Result<AppendOutcome, StoreError>;

impl AppendRequest {
    /// Refuses what no store could record (the shared checks, then the size limit) before
    /// anything is sent; returns the request and where its answer will arrive.
    pub(crate) fn new(
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        max_event_bytes: usize,
    ) -> Result<(Self, oneshot::Receiver<Answer>), StoreError> {
        check_append(stream, &events)?;
        let (reply, answer) = oneshot::channel();
        let mut request = AppendRequest {
            stream: stream.to_owned(),
            expected,
            event_ids: Vec::with_capacity(events.len()),
            event_types: Vec::with_capacity(events.len()),
            schema_versions: Vec::with_capacity(events.len()),
            occurred_at: Vec::with_capacity(events.len()),
            occurred_nanos: Vec::with_capacity(events.len()),
            data: Vec::with_capacity(events.len()),
            metadata: Vec::with_capacity(events.len()),
            data_exact: Vec::with_capacity(events.len()),
            metadata_exact: Vec::with_capacity(events.len()),
            reply: Some(reply),
        };
        for event in events {
            let (data, data_exact) = for_jsonb(&event.data)?;
            let (metadata, metadata_exact) = for_jsonb(&event.metadata)?;
            let exact_size = |stored: &String, exact: &Option<String>| {
                exact.as_ref().map_or(stored.len(), String::len)
            };
            check_event_size(
                event.event_id,
                exact_size(&data, &data_exact) + exact_size(&metadata, &metadata_exact),
                max_event_bytes,
            )?;
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
            request.data_exact.push(data_exact);
            request.metadata_exact.push(metadata_exact);
        }
        Ok((request, answer))
    }

    /// The JSON this append sends, which is nearly all of its share of a batch's message.
    fn bytes(&self) -> usize {
        let exact = self.data_exact.iter().chain(&self.metadata_exact).flatten();
        self.data
            .iter()
            .chain(&self.metadata)
            .chain(exact)
            .map(String::len)
            .sum()
    }

    /// Answers the caller; a caller that stopped waiting is no reason to fail the others.
    fn answer(&mut self, result: Answer) {
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
    /// See `PostgresOptions::max_batch_bytes`.
    pub max_batch_bytes: usize,
}

impl Writer {
    /// Serves appends until the store is dropped. Trouble with the database fails the batch at
    /// hand and nothing else: the loop goes on with the next one, on a fresh connection if
    /// this one died.
    pub(crate) async fn run(mut self) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while self.requests.recv_many(&mut batch, self.max_batch).await > 0 {
            // The callers answered by the last commit are sending their next appends right
            // now, on other threads. Without this one yield the writer would take the first
            // of them alone and leave the rest for a whole commit later: batches of 1 and
            // n-1 in turn instead of n.
            tokio::task::yield_now().await;
            while batch.len() < self.max_batch {
                match self.requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            let mut start = 0;
            for end in chunk_ends(batch.iter().map(AppendRequest::bytes), self.max_batch_bytes) {
                self.serve(&mut batch[start..end]).await;
                start = end;
            }
            batch.clear();
        }
    }

    /// Commits `batch` and answers each of its callers.
    async fn serve(&mut self, batch: &mut [AppendRequest]) {
        let answers = match self.commit(batch).await {
            Ok(answers) => answers,
            Err(Failure::Unavailable(error)) => {
                tracing::warn!(%error, appends = batch.len(), "event store batch failed");
                batch.iter().map(|_| Err(error.clone())).collect()
            }
            // PostgreSQL refused something in the batch (say, a stream name too long to
            // index) and rolled it all back. Each append goes again on its own, so only the
            // one at fault is refused.
            Err(Failure::Statement(_)) => {
                let mut answers = Vec::with_capacity(batch.len());
                for request in batch.iter() {
                    answers.push(match self.commit(std::slice::from_ref(request)).await {
                        Ok(mut one) => one.remove(0),
                        Err(Failure::Unavailable(error)) => Err(error),
                        Err(Failure::Statement(error)) => {
                            Err(self.refusal(&request.stream, &error))
                        }
                    });
                }
                answers
            }
        };
        // The head moves before anyone is told, so a caller that reads right after its
        // append returns, or a subscriber woken by the head, sees the commit.
        let new_head = answers
            .iter()
            .filter_map(|answer| answer.as_ref().ok())
            .flat_map(|outcome| outcome.events.iter().map(|e| e.position))
            .max();
        if let Some(new_head) = new_head {
            advance_head(&self.head, new_head);
        }
        for (request, answer) in batch.iter_mut().zip(answers) {
            request.answer(answer);
        }
    }

    /// Commits `batch` in one transaction; one answer per request, in order.
    async fn commit(&self, batch: &[AppendRequest]) -> Result<Vec<Answer>, Failure> {
        let target = self.pool.target();
        let pg = |e: tokio_postgres::Error| {
            let error = from_pg(target, &e);
            if e.as_db_error().is_some() && !error.is_transient() {
                Failure::Statement(e)
            } else {
                Failure::Unavailable(error)
            }
        };
        let mut conn = self.pool.get().await.map_err(Failure::Unavailable)?;
        let lock = conn.statement(LOCK_POSITIONS).await.map_err(pg)?;
        let find = conn.statement(FIND_RECORDED).await.map_err(pg)?;
        let versions = conn.statement(STREAM_VERSIONS).await.map_err(pg)?;
        let insert = conn.statement(INSERT_EVENTS).await.map_err(pg)?;
        let upsert = conn.statement(UPSERT_STREAMS).await.map_err(pg)?;
        let advance = conn.statement(ADVANCE_POSITIONS).await.map_err(pg)?;
        let notify = conn.statement(NOTIFY).await.map_err(pg)?;
        let tx = conn.client.transaction().await.map_err(pg)?;

        // Sent together, run in order: the lock first, so the two reads after it see every
        // commit of the lock's previous holder.
        let (id_streams, ids): (Vec<&str>, Vec<Uuid>) = batch
            .iter()
            .flat_map(|r| r.event_ids.iter().map(|&id| (r.stream.as_str(), id)))
            .unzip();
        let mut streams: Vec<&str> = batch.iter().map(|r| r.stream.as_str()).collect();
        streams.sort_unstable();
        streams.dedup();
        let find_params: [&(dyn ToSql + Sync); 2] = [&id_streams, &ids];
        let versions_params: [&(dyn ToSql + Sync); 1] = [&streams];
        // `biased` polls in the order written, and each query is sent on its first poll, so
        // the server receives (and runs) them in this order.
        let (position_row, recorded_rows, version_rows) = tokio::try_join!(
            biased;
            tx.query_one(&lock, &[]),
            tx.query(&find, &find_params),
            tx.query(&versions, &versions_params),
        )
        .map_err(pg)?;
        let known = Known {
            last_position: position_row.get::<_, i64>(0) as u64,
            versions: version_rows
                .iter()
                .map(|row| (row.get(0), row.get::<_, i64>(1) as u64))
                .collect(),
            recorded: recorded_rows
                .iter()
                .map(|row| {
                    let placed = AppendedEvent {
                        event_id: row.get(1),
                        version: row.get::<_, i64>(2) as u64,
                        position: row.get::<_, i64>(3) as u64,
                    };
                    ((row.get(0), placed.event_id), placed)
                })
                .collect(),
        };

        let decided = decide(batch, known);
        if decided.writes_nothing() {
            // Refusals and retries only: the transaction ends without a write, releasing
            // the lock; nothing to notify.
            tx.rollback().await.map_err(pg)?;
            return Ok(decided.answers);
        }
        let rows = &decided.rows;
        let last_position = decided.last_position as i64;
        let insert_params: [&(dyn ToSql + Sync); 12] = [
            &rows.positions,
            &rows.streams,
            &rows.versions,
            &rows.event_ids,
            &rows.event_types,
            &rows.schema_versions,
            &rows.occurred_at,
            &rows.occurred_nanos,
            &rows.data,
            &rows.metadata,
            &rows.data_exact,
            &rows.metadata_exact,
        ];
        let upsert_params: [&(dyn ToSql + Sync); 2] =
            [&decided.stream_names, &decided.stream_versions];
        let position_params: [&(dyn ToSql + Sync); 1] = [&last_position];
        tokio::try_join!(
            biased;
            tx.execute(&insert, &insert_params),
            tx.execute(&upsert, &upsert_params),
            tx.execute(&advance, &position_params),
            tx.execute(&notify, &position_params),
        )
        .map_err(pg)?;
        // If the connection fails during COMMIT the outcome is unknown; the callers hear
        // "unavailable", and their retry is harmless because appends are idempotent by id.
        tx.commit().await.map_err(pg)?;
        Ok(decided.answers)
    }

    /// The error for an append PostgreSQL refused on its own.
    fn refusal(&self, stream: &str, error: &tokio_postgres::Error) -> StoreError {
        if refuses_the_data(error) {
            let reason = error
                .as_db_error()
                .map_or_else(|| error.to_string(), |db| db.message().to_owned());
            StoreError::InvalidAppend(format!(
                "stream {stream}: PostgreSQL cannot store these events: {reason}"
            ))
        } else {
            from_pg(self.pool.target(), error)
        }
    }
}

/// Why a batch did not commit; either way nothing of it was written.
enum Failure {
    /// The database cannot be used right now.
    Unavailable(StoreError),
    /// A statement failed and aborted the transaction.
    Statement(tokio_postgres::Error),
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

#[cfg(test)]
mod tests {
    use super::chunk_ends;

    #[test]
    fn a_batch_within_the_bound_is_one_part() {
        assert_eq!(chunk_ends([10, 20, 30].into_iter(), 100), [3]);
        assert_eq!(chunk_ends([].into_iter(), 100), Vec::<usize>::new());
    }

    #[test]
    fn a_batch_over_the_bound_is_split_where_the_next_append_would_pass_it() {
        assert_eq!(chunk_ends([60, 40, 1, 99, 100].into_iter(), 100), [2, 4, 5]);
    }

    #[test]
    fn an_append_over_the_bound_goes_on_its_own() {
        assert_eq!(chunk_ends([10, 500, 10].into_iter(), 100), [1, 2, 3]);
        assert_eq!(chunk_ends([500].into_iter(), 100), [1]);
    }
}
