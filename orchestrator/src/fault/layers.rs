//! The desired network faults of a testnet as layers over each node's baseline.
//!
//! Each applied network fault is one [`Layer`] of per-node patches; a node's
//! desired [`FaultState`] is its baseline (the latency zones) with every active
//! layer's patch applied, oldest first. Undoing a fault removes its layer and
//! renders again, so what other faults set stays. A new cut replaces the cut in
//! place (the layer of an earlier partition goes), as `chaos partition` always
//! did. Kept on the host (`faults.json`) so a container that comes back with a
//! fresh network namespace gets its faults again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use testnet_node::faults::{Delay, FaultState};

use super::FaultKind;

/// The drop sets of a node under a cut (partition).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cut {
    pub from: BTreeSet<Ipv4Addr>,
    pub to: BTreeSet<Ipv4Addr>,
}

/// What one layer changes on one node. `None` values clear that link's fault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePatch {
    /// Replaces the node's drop sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<Cut>,
    /// Delay of packets from each peer, held on arrival at this node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub delay_from: BTreeMap<Ipv4Addr, Option<Delay>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub loss_to: BTreeMap<Ipv4Addr, Option<u32>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub duplicate_to: BTreeMap<Ipv4Addr, Option<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Option<u32>>,
}

impl NodePatch {
    fn apply(&self, state: &mut FaultState) {
        if let Some(cut) = &self.cut {
            state.drop_from = cut.from.clone();
            state.drop_to = cut.to.clone();
        }
        fn set<V: Copy>(map: &mut BTreeMap<Ipv4Addr, V>, changes: &BTreeMap<Ipv4Addr, Option<V>>) {
            for (ip, v) in changes {
                match v {
                    Some(v) => map.insert(*ip, *v),
                    None => map.remove(ip),
                };
            }
        }
        set(&mut state.delay_from, &self.delay_from);
        set(&mut state.loss_per_mille, &self.loss_to);
        set(&mut state.duplicate_per_mille, &self.duplicate_to);
        if let Some(b) = self.bandwidth {
            state.bandwidth_kbit = b;
        }
    }

    /// Forgets everything about the links to `ips`.
    fn drop_links(&mut self, ips: &BTreeSet<Ipv4Addr>) {
        if let Some(cut) = &mut self.cut {
            cut.from.retain(|ip| !ips.contains(ip));
            cut.to.retain(|ip| !ips.contains(ip));
        }
        self.delay_from.retain(|ip, _| !ips.contains(ip));
        self.loss_to.retain(|ip, _| !ips.contains(ip));
        self.duplicate_to.retain(|ip, _| !ips.contains(ip));
    }
}

/// One applied network fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// Assigned when pushed; what [`super::Undo::Layer`] names.
    pub id: u64,
    pub label: String,
    pub kind: FaultKind,
    pub patches: BTreeMap<String, NodePatch>,
    /// Unix time the agents heal by themselves (the lease of the apply).
    #[serde(default)]
    pub lease_until: Option<f64>,
}

impl Layer {
    pub fn new(label: String, kind: FaultKind, patches: BTreeMap<String, NodePatch>) -> Layer {
        Layer {
            id: 0,
            label,
            kind,
            patches,
            lease_until: None,
        }
    }
}

/// Every active layer of a testnet, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    #[serde(default)]
    pub layers: Vec<Layer>,
    #[serde(default)]
    next_id: u64,
}

impl Desired {
    /// Adds a layer and returns its id. A cut replaces the cut in place.
    pub fn push(&mut self, mut layer: Layer) -> u64 {
        if layer.kind == FaultKind::Partition {
            self.layers.retain(|l| l.kind != FaultKind::Partition);
        }
        self.next_id += 1;
        layer.id = self.next_id;
        self.layers.push(layer);
        self.next_id
    }

