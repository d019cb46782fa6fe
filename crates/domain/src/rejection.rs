//! Why an aggregate refuses a command.
//!
//! A rejection is a fact too: the service records it on the stream as
//! [`TransitionRejected`](crate::event::TransitionRejected) (see
//! [`record_rejection`](crate::aggregate::record_rejection)) and answers the provider
//! `anomaly`, so providers do not retry and nothing is dropped silently.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::stream::AggregateKind;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Rejection {
    /// Cancelled is terminal: a reschedule that happened (by provider time) after the
    /// cancellation must not bring the booking back.
    #[error(
        "booking {booking_uid} was cancelled at {cancelled_at}; a later reschedule cannot reactivate it"
    )]
    RescheduleAfterCancellation {
        booking_uid: String,
        cancelled_at: DateTime<Utc>,
    },
    /// A subscription deleted in Stripe is terminal in the same way.
    #[error(
        "subscription {subscription_id} was cancelled at {cancelled_at}; a later update cannot reactivate it"
    )]
    SubscriptionUpdateAfterCancellation {
        subscription_id: String,
        cancelled_at: DateTime<Utc>,
    },
    #[error("a tenant needs a non-empty name")]
    EmptyTenantName,
    #[error("branch {branch_id} is listed twice")]
    DuplicateBranch { branch_id: String },
    #[error("branch id must not be empty")]
    EmptyBranchId,
    #[error(
        "{phone_number} is listed for branches {first_branch_id} and {second_branch_id}; a number rings at one branch"
    )]
    PhoneNumberInTwoBranches {
        phone_number: String,
        first_branch_id: String,
        second_branch_id: String,
    },
    #[error("{phone_number} is not an E.164 number (+ and 8 to 15 digits)")]
    InvalidPhoneNumber { phone_number: String },
    #[error("branch {branch_id} names an unknown time zone `{time_zone}`")]
    UnknownTimeZone {
        branch_id: String,
        time_zone: String,
    },
    #[error("branch {branch_id} closes before it opens on {day}")]
    InvalidOpeningHours { branch_id: String, day: String },
    #[error("an API token hash must be 64 lowercase hex digits (SHA-256)")]
    InvalidTokenHash,
    /// The command belongs to another kind of aggregate than the stream it was sent to: a
    /// routing bug, recorded rather than applied.
    #[error("{command} cannot be applied to a {stream_kind} stream")]
    CommandNotForStream {
        command: String,
        stream_kind: AggregateKind,
    },
    /// The command names another aggregate instance than the stream holds.
    #[error("{command} names {named} but the stream belongs to {stream_id}")]
    WrongStream {
        command: String,
        named: String,
        stream_id: String,
    },
}

impl Rejection {
    /// Stable machine-readable reason, used as the anomaly's reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::RescheduleAfterCancellation { .. } => "reschedule_after_cancellation",
            Rejection::SubscriptionUpdateAfterCancellation { .. } => {
                "subscription_update_after_cancellation"
            }
            Rejection::EmptyTenantName => "empty_tenant_name",
            Rejection::DuplicateBranch { .. } => "duplicate_branch",
            Rejection::EmptyBranchId => "empty_branch_id",
            Rejection::PhoneNumberInTwoBranches { .. } => "phone_number_in_two_branches",
            Rejection::InvalidPhoneNumber { .. } => "invalid_phone_number",
            Rejection::UnknownTimeZone { .. } => "unknown_time_zone",
            Rejection::InvalidOpeningHours { .. } => "invalid_opening_hours",
            Rejection::InvalidTokenHash => "invalid_token_hash",
            Rejection::CommandNotForStream { .. } => "command_not_for_stream",
            Rejection::WrongStream { .. } => "wrong_stream",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn every_rejection() -> Vec<Rejection> {
        let at = Utc.timestamp_opt(0, 0).unwrap();
        vec![
            Rejection::RescheduleAfterCancellation {
                booking_uid: "b".into(),
                cancelled_at: at,
            },
            Rejection::SubscriptionUpdateAfterCancellation {
                subscription_id: "s".into(),
                cancelled_at: at,
            },
            Rejection::EmptyTenantName,
            Rejection::DuplicateBranch {
                branch_id: "b".into(),
            },
            Rejection::EmptyBranchId,
            Rejection::PhoneNumberInTwoBranches {
                phone_number: "+491".into(),
                first_branch_id: "a".into(),
                second_branch_id: "b".into(),
            },
            Rejection::InvalidPhoneNumber {
                phone_number: "0301".into(),
            },
            Rejection::UnknownTimeZone {
                branch_id: "b".into(),
                time_zone: "Mars/Olympus".into(),
            },
            Rejection::InvalidOpeningHours {
                branch_id: "b".into(),
                day: "mon".into(),
            },
            Rejection::InvalidTokenHash,
            Rejection::CommandNotForStream {
                command: "StartCall".into(),
                stream_kind: AggregateKind::Booking,
            },
            Rejection::WrongStream {
                command: "StartCall".into(),
                named: "call-a".into(),
                stream_id: "call-b".into(),
            },
        ]
    }

    #[test]
    fn the_serialized_tag_is_the_stable_code() {
        for rejection in every_rejection() {
            let json = serde_json::to_value(&rejection).unwrap();
            assert_eq!(json["code"], rejection.code(), "{rejection:?}");
            let back: Rejection = serde_json::from_value(json).unwrap();
            assert_eq!(back, rejection);
        }
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<_> = every_rejection().iter().map(Rejection::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), every_rejection().len());
    }

    #[test]
    fn messages_say_why() {
        let message = every_rejection()[0].to_string();
        assert!(message.contains("cannot reactivate"), "{message}");
    }
}
