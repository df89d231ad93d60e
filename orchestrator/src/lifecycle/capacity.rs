//! What a testnet needs of the host, checked before anything is created: the
//! kernel's neighbour table (shared by every network namespace) and memory.
//! Each refusal says what is needed, what there is, and the fix.

use super::UpError;

/// Memory a node container costs the host (node, agent, runtime shim),
/// rounded up from measurements of idle and loaded nodes.
pub const MIB_PER_NODE: u64 = 24;

/// What a testnet of `nodes` containers linked by `edges` needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub nodes: usize,
    pub edges: usize,
    /// Prometheus and Grafana too.
    pub monitor: bool,
}

impl Need {
    /// Neighbour (ARP) entries: two per link (each end knows the other), two
    /// per node (it knows the gateway, the host knows it), Prometheus knowing
    /// every node and back, and some slack for the rest of the host.
    pub fn neighbour_entries(&self) -> u64 {
        let (n, e) = (self.nodes as u64, self.edges as u64);
        let monitor = if self.monitor { 2 * n + 8 } else { 0 };
        2 * e + 2 * n + monitor + 64
    }

    pub fn memory_mib(&self) -> u64 {
        self.nodes as u64 * MIB_PER_NODE
    }
}

/// The host's neighbour table limit, where the engine is local.
pub fn read_gc_thresh3() -> Option<u64> {
    read_number("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
}

/// Neighbour entries the kernel holds now (every namespace: other testnets,
/// the host), from the first column of `/proc/net/stat/arp_cache` (hex).
pub fn read_neighbour_entries() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/net/stat/arp_cache").ok()?;
    let first = stat.lines().nth(1)?.split_whitespace().next()?;
    u64::from_str_radix(first, 16).ok()
}

/// The memory the host can still give, in MiB.
pub fn read_available_mib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Past `gc_thresh3` the kernel drops neighbour entries ("neighbor table
/// overflow" in dmesg) and links never come up. `in_use`: the entries held
/// already (other testnets on this host), which the new ones add to.
pub fn neighbour_table_problem(
    need: Need,
    gc_thresh3: Option<u64>,
    in_use: u64,
) -> Option<UpError> {
    let limit = gc_thresh3?;
    let entries = need.neighbour_entries();
    (entries + in_use > limit).then(|| {
        let t3 = ((entries + in_use) * 4).next_power_of_two();
        UpError::NeighbourTable {
            nodes: need.nodes,
            edges: need.edges,
            need: entries,
            in_use,
            limit,
            t1: t3 / 4,
            t2: t3 / 2,
            t3,
        }
    })
}

/// A testnet that would not fit in the memory the host has left.
pub fn memory_problem(need: Need, available_mib: Option<u64>) -> Option<UpError> {
    let available = available_mib?;
    let wanted = need.memory_mib();
    (wanted > available).then_some(UpError::Memory {
        nodes: need.nodes,
        need: wanted,
        available,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mesh(n: usize) -> Need {
        Need {
            nodes: n,
            edges: n * (n - 1) / 2,
            monitor: false,
        }
    }

    #[test]
    fn a_mesh_too_big_for_the_neighbour_table_is_refused_with_the_fix() {
        // 30 nodes fit the default 1024 entries, 32 do not (measured: 32 containers
        // end with "neighbor table overflow" and nodes missing peers).
        assert!(neighbour_table_problem(mesh(30), Some(1024), 0).is_none());
        let e = neighbour_table_problem(mesh(32), Some(1024), 0)
            .unwrap()
            .to_string();
        assert!(
            e.contains("gc_thresh3 = 1024") && e.contains("sudo sysctl -w"),
            "{e}"
        );
        assert!(e.contains("32 containers with 496 links"), "{e}");
        assert!(neighbour_table_problem(mesh(64), Some(16384), 0).is_none());
        assert!(
            neighbour_table_problem(mesh(64), None, 0).is_none(),
            "no local kernel: no check"
        );
    }

    #[test]
    fn sparse_graphs_need_entries_by_their_links_not_their_nodes() {
        let sparse = |nodes, monitor| Need {
            nodes,
            edges: 2 * nodes,
            monitor,
        };
        // 100 nodes of degree 4: 200 links, far below a mesh of 32.
        assert_eq!(sparse(100, false).neighbour_entries(), 664);
        assert!(neighbour_table_problem(sparse(100, false), Some(1024), 0).is_none());
        assert!(neighbour_table_problem(sparse(100, true), Some(1024), 0).is_none());
        let e = neighbour_table_problem(sparse(256, false), Some(1024), 0).unwrap();
        assert!(e.to_string().contains("gc_thresh3=8192"), "{e}");
        // Two of them on one host: the second one adds to what the first holds.
        let e = neighbour_table_problem(sparse(100, false), Some(1024), 664).unwrap();
        assert!(e.to_string().contains("664 already held"), "{e}");
    }

    #[test]
    fn memory_is_checked_against_what_the_host_has_left() {
        assert!(memory_problem(mesh(100), Some(8192)).is_none());
        let e = memory_problem(mesh(1000), Some(8192)).unwrap().to_string();
        assert!(
            e.contains("1000 nodes need about 24000 MiB") && e.contains("8192 MiB"),
            "{e}"
        );
        assert!(memory_problem(mesh(1000), None).is_none());
    }
}
