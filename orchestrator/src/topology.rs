//! Topologies: which nodes of a testnet link to which. The testnet file names
//! a shape (`mesh`, `ring`, `star`, `line`, `{ random: { degree: 4 } }` or
//! `{ links: [[n0, n1], ...] }`); [`Graph::build`] turns it into each node's
//! neighbour set, which `up` hands to the nodes and the checkers expect.
//!
//! `random` is a seeded random graph where every node has the degree asked
//! (one node one more when nodes × degree is odd), built by pairing edge ends
//! at random and starting over when the pairing gets stuck or the graph is not
//! connected. Same seed, same graph.

use std::collections::{BTreeSet, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `topology:` of a testnet file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Topology {
    /// Every node links to every other (the default).
    #[default]
    Mesh,
    /// n0 - n1 - ... - n{N-1} - n0.
    Ring,
    /// n0 in the middle, linked to every other node.
    Star,
    /// n0 - n1 - ... - n{N-1}.
    Line,
    /// A connected random graph where each node has `degree` links; `seed`
    /// (else the testnet's seed) fixes it.
    Random {
        degree: usize,
        #[serde(default)]
        seed: Option<String>,
    },
    /// Exactly these links (undirected); the graph must be connected.
    Links(Vec<(String, String)>),
}

impl Topology {
    pub fn is_mesh(&self) -> bool {
        matches!(self, Topology::Mesh)
    }

    /// A short description for progress lines and reports.
    pub fn describe(&self) -> String {
        match self {
            Topology::Mesh => "full mesh".into(),
            Topology::Ring => "ring".into(),
            Topology::Star => "star".into(),
            Topology::Line => "line".into(),
            Topology::Random { degree, .. } => format!("random, degree {degree}"),
            Topology::Links(l) => format!("{} explicit links", l.len()),
        }
    }
}

/// An undirected graph over nodes 0..n.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    adj: Vec<BTreeSet<usize>>,
}

impl Graph {
    /// The graph of `topology` over `names` (n0, n1, ... in order), or every
    /// problem with it, each starting with its path in the testnet file.
    pub fn build(topology: &Topology, names: &[String], seed: &str) -> Result<Graph, Vec<String>> {
        let n = names.len();
        let mut g = Graph {
            adj: vec![BTreeSet::new(); n],
        };
        match topology {
            Topology::Mesh => {
                for a in 0..n {
                    for b in a + 1..n {
                        g.link(a, b);
                    }
                }
            }
            Topology::Line | Topology::Ring => {
                for a in 1..n {
                    g.link(a - 1, a);
                }
                if matches!(topology, Topology::Ring) && n > 2 {
                    g.link(n - 1, 0);
                }
            }
            Topology::Star => (1..n).for_each(|b| g.link(0, b)),
            Topology::Random { degree, seed: own } => {
                let seed = own.as_deref().unwrap_or(seed);
                g = random(n, *degree, seed)?;
            }
            Topology::Links(links) => g = explicit(links, names)?,
        }
        Ok(g)
    }

    fn link(&mut self, a: usize, b: usize) {
        self.adj[a].insert(b);
        self.adj[b].insert(a);
    }

    pub fn len(&self) -> usize {
        self.adj.len()
    }

    pub fn is_empty(&self) -> bool {
        self.adj.is_empty()
    }

    pub fn neighbours(&self, i: usize) -> &BTreeSet<usize> {
        &self.adj[i]
    }

    /// Undirected links.
    pub fn edges(&self) -> usize {
        self.adj.iter().map(BTreeSet::len).sum::<usize>() / 2
    }

    pub fn is_mesh(&self) -> bool {
        let n = self.len();
        self.edges() == n * n.saturating_sub(1) / 2
    }

    /// Hops from the nearest of `sources` to each node (`None`: unreachable).
    pub fn hops_from(&self, sources: &[usize]) -> Vec<Option<usize>> {
        let mut dist = vec![None; self.len()];
        let mut queue = VecDeque::new();
        for &s in sources.iter().filter(|s| **s < self.len()) {
            dist[s] = Some(0);
            queue.push_back(s);
        }
        while let Some(a) = queue.pop_front() {
            let d = dist[a].expect("queued nodes have a distance");
            for &b in &self.adj[a] {
                if dist[b].is_none() {
                    dist[b] = Some(d + 1);
                    queue.push_back(b);
                }
            }
        }
        dist
    }

