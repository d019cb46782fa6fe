//! A background thread that copies committed WAL frames into the database file, so the writer
//! does not have to.
//!
//! Checkpointing is the writer's largest cost after writing the WAL itself: with 64 writers,
//! its automatic checkpoints (copying up to `CHECKPOINT_PAGES` pages into the file and syncing
//! it) took 29 % of the writer thread's time (perf, 2026-11-23), and every commit waits while
//! one runs. This thread runs PASSIVE checkpoints a few times a second on a connection of its
//! own: they never take the write lock, so the writer keeps committing meanwhile.
//!
//! A passive checkpoint that overlaps commits cannot leave the WAL fully copied, and SQLite
//! restarts the WAL from its beginning only when a write transaction finds it fully copied;
//! left to itself, the WAL would grow without bound under steady load. So once the WAL is
//! [`RESTART_FRAMES`] long, this thread runs a second pass right away (it copies only what
//! was committed during the first) and then asks the writer to checkpoint the little that
//! is left itself (`Writer::checkpoint_for_restart`): the writer's next transaction finds
//! the WAL fully copied and starts it over.
//!
//! Before, only the writer's automatic checkpoint did that, when the WAL reached its
//! threshold (`wal_autocheckpoint`, 10,000 frames), copying everything committed since this
//! thread's last pass, up to 200 ms of appends, while every append waited: 20–25 ms at 5,000
//! deliveries/s, which was the ingest's p99 (2026-12-06, see docs/benchmarks.md). It stays as
//! the backstop: when the disk cannot keep up with the appends, the passes fall behind and
//! the automatic checkpoint is what slows the writer down.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::watch;

/// How often the thread looks for new commits. Rarer passes copy a page rewritten by many
/// commits (an index leaf of a busy stream) fewer times; each pass costs two fsyncs (the WAL,
/// then the database file).
const INTERVAL: Duration = Duration::from_millis(200);

/// The WAL length (in frames: pages plus a 24-byte header each) from which the writer is asked
/// to let the WAL start over: about 8 MiB at 4 KiB pages, under a tenth of a second of appends
/// at 5,000 deliveries/s (whose small groups wrote 20,000-24,000 frames a second). A shorter
/// WAL is also cheaper for every reader, which looks each page up in the WAL's index first.
/// (With 4,000, eight appenders writing without a pause took the WAL past 7,000 frames before
/// the writer's checkpoint came.)
pub(crate) const RESTART_FRAMES: i64 = 2_000;

/// The soonest a pass follows the last one, however fast the WAL grows: each pass costs two
/// fsyncs.
const SHORTEST_INTERVAL: Duration = Duration::from_millis(20);

pub(crate) struct Checkpointer {
    pub conn: Connection,
    pub path: PathBuf,
    /// The writer's head: a pass runs only when it moved, so an idle store costs nothing.
    pub head: watch::Receiver<u64>,
    /// Dropping the sender stops the thread.
    pub stop: Receiver<()>,
    /// Set when the writer should run the checkpoint that lets the WAL start over.
    pub restart: Arc<AtomicBool>,
}

impl Checkpointer {
    pub(crate) fn run(mut self) {
        let mut wait = INTERVAL;
        // When the last pass ran, and how long the WAL was then.
        let mut last = (Instant::now(), 0);
        loop {
            match self.stop.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            wait = INTERVAL;
            if !self.head.has_changed().unwrap_or(false) {
                continue;
            }
            self.head.borrow_and_update();
            let Some(frames) = self.pass() else { continue };
            if frames >= RESTART_FRAMES {
                // This pass copied what was committed before it began; a second copies what
                // came meanwhile, so the writer's own checkpoint has little left to do.
                if self.pass().is_some() {
                    self.restart.store(true, Ordering::Release);
                }
            }
            // The next pass comes about when the WAL will be RESTART_FRAMES long at the rate it
            // grew since the last one (a busy store writes 20,000-30,000 frames a second in
            // small groups), so it starts over near that length and not at the automatic
            // checkpoint's. Right after a request, soon: the WAL has started over, or a
            // reader still in it kept it from doing so and the request is made again.
            let now = Instant::now();
            let (then, before) = std::mem::replace(&mut last, (now, frames));
            // A WAL shorter than before has started over meanwhile.
            let grown = if frames >= before {
                frames - before
            } else {
                frames
            };
            let per_second = grown as f64 / now.duration_since(then).as_secs_f64().max(1e-3);
            if per_second > 0.0 {
                let to_go = (RESTART_FRAMES - frames).max(0) as f64;
                wait =
                    Duration::from_secs_f64(to_go / per_second).clamp(SHORTEST_INTERVAL, INTERVAL);
            }
        }
    }

    /// One passive checkpoint; the WAL's length in frames, when it ran. A failed pass loses
    /// nothing (the frames stay in the WAL, and the writer's own checkpoint copies them); it
    /// is worth a line in the log, not more.
    fn pass(&self) -> Option<i64> {
        // Its one row: busy, frames in the WAL, frames copied into the file (-1 and -1 when
        // another checkpoint was running: a short WAL, as far as this thread cares).
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
        {
            Ok(frames) => Some(frames),
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "background checkpoint failed");
                None
            }
        }
    }
}
