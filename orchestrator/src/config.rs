//! Testnet files: YAML, typed, unknown fields rejected, and every problem reported
//! with its path and line (all of them at once for semantic checks).
//!
//! ```yaml
//! name: demo            # optional; --name wins
//! nodes: 8              # n0..n7
//! validators: 4         # optional: n0..n3 vote, the rest are full nodes (default: all vote)
//! topology: ring        # optional: mesh (default) | ring | star | line
//!                       #   | { random: { degree: 4 } } | { links: [[n0, n1], [n1, n2]] }
//! seed: demo            # optional: reproducible keys, network id and random topology
//! image: testnet-node:4f2a9c1e   # optional: use this image, build nothing
//! holder: true          # optional: run each node in a container of its own
//!                       #   beside a holder of ours (the path any image takes)
//! node: { ... }         # optional: a node image not ours (see `nodespec`)
//! node_options:         # optional, per node
//!   n3:
//!     simulate_bug: [handshake-race]
//!     disk_mib: 64      # data dir on a 64 MiB tmpfs (disk_full fills it)
//!     image: testnet-node:5e1f..   # its own image of ours (mixed versions)
//! zones:                # optional latency zones (see `zones`)
//!   eu: [n0, n1, n2, n3]
//!   us: [n4, n5, n6, n7]
//! latency:              # one-way ms between zones, symmetric unless both given
//!   eu: { us: 40 }
//! hosts:                # optional: Docker daemons of one Swarm (see `placement`)
//!   - { name: a, engine: "unix:///var/run/docker.sock" }
//!   - { name: b, engine: "tcp://10.0.0.2:2375" }
//! placement: spread     # or `zones`, each zone then `{ host: a, nodes: [...] }`
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use testnet_node::SimulatedBug;

use crate::engine::hosts::HostSpec;
use crate::placement::{Placement, ZoneEntry};
use crate::topology::{Graph, Topology};
use crate::zones::Zones;

/// The testnet `testnet up` brings up without a file: 4 validators, full mesh.
pub const DEFAULT_TESTNET: &str = "nodes: 4\n";
/// The most nodes a testnet file may ask for: two host ports each from
/// 20000-32767 and a subnet in 10.77.0.0/16. What a host can really hold
/// (memory, the neighbour table) is checked by `up` against that host.
pub const MAX_NODES: usize = 4000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestnetFile {
    #[serde(default)]
    pub name: Option<String>,
    pub nodes: usize,
    /// The first `validators` nodes vote; the others are full nodes (`None`: all vote).
    #[serde(default)]
    pub validators: Option<usize>,
    /// `ring`, or `{ random: { degree: 4 } }`: a variant's data as a one-key map.
    #[schemars(with = "Topology")]
    #[serde(default, with = "serde_norway::with::singleton_map")]
    pub topology: Topology,
    #[serde(default)]
    pub seed: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    /// Our own node through the holder path (implied by `node`).
    #[serde(default)]
    pub holder: bool,
    /// A node image not ours, with how to run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<crate::nodespec::NodeSpec>,
    #[serde(default)]
    pub node_options: BTreeMap<String, NodeOptions>,
    /// Run Prometheus and Grafana too (`up --monitor`).
    #[serde(default)]
    pub monitor: bool,
    /// Zone name -> its nodes, or `{ host, nodes }` with `placement: zones`.
    #[serde(default)]
    pub zones: BTreeMap<String, ZoneEntry>,
    #[serde(default)]
    pub latency: BTreeMap<String, BTreeMap<String, u32>>,
    /// Docker daemons of one Swarm to spread the nodes over (none: the local one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostSpec>,
    #[serde(default)]
    pub placement: Placement,
    /// Each node keeps the certificates of its last N finalizations only
    /// (`testnet-node run --finality-window`): its memory stays bounded on a
    /// long run. A node more than N/2 behind installs a snapshot of a peer's
    /// certified checkpoint (state sync). None: the node's default (20,000);
    /// 0: they keep everything (memory grows with history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finality_window: Option<usize>,
    /// With a finality window (the default): each node writes a checkpoint
    /// of its ledger every N finalizations and starts a new log after it (a
    /// restart reads the checkpoint and that log, not the whole history;
    /// peers far behind sync from it). None: the node's default (5,000);
    /// 0: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeOptions {
    #[serde(default)]
    pub simulate_bug: Vec<SimulatedBug>,
    /// Put the node's data dir on a tmpfs of this many MiB (what a
    /// `disk_full` fault fills; the data goes with the container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_mib: Option<u64>,
    /// Run the node from this image of ours instead of the testnet's (mixed
    /// versions: `testnet image build --protocol-version 2` makes one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name}:{line}:{column}: {path}: {message}")]
    Syntax {
        source_name: String,
        line: usize,
        column: usize,
        path: String,
        message: String,
    },
    #[error("{source_name}: {}", problems.join("\n  "))]
    Invalid {
        source_name: String,
        problems: Vec<String>,
    },
    #[error("cannot read testnet file {0}: {1}")]
    Read(String, std::io::Error),
}

