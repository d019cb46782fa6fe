//! The read-models file: where it lives, how it is opened, its checkpoint, and which tables
//! belong to which projection.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::ProjectionError;
use crate::generation::Generation;
use crate::sql::{Conn, Dialect, OptionalExtension, SqlError, quote_identifier};

pub(crate) const SCHEMA: &str = include_str!("schema.sql");

/// The indexes only queries use; a rebuild creates them after its replay (see
/// [`create_query_indexes`]).
pub(crate) const QUERY_INDEXES: &str = include_str!("query_indexes.sql");

/// The layout of the read-model tables, stamped into the file (`PRAGMA user_version`; the
/// `layout` table in PostgreSQL). Read models of an older layout are derived data from an
/// older build: they are emptied and refolded from position 0. Read models of a newer layout
/// belong to a newer build (in a rolling upgrade, the other instances): they are refused,
/// never altered. Either way, nothing is migrated by hand.
///
/// 2: `customers` is keyed by its id alone, without a rowid (1 had a rowid and a
/// `UNIQUE (tenant_id, phone)` the derived id made redundant).
/// 3: an anomaly names the tenant of the call, booking, tenant or Stripe customer it was
/// recorded on, and is about that record (2 named a tenant only on resolved `unattributed_*`
/// anomalies, so a tenant's token listed none of its refused transitions); a business number
/// written in E.164 that libphonenumber does not know is kept as written (2 dropped it from
/// the calls, so the calls to such a registered number were never attributed).
/// 4: an outbound call belongs to the tenant of the number it came from, whatever routing its
/// delivery had (3 kept the tenant of the number called that deliveries stored before
/// 2026-12-07 named); text that held NUL shows U+FFFD (3 kept it in SQLite and refused the
/// event's rows in PostgreSQL, an `apply_failed` anomaly).
/// 5: every query reads what an index bounds, however long the history (query_indexes.sql):
/// 4's calendar read the tenant's every appointment that started before the window's end, a
/// service's usual length stepped over open requests, a tenant's anomalies page over every
/// tenant's, a customer's view sorted all their calls, the admin's pages sorted whole tables,
/// and a Stripe customer's link read every unattributed payment. (Later in layout 5, an index
/// change that needs no refold: `calls_booked` replaced `calls_by_booking`, see schema.sql.)
pub const LAYOUT_VERSION: i64 = 5;

/// The live read models' file name inside the data dir.
pub const READ_MODELS_FILE: &str = "read_models.sqlite";

/// Prepared statements kept per connection. The folds use a few dozen distinct statements;
/// rusqlite's default of 16 would re-parse SQL on most events.
const STATEMENT_CACHE: usize = 128;

/// How long a writer waits for another (a rebuild swapping tables in) before giving up; the
/// runner retries after that, so this only bounds one attempt.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Where a set of read models lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReadModelsAt {
    /// A SQLite file (`<data_dir>/read_models.sqlite` for the live ones).
    Sqlite(PathBuf),
    /// A schema of a PostgreSQL database; `url` carries no `schema=` parameter.
    Postgres { url: String, schema: String },
}

impl ReadModelsAt {
    /// The live read models of an embedded deployment.
    pub fn data_dir(data_dir: &Path) -> Self {
        ReadModelsAt::Sqlite(read_models_path(data_dir))
    }

    /// The read models beside a PostgreSQL event store: the schema `{store schema}_read_models`
    /// of the same database, so analysts find the events and the read models side by side.
    pub fn beside_postgres_store(url: &str, store_schema: &str) -> Self {
        ReadModelsAt::Postgres {
            url: url.to_owned(),
            schema: format!("{store_schema}_read_models"),
        }
    }

    /// The SQLite file, for embedded read models.
    pub fn file(&self) -> Option<&Path> {
        match self {
            ReadModelsAt::Sqlite(path) => Some(path),
            ReadModelsAt::Postgres { .. } => None,
        }
    }

