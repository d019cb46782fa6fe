//! The embedded backend on SQLite: one file in the data dir, nothing to install.
//!
//! * One writer thread owns the only read-write connection and commits appends in groups
//!   (see [`writer`]): one transaction per group, each caller told its own result once a sync
//!   covers it.
//! * Reads run on a small pool of read-only connections (see [`reader`]); in WAL mode they
//!   never wait for the writer.
//! * The file is WAL; the syncer (see [`syncer`]) syncs it after each group, and when `append`
//!   returns, or a read shows an event, it is on disk.

mod checkpointer;
mod errors;
mod known_streams;
mod reader;
mod recent;
mod schema;
mod syncer;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

pub use schema::{APPLICATION_ID, SCHEMA_VERSION};

use self::checkpointer::Checkpointer;
use self::reader::ReadPool;
use self::recent::RecentEvents;
use self::syncer::{Poison, SYNC_BACKLOG, SyncFn, Syncer};
use self::writer::{Answer, Append, AppendRequest, PreparedEvent, Writer, WriterCounters};
use crate::validation::{check_append, check_event_size};
use crate::{
    AppendOutcome, DEFAULT_MAX_EVENT_BYTES, EventStore, ExpectedVersion, NewEvent, RecordedEvent,
    StoreError,
};

/// How the embedded store behaves; `Default` is what `serve` uses.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// The largest event accepted: serialized data plus metadata, in bytes.
    pub max_event_bytes: usize,
    /// How long a write or read waits for a lock held by another connection (say, a second
    /// process on the same file) before the store answers `Unavailable`.
    pub busy_timeout: Duration,
    /// The most appends committed in one transaction.
    pub max_batch: usize,
    /// Appends that may wait for the writer before `append` itself waits (back-pressure).
    pub queue_capacity: usize,
    /// Read-only connections kept open between reads.
    pub read_connections: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            busy_timeout: Duration::from_secs(5),
            max_batch: 1024,
            queue_capacity: 4096,
            read_connections: 4,
        }
    }
}

/// How appends have been grouped so far (for metrics, and for tests of group commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Batches the writer has taken from its queue (each one transaction, committed or not).
    pub batches: u64,
    /// Append requests it has taken from its queue.
    pub appends: u64,
    /// Checkpoints it ran so that the WAL could start over (see `checkpointer`).
    pub restart_checkpoints: u64,
}

/// The embedded event store. Dropping it lets the writer finish the batch at hand and closes
/// the file.
pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    /// `None` on a store opened for reading only ([`SqliteStore::open_reading`]), and while
    /// dropping: closing the channel is what stops the writer.
    requests: Option<mpsc::Sender<AppendRequest>>,
    writer_thread: Option<JoinHandle<()>>,
    /// Ends after the writer, once it has answered every committed group.
    syncer_thread: Option<JoinHandle<()>>,
    /// Dropping it stops the background checkpointer.
    stop_checkpointer: Option<std::sync::mpsc::Sender<()>>,
    checkpointer_thread: Option<JoinHandle<()>>,
    counters: Arc<WriterCounters>,
    readers: Arc<ReadPool>,
    /// One permit per pooled read connection: more concurrent reads than connections would
    /// open and close a connection per read (schema parse included) and pile up blocking
    /// threads; waiting for a pooled one is far cheaper.
    read_permits: Arc<Semaphore>,
    head: watch::Receiver<u64>,
    /// The syncer's sender, shared: `observe_other_writers` moves the head to other
    /// processes' commits (never back: both only raise it).
    head_tx: watch::Sender<u64>,
    /// Set for good by a failed sync (see `syncer`).
    poison: Arc<Poison>,
    /// What live subscribers read instead of the file (see `recent`).
    recent: Arc<RecentEvents>,
}

