//! A background thread that copies committed WAL frames into the database file, so the writer
//! does not have to.
//!
//! Checkpointing is the writer's largest cost after writing the WAL itself: with 64 writers,
//! its automatic checkpoints (copying up to `CHECKPOINT_PAGES` pages into the file and syncing
//! it) took 29 % of the writer thread's time (perf, 2026-11-23), and every commit waits while
//! one runs. This thread runs PASSIVE checkpoints a few times a second on a connection of its
//! own: they never take the write lock, so the writer keeps committing meanwhile.
//!
//! The writer keeps its automatic checkpoint as the backstop. A passive checkpoint that
//! overlaps commits cannot leave the WAL fully copied, and SQLite restarts the WAL from its
//! beginning only when a write transaction finds it fully copied; without the writer's own
//! checkpoint the WAL would grow without bound under steady load. When the writer's threshold
//! comes, this thread has already copied nearly everything, so the writer's checkpoint is
//! short.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::watch;

/// How often the thread looks for new commits. Rarer passes copy a page rewritten by many
/// commits (an index leaf of a busy stream) fewer times; each pass costs two fsyncs (the WAL,
/// then the database file).
const INTERVAL: Duration = Duration::from_millis(200);

pub(crate) struct Checkpointer {
    pub conn: Connection,
    pub path: PathBuf,
    /// The writer's head: a pass runs only when it moved, so an idle store costs nothing.
    pub head: watch::Receiver<u64>,
    /// Dropping the sender stops the thread.
    pub stop: Receiver<()>,
}

impl Checkpointer {
    pub(crate) fn run(mut self) {
        loop {
            match self.stop.recv_timeout(INTERVAL) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            if !self.head.has_changed().unwrap_or(false) {
                continue;
            }
            self.head.borrow_and_update();
            // A failed pass loses nothing (the frames stay in the WAL, and the writer's own
            // checkpoint copies them); it is worth a line in the log, not more.
            if let Err(error) =
                self.conn
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            {
                tracing::warn!(path = %self.path.display(), %error, "background checkpoint failed");
            }
        }
    }
}