    /// The nodes that cannot reach node 0 (empty: connected).
    pub fn unreachable(&self) -> Vec<usize> {
        self.hops_from(&[0])
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is_none())
            .map(|(i, _)| i)
            .collect()
    }

    /// The longest shortest path (`None` when not connected).
    pub fn diameter(&self) -> Option<usize> {
        (0..self.len()).try_fold(0, |worst, s| {
            let far = self.hops_from(&[s]).into_iter().max().flatten();
            far.map(|f| worst.max(f))
                .or((self.len() <= 1).then_some(worst))
        })
    }
}

fn explicit(links: &[(String, String)], names: &[String]) -> Result<Graph, Vec<String>> {
    let mut g = Graph {
        adj: vec![BTreeSet::new(); names.len()],
    };
    let mut problems = Vec::new();
    let index = |name: &str| names.iter().position(|n| n == name);
    for (k, (a, b)) in links.iter().enumerate() {
        let at = format!("topology.links[{k}]");
        match (index(a), index(b)) {
            (Some(x), Some(y)) if x == y => {
                problems.push(format!("{at}: {a} is linked to itself"));
            }
            (Some(x), Some(y)) if g.adj[x].contains(&y) => {
                problems.push(format!("{at}: {a} - {b} is listed twice"));
            }
            (Some(x), Some(y)) => g.link(x, y),
            (x, y) => {
                for (name, found) in [(a, x), (b, y)] {
                    if found.is_none() {
                        problems.push(format!(
                            "{at}: no node {name:?} (nodes are n0..n{})",
                            names.len().saturating_sub(1)
                        ));
                    }
                }
            }
        }
    }
    let cut_off = g.unreachable();
    if problems.is_empty() && !cut_off.is_empty() {
        let lost: Vec<&str> = cut_off.iter().map(|i| names[*i].as_str()).collect();
        problems.push(format!(
            "topology.links: the graph is not connected: {} cannot reach n0; add links to them",
            lost.join(", ")
        ));
    }
    if problems.is_empty() {
        Ok(g)
    } else {
        Err(problems)
    }
}

/// A connected random graph of `n` nodes of degree `d` (one node `d + 1`
/// when `n * d` is odd).
fn random(n: usize, d: usize, seed: &str) -> Result<Graph, Vec<String>> {
    let at = "topology.random.degree";
    if n <= 1 {
        return Ok(Graph {
            adj: vec![BTreeSet::new(); n],
        });
    }
    if d == 0 || d >= n {
        return Err(vec![format!(
            "{at}: {d} must be between 1 and {} (nodes - 1) for {n} nodes",
            n - 1
        )]);
    }
    if d == 1 && n > 2 {
        return Err(vec![format!(
            "{at}: 1 cannot connect {n} nodes (pairs only); use 2 or more"
        )]);
    }
    let digest: [u8; 32] = Sha256::digest(format!("testnet-topology-v1\0{seed}")).into();
    let mut rng = StdRng::from_seed(digest);
    for _ in 0..1000 {
        if let Some(g) = pairing(n, d, &mut rng) {
            if g.unreachable().is_empty() {
                return Ok(g);
            }
        }
    }
    Err(vec![format!(
        "{at}: no connected graph of degree {d} over {n} nodes was found; choose another degree"
    )])
}

