//! The ledger: records one command on one stream, exactly once.
//!
//! Load the stream, refuse a dedupe key already in it, let the aggregate decide, and append
//! with the expected version. The dedupe check and the append are protected by the same
//! optimistic-concurrency check, so a duplicate is caught however late it comes and on every
//! backend — without relying on a store's event-id cache.

mod locks;

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use switchboard_domain::{Command, Event, Rejection, StreamId, decide, record_rejection};
use switchboard_store::{EventStore, ExpectedVersion, NewEvent, RecordedEvent, StoreError};
use uuid::Uuid;

pub use locks::StreamLocks;
use locks::{KnownStream, StreamState};

use crate::Error;

/// The envelope-only event that keeps a verified delivery's exact bytes beside the events it
/// produced, so events can be re-derived when parsing improves. Projections ignore it.
pub use switchboard_projections::DELIVERY_RECEIVED;

/// Namespace for deterministic event ids (UUIDv5 of the dedupe key and the event's index):
/// a retried append carries the same ids, so the store's idempotency holds too.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5b1d_4e0c_9a57_4d3e_8f21_7c6a_0b93_e2d4);

/// How often a command is decided again after another writer got to the stream first.
/// In-process writers are serialized by [`StreamLocks`]; this covers other instances.
const MAX_ATTEMPTS: usize = 8;

/// What the stream records beside the domain events: who sent what, and why.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// The key that makes this delivery (or policy reaction) unique within its stream.
    pub dedupe_key: String,
    pub provider: String,
    pub request_id: String,
    /// What caused it: the delivery id, or the event id a policy reacted to.
    pub causation: String,
    /// The call the fact belongs to, when known: ties a call's and its booking's events.
    pub correlation: Option<String>,
    /// The raw delivery (`DeliveryReceived` data), when this is a provider delivery.
    pub raw_delivery: Option<Value>,
    /// Provider time of the delivery, for the raw delivery record.
    pub occurred_at: DateTime<Utc>,
    /// Record a refused transition as an anomaly (provider facts) or refuse the request and
    /// append nothing (admin requests, which the caller can correct and resend).
    pub keep_rejections: bool,
}

impl Provenance {
    /// The delivery id providers see: stable for retries of one delivery.
    pub fn delivery_id(&self) -> Uuid {
        delivery_id(&self.dedupe_key)
    }
}

/// The id of the delivery (or reaction) with this dedupe key: the same for every retry.
pub fn delivery_id(dedupe_key: &str) -> Uuid {
    Uuid::new_v5(&EVENT_ID_NAMESPACE, dedupe_key.as_bytes())
}

/// One stored event, as the ingest answer lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRef {
    pub stream: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Execution {
    /// Appended: the raw delivery (if any) and the decided events, or the rejection record.
    Recorded {
        events: Vec<EventRef>,
        rejection: Option<Rejection>,
    },
    /// The dedupe key is already in the stream: nothing appended.
    Duplicate { stream: String },
    /// The aggregate refused and the provenance asked not to keep refusals: nothing appended.
    Refused { rejection: Rejection },
}

/// What to record on a stream besides the provenance.
// One lives per request, briefly, on the stack: boxing the command would only add an
// allocation to the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Target {
    /// Let the stream's aggregate decide the command.
    Decide { stream: StreamId, command: Command },
    /// Keep the delivery only: the domain has no rule for it (an unknown event type).
    Keep { stream: String },
}

impl Target {
    fn stream_name(&self) -> String {
        match self {
            Target::Decide { stream, .. } => stream.to_string(),
            Target::Keep { stream } => stream.clone(),
        }
    }
}

pub struct Ledger<'a> {
    pub store: &'a dyn EventStore,
    pub locks: &'a StreamLocks,
}

