//! Checks every backend makes before writing anything, so they refuse the same appends with
//! the same errors.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{NewEvent, StoreError};

/// Refuses an append that no store could record: no events, no stream name, a NUL character
/// in the stream name or an event type (PostgreSQL's text cannot hold one, and SQLite's
/// functions stop at it), or the same event id twice (which would make the append half a
/// retry of itself). NUL inside an event's JSON is fine: it travels escaped.
pub fn check_append(stream: &str, events: &[NewEvent]) -> Result<(), StoreError> {
    if stream.is_empty() {
        return Err(StoreError::InvalidAppend(
            "the stream name is empty".to_owned(),
        ));
    }
    if events.is_empty() {
        return Err(StoreError::InvalidAppend(format!(
            "stream {stream}: an append needs at least one event"
        )));
    }
    if stream.contains('\0') {
        return Err(StoreError::InvalidAppend(format!(
            "stream {:?}: a stream name cannot hold a NUL character",
            stream
        )));
    }
    let mut ids = HashSet::with_capacity(events.len());
    for event in events {
        if event.event_type.contains('\0') {
            return Err(StoreError::InvalidAppend(format!(
                "stream {stream}: event type {:?} holds a NUL character",
                event.event_type
            )));
        }
        if !ids.insert(event.event_id) {
            return Err(StoreError::InvalidAppend(format!(
                "stream {stream}: event id {} appears twice in one append",
                event.event_id
            )));
        }
    }
    Ok(())
}

/// Refuses an event whose serialized data plus metadata is over `limit` bytes.
pub fn check_event_size(event_id: Uuid, size: usize, limit: usize) -> Result<(), StoreError> {
    if size > limit {
        return Err(StoreError::EventTooLarge {
            event_id,
            size,
            limit,
        });
    }
    Ok(())
}

impl NewEvent {
    /// Builds an event from raw JSON bytes (say, a webhook body), refusing bytes that are not
    /// JSON with an error that says which part and where, before anything reaches a store.
    pub fn from_json_bytes(
        event_id: Uuid,
        event_type: impl Into<String>,
        schema_version: u32,
        occurred_at: DateTime<Utc>,
        data: &[u8],
        metadata: &[u8],
    ) -> Result<NewEvent, StoreError> {
        let parse = |what: &str, bytes: &[u8]| {
            serde_json::from_slice(bytes).map_err(|e| {
                StoreError::InvalidAppend(format!("event {event_id}: {what} is not JSON: {e}"))
            })
        };
        Ok(NewEvent {
            event_id,
            event_type: event_type.into(),
            schema_version,
            occurred_at,
            data: parse("data", data)?,
            metadata: parse("metadata", metadata)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u128) -> NewEvent {
        NewEvent {
            event_id: Uuid::from_u128(id),
            event_type: "Tested".to_owned(),
            schema_version: 1,
            occurred_at: DateTime::UNIX_EPOCH,
            data: serde_json::json!({}),
            metadata: serde_json::json!({}),
        }
    }

    #[test]
    fn refuses_empty_appends_and_names() {
        assert!(matches!(
            check_append("s", &[]),
            Err(StoreError::InvalidAppend(_))
        ));
        assert!(matches!(
            check_append("", &[event(1)]),
            Err(StoreError::InvalidAppend(_))
        ));
        assert_eq!(check_append("s", &[event(1), event(2)]), Ok(()));
    }

    #[test]
    fn refuses_a_nul_in_names_but_not_in_json() {
        let err = check_append("call-a\0b", &[event(1)]).unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidAppend(m) if m.contains("NUL")),
            "{err:?}"
        );
        let mut typed = event(1);
        typed.event_type = "Call\0Ended".to_owned();
        let err = check_append("s", &[typed]).unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidAppend(m) if m.contains("NUL")),
            "{err:?}"
        );
        let mut text = event(1);
        text.data = serde_json::json!({"transcript": "a\u{0}b"});
        assert_eq!(check_append("s", &[text]), Ok(()));
    }

    #[test]
    fn refuses_an_id_twice_in_one_append() {
        let err = check_append("s", &[event(1), event(2), event(1)]).unwrap_err();
        assert!(
            err.to_string().contains(&Uuid::from_u128(1).to_string()),
            "{err}"
        );
    }

    #[test]
    fn size_limit_is_inclusive() {
        assert_eq!(check_event_size(Uuid::nil(), 10, 10), Ok(()));
        assert_eq!(
            check_event_size(Uuid::nil(), 11, 10),
            Err(StoreError::EventTooLarge {
                event_id: Uuid::nil(),
                size: 11,
                limit: 10
            })
        );
    }

    #[test]
    fn from_json_bytes_refuses_non_json_naming_the_part() {
        let at = DateTime::UNIX_EPOCH;
        let ok = NewEvent::from_json_bytes(Uuid::nil(), "T", 1, at, br#"{"a":1}"#, b"{}").unwrap();
        assert_eq!(ok.data, serde_json::json!({"a": 1}));
        let err =
            NewEvent::from_json_bytes(Uuid::nil(), "T", 1, at, b"a=1&b=2", b"{}").unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidAppend(m) if m.contains("data is not JSON")),
            "{err}"
        );
        let err = NewEvent::from_json_bytes(Uuid::nil(), "T", 1, at, b"{}", b"{").unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidAppend(m) if m.contains("metadata is not JSON")),
            "{err}"
        );
    }
}
