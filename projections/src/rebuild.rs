//! Rebuild: replay `$all` into a fresh file, then put it in place of the live read models —
//! or, with `until`, leave the fresh file beside the live one as the read models as they stood
//! at that moment.
//!
//! The replay streams the store page by page through a bounded channel (a reader task fetches
//! the next page while a blocking thread folds the current one), so memory does not grow with
//! the history. The fresh file is discardable until it is swapped in, so it is written without
//! a journal on disk and without fsync.
//!
//! A full rebuild of embedded read models installs the fresh file itself: it gets the query
//! indexes and a WAL, goes to disk, and the live link is moved to it while the live file's
//! write lock is held (see [`generation`]). Nothing is copied, so the switch takes the same
//! few milliseconds however large the read models are; readers keep answering from the old
//! file until their next query, and the live runner's next batch finds the link moved and
//! continues from the rebuilt checkpoint in the new file.
//!
//! A rebuild of one projection replays every projection (they depend on each other for
//! attribution) but swaps in only that one's tables, at exactly the live checkpoint, so the
//! tables it leaves alone stay consistent with the ones it replaces: it copies the fresh
//! tables into the live file inside one write transaction (readers, in WAL mode, keep
//! answering from the old tables until it commits). On PostgreSQL every rebuild moves the
//! fresh tables into the live schema in one transaction, without copying rows.
//!
//! One rebuild at a time replaces embedded read models: a second one is refused
//! ([`ProjectionError::RebuildRunning`]) rather than racing the first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use switchboard_store::{EventStore, RecordedEvent};
use tokio::sync::mpsc;

use crate::ProjectionError;
use crate::apply::FreshTables;
use crate::db::{
    ProjectionName, ReadModelsAt, all_tables, checkpoint, checkpoint_for_update,
    create_query_indexes, discard, make_installable, open_live, open_live_for_install,
    open_scratch, remove_companions, set_checkpoint, with_suffix,
};
use crate::fold::{DecodedBatch, Undo, fold_decoded};
use crate::generation::{self, Generation, RUN_ID_LEN, RebuildLock, split_sqlite_suffix};
use crate::phone::PhoneBook;
use crate::sql::{Conn, Dialect, quote_identifier};

/// How long a PostgreSQL swap waits for readers to let go of a table before it tries again.
const SWAP_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Events read from the store per page (and folded as one batch). Pages were 16,384 events
/// while each was a transaction of its own, to commit less often; within the replay's one
/// transaction, half that holds 10-20 MiB less (VmHWM, 1M events) and lets the fold start
/// sooner and end sooner after the last read. Its speed was within the machine's spread of
/// 16,384's (faster in 6 of 8 alternated pairs, 2.4 % on average); 2,048 and 32,768 were
/// slower.
const PAGE: usize = 8_192;

/// Pages read ahead of the fold: bounds memory to a few pages.
const READ_AHEAD: usize = 2;

/// The moment a time-travel rebuild stops at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Every event up to and including this global position.
    Position(u64),
    /// Every event the store had recorded at this time (by `recorded_at`).
    Time(DateTime<Utc>),
}

impl Until {
    fn admits(&self, event: &RecordedEvent) -> bool {
        match self {
            Until::Position(position) => event.position <= *position,
            Until::Time(at) => event.recorded_at <= *at,
        }
    }

    /// The file the read models as of this moment are written to (embedded read models).
    pub fn file_name(&self) -> String {
        format!("read_models-{}.sqlite", self.label())
    }

    /// `until-{position}` or `until-{UTC time}`: names the file or schema. A time names its
    /// fraction of a second when it has one (`until-20250415T120000.250Z`), so two moments
    /// within one second do not share a file, one overwriting the other.
    pub fn label(&self) -> String {
        match self {
            Until::Position(position) => format!("until-{position}"),
            Until::Time(at) => format!("until-{}", at.format("%Y%m%dT%H%M%S%.fZ")),
        }
    }