impl Ledger<'_> {
    pub async fn execute(
        &self,
        target: &Target,
        provenance: &Provenance,
    ) -> Result<Execution, Error> {
        let name = target.stream_name();
        let mut state = self.locks.lock(&name).await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // First use of the stream in this process, or another writer moved it on: read
            // what we have not seen. Otherwise what we know is what our own appends made it.
            if state.is_none() || attempt > 1 {
                catch_up(self.store, &name, &mut state).await?;
            }
            let known = state.get_or_insert_with(KnownStream::default);
            if known.dedupe_keys.contains(&provenance.dedupe_key) {
                return Ok(Execution::Duplicate { stream: name });
            }
            let (decided, rejection) = match target {
                Target::Decide { stream, command } => {
                    match decide(stream, &known.history, command.clone()) {
                        Ok(events) => (events, None),
                        Err(rejection) if !provenance.keep_rejections => {
                            return Ok(Execution::Refused { rejection });
                        }
                        Err(reason) => (
                            vec![record_rejection(command, reason.clone())],
                            Some(reason),
                        ),
                    }
                }
                Target::Keep { .. } => (Vec::new(), None),
            };
            let new_events = envelope(&decided, provenance);
            if new_events.is_empty() {
                // Only a policy reaction with nothing to record gets here: a delivery always
                // keeps its raw record. Nothing to append, nothing to dedupe later.
                return Ok(Execution::Recorded {
                    events: Vec::new(),
                    rejection,
                });
            }
            // The types are all the answer needs; the events themselves (with a raw body of up
            // to --max-body) move into the append rather than being copied.
            let types: Vec<String> = new_events.iter().map(|e| e.event_type.clone()).collect();
            let started = Instant::now();
            let appended = self
                .store
                .append(
                    &name,
                    ExpectedVersion::from_current(known.version),
                    new_events,
                )
                .await;
            crate::metrics::append_latency(started.elapsed());
            match appended {
                // Another writer (another instance) appended this very delivery between our
                // read and our append: the store recognised the event ids and wrote nothing.
                // To the provider that is a duplicate like any other.
                Ok(outcome) if outcome.already_recorded => {
                    // What we know is behind the store now; read it again next time.
                    *state = None;
                    return Ok(Execution::Duplicate { stream: name });
                }
                Ok(outcome) => {
                    known.version = outcome.last_version();
                    known.dedupe_keys.insert(provenance.dedupe_key.clone());
                    known.history.extend(decided);
                    let events = outcome
                        .events
                        .iter()
                        .zip(types)
                        .map(|(stored, event_type)| EventRef {
                            stream: name.clone(),
                            event_type,
                            version: stored.version,
                        })
                        .collect();
                    return Ok(Execution::Recorded { events, rejection });
                }
                Err(StoreError::WrongExpectedVersion { .. }) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(stream = %name, attempt, "stream moved on; deciding again");
                    continue;
                }
                // Nothing we know changed: an append that failed wrote nothing, and one whose
                // answer was lost shows up as a version conflict next time.
                Err(error) => return Err(error.into()),
            }
        }
    }
}