    /// Other read models beside these: the file `file_name` in the same directory (SQLite),
    /// or the schema `{schema}_{schema_suffix}` of the same database (PostgreSQL).
    pub(crate) fn beside(&self, file_name: &str, schema_suffix: &str) -> Self {
        match self {
            ReadModelsAt::Sqlite(path) => {
                ReadModelsAt::Sqlite(path.parent().unwrap_or(Path::new(".")).join(file_name))
            }
            ReadModelsAt::Postgres { url, schema } => ReadModelsAt::Postgres {
                url: url.clone(),
                schema: truncate_identifier(&format!("{schema}_{schema_suffix}")),
            },
        }
    }
}

impl fmt::Display for ReadModelsAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadModelsAt::Sqlite(path) => write!(f, "{}", path.display()),
            // The URL may carry a password: name the database by its schema only.
            ReadModelsAt::Postgres { schema, .. } => write!(f, "PostgreSQL schema {schema}"),
        }
    }
}

/// PostgreSQL truncates identifiers to 63 bytes; truncating ourselves keeps the name we
/// report the name that exists.
fn truncate_identifier(name: &str) -> String {
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

/// The schema's SQL for a dialect: written for SQLite; PostgreSQL gets 64-bit integers
/// everywhere (SQLite's INTEGER is 64-bit, PostgreSQL's 32-bit) and text compared byte by
/// byte as SQLite compares it (the "newer wins" comparisons and every ORDER BY then agree
/// whatever the database's locale).
fn schema_sql(sql: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => sql.to_owned(),
        Dialect::Postgres => sql
            .replace("INTEGER", "BIGINT")
            .replace(" TEXT", " TEXT COLLATE \"C\"")
            // A PostgreSQL table keeps its rows apart from its primary key's index anyway.
            .replace(") WITHOUT ROWID;", ");"),
    }
}

/// How long a read-model connection may take to open: a database that does not answer is
/// reported (503, a logged retry) rather than holding a query for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to PostgreSQL with `schema` as the only schema on the search path; with
/// `create`, the schema is created when absent (writers only: it needs the CREATE privilege on
/// the database, which an analyst's read-only role need not have).
fn connect_postgres(url: &str, schema: &str, create: bool) -> Result<Conn, ProjectionError> {
    let failed = |error: &dyn fmt::Display| {
        ProjectionError::Connect(format!(
            "read models in PostgreSQL schema {schema}: {error}"
        ))
    };
    let mut config: postgres::Config = url.parse().map_err(|e| failed(&e))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        // Names the schema, so a DBA (and a test) can tell whose sessions these are.
        config.application_name(&truncate_identifier(&format!(
            "switchboard-read-models {schema}"
        )));
    }
    let mut client = config.connect(postgres::NoTls).map_err(|e| failed(&e))?;
    let quoted = quote_identifier(schema);
    if create {
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
            .or_else(|error| {
                // Several instances starting at once race on CREATE SCHEMA; the loser finds it.
                if error.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) {
                    Ok(())
                } else {
                    Err(error)
                }
            })
            .map_err(|e| failed(&e))?;
    }
    client
        .batch_execute(&format!("SET search_path TO {quoted}"))
        .map_err(|e| failed(&e))?;
    Ok(Conn::from(client))
}

