//! Can any validator gather a quorum under a cut? Computed from the real drop
//! sets, so every shape (groups, halves, bridge, majorities ring, one-way cuts)
//! is judged the same way.
//!
//! A validator forms a certificate from the votes it receives: it needs to hear
//! more than 2/3 of the validators (itself included). Certificates then spread
//! to everyone who can hear it, so finality is possible as soon as one
//! validator hears a quorum.

use std::collections::{BTreeMap, BTreeSet};
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

/// Who hears whom under these per-node states, among validators that are up.
struct Hearing<'a> {
    nodes: &'a [(String, Ipv4Addr)],
    up: Vec<bool>,
    states: &'a BTreeMap<String, FaultState>,
}

impl Hearing<'_> {
    /// `i` hears `j`: both up, and neither `j` drops packets to `i` nor `i`
    /// drops packets from `j`.
    fn hears(&self, i: usize, j: usize) -> bool {
        let none = FaultState::default();
        let state = |k: usize| self.states.get(&self.nodes[k].0).unwrap_or(&none);
        self.up[i]
            && self.up[j]
            && (i == j
                || !(state(j).drop_to.contains(&self.nodes[i].1)
                    || state(i).drop_from.contains(&self.nodes[j].1)))
    }

    /// Validators that hear more than 2/3 of the validators (themselves included).
    fn certifiers(&self) -> Vec<usize> {
        let n = self.nodes.len();
        (0..n)
            .filter(|&i| is_quorum((0..n).filter(|&j| self.hears(i, j)).count(), n))
            .collect()
    }
}

/// Under these per-node states, with the validators in `down` not running,
/// does some validator hear more than 2/3 of all validators?
pub fn quorum_possible(
    nodes: &[(String, Ipv4Addr)],
    down: &BTreeSet<String>,
    states: &BTreeMap<String, FaultState>,
) -> bool {
    !hearing(nodes, down, states).certifiers().is_empty()
}

/// The running validators that hear, directly or through others, no validator
/// that can gather a quorum: they cannot finalize until this changes. Every
/// running validator when there is no quorum anywhere.
pub fn cut_off(
    nodes: &[(String, Ipv4Addr)],
    down: &BTreeSet<String>,
    states: &BTreeMap<String, FaultState>,
) -> Vec<String> {
    let h = hearing(nodes, down, states);
    let mut reached = vec![false; nodes.len()];
    let mut frontier = h.certifiers();
    for &c in &frontier {
        reached[c] = true;
    }
    // Certificates spread to whoever hears a node that has them.
    while let Some(from) = frontier.pop() {
        let newly: Vec<usize> = (0..nodes.len())
            .filter(|&to| !reached[to] && h.hears(to, from))
            .collect();
        for to in newly {
            reached[to] = true;
            frontier.push(to);
        }
    }
    (0..nodes.len())
        .filter(|&i| h.up[i] && !reached[i])
        .map(|i| nodes[i].0.clone())
        .collect()
}

