//! What a testnet is made of, decided before anything is created: its network,
//! subnet, image, and each node's container name, static IP and seeded bugs.
//! Saved as `plan.json` in the testnet's state dir and
//! read by faults (IPs and zones are fixed here, so faults plan without asking
//! the engine), monitoring, and `export compose`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use testnet_node::faults::FaultState;
use testnet_node::SimulatedBug;

use crate::engine::hosts::HostSpec;
use crate::nodespec::{NodeSpec, Slot};
use crate::zones::Zones;

pub const P2P_PORT: u16 = 7000;
pub const HTTP_PORT: u16 = 8000;
/// The in-container agent's control API.
pub const AGENT_PORT: u16 = 9000;
/// Where genesis and the node's key are placed in the container.
pub const CONFIG_DIR: &str = "/etc/testnet";

/// Our node's data dir in its container (a tmpfs with `disk_mib`).
pub const DATA_DIR: &str = "/var/lib/testnet";

/// One node of a plan.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodePlan {
    pub name: String,
    pub container: String,
    pub ip: Ipv4Addr,
    pub bugs: Vec<SimulatedBug>,
    /// Its data dir on a tmpfs of this many MiB (disk faults fill it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_mib: Option<u64>,
    /// Its own image (mixed versions, an upgrade), else the testnet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Host ports on 127.0.0.1 of the node's HTTP API and agent, fixed for the
    /// testnet's life (0 in plans of older versions: the engine picked).
    #[serde(default)]
    pub http_port: u16,
    #[serde(default)]
    pub agent_port: u16,
    /// Host port of a foreign node's metrics when they are not on its API
    /// port (0: none of its own).
    #[serde(default)]
    pub metrics_port: u16,
    /// Whether the node votes (false: a full node).
    #[serde(default = "yes")]
    pub validator: bool,
    /// Its neighbours in the topology (`None` in plans of older versions: all
    /// the other nodes).
    #[serde(default)]
    pub neighbours: Option<Vec<String>>,
    /// The host of `hosts:` it runs on (none: the local engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

fn yes() -> bool {
    true
}

impl NodePlan {
    /// Sets its host ports from `pins` (in [`Plan::pins_of`]'s order).
    pub fn set_pins(&mut self, pins: &[u16]) {
        let mut it = pins.iter().copied();
        self.http_port = it.next().unwrap_or(0);
        self.agent_port = it.next().unwrap_or(0);
        self.metrics_port = it.next().unwrap_or(0);
    }

    /// The holder container of a node in holder mode.
    pub fn holder(&self) -> String {
        format!("{}-holder", self.container)
    }
}

/// What `up` created, saved beside genesis and keys.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub name: String,
    pub network: String,
    pub subnet: String,
    pub image: String,
    pub nodes: Vec<NodePlan>,
    /// Latency zones, applied as each node's baseline delays (and restored by a heal).
    #[serde(default)]
    pub zones: Zones,
    /// Not a full mesh: nodes are handed their neighbours and relay.
    #[serde(default)]
    pub sparse: bool,
    /// Each node runs in a container of its own that joined the network and
    /// PID namespaces of a holder container (ours, running the agent);
    /// `image` is the holder's, `node_image` the node's.
    #[serde(default)]
    pub holder: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_image: Option<String>,
    /// A node image not ours, and how to run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeSpec>,
    /// The Docker daemons it spans (none: the local one); every later
    /// command connects to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostSpec>,
    /// Our nodes' `--finality-window` (None: the node's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finality_window: Option<usize>,
    /// Our nodes' `--checkpoint-every` (None: the node's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<u64>,
}

impl Plan {
    /// The container port of the nodes' API (ours: [`HTTP_PORT`]).
    pub fn api_port(&self) -> Option<u16> {
        match &self.node {
            Some(spec) => spec.ports.api,
            None => Some(HTTP_PORT),
        }
    }

    /// Where the nodes' metrics are: container port and path.
    pub fn metrics_at(&self) -> Option<(u16, String)> {
        match &self.node {
            Some(spec) => spec.ports.metrics.map(|p| (p, spec.metrics_path.clone())),
            None => Some((HTTP_PORT, "/metrics".into())),
        }
    }

    /// The port nodes link on (connectivity is judged on it).
    pub fn p2p_port(&self) -> u16 {
        self.node.as_ref().map_or(P2P_PORT, |s| s.ports.p2p)
    }

    /// The container ports each node publishes on the host, in
    /// [`NodePlan::set_pins`]'s order: API, agent, metrics (when not the API's).
    pub fn published_ports(&self) -> Vec<u16> {
        let mut out = vec![self.api_port().unwrap_or(0), AGENT_PORT];
        if let Some((m, _)) = self
            .metrics_at()
            .filter(|(m, _)| Some(*m) != self.api_port())
        {
            out.push(m);
        }
        out
    }