    /// Removes layer `id`; false when it is no longer there (healed or replaced).
    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.layers.len();
        self.layers.retain(|l| l.id != id);
        self.layers.len() != before
    }

    pub fn heal_all(&mut self) {
        self.layers.clear();
    }

    /// The named nodes lose every patch, and every other node every patch on
    /// the links to them (`ips` are theirs). Emptied layers go.
    pub fn heal_nodes(&mut self, names: &[String], ips: &BTreeSet<Ipv4Addr>) {
        for layer in &mut self.layers {
            layer.patches.retain(|node, _| !names.contains(node));
            for patch in layer.patches.values_mut() {
                patch.drop_links(ips);
            }
            layer.patches.retain(|_, p| p != &NodePatch::default());
        }
        self.layers.retain(|l| !l.patches.is_empty());
    }

    /// Drops the layers whose lease ran out before `now` (the agents healed
    /// them by themselves).
    pub fn expire(&mut self, now: f64) {
        self.layers
            .retain(|l| l.lease_until.is_none_or(|until| until > now));
    }

    /// Each node's desired state: its baseline with every layer applied.
    pub fn render(&self, baseline: &BTreeMap<String, FaultState>) -> BTreeMap<String, FaultState> {
        let mut out = baseline.clone();
        for layer in &self.layers {
            for (node, patch) in &layer.patches {
                patch.apply(out.entry(node.clone()).or_default());
            }
        }
        out
    }

    /// The soonest lease among the layers that touch `node`, if any.
    pub fn lease_of(&self, node: &str) -> Option<f64> {
        self.layers
            .iter()
            .filter(|l| l.patches.contains_key(node))
            .filter_map(|l| l.lease_until)
            .reduce(f64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, 10 + i)
    }

    fn delay_layer(holder: &str, from: u8, ms: Option<u32>) -> Layer {
        let mut patch = NodePatch::default();
        patch.delay_from.insert(ip(from), ms.map(Delay::fixed));
        Layer::new(
            "delay".into(),
            FaultKind::Link,
            [(holder.to_owned(), patch)].into(),
        )
    }

    fn cut_layer(node: &str, away: &[u8]) -> Layer {
        let set: BTreeSet<Ipv4Addr> = away.iter().map(|i| ip(*i)).collect();
        let patch = NodePatch {
            cut: Some(Cut {
                from: set.clone(),
                to: set,
            }),
            ..NodePatch::default()
        };
        Layer::new(
            "cut".into(),
            FaultKind::Partition,
            [(node.to_owned(), patch)].into(),
        )
    }

    fn baseline() -> BTreeMap<String, FaultState> {
        let mut zone = FaultState::default();
        zone.delay_from.insert(ip(3), Delay::fixed(30));
        [
            ("n0".to_owned(), zone),
            ("n1".to_owned(), FaultState::default()),
        ]
        .into()
    }

    #[test]
    fn undoing_a_layer_restores_what_was_there_and_keeps_the_others() {
        let mut d = Desired::default();
        let a = d.push(delay_layer("n0", 1, Some(100)));
        let b = d.push(delay_layer("n0", 3, Some(200)));
        let r = d.render(&baseline());
        assert_eq!(r["n0"].delay_from[&ip(1)].ms, 100);
        assert_eq!(r["n0"].delay_from[&ip(3)].ms, 200, "over the zone's 30");
        assert!(d.remove(b));
        let r = d.render(&baseline());
        assert_eq!(
            r["n0"].delay_from[&ip(3)].ms,
            30,
            "the zone's delay is back"
        );
        assert_eq!(r["n0"].delay_from[&ip(1)].ms, 100, "the other layer stays");
        assert!(d.remove(a));
        assert_eq!(d.render(&baseline()), baseline());
        assert!(!d.remove(a), "a second undo finds nothing");
    }

    #[test]
    fn a_clearing_layer_hides_what_is_below_until_it_goes() {
        let mut d = Desired::default();
        d.push(delay_layer("n0", 1, Some(100)));
        let clear = d.push(delay_layer("n0", 1, None));
        assert!(!d.render(&baseline())["n0"].delay_from.contains_key(&ip(1)));
        d.remove(clear);
        assert_eq!(d.render(&baseline())["n0"].delay_from[&ip(1)].ms, 100);
    }

    #[test]
    fn a_new_cut_replaces_the_cut_in_place() {
        let mut d = Desired::default();
        let first = d.push(cut_layer("n0", &[1, 2]));
        d.push(delay_layer("n1", 0, Some(50)));
        let second = d.push(cut_layer("n0", &[3]));
        let r = d.render(&baseline());
        assert_eq!(r["n0"].drop_to, [ip(3)].into());
        assert!(!d.remove(first), "replaced");
        assert!(d.remove(second));
        let r = d.render(&baseline());
        assert!(r["n0"].drop_to.is_empty() && r["n0"].drop_from.is_empty());
        assert_eq!(r["n1"].delay_from[&ip(0)].ms, 50, "the delay stays");
    }

    #[test]
    fn healing_nodes_removes_their_patches_and_links_to_them() {
        let mut d = Desired::default();
        d.push(cut_layer("n0", &[1, 2]));
        d.push(delay_layer("n1", 0, Some(50)));
        d.push(delay_layer("n0", 2, Some(70)));
        d.heal_nodes(&["n1".into()], &[ip(1)].into());
        let r = d.render(&baseline());
        assert_eq!(r["n0"].drop_to, [ip(2)].into(), "only the link to n1 heals");
        assert!(r["n1"].is_healed());
        assert_eq!(r["n0"].delay_from[&ip(2)].ms, 70);
        assert_eq!(d.layers.len(), 2, "n1's delay layer is empty and gone");
        d.heal_all();
        assert_eq!(d.render(&baseline()), baseline());
    }

    #[test]
    fn expired_layers_go_and_the_soonest_lease_is_the_nodes() {
        let mut d = Desired::default();
        let mut l = delay_layer("n0", 1, Some(10));
        l.lease_until = Some(100.0);
        d.push(l);
        let mut l = delay_layer("n0", 2, Some(10));
        l.lease_until = Some(50.0);
        d.push(l);
        d.push(delay_layer("n1", 2, Some(10)));
        assert_eq!(d.lease_of("n0"), Some(50.0));
        assert_eq!(d.lease_of("n1"), None);
        d.expire(60.0);
        assert_eq!(d.layers.len(), 2);
        assert_eq!(d.lease_of("n0"), Some(100.0));
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Desired>(&json).unwrap(), d);
    }
}