    /// Where the read models as of this moment go, beside the live ones: a file in the data
    /// dir, or the schema `{live schema}_until_…` of the same database.
    pub fn target(&self, live: &ReadModelsAt) -> ReadModelsAt {
        live.beside(&self.file_name(), &self.label().replace(['-', '.'], "_"))
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    /// The live read models (after a swap) or the time-travel ones.
    pub at: ReadModelsAt,
    /// The position the rebuilt read models stand at.
    pub checkpoint: u64,
    /// Events folded.
    pub events: u64,
    /// The projections whose tables were swapped into the live file; empty with `until`.
    pub swapped: Vec<ProjectionName>,
}

/// Rebuilds the read models of `data_dir` from `store`.
///
/// * `projection`: swap in only this projection's tables (all when None).
/// * `until`: build the read models as of that moment into a separate file (named by
///   [`Until::file_name`]) and leave the live tables alone.
/// * `progress(done, total)`: called after every page that moves the position reached on,
///   with that position and the position the rebuild is heading for.
pub async fn rebuild(
    store: Arc<dyn EventStore>,
    data_dir: &Path,
    projection: Option<ProjectionName>,
    until: Option<Until>,
    progress: impl FnMut(u64, u64) + Send + 'static,
) -> Result<RebuildReport, ProjectionError> {
    std::fs::create_dir_all(data_dir).map_err(|e| ProjectionError::io(data_dir, e))?;
    rebuild_at(
        store,
        &ReadModelsAt::data_dir(data_dir),
        projection,
        until,
        progress,
    )
    .await
}

/// [`rebuild`] for read models wherever they live: on PostgreSQL the replay goes into a
/// scratch schema whose tables are moved into the live schema in one transaction.
pub async fn rebuild_at(
    store: Arc<dyn EventStore>,
    live_at: &ReadModelsAt,
    projection: Option<ProjectionName>,
    until: Option<Until>,
    progress: impl FnMut(u64, u64) + Send + 'static,
) -> Result<RebuildReport, ProjectionError> {
    let head = store.head_position().await?;
    let mut replay = Replay::start(Arc::clone(&store), progress);

    if let Some(until) = until {
        return rebuild_until(&mut replay, live_at, until, head).await;
    }

    // Unique per run, not just per process: containers all run as pid 1.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let run = &run[..RUN_ID_LEN];
    // One rebuild at a time replaces embedded read models (and removes older rebuilds' files).
    let _lock = match live_at {
        ReadModelsAt::Sqlite(link) => {
            let link = link.clone();
            Some(blocking(move || RebuildLock::take(&link)).await?)
        }
        ReadModelsAt::Postgres { .. } => None,
    };
    #[cfg(unix)]
    if let (ReadModelsAt::Sqlite(link), None) = (live_at, projection) {
        let file = generation::file_for_run(link, run);
        let outcome = replay_and_install(&mut replay, link, &file, head).await;
        if outcome.is_err() {
            let (link, file) = (link.clone(), file.clone());
            let discarded = blocking(move || {
                // Unless the link names it already (the failure came after the switch).
                if Generation::resolve(&link)?.file() != file {
                    discard(&ReadModelsAt::Sqlite(file))?;
                }
                Ok(())
            })
            .await;
            if let Err(error) = discarded {
                tracing::warn!(%error, "the rebuild's unfinished file could not be removed");
            }
        }
        let (rebuilt_at, events) = outcome?;
        return Ok(RebuildReport {
            at: live_at.clone(),
            checkpoint: rebuilt_at,
            events,
            swapped: ProjectionName::ALL.to_vec(),
        });
    }
    let scratch_at = live_at.beside(
        &format!("read_models.rebuild-{run}.sqlite"),
        &format!("rebuild_{run}"),
    );
    let outcome = replay_and_swap(&mut replay, live_at, &scratch_at, projection, head).await;
    // The scratch tables go whether the swap happened or not.
    let discarded = {
        let scratch_at = scratch_at.clone();
        blocking(move || discard(&scratch_at)).await
    };
    let (rebuilt_at, events, swapped) = outcome?;
    if let Err(error) = discarded {
        tracing::warn!(%error, scratch = %scratch_at, "the rebuild's scratch tables could not be removed");
    }
    Ok(RebuildReport {
        at: live_at.clone(),
        checkpoint: rebuilt_at,
        events,
        swapped,
    })
}

/// The read models as of `until`, built beside the live ones. A file is built under another
/// name and renamed when complete, by one run at a time: a second run for the same moment is
/// refused ([`ProjectionError::RebuildRunning`]), so holding the lock beside the target lets a
/// run remove what a crashed one left. A schema is built in place (a half-built one is emptied
/// by the next attempt).
async fn rebuild_until<P: FnMut(u64, u64) + Send + 'static>(
    replay: &mut Replay<P>,
    live_at: &ReadModelsAt,
    until: Until,
    head: u64,
) -> Result<RebuildReport, ProjectionError> {
    let target = until.target(live_at);
    let (building, _lock) = match &target {
        ReadModelsAt::Sqlite(path) => {
            let path = path.clone();
            let (building, lock) = blocking(move || {
                let lock = RebuildLock::take(&path)?;
                remove_unfinished_builds(&path)?;
                Ok((ReadModelsAt::Sqlite(with_suffix(&path, BUILDING)), lock))
            })
            .await?;
            (building, Some(lock))
        }
        ReadModelsAt::Postgres { .. } => (target.clone(), None),
    };
    let total = match until {
        Until::Position(position) => position.min(head),
        Until::Time(_) => head,
    };
    let outcome: Result<(u64, u64), ProjectionError> = async {
        let scratch = {
            let building = building.clone();
            blocking(move || open_scratch(&building)).await?
        };
        let (conn, events) = replay.run(scratch, total, Stop::Until(until)).await?;
        let reached = blocking(move || {
            let reached = checkpoint(&conn)?;
            create_query_indexes(&conn)?;
            Ok(reached)
        })
        .await?;
        if let (ReadModelsAt::Sqlite(from), ReadModelsAt::Sqlite(to)) = (&building, &target) {
            let (from, to) = (from.clone(), to.clone());
            blocking(move || put_in_place(&from, &to)).await?;
        }
        Ok((reached, events))
    }
    .await;
    if outcome.is_err()
        && let ReadModelsAt::Sqlite(_) = &building
    {
        let unfinished = building.clone();
        if let Err(error) = blocking(move || discard(&unfinished)).await {
            tracing::warn!(%error, file = %building, "the unfinished read models could not be removed");
        }
    }
    let (checkpoint, events) = outcome?;
    Ok(RebuildReport {
        at: target,
        checkpoint,
        events,
        swapped: Vec::new(),
    })
}

