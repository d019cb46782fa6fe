//! Deciding a batch of appends: given what the database holds for the batch's streams and
//! event ids (read under the position lock), which appends go through, where their events
//! land, and what each caller is told.
//!
//! Pure on purpose: the rules (idempotency before expectations, one stream appended twice in
//! one batch, a retry of an append earlier in the same batch) are tested here without a
//! database, and the database work stays a few set-based statements per batch.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use switchboard_store::{AppendOutcome, AppendedEvent, ExpectedVersion, StoreError};
use uuid::Uuid;

use crate::append::{Answer, AppendRequest};

/// What the database holds for a batch, read after taking the position lock.
#[derive(Debug, Default)]
pub(crate) struct Known {
    /// The last position handed out.
    pub last_position: u64,
    /// The last version of each of the batch's streams that exists.
    pub versions: HashMap<String, u64>,
    /// Where each of the batch's event ids already recorded in its stream landed.
    pub recorded: HashMap<(String, Uuid), AppendedEvent>,
}

/// The rows a batch writes, as the columns of one multi-row INSERT.
#[derive(Debug, Default)]
pub(crate) struct NewRows<'a> {
    pub positions: Vec<i64>,
    pub streams: Vec<&'a str>,
    pub versions: Vec<i64>,
    pub event_ids: Vec<Uuid>,
    pub event_types: Vec<&'a str>,
    pub schema_versions: Vec<i64>,
    pub occurred_at: Vec<DateTime<Utc>>,
    pub occurred_nanos: Vec<i32>,
    pub data: Vec<&'a str>,
    pub metadata: Vec<&'a str>,
    pub data_exact: Vec<Option<&'a str>>,
    pub metadata_exact: Vec<Option<&'a str>>,
}

/// A decided batch: an answer per request (in order), the events to insert, each touched
/// stream's new last version, and the position counter's new value.
#[derive(Debug)]
pub(crate) struct Decided<'a> {
    pub answers: Vec<Answer>,
    pub rows: NewRows<'a>,
    pub stream_names: Vec<&'a str>,
    pub stream_versions: Vec<i64>,
    pub last_position: u64,
}

impl Decided<'_> {
    /// True when the batch writes nothing (every append refused or a retry).
    pub(crate) fn writes_nothing(&self) -> bool {
        self.rows.positions.is_empty()
    }
}