impl SqliteStore {
    /// Opens the store at `path`, creating it when absent. A file that is not a Switchboard
    /// event store (not SQLite, another application's database, a newer schema) is refused
    /// with [`StoreError::Corrupt`] naming it, and left untouched.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        Self::open_with_sync(path, options, syncer::fdatasync())
    }

    /// Opens the store at `path` for a process that only reads it, beside the one that appends
    /// (`switchboard rebuild`, `events read` and `events tail` next to a running server): no
    /// writer, syncer or background checkpointer, so such a process never checkpoints or
    /// syncs the server's file behind its back. Other processes' commits become visible
    /// through [`EventStore::observe_other_writers`] (a subscription waits for those calls:
    /// no syncer of this process moves the head); appends are refused. The file is checked,
    /// and created on a new data dir, as [`SqliteStore::open`] does.
    pub fn open_reading(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        create_parent_dir(path)?;
        // Checks what the file is (and creates or migrates it); closed again at once.
        drop(schema::open_writer(path, options.busy_timeout)?);
        let (readers, read_permits, head_position) = open_readers(path, &options)?;
        sync_other_writers(path)?;
        let (head_tx, head_rx) = watch::channel(head_position);
        Ok(SqliteStore {
            path: path.to_path_buf(),
            options,
            requests: None,
            writer_thread: None,
            syncer_thread: None,
            stop_checkpointer: None,
            checkpointer_thread: None,
            counters: Arc::default(),
            readers,
            read_permits,
            head: head_rx,
            head_tx,
            poison: Arc::default(),
            recent: Arc::default(),
        })
    }

    /// [`SqliteStore::open`] with the WAL made durable by `sync`, so tests can hold or fail it.
    fn open_with_sync(
        path: &Path,
        options: SqliteOptions,
        mut sync: SyncFn,
    ) -> Result<SqliteStore, StoreError> {
        create_parent_dir(path)?;
        let conn = schema::open_writer(path, options.busy_timeout)?;
        let wal = syncer::open_wal(path, &mut sync)?;
        let (readers, read_permits, head_position) = open_readers(path, &options)?;
        let (head_tx, head_rx) = watch::channel(head_position);
        let (stop_checkpointer, stop) = std::sync::mpsc::channel();
        let restart = Arc::new(AtomicBool::new(false));
        let poison = Arc::new(Poison::default());
        let checkpointer = Checkpointer {
            restart: Arc::clone(&restart),
            conn: schema::open_checkpointer(path)?,
            database: File::open(path).map_err(|e| {
                StoreError::Unavailable(format!("{}: cannot open: {e}", path.display()))
            })?,
            sync: syncer::fdatasync(),
            checkpointed: 0,
            poison: Arc::clone(&poison),
            path: path.to_path_buf(),
            head: head_rx.clone(),
            stop,
        };
        let checkpointer_thread = std::thread::Builder::new()
            .name("event-store-checkpointer".to_owned())
            .spawn(move || checkpointer.run())
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the checkpointer thread: {e}"))
            })?;
        let (committed_tx, committed_rx) = std::sync::mpsc::sync_channel(SYNC_BACKLOG);
        let recent = Arc::new(RecentEvents::default());
        let syncer = Syncer::new(
            wal,
            sync,
            committed_rx,
            head_tx.clone(),
            Arc::clone(&poison),
            Arc::clone(&recent),
        );
        let (requests_tx, requests_rx) = mpsc::channel(options.queue_capacity.max(1));
        let counters = Arc::new(WriterCounters::default());
        let writer = Writer {
            conn,
            path: path.to_path_buf(),
            requests: requests_rx,
            committed: committed_tx,
            max_batch: options.max_batch.max(1),
            counters: Arc::clone(&counters),
            known: Default::default(),
            restart,
            poison: Arc::clone(&poison),
        };
        let syncer_thread = std::thread::Builder::new()
            .name("event-store-syncer".to_owned())
            .spawn(move || syncer.run())
            .map_err(|e| StoreError::Unavailable(format!("cannot start the syncer thread: {e}")))?;
        let writer_thread = std::thread::Builder::new()
            .name("event-store-writer".to_owned())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            options,
            requests: Some(requests_tx),
            writer_thread: Some(writer_thread),
            syncer_thread: Some(syncer_thread),
            stop_checkpointer: Some(stop_checkpointer),
            checkpointer_thread: Some(checkpointer_thread),
            counters,
            readers,
            read_permits,
            head: head_rx,
            head_tx,
            poison,
            recent,
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends waiting for the writer right now.
    pub fn pending_appends(&self) -> usize {
        self.requests
            .as_ref()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    pub fn writer_stats(&self) -> WriterStats {
        WriterStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            appends: self.counters.appends.load(Ordering::Relaxed),
            restart_checkpoints: self.counters.restart_checkpoints.load(Ordering::Relaxed),
        }
    }

    /// Runs a blocking read on a pooled read-only connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T, reader::ReadError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = Arc::clone(&self.read_permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            readers.with(|conn, _| read(conn))
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }

    /// Runs a short read on the caller's thread when a pooled connection is free, and on the
    /// blocking pool otherwise. A read of a few rows from the page cache takes microseconds,
    /// less than handing it to a pool thread and waking the caller again (the ingest path
    /// reads every stream it has not seen yet, and paid more for the hop than for the read).
    async fn read_short<T: Send + 'static>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T, reader::ReadError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match self.read_permits.try_acquire() {
            Ok(_permit) => self.readers.with(|conn, _| read(conn)),
            Err(_) => self.read(read).await,
        }
    }

    /// Validates and serializes on the caller's task, so oversize or malformed appends are
    /// refused before they reach the writer and the writer does SQLite work only.
    fn prepare(
        &self,
        stream: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<PreparedEvent>, StoreError> {
        check_append(stream, &events)?;
        events
            .into_iter()
            .map(|event| {
                let data = serialize(&event.data)?;
                let metadata = serialize(&event.metadata)?;
                check_event_size(
                    event.event_id,
                    data.len() + metadata.len(),
                    self.options.max_event_bytes,
                )?;
                Ok(PreparedEvent {
                    event_id: event.event_id,
                    event_type: event.event_type,
                    schema_version: event.schema_version,
                    occurred_at: event.occurred_at,
                    data,
                    metadata,
                })
            })
            .collect()
    }
}