/// One attempt at pairing the edge ends of every node at random, never
/// linking a node to itself or twice to one node; `None` when stuck.
fn pairing(n: usize, d: usize, rng: &mut StdRng) -> Option<Graph> {
    let mut g = Graph {
        adj: vec![BTreeSet::new(); n],
    };
    let mut ends: Vec<usize> = (0..n).flat_map(|i| std::iter::repeat_n(i, d)).collect();
    if ends.len() % 2 == 1 {
        ends.push(rng.gen_range(0..n));
    }
    let fits = |g: &Graph, a: usize, b: usize| a != b && !g.adj[a].contains(&b);
    while !ends.is_empty() {
        let len = ends.len();
        let mut pick = (0..64)
            .map(|_| (rng.gen_range(0..len), rng.gen_range(0..len)))
            .find(|&(x, y)| fits(&g, ends[x], ends[y]));
        if pick.is_none() {
            // Near the end few pairs fit: look at all of them before giving up.
            pick = (0..len)
                .flat_map(|x| (x + 1..len).map(move |y| (x, y)))
                .find(|&(x, y)| fits(&g, ends[x], ends[y]));
        }
        let (x, y) = pick?;
        g.link(ends[x], ends[y]);
        ends.swap_remove(x.max(y));
        ends.swap_remove(x.min(y));
    }
    Some(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn the_fixed_shapes() {
        let n = names(6);
        let g = |t| Graph::build(&t, &n, "s").unwrap();
        assert_eq!(g(Topology::Mesh).edges(), 15);
        assert!(g(Topology::Mesh).is_mesh());
        let ring = g(Topology::Ring);
        assert_eq!(ring.edges(), 6);
        assert_eq!(ring.neighbours(0), &BTreeSet::from([1, 5]));
        assert_eq!(ring.diameter(), Some(3));
        let line = g(Topology::Line);
        assert_eq!((line.edges(), line.diameter()), (5, Some(5)));
        let star = g(Topology::Star);
        assert_eq!((star.neighbours(0).len(), star.neighbours(3).len()), (5, 1));
        assert_eq!(star.diameter(), Some(2));
        let two = Graph::build(&Topology::Ring, &names(2), "s").unwrap();
        assert_eq!(two.edges(), 1, "a ring of two is one link");
        let one = Graph::build(
            &Topology::Random {
                degree: 4,
                seed: None,
            },
            &names(1),
            "s",
        );
        assert_eq!(one.unwrap().edges(), 0);
    }

    #[test]
    fn random_is_seeded_connected_and_of_the_degree_asked() {
        let t = Topology::Random {
            degree: 4,
            seed: None,
        };
        for n in [5, 16, 100, 256] {
            let a = Graph::build(&t, &names(n), "x").unwrap();
            assert!(a.unreachable().is_empty(), "n={n}");
            assert!((0..n).all(|i| a.neighbours(i).len() == 4), "n={n}");
            assert_eq!(a, Graph::build(&t, &names(n), "x").unwrap(), "same seed");
        }
        let a = Graph::build(&t, &names(100), "x").unwrap();
        assert_ne!(a, Graph::build(&t, &names(100), "y").unwrap());
        let own = Topology::Random {
            degree: 4,
            seed: Some("y".into()),
        };
        assert_eq!(
            Graph::build(&own, &names(100), "x").unwrap(),
            Graph::build(&t, &names(100), "y").unwrap(),
            "the topology's own seed wins"
        );
        let odd = Graph::build(
            &Topology::Random {
                degree: 3,
                seed: None,
            },
            &names(7),
            "x",
        )
        .unwrap();
        let degrees: Vec<usize> = (0..7).map(|i| odd.neighbours(i).len()).collect();
        assert_eq!(degrees.iter().sum::<usize>(), 22, "{degrees:?}");
        assert!(degrees.iter().all(|d| *d == 3 || *d == 4), "{degrees:?}");
    }

    #[test]
    fn bad_degrees_and_links_are_named() {
        let err = |t: Topology, n: usize| Graph::build(&t, &names(n), "s").unwrap_err().join("\n");
        let e = err(
            Topology::Random {
                degree: 9,
                seed: None,
            },
            5,
        );
        assert!(
            e.contains("topology.random.degree: 9 must be between 1 and 4"),
            "{e}"
        );
        let e = err(
            Topology::Random {
                degree: 1,
                seed: None,
            },
            5,
        );
        assert!(e.contains("1 cannot connect 5 nodes"), "{e}");
        let link = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        let e = err(
            Topology::Links(vec![link("n0", "n1"), link("n1", "n1"), link("n2", "n9")]),
            4,
        );
        assert!(
            e.contains("topology.links[1]: n1 is linked to itself"),
            "{e}"
        );
        assert!(e.contains("topology.links[2]: no node \"n9\""), "{e}");
        let e = err(Topology::Links(vec![link("n0", "n1"), link("n2", "n3")]), 4);
        assert!(e.contains("not connected: n2, n3 cannot reach n0"), "{e}");
        let e = err(Topology::Links(vec![link("n0", "n1"), link("n1", "n0")]), 2);
        assert!(e.contains("listed twice"), "{e}");
        let ok = Graph::build(
            &Topology::Links(vec![link("n0", "n1"), link("n1", "n2")]),
            &names(3),
            "s",
        );
        assert_eq!(ok.unwrap().hops_from(&[0]), vec![Some(0), Some(1), Some(2)]);
    }
}
