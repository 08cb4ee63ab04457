//! Retries with exponential backoff and jitter: the n-th retry waits a random time in
//! `[d/2, d]` with `d = min(initial * 2^(n-1), max)`, so receivers coming back after an outage
//! are not hit by every sender at the same instant.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// How deliveries are attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// Backoff before the first retry (before jitter).
    pub initial_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
    /// Longest time one attempt may take (connect, send, answer).
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 1 s, 2 s, 4 s, 8 s apart (before jitter), 10 s per attempt.
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry `retry` (1 for the first retry) for a jitter draw `unit` in
    /// `[0, 1]`: from half the exponential delay (`unit = 0`) to all of it (`unit = 1`).
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let doublings = retry.saturating_sub(1).min(32);
        let full = self
            .initial_delay
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max_delay);
        full.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }

    /// The backoff before retry `retry`, with a random jitter.
    pub fn jittered_backoff(&self, retry: u32) -> Duration {
        self.backoff(retry, rand::rng().random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_within_its_jitter_band() {
        let policy = RetryPolicy {
            attempts: 10,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
        };
        let full: Vec<f64> = (1..=5)
            .map(|n| policy.backoff(n, 1.0).as_secs_f64())
            .collect();
        assert_eq!(full, [1.0, 2.0, 4.0, 5.0, 5.0]);
        let least: Vec<f64> = (1..=5)
            .map(|n| policy.backoff(n, 0.0).as_secs_f64())
            .collect();
        assert_eq!(least, [0.5, 1.0, 2.0, 2.5, 2.5]);
        for n in 1..=40 {
            let delay = policy.jittered_backoff(n);
            let full = policy.backoff(n, 1.0);
            assert!(delay >= full / 2 && delay <= full, "retry {n}: {delay:?}");
        }
    }
}
