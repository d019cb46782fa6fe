//! Appends: idempotent by event id and checked against the expected version by the store
//! itself, with KurrentDB's expected-revision check as the atomic guard.
//!
//! KurrentDB's own event-id dedupe is a cache of recent ids, and answers a retry that expects
//! another revision with a conflict rather than the original versions, so the store does not
//! rely on it. Each attempt reads the stream, answers a retry from what is recorded there
//! (whenever it was written), checks the caller's expectation against the version read, and
//! appends expecting exactly that version, `Any` included. If the stream moved in between,
//! KurrentDB refuses the write and the attempt starts over from a fresh read: a concurrent
//! retry of the same events is then found recorded, and a real conflict is reported with the
//! version the stream is at.

use std::collections::HashMap;

use chrono::Utc;
use kurrentdb::{AppendToStreamOptions, Error, EventData, ReadStreamOptions, StreamPosition};
use switchboard_store::{
    AppendOutcome, AppendedEvent, ExpectedVersion, NewEvent, StoreError, check_append,
};
use uuid::Uuid;

use crate::Inner;
use crate::error::from_client;
use crate::mapping::{
    Encoded, actual_version, check_expected, encode, pinned_state, switchboard_position,
};
use crate::read::stream_records;

/// How often an append starts over after the stream moved between its read and its write.
/// Only writers racing on one stream get here more than once; each lost race means another
/// append went through, so this is far more than a live stream needs.
const MAX_ATTEMPTS: usize = 64;

pub async fn append(
    inner: &Inner,
    stream: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<AppendOutcome, StoreError> {
    check_append(stream, &events)?;
    inner.names.check_category(stream)?;
    let recorded_at = Utc::now();
    let encoded = events
        .iter()
        .map(|event| encode(event, recorded_at, inner.max_event_bytes))
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<Uuid> = encoded.iter().map(|e| e.event_id).collect();

    for _ in 0..MAX_ATTEMPTS {
        let recorded = Recorded::read(inner, stream).await?;
        if let Some(outcome) = recorded.retry_outcome(stream, &ids)? {
            return Ok(outcome);
        }
        check_expected(stream, expected, recorded.last)?;
        let options = AppendToStreamOptions::default().stream_state(pinned_state(recorded.last));
        let sent = inner
            .client
            .append_to_stream(
                inner.names.kurrent_stream(stream),
                &options,
                event_data(&encoded)?,
            )
            .await;
        match sent {
            Ok(write) => {
                let first = write.next_expected_version + 1 - ids.len() as u64;
                let placed = placed(inner, stream, first, &ids).await?;
                let newest = placed.iter().map(|e| e.position).max().unwrap_or(0);
                inner.advance_head(newest);
                return Ok(AppendOutcome {
                    stream: stream.to_owned(),
                    events: placed,
                    already_recorded: false,
                });
            }
            Err(Error::WrongExpectedVersion { current, .. }) => {
                tracing::debug!(
                    stream,
                    read = ?recorded.last,
                    now = ?actual_version(current),
                    "stream moved between read and append; reading again"
                );
            }
            Err(e) => return Err(from_client(&inner.target, &e)),
        }
    }
    Err(StoreError::Unavailable(format!(
        "stream {stream}: still contended after {MAX_ATTEMPTS} attempts"
    )))
}

fn event_data(encoded: &[Encoded]) -> Result<Vec<EventData>, StoreError> {
    encoded
        .iter()
        .map(|e| {
            EventData::json(&e.event_type, &e.data)
                .and_then(|data| data.metadata_as_json(&e.metadata))
                .map(|data| data.id(e.event_id))
                .map_err(|e| StoreError::InvalidAppend(e.to_string()))
        })
        .collect()
}

/// What a stream holds, as far as an append needs to know.
struct Recorded {
    last: Option<u64>,
    by_id: HashMap<Uuid, AppendedEvent>,
}

impl Recorded {
    /// Reads the whole stream. Switchboard's streams are one call's, one booking's or one
    /// tenant's events, so this is a short read; it is also what makes a retry recognisable
    /// however long after the first append it comes.
    async fn read(inner: &Inner, stream: &str) -> Result<Recorded, StoreError> {
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Start);
        let records = stream_records(inner, stream, &options).await?;
        let mut by_id = HashMap::with_capacity(records.len());
        for record in &records {
            by_id.insert(record.id, appended(stream, record)?);
        }
        Ok(Recorded {
            last: records.last().map(|r| r.revision),
            by_id,
        })
    }

    /// A retry's outcome when every id is recorded, a refusal when only some are, None
    /// when none are (a new append).
    fn retry_outcome(
        &self,
        stream: &str,
        ids: &[Uuid],
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let found: Vec<Option<&AppendedEvent>> = ids.iter().map(|id| self.by_id.get(id)).collect();
        let Some(first_recorded) = found.iter().flatten().next() else {
            return Ok(None);
        };
        if found.iter().any(Option::is_none) {
            return Err(StoreError::PartiallyRecorded {
                stream: stream.to_owned(),
                event_id: first_recorded.event_id,
            });
        }
        Ok(Some(AppendOutcome {
            stream: stream.to_owned(),
            events: found.into_iter().flatten().copied().collect(),
            already_recorded: true,
        }))
    }
}