/// The layout stamped in a PostgreSQL schema; None when the schema or its tables do not
/// exist yet.
fn postgres_layout(conn: &Conn) -> Result<Option<i64>, ProjectionError> {
    let found = conn
        .query_row("SELECT version FROM layout WHERE id = 1", (), |r| r.get(0))
        .optional();
    match found {
        Ok(layout) => Ok(layout),
        Err(SqlError::Postgres(error))
            if error.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) =>
        {
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// Opens (creating when absent) the live read models for writing. SQLite: WAL, so the
/// server's readers keep answering from the last commit while the runner or a rebuild writes.
/// PostgreSQL: read models already at this layout are opened without any DDL (DDL takes locks
/// a live leader's batch would queue behind, and the other way round); only missing or older
/// ones are (re)created, under a lock that serializes instances starting together.
pub fn open_live(at: &ReadModelsAt) -> Result<Conn, ProjectionError> {
    Ok(open_live_generation(at)?.0)
}

/// [`open_live`], with the file a SQLite connection opened (see [`Generation`]); None on
/// PostgreSQL.
pub(crate) fn open_live_generation(
    at: &ReadModelsAt,
) -> Result<(Conn, Option<Generation>), ProjectionError> {
    match at {
        ReadModelsAt::Sqlite(link) => {
            let (conn, generation) = open_live_sqlite(link)?;
            Ok((conn, Some(generation)))
        }
        ReadModelsAt::Postgres { url, schema } => {
            let mut conn = connect_postgres(url, schema, false)?;
            match postgres_layout(&conn)? {
                Some(LAYOUT_VERSION) => return Ok((conn, None)),
                Some(found) if found > LAYOUT_VERSION => {
                    return Err(ProjectionError::NewerLayout {
                        at: at.to_string(),
                        found,
                    });
                }
                _ => {}
            }
            drop(conn);
            conn = connect_postgres(url, schema, true)?;
            let tx = conn.transaction()?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext(?1))",
                [format!("switchboard layout {schema}")],
            )?;
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS layout (
                     id BIGINT PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)",
            )?;
            // Read again under the lock: another instance may have just created or changed it.
            match postgres_layout(&tx)? {
                Some(LAYOUT_VERSION) => {
                    tx.commit()?;
                    return Ok((conn, None));
                }
                Some(found) if found > LAYOUT_VERSION => {
                    return Err(ProjectionError::NewerLayout {
                        at: at.to_string(),
                        found,
                    });
                }
                Some(older) => {
                    // A folder of the older build still running notices: its next batch finds
                    // the checkpoint behind the one it committed and stops (see fold.rs).
                    tracing::warn!(%at, found = older, expected = LAYOUT_VERSION,
                        "read models of an older layout: emptied, they are refolded from the start");
                    for table in all_tables().chain(["checkpoint"]) {
                        tx.execute_batch(&format!(
                            "DROP TABLE IF EXISTS {}",
                            quote_identifier(table)
                        ))?;
                    }
                }
                None => {}
            }
            tx.execute_batch(&schema_sql(SCHEMA, Dialect::Postgres))?;
            tx.execute_batch(&schema_sql(QUERY_INDEXES, Dialect::Postgres))?;
            tx.execute(
                "INSERT INTO layout (id, version) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                [LAYOUT_VERSION],
            )?;
            tx.commit()?;
            Ok((conn, None))
        }
    }
}

/// Opens the live SQLite read models: the file `link` names now.
pub(crate) fn open_live_sqlite(link: &Path) -> Result<(Conn, Generation), ProjectionError> {
    let generation = Generation::resolve(link)?;
    Ok((
        open_live_file(generation.file(), OlderLayout::Refold)?,
        generation,
    ))
}

/// Opens the live SQLite read models for a full rebuild, which needs only their checkpoint and
/// their write lock: the install replaces the file whole. So read models of an older layout
/// are left as they are, for the server of the older build that may be answering from them
/// until the install, instead of being emptied and refolded.
pub(crate) fn open_live_for_install(link: &Path) -> Result<(Conn, Generation), ProjectionError> {
    let generation = Generation::resolve(link)?;
    Ok((
        open_live_file(generation.file(), OlderLayout::Keep)?,
        generation,
    ))
}

/// Turns a rebuild's replayed file into one a server can use as its live read models: the
/// query indexes, the WAL journal and the busy timeout of a live file, and every page on disk
/// before a link may name it (it was written without fsync). The rebuild's later commits (a
/// catch-up with the live runner) sync the WAL each (`synchronous = FULL`), so whatever the
/// link names is on disk.
pub(crate) fn make_installable(conn: &Conn, path: &Path) -> Result<(), ProjectionError> {
    let file = std::fs::File::open(path).map_err(|e| ProjectionError::io(path, e))?;
    // The disk takes the replay's pages while this thread builds the indexes, so the last sync
    // is left with the indexes' pages (and the header the switch to WAL rewrites).
    std::thread::scope(|scope| {
        let replayed = std::thread::Builder::new()
            .name("read-models-sync".to_owned())
            .spawn_scoped(scope, || file.sync_data())
            .map_err(|e| ProjectionError::io(path, e))?;
        let indexed = create_query_indexes(conn);
        let synced = replayed
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the sync's thread panicked")));
        indexed?;
        synced.map_err(|e| ProjectionError::io(path, e))
    })?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", (), |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(ProjectionError::Connect(format!(
            "{}: SQLite kept the journal mode {mode} instead of WAL",
            path.display()
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL")?;
    conn.query_row(
        &format!("PRAGMA busy_timeout = {}", BUSY_TIMEOUT.as_millis()),
        (),
        |r| r.get::<i64>(0),
    )?;
    file.sync_all().map_err(|e| ProjectionError::io(path, e))
}

