//! Per-endpoint rate limiting: a provider flooding one endpoint must not starve the others.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

use crate::config::RateLimit;

type Limiter = RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, DefaultClock>;

/// One token bucket per endpoint name; absent when rate limiting is off.
pub struct EndpointLimits {
    limiters: HashMap<&'static str, Limiter>,
    clock: DefaultClock,
}

/// The endpoints that are limited, each on its own bucket.
pub const ENDPOINTS: [&str; 5] = ["retell", "retell_functions", "calcom", "stripe", "unified"];

impl EndpointLimits {
    pub fn new(limit: RateLimit) -> Self {
        let per_second = NonZeroU32::new(limit.per_second.max(1)).expect("max(1) is non-zero");
        let burst = NonZeroU32::new(limit.burst.max(1)).expect("max(1) is non-zero");
        let quota = Quota::per_second(per_second).allow_burst(burst);
        EndpointLimits {
            limiters: ENDPOINTS
                .iter()
                .map(|name| (*name, RateLimiter::direct(quota)))
                .collect(),
            clock: DefaultClock::default(),
        }
    }

    /// Ok when the request may proceed; otherwise how long until it would.
    pub fn check(&self, endpoint: &str) -> Result<(), Duration> {
        let Some(limiter) = self.limiters.get(endpoint) else {
            return Ok(());
        };
        limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_beyond_the_quota_is_refused_with_a_wait_and_other_endpoints_are_unaffected() {
        let limits = EndpointLimits::new(RateLimit {
            per_second: 1,
            burst: 2,
        });
        assert!(limits.check("retell").is_ok());
        assert!(limits.check("retell").is_ok());
        let wait = limits.check("retell").unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limits.check("stripe").is_ok());
    }
}
