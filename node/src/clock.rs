//! The node's clock seam: the wall time the node stamps and decides with
//! (first seen, decided, finalized at), as a fault sets it live: an offset and
//! a drift (parts per million of real time since the skew was set). Monotonic
//! timers (pings, timeouts of the P2P layer) keep the real clock.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A skew as set (`PUT /clock`): zero both to go back to real time.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Skew {
    #[serde(default)]
    pub offset_ms: i64,
    #[serde(default)]
    pub drift_ppm: i64,
}

/// `GET`/`PUT /clock`, and `/status`'s view of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockReport {
    #[serde(flatten)]
    pub skew: Skew,
    /// The node's time now, and the real one, in Unix milliseconds.
    pub now_ms: u64,
    pub real_ms: u64,
}

pub fn real_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug, Default)]
pub struct Clock {
    /// The skew and the real time it was set at.
    state: Mutex<(Skew, u64)>,
}

impl Clock {
    /// The node's time at real time `real`.
    fn at(&self, real: u64) -> u64 {
        let (skew, since) = *self.state.lock().unwrap_or_else(|e| e.into_inner());
        let drifted = (real.saturating_sub(since) as i128 * skew.drift_ppm as i128) / 1_000_000;
        (real as i128 + skew.offset_ms as i128 + drifted).max(0) as u64
    }

    pub fn now_ms(&self) -> u64 {
        self.at(real_ms())
    }

    pub fn set(&self, skew: Skew) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (skew, real_ms());
    }

    pub fn report(&self) -> ClockReport {
        let real = real_ms();
        // The guard goes before `at` locks again.
        let skew = self.state.lock().unwrap_or_else(|e| e.into_inner()).0;
        ClockReport {
            skew,
            now_ms: self.at(real),
            real_ms: real,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_and_drift_move_the_node_time() {
        let c = Clock::default();
        let real = real_ms();
        assert!(c.now_ms() >= real && c.now_ms() < real + 1000);
        c.set(Skew {
            offset_ms: 30_000,
            drift_ppm: 0,
        });
        let r = c.report();
        assert_eq!(r.now_ms - r.real_ms, 30_000);
        c.set(Skew {
            offset_ms: -5_000,
            drift_ppm: 500,
        });
        let since = c.state.lock().unwrap().1;
        // 1000 s of real time later: 0.5 s of drift on top of the offset.
        assert_eq!(c.at(since + 1_000_000), since + 1_000_000 - 5_000 + 500);
        c.set(Skew::default());
        let r = c.report();
        assert_eq!(r.now_ms, r.real_ms);
    }
}
