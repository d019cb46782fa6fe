//! One entry per stream: an async lock, so concurrent deliveries to one stream queue up in this
//! process instead of racing to a version conflict, and behind it what this process knows of
//! the stream (its version, its domain events, its dedupe keys), so a delivery does not
//! re-read and re-decode the whole stream.
//!
//! What is known may be stale when another instance appends to the same stream (several
//! instances on one database): the append's expected-version check then fails, and the ledger
//! reads just the events it missed. So the cache can only cost a retry, never a wrong decision.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use switchboard_domain::Event;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// How many streams' states are kept; beyond it, the ones not in use are forgotten (and read
/// again from the store when next needed).
const MAX_STREAMS: usize = 10_000;

/// What this process knows of one stream, as of `version`.
#[derive(Debug, Default)]
pub struct KnownStream {
    /// The last version read or written; None for a stream with no events yet.
    pub version: Option<u64>,
    /// The stream's domain events, in order (raw deliveries are not kept: only their keys).
    pub history: Vec<Event>,
    pub dedupe_keys: HashSet<String>,
}

/// A stream's entry: None until first read.
pub type StreamState = Option<KnownStream>;

#[derive(Default)]
pub struct StreamLocks {
    streams: Mutex<HashMap<String, Arc<AsyncMutex<StreamState>>>>,
}

impl StreamLocks {
    /// Waits for the stream's lock; the guard gives what is known of the stream.
    pub async fn lock(&self, stream: &str) -> OwnedMutexGuard<StreamState> {
        let entry = {
            let mut streams = self.streams.lock().expect("stream map poisoned");
            if !streams.contains_key(stream) && streams.len() >= MAX_STREAMS {
                // Only the map holds an entry nobody is using: those can go.
                streams.retain(|_, entry| Arc::strong_count(entry) > 1);
            }
            streams
                .entry(stream.to_owned())
                .or_insert_with(|| Arc::new(AsyncMutex::new(None)))
                .clone()
        };
        entry.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_same_stream_is_serialized_and_other_streams_are_not() {
        let locks = Arc::new(StreamLocks::default());
        let held = locks.lock("call-1").await;
        let other = tokio::time::timeout(Duration::from_secs(5), locks.lock("call-2")).await;
        assert!(other.is_ok(), "another stream must not wait");
        let same = tokio::time::timeout(Duration::from_millis(50), locks.lock("call-1")).await;
        assert!(same.is_err(), "the same stream must wait while held");
        drop(held);
        let same = tokio::time::timeout(Duration::from_secs(5), locks.lock("call-1")).await;
        assert!(same.is_ok());
    }

    #[tokio::test]
    async fn what_is_known_survives_between_holders() {
        let locks = StreamLocks::default();
        *locks.lock("call-1").await = Some(KnownStream {
            version: Some(3),
            ..KnownStream::default()
        });
        let known = locks.lock("call-1").await;
        assert_eq!(known.as_ref().and_then(|k| k.version), Some(3));
    }
}
