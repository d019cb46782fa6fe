//! Makes committed groups durable and only then answers their callers and shows them to
//! readers.
//!
//! The writer commits with `synchronous=NORMAL`, so SQLite writes a group's WAL frames but does
//! not sync them; this thread syncs the WAL file (`fdatasync`) while the writer already commits
//! the next group. With `synchronous=FULL` the writer sat idle in every commit's sync (about a
//! third of its time with 64 writers); now the sync of one group overlaps the work of the next,
//! and one sync covers every group committed while the previous one ran.
//!
//! What a caller and a reader may see is unchanged: an append is answered only after a sync
//! that began after its commit returned, and the head — which caps every read and wakes every
//! subscriber — moves only then, so nothing a power loss could take back is ever handed out.
//!
//! A failed sync stops the store for good (until it is reopened). Unlike a failed sync inside
//! SQLite's commit, which keeps the commit from ever being published, ours comes after the
//! commit is visible in the WAL, and Linux may mark the pages whose write failed as clean: a
//! later sync could then succeed without them, and a retry answered "already recorded" from the
//! writer's memory would be acknowledged while lost. So after the first failure nothing is
//! acknowledged and the head never moves again; the store answers `Unavailable` (readiness
//! included) until someone has looked at the disk and restarted it.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use tokio::sync::{oneshot, watch};

use super::recent::RecentEvents;
use super::writer::Answer;
use crate::{RawJson, RecordedEvent, StoreError};

/// How the WAL is made durable: `fdatasync` in the store, something slower or failing in
/// tests.
pub(crate) type SyncFn = Box<dyn FnMut(&File) -> io::Result<()> + Send>;

pub(crate) fn fdatasync() -> SyncFn {
    Box::new(|file: &File| file.sync_data())
}

/// Committed groups the writer may hand over before it waits for the syncer.
pub(crate) const SYNC_BACKLOG: usize = 64;

/// One committed group on its way to its callers.
pub(crate) struct Committed {
    pub answers: Vec<(oneshot::Sender<Answer>, Answer)>,
    /// The last position the group wrote, or that another connection wrote before it.
    pub head: Option<u64>,
    /// The time the group's events were recorded at.
    pub recorded_at: DateTime<Utc>,
}

impl Committed {
    /// The events this group added, as a read of the file returns them.
    fn recorded_events(&self) -> impl Iterator<Item = RecordedEvent> + '_ {
        self.answers
            .iter()
            .filter_map(|(_, answer)| match &answer.result {
                Ok(recorded) if !recorded.already_recorded => Some((recorded, &answer.append)),
                _ => None,
            })
            .flat_map(move |(recorded, append)| {
                recorded
                    .events
                    .iter()
                    .zip(&append.events)
                    .map(move |(place, event)| RecordedEvent {
                        event_id: place.event_id,
                        stream: append.stream.clone(),
                        version: place.version,
                        position: place.position,
                        event_type: event.event_type.clone(),
                        schema_version: event.schema_version,
                        occurred_at: event.occurred_at,
                        recorded_at: self.recorded_at,
                        data: RawJson::from_stored(&event.data),
                        metadata: RawJson::from_stored(&event.metadata),
                    })
            })
    }
}

/// Set by the first failed sync; the store refuses everything after it.
#[derive(Debug, Default)]
pub(crate) struct Poison(OnceLock<String>);

impl Poison {
    /// `Unavailable` once a sync has failed.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        match self.0.get() {
            Some(reason) => Err(StoreError::Unavailable(reason.clone())),
            None => Ok(()),
        }
    }

    /// Why the store stopped, once a sync has failed.
    pub(crate) fn reason(&self) -> Option<String> {
        self.0.get().cloned()
    }

    /// Stops the store after a failed sync of `file` (`what` says which file it is), and says
    /// so in the log. Linux may mark pages whose write failed as clean, so a later sync proves
    /// nothing; what the failed one covered is still in the WAL, which a stopped store never
    /// lets start over. Reopened by a process that is alone on the file, SQLite rebuilds the
    /// WAL's index from the WAL and copies every frame anew; a process still holding the file
    /// (`events tail`, a rebuild) keeps the old index alive.
    pub(crate) fn stop(&self, file: &Path, what: &str, error: &io::Error) {
        let reason = format!(
            "{}: stopped after a failed sync of {what} ({error}); nothing more is acknowledged \
             until the store is reopened: check the disk, stop every process using the store, \
             then restart",
            file.display()
        );
        tracing::error!(%reason, "event store sync failed");
        let _ = self.0.set(reason);
    }
}