/// Gives a finished file its name, durably. It was written without fsync (it was discardable
/// until now), so it goes to disk before the rename: a power loss must not leave the name on a
/// torn file. The journal or WAL an earlier file of that name left beside it goes first,
/// before the name is the new file's: SQLite would apply it to whatever file bears the name
/// when it is next opened, and a crash between the two then costs only the earlier file's
/// leftovers. Once renamed the file is in place; a directory that cannot be synced after that
/// is logged, as a full rebuild's install does.
fn put_in_place(from: &Path, to: &Path) -> Result<(), ProjectionError> {
    std::fs::File::open(from)
        .and_then(|file| file.sync_all())
        .map_err(|e| ProjectionError::io(from, e))?;
    remove_companions(to)?;
    std::fs::rename(from, to).map_err(|e| ProjectionError::io(to, e))?;
    if let Err(error) = generation::sync_directory_of(to) {
        tracing::warn!(%error, file = %to.display(),
            "the read models were put in place but their directory could not be synced; a power loss may undo it");
    }
    Ok(())
}

/// What a file of read models is called while it is being built: `<target>.building`.
const BUILDING: &str = ".building";

/// Removes the files an earlier build of `target` left when it stopped before its rename:
/// `<target>.building`, the `<target>.building-<pid>` of builds before 2026-12-08, and SQLite's
/// companion files of either. Runs under the lock beside `target`, so no other build is
/// writing one.
fn remove_unfinished_builds(target: &Path) -> Result<(), ProjectionError> {
    let Some(target_name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(());
    };
    generation::remove_files_beside(target, |name| is_unfinished_build(name, &target_name))?;
    Ok(())
}

/// Whether `name` is one of the files [`remove_unfinished_builds`] removes for `target_name`.
fn is_unfinished_build(name: &str, target_name: &str) -> bool {
    let (base, _) = split_sqlite_suffix(name);
    let Some(rest) = base
        .strip_prefix(target_name)
        .and_then(|rest| rest.strip_prefix(BUILDING))
    else {
        return false;
    };
    rest.is_empty()
        || rest
            .strip_prefix('-')
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// A full rebuild of embedded read models: replays into a new file beside the live one and
/// installs it by moving the link (see [`generation`]); returns the checkpoint the live read
/// models stand at afterwards and the events folded.
#[cfg(unix)]
async fn replay_and_install<P: FnMut(u64, u64) + Send + 'static>(
    replay: &mut Replay<P>,
    link: &Path,
    file: &Path,
    head: u64,
) -> Result<(u64, u64), ProjectionError> {
    let (live, live_checkpoint, scratch) = {
        let (link, file) = (link.to_path_buf(), file.to_path_buf());
        blocking(move || {
            let (live, _) = open_live_for_install(&link)?;
            let at = checkpoint(&live)?;
            Ok((live, at, open_scratch(&ReadModelsAt::Sqlite(file))?))
        })
        .await?
    };
    let target = head.max(live_checkpoint);
    let (scratch, mut events) = replay.run(scratch, target, Stop::At(target)).await?;
    let scratch = {
        let file = file.to_path_buf();
        blocking(move || {
            make_installable(&scratch, &file)?;
            Ok(scratch)
        })
        .await?
    };
    let (link_now, file_now) = (link.to_path_buf(), file.to_path_buf());
    let (live, scratch, (installed_at, previous), more) =
        until_caught_up(replay, live, scratch, move |live, scratch| {
            try_install(live, scratch, &link_now, &file_now)
        })
        .await?;
    events += more;
    let (link, file) = (link.to_path_buf(), file.to_path_buf());
    blocking(move || {
        drop((live, scratch));
        match generation::remove_stale(&link, &file, &previous) {
            Ok(removed) => {
                for path in removed {
                    tracing::debug!(path = %path.display(), "older read models removed");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "older read models could not be removed; the next rebuild tries again");
            }
        }
        Ok(())
    })
    .await?;
    Ok((installed_at, events))
}

