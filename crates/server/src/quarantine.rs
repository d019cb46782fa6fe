//! Refused deliveries, kept so that "why does nothing verify?" is answered by one request.
//!
//! Bounded: a flood of garbage must not grow memory. The newest entries win.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How much of a refused body is kept: enough to recognise it, never a whole upload.
pub const BODY_PREFIX_BYTES: usize = 4096;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QuarantinedDelivery {
    pub request_id: String,
    /// The provider the endpoint or the headers named, or "unknown".
    pub provider: String,
    pub code: &'static str,
    pub message: String,
    pub received_at: DateTime<Utc>,
    pub body_bytes: usize,
    /// The first 4 KiB of the body, lossily decoded as UTF-8.
    pub body_prefix: String,
}

pub struct Quarantine {
    capacity: usize,
    entries: Mutex<VecDeque<QuarantinedDelivery>>,
}

impl Quarantine {
    pub fn new(capacity: usize) -> Self {
        Quarantine {
            capacity,
            entries: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn admit(
        &self,
        request_id: &str,
        provider: &str,
        code: &'static str,
        message: &str,
        received_at: DateTime<Utc>,
        body: &[u8],
    ) {
        if self.capacity == 0 {
            return;
        }
        let prefix = &body[..body.len().min(BODY_PREFIX_BYTES)];
        let entry = QuarantinedDelivery {
            request_id: request_id.to_owned(),
            provider: provider.to_owned(),
            code,
            message: message.to_owned(),
            received_at,
            body_bytes: body.len(),
            body_prefix: String::from_utf8_lossy(prefix).into_owned(),
        };
        let mut entries = self.entries.lock().expect("quarantine lock poisoned");
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Newest first.
    pub fn list(&self, limit: usize) -> Vec<QuarantinedDelivery> {
        let entries = self.entries.lock().expect("quarantine lock poisoned");
        entries.iter().rev().take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_entries_up_to_capacity_and_truncates_bodies() {
        let q = Quarantine::new(2);
        let big = vec![b'x'; 10_000];
        for i in 0..3 {
            q.admit(
                &format!("r{i}"),
                "retell",
                "invalid_signature",
                "m",
                Utc::now(),
                &big,
            );
        }
        let listed = q.list(10);
        assert_eq!(
            listed
                .iter()
                .map(|e| e.request_id.as_str())
                .collect::<Vec<_>>(),
            ["r2", "r1"]
        );
        assert_eq!(listed[0].body_prefix.len(), BODY_PREFIX_BYTES);
        assert_eq!(listed[0].body_bytes, 10_000);
    }
}