/// Syncs the WAL of the store at `path`, so that what other processes committed to it (and
/// may not have synced yet) survives a power loss before this one shows it.
fn sync_other_writers(path: &Path) -> Result<(), StoreError> {
    let wal = syncer::wal_path(path);
    match std::fs::File::open(&wal) {
        Ok(file) => file.sync_data(),
        // Copied into the file and synced there by a checkpoint before the WAL went.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
    .map_err(|e| StoreError::Unavailable(format!("{}: cannot sync: {e}", wal.display())))
}

/// The pool of read-only connections, its permits, and the head the file holds now.
fn open_readers(
    path: &Path,
    options: &SqliteOptions,
) -> Result<(Arc<ReadPool>, Arc<Semaphore>, u64), StoreError> {
    let connections = options.read_connections.max(1);
    let readers = Arc::new(ReadPool::new(
        path.to_path_buf(),
        options.busy_timeout,
        connections,
    ));
    let head_position = readers.with(|conn, _| reader::head_position(conn))?;
    Ok((
        readers,
        Arc::new(Semaphore::new(connections)),
        head_position,
    ))
}

fn create_parent_dir(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    Ok(())
}

fn serialize(value: &serde_json::Value) -> Result<String, StoreError> {
    // A `Value` always serializes; the error path is here only because the API has one.
    serde_json::to_string(value).map_err(|e| StoreError::InvalidAppend(e.to_string()))
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        self.poison.check()?;
        let events = self.prepare(stream, events)?;
        let requests = self.requests.as_ref().ok_or_else(|| {
            StoreError::Backend(format!(
                "{} was opened for reading only; appends go through the process that serves it",
                self.path.display()
            ))
        })?;
        let (reply, answer) = oneshot::channel();
        let append = Append {
            stream: stream.to_owned(),
            expected,
            events,
        };
        requests
            .send(AppendRequest { append, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        let Answer { result, append } = answer.await.map_err(|_| StoreError::Closed)?;
        let recorded = result?;
        Ok(AppendOutcome {
            stream: append.stream,
            events: recorded.events,
            already_recorded: recorded.already_recorded,
        })
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.to_owned();
        let upto = *self.head.borrow();
        let read = move |conn: &rusqlite::Connection| {
            reader::read_stream(conn, &stream, from_version, limit, upto)
        };
        if limit <= SHORT_READ_EVENTS {
            self.read_short(read).await
        } else {
            self.read(read).await
        }
    }

    /// A large page of events already known committed is read in two halves on two
    /// connections at once (two cores): catch-up readers (a rebuild, a projector behind) get
    /// pages about twice as fast. Only what is known committed is split: one writer commits
    /// positions in order, so every position up to the head seen before both reads is visible
    /// to both, and the first half is complete whenever the second half sees anything.
    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let half = limit / 2;
        let head = *self.head.borrow();
        // Every read stops at the head: past it there is nothing to read. (A subscriber that
        // has caught up asks exactly that after each page.)
        if from_position > head {
            return Ok(Vec::new());
        }
        if let Some(page) = self.recent.read(from_position, limit, head) {
            return Ok(page);
        }
        let mid = from_position.saturating_add(half as u64);
        if half < SPLIT_PAGE_HALF || mid.saturating_sub(1) > head {
            return self
                .read(move |conn| reader::read_all(conn, from_position, limit, head))
                .await;
        }
        let rest = limit - half;
        let (first, second) = tokio::join!(
            self.read(move |conn| reader::read_range(conn, from_position, mid, half)),
            self.read(move |conn| reader::read_all(conn, mid, rest, head)),
        );
        let (mut events, second) = (first?, second?);
        let short = half - events.len();
        let second_full = second.len() == rest;
        let resume = second.last().map(|e| e.position + 1);
        events.extend(second);
        // Positions this store hands out have no gaps, but a file migrated from an older
        // layout might: a short first half leaves room that the next positions fill.
        if short > 0
            && second_full
            && let Some(resume) = resume
        {
            let more = self
                .read(move |conn| reader::read_all(conn, resume, short, head))
                .await?;
            events.extend(more);
        }
        Ok(events)
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        let stream = stream.to_owned();
        let upto = *self.head.borrow();
        self.read_short(move |conn| reader::stream_version(conn, &stream, upto))
            .await
    }

    /// The synced head. Read from the file too, so that asking (readiness does) also checks
    /// that the store can be read, and refused once a sync has failed.
    async fn head_position(&self) -> Result<u64, StoreError> {
        self.poison.check()?;
        let in_file = self.read(reader::head_position).await?;
        Ok(in_file.min(*self.head.borrow()))
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }

    /// The file's head. Its newest commits may not be synced yet by the process that made
    /// them, so the WAL is synced before the head moves: a read never shows what a power loss
    /// could take back. Meant for processes that only read (see the trait).
    async fn observe_other_writers(&self) -> Result<u64, StoreError> {
        self.poison.check()?;
        let in_file = self.read(reader::head_position).await?;
        if in_file <= *self.head.borrow() {
            return Ok(*self.head.borrow());
        }
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || sync_other_writers(&path))
            .await
            .map_err(|e| StoreError::Unavailable(format!("syncing the WAL: {e}")))??;
        syncer::raise_head(&self.head_tx, in_file);
        Ok(*self.head.borrow())
    }

    fn stopped(&self) -> Option<String> {
        self.poison.reason()
    }
}

/// Stream reads of at most this many events are short enough to run on the caller's thread
/// (see `read_short`): the ingest path's read of a new call's stream took ~5 µs (perf, at
/// 7,700 deliveries/s), page cache permitting.
pub const SHORT_READ_EVENTS: usize = 32;

/// Pages of at least twice this many events are read in two halves at once.
const SPLIT_PAGE_HALF: usize = 256;

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer's loop once it has committed what it holds, and
        // the syncer's once it has answered that; joining them means the file is closed when
        // drop returns, so the same file can be opened again right away. The checkpointer
        // goes first, so the writer's connection is the last read-write one to close and
        // checkpoints the WAL.
        self.stop_checkpointer.take();
        if let Some(thread) = self.checkpointer_thread.take() {
            let _ = thread.join();
        }
        self.requests.take();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
        if let Some(thread) = self.syncer_thread.take() {
            let _ = thread.join();
        }
    }
}
