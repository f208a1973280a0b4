//! Delayed-retry policy: exponential backoff with full jitter, bounded attempts.

use std::time::Duration;

use rand::Rng;

/// How a worker retries transient and throttled failures.
///
/// Attempt `n` (1-based) that fails transiently waits a uniformly random delay in
/// `[0, min(max_delay, base_delay * 2^(n-1))]` ("full jitter", which spreads retries of a burst
/// of failures instead of synchronising them). A throttled failure waits at least its
/// `Retry-After`. After `max_attempts` attempts the message is dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first delivery; 1 means "never retry".
    pub max_attempts: u32,
    /// Ceiling of the first retry's delay.
    pub base_delay: Duration,
    /// Ceiling of any retry's delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// A policy with `max_attempts` and the default delays.
    pub fn attempts(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            ..RetryPolicy::default()
        }
    }

    /// Whether attempt number `attempt` (1-based) may be followed by another.
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The un-jittered ceiling for the retry after attempt `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(32);
        let grown = self.base_delay.saturating_mul(1u32 << shift.min(31));
        grown.min(self.max_delay)
    }

    /// The delay before the retry after attempt `attempt`, honouring a server's `Retry-After`.
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        let ceiling = self.ceiling(attempt);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let jittered = Duration::from_nanos(if nanos == 0 {
            0
        } else {
            rng.random_range(0..=nanos)
        });
        match retry_after {
            Some(after) => jittered.max(after),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = policy();
        let got: Vec<_> = (1..=6).map(|a| p.ceiling(a).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling_and_spreads() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(7);
        let delays: Vec<_> = (0..200).map(|_| p.delay(3, None, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        let low = delays
            .iter()
            .filter(|d| **d < Duration::from_millis(200))
            .count();
        assert!(
            (40..160).contains(&low),
            "jitter is not spread: {low} of 200 below half"
        );
    }

    #[test]
    fn throttled_waits_at_least_retry_after() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            assert!(p.delay(1, Some(Duration::from_secs(30)), &mut rng) >= Duration::from_secs(30));
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let p = policy();
        assert!(p.may_retry(1) && p.may_retry(3));
        assert!(!p.may_retry(4));
        assert!(!RetryPolicy::attempts(1).may_retry(1));
    }
}
