//! The read-models file: where it lives, how it is opened, its checkpoint, and which tables
//! belong to which projection.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::ProjectionError;

const SCHEMA: &str = include_str!("schema.sql");

/// The indexes only queries use; a rebuild creates them after its replay (see
/// [`create_query_indexes`]).
const QUERY_INDEXES: &str = include_str!("query_indexes.sql");

/// The layout of the read-model tables, stamped into the file (`PRAGMA user_version`). A file
/// of another layout is derived data from another build: it is emptied and refolded from
/// position 0, never migrated by hand.
pub const LAYOUT_VERSION: i64 = 1;

/// The live read models' file name inside the data dir.
pub const READ_MODELS_FILE: &str = "read_models.sqlite";

/// Prepared statements kept per connection. The folds use a few dozen distinct statements;
/// rusqlite's default of 16 would re-parse SQL on most events.
const STATEMENT_CACHE: usize = 128;

/// How long a writer waits for another (a rebuild swapping tables in) before giving up; the
/// runner retries after that, so this only bounds one attempt.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub fn read_models_path(data_dir: &Path) -> PathBuf {
    data_dir.join(READ_MODELS_FILE)
}

/// A named projection: the unit `rebuild --projection` swaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProjectionName {
    Calls,
    Appointments,
    Customers,
    Tenants,
    Anomalies,
}

impl ProjectionName {
    pub const ALL: [ProjectionName; 5] = [
        ProjectionName::Calls,
        ProjectionName::Appointments,
        ProjectionName::Customers,
        ProjectionName::Tenants,
        ProjectionName::Anomalies,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProjectionName::Calls => "calls",
            ProjectionName::Appointments => "appointments",
            ProjectionName::Customers => "customers",
            ProjectionName::Tenants => "tenants",
            ProjectionName::Anomalies => "anomalies",
        }
    }

    /// The tables this projection owns.
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            ProjectionName::Calls => &["calls"],
            ProjectionName::Appointments => &["appointments"],
            ProjectionName::Customers => &["customers"],
            ProjectionName::Tenants => &[
                "tenants",
                "branches",
                "phone_numbers",
                "calcom_organizers",
                "stripe_customers",
                "api_tokens",
                "subscriptions",
                "payments",
            ],
            ProjectionName::Anomalies => &["anomalies"],
        }
    }
}

impl fmt::Display for ProjectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProjectionName {
    type Err = ProjectionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProjectionName::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| ProjectionError::UnknownProjection(s.to_owned()))
    }
}

/// Every read-model table, in a stable order (for comparisons and swaps).
pub fn all_tables() -> impl Iterator<Item = &'static str> {
    ProjectionName::ALL
        .into_iter()
        .flat_map(|p| p.tables().iter().copied())
}

/// Opens (creating when absent) the live read models for writing: WAL, so the server's
/// readers keep answering from the last commit while the runner or a rebuild writes.
pub fn open_live(path: &Path) -> Result<Connection, ProjectionError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ProjectionError::io(dir, e))?;
    }
    let conn = Connection::open(path)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL keeps the file consistent on power loss; a lost last commit is replayed
    // from the checkpoint, which is the whole point of keeping it in the same transaction.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let layout: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if layout != 0 && layout != LAYOUT_VERSION {
        tracing::warn!(
            path = %path.display(), found = layout, expected = LAYOUT_VERSION,
            "read models of another layout: emptied, they are refolded from the start"
        );
        let tx = conn.unchecked_transaction()?;
        for table in all_tables().chain(["checkpoint"]) {
            tx.execute_batch(&format!("DROP TABLE IF EXISTS \"{table}\""))?;
        }
        tx.commit()?;
    }
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(QUERY_INDEXES)?;
    conn.pragma_update(None, "user_version", LAYOUT_VERSION)?;
    Ok(conn)
}

/// Creates the indexes only queries use (the fold never looks rows up by them): on a rebuilt
/// file once its replay is done, and on the live file after a swap replaced its tables.
pub(crate) fn create_query_indexes(conn: &Connection) -> Result<(), ProjectionError> {
    conn.execute_batch(QUERY_INDEXES)?;
    Ok(())
}

/// Opens a discardable file for a rebuild: no journal on disk, no fsync. Rollback to a
/// savepoint still works because the journal is kept in memory. The query-only indexes are
/// left out: the caller creates them once the replay is done ([`create_query_indexes`]).
pub fn open_scratch(path: &Path) -> Result<Connection, ProjectionError> {
    for stale in [
        path.to_path_buf(),
        with_suffix(path, "-journal"),
        with_suffix(path, "-wal"),
    ] {
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ProjectionError::io(stale, e)),
        }
    }
    let conn = Connection::open(path)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "journal_mode", "MEMORY")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    // A bounded page cache (8 MiB) keeps memory flat however long the history is; a larger
    // one (64 MiB) measured no faster on the 1M-event benchmark.
    conn.pragma_update(None, "cache_size", -8_192)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.execute_batch(SCHEMA)?;
    conn.pragma_update(None, "user_version", LAYOUT_VERSION)?;
    Ok(conn)
}

/// Opens the read models read-only, for queries and exports.
pub fn open_reader(path: &Path) -> Result<Connection, ProjectionError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

pub fn checkpoint(conn: &Connection) -> Result<u64, ProjectionError> {
    let position: Option<i64> = conn
        .query_row("SELECT position FROM checkpoint WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(position.unwrap_or(0) as u64)
}

pub(crate) fn set_checkpoint(conn: &Connection, position: u64) -> Result<(), ProjectionError> {
    conn.prepare_cached("UPDATE checkpoint SET position = ?1 WHERE id = 1")?
        .execute([position as i64])?;
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