    /// (container port, host port) pairs `node` publishes (an API-less node
    /// publishes its agent and metrics only).
    pub fn pins_of(&self, node: &NodePlan) -> Vec<(u16, u16)> {
        let hosts = [node.http_port, node.agent_port, node.metrics_port];
        self.published_ports()
            .into_iter()
            .zip(hosts)
            .filter(|(c, _)| *c != 0)
            .collect()
    }

    /// Node names with their IPs, in plan order (n0, n1, ...).
    pub fn roster(&self) -> Vec<(String, Ipv4Addr)> {
        self.nodes.iter().map(|n| (n.name.clone(), n.ip)).collect()
    }

    pub fn ip_of(&self, node: &str) -> Option<Ipv4Addr> {
        self.nodes.iter().find(|n| n.name == node).map(|n| n.ip)
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// The `k`th address kept for monitoring: the 16 below the subnet's top
    /// (.240 up in a /24); nodes start at the base + 10.
    pub fn monitor_ip(&self, k: u32) -> Ipv4Addr {
        let (base, mask) = parse_cidr(&self.subnet).unwrap_or((0, 0));
        Ipv4Addr::from(base + (!mask).wrapping_add(1).wrapping_sub(MONITOR_BLOCK) + k)
    }

    /// `node`'s neighbours in the topology.
    pub fn neighbours_of(&self, node: &str) -> Vec<String> {
        match self.nodes.iter().find(|n| n.name == node) {
            Some(NodePlan {
                neighbours: Some(list),
                host: None,
                ..
            }) => list.clone(),
            Some(_) => self
                .node_names()
                .into_iter()
                .filter(|n| n != node)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Every node's neighbours, by name.
    pub fn neighbour_sets(&self) -> BTreeMap<String, Vec<String>> {
        self.nodes
            .iter()
            .map(|n| (n.name.clone(), self.neighbours_of(&n.name)))
            .collect()
    }

    /// Undirected links of the topology.
    pub fn edges(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| self.neighbours_of(&n.name).len())
            .sum::<usize>()
            / 2
    }

    /// `testnet-node run ...` for `node` in its container: genesis and key
    /// from [`CONFIG_DIR`], its seeded bugs, and in a sparse topology its
    /// neighbours.
    pub fn node_args(&self, node: &NodePlan) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "run".into(),
            "--genesis".into(),
            format!("{CONFIG_DIR}/genesis.json"),
            "--key".into(),
            format!("{CONFIG_DIR}/node.key"),
            "--data-dir".into(),
            DATA_DIR.into(),
            "--listen".into(),
            format!("0.0.0.0:{P2P_PORT}"),
            "--http".into(),
            format!("0.0.0.0:{HTTP_PORT}"),
        ];
        for b in &node.bugs {
            args.extend(["--simulate-bug".into(), b.name().into()]);
        }
        if let Some(w) = self.finality_window {
            args.extend(["--finality-window".into(), w.to_string()]);
        }
        if let Some(n) = self.checkpoint_every {
            args.extend(["--checkpoint-every".into(), n.to_string()]);
        }
        if self.sparse {
            for peer in self.neighbours_of(&node.name) {
                if let Some(ip) = self.ip_of(&peer) {
                    args.extend(["--neighbour".into(), format!("{ip}:{P2P_PORT}")]);
                }
            }
        }
        args
    }

    /// The command and environment of `node`'s own container in holder mode:
    /// `testnet-node run ...` for ours, the `node:` section's for a foreign one.
    pub fn process_command(&self, node: &NodePlan) -> Result<(Vec<String>, Vec<String>), String> {
        let Some(spec) = &self.node else {
            return Ok((self.node_args(node), Vec::new()));
        };
        let slots: Vec<Slot<'_>> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(index, n)| Slot {
                name: &n.name,
                index,
                ip: n.ip,
            })
            .collect();
        let me = self
            .nodes
            .iter()
            .position(|n| n.name == node.name)
            .unwrap_or(0);
        let near: Vec<usize> = self
            .neighbours_of(&node.name)
            .iter()
            .filter_map(|m| self.nodes.iter().position(|n| &n.name == m))
            .collect();
        spec.resolve(&slots, me, &near)
    }

    /// The nodes that vote.
    pub fn validators(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.validator)
            .map(|n| n.name.clone())
            .collect()
    }

    /// Each node's healed state: the delays of its latency zone, if any.
    pub fn baseline(&self) -> BTreeMap<String, FaultState> {
        self.zones.baseline(&self.roster())
    }
}

