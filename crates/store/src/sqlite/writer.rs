//! The one writer: a thread that owns the read-write connection and commits appends in
//! groups.
//!
//! Appends that arrive while a commit is in progress queue up in the channel; the next round
//! drains them all into one transaction, so one sync (on the syncer thread) covers the whole
//! group. One caller's
//! refusal (wrong expected version, partial retry, a constraint failure) is rolled back alone
//! and never touches the others in the group: the checks come before any write, an append of
//! several events runs inside its own SAVEPOINT, and a single-event append is one INSERT, which
//! SQLite undoes by itself when it fails. (Most appends carry one event; skipping the savepoint
//! saves two statements each.)
//!
//! Idempotency and the expected version are checked against [`KnownStreams`], the writer's
//! memory of each stream, rather than by index lookups; see that module for why it is safe.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Statement, params};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::errors::{aborts_batch, from_sqlite};
use super::known_streams::{KnownStream, KnownStreams};
use super::syncer::{Committed, Poison};
use crate::{AppendedEvent, ExpectedVersion, StoreError};

const INSERT_EVENT: &str = include_str!("sql/insert_event.sql");

/// The group size from which the writer lingers for stragglers, and how long. Far below an
/// fsync, so it costs a lone caller nothing and a busy store a fraction of a commit.
const LINGER_MIN_GROUP: usize = 8;
const LINGER: std::time::Duration = std::time::Duration::from_micros(100);

/// An event ready for the writer: validated, and with its JSON already serialized by the
/// caller's task so the writer thread spends its time on SQLite alone.
pub(crate) struct PreparedEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub data: String,
    pub metadata: String,
}

/// One caller's append, as the writer receives it.
pub(crate) struct Append {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub events: Vec<PreparedEvent>,
}

pub(crate) struct AppendRequest {
    pub append: Append,
    pub reply: oneshot::Sender<Answer>,
}

/// Where one append's events landed: their places, or the places they already had.
pub(crate) struct Recorded {
    pub events: Vec<AppendedEvent>,
    pub already_recorded: bool,
}

/// The writer's answer to one request. The append travels back with it, so its memory (the
/// events' serialized JSON, allocated on the caller's thread) is freed there too: freeing it
/// on the writer thread cost the writer ~6 % of its time with 64 writers (perf, 2026-11-23),
/// and the writer is the one thread every append waits for.
pub(crate) struct Answer {
    pub result: Result<Recorded, StoreError>,
    pub append: Append,
}

/// Counters for metrics and for tests that need to know how appends were grouped.
#[derive(Debug, Default)]
pub(crate) struct WriterCounters {
    pub batches: AtomicU64,
    pub appends: AtomicU64,
    /// Checkpoints the writer ran so that the WAL could start over.
    pub restart_checkpoints: AtomicU64,
}

pub(crate) struct Writer {
    pub conn: Connection,
    pub path: PathBuf,
    pub requests: mpsc::Receiver<AppendRequest>,
    /// Committed groups go here to be synced and answered.
    pub committed: std::sync::mpsc::SyncSender<Committed>,
    pub max_batch: usize,
    pub counters: Arc<WriterCounters>,
    pub known: KnownStreams,
    /// Set by the checkpointer when the WAL should start over (see `checkpointer`).
    pub restart: Arc<AtomicBool>,
    /// Set by a failed sync: the writer then commits nothing more.
    pub poison: Arc<Poison>,
}

