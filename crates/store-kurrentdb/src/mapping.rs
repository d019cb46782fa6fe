//! Between the trait and the client: stream names, expected versions, positions and the
//! envelope. Pure code, no IO, so every rule here is unit-tested without a server.

use chrono::{DateTime, Utc};
use kurrentdb::{CurrentRevision, Position, StreamState};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchboard_store::{
    ExpectedVersion, NewEvent, RawJson, RecordedEvent, StoreError, check_event_size,
};
use uuid::Uuid;

/// The stream categories Switchboard writes (see `switchboard_domain::StreamId` and the
/// server's routing): `$all` reads and the head subscription are filtered to these, so the
/// store never reads another application's streams or KurrentDB's own `$`-streams.
pub const SWITCHBOARD_CATEGORIES: [&str; 6] = [
    "call-",
    "booking-",
    "tenant-",
    "billing-",
    "event-type-",
    "delivery-",
];

/// Where a store's streams live inside KurrentDB: `{namespace}{stream}`, for streams whose
/// name starts with one of the categories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    namespace: String,
    categories: Vec<String>,
}

impl Names {
    /// Refuses a layout whose `$all` filter would be empty or would take in KurrentDB's system
    /// streams (all of which start with `$`).
    pub fn new(namespace: &str, categories: &[String]) -> Result<Names, StoreError> {
        if namespace.starts_with('$') {
            return Err(StoreError::Backend(format!(
                "KurrentDB namespace {namespace:?}: names starting with $ are KurrentDB's own"
            )));
        }
        if categories.is_empty() {
            return Err(StoreError::Backend(
                "KurrentDB store: at least one stream category is needed".to_owned(),
            ));
        }
        for category in categories {
            let prefix = format!("{namespace}{category}");
            if prefix.is_empty() || prefix.starts_with('$') {
                return Err(StoreError::Backend(format!(
                    "KurrentDB store: the stream prefix {prefix:?} (namespace {namespace:?}, \
                     category {category:?}) would take in KurrentDB's system streams"
                )));
            }
        }
        Ok(Names {
            namespace: namespace.to_owned(),
            categories: categories.to_vec(),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The KurrentDB stream that holds `stream`.
    pub fn kurrent_stream(&self, stream: &str) -> String {
        format!("{}{stream}", self.namespace)
    }

    /// Refuses an append to a stream `$all` would not show (outside every category): its
    /// events would be stored but never projected.
    pub fn check_category(&self, stream: &str) -> Result<(), StoreError> {
        if self
            .categories
            .iter()
            .any(|c| stream.starts_with(c.as_str()))
        {
            Ok(())
        } else {
            Err(StoreError::InvalidAppend(format!(
                "stream {stream}: not in a category this store reads back ({})",
                self.categories.join(", ")
            )))
        }
    }

    /// The Switchboard stream a KurrentDB stream holds, or None for a stream of no category.
    pub fn switchboard_stream<'a>(&self, kurrent: &'a str) -> Option<&'a str> {
        let stream = kurrent.strip_prefix(self.namespace.as_str())?;
        self.check_category(stream).ok().map(|()| stream)
    }

    /// The stream-name prefixes of the `$all` filter (reads and the head subscription).
    pub fn filter_prefixes(&self) -> Vec<String> {
        self.categories
            .iter()
            .map(|c| format!("{}{c}", self.namespace))
            .collect()
    }
}

/// Refuses an append whose expectation does not hold for a stream whose last version is
/// `actual`, the same way every backend does.
pub fn check_expected(
    stream: &str,
    expected: ExpectedVersion,
    actual: Option<u64>,
) -> Result<(), StoreError> {
    let holds = match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => actual.is_none(),
        ExpectedVersion::Exact(v) => actual == Some(v),
    };
    if holds {
        Ok(())
    } else {
        Err(StoreError::WrongExpectedVersion {
            stream: stream.to_owned(),
            expected,
            actual,
        })
    }
}

/// The state every append sends: the exact state the store read before deciding, never
/// `StreamState::Any`, even for `ExpectedVersion::Any`. KurrentDB's check is then the atomic
/// guard of the store's own idempotency check: nothing can land between the read that found
/// none of the event ids and the write.
pub fn pinned_state(actual: Option<u64>) -> StreamState {
    match actual {
        None => StreamState::NoStream,
        Some(v) => StreamState::StreamRevision(v),
    }
}

