//! What a fault changes, ready to apply: a layer of per-node patches (drop
//! sets, delays, loss...), a zone latency change, a heal, a process action.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use testnet_node::faults::{one_way, partition, shape, Delay, FaultState, Shape};

use super::layers::{Cut, Layer, NodePatch};
use super::{parse_shape, per_mille_of, Fault, FaultError, Planned};
use crate::plan::Plan;

impl Fault {
    /// What this fault changes in testnet `plan`.
    pub fn plan(&self, plan: &Plan) -> Result<Planned, FaultError> {
        let ip = |n: &String| plan.ip_of(n).ok_or_else(|| unknown(plan, n));
        let ips = |v: &[String]| v.iter().map(ip).collect::<Result<Vec<_>, _>>();
        let all: Vec<Ipv4Addr> = plan.nodes.iter().map(|n| n.ip).collect();
        let layer = |patches| {
            Ok(Planned::Network(Layer::new(
                self.label(),
                self.kind(),
                patches,
            )))
        };
        match self {
            Fault::Partition(p) => {
                let groups = p
                    .groups
                    .iter()
                    .map(|g| ips(g))
                    .collect::<Result<Vec<_>, _>>()?;
                let cut = match (p.one_way, groups.first()) {
                    (false, _) => partition(&groups, &all),
                    (true, Some(first)) if groups.len() > 1 && !first.is_empty() => {
                        one_way(first, &groups[1..].concat(), &all)
                    }
                    (true, _) => return Err(FaultError::OneWay),
                };
                layer(cut_patches(plan, cut))
            }
            Fault::Shape(s) => {
                let kind = parse_shape(s).ok_or_else(|| FaultError::Shape(s.clone()))?;
                if let Shape::Isolate(k) = kind {
                    ip(&format!("n{k}"))?;
                }
                layer(cut_patches(plan, shape(kind, &all)))
            }
            Fault::Delay { .. }
            | Fault::Loss { .. }
            | Fault::Duplicate { .. }
            | Fault::Bandwidth { .. } => layer(self.link_patches(plan)?),
            Fault::Latency {
                from,
                to,
                ms,
                one_way,
            } => {
                for z in [from, to] {
                    if !plan.zones.zones.contains_key(z) {
                        return Err(FaultError::UnknownZone {
                            zone: z.clone(),
                            testnet: plan.name.clone(),
                            known: plan
                                .zones
                                .zones
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    }
                }
                Ok(Planned::ZoneLatency {
                    from: from.clone(),
                    to: to.clone(),
                    ms: *ms,
                    one_way: *one_way,
                })
            }
            Fault::Cpu { nodes, .. }
            | Fault::Memory { nodes, .. }
            | Fault::Clock { nodes, .. }
            | Fault::Byzantine { nodes, .. }
            | Fault::Disk { nodes, .. } => {
                if let Some(why) = self.too_long() {
                    return Err(FaultError::TooLong(why));
                }
                ips(nodes)?;
                Ok(self.node_change(nodes))
            }
            Fault::DiskFull { nodes } => {
                ips(nodes)?;
                for n in nodes {
                    if plan
                        .nodes
                        .iter()
                        .any(|p| &p.name == n && p.disk_mib.is_none())
                    {
                        return Err(FaultError::NoCappedDisk(n.clone()));
                    }
                }
                Ok(Planned::DiskFull(nodes.clone()))
            }
            Fault::Upgrade {
                nodes,
                image,
                protocol,
            } => {
                ips(nodes)?;
                Ok(Planned::Upgrade {
                    nodes: nodes.clone(),
                    to: upgrade_to(image, protocol)?,
                })
            }
            Fault::Heal => Ok(Planned::Heal(None)),
            Fault::HealNodes(nodes) => {
                ips(nodes)?;
                Ok(Planned::Heal(Some(nodes.clone())))
            }
            other => {
                let (node, action, container) =
                    other.process().expect("the rest are process faults");
                ip(node)?;
                Ok(Planned::Process {
                    node: node.clone(),
                    action,
                    container,
                })
            }
        }
    }

    /// The per-node patches of a delay, loss, duplicate or bandwidth fault.
    /// A limit or a clock skew on `nodes` (what is not a network change).
    fn node_change(&self, nodes: &[String]) -> Planned {
        let nodes = nodes.to_vec();
        match self {
            Fault::Cpu { cores, .. } => Planned::Limit {
                nodes,
                limit: crate::engine::Limit::Cpu((*cores > 0.0).then_some(*cores)),
            },
            Fault::Memory { mib, .. } => Planned::Limit {
                nodes,
                limit: crate::engine::Limit::Memory((*mib > 0).then_some(*mib)),
            },
            Fault::Clock {
                offset, drift_ppm, ..
            } => Planned::Clock {
                nodes,
                skew: testnet_node::clock::Skew {
                    offset_ms: *offset,
                    drift_ppm: *drift_ppm,
                },
            },
            Fault::Byzantine {
                behaviour,
                delay_ms,
                ..
            } => Planned::Byzantine {
                nodes,
                behaviour: *behaviour,
                delay_ms: *delay_ms,
            },
            Fault::Disk {
                fsync_ms,
                error_percent,
                ..
            } => Planned::Disk {
                nodes,
                faults: testnet_node::store::DiskFaults {
                    fsync_ms: *fsync_ms,
                    error_percent: *error_percent,
                },
            },
            other => unreachable!("not a node change: {other:?}"),
        }
    }

    fn link_patches(&self, plan: &Plan) -> Result<BTreeMap<String, NodePatch>, FaultError> {
        let patches = match self {
            Fault::Delay {
                nodes,
                to,
                ms,
                jitter_ms,
                reorder_percent,
            } => {
                let delay = (*ms > 0).then_some(Delay {
                    ms: *ms,
                    jitter_ms: *jitter_ms,
                    reorder_per_mille: per_mille_of(*reorder_percent)?,
                });
                // Held on the receiver's ingress, keyed by the sender.
                let mut patches = BTreeMap::<String, NodePatch>::new();
                for (sender, receiver) in links(plan, nodes, to)? {
                    let p = patches.entry(receiver.name.clone()).or_default();
                    p.delay_from.insert(sender.ip, delay);
                }
                patches
            }
            Fault::Loss { nodes, to, percent } | Fault::Duplicate { nodes, to, percent } => {
                let rate = Some(per_mille_of(*percent)?).filter(|p| *p > 0);
                let loss = matches!(self, Fault::Loss { .. });
                let mut patches = BTreeMap::<String, NodePatch>::new();
                for (sender, receiver) in links(plan, nodes, to)? {
                    let p = patches.entry(sender.name.clone()).or_default();
                    let map = if loss {
                        &mut p.loss_to
                    } else {
                        &mut p.duplicate_to
                    };
                    map.insert(receiver.ip, rate);
                }
                patches
            }
            Fault::Bandwidth { nodes, kbit } => {
                let mut patches = BTreeMap::new();
                for n in nodes {
                    plan.ip_of(n).ok_or_else(|| unknown(plan, n))?;
                    let cap = (*kbit > 0).then_some(*kbit);
                    patches.insert(
                        n.clone(),
                        NodePatch {
                            bandwidth: Some(cap),
                            ..NodePatch::default()
                        },
                    );
                }
                patches
            }
            _ => BTreeMap::new(),
        };
        Ok(patches)
    }
}

fn unknown(plan: &Plan, node: &str) -> FaultError {
    FaultError::UnknownNode {
        node: node.to_owned(),
        testnet: plan.name.clone(),
        known: plan.node_names().join(", "),
    }
}

/// (sender, receiver) pairs from each of `from` to each of `to` (every other
/// node when empty).
fn links<'a>(
    plan: &'a Plan,
    from: &[String],
    to: &[String],
) -> Result<Vec<(&'a crate::plan::NodePlan, &'a crate::plan::NodePlan)>, FaultError> {
    let find = |n: &String| {
        plan.nodes
            .iter()
            .find(|p| &p.name == n)
            .ok_or_else(|| unknown(plan, n))
    };
    for n in to {
        find(n)?;
    }
    let mut pairs = Vec::new();
    for name in from {
        let sender = find(name)?;
        for receiver in plan
            .nodes
            .iter()
            .filter(|o| o.name != *name && (to.is_empty() || to.contains(&o.name)))
        {
            pairs.push((sender, receiver));
        }
    }
    Ok(pairs)
}

/// Each node's drop sets from a cut computed over IPs.
fn cut_patches(plan: &Plan, cut: Vec<(Ipv4Addr, FaultState)>) -> BTreeMap<String, NodePatch> {
    plan.nodes
        .iter()
        .map(|n| {
            let (from, to) = cut
                .iter()
                .find(|(ip, _)| *ip == n.ip)
                .map(|(_, s)| (s.drop_from.clone(), s.drop_to.clone()))
                .unwrap_or_default();
            let patch = NodePatch {
                cut: Some(Cut { from, to }),
                ..NodePatch::default()
            };
            (n.name.clone(), patch)
        })
        .collect()
}

/// What an upgrade runs: exactly one of an image and a protocol.
fn upgrade_to(
    image: &Option<String>,
    protocol: &Option<crate::image::Protocol>,
) -> Result<super::UpgradeTo, FaultError> {
    match (image, protocol) {
        (Some(tag), None) => Ok(super::UpgradeTo::Image(tag.clone())),
        (None, Some(p)) => Ok(super::UpgradeTo::Protocol(*p)),
        _ => Err(FaultError::Upgrade),
    }
}