impl Writer {
    /// Serves appends until every sender is gone. Store trouble fails the batch at hand and
    /// nothing else: the loop goes on with the next one.
    pub(crate) fn run(mut self) {
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut last_batch_len = 0;
        while let Some(first) = self.requests.blocking_recv() {
            batch.push(first);
            self.drain_into(&mut batch);
            // Callers answered by the last commit are usually about to append again. When that
            // commit was a big group and this one is still much smaller, give them a moment
            // (and the CPU) to catch up, so one commit covers them too. A lone writer never
            // waits: its last group was a single append.
            if last_batch_len >= LINGER_MIN_GROUP && batch.len() < last_batch_len / 2 {
                std::thread::sleep(LINGER);
                self.drain_into(&mut batch);
            }
            last_batch_len = batch.len();
            // Counted when taken, before the commit: a test can tell that the writer holds a
            // request even while the commit waits on a lock.
            self.counters.batches.fetch_add(1, Ordering::Relaxed);
            self.counters
                .appends
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            // A stopped store writes nothing more, not even appends accepted before it stopped:
            // the WAL must keep what a failed sync may have lost, and a commit could let it
            // start over (see `Poison::stop`).
            if let Err(error) = self.poison.check() {
                for AppendRequest { append, reply } in batch.drain(..) {
                    let _ = reply.send(Answer {
                        result: Err(error.clone()),
                        append,
                    });
                }
                continue;
            }
            let GroupOutcome {
                results,
                file_head,
                recorded_at,
            } = self.commit(&batch);
            let head = results
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .flat_map(|recorded| recorded.events.iter().map(|e| e.position))
                .chain(file_head)
                .max();
            let answers = batch
                .drain(..)
                .zip(results)
                .map(|(AppendRequest { append, reply }, result)| (reply, Answer { result, append }))
                .collect();
            // The callers are answered once the group is synced (see `syncer`). Should the
            // syncer be gone, nothing more can be made durable: the writer stops too, and every
            // caller, these and later ones, is told the store closed.
            let committed = Committed {
                answers,
                head,
                recorded_at,
            };
            if self.committed.send(committed).is_err() {
                tracing::error!(path = %self.path.display(), "event store syncer gone; writer stops");
                break;
            }
            if self.restart.swap(false, Ordering::Acquire) && self.poison.check().is_ok() {
                self.checkpoint_for_restart();
            }
        }
    }

    /// Copies the few frames the checkpointer's last pass left, so the next transaction finds
    /// the WAL fully copied and starts it over. Runs between groups, after the last one went
    /// to the syncer: its callers wait for their sync, not for this; the next group waits for
    /// it. It syncs the WAL and the file (which holds only the pages this checkpoint copied:
    /// the checkpointer syncs its own passes), and the restarting commit syncs the WAL's
    /// header. A reader still in the WAL keeps it from starting over; the checkpointer asks
    /// again.
    fn checkpoint_for_restart(&mut self) {
        self.counters
            .restart_checkpoints
            .fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            // Nothing is lost: the frames stay in the WAL for the next pass, and the automatic
            // checkpoint still copies them.
            tracing::warn!(path = %self.path.display(), %error, "checkpoint before the WAL restarts failed");
        }
    }

    fn drain_into(&mut self, batch: &mut Vec<AppendRequest>) {
        while batch.len() < self.max_batch {
            match self.requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
    }

    /// Commits a group of appends in one transaction.
    fn commit(&mut self, batch: &[AppendRequest]) -> GroupOutcome {
        match self.try_commit(batch) {
            Ok(committed) => committed,
            Err(error) => {
                // The callers are told "unavailable, retry". Should a failed COMMIT have left
                // its frames in the WAL (a write error after some of them), recovery may still
                // find them; a retry then matches by event id and answers already_recorded,
                // so nothing is recorded twice. The connection is left outside any
                // transaction so the next batch starts clean.
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                self.known.forget_all();
                let error = from_sqlite(&self.path, error);
                tracing::warn!(%error, appends = batch.len(), "event store batch failed");
                GroupOutcome {
                    results: batch.iter().map(|_| Err(error.clone())).collect(),
                    file_head: None,
                    recorded_at: Utc::now(),
                }
            }
        }
    }

    fn try_commit(&mut self, batch: &[AppendRequest]) -> rusqlite::Result<GroupOutcome> {
        // IMMEDIATE takes the write lock now, so waiting for another process's writer is
        // bounded by the busy timeout here rather than failing halfway through.
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let file_head = if self.known.begin_batch(&self.conn)? {
            let head: Option<i64> = self
                .conn
                .prepare_cached("SELECT max(position) FROM events")?
                .query_row([], |row| row.get(0))?;
            head.map(|h| h as u64)
        } else {
            None
        };
        let recorded_at = Utc::now();
        // Taken from the statement cache once per batch, not once per append: each round
        // trip through the cache hashes the SQL text twice and clears the bindings (callgrind:
        // ~6 % of the writer's instructions with 64 writers).
        let mut insert = self.conn.prepare_cached(INSERT_EVENT)?;
        let mut results = Vec::with_capacity(batch.len());
        for request in batch {
            // One INSERT is atomic by itself: a failing statement is undone alone (SQLite's
            // default ABORT) and the transaction goes on. Only an append of several events
            // needs a savepoint to be all-or-nothing within the group.
            let request = &request.append;
            let savepoint = request.events.len() > 1;
            if savepoint {
                self.conn.prepare_cached("SAVEPOINT append")?.execute([])?;
            }
            match append_one(
                &self.conn,
                &mut insert,
                &mut self.known,
                request,
                recorded_at,
            ) {
                Ok(outcome) => {
                    if savepoint {
                        self.conn.prepare_cached("RELEASE append")?.execute([])?;
                    }
                    results.push(Ok(outcome));
                }
                Err(refusal) => {
                    if savepoint {
                        self.conn
                            .prepare_cached("ROLLBACK TO append")?
                            .execute([])?;
                        self.conn.prepare_cached("RELEASE append")?.execute([])?;
                    }
                    match refusal {
                        Refusal::Refused(error) => results.push(Err(error)),
                        Refusal::Sqlite(error) if aborts_batch(&error) => return Err(error),
                        Refusal::Sqlite(error) => {
                            // A constraint the checks above should have prevented: the
                            // memory of the streams may be wrong, so it is rebuilt from the
                            // file.
                            self.known.forget_all();
                            results.push(Err(from_sqlite(&self.path, error)));
                        }
                    }
                }
            }
        }
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(GroupOutcome {
            results,
            file_head,
            recorded_at,
        })
    }
}

