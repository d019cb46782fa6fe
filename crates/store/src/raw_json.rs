//! JSON as the store holds it: text, handed to readers without being parsed.
//!
//! Reading `$all` used to build a `serde_json::Value` tree for every event's data and metadata
//! (an allocation per key and string), only for consumers to convert that tree into their own
//! typed structs. The store checks every event's JSON when it is appended, so a read can hand
//! out the stored text as it is; a consumer deserializes straight from it into what it needs.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// One JSON value, as text. Cloning shares the text.
///
/// Serializes as the JSON value itself (not as a string), so an envelope written out with
/// `serde_json` looks exactly as if its data were a `serde_json::Value`.
///
/// Two `RawJson` are equal when their text is; compare with a `serde_json::Value` to compare
/// the values (key order and spacing aside).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawJson(Arc<str>);

impl RawJson {
    /// Checks that `text` is one JSON value and keeps it as it is.
    pub fn from_text(text: impl Into<Arc<str>>) -> Result<RawJson, serde_json::Error> {
        let text = text.into();
        serde_json::from_str::<&RawValue>(&text)?;
        Ok(RawJson(text))
    }

    /// The value's compact serialization.
    pub fn from_value(value: &serde_json::Value) -> RawJson {
        RawJson(value.to_string().into())
    }

    /// Text this crate's store wrote itself after checking it: a read does not check it again,
    /// which is the point of handing out text. (A file edited behind the store's back shows up
    /// when the text is deserialized.)
    pub(crate) fn from_stored(text: &str) -> RawJson {
        RawJson(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Deserializes the value straight from the text; `T` may borrow from it.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// The value as a `serde_json::Value` tree, for code that walks arbitrary JSON.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        self.parse()
    }
}

impl PartialEq<serde_json::Value> for RawJson {
    fn eq(&self, other: &serde_json::Value) -> bool {
        self.to_value().is_ok_and(|value| &value == other)
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // `RawValue` is serde_json's only way to write text out verbatim; borrowing one checks
        // the text once more, which only envelopes sent out (CLI, admin API) pay, not reads.
        let raw: &RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawJson, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Ok(RawJson(raw.get().into()))
    }
}

impl From<&serde_json::Value> for RawJson {
    fn from(value: &serde_json::Value) -> RawJson {
        RawJson::from_value(value)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn serializes_as_the_value_it_holds_not_as_a_string() {
        let raw = RawJson::from_text(r#"{"a":[1,"x"],"b":null}"#).unwrap();
        let envelope = json!({"data": raw});
        assert_eq!(envelope, json!({"data": {"a": [1, "x"], "b": null}}));
        assert_eq!(
            serde_json::to_string(&vec![raw]).unwrap(),
            r#"[{"a":[1,"x"],"b":null}]"#
        );
    }

    #[test]
    fn from_value_writes_what_serializing_the_value_writes() {
        let value = json!({"z": 1, "a": {"y": "é\n", "b": [true, 1.5]}});
        let raw = RawJson::from_value(&value);
        assert_eq!(raw.as_str(), serde_json::to_string(&value).unwrap());
        assert_eq!(
            serde_json::to_string(&raw).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
        assert_eq!(raw, value);
    }

    #[test]
    fn from_text_refuses_what_is_not_one_json_value() {
        assert!(RawJson::from_text("{").is_err());
        assert!(RawJson::from_text("a=1").is_err());
        assert!(RawJson::from_text("1 2").is_err());
        assert!(RawJson::from_text(" [1] ").is_ok());
    }

    #[test]
    fn parses_into_typed_values_borrowing_from_the_text() {
        #[derive(Deserialize)]
        struct Meta<'a> {
            tenant: &'a str,
        }
        let raw = RawJson::from_text(r#"{"tenant":"t-1","other":[1]}"#).unwrap();
        assert_eq!(raw.parse::<Meta<'_>>().unwrap().tenant, "t-1");
        assert_eq!(
            raw.to_value().unwrap(),
            json!({"tenant": "t-1", "other": [1]})
        );
    }

    #[test]
    fn round_trips_through_an_envelope() {
        let raw = RawJson::from_text(r#"{"k":"v"}"#).unwrap();
        let text = serde_json::to_string(&json!({"data": raw})).unwrap();
        #[derive(Deserialize)]
        struct Envelope {
            data: RawJson,
        }
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.data.as_str(), r#"{"k":"v"}"#);
        let from_value: Envelope = serde_json::from_value(json!({"data": {"k": "v"}})).unwrap();
        assert_eq!(from_value.data, json!({"k": "v"}));
    }

    #[test]
    fn a_damaged_text_fails_to_serialize_instead_of_writing_bad_json() {
        let raw = RawJson::from_stored("{\"a\":");
        assert!(serde_json::to_string(&raw).is_err());
        assert_ne!(raw, json!({}));
    }
}