/// The stream's last version as KurrentDB reported it in a conflict.
pub fn actual_version(current: CurrentRevision) -> Option<u64> {
    match current {
        CurrentRevision::NoStream => None,
        CurrentRevision::Current(v) => Some(v),
    }
}

/// The trait's global position of an event: its `$all` prepare position plus one.
///
/// An event's prepare position is the log offset of its own record: unique per event, and in
/// `$all` order, because KurrentDB writes the records of one append contiguously and one
/// append after another. The commit position is not: the events of one multi-event append
/// may share it. The +1 keeps positions above 0 (the trait's "nothing yet") even for a record
/// at offset 0, and cannot overflow: KurrentDB's positions are signed 64-bit offsets.
/// `u64::MAX` (or anything past `i64::MAX`) is the client's "no position", refused rather than
/// mistaken for a place in the log.
pub fn switchboard_position(position: Position) -> Option<u64> {
    (position.prepare <= i64::MAX as u64).then(|| position.prepare + 1)
}

/// The smallest prepare position an event at or after trait position `position` can have.
pub fn log_position(position: u64) -> u64 {
    position.saturating_sub(1)
}

/// What Switchboard keeps in a KurrentDB event's metadata: the envelope fields KurrentDB has
/// no place for, and the event's own metadata untouched (any JSON value).
#[derive(Debug, Serialize, Deserialize)]
struct StoredMetadata<M> {
    switchboard: Envelope,
    metadata: M,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Envelope {
    schema_version: u32,
    occurred_at: DateTime<Utc>,
    /// Taken once per append by the appending instance: KurrentDB stamps each record itself,
    /// and the client reads that stamp back truncated to whole seconds.
    recorded_at: DateTime<Utc>,
}

/// One event, serialized as KurrentDB stores it.
#[derive(Debug)]
pub struct Encoded {
    pub event_id: Uuid,
    pub event_type: String,
    /// The data as JSON text, sent as is (content type `application/json`, so KurrentDB's
    /// own projections and UI read it).
    pub data: Box<RawValue>,
    pub metadata: Box<RawValue>,
}

/// Serializes `event`, refusing it when data plus metadata is over `max_event_bytes` (the
/// same measure as the other backends: the event's own JSON, before the envelope is added).
pub fn encode(
    event: &NewEvent,
    recorded_at: DateTime<Utc>,
    max_event_bytes: usize,
) -> Result<Encoded, StoreError> {
    let data = to_raw(&event.data)?;
    let own_metadata = to_raw(&event.metadata)?;
    check_event_size(
        event.event_id,
        data.get().len() + own_metadata.get().len(),
        max_event_bytes,
    )?;
    let metadata = to_raw(&StoredMetadata {
        switchboard: Envelope {
            schema_version: event.schema_version,
            occurred_at: event.occurred_at,
            recorded_at,
        },
        metadata: &own_metadata,
    })?;
    Ok(Encoded {
        event_id: event.event_id,
        event_type: event.event_type.clone(),
        data,
        metadata,
    })
}

fn to_raw<T: Serialize>(value: &T) -> Result<Box<RawValue>, StoreError> {
    // A `Value` always serializes; the error path exists only because the API has one.
    serde_json::value::to_raw_value(value).map_err(|e| StoreError::InvalidAppend(e.to_string()))
}

/// A KurrentDB event as read, borrowed from the client's record.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    pub stream: &'a str,
    pub event_id: Uuid,
    pub revision: u64,
    pub event_type: &'a str,
    pub position: Position,
    pub data: &'a [u8],
    pub metadata: &'a [u8],
}

