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
//! [`RESTART_FRAMES`] long, this thread runs follow-up passes right away (each copies what
//! was committed during the one before) and then asks the writer to checkpoint the little
//! that is left itself (`Writer::checkpoint_for_restart`): the writer's next transaction
//! finds the WAL fully copied and starts it over.
//!
//! Before, only the writer's automatic checkpoint did that, when the WAL reached its
//! threshold (`wal_autocheckpoint`, 10,000 frames), copying everything committed since this
//! thread's last pass, up to 200 ms of appends, while every append waited: 20–25 ms at 5,000
//! deliveries/s, which was the ingest's p99 (2026-12-06, see docs/benchmarks.md). It stays as
//! the backstop: when the disk cannot keep up with the appends, the passes fall behind and
//! the automatic checkpoint is what slows the writer down.
//!
//! Each pass that copied frames ends with a sync of the database file. SQLite syncs it after a
//! checkpoint only when the copy reached the WAL's end as it stands afterwards (no commit came
//! meanwhile, no reader's snapshot held the copy back), which under load is never, so the
//! pages of every pass waited in the kernel until the writer's restart checkpoint synced them
//! all while every append waited: 31–42 ms (median) a restart, 41–46 restarts in 10 s at 5,000
//! deliveries/s, the `check_availability` p99 (2026-12-07, docs/benchmarks.md). Synced here,
//! on this thread, the writer's sync is left with the few pages its own checkpoint copies. A
//! failed sync stops the store ([`Poison::stop`]), as a failed sync of the WAL does.

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

/// A follow-up pass that copied fewer frames than this leaves the writer little enough to stop
/// at (a judgement, not measured: a few milliseconds of appends at the rates above).
const FEW_FRAMES: i64 = 64;

pub(crate) struct Checkpointer {
    pub conn: Connection,
    pub path: PathBuf,
    /// The database file, and how it is synced after a pass that copied frames (`fdatasync`;
    /// something that counts or fails in tests).
    pub database: File,
    pub sync: SyncFn,
    /// The WAL's frames copied into the file when the last pass ended (SQLite's count: it
    /// only grows until the WAL starts over).
    pub checkpointed: i64,
    /// Set when a sync fails; once set, the thread copies nothing more.
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
            if self.poison.check().is_err() {
                continue;
            }
            let Some(mut frames) = self.pass() else {
                continue;
            };
            if frames >= RESTART_FRAMES
                && let Some(followed) = self.follow_up(frames)
            {
                frames = followed;
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
    /// frames. The WAL's length at the last of them, when the writer should be asked; None
    /// when one failed, or found another checkpoint running or the WAL started over (the
    /// writer has just checkpointed: asking again would only make appends wait).
    fn follow_up(&mut self, mut frames: i64) -> Option<i64> {
        for _ in 0..FOLLOW_UP_PASSES {
            let now = self.pass()?;
            if now < frames {
                return None;
            }
            // What this pass copied: what was committed since the last one began.
            let grown = now - frames;
            frames = now;
            if grown < FEW_FRAMES {
                break;
            }
        }
        Some(frames)
    }

    /// One passive checkpoint and a sync of what it copied; the WAL's length in frames, when
    /// both ran. A failed checkpoint loses nothing (the frames stay in the WAL, and the
    /// writer's own checkpoint copies them): it is worth a line in the log, not more. A failed
    /// sync stops the store.
    fn pass(&mut self) -> Option<i64> {
        // Its one row: busy, frames in the WAL, frames copied into the file so far (-1 and -1
        // when another checkpoint was running: a short WAL, as far as this thread cares).
        let (frames, checkpointed): (i64, i64) = match self.conn.query_row(
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
        // Synced whenever the pass copied something: SQLite may have synced the file itself,
        // but its answer does not say so. (A smaller count than before: the WAL started over.)
        let copied = checkpointed > 0 && checkpointed != self.checkpointed;
        self.checkpointed = checkpointed;
        if copied && let Err(error) = (self.sync)(&self.database) {
            self.poison
                .stop(&self.path, "the database file after a checkpoint", &error);
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
            checkpointed: 0,
            poison: Arc::default(),
            head,
            stop,
            restart: Arc::default(),
        };
        (checkpointer, syncs, stop_tx)
    }

    /// A WAL-mode file in a temp dir that only explicit checkpoints copy, with a table to
    /// commit rows to: the dir, the file's path and the connection that writes.
    fn wal_file() -> (tempfile::TempDir, PathBuf, Connection) {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("events.db");
        let conn = Connection::open(&path).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x TEXT)")
            .unwrap();
        (dir, path, conn)
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
        let (_dir, path, writer) = wal_file();
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
    fn a_pass_with_nothing_new_to_copy_syncs_nothing() {
        let (_dir, path, writer) = wal_file();
        let (mut checkpointer, syncs, _stop) = counting_syncs(&path, false);
        let created = checkpointer.pass().unwrap();
        assert!(created > 0, "the table's creation is in the WAL");
        assert_eq!(syncs.load(Ordering::SeqCst), 1);

        // Fully copied, and not started over: SQLite still counts the same frames.
        assert_eq!(checkpointer.pass(), Some(created));
        assert_eq!(syncs.load(Ordering::SeqCst), 1, "nothing new, no sync");

        commit_rows(&writer, 10);
        checkpointer.pass().unwrap();
        assert_eq!(syncs.load(Ordering::SeqCst), 2);
    }

    /// The pages a pass copied may not be on disk, and the WAL must keep them: the store
    /// stops, the WAL is not asked to start over, and appends are refused until a restart.
    #[test]
    fn a_failed_sync_of_the_database_file_stops_the_store() {
        let (_dir, path, writer) = wal_file();
        commit_rows(&writer, 10);
        let (mut checkpointer, syncs, _stop) = counting_syncs(&path, true);

        assert_eq!(
            checkpointer.follow_up(0),
            None,
            "no restart after a failed sync"
        );
        assert_eq!(syncs.load(Ordering::SeqCst), 1);
        let refusal = checkpointer.poison.check().unwrap_err().to_string();
        assert!(
            refusal.contains("failed sync of the database file"),
            "{refusal}"
        );
    }
}
