//! Can any validator gather a quorum under a cut? Computed from the real drop
//! sets, so every shape (groups, halves, bridge, majorities ring, one-way cuts)
//! is judged the same way.
//!
//! A validator forms a certificate from the votes it receives: it needs to hear
//! more than 2/3 of the validators (itself included). Certificates then spread
//! to everyone who can hear it, so finality is possible as soon as one
//! validator hears a quorum.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use testnet_node::faults::FaultState;

/// More than 2/3 of `n`.
pub fn is_quorum(count: usize, n: usize) -> bool {
    3 * count > 2 * n
}

/// Does a partition into groups of these sizes (nodes in none isolated) leave
/// some group with a quorum (> 2/3 of `n` validators)?
pub fn has_quorum(group_sizes: impl IntoIterator<Item = usize>, n: usize) -> bool {
    let largest = group_sizes.into_iter().max().unwrap_or(1).max(1);
    is_quorum(largest, n)
}

/// Under these per-node states (`nodes`: every validator with its IP), does
/// some validator hear more than 2/3 of the validators? `j` is heard by `i`
/// unless `j` drops packets to `i` or `i` drops packets from `j`.
pub fn quorum_possible(
    nodes: &[(String, Ipv4Addr)],
    states: &BTreeMap<String, FaultState>,
) -> bool {
    let none = FaultState::default();
    let state = |name: &String| states.get(name).unwrap_or(&none);
    nodes.iter().any(|(me, my_ip)| {
        let heard = nodes
            .iter()
            .filter(|(other, ip)| {
                other == me
                    || !(state(other).drop_to.contains(my_ip) || state(me).drop_from.contains(ip))
            })
            .count();
        is_quorum(heard, nodes.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use testnet_node::faults::{partition, shape, Shape};

    fn roster(n: u8) -> Vec<(String, Ipv4Addr)> {
        (0..n)
            .map(|i| (format!("n{i}"), Ipv4Addr::new(10, 77, 0, 10 + i)))
            .collect()
    }

    fn by_name(
        nodes: &[(String, Ipv4Addr)],
        cut: Vec<(Ipv4Addr, FaultState)>,
    ) -> BTreeMap<String, FaultState> {
        cut.into_iter()
            .map(|(ip, s)| (nodes.iter().find(|(_, i)| *i == ip).unwrap().0.clone(), s))
            .collect()
    }

    #[test]
    fn quorum_needs_more_than_two_thirds() {
        assert!(!has_quorum([2, 2], 4));
        assert!(has_quorum([3, 1], 4));
        assert!(!has_quorum([3, 2], 5));
        assert!(has_quorum([4, 1], 5));
    }

    #[test]
    fn cuts_are_judged_by_who_hears_whom() {
        let nodes = roster(4);
        let ips: Vec<Ipv4Addr> = nodes.iter().map(|n| n.1).collect();
        let groups = |g: &[&[usize]]| -> Vec<Vec<Ipv4Addr>> {
            g.iter()
                .map(|g| g.iter().map(|i| ips[*i]).collect())
                .collect()
        };
        let split = by_name(&nodes, partition(&groups(&[&[0, 1], &[2, 3]]), &ips));
        assert!(!quorum_possible(&nodes, &split));
        let isolate = by_name(&nodes, partition(&groups(&[&[0, 1, 2], &[3]]), &ips));
        assert!(quorum_possible(&nodes, &isolate));
        assert!(quorum_possible(&nodes, &BTreeMap::new()), "no cut");
        // A bridge node hears both halves: it can certify.
        let five = roster(5);
        let ips5: Vec<Ipv4Addr> = five.iter().map(|n| n.1).collect();
        assert!(quorum_possible(
            &five,
            &by_name(&five, shape(Shape::Bridge, &ips5))
        ));
        // In the majorities ring of 5 everyone hears 3: no quorum (4 needed).
        assert!(!quorum_possible(
            &five,
            &by_name(&five, shape(Shape::MajoritiesRing, &ips5))
        ));
        assert!(!quorum_possible(
            &five,
            &by_name(&five, shape(Shape::Halves, &ips5))
        ));
    }

    #[test]
    fn a_one_way_cut_counts_in_its_direction_only() {
        let nodes = roster(4);
        let ips = |v: &[usize]| v.iter().map(|i| nodes[*i].1).collect();
        // n2 and n3 do not hear n0 and n1, but n0 hears everyone: n0 certifies.
        let mut states = BTreeMap::new();
        for deaf in ["n2", "n3"] {
            let s = FaultState {
                drop_from: ips(&[0, 1]),
                ..FaultState::default()
            };
            states.insert(deaf.to_owned(), s);
        }
        assert!(quorum_possible(&nodes, &states));
        // Now n0 and n1 do not hear n2 and n3 either: everyone hears two.
        for deaf in ["n0", "n1"] {
            let s = FaultState {
                drop_from: ips(&[2, 3]),
                ..FaultState::default()
            };
            states.insert(deaf.to_owned(), s);
        }
        assert!(!quorum_possible(&nodes, &states));
        // The same from the senders' side: n2 drops to n0 and n1.
        let mut states = BTreeMap::new();
        let s = FaultState {
            drop_to: ips(&[0, 1]),
            ..FaultState::default()
        };
        states.insert("n2".to_owned(), s);
        assert!(quorum_possible(&nodes, &states), "n2 and n3 still hear all");
    }
}