/// What opening live read models of an older layout does to them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OlderLayout {
    /// Empties them, to be refolded from position 0 (a folder opening them).
    Refold,
    /// Leaves them as the older build made them (a full rebuild about to replace them).
    Keep,
}

fn open_live_file(path: &Path, older: OlderLayout) -> Result<Conn, ProjectionError> {
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
    if layout > LAYOUT_VERSION {
        return Err(ProjectionError::NewerLayout {
            at: path.display().to_string(),
            found: layout,
        });
    }
    if layout != 0 && layout != LAYOUT_VERSION {
        if older == OlderLayout::Keep {
            return Ok(Conn::from(conn));
        }
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
    Ok(Conn::from(conn))
}

/// Creates the indexes only queries use (the fold never looks rows up by them): on rebuilt
/// read models once the replay is done, and on the live ones after a swap replaced tables.
pub(crate) fn create_query_indexes(conn: &Conn) -> Result<(), ProjectionError> {
    conn.execute_batch(&schema_sql(QUERY_INDEXES, conn.dialect()))?;
    Ok(())
}

/// Opens discardable read models for a rebuild, emptied first. SQLite: a file with no journal
/// on disk and no fsync (rollback to a savepoint still works: the journal is in memory).
/// PostgreSQL: a fresh schema. The query-only indexes are left out: the caller creates them
/// once the replay is done ([`create_query_indexes`]).
pub fn open_scratch(at: &ReadModelsAt) -> Result<Conn, ProjectionError> {
    match at {
        ReadModelsAt::Sqlite(path) => open_scratch_file(path),
        ReadModelsAt::Postgres { url, schema } => {
            let conn = connect_postgres(url, schema, false)?;
            drop_schema(&conn, schema)?;
            let quoted = quote_identifier(schema);
            conn.execute_batch(&format!(
                "CREATE SCHEMA {quoted}; SET search_path TO {quoted}"
            ))?;
            conn.execute_batch(&schema_sql(SCHEMA, Dialect::Postgres))?;
            Ok(conn)
        }
    }
}

/// Drops a PostgreSQL schema and everything in it.
fn drop_schema(conn: &Conn, schema: &str) -> Result<(), ProjectionError> {
    conn.execute_batch(&format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        quote_identifier(schema)
    ))?;
    Ok(())
}

/// Removes the file at `path`; true if there was one.
pub(crate) fn remove_if_present(path: &Path) -> Result<bool, ProjectionError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ProjectionError::io(path, e)),
    }
}

/// The files SQLite keeps beside a database file, by the suffix it appends to its name.
pub(crate) const SQLITE_COMPANIONS: [&str; 3] = ["-journal", "-wal", "-shm"];

/// Removes what SQLite keeps beside the database file `path` (not the file itself).
pub(crate) fn remove_companions(path: &Path) -> Result<(), ProjectionError> {
    for suffix in SQLITE_COMPANIONS {
        remove_if_present(&with_suffix(path, suffix))?;
    }
    Ok(())
}

/// Removes discardable read models (a rebuild's scratch file or schema), whatever state they
/// were left in.
pub(crate) fn discard(at: &ReadModelsAt) -> Result<(), ProjectionError> {
    match at {
        ReadModelsAt::Sqlite(path) => {
            remove_if_present(path)?;
            remove_companions(path)
        }
        ReadModelsAt::Postgres { url, schema } => {
            drop_schema(&connect_postgres(url, schema, false)?, schema)
        }
    }
}

