//! How many connections one source address may hold in their handshake at
//! once: a flood of idle or slow connections from one place takes a few
//! handshake slots, not all of them (honest peers dialing in meanwhile still
//! get theirs). Established peers are bounded by genesis (`check_admission`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// The handshakes in flight per source address.
#[derive(Debug, Default)]
pub(super) struct PendingBySource(Counts);

/// One handshake slot of a source, given back when dropped.
#[derive(Debug)]
pub(super) struct Pending {
    counts: Counts,
    ip: IpAddr,
}

impl PendingBySource {
    /// A slot for a connection from `ip`, if it holds fewer than `max`.
    pub fn admit(&self, ip: IpAddr, max: usize) -> Option<Pending> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Pending {
            counts: self.0.clone(),
            ip,
        })
    }

    /// Handshakes in flight from `ip`.
    #[cfg(test)]
    pub fn count(&self, ip: IpAddr) -> usize {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_gets_its_own_few_slots_back_when_done() {
        let pending = PendingBySource::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let held: Vec<Pending> = (0..3).map(|_| pending.admit(a, 3).unwrap()).collect();
        assert!(
            pending.admit(a, 3).is_none(),
            "a fourth from the same source"
        );
        let other = pending.admit(b, 3);
        assert!(other.is_some(), "another source is not affected");
        drop(held);
        assert_eq!(pending.count(a), 0, "slots given back");
        assert!(pending.admit(a, 3).is_some());
    }
}
