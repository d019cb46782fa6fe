//! The writer's memory of the streams it appends to: each stream's last version and the place
//! of every event id in it.
//!
//! Idempotency used to be a `UNIQUE (stream, event_id)` index. Every commit then dirtied one
//! leaf of that index per distinct stream in the group, on top of the leaf of the
//! `(stream, version)` index: twice the WAL pages, written and fsynced, for a lookup that only
//! retries need. The writer is the only connection of this process that appends, so it can
//! answer "is this id in the stream" and "what is its last version" itself: a stream's ids are
//! read once through the `(stream, version)` index when the stream is first appended to, and
//! kept current as the writer appends.
//!
//! The memory is a cache of what the file says, never the other way round:
//! * it is loaded inside the writer's open transaction, so it sees that transaction's own
//!   appends;
//! * it is emptied whenever the file may have changed behind it: a rolled-back batch, a
//!   constraint failure, or a commit by another connection (another process opening the same
//!   file), which `PRAGMA data_version` reveals;
//! * it is bounded: past [`MAX_CACHED_IDS`] ids, streams the current batch does not use are
//!   forgotten and reloaded from the file when next appended to.

use std::collections::HashMap;

use rusqlite::{Connection, params};
use uuid::Uuid;

use crate::AppendedEvent;

/// About 10 MiB of ids (16 bytes of id, 16 of place, and the map's overhead).
const MAX_CACHED_IDS: usize = 1 << 18;

const LOAD_STREAM: &str = "SELECT version, position, event_id FROM events WHERE stream = ?1";

/// Where an event already in the stream landed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place {
    pub version: u64,
    pub position: u64,
}

#[derive(Debug, Default)]
pub(crate) struct KnownStream {
    /// None while the stream has no events.
    pub last_version: Option<u64>,
    pub ids: HashMap<Uuid, Place>,
    /// The batch that last used this stream, for eviction.
    used_in_batch: u64,
}

#[derive(Debug, Default)]
pub(crate) struct KnownStreams {
    streams: HashMap<String, KnownStream>,
    ids: usize,
    batch: u64,
    /// `PRAGMA data_version` when the memory was last known to match the file.
    data_version: Option<i64>,
}

impl KnownStreams {
    /// Called at the start of each batch, inside its write transaction: forgets everything if
    /// another connection has committed since (and says so), and trims the memory to its bound.
    pub(crate) fn begin_batch(&mut self, conn: &Connection) -> rusqlite::Result<bool> {
        let data_version: i64 = conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |row| row.get(0))?;
        let changed = self.data_version != Some(data_version);
        if changed {
            self.forget_all();
            self.data_version = Some(data_version);
        }
        if self.ids > MAX_CACHED_IDS {
            // Streams of the previous batch are the likeliest to be appended to again.
            let previous = self.batch;
            self.streams.retain(|_, s| s.used_in_batch == previous);
            self.ids = self.streams.values().map(|s| s.ids.len()).sum();
        }
        self.batch += 1;
        Ok(changed)
    }

    /// The stream as the open transaction sees it, read from the file if not in memory.
    pub(crate) fn get(
        &mut self,
        conn: &Connection,
        stream: &str,
    ) -> rusqlite::Result<StreamMemory<'_>> {
        if !self.streams.contains_key(stream) {
            let loaded = load(conn, stream)?;
            self.ids += loaded.ids.len();
            self.streams.insert(stream.to_owned(), loaded);
        }
        let known = self
            .streams
            .get_mut(stream)
            .expect("inserted above when absent");
        known.used_in_batch = self.batch;
        Ok(StreamMemory {
            known,
            total_ids: &mut self.ids,
        })
    }

    /// After a rollback or an unexpected failure: the file is the only truth.
    pub(crate) fn forget_all(&mut self) {
        self.streams.clear();
        self.ids = 0;
    }
}

/// One stream's memory, as handed out for an append: the append checks against it and then
/// records what it inserted through it, with no second lookup of the stream.
pub(crate) struct StreamMemory<'a> {
    known: &'a mut KnownStream,
    total_ids: &'a mut usize,
}

impl StreamMemory<'_> {
    /// Records events the open transaction has just inserted into this stream, so later
    /// appends in the same or later batches see them.
    pub(crate) fn appended(&mut self, events: &[AppendedEvent]) {
        for event in events {
            let place = Place {
                version: event.version,
                position: event.position,
            };
            if self.known.ids.insert(event.event_id, place).is_none() {
                *self.total_ids += 1;
            }
            self.known.last_version = Some(
                self.known
                    .last_version
                    .map_or(event.version, |v| v.max(event.version)),
            );
        }
    }
}

impl std::ops::Deref for StreamMemory<'_> {
    type Target = KnownStream;

    fn deref(&self) -> &KnownStream {
        self.known
    }
}

fn load(conn: &Connection, stream: &str) -> rusqlite::Result<KnownStream> {
    let mut statement = conn.prepare_cached(LOAD_STREAM)?;
    let mut rows = statement.query(params![stream])?;
    let mut known = KnownStream::default();
    while let Some(row) = rows.next()? {
        let version = row.get::<_, i64>(0)? as u64;
        let position = row.get::<_, i64>(1)? as u64;
        let id_bytes = row.get_ref(2)?.as_blob()?;
        // A malformed id cannot match any appended id; reads report such rows as corrupt.
        if let Ok(event_id) = Uuid::from_slice(id_bytes) {
            known.ids.insert(event_id, Place { version, position });
        }
        known.last_version = Some(known.last_version.map_or(version, |v| v.max(version)));
    }
    Ok(known)
}