fn open_scratch_file(path: &Path) -> Result<Conn, ProjectionError> {
    for stale in [
        path.to_path_buf(),
        with_suffix(path, "-journal"),
        with_suffix(path, "-wal"),
    ] {
        remove_if_present(&stale)?;
    }
    let conn = Connection::open(path)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "journal_mode", "MEMORY")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    // A bounded page cache keeps memory flat however long the history is. 64 MiB: the
    // 1M-event rebuild's fold needed ~8 % less CPU than with 8 MiB, and no less with 256 MiB.
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // 8 KiB pages (SQLite's default is 4 KiB): shallower trees for the fold's lookups. The
    // 1M-event rebuild's fold thread took 6.6-7.3 s against 7.1-8.8 s with 4 KiB (five pairs
    // alternated, 2026-12-06). A full rebuild installs this file as the live one, so live
    // read models have 8 KiB pages after their first full rebuild (4 KiB before it).
    conn.pragma_update(None, "page_size", 8192)?;
    conn.execute_batch(SCHEMA)?;
    conn.pragma_update(None, "user_version", LAYOUT_VERSION)?;
    Ok(Conn::from(conn))
}

/// Opens the read models read-only, for queries and exports.
pub fn open_reader(at: &ReadModelsAt) -> Result<Conn, ProjectionError> {
    Ok(open_reader_generation(at)?.0)
}

/// [`open_reader`], with the file a SQLite connection opened (see [`Generation`]); None on
/// PostgreSQL.
pub(crate) fn open_reader_generation(
    at: &ReadModelsAt,
) -> Result<(Conn, Option<Generation>), ProjectionError> {
    match at {
        ReadModelsAt::Sqlite(path) => {
            let generation = Generation::resolve(path)?;
            let conn = Connection::open_with_flags(
                generation.file(),
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            conn.busy_timeout(BUSY_TIMEOUT)?;
            // The queries' pages end in `LIMIT ?`: without the query planner stability
            // guarantee SQLite parses and plans such a cached statement again whenever that
            // parameter is bound anew (every page).
            conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                true,
            )?;
            Ok((Conn::from(conn), Some(generation)))
        }
        ReadModelsAt::Postgres { url, schema } => {
            let conn = connect_postgres(url, schema, false)?;
            conn.execute_batch("SET default_transaction_read_only = on")?;
            Ok((conn, None))
        }
    }
}

pub fn checkpoint(conn: &Conn) -> Result<u64, ProjectionError> {
    let position: Option<i64> = conn
        .query_row("SELECT position FROM checkpoint WHERE id = 1", (), |r| {
            r.get(0)
        })
        .optional()?;
    Ok(position.unwrap_or(0) as u64)
}

/// The checkpoint, read inside a write transaction so that no other writer (a second
/// folder, a rebuild's swap) can move it before this transaction commits. SQLite's
/// `BEGIN IMMEDIATE` already holds the only write lock; PostgreSQL locks the row.
pub(crate) fn checkpoint_for_update(conn: &Conn) -> Result<u64, ProjectionError> {
    match conn.dialect() {
        Dialect::Sqlite => checkpoint(conn),
        Dialect::Postgres => Ok(conn.query_row(
            "SELECT position FROM checkpoint WHERE id = 1 FOR UPDATE",
            (),
            |r| r.get::<u64>(0),
        )?),
    }
}

pub(crate) fn set_checkpoint(conn: &Conn, position: u64) -> Result<(), ProjectionError> {
    conn.execute(
        "UPDATE checkpoint SET position = ?1 WHERE id = 1",
        [position],
    )?;
    Ok(())
}

pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PostgreSQL tests skip without a database; this one does not.
    #[test]
    fn the_postgresql_schema_keeps_no_sqlite_only_clause() {
        assert!(SCHEMA.contains("WITHOUT ROWID"), "a table to strip it from");
        let ddl = schema_sql(SCHEMA, Dialect::Postgres);
        assert!(!ddl.contains("WITHOUT ROWID"), "{ddl}");
    }
}