/// Where the events just written landed: read back, because KurrentDB reports one position
/// for a whole append and the trait wants each event's.
async fn placed(
    inner: &Inner,
    stream: &str,
    first: u64,
    ids: &[Uuid],
) -> Result<Vec<AppendedEvent>, StoreError> {
    let options = ReadStreamOptions::default()
        .forwards()
        .position(StreamPosition::Position(first))
        .max_count(ids.len());
    let records = stream_records(inner, stream, &options).await?;
    let placed = records
        .iter()
        .map(|record| appended(stream, record))
        .collect::<Result<Vec<_>, _>>()?;
    let read_ids: Vec<Uuid> = placed.iter().map(|e| e.event_id).collect();
    if read_ids != ids {
        return Err(StoreError::Backend(format!(
            "KurrentDB {}: stream {stream} from revision {first} holds {read_ids:?} right \
             after appending {ids:?}",
            inner.target
        )));
    }
    Ok(placed)
}

fn appended(stream: &str, record: &kurrentdb::RecordedEvent) -> Result<AppendedEvent, StoreError> {
    let position = switchboard_position(record.position).ok_or_else(|| {
        StoreError::Backend(format!(
            "stream {stream}: KurrentDB read event {} back without its $all position ({}); \
             the store needs a server that reports positions on stream reads",
            record.id, record.position
        ))
    })?;
    Ok(AppendedEvent {
        event_id: record.id,
        version: record.revision,
        position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(events: &[(u128, u64)]) -> Recorded {
        Recorded {
            last: events.last().map(|(_, v)| *v),
            by_id: events
                .iter()
                .map(|&(id, version)| {
                    let event_id = Uuid::from_u128(id);
                    (
                        event_id,
                        AppendedEvent {
                            event_id,
                            version,
                            position: 100 + version,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_retry_gets_the_original_places_in_its_own_order() {
        let stream = recorded(&[(1, 0), (2, 1), (3, 2)]);
        let ids = [Uuid::from_u128(3), Uuid::from_u128(2)];
        let outcome = stream.retry_outcome("call-1", &ids).unwrap().unwrap();
        assert!(outcome.already_recorded);
        assert_eq!(
            outcome
                .events
                .iter()
                .map(|e| (e.event_id, e.version))
                .collect::<Vec<_>>(),
            [(ids[0], 2), (ids[1], 1)]
        );
    }

    #[test]
    fn new_ids_are_an_append_and_some_recorded_is_a_refusal() {
        let stream = recorded(&[(1, 0), (2, 1)]);
        assert_eq!(
            stream.retry_outcome("call-1", &[Uuid::from_u128(8)]),
            Ok(None)
        );
        assert_eq!(
            stream.retry_outcome("call-1", &[Uuid::from_u128(8), Uuid::from_u128(2)]),
            Err(StoreError::PartiallyRecorded {
                stream: "call-1".to_owned(),
                event_id: Uuid::from_u128(2)
            })
        );
        assert_eq!(
            recorded(&[]).retry_outcome("call-1", &[Uuid::from_u128(1)]),
            Ok(None)
        );
    }
}