/// Installs the rebuilt file if the live checkpoint allows it now: `Ok((checkpoint of the
/// installed file, file the link named before))`, or `Err(live checkpoint)` when the rebuilt
/// file must catch up first. The live file's write lock is held across the check and the
/// switch, so the runner commits nothing in between; its next batch finds the link moved and
/// goes over to the new file.
#[cfg(unix)]
fn try_install(
    live: &mut Conn,
    scratch: &Conn,
    link: &Path,
    file: &Path,
) -> Result<Result<(u64, PathBuf), u64>, ProjectionError> {
    // Under the rebuild lock only this rebuild moves the link, so `live` is the live file.
    let tx = live.transaction()?;
    let current = checkpoint_for_update(&tx)?;
    let fresh = checkpoint(scratch)?;
    if fresh < current {
        return Ok(Err(current));
    }
    let previous = generation::install(link, file)?;
    // Nothing was written to the file that was live; the switch has happened whatever the
    // rollback says (a failed one ends with the connection).
    if let Err(error) = tx.rollback() {
        tracing::debug!(%error, "rolling back the look at the replaced file");
    }
    Ok(Ok((fresh, previous)))
}

/// Replays into `scratch_at` and swaps the result into `live_at`; returns the checkpoint the
/// live read models stand at afterwards, the events folded and the projections swapped.
async fn replay_and_swap<P: FnMut(u64, u64) + Send + 'static>(
    replay: &mut Replay<P>,
    live_at: &ReadModelsAt,
    scratch_at: &ReadModelsAt,
    projection: Option<ProjectionName>,
    head: u64,
) -> Result<(u64, u64, Vec<ProjectionName>), ProjectionError> {
    let (live, live_checkpoint, scratch) = {
        let (live_at, scratch_at) = (live_at.clone(), scratch_at.clone());
        blocking(move || {
            let live = open_live(&live_at)?;
            let at = checkpoint(&live)?;
            Ok((live, at, open_scratch(&scratch_at)?))
        })
        .await?
    };
    // A full rebuild goes to the store's head; one projection goes exactly to where the other
    // tables stand.
    let target = match projection {
        None => head.max(live_checkpoint),
        Some(_) => live_checkpoint,
    };
    let (scratch, events) = replay.run(scratch, target, Stop::At(target)).await?;

    let swapped: Vec<ProjectionName> = match projection {
        Some(one) => vec![one],
        None => ProjectionName::ALL.to_vec(),
    };
    let (live_at, scratch_at, swapping) = (live_at.clone(), scratch_at.clone(), swapped.clone());
    let full = projection.is_none();
    let (live, scratch, rebuilt_at, more) =
        until_caught_up(replay, live, scratch, move |live, scratch| {
            let fresh = checkpoint(scratch)?;
            Ok(
                match try_swap(live, &live_at, &scratch_at, fresh, full, &swapping)? {
                    Some(at) => Ok(at),
                    None => Err(checkpoint(live)?),
                },
            )
        })
        .await?;
    let events = events + more;
    blocking(move || {
        drop((live, scratch));
        Ok(())
    })
    .await?;
    Ok((rebuilt_at, events, swapped))
}

/// Runs `attempt` (the install or the swap) on the live and the rebuilt read models until it
/// succeeds. While the rebuild replayed, the live runner may have moved the live checkpoint
/// past the rebuilt one: then `attempt` answers `Err(live checkpoint)`, the rebuilt read
/// models catch up to there outside the live lock, and it is tried again. Returns both
/// connections, what `attempt` answered and the events the catch-ups folded.
async fn until_caught_up<P, T>(
    replay: &mut Replay<P>,
    mut live: Conn,
    mut scratch: Conn,
    attempt: impl Fn(&mut Conn, &Conn) -> Result<Result<T, u64>, ProjectionError>
    + Clone
    + Send
    + 'static,
) -> Result<(Conn, Conn, T, u64), ProjectionError>
where
    P: FnMut(u64, u64) + Send + 'static,
    T: Send + 'static,
{
    let mut events = 0;
    loop {
        let attempt = attempt.clone();
        let (back_live, back_scratch, outcome) = blocking(move || {
            let outcome = attempt(&mut live, &scratch);
            Ok((live, scratch, outcome))
        })
        .await?;
        live = back_live;
        match outcome? {
            Ok(done) => return Ok((live, back_scratch, done, events)),
            Err(behind) => {
                let (conn, more) = replay.run(back_scratch, behind, Stop::At(behind)).await?;
                scratch = conn;
                events += more;
            }
        }
    }
}

/// Runs blocking read-model work (SQLite, PostgreSQL's synchronous client) off the async
/// threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ProjectionError> + Send + 'static,
) -> Result<T, ProjectionError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ProjectionError::Task(e.to_string()))?
}

