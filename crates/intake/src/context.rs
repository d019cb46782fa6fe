//! What routing needs to know beyond the delivery itself.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use switchboard_domain::event::AvailabilityAnswer;

/// The branch a phone number rings at, as the tenants read model knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchRef {
    pub tenant_id: String,
    pub branch_id: String,
    /// None: the branch names no zone, and appointments are read in Europe/Berlin.
    pub time_zone: Option<Tz>,
}

/// Finds the branch a call's business number (E.164: `to_number` of an inbound call,
/// `from_number` of an outbound one) belongs to.
pub trait BranchDirectory {
    fn branch_for_number(&self, phone_number: &str) -> Option<BranchRef>;
}

/// A directory that knows no number: every call is routed unattributed.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBranches;

impl BranchDirectory for NoBranches {
    fn branch_for_number(&self, _: &str) -> Option<BranchRef> {
        None
    }
}

impl BranchDirectory for BTreeMap<String, BranchRef> {
    fn branch_for_number(&self, phone_number: &str) -> Option<BranchRef> {
        self.get(phone_number).cloned()
    }
}

pub struct Context<'a> {
    /// When the server received the delivery: the time of facts whose delivery carries none
    /// (a custom-function request, an unknown event).
    pub received_at: DateTime<Utc>,
    pub branches: &'a dyn BranchDirectory,
    /// For a `check_availability` call: what the server answered (it is recorded with the
    /// call). Ignored for every other delivery.
    pub availability_answer: Option<AvailabilityAnswer>,
}

impl<'a> Context<'a> {
    pub fn new(received_at: DateTime<Utc>, branches: &'a dyn BranchDirectory) -> Self {
        Context {
            received_at,
            branches,
            availability_answer: None,
        }
    }

    pub fn with_availability_answer(mut self, answer: AvailabilityAnswer) -> Self {
        self.availability_answer = Some(answer);
        self
    }

    /// The time zone appointments of a call to this branch are read in.
    pub(crate) fn time_zone(branch: Option<&BranchRef>) -> Tz {
        branch
            .and_then(|branch| branch.time_zone)
            .unwrap_or(chrono_tz::Europe::Berlin)
    }
}