/// The envelope of an event Switchboard wrote; an error naming the event for anything else
/// (another writer's event in one of our streams, or a record with no position).
pub fn decode(stored: Stored<'_>) -> Result<RecordedEvent, StoreError> {
    let foreign = |why: String| {
        StoreError::Backend(format!(
            "KurrentDB event {} (stream {}, revision {}) is not a Switchboard event: {why}",
            stored.event_id, stored.stream, stored.revision
        ))
    };
    let position = switchboard_position(stored.position).ok_or_else(|| {
        foreign(format!(
            "it came without a $all position ({})",
            stored.position
        ))
    })?;
    // Checked, unlike the embedded store's text: other clients may write to the database.
    let data = std::str::from_utf8(stored.data)
        .map_err(|e| foreign(format!("data: {e}")))
        .and_then(|text| RawJson::from_text(text).map_err(|e| foreign(format!("data: {e}"))))?;
    let metadata: StoredMetadata<RawJson> =
        serde_json::from_slice(stored.metadata).map_err(|e| foreign(format!("metadata: {e}")))?;
    Ok(RecordedEvent {
        event_id: stored.event_id,
        stream: stored.stream.to_owned(),
        version: stored.revision,
        position,
        event_type: stored.event_type.to_owned(),
        schema_version: metadata.switchboard.schema_version,
        occurred_at: metadata.switchboard.occurred_at,
        recorded_at: metadata.switchboard.recorded_at,
        data,
        metadata: metadata.metadata,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn switchboard_names() -> Names {
        let categories: Vec<String> = SWITCHBOARD_CATEGORIES.map(str::to_owned).to_vec();
        Names::new("", &categories).unwrap()
    }

    #[test]
    fn names_carry_the_namespace_both_ways() {
        let names = Names::new("sbtest-1-", &["".to_owned()]).unwrap();
        assert_eq!(names.kurrent_stream("many-42"), "sbtest-1-many-42");
        assert_eq!(
            names.switchboard_stream("sbtest-1-many-42"),
            Some("many-42")
        );
        assert_eq!(names.switchboard_stream("sbtest-2-many-42"), None);
        assert_eq!(names.filter_prefixes(), ["sbtest-1-"]);
    }

    #[test]
    fn the_default_layout_keeps_to_switchboard_categories() {
        let names = switchboard_names();
        assert_eq!(names.kurrent_stream("call-c1"), "call-c1");
        assert_eq!(names.switchboard_stream("booking-b1"), Some("booking-b1"));
        assert_eq!(names.switchboard_stream("orders-1"), None);
        assert_eq!(names.switchboard_stream("$settings"), None);
        assert_eq!(names.check_category("event-type-call_ended"), Ok(()));
        let err = names.check_category("orders-1").unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidAppend(m) if m.contains("orders-1") && m.contains("call-")),
            "{err:?}"
        );
        assert_eq!(names.filter_prefixes(), SWITCHBOARD_CATEGORIES);
    }

    #[test]
    fn a_layout_that_would_read_system_streams_is_refused() {
        assert!(Names::new("", &["".to_owned()]).is_err());
        assert!(Names::new("$sb-", &["call-".to_owned()]).is_err());
        assert!(Names::new("", &["$ce-".to_owned()]).is_err());
        assert!(Names::new("sb-", &[]).is_err());
        assert!(Names::new("sb-", &["".to_owned()]).is_ok());
    }

    #[test]
    fn expectations_are_checked_like_every_backend() {
        use ExpectedVersion::*;
        for (expected, actual, holds) in [
            (Any, None, true),
            (Any, Some(3), true),
            (NoStream, None, true),
            (NoStream, Some(0), false),
            (Exact(2), Some(2), true),
            (Exact(2), Some(5), false),
            (Exact(0), None, false),
        ] {
            let result = check_expected("call-1", expected, actual);
            if holds {
                assert_eq!(result, Ok(()), "{expected} on {actual:?}");
            } else {
                assert_eq!(
                    result,
                    Err(StoreError::WrongExpectedVersion {
                        stream: "call-1".to_owned(),
                        expected,
                        actual
                    }),
                    "{expected} on {actual:?}"
                );
            }
        }
    }

    #[test]
    fn appends_pin_the_state_that_was_read() {
        assert_eq!(pinned_state(None), StreamState::NoStream);
        assert_eq!(pinned_state(Some(0)), StreamState::StreamRevision(0));
        assert_eq!(pinned_state(Some(41)), StreamState::StreamRevision(41));
        assert_eq!(actual_version(CurrentRevision::NoStream), None);
        assert_eq!(actual_version(CurrentRevision::Current(7)), Some(7));
    }

    #[test]
    fn positions_are_prepare_positions_plus_one() {
        let at = |commit, prepare| Position { commit, prepare };
        assert_eq!(switchboard_position(at(0, 0)), Some(1));
        assert_eq!(switchboard_position(at(1234, 1234)), Some(1235));
        // Two events of one append: one commit position, two prepare positions.
        let first = switchboard_position(at(5000, 5000)).unwrap();
        let second = switchboard_position(at(5000, 5230)).unwrap();
        assert!(first < second);
        let largest = i64::MAX as u64;
        assert_eq!(
            switchboard_position(at(largest, largest)),
            Some(largest + 1)
        );
        assert_eq!(switchboard_position(Position::end()), None);
        assert_eq!(switchboard_position(at(0, largest + 1)), None);
        for p in [0, 1, 2, 5231, largest + 1] {
            assert_eq!(log_position(p), p.saturating_sub(1));
        }
        assert_eq!(log_position(switchboard_position(at(9, 9)).unwrap()), 9);
    }

    fn new_event(data: serde_json::Value, metadata: serde_json::Value) -> NewEvent {
        NewEvent {
            event_id: Uuid::from_u128(7),
            event_type: "CallEnded".to_owned(),
            schema_version: 3,
            occurred_at: Utc.with_ymd_and_hms(2026, 11, 23, 10, 15, 30).unwrap()
                + chrono::Duration::nanoseconds(123_456_789),
            data,
            metadata,
        }
    }

    #[test]
    fn the_envelope_round_trips_with_nanoseconds_and_any_metadata() {
        let recorded_at = Utc.with_ymd_and_hms(2026, 11, 23, 10, 16, 0).unwrap()
            + chrono::Duration::nanoseconds(987_654_321);
        for metadata in [
            json!({"provider": "retell", "dedupe_key": "retell:call_ended:c1"}),
            json!(null),
            json!(["not", "an", "object"]),
        ] {
            let event = new_event(json!({"call_id": "c1", "text": "Zoë 🚀"}), metadata);
            let encoded = encode(&event, recorded_at, 1024).unwrap();
            assert_eq!(encoded.event_type, "CallEnded");
            let recorded = decode(Stored {
                stream: "call-c1",
                event_id: encoded.event_id,
                revision: 4,
                event_type: &encoded.event_type,
                position: Position {
                    commit: 900,
                    prepare: 1000,
                },
                data: encoded.data.get().as_bytes(),
                metadata: encoded.metadata.get().as_bytes(),
            })
            .unwrap();
            assert_eq!(
                recorded,
                RecordedEvent {
                    event_id: event.event_id,
                    stream: "call-c1".to_owned(),
                    version: 4,
                    position: 1001,
                    event_type: event.event_type.clone(),
                    schema_version: 3,
                    occurred_at: event.occurred_at,
                    recorded_at,
                    data: RawJson::from_value(&event.data),
                    metadata: RawJson::from_value(&event.metadata),
                }
            );
        }
    }

    #[test]
    fn the_size_limit_counts_data_and_metadata_before_the_envelope() {
        let event = new_event(json!("x".repeat(90)), json!("y".repeat(6)));
        // 92 bytes of data ("…" with quotes) and 8 of metadata.
        assert!(encode(&event, Utc::now(), 100).is_ok());
        assert_eq!(
            encode(&event, Utc::now(), 99).unwrap_err(),
            StoreError::EventTooLarge {
                event_id: event.event_id,
                size: 100,
                limit: 99
            }
        );
    }

    #[test]
    fn foreign_events_are_named_not_guessed() {
        let stored = |data: &'static [u8], metadata: &'static [u8], prepare| Stored {
            stream: "call-c1",
            event_id: Uuid::from_u128(9),
            revision: 0,
            event_type: "SomethingElse",
            position: Position {
                commit: prepare,
                prepare,
            },
            data,
            metadata,
        };
        let envelope = br#"{"switchboard":{"schema_version":1,"occurred_at":"2026-11-23T10:00:00Z","recorded_at":"2026-11-23T10:00:01Z"},"metadata":{}}"#;
        assert!(decode(stored(b"{}", envelope, 10)).is_ok());
        for (data, metadata, prepare, why) in [
            (&b"{}"[..], &b""[..], 10, "metadata"),
            (b"{}", br#"{"$correlationId":"x"}"#, 10, "metadata"),
            (b"not json", envelope, 10, "data"),
            (b"{}", envelope, u64::MAX, "position"),
        ] {
            let err = decode(stored(data, metadata, prepare)).unwrap_err();
            let StoreError::Backend(message) = &err else {
                panic!("{err:?}");
            };
            assert!(
                message.contains(&Uuid::from_u128(9).to_string())
                    && message.contains("call-c1")
                    && message.contains(why),
                "{message}"
            );
        }
    }
}
