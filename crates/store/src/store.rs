use async_trait::async_trait;
use tokio::sync::watch;

use crate::{AppendOutcome, ExpectedVersion, NewEvent, RecordedEvent, StoreError};

/// An append-only store of streams of events with a global order.
///
/// The contract (proved for each backend by [`crate::conformance::run`]):
/// * `append` writes all of its events or none, durably before it returns, after checking
///   `expected` against the stream's last version.
/// * Appending events whose ids are all already in the stream writes nothing and returns the
///   versions they have (`already_recorded`); some-but-not-all is `PartiallyRecorded`.
/// * Global positions strictly increase in commit order: once a reader has seen position p,
///   no event with a position below p can become visible later.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` (at least one) to `stream`.
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError>;

    /// Up to `limit` events of `stream` with version >= `from_version`, in version order.
    /// A stream that does not exist reads as empty.
    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events with position >= `from_position`, in global order (`$all`).
    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The last version of `stream`, or None when it has no events.
    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError>;

    /// The position of the last committed event (0 when the store is empty).
    async fn head_position(&self) -> Result<u64, StoreError>;

    /// The newest committed position this process knows of. Subscriptions wait on it instead
    /// of polling; a backend whose commits can come from other processes feeds it from the
    /// database's own notifications.
    fn watch_head(&self) -> watch::Receiver<u64>;

    /// Looks at the database for commits by other processes, makes them visible to this
    /// process's reads and head, and returns the head. For a process that reads a store
    /// another process writes — a rebuild or `events tail` beside a running server on the
    /// embedded store, whose reads otherwise stop at what this process itself committed and
    /// synced. Backends whose reads are not bounded by this process's head, and whose head
    /// follows the database's own notifications, have nothing to do.
    async fn observe_other_writers(&self) -> Result<u64, StoreError> {
        Ok(*self.watch_head().borrow())
    }

    /// Why the store has stopped for good in this process, or None while it works or may
    /// recover by itself. A stopped store refuses every append until a new process opens it
    /// (the embedded store after a failed sync, when what the disk holds is no longer known),
    /// so a liveness check reports it and a supervisor restarts the process. Trouble a backend
    /// recovers from (a full disk, a lock, a database that went away) is not stopping.
    fn stopped(&self) -> Option<String> {
        None
    }
}
