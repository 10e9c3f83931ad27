//! The one backoff policy of every retry loop in sfetl (token calls, API calls, cut-off bodies,
//! Bulk pages, write-back rounds): jittered exponential delays with a cap and an attempt budget.
//! Each loop decides only *what* is worth retrying; *when* and *how often* is decided here, so a
//! change of policy reaches every loop at once.

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
    /// Attempts in total of a request refused over a concurrency limit, the first included:
    /// usually more than `max_attempts`, because such slots free only as the org's other long
    /// requests (20 seconds or more each, by the limit's definition) and Bulk jobs end.
    pub busy_attempts: u32,
}

impl Default for RetryPolicy {
    /// 5 attempts, 1 s doubling to at most 60 s: rides out a Salesforce blip or a lock held by
    /// a trigger without hammering an org that is in trouble. A busy org gets 10: 2-4 minutes
    /// of waits, where 5 gave up after 7-15 seconds, before the shortest request holding a
    /// slot could have ended.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            busy_attempts: 10,
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

    /// A fresh attempt counter for one operation under this policy.
    pub fn attempts(&self) -> Attempts<'_> {
        Attempts {
            policy: self,
            budget: self.max_attempts,
            done: 1,
        }
    }

    /// A fresh attempt counter for a request the org refuses as too busy: the same delays,
    /// `busy_attempts` of them.
    pub fn busy_attempts(&self) -> Attempts<'_> {
        Attempts {
            budget: self.busy_attempts,
            ..self.attempts()
        }
    }

    /// The same policy with another attempt budget (e.g. a loop that may try a page 5 times
    /// whatever the client's budget is).
    pub fn with_attempts(&self, max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            ..self.clone()
        }
    }
}

/// Counts the attempts of one operation; [`Attempts::backoff`] sleeps before the next one or
/// says the budget is spent. The loop that owns it decides what is retryable.
#[derive(Debug)]
pub struct Attempts<'a> {
    policy: &'a RetryPolicy,
    /// Attempts allowed in total, the first included.
    budget: u32,
    /// Attempts made so far (the first counts).
    done: u32,
}

impl Attempts<'_> {
    /// After a retryable failure: waits the policy's delay and returns `true`, or returns
    /// `false` at once when no attempt is left (the caller then returns its error).
    pub async fn backoff(&mut self, retry_after: Option<Duration>) -> bool {
        if self.done >= self.budget {
            return false;
        }
        tokio::time::sleep(self.policy.delay(self.done - 1, retry_after)).await;
        self.done += 1;
        true
    }

    /// Attempts made so far, the current one included.
    pub fn made(&self) -> u32 {
        self.done
    }

    /// Attempts allowed in total, the first included.
    pub fn budget(&self) -> u32 {
        self.budget
    }
}

/// Runs `op` until it succeeds, fails with an error `retryable` refuses, or the policy's
/// attempts are spent; the last error is returned as it came.
pub async fn retry<T, E, Fut>(
    policy: &RetryPolicy,
    mut op: impl FnMut() -> Fut,
    retryable: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempts = policy.attempts();
    loop {
        match op().await {
            Err(e) if retryable(&e) && attempts.backoff(None).await => {}
            other => return other,
        }
    }
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
            busy_attempts: 5,
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

    #[tokio::test]
    async fn a_busy_org_has_a_budget_of_its_own() {
        let p = RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            busy_attempts: 4,
        };
        let (mut other, mut busy) = (p.attempts(), p.busy_attempts());
        let mut backoffs = (0, 0);
        while other.backoff(None).await {
            backoffs.0 += 1;
        }
        while busy.backoff(None).await {
            backoffs.1 += 1;
        }
        assert_eq!(backoffs, (1, 3));
        assert_eq!((other.made(), busy.made(), busy.budget()), (2, 4, 4));
    }

    #[tokio::test]
    async fn retry_stops_at_the_budget_and_at_permanent_errors() {
        let p = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            busy_attempts: 3,
        };
        let mut calls = 0;
        let r: Result<(), &str> = retry(
            &p,
            || {
                calls += 1;
                async { Err("busy") }
            },
            |e| *e == "busy",
        )
        .await;
        assert_eq!((r, calls), (Err("busy"), 3));
        let mut calls = 0;
        let r: Result<(), &str> = retry(
            &p,
            || {
                calls += 1;
                async { Err("bad") }
            },
            |e| *e == "busy",
        )
        .await;
        assert_eq!((r, calls), (Err("bad"), 1));
        let mut calls = 0;
        let r: Result<u32, &str> = retry(
            &p,
            || {
                calls += 1;
                let n = calls;
                async move { if n < 2 { Err("busy") } else { Ok(n) } }
            },
            |e| *e == "busy",
        )
        .await;
        assert_eq!(r, Ok(2));
    }
}
