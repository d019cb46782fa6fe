//! Opening the store file: telling our file from anything else, and the schema's versions.
//!
//! A data dir may hold something that is not ours (another program's SQLite database, a file
//! copied over by mistake, a damaged file). Such a file is refused with a message naming it;
//! it is never initialised, migrated or repaired, because doing so would destroy the evidence
//! and possibly someone else's data.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::errors::from_sqlite;
use crate::StoreError;

/// `PRAGMA application_id` of a Switchboard event store: "SBEV" in ASCII.
pub const APPLICATION_ID: i32 = 0x5342_4556;

/// The schema version this build writes and understands (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i32 = 2;

/// Each schema version's script, index = version - 1. A later version appends its migration
/// here; existing entries never change, since stores in the field were built from them.
const MIGRATIONS: &[&str] = &[
    include_str!("sql/schema_v1.sql"),
    include_str!("sql/schema_v2.sql"),
];

/// Negative: in KiB (SQLite's convention).
const READER_CACHE_KIB: i64 = -16 * 1024;
/// Checkpoint once the WAL holds this many pages (about 40 MiB at 4 KiB pages).
const CHECKPOINT_PAGES: i64 = 10_000;
/// Readers map the file instead of copying each page through read(2).
const READER_MMAP_BYTES: i64 = 1 << 30;

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Opens (creating it when absent) the store's one read-write connection, with WAL and
/// `synchronous=NORMAL` (the syncer syncs each commit), after checking that the file is a Switchboard store it can use.
pub(crate) fn open_writer(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    check_header(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| from_sqlite(path, e))?;
    conn.busy_timeout(busy_timeout)
        .map_err(|e| from_sqlite(path, e))?;
    check_identity_and_migrate(path, &conn)?;

    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|e| from_sqlite(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{}: cannot switch to WAL journaling (got {mode})",
            path.display()
        )));
    }
    // NORMAL: in WAL mode SQLite then does not sync the WAL on commit, and the store does it
    // itself on the syncer thread before any caller is answered or any reader shows the
    // commit (see `syncer`), so the writer commits the next group during the sync. NORMAL
    // still syncs the WAL before each checkpoint, and the file after one that copies the WAL
    // to its end (which a restart of the WAL needs).
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| from_sqlite(path, e))?;
    // Rarer checkpoints copy a page rewritten by many commits (index leaves of busy streams)
    // only once. The writer's page cache stays at SQLite's default: a larger one made every
    // commit slower (SQLite scans the cache's hash table when a write transaction ends).
    conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)
        .map_err(|e| from_sqlite(path, e))?;
    // Savepoint journals stay in memory rather than spilling to temporary files.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(|e| from_sqlite(path, e))?;
    // A read opens the WAL, creating the file on a new store, so the syncer finds it.
    conn.query_row(
        "SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1)",
        [],
        |_| Ok(()),
    )
    .map_err(|e| from_sqlite(path, e))?;
    Ok(conn)
}

/// Opens the background checkpointer's connection to a store that `open_writer` has already
/// checked. It never writes a row; its checkpoints sync the WAL before copying, and the file
/// after copying the WAL to its end (SQLite does so in FULL and NORMAL alike).
pub(crate) fn open_checkpointer(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| from_sqlite(path, e))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| from_sqlite(path, e))?;
    Ok(conn)
}

/// Opens a read-only connection to a store that `open_writer` has already checked.
pub(crate) fn open_reader(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| from_sqlite(path, e))?;
    conn.busy_timeout(busy_timeout)
        .map_err(|e| from_sqlite(path, e))?;
    conn.pragma_update(None, "cache_size", READER_CACHE_KIB)
        .map_err(|e| from_sqlite(path, e))?;
    conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES)
        .map_err(|e| from_sqlite(path, e))?;
    // The query planner stability guarantee: without it SQLite marks a cached statement whose
    // `LIMIT ?` it peeked at as expired whenever that parameter is bound again, so every read
    // of a stream or of `$all` was parsed and planned anew (`sqlite3Reprepare` on its first
    // step). These reads' plans follow from their indexes, never from the values bound.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(|e| from_sqlite(path, e))?;
    Ok(conn)
}

/// Refuses a non-empty file that does not start with SQLite's magic header before SQLite
/// sees it, so the message can say plainly what is wrong.
fn check_header(path: &Path) -> Result<(), StoreError> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(StoreError::Unavailable(format!(
                "{}: cannot read: {e}",
                path.display()
            )));
        }
    };
    let mut header = Vec::with_capacity(SQLITE_HEADER.len());
    file.by_ref()
        .take(SQLITE_HEADER.len() as u64)
        .read_to_end(&mut header)
        .map_err(|e| StoreError::Unavailable(format!("{}: cannot read: {e}", path.display())))?;
    // An empty file is what SQLite itself creates before the first page is written.
    if header.is_empty() || header == SQLITE_HEADER {
        Ok(())
    } else {
        Err(corrupt(
            path,
            "not an SQLite database (the file does not start with the SQLite header); \
             refusing to use or overwrite it",
        ))
    }
}

fn check_identity_and_migrate(path: &Path, conn: &Connection) -> Result<(), StoreError> {
    let application_id: i32 = pragma(path, conn, "application_id")?;
    let user_version: i32 = pragma(path, conn, "user_version")?;

    if application_id == 0 && user_version == 0 {
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(|e| from_sqlite(path, e))?;
        if objects > 0 {
            return Err(corrupt(
                path,
                &format!(
                    "an SQLite database of another application ({objects} schema objects, \
                     no Switchboard application_id); refusing to use or overwrite it"
                ),
            ));
        }
        return migrate(path, conn, 0);
    }
    if application_id != APPLICATION_ID {
        return Err(corrupt(
            path,
            &format!(
                "an SQLite database of another application (application_id {application_id:#x}, \
                 a Switchboard event store has {APPLICATION_ID:#x}); refusing to use or overwrite it"
            ),
        ));
    }
    if user_version > SCHEMA_VERSION {
        return Err(corrupt(
            path,
            &format!(
                "event store schema version {user_version} is newer than this build understands \
                 ({SCHEMA_VERSION}); upgrade Switchboard"
            ),
        ));
    }
    if user_version < 1 {
        return Err(corrupt(
            path,
            &format!("event store with invalid schema version {user_version}"),
        ));
    }
    migrate(path, conn, user_version)
}

/// Brings the schema from `from` to [`SCHEMA_VERSION`] in one transaction, so a crash midway
/// leaves the file as it was.
fn migrate(path: &Path, conn: &Connection, from: i32) -> Result<(), StoreError> {
    if from == SCHEMA_VERSION {
        return Ok(());
    }
    let run = || -> rusqlite::Result<()> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            // Another process may have initialised the file since we looked.
            let current: i32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
            for script in MIGRATIONS.iter().skip(current.max(0) as usize) {
                conn.execute_batch(script)?;
            }
            conn.pragma_update(None, "application_id", APPLICATION_ID)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            conn.execute_batch("COMMIT")
        })();
        if result.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        result
    };
    run().map_err(|e| from_sqlite(path, e))
}

fn pragma(path: &Path, conn: &Connection, name: &str) -> Result<i32, StoreError> {
    conn.pragma_query_value(None, name, |row| row.get(0))
        .optional()
        .map_err(|e| from_sqlite(path, e))
        .map(|value| value.unwrap_or(0))
}

fn corrupt(path: &Path, reason: &str) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    }
}