/// What committing one group came to: one result per request, in order, and the file's last
/// position when another connection had committed since the last group (so the head also
/// shows what that connection wrote).
struct GroupOutcome {
    results: Vec<Result<Recorded, StoreError>>,
    file_head: Option<u64>,
    recorded_at: DateTime<Utc>,
}

/// Why one append inside a batch did not go through.
enum Refusal {
    /// The store's rules refused it; the rest of the batch goes on.
    Refused(StoreError),
    /// SQLite failed; whether the batch survives depends on the error.
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for Refusal {
    fn from(error: rusqlite::Error) -> Self {
        Refusal::Sqlite(error)
    }
}

/// One append inside the open transaction: idempotency first (a retry succeeds whatever it
/// expects), then the expected version, then the inserts.
fn append_one(
    conn: &Connection,
    insert: &mut Statement<'_>,
    known: &mut KnownStreams,
    request: &Append,
    recorded_at: DateTime<Utc>,
) -> Result<Recorded, Refusal> {
    let stream = request.stream.as_str();
    let mut known = known.get(conn, stream)?;
    if let Some(existing) = already_recorded(&known, request)? {
        return Ok(Recorded {
            events: existing,
            already_recorded: true,
        });
    }

    let actual = known.last_version;
    let matches = match request.expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => actual.is_none(),
        ExpectedVersion::Exact(v) => actual == Some(v),
    };
    if !matches {
        return Err(Refusal::Refused(StoreError::WrongExpectedVersion {
            stream: stream.to_owned(),
            expected: request.expected,
            actual,
        }));
    }

    let first_version = actual.map_or(0, |v| v + 1);
    let mut appended = Vec::with_capacity(request.events.len());
    for (offset, event) in request.events.iter().enumerate() {
        let version = first_version + offset as u64;
        insert.execute(params![
            stream,
            version as i64,
            event.event_id.as_bytes().as_slice(),
            event.event_type,
            event.schema_version,
            event.occurred_at.timestamp(),
            event.occurred_at.timestamp_subsec_nanos(),
            recorded_at.timestamp(),
            recorded_at.timestamp_subsec_nanos(),
            event.data,
            event.metadata,
        ])?;
        appended.push(AppendedEvent {
            event_id: event.event_id,
            version,
            position: conn.last_insert_rowid() as u64,
        });
    }

    // Remembered before the caller releases the savepoint: if that release or the batch's
    // COMMIT fails, the batch's error path forgets every stream (`Writer::commit`).
    known.appended(&appended);
    Ok(Recorded {
        events: appended,
        already_recorded: false,
    })
}

/// The recorded places of the request's events when all of them are already in the stream;
/// None when none are; `PartiallyRecorded` when only some are.
fn already_recorded(
    known: &KnownStream,
    request: &Append,
) -> Result<Option<Vec<AppendedEvent>>, Refusal> {
    let mut found = Vec::new();
    let mut missing = false;
    for event in &request.events {
        match known.ids.get(&event.event_id) {
            Some(place) => found.push(AppendedEvent {
                event_id: event.event_id,
                version: place.version,
                position: place.position,
            }),
            None => missing = true,
        }
    }
    match (found.first(), missing) {
        (None, _) => Ok(None),
        (Some(_), false) => Ok(Some(found)),
        (Some(recorded), true) => Err(Refusal::Refused(StoreError::PartiallyRecorded {
            stream: request.stream.clone(),
            event_id: recorded.event_id,
        })),
    }
}
