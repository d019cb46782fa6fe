//! Reads: one stream by version, `$all` by position, and the last version or position.
//!
//! `$all` reads are filtered on the server to the store's stream prefixes, and start from an
//! exact position the store has seen (`boundaries.rs`), because KurrentDB refuses to read from
//! an offset inside a record.

use kurrentdb::{
    Error, Position, ReadAllOptions, ReadStream, ReadStreamOptions, StreamPosition,
    SubscriptionFilter,
};
use switchboard_store::{RecordedEvent, StoreError};

use crate::Inner;
use crate::error::from_client;
use crate::mapping::{Stored, decode, log_position, switchboard_position};

/// Up to `limit` events of `stream` from `from_version`, in version order.
pub async fn read_stream(
    inner: &Inner,
    stream: &str,
    from_version: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let options = ReadStreamOptions::default()
        .forwards()
        .position(StreamPosition::Position(from_version))
        .max_count(limit);
    stream_records(inner, stream, &options)
        .await?
        .iter()
        .map(|record| decode(stored(stream, record)))
        .collect()
}

/// The records of `stream` the options select; none when the stream does not exist.
pub async fn stream_records(
    inner: &Inner,
    stream: &str,
    options: &ReadStreamOptions,
) -> Result<Vec<kurrentdb::RecordedEvent>, StoreError> {
    let mut records = Vec::new();
    let read = inner
        .client
        .read_stream(inner.names.kurrent_stream(stream), options)
        .await;
    let mut read = match read {
        Ok(read) => read,
        Err(Error::ResourceNotFound) => return Ok(records),
        Err(e) => return Err(from_client(&inner.target, &e)),
    };
    loop {
        match read.next().await {
            Ok(Some(resolved)) => records.extend(resolved.event),
            Ok(None) | Err(Error::ResourceNotFound) => return Ok(records),
            Err(e) => return Err(from_client(&inner.target, &e)),
        }
    }
}

/// The last version of `stream`, or None when it has no events.
pub async fn stream_version(inner: &Inner, stream: &str) -> Result<Option<u64>, StoreError> {
    let options = ReadStreamOptions::default()
        .backwards()
        .position(StreamPosition::End)
        .max_count(1);
    let last = stream_records(inner, stream, &options).await?;
    Ok(last.first().map(|record| record.revision))
}

/// Up to `limit` events with position >= `from_position`, in `$all` order.
pub async fn read_all(
    inner: &Inner,
    from_position: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let wanted = log_position(from_position);
    let start = start_at_or_below(inner, wanted).await?;
    let options = ReadAllOptions::default()
        .forwards()
        .position(start)
        .filter(filter(inner));
    let mut read = open_all(inner, &options).await?;
    let mut events = Vec::new();
    // The read is not bounded by `limit`: it may start a few events early. Dropping it once
    // the page is full ends the call on the server.
    while events.len() < limit {
        let Some(record) = next_all(inner, &mut read).await? else {
            break;
        };
        inner.boundaries.remember(record.position);
        if record.position.prepare >= wanted {
            events.push(decode_all(inner, &record)?);
        }
    }
    Ok(events)
}

/// The position of the newest event of the store's streams, exactly as `$all` reports it.
pub async fn last_event(inner: &Inner) -> Result<Option<Position>, StoreError> {
    let options = ReadAllOptions::default()
        .backwards()
        .position(StreamPosition::End)
        .filter(filter(inner))
        .max_count(1);
    let mut read = open_all(inner, &options).await?;
    let last = next_all(inner, &mut read)
        .await?
        .map(|record| record.position);
    if let Some(position) = last {
        inner.boundaries.remember(position);
    }
    Ok(last)
}

/// The trait's head: the newest event's position, 0 when the store is empty.
pub async fn head_position(inner: &Inner) -> Result<u64, StoreError> {
    Ok(last_event(inner)
        .await?
        .and_then(switchboard_position)
        .unwrap_or(0))
}

/// Where to start reading `$all` to see every event with prepare position >= `wanted`: the
/// nearest known event at or below it, else one found by reading back from the head (a
/// reader resuming from a checkpoint is near the head), else the start of the log.
async fn start_at_or_below(
    inner: &Inner,
    wanted: u64,
) -> Result<StreamPosition<Position>, StoreError> {
    if wanted == 0 {
        return Ok(StreamPosition::Start);
    }
    if let Some(known) = inner.boundaries.at_or_below(wanted) {
        return Ok(StreamPosition::Position(known));
    }
    let options = ReadAllOptions::default()
        .backwards()
        .position(StreamPosition::End)
        .filter(filter(inner));
    let mut read = open_all(inner, &options).await?;
    while let Some(record) = next_all(inner, &mut read).await? {
        if record.position.prepare <= wanted {
            inner.boundaries.remember(record.position);
            return Ok(StreamPosition::Position(record.position));
        }
    }
    Ok(StreamPosition::Start)
}

/// The server-side filter to the store's streams, for reads and the head subscription.
pub fn filter(inner: &Inner) -> SubscriptionFilter {
    inner
        .names
        .filter_prefixes()
        .into_iter()
        .fold(SubscriptionFilter::on_stream_name(), |filter, prefix| {
            filter.add_prefix(prefix)
        })
}

async fn open_all(inner: &Inner, options: &ReadAllOptions) -> Result<ReadStream, StoreError> {
    inner
        .client
        .read_all(options)
        .await
        .map_err(|e| from_client(&inner.target, &e))
}

async fn next_all(
    inner: &Inner,
    read: &mut ReadStream,
) -> Result<Option<kurrentdb::RecordedEvent>, StoreError> {
    loop {
        match read.next().await {
            Ok(Some(resolved)) => {
                // Filtered to our prefixes and read without resolving links, every entry is
                // an event of ours; an entry without one is skipped, not guessed at.
                if let Some(record) = resolved.event {
                    return Ok(Some(record));
                }
            }
            Ok(None) => return Ok(None),
            Err(e) => return Err(from_client(&inner.target, &e)),
        }
    }
}

pub fn decode_all(
    inner: &Inner,
    record: &kurrentdb::RecordedEvent,
) -> Result<RecordedEvent, StoreError> {
    let stream = inner
        .names
        .switchboard_stream(record.stream_id())
        .ok_or_else(|| {
            StoreError::Backend(format!(
                "KurrentDB {}: $all returned stream {} outside the store's prefixes",
                inner.target,
                record.stream_id()
            ))
        })?;
    decode(stored(stream, record))
}

fn stored<'a>(stream: &'a str, record: &'a kurrentdb::RecordedEvent) -> Stored<'a> {
    Stored {
        stream,
        event_id: record.id,
        revision: record.revision,
        event_type: &record.event_type,
        position: record.position,
        data: &record.data,
        metadata: &record.custom_metadata,
    }
}
