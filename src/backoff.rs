//! Exponential backoff with jitter, shared by every client that retries:
//! the Kafka consumer loop and the Alertmanager pusher.

use std::time::Duration;

/// Delays between failed attempts: `first`, doubling up to `max`, each
/// drawn between half and all of that (jitter), so that many clients
/// retrying one recovering server do not all come back at once.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// The delay after the first failure.
    pub first: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s, doubling to 30 s: for Alertmanager, well within its default
    /// `resolve_timeout` (5 min) once it is back.
    fn default() -> Self {
        Backoff { first: Duration::from_secs(1), max: Duration::from_secs(30) }
    }
}

impl Backoff {
    /// The delay after the `failures`-th failure in a row (from 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let full = self.first.saturating_mul(1u32 << failures.saturating_sub(1).min(20)).min(self.max);
        // Jitter from the OS's random source; without one, no jitter.
        let r = getrandom::u32().unwrap_or(u32::MAX);
        full / 2 + (full / 2).mul_f64(f64::from(r) / f64::from(u32::MAX))
    }
}