/// Reads the events of `stream` after what `state` knows, and folds them in.
async fn catch_up(
    store: &dyn EventStore,
    stream: &str,
    state: &mut StreamState,
) -> Result<(), StoreError> {
    const PAGE: usize = 1000;
    // Most streams are a handful of events (a new call has none): a first page that short is
    // one the embedded store answers on this thread, without a hop to the blocking pool.
    let mut page_size = switchboard_store::sqlite::SHORT_READ_EVENTS;
    let known = state.get_or_insert_with(KnownStream::default);
    loop {
        let from = known.version.map_or(0, |v| v + 1);
        let page = store.read_stream(stream, from, page_size).await?;
        let full = page.len() == page_size;
        page_size = PAGE;
        for recorded in page {
            known.version = Some(recorded.version);
            if let Some(key) = recorded
                .metadata
                .parse::<DedupeKey>()
                .ok()
                .and_then(|m| m.dedupe_key)
            {
                known.dedupe_keys.insert(key);
            }
            if let Some(event) = domain_event(recorded) {
                known.history.push(event);
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// The one metadata field the ledger reads back (only a delivery's first event carries it).
#[derive(serde::Deserialize)]
struct DedupeKey {
    dedupe_key: Option<String>,
}

/// Reads a stream from the beginning, page by page.
pub async fn read_whole_stream(
    store: &dyn EventStore,
    stream: &str,
) -> Result<Vec<RecordedEvent>, StoreError> {
    const PAGE: usize = 1000;
    let mut events = Vec::new();
    loop {
        let page = store.read_stream(stream, events.len() as u64, PAGE).await?;
        let full = page.len() == PAGE;
        events.extend(page);
        if !full {
            return Ok(events);
        }
    }
}

/// A stored event as the aggregate sees it; envelope-only records (the raw deliveries) are
/// not domain events, and anything this binary cannot decode is left out — the anomalies
/// projection reports it.
fn domain_event(recorded: RecordedEvent) -> Option<Event> {
    if recorded.event_type == DELIVERY_RECEIVED {
        return None;
    }
    Event::from_parts(
        &recorded.event_type,
        recorded.schema_version,
        recorded.data.as_str(),
    )
    .map_err(|error| {
        tracing::warn!(stream = %recorded.stream, version = recorded.version, %error,
            "stored event not understood; the aggregate decides without it");
    })
    .ok()
}

fn envelope(decided: &[Event], provenance: &Provenance) -> Vec<NewEvent> {
    // Once per delivery, not once per event: it hashes the dedupe key.
    let delivery_id = provenance.delivery_id();
    let metadata = |index: usize| {
        json!({
            "provider": provenance.provider,
            "delivery_id": delivery_id,
            "request_id": provenance.request_id,
            // Only the first event carries the key: one key, one delivery.
            "dedupe_key": if index == 0 { Value::from(provenance.dedupe_key.as_str()) } else { Value::Null },
            "correlation": provenance.correlation,
            "causation": provenance.causation,
        })
    };
    let id = |index: usize| {
        Uuid::new_v5(
            &EVENT_ID_NAMESPACE,
            format!("{}#{index}", provenance.dedupe_key).as_bytes(),
        )
    };
    let mut events = Vec::with_capacity(decided.len() + 1);
    if let Some(raw) = &provenance.raw_delivery {
        events.push(NewEvent {
            event_id: id(0),
            event_type: DELIVERY_RECEIVED.to_owned(),
            schema_version: 1,
            occurred_at: provenance.occurred_at,
            data: raw.clone(),
            metadata: metadata(0),
        });
    }
    for event in decided {
        let index = events.len();
        events.push(NewEvent {
            event_id: id(index),
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            occurred_at: event.occurred_at(),
            data: event.to_json(),
            metadata: metadata(index),
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use switchboard_domain::command::{CallCommand, StartCall};
    use switchboard_domain::event::CallParties;
    use switchboard_store::sqlite::{SqliteOptions, SqliteStore};

    fn provenance(key: &str) -> Provenance {
        Provenance {
            dedupe_key: key.to_owned(),
            provider: "retell".to_owned(),
            request_id: key.to_owned(),
            causation: key.to_owned(),
            correlation: Some("c1".to_owned()),
            raw_delivery: Some(serde_json::json!({"body": key})),
            occurred_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            keep_rejections: true,
        }
    }

    fn keep(stream: &str) -> Target {
        Target::Keep {
            stream: stream.to_owned(),
        }
    }

    fn versions(execution: &Execution) -> Vec<u64> {
        match execution {
            Execution::Recorded { events, .. } => events.iter().map(|e| e.version).collect(),
            other => panic!("expected a record, got {other:?}"),
        }
    }

    /// Two ledgers with their own locks and caches on one store behave like two instances on
    /// one database: a stale cache costs a retry, never a wrong version or a lost duplicate.
    #[tokio::test]
    async fn a_stale_cache_catches_up_and_still_finds_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("events.sqlite"), SqliteOptions::default()).unwrap();
        let (locks_a, locks_b) = (StreamLocks::default(), StreamLocks::default());
        let a = Ledger {
            store: &store,
            locks: &locks_a,
        };
        let b = Ledger {
            store: &store,
            locks: &locks_b,
        };

        assert_eq!(
            versions(
                &a.execute(&keep("call-c1"), &provenance("d1"))
                    .await
                    .unwrap()
            ),
            [0]
        );
        // B has never seen the stream: it reads it, then appends after A's event.
        assert_eq!(
            versions(
                &b.execute(&keep("call-c1"), &provenance("d2"))
                    .await
                    .unwrap()
            ),
            [1]
        );
        // A still believes the stream ends at 0: its append conflicts, it catches up, retries.
        assert_eq!(
            versions(
                &a.execute(&keep("call-c1"), &provenance("d3"))
                    .await
                    .unwrap()
            ),
            [2]
        );
        // And it now knows B's delivery: a copy of it is a duplicate.
        assert!(matches!(
            a.execute(&keep("call-c1"), &provenance("d2"))
                .await
                .unwrap(),
            Execution::Duplicate { .. }
        ));
        // B is behind by A's last append and learns it the same way.
        assert!(matches!(
            b.execute(&keep("call-c1"), &provenance("d3"))
                .await
                .unwrap(),
            Execution::Duplicate { .. }
        ));
    }

    #[tokio::test]
    async fn the_aggregate_decides_on_what_the_cache_holds_including_its_own_appends() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("events.sqlite"), SqliteOptions::default()).unwrap();
        let locks = StreamLocks::default();
        let ledger = Ledger {
            store: &store,
            locks: &locks,
        };
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let start = || Target::Decide {
            stream: StreamId::call("c1"),
            command: Command::Call(CallCommand::StartCall(StartCall {
                call_id: "c1".into(),
                occurred_at: at,
                parties: CallParties::default(),
            })),
        };
        let first = ledger
            .execute(&start(), &provenance("started-1"))
            .await
            .unwrap();
        assert_eq!(versions(&first), [0, 1], "raw delivery and CallStarted");
        // Another copy of `call_started` under a different key: the Call aggregate, fed from
        // the cache, sees the call already started and decides nothing new.
        let second = ledger
            .execute(&start(), &provenance("started-2"))
            .await
            .unwrap();
        match second {
            Execution::Recorded { events, .. } => {
                let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
                assert_eq!(types, ["DeliveryReceived"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