/// A valid testnet name: what container and network names are built from.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} must be 1-32 characters of a-z, 0-9 and '-', not starting with '-'"
        ))
    }
}

/// Parses YAML `text` into a `T` and checks it: a syntax or type error with its
/// line, column and path, else every problem `problems` finds, all at once.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    source_name: &str,
    problems: impl FnOnce(&mut T) -> Vec<String>,
) -> Result<T, ConfigError> {
    let de = serde_norway::Deserializer::from_str(text);
    let mut value: T = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let (line, column) = inner
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        ConfigError::Syntax {
            source_name: source_name.to_owned(),
            line,
            column,
            path: if path == "." { "(top)".into() } else { path },
            message: inner.to_string(),
        }
    })?;
    let problems = problems(&mut value);
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            source_name: source_name.to_owned(),
            problems,
        })
    }
}

/// Reads `path` and parses it with `parse`, naming the file in errors.
pub(crate) fn load_yaml<T>(
    path: &std::path::Path,
    parse: impl FnOnce(&str, &str) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Read(path.display().to_string(), e))?;
    parse(&text, &path.display().to_string())
}

impl TestnetFile {
    /// Parses and validates `text`; `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, ConfigError> {
        parse_yaml(text, source_name, |f: &mut Self| f.problems())
    }

    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        load_yaml(path, Self::parse)
    }

    pub fn default_testnet() -> Self {
        Self::parse(DEFAULT_TESTNET, "(embedded default)").expect("the embedded default is valid")
    }

    /// Everything wrong with the file beyond its syntax ("path: message").
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(name) = &self.name {
            if let Err(e) = check_name(name) {
                problems.push(format!("name: {e}"));
            }
        }
        if self.nodes == 0 || self.nodes > MAX_NODES {
            problems.push(format!(
                "nodes: {} is not between 1 and {MAX_NODES}",
                self.nodes
            ));
        } else if let Err(p) = self.graph() {
            problems.extend(p);
        }
        if let Some(v) = self.validators {
            if v == 0 || v > self.nodes {
                problems.push(format!(
                    "validators: {v} is not between 1 and nodes ({})",
                    self.nodes
                ));
            }
        }
        for (node, o) in &self.node_options {
            if !self.node_names().contains(node) {
                problems.push(format!(
                    "node_options.{node}: no such node (nodes are n0..n{})",
                    self.nodes.saturating_sub(1)
                ));
            }
            if o.disk_mib.is_some() && self.holder {
                problems.push(format!(
                    "node_options.{node}.disk_mib: a capped data dir needs our node in its own \
                     container; remove `holder: true` (the holder's agent cannot reach the node's files)"
                ));
            }
            if o.disk_mib.is_some_and(|m| !(8..=4096).contains(&m)) {
                problems.push(format!(
                    "node_options.{node}.disk_mib: {} is not in 8..=4096 (MiB of memory the data dir's tmpfs may take)",
                    o.disk_mib.unwrap_or_default()
                ));
            }
        }
        problems.extend(self.zones().problems(&self.node_names()));
        problems.extend(crate::placement::problems(
            &self.hosts,
            self.placement,
            &self.zones,
            &self.node_names(),
        ));
        if let Some(node) = &self.node {
            problems.extend(node.problems(crate::plan::AGENT_PORT));
            if self.validators.is_some() {
                problems.push(
                    "validators: only our own node reads roles from the testnet's genesis; \
                     give a foreign node its role in `node.command` (e.g. with {index})"
                        .into(),
                );
            }
            if self
                .node_options
                .values()
                .any(|o| !o.simulate_bug.is_empty() || o.disk_mib.is_some() || o.image.is_some())
            {
                problems.push(
                    "node_options: simulate_bug, disk_mib and image are for our own node only; \
                     remove them or the `node:` section"
                        .into(),
                );
            }
            if self.image.is_some() {
                problems
                    .push("image: with a `node:` section, give the image as `node.image`".into());
            }
            if self.finality_window.is_some() || self.checkpoint_every.is_some() {
                problems.push(
                    "finality_window, checkpoint_every: are for our own node only; pass a foreign \
                     node its options in `node.command`"
                        .into(),
                );
            }
        }
        if self.checkpoint_every.is_some() && self.finality_window == Some(0) {
            problems.push(
                "checkpoint_every: only with a finality_window (without one, each node keeps its \
                 whole history, and its whole log)"
                    .into(),
            );
        }
        problems
    }

    /// The nodes in words: `4 validators`, `8 nodes (4 validators, 4 full
    /// nodes)`, `3 nodes of etcd-server`.
    pub fn describe_nodes(&self) -> String {
        if let Some(spec) = &self.node {
            let what = spec
                .image
                .clone()
                .unwrap_or_else(|| spec.packages.join("+"));
            return format!("{} nodes of {what} (each beside a holder)", self.nodes);
        }
        let validators = self.validator_count();
        let holder = if self.holder {
            ", each beside a holder"
        } else {
            ""
        };
        if validators == self.nodes {
            format!("{} validators{holder}", self.nodes)
        } else {
            format!(
                "{} nodes ({validators} validators, {} full nodes){holder}",
                self.nodes,
                self.nodes - validators
            )
        }
    }

    /// Whether each node runs in a container of its own beside a holder.
    pub fn uses_holder(&self) -> bool {
        self.holder || self.node.is_some()
    }

    pub fn node_names(&self) -> Vec<String> {
        // At most the bound: a file asking for more is refused for it, and
        // its other checks must not first build trillions of names (found by
        // fuzzing: `nodes: 63888888888888` ran out of memory).
        (0..self.nodes.min(MAX_NODES))
            .map(|i| format!("n{i}"))
            .collect()
    }

    /// How many nodes vote (the first ones).
    pub fn validator_count(&self) -> usize {
        self.validators.unwrap_or(self.nodes).min(self.nodes)
    }

    /// The topology over the nodes; a random one is seeded by its own seed,
    /// else the file's, else a fixed one (same file, same graph).
    pub fn graph(&self) -> Result<Graph, Vec<String>> {
        let seed = self.seed.as_deref().unwrap_or("testnet");
        Graph::build(&self.topology, &self.node_names(), seed)
    }

    pub fn zones(&self) -> Zones {
        Zones {
            zones: self
                .zones
                .iter()
                .map(|(z, e)| (z.clone(), e.nodes().to_vec()))
                .collect(),
            latency: self.latency.clone(),
        }
    }

    /// Each node's host, in node order (none without `hosts:`).
    pub fn placement(&self) -> Vec<Option<String>> {
        crate::placement::place(&self.hosts, self.placement, &self.zones, &self.node_names())
    }

    pub fn bugs_of(&self, node: &str) -> Vec<SimulatedBug> {
        self.node_options
            .get(node)
            .map(|o| o.simulate_bug.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_examples_parse() {
        assert_eq!(TestnetFile::default_testnet().nodes, 4);
        for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../testnets")).unwrap()
        {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml")
                && !path.to_string_lossy().contains("scenario")
            {
                TestnetFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }

    #[test]
    fn errors_name_path_and_line() {
        let err = TestnetFile::parse(
            "nodes: 4\nnode_options:\n  n1:\n    simulate_bug: [nope]\n",
            "t.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("t.yaml:4:"), "{err}");
        assert!(err.contains("node_options.n1.simulate_bug"), "{err}");
        assert!(
            err.contains("handshake-race"),
            "lists the valid values: {err}"
        );
        let err = TestnetFile::parse("nodes: 4\ncolour: blue\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.yaml:2:") && err.contains("colour"), "{err}");
        let err = TestnetFile::parse("nodes: many\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.yaml:1:") && err.contains("nodes"), "{err}");
        let err = TestnetFile::parse("nodes: [\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.yaml:"), "{err}");
    }

    #[test]
    fn topologies_and_validators_parse_in_every_form() {
        let t = |text: &str| TestnetFile::parse(text, "t.yaml");
        assert_eq!(t("nodes: 4\n").unwrap().topology, Topology::Mesh);
        assert_eq!(
            t("nodes: 4\ntopology: ring\n").unwrap().topology,
            Topology::Ring
        );
        let f = t("nodes: 20\nvalidators: 7\ntopology: { random: { degree: 4 } }\n").unwrap();
        assert_eq!(f.validator_count(), 7);
        assert_eq!(
            f.topology,
            Topology::Random {
                degree: 4,
                seed: None
            }
        );
        let f = t("nodes: 3\ntopology:\n  links: [[n0, n1], [n1, n2]]\n").unwrap();
        assert_eq!(f.graph().unwrap().edges(), 2);
        let err = t("nodes: 4\ntopology: torus\n").unwrap_err().to_string();
        assert!(err.contains("t.yaml:2:") && err.contains("ring"), "{err}");
        let err = t("nodes: 4\ntopology: { random: { degre: 2 } }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("degre"), "{err}");
        let err = t("nodes: 4\nvalidators: 5\ntopology: { links: [[n0, n7]] }\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("validators: 5 is not between 1 and nodes (4)"),
            "{err}"
        );
        assert!(err.contains("topology.links[0]: no node \"n7\""), "{err}");
        assert!(t("nodes: 4001\n").unwrap_err().to_string().contains("4000"));
    }

    #[test]
    fn semantic_problems_are_all_reported() {
        let err = TestnetFile::parse(
            "name: Bad_Name\nnodes: 0\nnode_options:\n  n7: {}\n",
            "t.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("name: name \"Bad_Name\""), "{err}");
        assert!(err.contains("nodes: 0 is not between"), "{err}");
        assert!(err.contains("node_options.n7: no such node"), "{err}");
        let err = TestnetFile::parse(
            "nodes: 2\nzones: {a: [n0], b: [n1, n5]}\nlatency: {a: {c: 5}}\n",
            "t.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("zones.b: no node \"n5\""), "{err}");
        assert!(err.contains("latency.a: no zone \"c\""), "{err}");
        let ours = TestnetFile::parse("nodes: 4\nfinality_window: 5000\n", "t.yaml").unwrap();
        assert_eq!(ours.finality_window, Some(5000));
        let err = TestnetFile::parse(
            "nodes: 3\nfinality_window: 5000\nnode: { image: 'etcd:x', command: [etcd], ports: { p2p: 2380, api: 2379 } }\n",
            "t.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("finality_window, checkpoint_every: are for our own node only"),
            "{err}"
        );
        let every = "nodes: 4\nfinality_window: 300\ncheckpoint_every: 100\n";
        let ours = TestnetFile::parse(every, "t.yaml").unwrap();
        assert_eq!(ours.checkpoint_every, Some(100));
        // The node's default window is one.
        assert!(TestnetFile::parse("nodes: 4\ncheckpoint_every: 100\n", "t.yaml").is_ok());
        let err = TestnetFile::parse(
            "nodes: 4\nfinality_window: 0\ncheckpoint_every: 100\n",
            "t.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("checkpoint_every: only with a finality_window"),
            "{err}"
        );
    }

    #[test]
    fn hosts_and_zones_with_hosts_place_the_nodes() {
        let text = "nodes: 4\nhosts:\n  - { name: a, engine: \"unix:///var/run/docker.sock\" }\n  \
                    - { name: b, engine: \"tcp://10.0.0.2:2375\" }\nplacement: zones\n\
                    zones:\n  west: { host: b, nodes: [n0, n1] }\n  east: { host: a, nodes: [n2, n3] }\n\
                    latency: { west: { east: 5 } }\n";
        let f = TestnetFile::parse(text, "t.yaml").unwrap();
        let placed: Vec<String> = f.placement().into_iter().flatten().collect();
        assert_eq!(placed, ["b", "b", "a", "a"]);
        assert_eq!(f.zones().zone_of("n2"), Some("east"));
        assert_eq!(f.hosts[1].reach(), "10.0.0.2");
        // Spread without zones; the plain zone form still reads.
        let f = TestnetFile::parse(
            "nodes: 3\nhosts: [{ name: a, engine: \"unix:///s\" }, { name: b, engine: \"unix:///t\" }]\nzones: { z: [n0] }\n",
            "t.yaml",
        )
        .unwrap();
        let placed: Vec<String> = f.placement().into_iter().flatten().collect();
        assert_eq!(placed, ["a", "a", "b"]);
        let err = TestnetFile::parse(
            "nodes: 2\nhosts: [{ name: a, engine: \"10.0.0.2\" }]\nzones: { z: { host: c, nodes: [n0] } }\n",
            "t.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("hosts.a.engine: \"10.0.0.2\" is not a Docker daemon URL"),
            "{err}"
        );
        assert!(err.contains("zones.z.host: no host \"c\""), "{err}");
        assert!(err.contains("set `placement: zones`"), "{err}");
    }
}
