//! What a testnet is made of, decided before anything is created: its network,
//! subnet, image, and each node's container name, static IP and seeded bugs.
//! Saved as `plan.json` in the testnet's state dir and
//! read by faults (IPs and zones are fixed here, so faults plan without asking
//! the engine), monitoring, and `export compose`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use testnet_node::faults::FaultState;
use testnet_node::SimulatedBug;

use crate::zones::Zones;

pub const P2P_PORT: u16 = 7000;
pub const HTTP_PORT: u16 = 8000;
/// The in-container agent's control API.
pub const AGENT_PORT: u16 = 9000;
/// Where genesis and the node's key are placed in the container.
pub const CONFIG_DIR: &str = "/etc/testnet";

/// One node of a plan.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodePlan {
    pub name: String,
    pub container: String,
    pub ip: Ipv4Addr,
    pub bugs: Vec<SimulatedBug>,
    /// Host ports on 127.0.0.1 of the node's HTTP API and agent, fixed for the
    /// testnet's life (0 in plans of older versions: the engine picked).
    #[serde(default)]
    pub http_port: u16,
    #[serde(default)]
    pub agent_port: u16,
}

impl NodePlan {
    /// (container port, host port) pairs to publish.
    pub fn pins(&self) -> Vec<(u16, u16)> {
        vec![(HTTP_PORT, self.http_port), (AGENT_PORT, self.agent_port)]
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
}

impl Plan {
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

    /// The address `.last` in the testnet's /24 (monitoring lives at .240 up).
    pub fn host(&self, last: u8) -> Ipv4Addr {
        let base: Ipv4Addr = self
            .subnet
            .split('/')
            .next()
            .and_then(|ip| ip.parse().ok())
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        let [a, b, c, _] = base.octets();
        Ipv4Addr::new(a, b, c, last)
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

/// The first 10.77.X.0/24 that overlaps no existing network.
pub fn free_subnet(existing: &[String]) -> Option<(String, [u8; 3])> {
    let taken: Vec<(u32, u32)> = existing.iter().filter_map(|s| parse_cidr(s)).collect();
    (0u8..=255).find_map(|x| {
        let (net, mask) = parse_cidr(&format!("10.77.{x}.0/24"))?;
        let overlaps = taken
            .iter()
            .any(|(t, tm)| (net & tm) == *t || (*t & mask) == net);
        (!overlaps).then(|| (format!("10.77.{x}.0/24"), [10, 77, x]))
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
            free_subnet(&routes).map(|s| s.0),
            Some("10.77.1.0/24".to_owned()),
            "a subnet another daemon routes is not free"
        );
    }
}
