//! The envelope: what is appended and what is read back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::RawJson;

/// What the appender may assume about the stream it appends to.
///
/// Versions count from 0: the first event of a stream has version 0, so `Exact(n)` means
/// "the stream's last event has version n" (KurrentDB's stream revision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    /// The expectation that matches a stream whose last version is `current`.
    pub fn from_current(current: Option<u64>) -> Self {
        match current {
            None => ExpectedVersion::NoStream,
            Some(v) => ExpectedVersion::Exact(v),
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// An event to append. Its id makes the append idempotent: appending an event whose id is
/// already in the stream appends nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    /// When the fact happened, by the provider's clock.
    pub occurred_at: DateTime<Utc>,
    pub data: serde_json::Value,
    pub metadata: serde_json::Value,
}

/// An event as stored, with its full envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub event_id: Uuid,
    pub stream: String,
    /// Position in its stream, from 0.
    pub version: u64,
    /// Position in the global order (`$all`): strictly increasing in commit order, not
    /// necessarily contiguous, always > 0.
    pub position: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    /// When the store committed it, by the store's clock.
    pub recorded_at: DateTime<Utc>,
    /// The JSON as stored: deserialize it into the type you need ([`RawJson::parse`]).
    pub data: RawJson,
    pub metadata: RawJson,
}

/// Where one appended event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendedEvent {
    pub event_id: Uuid,
    pub version: u64,
    pub position: u64,
}

/// The result of a successful append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    pub stream: String,
    /// One entry per event passed to `append`, in the same order.
    pub events: Vec<AppendedEvent>,
    /// True when every event was already in the stream (a retried append): nothing was written.
    pub already_recorded: bool,
}

impl AppendOutcome {
    /// The stream's version after the append (the last event's version).
    pub fn last_version(&self) -> Option<u64> {
        self.events.iter().map(|e| e.version).max()
    }
}
