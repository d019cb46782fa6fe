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
//!
//! Each pass that copied frames ends with a sync of the database file. SQLite syncs it after a
//! checkpoint only when no commit came while it copied, which under load is never, so the
//! pages of every pass waited in the kernel until the writer's restart checkpoint synced them
//! all while every append waited: 30–40 ms a restart, 41–46 restarts in 10 s at 5,000
//! deliveries/s, the `check_availability` p99 (2026-12-07, docs/benchmarks.md). Synced here,
//! on this thread, the writer's sync is left with the few pages its own checkpoint copies.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::watch;

use super::syncer::{Poison, SyncFn};

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

/// Passes run after the one that found the WAL [`RESTART_FRAMES`] long, before the writer is
/// asked to checkpoint the rest. At 5,000 deliveries/s (2026-12-07, docs/benchmarks.md) the
/// writer's restart checkpoint took 5.6–6.3 ms (median) after one such pass, 3.6–4.4 ms
/// after two or three.
const FOLLOW_UP_PASSES: usize = 2;

/// A follow-up pass that copied fewer frames than this leaves the writer little enough.
const FEW_FRAMES: i64 = 64;

pub(crate) struct Checkpointer {
    pub conn: Connection,
    pub path: PathBuf,
    /// The database file, and how it is synced after a pass that stopped short of the WAL's
    /// end (`fdatasync`; something that counts in tests).
    pub database: File,
    pub sync: SyncFn,
    /// Set when that sync fails: the store stops, as after a failed sync of the WAL.
    pub poison: Arc<Poison>,
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
            if frames >= RESTART_FRAMES && self.follow_up(frames) {
                self.restart.store(true, Ordering::Release);
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

    /// Passes right after one that found the WAL `frames` long: each copies what was
    /// committed during the one before, so the writer's own checkpoint, which every append
    /// waits for, has little left to copy and sync. They stop once one copied only a few
    /// frames. False when one failed.
    fn follow_up(&mut self, mut frames: i64) -> bool {
        for _ in 0..FOLLOW_UP_PASSES {
            let Some(now) = self.pass() else {
                return false;
            };
            // The WAL grew by what this pass copied (less, had it started over meanwhile).
            let copied = now - frames;
            frames = now;
            if copied < FEW_FRAMES {
                break;
            }
        }
        true
    }

    /// One passive checkpoint and a sync of what it copied; the WAL's length in frames, when
    /// both ran. A failed checkpoint loses nothing (the frames stay in the WAL, and the
    /// writer's own checkpoint copies them): it is worth a line in the log, not more. A failed
    /// sync stops the store.
    fn pass(&mut self) -> Option<i64> {
        // Its one row: busy, frames in the WAL, frames copied into the file so far (-1 and -1
        // when another checkpoint was running: a short WAL, as far as this thread cares).
        let (frames, copied): (i64, i64) = match self.conn.query_row(
            "PRAGMA wal_checkpoint(PASSIVE)",
            [],
            |row| Ok((row.get(1)?, row.get(2)?)),
        ) {
            Ok(counts) => counts,
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "background checkpoint failed");
                return None;
            }
        };
        // SQLite syncs the file itself only when no commit came while it copied, and its
        // answer does not say which; a second sync of a file with nothing to write is cheap.
        if copied > 0
            && let Err(error) = (self.sync)(&self.database)
        {
            // The pages this pass copied may not be on disk, and Linux may have marked them
            // clean, so a later sync would not write them again; the WAL still holds them
            // until it starts over, which a stopped store never lets it do. A restart copies
            // them anew (recovery rebuilds the WAL's index from the WAL itself).
            let reason = format!(
                "{}: stopped after a failed sync of the database file after a checkpoint \
                 ({error}); nothing more is acknowledged until the store is reopened: check \
                 the disk, then restart",
                self.path.display()
            );
            tracing::error!(%reason, "event store sync failed");
            self.poison.set(reason);
            return None;
        }
        Some(frames)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    use super::*;
    use crate::sqlite::schema;

    /// A checkpointer of the file at `path` that counts its syncs of the database file, which
    /// fail when `fail` is set.
    fn counting_syncs(
        path: &Path,
        fail: bool,
    ) -> (Checkpointer, Arc<AtomicUsize>, mpsc::Sender<()>) {
        let syncs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&syncs);
        let (_, head) = watch::channel(0);
        let (stop_tx, stop) = mpsc::channel();
        let checkpointer = Checkpointer {
            conn: schema::open_checkpointer(path).unwrap(),
            path: path.to_path_buf(),
            database: File::open(path).unwrap(),
            sync: Box::new(move |file: &File| {
                counted.fetch_add(1, Ordering::SeqCst);
                if fail {
                    return Err(std::io::Error::other("injected sync failure"));
                }
                file.sync_data()
            }),
            poison: Arc::default(),
            head,
            stop,
            restart: Arc::default(),
        };
        (checkpointer, syncs, stop_tx)
    }

    /// A WAL-mode file that only explicit checkpoints copy, with a table to commit rows to.
    fn wal_file(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x TEXT)")
            .unwrap();
        conn
    }

    fn commit_rows(conn: &Connection, rows: usize) {
        for _ in 0..rows {
            conn.execute("INSERT INTO t VALUES (?1)", ["x".repeat(1_000)])
                .unwrap();
        }
    }

    /// The case of a busy store: commits that came after the pass began (here, behind a
    /// reader's snapshot) stop it short of the WAL's end, and SQLite then leaves the pages it
    /// copied unsynced; the pass syncs them, so the writer's restart checkpoint does not.
    #[test]
    fn a_pass_stopped_short_of_the_wal_end_syncs_the_database_file() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("events.db");
        let writer = wal_file(&path);
        commit_rows(&writer, 50);
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        reader
            .query_row("SELECT count(*) FROM t", [], |_| Ok(()))
            .unwrap();
        commit_rows(&writer, 50);
        let (mut checkpointer, syncs, _stop) = counting_syncs(&path, false);

        assert!(checkpointer.pass().is_some());
        assert_eq!(
            syncs.load(Ordering::SeqCst),
            1,
            "a pass that copied frames syncs the database file"
        );
        let (frames, copied): (i64, i64) = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                Ok((row.get(1)?, row.get(2)?))
            })
            .unwrap();
        assert!(
            0 < copied && copied < frames,
            "the reader's snapshot stopped the copy short: {copied} of {frames} frames"
        );
    }

    #[test]
    fn a_pass_with_nothing_to_copy_syncs_nothing() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("events.db");
        let writer = wal_file(&path);
        commit_rows(&writer, 10);
        writer
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let (mut checkpointer, syncs, _stop) = counting_syncs(&path, false);

        assert_eq!(checkpointer.pass(), Some(0));
        assert_eq!(syncs.load(Ordering::SeqCst), 0);
    }

    /// The pages a pass copied may not be on disk, and the WAL must keep them: the store
    /// stops, the WAL is not asked to start over, and appends are refused until a restart.
    #[test]
    fn a_failed_sync_of_the_database_file_stops_the_store() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("events.db");
        let writer = wal_file(&path);
        commit_rows(&writer, 10);
        let (mut checkpointer, syncs, _stop) = counting_syncs(&path, true);

        assert!(!checkpointer.follow_up(0), "no restart after a failed sync");
        assert_eq!(syncs.load(Ordering::SeqCst), 1);
        let refusal = checkpointer.poison.check().unwrap_err().to_string();
        assert!(
            refusal.contains("failed sync of the database file"),
            "{refusal}"
        );
    }
}
