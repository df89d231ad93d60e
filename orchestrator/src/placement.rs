//! Which host each node of a multi-host testnet runs on.
//!
//! ```yaml
//! hosts:
//!   - { name: a, engine: "unix:///var/run/docker.sock" }
//!   - { name: b, engine: "tcp://10.0.0.2:2375" }     # published ports reached at 10.0.0.2
//! placement: spread        # default: n0.. in equal consecutive blocks, a first
//! # or by zones, each naming its host:
//! placement: zones
//! zones:
//!   eu: { host: a, nodes: [n0, n1, n2, n3] }
//!   us: { host: b, nodes: [n4, n5, n6, n7] }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::hosts::HostSpec;

/// How nodes are spread over `hosts:`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Equal consecutive blocks of nodes, in the order of `hosts:`.
    #[default]
    Spread,
    /// Each node on the host of its zone (`zones: { eu: { host: a, nodes: [...] } }`).
    Zones,
}

/// A latency zone: its nodes, or its nodes and the host they run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ZoneEntry {
    Nodes(Vec<String>),
    Placed(PlacedZone),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacedZone {
    /// A host of `hosts:`.
    pub host: String,
    pub nodes: Vec<String>,
}

impl ZoneEntry {
    pub fn nodes(&self) -> &[String] {
        match self {
            ZoneEntry::Nodes(n) => n,
            ZoneEntry::Placed(p) => &p.nodes,
        }
    }

    pub fn host(&self) -> Option<&str> {
        match self {
            ZoneEntry::Nodes(_) => None,
            ZoneEntry::Placed(p) => Some(&p.host),
        }
    }
}

/// Each node's host (by index of `names`); none without `hosts:`. Assumes
/// [`problems`] found nothing.
pub fn place(
    hosts: &[HostSpec],
    placement: Placement,
    zones: &BTreeMap<String, ZoneEntry>,
    names: &[String],
) -> Vec<Option<String>> {
    if hosts.is_empty() {
        return vec![None; names.len()];
    }
    let n = names.len().max(1);
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let by_zone = zones
                .values()
                .find(|z| z.nodes().contains(name))
                .and_then(|z| z.host());
            match (placement, by_zone) {
                (Placement::Zones, Some(h)) => Some(h.to_owned()),
                _ => Some(hosts[i * hosts.len() / n].name.clone()),
            }
        })
        .collect()
}

/// What is wrong with `hosts:`, `placement:` and the zones' hosts.
pub fn problems(
    hosts: &[HostSpec],
    placement: Placement,
    zones: &BTreeMap<String, ZoneEntry>,
    names: &[String],
) -> Vec<String> {
    let mut p: Vec<String> = hosts.iter().flat_map(HostSpec::problems).collect();
    if hosts.len() > crate::engine::docker::MAX_HOSTS {
        p.push(format!(
            "hosts: {} hosts, but a testnet's overlay network spans at most {} (each daemon takes an address below the nodes')",
            hosts.len(),
            crate::engine::docker::MAX_HOSTS
        ));
    }
    let mut seen = Vec::new();
    for h in hosts {
        if seen.contains(&&h.name) {
            p.push(format!("hosts: {} is given twice", h.name));
        }
        seen.push(&h.name);
    }
    let placed: Vec<(&String, &str)> = zones
        .iter()
        .filter_map(|(z, e)| Some((z, e.host()?)))
        .collect();
    for (zone, host) in &placed {
        if hosts.is_empty() {
            p.push(format!(
                "zones.{zone}.host: there are no `hosts:` to place zones on; add them, or give the zone as a list of nodes"
            ));
        } else if !hosts.iter().any(|h| h.name == *host) {
            p.push(format!(
                "zones.{zone}.host: no host {host:?} in `hosts:` ({})",
                hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    match placement {
        Placement::Spread if !placed.is_empty() => p.push(
            "placement: zones name hosts, but placement is `spread`; set `placement: zones`".into(),
        ),
        Placement::Zones if hosts.is_empty() => {
            p.push("placement: `zones` places nodes on `hosts:`, and there are none".into())
        }
        Placement::Zones => {
            let unplaced: Vec<&String> = names
                .iter()
                .filter(|n| {
                    !zones
                        .values()
                        .any(|z| z.host().is_some() && z.nodes().contains(n))
                })
                .collect();
            if !unplaced.is_empty() {
                p.push(format!(
                    "placement: zones, but {} in no zone with a host; put every node in a zone with `host:`",
                    crate::placement::list(&unplaced)
                ));
            }
        }
        Placement::Spread => {}
    }
    p
}

/// `n0, n1 and 3 more are`.
fn list(names: &[&String]) -> String {
    let shown: Vec<&str> = names.iter().take(3).map(|s| s.as_str()).collect();
    match names.len() {
        1 => format!("{} is", shown[0]),
        n if n <= 3 => format!("{} are", shown.join(", ")),
        n => format!("{} and {} more are", shown.join(", "), n - 3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &[&str]) -> Vec<HostSpec> {
        names
            .iter()
            .map(|n| HostSpec {
                name: (*n).into(),
                engine: "unix:///var/run/docker.sock".into(),
                address: None,
            })
            .collect()
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn spread_places_equal_consecutive_blocks_in_host_order() {
        let placed = place(
            &hosts(&["a", "b"]),
            Placement::Spread,
            &BTreeMap::new(),
            &names(5),
        );
        let placed: Vec<&str> = placed.iter().map(|h| h.as_deref().unwrap()).collect();
        assert_eq!(placed, ["a", "a", "a", "b", "b"]);
        assert_eq!(
            place(&[], Placement::Spread, &BTreeMap::new(), &names(2)),
            [None, None]
        );
    }

    #[test]
    fn zones_place_each_node_on_its_zones_host() {
        let zones = BTreeMap::from([
            (
                "eu".to_owned(),
                ZoneEntry::Placed(PlacedZone {
                    host: "b".into(),
                    nodes: vec!["n0".into()],
                }),
            ),
            (
                "us".to_owned(),
                ZoneEntry::Placed(PlacedZone {
                    host: "a".into(),
                    nodes: vec!["n1".into()],
                }),
            ),
        ]);
        let h = hosts(&["a", "b"]);
        assert!(problems(&h, Placement::Zones, &zones, &names(2)).is_empty());
        let placed = place(&h, Placement::Zones, &zones, &names(2));
        assert_eq!(placed, [Some("b".to_owned()), Some("a".to_owned())]);
    }

    #[test]
    fn problems_name_unknown_hosts_unplaced_nodes_and_the_wrong_placement() {
        let zones = BTreeMap::from([(
            "eu".to_owned(),
            ZoneEntry::Placed(PlacedZone {
                host: "c".into(),
                nodes: vec!["n0".into()],
            }),
        )]);
        let h = hosts(&["a", "b", "a"]);
        let p = problems(&h, Placement::Zones, &zones, &names(2)).join("\n");
        assert!(p.contains("hosts: a is given twice"), "{p}");
        assert!(
            p.contains("zones.eu.host: no host \"c\" in `hosts:` (a, b, a)"),
            "{p}"
        );
        assert!(p.contains("but n1 is in no zone with a host"), "{p}");
        let p = problems(&h[..2], Placement::Spread, &zones, &names(2)).join("\n");
        assert!(p.contains("set `placement: zones`"), "{p}");
        let p = problems(&[], Placement::Zones, &zones, &names(2)).join("\n");
        assert!(p.contains("there are no `hosts:`"), "{p}");
        assert!(
            p.contains("places nodes on `hosts:`, and there are none"),
            "{p}"
        );
    }
}