/// Decides `batch` in order, each append seeing the ones before it, as if each had been
/// committed alone.
pub(crate) fn decide(batch: &[AppendRequest], known: Known) -> Decided<'_> {
    let Known {
        mut last_position,
        mut versions,
        mut recorded,
    } = known;
    let mut rows = NewRows::default();
    let mut touched: Vec<&str> = Vec::new();
    let mut answers = Vec::with_capacity(batch.len());

    for request in batch {
        let stream = request.stream.as_str();
        // Idempotency before the expectation: a retry succeeds whatever it expected.
        let found: Vec<Option<AppendedEvent>> = request
            .event_ids
            .iter()
            .map(|&id| recorded.get(&(request.stream.clone(), id)).copied())
            .collect();
        if let Some(first_recorded) = found.iter().flatten().next() {
            answers.push(if found.iter().all(Option::is_some) {
                Ok(AppendOutcome {
                    stream: stream.to_owned(),
                    events: found.into_iter().flatten().collect(),
                    already_recorded: true,
                })
            } else {
                Err(StoreError::PartiallyRecorded {
                    stream: stream.to_owned(),
                    event_id: first_recorded.event_id,
                })
            });
            continue;
        }

        let actual = versions.get(stream).copied();
        let matches = match request.expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::Exact(v) => actual == Some(v),
        };
        if !matches {
            answers.push(Err(StoreError::WrongExpectedVersion {
                stream: stream.to_owned(),
                expected: request.expected,
                actual,
            }));
            continue;
        }

        let first_version = actual.map_or(0, |v| v + 1);
        let mut events = Vec::with_capacity(request.event_ids.len());
        for (i, &event_id) in request.event_ids.iter().enumerate() {
            let placed = AppendedEvent {
                event_id,
                version: first_version + i as u64,
                position: last_position + 1 + i as u64,
            };
            rows.positions.push(placed.position as i64);
            rows.streams.push(stream);
            rows.versions.push(placed.version as i64);
            rows.event_ids.push(event_id);
            rows.event_types.push(&request.event_types[i]);
            rows.schema_versions.push(request.schema_versions[i]);
            rows.occurred_at.push(request.occurred_at[i]);
            rows.occurred_nanos.push(request.occurred_nanos[i]);
            rows.data.push(&request.data[i]);
            rows.metadata.push(&request.metadata[i]);
            rows.data_exact.push(request.data_exact[i].as_deref());
            rows.metadata_exact
                .push(request.metadata_exact[i].as_deref());
            recorded.insert((request.stream.clone(), event_id), placed);
            events.push(placed);
        }
        last_position += events.len() as u64;
        versions.insert(
            request.stream.clone(),
            first_version + events.len() as u64 - 1,
        );
        if !touched.contains(&stream) {
            touched.push(stream);
        }
        answers.push(Ok(AppendOutcome {
            stream: stream.to_owned(),
            events,
            already_recorded: false,
        }));
    }

    let stream_versions = touched.iter().map(|s| versions[*s] as i64).collect();
    Decided {
        answers,
        rows,
        stream_names: touched,
        stream_versions,
        last_position,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use switchboard_store::DEFAULT_MAX_EVENT_BYTES;

    use super::*;

    fn event(id: u128) -> switchboard_store::NewEvent {
        switchboard_store::NewEvent {
            event_id: Uuid::from_u128(id),
            event_type: "Tested".to_owned(),
            schema_version: 1,
            occurred_at: DateTime::UNIX_EPOCH,
            data: json!({"id": id}),
            metadata: json!({}),
        }
    }

    fn request(stream: &str, expected: ExpectedVersion, ids: &[u128]) -> AppendRequest {
        let events = ids.iter().map(|&id| event(id)).collect();
        AppendRequest::new(stream, expected, events, DEFAULT_MAX_EVENT_BYTES)
            .unwrap()
            .0
    }

    fn placed(id: u128, version: u64, position: u64) -> AppendedEvent {
        AppendedEvent {
            event_id: Uuid::from_u128(id),
            version,
            position,
        }
    }

    fn known_stream_a() -> Known {
        Known {
            last_position: 10,
            versions: HashMap::from([("a".to_owned(), 1)]),
            recorded: HashMap::from([
                (("a".to_owned(), Uuid::from_u128(1)), placed(1, 0, 9)),
                (("a".to_owned(), Uuid::from_u128(2)), placed(2, 1, 10)),
            ]),
        }
    }

    #[test]
    fn appends_of_one_batch_see_each_other_in_order() {
        let batch = [
            request("a", ExpectedVersion::Exact(1), &[3, 4]),
            request("a", ExpectedVersion::Exact(1), &[5]),
            request("a", ExpectedVersion::Exact(3), &[6]),
            request("b", ExpectedVersion::NoStream, &[7]),
            request("b", ExpectedVersion::NoStream, &[8]),
        ];
        let decided = decide(&batch, known_stream_a());
        let answers = decided.answers;
        assert_eq!(
            answers[0].as_ref().unwrap().events,
            [placed(3, 2, 11), placed(4, 3, 12)]
        );
        assert_eq!(
            answers[1],
            Err(StoreError::WrongExpectedVersion {
                stream: "a".into(),
                expected: ExpectedVersion::Exact(1),
                actual: Some(3)
            }),
            "the second append sees the first's versions"
        );
        assert_eq!(answers[2].as_ref().unwrap().events, [placed(6, 4, 13)]);
        assert_eq!(answers[3].as_ref().unwrap().events, [placed(7, 0, 14)]);
        assert_eq!(
            answers[4],
            Err(StoreError::WrongExpectedVersion {
                stream: "b".into(),
                expected: ExpectedVersion::NoStream,
                actual: Some(0)
            })
        );
        assert_eq!(decided.rows.positions, [11, 12, 13, 14]);
        assert_eq!(decided.rows.streams, ["a", "a", "a", "b"]);
        assert_eq!(decided.rows.versions, [2, 3, 4, 0]);
        assert_eq!(
            (decided.stream_names, decided.stream_versions),
            (vec!["a", "b"], vec![4, 0]),
            "each stream once, at its last version"
        );
        assert_eq!(decided.last_position, 14);
    }

    #[test]
    fn retries_and_partial_retries_are_decided_before_expectations() {
        let batch = [
            request("a", ExpectedVersion::NoStream, &[1, 2]),
            request("a", ExpectedVersion::Exact(7), &[2]),
            request("a", ExpectedVersion::Any, &[9, 1]),
            // Recorded in a, but new to c: idempotency is per stream.
            request("c", ExpectedVersion::Any, &[1]),
        ];
        let decided = decide(&batch, known_stream_a());
        let retry = decided.answers[0].as_ref().unwrap();
        assert!(retry.already_recorded);
        assert_eq!(retry.events, [placed(1, 0, 9), placed(2, 1, 10)]);
        assert_eq!(
            decided.answers[1].as_ref().unwrap().events,
            [placed(2, 1, 10)]
        );
        assert_eq!(
            decided.answers[2],
            Err(StoreError::PartiallyRecorded {
                stream: "a".into(),
                event_id: Uuid::from_u128(1)
            }),
            "names the first recorded event"
        );
        let new = decided.answers[3].as_ref().unwrap();
        assert!(!new.already_recorded);
        assert_eq!(new.events, [placed(1, 0, 11)]);
        assert_eq!(decided.rows.positions, [11]);
    }

    #[test]
    fn the_same_new_append_twice_in_a_batch_is_written_once() {
        let batch = [
            request("twins", ExpectedVersion::Any, &[42]),
            request("twins", ExpectedVersion::Any, &[42]),
        ];
        let decided = decide(&batch, Known::default());
        let (first, second) = (
            decided.answers[0].as_ref().unwrap(),
            decided.answers[1].as_ref().unwrap(),
        );
        assert!(!first.already_recorded && second.already_recorded);
        assert_eq!(first.events, second.events);
        assert_eq!(decided.rows.positions, [1]);
    }

    #[test]
    fn a_batch_of_refusals_writes_nothing() {
        let batch = [
            request("a", ExpectedVersion::NoStream, &[5]),
            request("a", ExpectedVersion::Any, &[1, 2]),
        ];
        let decided = decide(&batch, known_stream_a());
        assert!(decided.writes_nothing());
        assert_eq!(decided.last_position, 10);
        assert!(decided.stream_names.is_empty());
    }
}