pub(crate) struct Syncer {
    wal: File,
    wal_path: PathBuf,
    sync: SyncFn,
    committed: Receiver<Committed>,
    head: watch::Sender<u64>,
    /// The highest position committed so far.
    committed_head: u64,
    poison: Arc<Poison>,
    /// Durable events for live readers, filled before the head moves past them.
    recent: Arc<RecentEvents>,
}

/// The WAL file next to the store file, as SQLite names it.
pub(crate) fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Opens the WAL file of a store whose writer connection is open (so the file exists, and
/// stays while the writer lives) and syncs it: whatever an earlier process committed but may
/// not have synced becomes durable before this one shows it. The directory is synced too, so
/// the WAL file's own entry survives a power loss (SQLite's first sync of a new WAL does the
/// same).
pub(crate) fn open_wal(path: &Path, sync: &mut SyncFn) -> Result<(File, PathBuf), StoreError> {
    let wal_path = wal_path(path);
    let dir = match wal_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let wal = File::open(&wal_path)
        .and_then(|wal| sync(&wal).map(|()| wal))
        .and_then(|wal| File::open(dir)?.sync_all().map(|()| wal))
        .map_err(|e| {
            StoreError::Unavailable(format!("{}: cannot sync: {e}", wal_path.display()))
        })?;
    Ok((wal, wal_path))
}

impl Syncer {
    pub(crate) fn new(
        (wal, wal_path): (File, PathBuf),
        sync: SyncFn,
        committed: Receiver<Committed>,
        head: watch::Sender<u64>,
        poison: Arc<Poison>,
        recent: Arc<RecentEvents>,
    ) -> Syncer {
        let committed_head = *head.borrow();
        Syncer {
            wal,
            wal_path,
            sync,
            committed,
            head,
            committed_head,
            poison,
            recent,
        }
    }

    /// Serves until the writer is gone, then answers what it holds.
    pub(crate) fn run(mut self) {
        let mut groups = Vec::new();
        while let Ok(first) = self.committed.recv() {
            groups.push(first);
            groups.extend(self.committed.try_iter());
            let new_head = groups.iter().filter_map(|group| group.head).max();
            if let Some(new_head) = new_head {
                self.committed_head = self.committed_head.max(new_head);
            }
            let synced = self.poison.check().is_ok() && self.sync_wal();
            if synced {
                self.recent
                    .extend(groups.iter().flat_map(Committed::recorded_events));
            }
            let answers = groups.drain(..).flat_map(|group| group.answers);
            if synced {
                // The head moves before anyone is told, so a caller that reads right after
                // its append returns, or a subscriber woken by the head, sees the commit.
                raise_head(&self.head, self.committed_head);
                for (reply, answer) in answers {
                    // A caller that stopped waiting is no reason to fail the others.
                    let _ = reply.send(answer);
                }
            } else {
                // Not known to be on disk: nobody is told anything is recorded, nor shown it.
                for (reply, mut answer) in answers {
                    if let Err(error) = self.poison.check() {
                        answer.result = Err(error);
                    }
                    let _ = reply.send(answer);
                }
            }
        }
    }

    /// Syncs the WAL; on failure poisons the store and says so in the log.
    fn sync_wal(&mut self) -> bool {
        match (self.sync)(&self.wal) {
            Ok(()) => true,
            Err(error) => {
                self.poison
                    .stop(&self.wal_path, "the write-ahead log", &error);
                false
            }
        }
    }
}

/// Moves the head up to `to`, never back (the syncer and `observe_other_writers` both raise
/// it), waking subscribers only when it moved.
pub(crate) fn raise_head(head: &watch::Sender<u64>, to: u64) {
    head.send_if_modified(|head| {
        let moved = to > *head;
        if moved {
            *head = to;
        }
        moved
    });
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;

    use chrono::Utc;
    use serde_json::json;
    use tempfile::TempDir;
    use tokio::task::JoinHandle;
    use uuid::Uuid;

    use super::*;
    use crate::sqlite::{SqliteOptions, SqliteStore};
    use crate::{AppendOutcome, EventStore, ExpectedVersion, NewEvent};

    /// A sync the test can hold or make fail before it reaches the disk. Sync calls are
    /// numbered from 1 (the one at open); a call numbered above `allowed` waits.
    struct Gate {
        state: Mutex<GateState>,
        changed: Condvar,
    }

    struct GateState {
        entered: u64,
        allowed: u64,
        fail: bool,
        panic: bool,
    }

    impl Gate {
        fn new() -> Arc<Gate> {
            Arc::new(Gate {
                state: Mutex::new(GateState {
                    entered: 0,
                    allowed: u64::MAX,
                    fail: false,
                    panic: false,
                }),
                changed: Condvar::new(),
            })
        }

        fn sync(self: &Arc<Self>) -> SyncFn {
            let gate = Arc::clone(self);
            Box::new(move |file: &File| {
                let mut state = gate.state.lock().unwrap();
                state.entered += 1;
                let call = state.entered;
                gate.changed.notify_all();
                while call > state.allowed {
                    state = gate.changed.wait(state).unwrap();
                }
                if state.fail {
                    return Err(io::Error::other("injected sync failure"));
                }
                assert!(!state.panic, "injected syncer panic");
                file.sync_data()
            })
        }

        fn update(&self, change: impl FnOnce(&mut GateState)) {
            change(&mut self.state.lock().unwrap());
            self.changed.notify_all();
        }

        fn entered(&self) -> u64 {
            self.state.lock().unwrap().entered
        }

        /// Waits until sync call `call` has begun (failing the test after 10 s).
        async fn until_entered(&self, call: u64) {
            until(|| self.entered() >= call, "a sync that never began").await;
        }
    }

    /// Polls `done` until it holds, failing the test after 10 s rather than hanging.
    async fn until(done: impl Fn() -> bool, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited 10 s for {what}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A new store in a temp dir, its sync behind a gate that lets everything through.
    fn fresh() -> (TempDir, Arc<Gate>, Arc<SqliteStore>) {
        let dir = TempDir::new().unwrap();
        let gate = Gate::new();
        let store = open(&dir, &gate);
        (dir, gate, store)
    }

    fn open(dir: &TempDir, gate: &Arc<Gate>) -> Arc<SqliteStore> {
        let path = dir.path().join("events.sqlite");
        Arc::new(SqliteStore::open_with_sync(&path, SqliteOptions::default(), gate.sync()).unwrap())
    }

    fn event(id: Uuid) -> Vec<NewEvent> {
        vec![NewEvent {
            event_id: id,
            event_type: "Noted".to_owned(),
            schema_version: 1,
            occurred_at: Utc::now(),
            data: json!({"n": 1}),
            metadata: json!({}),
        }]
    }

    fn append(
        store: &Arc<SqliteStore>,
        stream: &str,
        id: Uuid,
    ) -> JoinHandle<Result<AppendOutcome, StoreError>> {
        let (store, stream) = (Arc::clone(store), stream.to_owned());
        tokio::spawn(async move { store.append(&stream, ExpectedVersion::Any, event(id)).await })
    }

    /// What the store shows of `stream` through every read: `$all`, the stream, its version
    /// and the head.
    async fn shown(store: &SqliteStore, stream: &str) -> (usize, usize, Option<u64>, u64) {
        (
            store.read_all(0, 100).await.unwrap().len(),
            store.read_stream(stream, 0, 100).await.unwrap().len(),
            store.stream_version(stream).await.unwrap(),
            store.head_position().await.unwrap(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_is_answered_and_shown_only_after_its_wal_is_synced() {
        let (_dir, gate, store) = fresh();
        let first = append(&store, "s", Uuid::new_v4()).await.unwrap().unwrap();
        let before = shown(&store, "s").await;
        assert_eq!(before, (1, 1, Some(0), first.events[0].position));

        let held = gate.entered() + 1;
        gate.update(|g| g.allowed = held - 1);
        let pending = append(&store, "s", Uuid::new_v4());
        // The syncer syncs a group only after the writer committed it: once the sync has
        // begun, the commit is in the file.
        gate.until_entered(held).await;
        assert!(!pending.is_finished(), "answered before its sync");
        assert_eq!(shown(&store, "s").await, before, "shown before its sync");

        gate.update(|g| g.allowed = u64::MAX);
        let second = pending.await.unwrap().unwrap();
        assert_eq!(second.events[0].version, 1);
        assert_eq!(
            shown(&store, "s").await,
            (2, 2, Some(1), second.events[0].position)
        );
    }

    /// An append accepted just before a sync failed, but taken by the writer after it, is
    /// refused without being committed: a stopped store writes nothing more.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_failed_sync_the_writer_commits_nothing_more() {
        let (dir, gate, store) = fresh();
        append(&store, "s", Uuid::new_v4()).await.unwrap().unwrap();
        let failing = gate.entered() + 1;
        gate.update(|g| g.allowed = failing - 1);
        let doomed = append(&store, "s", Uuid::new_v4());
        gate.until_entered(failing).await;

        // The writer's next commit waits behind another connection's write lock, and one
        // more append queues behind it while the store still takes appends.
        let lock = rusqlite::Connection::open(dir.path().join("events.sqlite")).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        let taken = store.writer_stats().appends;
        let in_commit = append(&store, "s", Uuid::new_v4());
        until(
            || store.writer_stats().appends > taken,
            "the writer to take the append",
        )
        .await;
        let queued = append(&store, "s", Uuid::new_v4());
        tokio::time::sleep(Duration::from_millis(50)).await;

        gate.update(|g| {
            g.fail = true;
            g.allowed = u64::MAX;
        });
        assert!(doomed.await.unwrap().is_err());
        lock.execute_batch("ROLLBACK").unwrap();
        assert!(in_commit.await.unwrap().is_err(), "committed, never synced");
        assert!(queued.await.unwrap().is_err());
        let rows: i64 = lock
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            rows, 3,
            "the first append, the doomed one and the one in its commit"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_committed_during_a_sync_waits_for_the_next_sync() {
        let (_dir, gate, store) = fresh();

        let first_sync = gate.entered() + 1;
        gate.update(|g| g.allowed = first_sync - 1);
        let early = append(&store, "a", Uuid::new_v4());
        gate.until_entered(first_sync).await;
        let batches = store.writer_stats().batches;
        let late = append(&store, "b", Uuid::new_v4());
        // Committed while the first sync is still running (the writer does not wait for it).
        until(
            || store.writer_stats().batches > batches,
            "the writer to take the append",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;

        // Let the first sync finish and hold the second.
        gate.update(|g| g.allowed = first_sync);
        let early = early.await.unwrap().unwrap();
        gate.until_entered(first_sync + 1).await;
        assert!(
            !late.is_finished(),
            "answered by a sync that began before its commit"
        );
        assert_eq!(
            store.head_position().await.unwrap(),
            early.events[0].position
        );

        gate.update(|g| g.allowed = u64::MAX);
        let late = late.await.unwrap().unwrap();
        assert_eq!(
            store.head_position().await.unwrap(),
            late.events[0].position
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_stops_the_store_until_it_is_reopened() {
        let (dir, gate, store) = fresh();
        let id = Uuid::new_v4();

        gate.update(|g| g.fail = true);
        let failed = append(&store, "s", id).await.unwrap();
        assert!(
            matches!(&failed, Err(StoreError::Unavailable(m)) if m.contains("failed sync")),
            "{failed:?}"
        );

        // The disk looks fine again, but what the failed sync covered may be lost: a retry
        // must not be acknowledged, nor anything else, and the head must not move.
        gate.update(|g| g.fail = false);
        let retried = append(&store, "s", id).await.unwrap();
        assert!(
            matches!(retried, Err(StoreError::Unavailable(_))),
            "{retried:?}"
        );
        let other = append(&store, "other", Uuid::new_v4()).await.unwrap();
        assert!(
            matches!(other, Err(StoreError::Unavailable(_))),
            "{other:?}"
        );
        assert!(store.head_position().await.is_err(), "readiness must fail");
        let stopped = store.stopped().expect("a stopped store says so");
        assert!(stopped.contains("failed sync"), "{stopped}");
        assert!(store.read_all(0, 100).await.unwrap().is_empty());

        // Reopened (after someone looked at the disk), the store syncs what the file holds
        // and goes on; here the first append did reach the file.
        drop(store);
        let store = open(&dir, &gate);
        assert_eq!(store.stopped(), None);
        let retried = append(&store, "s", id).await.unwrap().unwrap();
        assert!(retried.already_recorded);
        assert_eq!(
            shown(&store, "s").await,
            (1, 1, Some(0), retried.events[0].position)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_syncer_that_dies_stops_the_writer() {
        let (_dir, gate, store) = fresh();

        gate.update(|g| g.panic = true);
        let first = append(&store, "s", Uuid::new_v4()).await.unwrap();
        assert!(matches!(first, Err(StoreError::Closed)), "{first:?}");
        // The writer learns it when it hands over its next group and stops. (That is the
        // second group, or the third when the dying syncer's queue still took the second
        // while it unwound.) Nothing is acknowledged meanwhile.
        for _ in 0..2 {
            let next = append(&store, "s", Uuid::new_v4()).await.unwrap();
            assert!(matches!(next, Err(StoreError::Closed)), "{next:?}");
        }
        let requests = store.requests.as_ref().unwrap();
        for _ in 0..500 {
            if requests.is_closed() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(requests.is_closed(), "the writer went on taking appends");
        // Nothing after that is taken, let alone committed.
        let batches = store.writer_stats().batches;
        let last = append(&store, "s", Uuid::new_v4()).await.unwrap();
        assert!(matches!(last, Err(StoreError::Closed)), "{last:?}");
        assert_eq!(store.writer_stats().batches, batches, "the writer went on");
    }
}
