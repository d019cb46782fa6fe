//! Stream names: which aggregate instance a fact belongs to.
//!
//! A stream name is `{prefix}-{id}`. The prefix says which aggregate rules over the stream,
//! so the server can load the right state for a command without any other lookup.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The aggregate that rules over a stream.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AggregateKind {
    /// `call-{retell call_id}`: one phone call.
    Call,
    /// `booking-{cal.com uid}`: one booking.
    Booking,
    /// `tenant-{tenant_id}`: the registry, subscriptions and payments of one business.
    Tenant,
    /// `billing-{stripe customer id}`: Stripe facts that name no tenant (no
    /// `metadata.company_id`). Kept, never dropped; the tenants read model attributes them
    /// once a tenant links the Stripe customer (`StripeCustomerLinked`).
    Billing,
    /// `event-type-{cal.com event type id}`: a bookable service.
    EventType,
}

impl AggregateKind {
    pub const ALL: [AggregateKind; 5] = [
        AggregateKind::Call,
        AggregateKind::Booking,
        AggregateKind::Tenant,
        AggregateKind::Billing,
        AggregateKind::EventType,
    ];

    /// The stream name prefix, without the separating `-`.
    pub fn prefix(self) -> &'static str {
        match self {
            AggregateKind::Call => "call",
            AggregateKind::Booking => "booking",
            AggregateKind::Tenant => "tenant",
            AggregateKind::Billing => "billing",
            AggregateKind::EventType => "event-type",
        }
    }
}

impl fmt::Display for AggregateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// A typed stream name.
///
/// The constructors take the id as given; callers (the intake) make sure ids are present.
/// [`StreamId::parse`] is the checked way in from a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    kind: AggregateKind,
    id: String,
}

/// Why a string is not a stream name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    #[error(
        "stream name `{0}` has no known prefix (call-, booking-, tenant-, billing-, event-type-)"
    )]
    UnknownPrefix(String),
    #[error("stream name `{0}` has an empty id")]
    EmptyId(String),
    #[error("stream name `{0}` contains whitespace or control characters")]
    InvalidCharacters(String),
}

impl StreamId {
    pub fn new(kind: AggregateKind, id: impl Into<String>) -> Self {
        StreamId {
            kind,
            id: id.into(),
        }
    }
    pub fn call(call_id: impl Into<String>) -> Self {
        Self::new(AggregateKind::Call, call_id)
    }
    pub fn booking(booking_uid: impl Into<String>) -> Self {
        Self::new(AggregateKind::Booking, booking_uid)
    }
    pub fn tenant(tenant_id: impl Into<String>) -> Self {
        Self::new(AggregateKind::Tenant, tenant_id)
    }
    pub fn billing(stripe_customer_id: impl Into<String>) -> Self {
        Self::new(AggregateKind::Billing, stripe_customer_id)
    }
    pub fn event_type(event_type_id: i64) -> Self {
        Self::new(AggregateKind::EventType, event_type_id.to_string())
    }

    pub fn kind(&self) -> AggregateKind {
        self.kind
    }

    /// The id inside the stream name (the call id, booking uid, tenant id, …).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Parses `{prefix}-{id}`. The id may itself contain `-` (UUIDs do).
    pub fn parse(name: &str) -> Result<Self, StreamIdError> {
        let (kind, id) = StreamId::split(name)?;
        Ok(StreamId::new(kind, id))
    }

    /// [`StreamId::parse`] without copying: the aggregate kind and the id inside `name`.
    pub fn split(name: &str) -> Result<(AggregateKind, &str), StreamIdError> {
        // `event-type` is the only prefix with a dash; no prefix is a prefix of another once
        // the separator is included, so the first match is the only match.
        let (kind, id) = AggregateKind::ALL
            .iter()
            .find_map(|kind| {
                name.strip_prefix(kind.prefix())
                    .and_then(|rest| rest.strip_prefix('-'))
                    .map(|id| (*kind, id))
            })
            .ok_or_else(|| StreamIdError::UnknownPrefix(name.to_owned()))?;
        if id.is_empty() {
            return Err(StreamIdError::EmptyId(name.to_owned()));
        }
        if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(StreamIdError::InvalidCharacters(name.to_owned()));
        }
        Ok((kind, id))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.kind.prefix(), self.id)
    }
}

impl FromStr for StreamId {
    type Err = StreamIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StreamId::parse(s)
    }
}

impl Serialize for StreamId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StreamId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        StreamId::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_display_and_parse() {
        for stream in [
            StreamId::call("1a2b3c4d-5e6f"),
            StreamId::booking("bkg_abc123"),
            StreamId::tenant("uuid-1234-5678"),
            StreamId::billing("cus_123"),
            StreamId::event_type(7890),
        ] {
            assert_eq!(StreamId::parse(&stream.to_string()), Ok(stream));
        }
    }

    #[test]
    fn the_prefix_names_the_aggregate_and_the_rest_is_the_id() {
        let stream = StreamId::parse("call-1a2b-3c4d").unwrap();
        assert_eq!(stream.kind(), AggregateKind::Call);
        assert_eq!(stream.id(), "1a2b-3c4d");
        let stream = StreamId::parse("event-type-7890").unwrap();
        assert_eq!(stream.kind(), AggregateKind::EventType);
        assert_eq!(stream.id(), "7890");
    }

    #[test]
    fn malformed_names_say_why() {
        assert_eq!(
            StreamId::parse("order-1"),
            Err(StreamIdError::UnknownPrefix("order-1".into()))
        );
        assert_eq!(
            StreamId::parse("callx-1"),
            Err(StreamIdError::UnknownPrefix("callx-1".into()))
        );
        assert_eq!(
            StreamId::parse("booking-"),
            Err(StreamIdError::EmptyId("booking-".into()))
        );
        assert_eq!(
            StreamId::parse("tenant-a b"),
            Err(StreamIdError::InvalidCharacters("tenant-a b".into()))
        );
    }

    #[test]
    fn serializes_as_the_plain_stream_name() {
        let json = serde_json::to_value(StreamId::booking("bkg_1")).unwrap();
        assert_eq!(json, serde_json::json!("booking-bkg_1"));
        let back: StreamId = serde_json::from_value(json).unwrap();
        assert_eq!(back, StreamId::booking("bkg_1"));
    }
}
