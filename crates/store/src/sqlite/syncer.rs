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

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;

use tokio::sync::{oneshot, watch};

use super::writer::Answer;
use crate::StoreError;

/// How the WAL is made durable: `fdatasync` in the store, something slower or failing in
/// tests.
pub(crate) type SyncFn = Box<dyn FnMut(&File) -> io::Result<()> + Send>;

pub(crate) fn fdatasync() -> SyncFn {
    Box::new(|file: &File| file.sync_data())
}

/// One committed group on its way to its callers.
pub(crate) struct Committed {
    pub answers: Vec<(oneshot::Sender<Answer>, Answer)>,
    /// The last position the group wrote, if it wrote anything.
    pub head: Option<u64>,
}

pub(crate) struct Syncer {
    wal: File,
    wal_path: PathBuf,
    sync: SyncFn,
    committed: Receiver<Committed>,
    head: watch::Sender<u64>,
    /// The highest position committed so far: after a failed sync it stays ahead of the head,
    /// and the next successful sync shows it.
    committed_head: u64,
}

/// The WAL file next to the store file, as SQLite names it.
pub(crate) fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Opens the WAL file of a store whose writer connection is open (so the file exists, and
/// stays while the writer lives) and syncs it: whatever an earlier process committed but may
/// not have synced becomes durable before this one shows it.
pub(crate) fn open_wal(path: &Path, sync: &mut SyncFn) -> Result<(File, PathBuf), StoreError> {
    let wal_path = wal_path(path);
    let wal = File::open(&wal_path)
        .and_then(|wal| sync(&wal).map(|()| wal))
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
    ) -> Syncer {
        let committed_head = *head.borrow();
        Syncer {
            wal,
            wal_path,
            sync,
            committed,
            head,
            committed_head,
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
            match (self.sync)(&self.wal) {
                Ok(()) => {
                    // The head moves before anyone is told, so a caller that reads right after
                    // its append returns, or a subscriber woken by the head, sees the commit.
                    let committed_head = self.committed_head;
                    self.head.send_if_modified(|head| {
                        let moved = committed_head > *head;
                        if moved {
                            *head = committed_head;
                        }
                        moved
                    });
                    for (reply, answer) in groups.drain(..).flat_map(|g| g.answers) {
                        // A caller that stopped waiting is no reason to fail the others.
                        let _ = reply.send(answer);
                    }
                }
                Err(error) => {
                    // The groups are in the WAL but not known to be on disk, so nobody is told
                    // they are recorded. A retry is safe: it finds its events by id, and its
                    // answer waits for a sync that succeeds. (Linux may mark pages whose write
                    // failed clean, so that later sync can succeed without them; SQLite's own
                    // sync in FULL mode has the same limit. A disk that fails writes needs an
                    // operator, and the warning below is where they learn of it.)
                    let error = StoreError::Unavailable(format!(
                        "{}: cannot sync the write-ahead log: {error}",
                        self.wal_path.display()
                    ));
                    tracing::warn!(%error, groups = groups.len(), "event store sync failed");
                    for (reply, mut answer) in groups.drain(..).flat_map(|g| g.answers) {
                        if answer.result.is_ok() {
                            answer.result = Err(error.clone());
                        }
                        let _ = reply.send(answer);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;

    use chrono::Utc;
    use serde_json::json;
    use tempfile::TempDir;
    use uuid::Uuid;

    use super::*;
    use crate::sqlite::{SqliteOptions, SqliteStore};
    use crate::{EventStore, ExpectedVersion, NewEvent};

    /// A sync the test can hold, or make fail, before it reaches the disk.
    #[derive(Default)]
    struct Gate {
        held: Mutex<bool>,
        released: Condvar,
        fail: AtomicBool,
    }

    impl Gate {
        fn sync(self: &Arc<Self>) -> SyncFn {
            let gate = Arc::clone(self);
            Box::new(move |file: &File| {
                let mut held = gate.held.lock().unwrap();
                while *held {
                    held = gate.released.wait(held).unwrap();
                }
                if gate.fail.load(Ordering::SeqCst) {
                    return Err(io::Error::other("injected sync failure"));
                }
                file.sync_data()
            })
        }

        fn hold(&self, held: bool) {
            *self.held.lock().unwrap() = held;
            self.released.notify_all();
        }
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
        let dir = TempDir::new().unwrap();
        let gate = Arc::new(Gate::default());
        let store = open(&dir, &gate);
        let first = store
            .append("s", ExpectedVersion::NoStream, event(Uuid::new_v4()))
            .await
            .unwrap();
        let before = shown(&store, "s").await;
        assert_eq!(before, (1, 1, Some(0), first.events[0].position));

        gate.hold(true);
        let pending = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                store
                    .append("s", ExpectedVersion::Exact(0), event(Uuid::new_v4()))
                    .await
            }
        });
        // Wait until the writer has committed the group (it counts a batch when it takes it;
        // the commit follows within milliseconds), then give it time it does not need.
        while store.writer_stats().batches < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!pending.is_finished(), "answered before its sync");
        assert_eq!(shown(&store, "s").await, before, "shown before its sync");

        gate.hold(false);
        let second = pending.await.unwrap().unwrap();
        assert_eq!(second.events[0].version, 1);
        assert_eq!(
            shown(&store, "s").await,
            (2, 2, Some(1), second.events[0].position)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_answers_unavailable_and_a_retry_is_recorded_once() {
        let dir = TempDir::new().unwrap();
        let gate = Arc::new(Gate::default());
        let store = open(&dir, &gate);
        let id = Uuid::new_v4();

        gate.fail.store(true, Ordering::SeqCst);
        let failed = store
            .append("s", ExpectedVersion::NoStream, event(id))
            .await;
        assert!(
            matches!(&failed, Err(StoreError::Unavailable(m)) if m.contains("cannot sync")),
            "{failed:?}"
        );
        assert_eq!(shown(&store, "s").await, (0, 0, None, 0));

        gate.fail.store(false, Ordering::SeqCst);
        let retried = store
            .append("s", ExpectedVersion::NoStream, event(id))
            .await
            .unwrap();
        assert!(retried.already_recorded);
        assert_eq!(
            shown(&store, "s").await,
            (1, 1, Some(0), retried.events[0].position)
        );
    }
}
