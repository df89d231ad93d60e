//! Per-address reconnect backoff: exponential with jitter (seed 004).
//!
//! Jitter keeps peers that failed together from retrying together; the cap keeps a
//! dead peer from being forgotten for long; the reset after a successful handshake
//! makes a peer that restarted reconnect quickly.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max: max.max(base),
            failures: 0,
        }
    }

    /// The delay before the next attempt: uniform in `[d/2, d]` where
    /// `d = min(max, base * 2^failures)`; then counts one more failure.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl(self.failures).unwrap_or(u32::MAX))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = ceiling / 2;
        half + rng.gen_range(Duration::ZERO..=ceiling - half)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn grows_exponentially_within_jitter_and_caps() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(5));
        let mut b = Backoff::new(base, max);
        let mut rng = StdRng::seed_from_u64(1);
        for n in 0..40u32 {
            let ceiling = (base * 2u32.saturating_pow(n.min(20))).min(max);
            let d = b.next_delay(&mut rng);
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "attempt {n}: {d:?} vs {ceiling:?}"
            );
        }
        b.reset();
        assert!(b.next_delay(&mut rng) <= base);
    }

    #[test]
    fn jitter_spreads_peers_that_failed_together() {
        let delays: std::collections::HashSet<Duration> = (0..20)
            .map(|seed| {
                let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
                b.next_delay(&mut StdRng::seed_from_u64(seed))
            })
            .collect();
        assert!(delays.len() > 15, "{delays:?}");
    }
}