/// Swaps the fresh tables in if the live checkpoint allows it now; returns the new live
/// checkpoint, or None when the fresh tables must catch up first.
fn try_swap(
    live: &mut Conn,
    live_at: &ReadModelsAt,
    scratch_at: &ReadModelsAt,
    fresh: u64,
    full: bool,
    projections: &[ProjectionName],
) -> Result<Option<u64>, ProjectionError> {
    let attached = match scratch_at {
        ReadModelsAt::Sqlite(path) => {
            live.execute("ATTACH DATABASE ?1 AS fresh", [path.to_string_lossy()])?;
            true
        }
        ReadModelsAt::Postgres { .. } => false,
    };
    let result = (|| {
        let tx = live.transaction()?;
        if tx.dialect() == Dialect::Postgres {
            // Replacing a table waits for every reader of it; readers arriving meanwhile queue
            // behind the swap. Bounded, so a long export delays the swap, never the queries.
            tx.execute_batch(&format!(
                "SET LOCAL lock_timeout = '{}ms'",
                SWAP_LOCK_TIMEOUT.as_millis()
            ))?;
        }
        let current = checkpoint_for_update(&tx)?;
        let ready = if full {
            fresh >= current
        } else {
            fresh == current
        };
        if !ready {
            return Ok(None);
        }
        for projection in projections {
            for table in projection.tables() {
                match (live_at, scratch_at) {
                    (
                        ReadModelsAt::Postgres { schema: live, .. },
                        ReadModelsAt::Postgres {
                            schema: scratch, ..
                        },
                    ) => match move_table(&tx, scratch, live, table) {
                        Err(ProjectionError::Sql(error)) if error.is_lock_timeout() => {
                            tracing::info!(table, "readers hold the table; the swap tries again");
                            return Ok(None);
                        }
                        other => other?,
                    },
                    _ => swap_table(&tx, table)?,
                }
            }
        }
        // The fresh tables have only the indexes their fold needed; the dropped tables took
        // their query indexes with them.
        create_query_indexes(&tx)?;
        set_checkpoint(&tx, fresh)?;
        tx.commit()?;
        Ok(Some(fresh))
    })();
    live.forget_statements();
    if attached {
        live.execute("DETACH DATABASE fresh", ())?;
    }
    result
}

/// Replaces `main.{table}` by `fresh.{table}`: same definition, same rows, the fold's indexes
/// (created after the rows, which is faster than maintaining them row by row); the caller adds
/// the query-only ones.
fn swap_table(tx: &Conn, table: &str) -> Result<(), ProjectionError> {
    debug_assert!(
        all_tables().any(|t| t == table),
        "swapping an unknown table"
    );
    let create: String = tx.query_row(
        "SELECT sql FROM fresh.sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get(0),
    )?;
    let indexes: Vec<String> = tx
        .prepare_cached("SELECT sql FROM fresh.sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL")?
        .query_map([table], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    tx.execute_batch(&format!("DROP TABLE IF EXISTS main.\"{table}\""))?;
    tx.execute_batch(&create)?;
    tx.execute_batch(&format!(
        "INSERT INTO main.\"{table}\" SELECT * FROM fresh.\"{table}\""
    ))?;
    for index in indexes {
        tx.execute_batch(&index)?;
    }
    Ok(())
}

/// PostgreSQL: drops the live `{table}` and moves the scratch schema's in its place, with
/// its indexes; no row is copied.
fn move_table(
    tx: &Conn,
    scratch_schema: &str,
    live_schema: &str,
    table: &str,
) -> Result<(), ProjectionError> {
    debug_assert!(all_tables().any(|t| t == table), "moving an unknown table");
    let table = quote_identifier(table);
    let live = quote_identifier(live_schema);
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS {live}.{table};
         ALTER TABLE {}.{table} SET SCHEMA {live}",
        quote_identifier(scratch_schema),
    ))?;
    Ok(())
}

/// Where a replay stops.
#[derive(Clone, Copy)]
enum Stop {
    /// At this position (inclusive).
    At(u64),
    /// At the moment given.
    Until(Until),
}

impl Stop {
    fn admits(&self, event: &RecordedEvent) -> bool {
        match self {
            Stop::At(position) => event.position <= *position,
            Stop::Until(until) => until.admits(event),
        }
    }
}

/// The replay machinery kept across the catch-up rounds of one rebuild.
struct Replay<P> {
    store: Arc<dyn EventStore>,
    phones: Option<PhoneBook>,
    progress: Option<P>,
    /// The furthest position reported to `progress`.
    reported: u64,
    /// Events read from the store per page.
    page: usize,
    /// Passes run again with a savepoint per page (see [`Replay::run`]).
    #[cfg(test)]
    retried: u32,
    /// The keys written to the scratch tables across this replay's passes and catch-up
    /// rounds: set by the first pass when it finds the tables empty (as a rebuild opens them),
    /// so that every row in them is one this replay wrote.
    fresh: Option<FreshTables>,
    /// Whether a pass has run (and so decided `fresh`).
    begun: bool,
}