fn hearing<'a>(
    nodes: &'a [(String, Ipv4Addr)],
    down: &BTreeSet<String>,
    states: &'a BTreeMap<String, FaultState>,
) -> Hearing<'a> {
    Hearing {
        nodes,
        up: nodes.iter().map(|(n, _)| !down.contains(n)).collect(),
        states,
    }
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

    fn none() -> BTreeSet<String> {
        BTreeSet::new()
    }

    #[test]
    fn down_validators_count_against_the_quorum_and_overlaps_add_up() {
        let nodes = roster(4);
        let down = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert!(quorum_possible(&nodes, &down(&["n3"]), &BTreeMap::new()));
        assert!(!quorum_possible(
            &nodes,
            &down(&["n2", "n3"]),
            &BTreeMap::new()
        ));
        // n3 isolated and n2 down: n0 and n1 hear each other only.
        let away: BTreeSet<Ipv4Addr> = nodes[..3].iter().map(|n| n.1).collect();
        let mut states = BTreeMap::new();
        states.insert(
            "n3".to_owned(),
            FaultState {
                drop_to: away.clone(),
                drop_from: away,
                ..FaultState::default()
            },
        );
        assert!(
            quorum_possible(&nodes, &none(), &states),
            "isolating n3 alone keeps one"
        );
        assert!(quorum_possible(&nodes, &down(&["n2"]), &BTreeMap::new()));
        assert!(
            !quorum_possible(&nodes, &down(&["n2"]), &states),
            "neither fault alone"
        );
    }

    #[test]
    fn cut_off_nodes_hear_no_certifier_even_through_others() {
        let nodes = roster(5);
        let ips: Vec<Ipv4Addr> = nodes.iter().map(|n| n.1).collect();
        let isolate = by_name(&nodes, shape(Shape::Isolate(4), &ips));
        assert_eq!(cut_off(&nodes, &none(), &isolate), ["n4"]);
        // Bridge: the middle certifies, the halves hear it: nobody is cut off.
        let bridge = by_name(&nodes, shape(Shape::Bridge, &ips));
        assert!(cut_off(&nodes, &none(), &bridge).is_empty());
        // No quorum anywhere: everyone running is cut off.
        let halves = by_name(&nodes, shape(Shape::Halves, &ips));
        let down: BTreeSet<String> = ["n0".to_owned()].into();
        assert_eq!(cut_off(&nodes, &down, &halves), ["n1", "n2", "n3", "n4"]);
        assert!(cut_off(&nodes, &none(), &BTreeMap::new()).is_empty());
    }

    #[test]
    fn quorum_needs_more_than_two_thirds() {
        assert!(!has_quorum([2, 2], 4));
        assert!(has_quorum([3, 1], 4));
        assert!(!has_quorum([3, 2], 5));
        assert!(has_quorum([4, 1], 5));
        // Exactly 2/3 is not more than 2/3.
        assert!(!has_quorum([2, 1], 3));
        assert!(!has_quorum([4, 2], 6));
        assert!(has_quorum([5, 1], 6));
        assert!(!is_quorum(2, 3) && is_quorum(3, 3));
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
        assert!(!quorum_possible(&nodes, &none(), &split));
        let isolate = by_name(&nodes, partition(&groups(&[&[0, 1, 2], &[3]]), &ips));
        assert!(quorum_possible(&nodes, &none(), &isolate));
        assert!(quorum_possible(&nodes, &none(), &BTreeMap::new()), "no cut");
        // A bridge node hears both halves: it can certify.
        let five = roster(5);
        let ips5: Vec<Ipv4Addr> = five.iter().map(|n| n.1).collect();
        assert!(quorum_possible(
            &five,
            &none(),
            &by_name(&five, shape(Shape::Bridge, &ips5))
        ));
        // In the majorities ring of 5 everyone hears 3: no quorum (4 needed).
        assert!(!quorum_possible(
            &five,
            &none(),
            &by_name(&five, shape(Shape::MajoritiesRing, &ips5))
        ));
        assert!(!quorum_possible(
            &five,
            &none(),
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
        assert!(quorum_possible(&nodes, &none(), &states));
        // Now n0 and n1 do not hear n2 and n3 either: everyone hears two.
        for deaf in ["n0", "n1"] {
            let s = FaultState {
                drop_from: ips(&[2, 3]),
                ..FaultState::default()
            };
            states.insert(deaf.to_owned(), s);
        }
        assert!(!quorum_possible(&nodes, &none(), &states));
        // The same from the senders' side: n2 drops to n0 and n1.
        let mut states = BTreeMap::new();
        let s = FaultState {
            drop_to: ips(&[0, 1]),
            ..FaultState::default()
        };
        states.insert("n2".to_owned(), s);
        assert!(
            quorum_possible(&nodes, &none(), &states),
            "n2 and n3 still hear all"
        );
    }
}
