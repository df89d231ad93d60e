//! Can any node gather a quorum under a cut? Computed from the real drop
//! sets, so every shape (groups, halves, bridge, majorities ring, one-way cuts)
//! is judged the same way, on any topology.
//!
//! A node forms a certificate from the votes it receives: it needs to hear
//! more than 2/3 of the validators. In a full mesh it hears a validator only
//! directly (nothing is relayed); in a sparse topology votes are relayed, so it
//! hears a validator through any path of running nodes over links that are
//! not cut. Certificates then spread to everyone who can hear a node that has
//! them (relay and catch-up), so finality is possible as soon as one node
//! hears a quorum.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use testnet_node::faults::FaultState;

use crate::plan::Plan;

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

/// The nodes of a testnet as quorum sees them: names and IPs, who votes, and
/// who links to whom.
#[derive(Debug, Clone)]
pub struct Members {
    pub roster: Vec<(String, Ipv4Addr)>,
    voters: Vec<bool>,
    /// Each node's neighbours by index; `None`: a full mesh without relay.
    links: Option<Vec<BTreeSet<usize>>>,
}

impl Members {
    /// Every node a validator, in a full mesh.
    pub fn mesh(roster: &[(String, Ipv4Addr)]) -> Members {
        Members {
            roster: roster.to_vec(),
            voters: vec![true; roster.len()],
            links: None,
        }
    }

    /// The plan's nodes, validators and topology.
    pub fn of(plan: &Plan) -> Members {
        let roster = plan.roster();
        let index = |name: &str| roster.iter().position(|(n, _)| n == name);
        let links = plan.sparse.then(|| {
            roster
                .iter()
                .map(|(n, _)| {
                    plan.neighbours_of(n)
                        .iter()
                        .filter_map(|m| index(m))
                        .collect()
                })
                .collect()
        });
        Members {
            voters: plan.nodes.iter().map(|n| n.validator).collect(),
            roster,
            links,
        }
    }

    /// Sets the topology (`adj[i]`: the neighbours of node i) and the voters.
    pub fn sparse(roster: &[(String, Ipv4Addr)], voters: usize, adj: Vec<BTreeSet<usize>>) -> Self {
        Members {
            roster: roster.to_vec(),
            voters: (0..roster.len()).map(|i| i < voters).collect(),
            links: Some(adj),
        }
    }

    fn validators(&self) -> usize {
        self.voters.iter().filter(|v| **v).count()
    }
}

/// Who hears whom under these per-node states, among nodes that are up.
struct Hearing<'a> {
    m: &'a Members,
    up: Vec<bool>,
    states: &'a BTreeMap<String, FaultState>,
}

impl Hearing<'_> {
    /// `j`'s packets reach `i` over a link: both up, linked, and neither `j`
    /// drops packets to `i` nor `i` drops packets from `j`.
    fn direct(&self, i: usize, j: usize) -> bool {
        let none = FaultState::default();
        let nodes = &self.m.roster;
        let state = |k: usize| self.states.get(&nodes[k].0).unwrap_or(&none);
        let linked = self.m.links.as_ref().is_none_or(|l| l[i].contains(&j));
        self.up[i]
            && self.up[j]
            && (i == j
                || (linked
                    && !(state(j).drop_to.contains(&nodes[i].1)
                        || state(i).drop_from.contains(&nodes[j].1))))
    }

    /// The nodes that hear `j`'s votes: directly in a mesh, through relays in
    /// a sparse topology.
    fn reached_by(&self, j: usize) -> Vec<bool> {
        let n = self.m.roster.len();
        let mut reached = vec![false; n];
        if !self.up[j] {
            return reached;
        }
        reached[j] = true;
        if self.m.links.is_none() {
            for (i, r) in reached.iter_mut().enumerate() {
                *r |= self.direct(i, j);
            }
            return reached;
        }
        self.spread(&mut reached, vec![j]);
        reached
    }

    /// Marks everyone who hears, link by link, a node of `frontier`.
    fn spread(&self, reached: &mut [bool], mut frontier: Vec<usize>) {
        while let Some(from) = frontier.pop() {
            for (to, r) in reached.iter_mut().enumerate() {
                if !*r && self.direct(to, from) {
                    *r = true;
                    frontier.push(to);
                }
            }
        }
    }

    /// Nodes that hear more than 2/3 of the validators (themselves included).
    fn certifiers(&self) -> Vec<usize> {
        let n = self.m.roster.len();
        let mut heard = vec![0; n];
        for j in (0..n).filter(|j| self.m.voters[*j]) {
            for (i, r) in self.reached_by(j).into_iter().enumerate() {
                heard[i] += usize::from(r);
            }
        }
        let v = self.m.validators();
        (0..n)
            .filter(|&i| self.up[i] && is_quorum(heard[i], v))
            .collect()
    }
}

