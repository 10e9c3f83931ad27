//! When and how long to wait before retrying: jittered exponential backoff for transient
//! failures (5xx, 429, 420, connection errors, `UNABLE_TO_LOCK_ROW`, `SERVER_UNAVAILABLE`).

use std::time::Duration;

use rand::Rng as _;

/// Retry settings; tests use millisecond delays so they run fast without sleeping for timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry (doubled per retry, before jitter).
    pub base_delay: Duration,
    /// Upper bound of one delay (also caps `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 1 s doubling to at most 60 s: rides out a Salesforce blip or a lock held by
    /// a trigger without hammering an org that is in trouble.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt + 1` (`attempt` counts from 0): `base * 2^attempt`
    /// capped at `max_delay`, then a random point in its upper half ("equal jitter") so parallel
    /// clients spread out; a server's `Retry-After` is honoured up to `max_delay`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let half = exp / 2;
        let jitter = if half.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(rand::rng().random_range(0..=half.as_nanos() as u64))
        };
        let backoff = half + jitter;
        match retry_after {
            Some(ra) => backoff.max(ra.min(self.max_delay)),
            None => backoff,
        }
    }
}

/// HTTP statuses worth retrying: 5xx, 429 (too many requests) and 420 (Salesforce's
/// "enhance your calm" on some gateways).
pub fn is_transient_status(status: u16) -> bool {
    status >= 500 || status == 429 || status == 420
}

/// Salesforce error codes worth retrying whatever the status.
pub fn is_transient_code(code: &str) -> bool {
    matches!(code, "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_bounds() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for attempt in 0..10 {
            let exp = (100u64 << attempt.min(10)).min(1000);
            let d = p.delay(attempt, None).as_millis() as u64;
            assert!(d >= exp / 2 && d <= exp, "attempt {attempt}: {d} ms");
        }
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(30))),
            Duration::from_millis(1000)
        );
    }

    #[test]
    fn transient_classes() {
        assert!(is_transient_status(503));
        assert!(is_transient_status(429));
        assert!(is_transient_status(420));
        assert!(!is_transient_status(400));
        assert!(is_transient_code("UNABLE_TO_LOCK_ROW"));
        assert!(!is_transient_code("INVALID_FIELD"));
    }
}
