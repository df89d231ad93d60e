//! Latency zones: nodes grouped into zones with a zone-to-zone latency matrix,
//! turned into each node's baseline fault state (the delays a heal restores).
//!
//! ```yaml
//! zones:
//!   eu: [n0, n1]
//!   us: [n2, n3]
//! latency:          # one-way ms; symmetric unless the reverse is given too
//!   eu: { us: 40 }
//!   us: { us: 2 }   # within a zone
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use testnet_node::faults::{Delay, FaultState};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Zones {
    /// Zone name -> its nodes.
    #[serde(default)]
    pub zones: BTreeMap<String, Vec<String>>,
    /// From zone -> to zone -> one-way latency in ms.
    #[serde(default)]
    pub latency: BTreeMap<String, BTreeMap<String, u32>>,
}

impl Zones {
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty() && self.latency.is_empty()
    }

    pub fn zone_of(&self, node: &str) -> Option<&str> {
        self.zones
            .iter()
            .find(|(_, nodes)| nodes.iter().any(|n| n == node))
            .map(|(z, _)| z.as_str())
    }

    /// One-way latency from zone `a` to zone `b`: `a.b`, else `b.a`, else 0.
    pub fn one_way_ms(&self, a: &str, b: &str) -> u32 {
        let get = |x: &str, y: &str| self.latency.get(x).and_then(|m| m.get(y)).copied();
        get(a, b).or_else(|| get(b, a)).unwrap_or(0)
    }

    /// Sets the latency from `a` to `b` (and back, unless `one_way`).
    pub fn set(&mut self, a: &str, b: &str, ms: u32, one_way: bool) {
        // The reverse may only be implied by `a.b`: pin it before `a.b` changes.
        let reverse = if one_way { self.one_way_ms(b, a) } else { ms };
        let mut put = |x: &str, y: &str, v: u32| {
            self.latency
                .entry(x.to_owned())
                .or_default()
                .insert(y.to_owned(), v);
        };
        put(a, b, ms);
        if a != b {
            put(b, a, reverse);
        }
    }

    /// Problems with the zones given the testnet's node names ("path: message").
    pub fn problems(&self, nodes: &[String]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (zone, members) in &self.zones {
            for n in members {
                if !nodes.contains(n) {
                    problems.push(format!("zones.{zone}: no node {n:?} in this testnet"));
                }
                if let Some(other) = seen.insert(n, zone) {
                    problems.push(format!(
                        "zones.{zone}: {n} is already in zone {other} (a node has one zone)"
                    ));
                }
            }
        }
        for (a, row) in &self.latency {
            for b in std::iter::once(a).chain(row.keys()) {
                if !self.zones.contains_key(b) {
                    problems.push(format!(
                        "latency.{a}: no zone {b:?} (zones are {})",
                        self.zones.keys().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            for (b, ms) in row {
                if *ms > 10_000 {
                    problems.push(format!("latency.{a}.{b}: {ms} ms is over 10 s"));
                }
            }
        }
        problems
    }

    /// Each node's baseline: packets from a node of zone A held on arrival at a
    /// node of zone B for the A->B latency (see `FaultState::delay_from`).
    pub fn baseline(&self, nodes: &[(String, Ipv4Addr)]) -> BTreeMap<String, FaultState> {
        let mut out = BTreeMap::new();
        for (receiver, _) in nodes {
            let mut state = FaultState::default();
            if let Some(rz) = self.zone_of(receiver) {
                for (sender, ip) in nodes.iter().filter(|(s, _)| s != receiver) {
                    let Some(sz) = self.zone_of(sender) else {
                        continue;
                    };
                    let ms = self.one_way_ms(sz, rz);
                    if ms > 0 {
                        state.delay_from.insert(*ip, Delay::fixed(ms));
                    }
                }
            }
            out.insert(receiver.clone(), state);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<(String, Ipv4Addr)> {
        (0..4)
            .map(|i| (format!("n{i}"), Ipv4Addr::new(10, 77, 0, 10 + i)))
            .collect()
    }

    fn zones() -> Zones {
        Zones {
            zones: [
                ("eu".into(), vec!["n0".into(), "n1".into()]),
                ("us".into(), vec!["n2".into(), "n3".into()]),
            ]
            .into(),
            latency: [
                ("eu".into(), [("us".into(), 40)].into()),
                ("us".into(), [("us".into(), 2)].into()),
            ]
            .into(),
        }
    }

    #[test]
    fn the_matrix_becomes_delays_on_arrival() {
        let b = zones().baseline(&nodes());
        let ip = |i: u8| Ipv4Addr::new(10, 77, 0, 10 + i);
        // n2 (us) holds packets from eu for 40 ms and from its zone mate for 2.
        assert_eq!(b["n2"].delay_from[&ip(0)], Delay::fixed(40));
        assert_eq!(b["n2"].delay_from[&ip(1)], Delay::fixed(40));
        assert_eq!(b["n2"].delay_from[&ip(3)], Delay::fixed(2));
        // Symmetric: us -> eu is 40 too; eu -> eu was not given: no delay.
        assert_eq!(b["n0"].delay_from[&ip(2)], Delay::fixed(40));
        assert!(!b["n0"].delay_from.contains_key(&ip(1)));
        assert!(zones()
            .problems(&nodes().into_iter().map(|n| n.0).collect::<Vec<_>>())
            .is_empty());
    }

    #[test]
    fn changes_and_one_way_links() {
        let mut z = zones();
        z.set("us", "eu", 90, true);
        assert_eq!(
            (z.one_way_ms("us", "eu"), z.one_way_ms("eu", "us")),
            (90, 40)
        );
        z.set("eu", "us", 10, false);
        assert_eq!(
            (z.one_way_ms("us", "eu"), z.one_way_ms("eu", "us")),
            (10, 10)
        );
    }

    #[test]
    fn bad_zones_are_reported() {
        let mut z = zones();
        z.zones.get_mut("us").unwrap().push("n0".into());
        z.zones.insert("ap".into(), vec!["n9".into()]);
        z.latency.insert("mars".into(), [("eu".into(), 1)].into());
        let names: Vec<String> = nodes().into_iter().map(|n| n.0).collect();
        let p = z.problems(&names).join("\n");
        assert!(p.contains("zones.us: n0 is already in zone eu"), "{p}");
        assert!(p.contains("zones.ap: no node \"n9\""), "{p}");
        assert!(p.contains("latency.mars: no zone \"mars\""), "{p}");
    }
}