/// Under these per-node states, with the nodes in `down` not running, does
/// some node hear more than 2/3 of all validators?
pub fn quorum_possible(
    m: &Members,
    down: &BTreeSet<String>,
    states: &BTreeMap<String, FaultState>,
) -> bool {
    !hearing(m, down, states).certifiers().is_empty()
}

/// The running nodes that hear, directly or through others, no node that can
/// gather a quorum: they cannot finalize until this changes. Every running
/// node when there is no quorum anywhere.
pub fn cut_off(
    m: &Members,
    down: &BTreeSet<String>,
    states: &BTreeMap<String, FaultState>,
) -> Vec<String> {
    let h = hearing(m, down, states);
    let mut reached = vec![false; m.roster.len()];
    let frontier = h.certifiers();
    for &c in &frontier {
        reached[c] = true;
    }
    // Certificates spread to whoever hears a node that has them.
    h.spread(&mut reached, frontier);
    (0..m.roster.len())
        .filter(|&i| h.up[i] && !reached[i])
        .map(|i| m.roster[i].0.clone())
        .collect()
}

fn hearing<'a>(
    m: &'a Members,
    down: &BTreeSet<String>,
    states: &'a BTreeMap<String, FaultState>,
) -> Hearing<'a> {
    Hearing {
        m,
        up: m.roster.iter().map(|(n, _)| !down.contains(n)).collect(),
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
        assert!(quorum_possible(
            &Members::mesh(&nodes),
            &down(&["n3"]),
            &BTreeMap::new()
        ));
        assert!(!quorum_possible(
            &Members::mesh(&nodes),
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
            quorum_possible(&Members::mesh(&nodes), &none(), &states),
            "isolating n3 alone keeps one"
        );
        assert!(quorum_possible(
            &Members::mesh(&nodes),
            &down(&["n2"]),
            &BTreeMap::new()
        ));
        assert!(
            !quorum_possible(&Members::mesh(&nodes), &down(&["n2"]), &states),
            "neither fault alone"
        );
    }

    #[test]
    fn cut_off_nodes_hear_no_certifier_even_through_others() {
        let nodes = roster(5);
        let ips: Vec<Ipv4Addr> = nodes.iter().map(|n| n.1).collect();
        let isolate = by_name(&nodes, shape(Shape::Isolate(4), &ips));
        assert_eq!(cut_off(&Members::mesh(&nodes), &none(), &isolate), ["n4"]);
        // Bridge: the middle certifies, the halves hear it: nobody is cut off.
        let bridge = by_name(&nodes, shape(Shape::Bridge, &ips));
        assert!(cut_off(&Members::mesh(&nodes), &none(), &bridge).is_empty());
        // No quorum anywhere: everyone running is cut off.
        let halves = by_name(&nodes, shape(Shape::Halves, &ips));
        let down: BTreeSet<String> = ["n0".to_owned()].into();
        assert_eq!(
            cut_off(&Members::mesh(&nodes), &down, &halves),
            ["n1", "n2", "n3", "n4"]
        );
        assert!(cut_off(&Members::mesh(&nodes), &none(), &BTreeMap::new()).is_empty());
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
        assert!(!quorum_possible(&Members::mesh(&nodes), &none(), &split));
        let isolate = by_name(&nodes, partition(&groups(&[&[0, 1, 2], &[3]]), &ips));
        assert!(quorum_possible(&Members::mesh(&nodes), &none(), &isolate));
        assert!(
            quorum_possible(&Members::mesh(&nodes), &none(), &BTreeMap::new()),
            "no cut"
        );
        // A bridge node hears both halves: it can certify.
        let five = roster(5);
        let ips5: Vec<Ipv4Addr> = five.iter().map(|n| n.1).collect();
        assert!(quorum_possible(
            &Members::mesh(&five),
            &none(),
            &by_name(&five, shape(Shape::Bridge, &ips5))
        ));
        // In the majorities ring of 5 everyone hears 3: no quorum (4 needed).
        assert!(!quorum_possible(
            &Members::mesh(&five),
            &none(),
            &by_name(&five, shape(Shape::MajoritiesRing, &ips5))
        ));
        assert!(!quorum_possible(
            &Members::mesh(&five),
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
        assert!(quorum_possible(&Members::mesh(&nodes), &none(), &states));
        // Now n0 and n1 do not hear n2 and n3 either: everyone hears two.
        for deaf in ["n0", "n1"] {
            let s = FaultState {
                drop_from: ips(&[2, 3]),
                ..FaultState::default()
            };
            states.insert(deaf.to_owned(), s);
        }
        assert!(!quorum_possible(&Members::mesh(&nodes), &none(), &states));
        // The same from the senders' side: n2 drops to n0 and n1.
        let mut states = BTreeMap::new();
        let s = FaultState {
            drop_to: ips(&[0, 1]),
            ..FaultState::default()
        };
        states.insert("n2".to_owned(), s);
        assert!(
            quorum_possible(&Members::mesh(&nodes), &none(), &states),
            "n2 and n3 still hear all"
        );
    }

    /// A line n0 - n1 - n2 - n3 - n4 with validators n0..n3 and full node n4:
    /// votes travel through relays, and a cut link cuts off everything behind it.
    #[test]
    fn in_a_sparse_topology_votes_and_certificates_go_through_relays() {
        let nodes = roster(5);
        let adj: Vec<BTreeSet<usize>> = (0..5)
            .map(|i: usize| {
                [i.wrapping_sub(1), i + 1]
                    .into_iter()
                    .filter(|j| *j < 5)
                    .collect()
            })
            .collect();
        let line = Members::sparse(&nodes, 4, adj);
        assert!(quorum_possible(&line, &none(), &BTreeMap::new()));
        // n1 down: n0 hears nobody, n2..n4 hear n2 and n3 only: 2 of 4.
        let down: BTreeSet<String> = ["n1".to_owned()].into();
        assert!(!quorum_possible(&line, &down, &BTreeMap::new()));
        // Cutting the n3 - n4 link leaves the full node n4 cut off only.
        let mut cut = BTreeMap::new();
        let n3: BTreeSet<Ipv4Addr> = [nodes[3].1].into();
        cut.insert(
            "n4".to_owned(),
            FaultState {
                drop_to: n3.clone(),
                drop_from: n3,
                ..FaultState::default()
            },
        );
        assert!(quorum_possible(&line, &none(), &cut));
        assert_eq!(cut_off(&line, &none(), &cut), ["n4"]);
        // Pausing n2 in the middle: no side has a quorum; the full node is cut off too.
        let down: BTreeSet<String> = ["n2".to_owned()].into();
        assert_eq!(
            cut_off(&line, &down, &BTreeMap::new()),
            ["n0", "n1", "n3", "n4"]
        );
    }
}