impl<P: FnMut(u64, u64) + Send + 'static> Replay<P> {
    fn start(store: Arc<dyn EventStore>, progress: P) -> Self {
        Replay {
            store,
            phones: Some(PhoneBook::default()),
            progress: Some(progress),
            reported: 0,
            page: PAGE,
            #[cfg(test)]
            retried: 0,
            fresh: None,
            begun: false,
        }
    }

    /// Folds the events after the file's checkpoint up to `stop` into `conn`; returns the
    /// connection and the number of events folded.
    ///
    /// On SQLite the whole replay is one transaction, its pages folded without savepoints
    /// ([`Undo::Caller`]): committed page by page, every page of the file a batch touched was
    /// written to the file again at each commit (706 MB for the 1M-event history, 147 MB in
    /// one transaction), and a savepoint per page copied each page it changed into SQLite's
    /// journal first. Should an event fail, which SQLite's tables leave to bugs, only the
    /// whole transaction can be undone: it is rolled back and the replay runs again with a
    /// savepoint per page, so that event becomes an anomaly and the others apply.
    async fn run(
        &mut self,
        conn: Conn,
        total: u64,
        stop: Stop,
    ) -> Result<(Conn, u64), ProjectionError> {
        // A pass with a savepoint per page (or a transaction per page, on PostgreSQL) applies
        // every page, so it never asks to run again.
        let undoable = |(_, message): (Conn, String)| ProjectionError::NotUndoable(message);
        if conn.dialect() == Dialect::Postgres {
            return self
                .pass(conn, total, stop, Undo::Batch)
                .await?
                .map_err(undoable);
        }
        match self.pass(conn, total, stop, Undo::Caller).await? {
            Ok(folded) => Ok(folded),
            Err((conn, message)) => {
                tracing::warn!(
                    %message,
                    "an event of the replay could not be applied; replaying with a savepoint \
                     per page, so that it is recorded as an anomaly"
                );
                #[cfg(test)]
                {
                    self.retried += 1;
                }
                self.pass(conn, total, stop, Undo::Batch)
                    .await?
                    .map_err(undoable)
            }
        }
    }

    /// One pass of [`Replay::run`]: Ok(Err(conn, why)) when a page folded with
    /// [`Undo::Caller`] failed; the pass's transaction is rolled back then, and `conn` is
    /// where it began.
    async fn pass(
        &mut self,
        conn: Conn,
        total: u64,
        stop: Stop,
        undo: Undo,
    ) -> Result<Result<(Conn, u64), (Conn, String)>, ProjectionError> {
        let first = !self.begun;
        let (conn, from, fresh) = blocking(move || {
            let from = checkpoint(&conn)? + 1;
            let fresh = if first {
                FreshTables::if_empty(&conn)?
            } else {
                None
            };
            Ok((conn, from, fresh))
        })
        .await?;
        if first {
            self.begun = true;
            self.fresh = fresh;
        }
        if let Stop::At(target) = stop
            && target > *self.store.watch_head().borrow()
        {
            // The live read models are ahead of what this process has seen of the store: a
            // server beside this rebuild appended and folded since the store was opened here.
            self.store.observe_other_writers().await?;
        }
        let (pages_tx, mut pages_rx) = mpsc::channel::<DecodedBatch>(READ_AHEAD);
        let store = Arc::clone(&self.store);
        let page_size = self.page;
        let reader = tokio::spawn(async move {
            // The reader's own memo: phone numbers are parsed here, beside the decoding; a
            // call's travel on its events, the others are handed to the fold with each page.
            let reader_phones = PhoneBook::default();
            let mut next = from;
            loop {
                let mut page = store.read_all(next, page_size).await?;
                let Some(last) = page.last() else {
                    return Ok::<(), ProjectionError>(());
                };
                next = last.position + 1;
                let full_page = page.len() == page_size;
                let before = page.len();
                page.retain(|event| stop.admits(event));
                let stopped = page.len() < before;
                // Decoding the domain events here puts it on the reader's core, beside the
                // store's own JSON parsing, and leaves the fold thread to SQLite.
                if !page.is_empty()
                    && pages_tx
                        .send(
                            DecodedBatch::decode(page, &reader_phones)
                                .with_other_numbers(&reader_phones),
                        )
                        .await
                        .is_err()
                {
                    // The fold gave up; its error is the one to report.
                    return Ok(());
                }
                if stopped || !full_page {
                    return Ok(());
                }
            }
        });

        let phones = self.phones.take().unwrap_or_default();
        let mut progress = self
            .progress
            .take()
            .ok_or_else(|| ProjectionError::Task("progress lost".into()))?;
        let mut reported = self.reported;
        let fresh = self.fresh.clone();
        let folding = tokio::task::spawn_blocking(move || {
            let mut conn = conn;
            let mut events = 0u64;
            // Where the file stands: the checkpoint of the last page folded.
            let mut reached = from - 1;
            // The pass's own transaction on SQLite (see `run`); with `Undo::Batch` each page
            // is a savepoint in it.
            let outer = conn.dialect() == Dialect::Sqlite;
            let mut result = (|| {
                if outer {
                    conn.execute_batch("BEGIN IMMEDIATE")?;
                }
                while let Some(page) = pages_rx.blocking_recv() {
                    let folded =
                        fold_decoded(&mut conn, &phones, page, None, None, undo, fresh.as_ref())?;
                    events += folded.applied as u64;
                    reached = folded.checkpoint;
                    // A pass after a rolled-back one folds its pages again: the bar stays where
                    // it was until it passes it.
                    if folded.checkpoint > reported {
                        reported = folded.checkpoint;
                        progress(folded.checkpoint, total.max(folded.checkpoint));
                    }
                }
                if outer {
                    conn.execute_batch("COMMIT")?;
                }
                Ok::<(), ProjectionError>(())
            })();
            // SQLite may have rolled back by itself (a full disk, I/O): then there is nothing
            // to undo, and the error is the one that says why.
            if result.is_err() && conn.in_transaction() {
                let rolled_back = conn.execute_batch("ROLLBACK");
                if let Err(error) = rolled_back {
                    if matches!(result, Err(ProjectionError::NotUndoable(_))) {
                        // Run again only on a file that is where the pass began.
                        result = Err(error.into());
                    } else {
                        tracing::warn!(%error, "rolling back the failed replay");
                    }
                }
            }
            (conn, phones, progress, events, reached, reported, result)
        });
        let (conn, phones, progress, events, reached, reported, folded) = folding
            .await
            .map_err(|e| ProjectionError::Task(e.to_string()))?;
        self.phones = Some(phones);
        self.progress = Some(progress);
        self.reported = reported;
        match folded {
            // The next pass reads from the start again: this one's reader goes first (its
            // next send fails, the fold's end having closed the channel).
            Err(ProjectionError::NotUndoable(message)) => {
                reader
                    .await
                    .map_err(|e| ProjectionError::Task(e.to_string()))??;
                return Ok(Err((conn, message)));
            }
            Err(error) => return Err(error),
            Ok(()) => {}
        }
        reader
            .await
            .map_err(|e| ProjectionError::Task(e.to_string()))??;
        // Short of the target means the store does not hold it: trying again would spin.
        if let Stop::At(target) = stop
            && reached < target
        {
            return Err(ProjectionError::StoreBehind {
                read_models: target,
                store: reached,
            });
        }
        Ok(Ok((conn, events)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_domain::event::{CallEnded, CallOutcome, CallParties, Event};
    use switchboard_store::sqlite::{SqliteOptions, SqliteStore};
    use switchboard_store::{ExpectedVersion, NewEvent};

    #[test]
    fn a_moment_names_its_fraction_of_a_second_only_when_it_has_one() {
        let at = |t: &str| Until::Time(t.parse().unwrap());
        assert_eq!(at("2025-04-15T12:00:00Z").label(), "until-20250415T120000Z");
        assert_eq!(
            at("2025-04-15T12:00:00.25Z").label(),
            "until-20250415T120000.250Z"
        );
        assert_eq!(
            at("2025-04-15T12:00:00.000001Z").file_name(),
            "read_models-until-20250415T120000.000001Z.sqlite"
        );
        let schema = at("2025-04-15T12:00:00.25Z").target(&ReadModelsAt::Postgres {
            url: "postgres://localhost/test".into(),
            schema: "read_models".into(),
        });
        assert!(
            matches!(&schema, ReadModelsAt::Postgres { schema, .. } if schema == "read_models_until_20250415T120000_250Z"),
            "{schema:?}"
        );
    }

    #[test]
    fn an_unfinished_build_is_named_by_its_target_and_nothing_else_is() {
        let target = "read_models-until-12.sqlite";
        for name in [
            "read_models-until-12.sqlite.building",
            "read_models-until-12.sqlite.building-journal",
            "read_models-until-12.sqlite.building-wal",
            "read_models-until-12.sqlite.building-4242",
            "read_models-until-12.sqlite.building-4242-journal",
        ] {
            assert!(is_unfinished_build(name, target), "{name}");
        }
        for name in [
            "read_models-until-12.sqlite",
            "read_models-until-12.sqlite-wal",
            "read_models-until-12.lock",
            "read_models-until-1.sqlite.building",
            "read_models-until-123.sqlite.building",
            "read_models-until-12.sqlite.building.bak",
            "read_models-until-12.sqlite.buildings",
            "read_models-until-12.sqlite.building-12ab",
            "read_models-until-12.sqlite.building-",
            "read_models.sqlite",
        ] {
            assert!(!is_unfinished_build(name, target), "{name}");
        }
    }

    fn call_ended(call_id: &str) -> NewEvent {
        let event: Event = CallEnded {
            call_id: call_id.into(),
            occurred_at: "2026-11-02T08:00:00Z".parse().unwrap(),
            parties: CallParties {
                from_number: Some("+4915123456789".into()),
                to_number: Some("+493083793369".into()),
                direction: Some("inbound".into()),
                ..CallParties::default()
            },
            outcome: CallOutcome {
                duration_s: Some(120),
                ..CallOutcome::default()
            },
        }
        .into();
        NewEvent {
            event_id: uuid::Uuid::new_v4(),
            event_type: event.event_type().into(),
            schema_version: event.schema_version(),
            occurred_at: event.occurred_at(),
            data: event.to_json(),
            metadata: serde_json::json!({"provider": "test"}),
        }
    }

    /// A store in `dir` holding one `CallEnded` per id, each on its call's stream, and the
    /// positions they got.
    async fn store_of_calls(dir: &Path, ids: &[&str]) -> (SqliteStore, Vec<u64>) {
        let store =
            SqliteStore::open(&dir.join("events.sqlite"), SqliteOptions::default()).unwrap();
        let mut positions = Vec::new();
        for id in ids {
            let appended = store
                .append(
                    &format!("call-{id}"),
                    ExpectedVersion::Any,
                    vec![call_ended(id)],
                )
                .await
                .unwrap();
            positions.push(appended.events[0].position);
        }
        (store, positions)
    }

    fn texts(conn: &Conn, sql: &str) -> Vec<String> {
        conn.prepare_cached(sql)
            .unwrap()
            .query_map((), |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A replay folds its pages without savepoints; an event that cannot be applied (a
    /// trigger stands in for any row the database refuses) rolls the replay back and makes it
    /// run again with a savepoint per page, so the event is recorded as an anomaly, what it
    /// wrote is undone, and the rest applies. Pages of one event: the first is folded twice,
    /// the poisoned one is the second of three.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_a_replay_cannot_apply_becomes_an_anomaly_and_the_rest_applies() {
        let dir = tempfile::tempdir().unwrap();
        let (store, positions) = store_of_calls(dir.path(), &["c1", "poison", "c2"]).await;
        let head = store.head_position().await.unwrap();
        let scratch =
            open_scratch(&ReadModelsAt::Sqlite(dir.path().join("scratch.sqlite"))).unwrap();
        scratch
            .execute_batch(
                "CREATE TRIGGER poison BEFORE INSERT ON calls WHEN NEW.call_id = 'poison'
                 BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;",
            )
            .unwrap();
        let (progress_tx, progress_rx) = std::sync::mpsc::channel();
        let mut replay = Replay::start(Arc::new(store), move |done, _| {
            let _ = progress_tx.send(done);
        });
        replay.page = 1;
        let (conn, events) = replay.run(scratch, head, Stop::At(head)).await.unwrap();

        assert_eq!(replay.retried, 1, "run again once");
        assert_eq!(events, 3, "the events of the pass that stood, not of both");
        assert_eq!(
            progress_rx.try_iter().collect::<Vec<_>>(),
            positions,
            "each position reported once, in order, though the first was folded twice"
        );
        assert!(!conn.in_transaction(), "committed");
        assert_eq!(checkpoint(&conn).unwrap(), head);
        assert_eq!(
            texts(&conn, "SELECT call_id FROM calls ORDER BY call_id"),
            ["c1", "c2"]
        );
        assert_eq!(
            texts(
                &conn,
                "SELECT stream FROM anomalies WHERE reason = 'apply_failed' ORDER BY anomaly_id"
            ),
            ["call-poison"]
        );
        // Each call was recorded as unattributed once: the first pass's records of the first
        // page were rolled back with it, and the poisoned event's with its savepoint.
        assert_eq!(
            texts(
                &conn,
                "SELECT stream FROM anomalies WHERE reason = 'unattributed_call' ORDER BY stream"
            ),
            ["call-c1", "call-c2"]
        );
    }

    /// Rows a replay does not look up must be rows no one wrote: on tables that already hold
    /// rows, the replay reads each held row it folds into, so a stored call keeps what the
    /// event does not say (here its summary), instead of being written over.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replay_onto_tables_with_rows_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store_of_calls(dir.path(), &["c1"]).await;
        let head = store.head_position().await.unwrap();
        let scratch =
            open_scratch(&ReadModelsAt::Sqlite(dir.path().join("scratch.sqlite"))).unwrap();
        scratch
            .execute_batch(
                "INSERT INTO calls (call_id, seq, status, summary, updated_at)
                 VALUES ('c1', 0, 'started', 'kept', '2026-11-02T07:00:00.000Z')",
            )
            .unwrap();
        let mut replay = Replay::start(Arc::new(store), |_, _| {});
        let (conn, _) = replay.run(scratch, head, Stop::At(head)).await.unwrap();
        assert_eq!(
            texts(&conn, "SELECT status || ' ' || summary FROM calls"),
            ["ended kept"]
        );
        assert!(replay.fresh.is_none(), "the tables were not empty");
    }

    /// Without trouble the replay is one pass, committed: the connection is left in
    /// autocommit, for the swap's own statements, and another connection sees the rows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replay_commits_its_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store_of_calls(dir.path(), &["c1"]).await;
        let head = store.head_position().await.unwrap();
        let path = dir.path().join("scratch.sqlite");
        let scratch = open_scratch(&ReadModelsAt::Sqlite(path.clone())).unwrap();
        let mut replay = Replay::start(Arc::new(store), |_, _| {});
        let (conn, events) = replay.run(scratch, head, Stop::At(head)).await.unwrap();
        assert_eq!(events, 1);
        assert_eq!(replay.retried, 0, "one pass");
        assert!(
            replay.fresh.is_some(),
            "into empty tables, rows never written are not read"
        );
        assert!(!conn.in_transaction());
        drop(conn);
        let other = rusqlite::Connection::open(&path).unwrap();
        let calls: i64 = other
            .query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0))
            .unwrap();
        assert_eq!(calls, 1);
    }
}
