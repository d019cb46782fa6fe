//! Reads: one stream by version, `$all` by position, and the two heads.
//!
//! `$all` needs no visibility trick here: positions are handed out in commit order (see
//! `sql/schema_v1.sql`), so whatever a plain `position >= $1` returns can never be preceded
//! later by an event at a lower position.

use chrono::{DateTime, Timelike, Utc};
use switchboard_store::{RawJson, RecordedEvent, StoreError};
use tokio_postgres::Row;

use crate::error::from_pg;
use crate::pool::Pool;

const READ_ALL: &str = include_str!("sql/read_all.sql");
const READ_STREAM: &str = include_str!("sql/read_stream.sql");
const STREAM_VERSION: &str = include_str!("sql/stream_version.sql");
const HEAD_POSITION: &str = include_str!("sql/head_position.sql");

pub(crate) async fn read_all(
    pool: &Pool,
    from_position: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = query(pool, READ_ALL, &[&bigint(from_position), &bigint(limit)]).await?;
    rows.iter().map(|row| recorded(pool, row)).collect()
}

pub(crate) async fn read_stream(
    pool: &Pool,
    stream: &str,
    from_version: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = query(
        pool,
        READ_STREAM,
        &[&stream, &bigint(from_version), &bigint(limit)],
    )
    .await?;
    rows.iter().map(|row| recorded(pool, row)).collect()
}

pub(crate) async fn stream_version(pool: &Pool, stream: &str) -> Result<Option<u64>, StoreError> {
    let rows = query(pool, STREAM_VERSION, &[&stream]).await?;
    Ok(rows.first().map(|row| row.get::<_, i64>(0) as u64))
}

pub(crate) async fn head_position(pool: &Pool) -> Result<u64, StoreError> {
    let rows = query(pool, HEAD_POSITION, &[]).await?;
    let row = rows.first().ok_or_else(|| {
        StoreError::Backend(format!(
            "{}: the global_position row is missing",
            pool.target()
        ))
    })?;
    Ok(row.get::<_, i64>(0) as u64)
}

async fn query(
    pool: &Pool,
    sql: &'static str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let mut conn = pool.get().await?;
    let pg = |e| from_pg(pool.target(), &e);
    let statement = conn.statement(sql).await.map_err(pg)?;
    conn.client.query(&statement, params).await.map_err(pg)
}

/// Positions, versions and limits past what a bigint holds mean "everything from here": no
/// stored value can reach them.
fn bigint(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

fn recorded(pool: &Pool, row: &Row) -> Result<RecordedEvent, StoreError> {
    let decode = |e: tokio_postgres::Error| from_pg(pool.target(), &e);
    let occurred_at: DateTime<Utc> = row.try_get("occurred_at").map_err(decode)?;
    let occurred_nanos: i32 = row.try_get("occurred_nanos").map_err(decode)?;
    let schema_version: i64 = row.try_get("schema_version").map_err(decode)?;
    Ok(RecordedEvent {
        event_id: row.try_get("event_id").map_err(decode)?,
        stream: row.try_get("stream").map_err(decode)?,
        version: row.try_get::<_, i64>("version").map_err(decode)? as u64,
        position: row.try_get::<_, i64>("position").map_err(decode)? as u64,
        event_type: row.try_get("event_type").map_err(decode)?,
        schema_version: u32::try_from(schema_version).map_err(|_| {
            StoreError::Backend(format!(
                "{}: schema_version {schema_version} is out of range",
                pool.target()
            ))
        })?,
        // The column holds the whole seconds exactly (see append.rs); the nanoseconds
        // column restores what microseconds cannot hold.
        occurred_at: occurred_at
            .with_nanosecond(occurred_nanos as u32)
            .unwrap_or(occurred_at),
        recorded_at: row.try_get("recorded_at").map_err(decode)?,
        data: raw_json(pool, row, "data", "data_exact")?,
        metadata: raw_json(pool, row, "metadata", "metadata_exact")?,
    })
}

/// An event's exact JSON where jsonb could not hold it (`sql/schema_v2.sql`), else the jsonb
/// value. jsonb keeps a value, not the text it was given (PostgreSQL prints it back with its
/// own spacing and key order); re-serializing it gives the compact, key-sorted text the other
/// backends hand out, as the exact text already is, so an envelope written out is the same
/// byte for byte whichever store it came from.
fn raw_json(pool: &Pool, row: &Row, column: &str, exact: &str) -> Result<RawJson, StoreError> {
    let decode = |e: tokio_postgres::Error| from_pg(pool.target(), &e);
    match row.try_get::<_, Option<String>>(exact).map_err(decode)? {
        Some(text) => RawJson::from_text(text).map_err(|e| StoreError::Corrupt {
            path: pool.target().to_string().into(),
            reason: format!("{exact} of an event is not JSON: {e}"),
        }),
        None => {
            let value: serde_json::Value = row.try_get(column).map_err(decode)?;
            Ok(RawJson::from_value(&value))
        }
    }
}
