//! Reads, on read-only connections of their own, so a read never waits for the writer (WAL
//! lets readers see the last committed state while a write transaction is open).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::errors::from_sqlite;
use super::schema::open_reader;
use crate::{RawJson, RecordedEvent, StoreError};

const READ_ALL: &str = include_str!("sql/read_all.sql");
const READ_RANGE: &str = include_str!("sql/read_range.sql");
const READ_STREAM: &str = include_str!("sql/read_stream.sql");

/// Read-only connections kept for reuse: opening one costs far more than a short read.
/// Connections beyond `max_idle` are closed after use rather than kept.
pub(crate) struct ReadPool {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl ReadPool {
    pub(crate) fn new(path: PathBuf, busy_timeout: Duration, max_idle: usize) -> Self {
        ReadPool {
            path,
            busy_timeout,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// Runs `read` on a pooled connection. Blocking: call it from `spawn_blocking`.
    pub(crate) fn with<T>(
        &self,
        read: impl FnOnce(&Connection, &Path) -> Result<T, ReadError>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_reader(&self.path, self.busy_timeout)?,
        };
        let result = read(&conn, &self.path).map_err(|e| e.into_store_error(&self.path));
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
        result
    }
}

/// A read failure before it is given the file's path.
pub(crate) enum ReadError {
    Sqlite(rusqlite::Error),
    /// A row that this build cannot have written: the file was damaged or edited.
    BadRow {
        position: i64,
        what: String,
    },
}

impl From<rusqlite::Error> for ReadError {
    fn from(error: rusqlite::Error) -> Self {
        ReadError::Sqlite(error)
    }
}

impl ReadError {
    fn into_store_error(self, path: &Path) -> StoreError {
        match self {
            ReadError::Sqlite(e) => from_sqlite(path, e),
            ReadError::BadRow { position, what } => StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("event at position {position}: {what}"),
            },
        }
    }
}

/// Every read stops at `upto`, the store's head: the last position known to be durable (see
/// `syncer`). Rows past it are committed but not yet synced, and are not handed out.
pub(crate) fn read_all(
    conn: &Connection,
    from_position: u64,
    limit: usize,
    upto: u64,
) -> Result<Vec<RecordedEvent>, ReadError> {
    let Ok(from) = i64::try_from(from_position) else {
        return Ok(Vec::new());
    };
    let mut statement = conn.prepare_cached(READ_ALL)?;
    let mut rows = statement.query(params![from, clamp(limit), position(upto)])?;
    collect(&mut rows, limit)
}

/// Like [`read_all`], but only positions below `below`.
pub(crate) fn read_range(
    conn: &Connection,
    from_position: u64,
    below: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, ReadError> {
    let (Ok(from), Ok(below)) = (i64::try_from(from_position), i64::try_from(below)) else {
        return Ok(Vec::new());
    };
    let mut statement = conn.prepare_cached(READ_RANGE)?;
    let mut rows = statement.query(params![from, clamp(limit), below])?;
    collect(&mut rows, limit)
}

pub(crate) fn read_stream(
    conn: &Connection,
    stream: &str,
    from_version: u64,
    limit: usize,
    upto: u64,
) -> Result<Vec<RecordedEvent>, ReadError> {
    let Ok(from) = i64::try_from(from_version) else {
        return Ok(Vec::new());
    };
    let mut statement = conn.prepare_cached(READ_STREAM)?;
    let mut rows = statement.query(params![stream, from, clamp(limit), position(upto)])?;
    collect(&mut rows, limit)
}

/// The stream's last version up to `upto` (None when it has no events there): a walk back
/// from the end of the stream's range in the (stream, version) index, which stops at once
/// unless the stream's newest events are not yet durable. (The writer keeps its own, see
/// `known_streams`.)
pub(crate) fn stream_version(
    conn: &Connection,
    stream: &str,
    upto: u64,
) -> Result<Option<u64>, ReadError> {
    let mut statement = conn.prepare_cached(
        "SELECT version FROM events WHERE stream = ?1 AND position <= ?2 \
         ORDER BY version DESC LIMIT 1",
    )?;
    let last: Option<i64> = statement
        .query_row(params![stream, position(upto)], |row| row.get(0))
        .optional()?;
    Ok(last.map(|v| v as u64))
}

pub(crate) fn head_position(conn: &Connection) -> Result<u64, ReadError> {
    let head: i64 = conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |row| {
        row.get(0)
    })?;
    Ok(head as u64)
}

fn position(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

fn clamp(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn collect(rows: &mut rusqlite::Rows<'_>, limit: usize) -> Result<Vec<RecordedEvent>, ReadError> {
    // Pages are usually full; reserving up to a bound avoids regrowing without trusting a
    // caller's huge limit.
    let mut events = Vec::with_capacity(limit.min(4096));
    while let Some(row) = rows.next()? {
        events.push(decode(row)?);
    }
    Ok(events)
}

/// Decodes one row, borrowing text and blobs from SQLite where it can: `$all` reads are
/// bounded by this function.
fn decode(row: &Row<'_>) -> Result<RecordedEvent, ReadError> {
    let position: i64 = row.get(0)?;
    let bad = |what: String| ReadError::BadRow { position, what };
    let text = |index: usize, name: &str| -> Result<&str, ReadError> {
        row.get_ref(index)?
            .as_str()
            .map_err(|e| bad(format!("{name}: {e}")))
    };

    let id_bytes = row
        .get_ref(3)?
        .as_blob()
        .map_err(|e| bad(format!("event id: {e}")))?;
    let event_id = Uuid::from_slice(id_bytes).map_err(|e| bad(format!("event id: {e}")))?;
    let occurred_at = timestamp(row.get(6)?, row.get(7)?)
        .ok_or_else(|| bad("occurred_at out of range".to_owned()))?;
    let recorded_at = timestamp(row.get(8)?, row.get(9)?)
        .ok_or_else(|| bad("recorded_at out of range".to_owned()))?;
    // Checked as JSON when appended; handed out as text (see `RawJson`).
    let data = RawJson::from_stored(text(10, "data")?);
    let metadata = RawJson::from_stored(text(11, "metadata")?);

    Ok(RecordedEvent {
        event_id,
        stream: text(1, "stream")?.to_owned(),
        version: row.get::<_, i64>(2)? as u64,
        position: position as u64,
        event_type: text(4, "event type")?.to_owned(),
        schema_version: row.get::<_, i64>(5)? as u32,
        occurred_at,
        recorded_at,
        data,
        metadata,
    })
}

fn timestamp(seconds: i64, nanos: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, u32::try_from(nanos).ok()?)
}