pub fn container_name(testnet: &str, node: &str) -> String {
    format!("{testnet}-{node}")
}

pub fn network_name(testnet: &str) -> String {
    format!("testnet-{testnet}")
}

fn parse_cidr(s: &str) -> Option<(u32, u32)> {
    let (ip, len) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - len.min(32))
    };
    Some((u32::from(ip) & mask, mask))
}

/// The subnets this host routes to directly (`/proc/net/route`, default route
/// left out): another Docker daemon's bridges, VPNs, the LAN. A testnet
/// network on one of them would break routing for both.
pub fn host_routes() -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    parse_routes(&table)
}

fn parse_routes(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Addresses in network byte order, printed as native-endian words.
            let addr = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::to_ne_bytes);
            let (dest, mask) = (addr(f.get(1)?)?, addr(f.get(7)?)?);
            let bits: u32 = mask.iter().map(|b| b.count_ones()).sum();
            (bits != 0).then(|| format!("{}/{bits}", Ipv4Addr::from(dest)))
        })
        .collect()
}

/// Addresses at the top of a testnet's subnet kept for monitoring.
pub const MONITOR_BLOCK: u32 = 16;
/// Addresses at the bottom before the first node (network, gateway, spare).
pub const FIRST_NODE: u32 = 10;

/// The prefix length of a subnet that holds `nodes` nodes plus the gateway
/// and monitoring: a /24 up to 230 nodes, larger beyond.
pub fn prefix_for(nodes: usize) -> u32 {
    let need = nodes as u64 + u64::from(FIRST_NODE + MONITOR_BLOCK);
    let bits = need.next_power_of_two().trailing_zeros().max(8);
    32 - bits.min(16)
}

/// The address of node `index` in `subnet`.
pub fn node_ip(subnet: &str, index: usize) -> Option<Ipv4Addr> {
    let (base, _) = parse_cidr(subnet)?;
    Some(Ipv4Addr::from(base + FIRST_NODE + index as u32))
}

/// The first subnet of 10.77.0.0/16 with room for `nodes` nodes that overlaps
/// no existing network.
pub fn free_subnet(existing: &[String], nodes: usize) -> Option<String> {
    let taken: Vec<(u32, u32)> = existing.iter().filter_map(|s| parse_cidr(s)).collect();
    let len = prefix_for(nodes);
    let step = 1u32 << (32 - len);
    let pool = u32::from(Ipv4Addr::new(10, 77, 0, 0));
    (0..(1u32 << 16) / step).find_map(|k| {
        let cidr = format!("{}/{len}", Ipv4Addr::from(pool + k * step));
        let (net, mask) = parse_cidr(&cidr)?;
        let overlaps = taken
            .iter()
            .any(|(t, tm)| (net & tm) == *t || (*t & mask) == net);
        (!overlaps).then_some(cidr)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_routes_are_read_without_the_default_route() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            br-1\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let routes = parse_routes(table);
        assert_eq!(routes, ["10.77.0.0/24", "172.17.0.0/16"]);
        assert_eq!(
            free_subnet(&routes, 4),
            Some("10.77.1.0/24".to_owned()),
            "a subnet another daemon routes is not free"
        );
    }

    #[test]
    fn subnets_are_sized_for_the_nodes() {
        assert_eq!(prefix_for(4), 24);
        assert_eq!(prefix_for(230), 24);
        assert_eq!(prefix_for(231), 23);
        assert_eq!(prefix_for(990), 22);
        assert_eq!(prefix_for(1000), 21);
        let taken = ["10.77.0.0/24".to_owned(), "10.77.3.0/24".to_owned()];
        assert_eq!(free_subnet(&taken, 100).unwrap(), "10.77.1.0/24");
        assert_eq!(
            free_subnet(&taken, 300).unwrap(),
            "10.77.4.0/23",
            "aligned, past .3"
        );
        assert!(free_subnet(&["10.0.0.0/8".to_owned()], 4).is_none());
        let plan = |subnet: &str| Plan {
            name: "t".into(),
            network: "n".into(),
            subnet: subnet.into(),
            image: "i".into(),
            nodes: vec![],
            zones: Zones::default(),
            sparse: false,
            holder: false,
            node_image: None,
            node: None,
            hosts: Vec::new(),
            finality_window: None,
            checkpoint_every: None,
        };
        assert_eq!(
            plan("10.77.5.0/24").monitor_ip(0).to_string(),
            "10.77.5.240"
        );
        assert_eq!(
            plan("10.77.4.0/23").monitor_ip(1).to_string(),
            "10.77.5.241"
        );
        assert_eq!(
            node_ip("10.77.4.0/23", 300).unwrap().to_string(),
            "10.77.5.54"
        );
    }
}
