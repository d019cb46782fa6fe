use std::path::PathBuf;

use uuid::Uuid;

use crate::ExpectedVersion;

/// Everything a store can refuse or fail at. Callers map `Unavailable` to "retry later"
/// (HTTP 503) and `WrongExpectedVersion` to "reload and decide again".
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum StoreError {
    #[error("stream {stream}: expected {expected}, but the stream is at {}", describe_actual(*.actual))]
    WrongExpectedVersion {
        stream: String,
        expected: ExpectedVersion,
        /// The stream's last version, or None when it does not exist.
        actual: Option<u64>,
    },

    /// Some, but not all, of the events of an append are already in the stream: this is not a
    /// retry of an earlier append, and appending the rest would split one decision in two.
    #[error("stream {stream}: event {event_id} was already appended, but not the whole batch")]
    PartiallyRecorded { stream: String, event_id: Uuid },

    #[error("event {event_id} is {size} bytes, over the limit of {limit} bytes")]
    EventTooLarge {
        event_id: Uuid,
        size: usize,
        limit: usize,
    },

    #[error("invalid append: {0}")]
    InvalidAppend(String),

    /// The data dir holds something that is not a Switchboard store (or is damaged); it is
    /// never overwritten or repaired silently.
    #[error("{}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },

    /// The store cannot take or serve a request right now (disk full, locked past a bound,
    /// database down); nothing was written and the caller may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),

    #[error("store closed")]
    Closed,

    #[error("store backend error: {0}")]
    Backend(String),
}

fn describe_actual(actual: Option<u64>) -> String {
    match actual {
        None => "no stream".to_owned(),
        Some(v) => format!("version {v}"),
    }
}

impl StoreError {
    /// True when retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Closed)
    }
}
