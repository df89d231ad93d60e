//! One fault vocabulary for the CLI (`testnet chaos ...`) and scenario files
//! (`fault: {...}`), and what each fault plans to: pure, no I/O.
//!
//! A [`Fault`] names nodes; [`Fault::plan`] turns it, against a testnet's
//! [`Plan`] (names, static IPs, zones), into a [`Planned`] change:
//! - network faults become a [`Layer`] of per-node patches (the real drop sets
//!   of a cut, the delays, losses, duplicates and caps per link) that
//!   [`layers::Desired`] stacks over each node's baseline and renders to the
//!   `FaultState` its agent applies;
//! - a zone latency change moves the baseline;
//! - process faults act on one node's process or container.
//!
//! Every planned change has an undo that restores what was there before it
//! ([`Undo`]): a layer is removed (what other faults set stays), a zone's
//! latency goes back to its previous value, a killed or stopped process starts
//! again, a paused one resumes. [`window`] books when each fault was surely in
//! place; [`quorum`] says whether a cut leaves any validator a quorum.

mod label;
pub mod layers;
mod partition;
mod planning;
pub mod quorum;
pub mod window;

use serde::{Deserialize, Serialize};
use testnet_node::faults::Shape;

use crate::engine::Limit;
use testnet_node::byzantine::Behaviour;
use testnet_node::clock::Skew;
use testnet_node::store::DiskFaults;

pub use layers::{Cut, Desired, Layer, NodePatch};
pub use partition::Partition;
pub use window::{FaultEvent, FaultKind, QuorumGap, WindowBook, WindowId};

/// A node name, or `random` in scenario files (chosen with the scenario's seed).
pub type NodeSel = String;

/// A fault, as the CLI and scenario files say it. Node lists name nodes; `to`
/// empty means every other node. Percentages are 0-100; a rate of 0 (delay,
/// loss, duplicate, bandwidth) clears that fault on those links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Groups that only talk within themselves; nodes in none are isolated.
    /// One way: only the first group's packets to the others are dropped.
    Partition(Partition),
    /// A Jepsen shape: halves, bridge, majorities-ring, isolate:NODE.
    Shape(String),
    /// Hold packets leaving `nodes` (towards `to`) this long.
    Delay {
        nodes: Vec<NodeSel>,
        #[serde(default)]
        to: Vec<NodeSel>,
        ms: u32,
        #[serde(default)]
        jitter_ms: u32,
        /// Share of packets that overtake the held ones (netem's reorder).
        #[serde(default)]
        reorder_percent: f64,
    },
    Loss {
        nodes: Vec<NodeSel>,
        #[serde(default)]
        to: Vec<NodeSel>,
        percent: f64,
    },
    Duplicate {
        nodes: Vec<NodeSel>,
        #[serde(default)]
        to: Vec<NodeSel>,
        percent: f64,
    },
    /// Cap the egress of `nodes` (0 removes the cap).
    Bandwidth {
        nodes: Vec<NodeSel>,
        kbit: u32,
    },
    /// Limit the CPU of `nodes`' containers to `cores` (0 removes the limit),
    /// live, through the engine.
    Cpu {
        nodes: Vec<NodeSel>,
        cores: f64,
    },
    /// Limit the memory of `nodes`' containers to `mib` (0 removes the
    /// limit); past it the kernel OOM-kills, a crash the timeline caused,
    /// and the undo starts the node again.
    Memory {
        nodes: Vec<NodeSel>,
        mib: u64,
    },
    /// Skew `nodes`' clocks by `offset` (`30s`, `-2m`), drifting `drift_ppm`
    /// on top, live through the node's clock seam; 0 and 0 (or the undo) go
    /// back to real time. A heal leaves clocks alone.
    Clock {
        nodes: Vec<NodeSel>,
        #[schemars(schema_with = "crate::spelling::signed_duration")]
        #[serde(deserialize_with = "signed_ms", serialize_with = "ser_signed_ms")]
        offset: i64,
        #[serde(default)]
        drift_ppm: i64,
    },
    /// Switch a Byzantine `behaviour` on in `nodes`, live through the node's
    /// misbehaviour seam (our node only); the undo switches it off again,
    /// leaving other behaviours set there. `delay_ms` is `delay-votes`' hold.
    Byzantine {
        nodes: Vec<NodeSel>,
        behaviour: Behaviour,
        #[serde(default = "default_vote_delay")]
        delay_ms: u64,
    },
    /// Fill the data dir of `nodes` (a tmpfs: `disk_mib`) until no byte is
    /// free, through the agent; the undo frees it and restarts a node whose
    /// store failed (it stops voting until then).
    DiskFull {
        nodes: Vec<NodeSel>,
    },
    /// Disk faults in `nodes`' store, live through the node's storage seam:
    /// each fsync held `fsync_ms`, `error_percent` of writes failing; the undo
    /// clears them and restarts a node whose store failed.
    Disk {
        nodes: Vec<NodeSel>,
        #[serde(default)]
        fsync_ms: u64,
        #[serde(default)]
        error_percent: f64,
    },
    /// Replace `nodes`' containers with ones from another image of ours
    /// (`image: TAG`, or ours speaking `protocol: { version, min_peer }`),
    /// keeping their data, IP, host ports and network faults; the undo goes
    /// back to the image before.
    Upgrade {
        nodes: Vec<NodeSel>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<crate::image::Protocol>,
    },
    /// Zone-to-zone latency change (both ways unless `one_way`); it moves the
    /// baseline a heal goes back to.
    Latency {
        from: String,
        to: String,
        ms: u32,
        #[serde(default)]
        one_way: bool,
    },
    /// Every network fault goes (back to the zones' baseline).
    Heal,
    /// The named nodes' faults and the links to them go; other faults stay.
    HealNodes(Vec<NodeSel>),
    Kill(NodeSel),
    Start(NodeSel),
    Restart(NodeSel),
    Stop(NodeSel),
    Pause(NodeSel),
    Resume(NodeSel),
    /// The container, not just the process (its faults are re-applied on start).
    KillContainer(NodeSel),
    StartContainer(NodeSel),
    RestartContainer(NodeSel),
    StopContainer(NodeSel),
    PauseContainer(NodeSel),
    ResumeContainer(NodeSel),
}

/// Longest fsync a disk fault may hold, and longest vote hold of
/// `delay-votes` (a hold under way outlasts its undo).
pub const MAX_FSYNC_MS: u64 = 10_000;
pub const MAX_VOTE_DELAY_MS: u64 = 60_000;

impl Fault {
    /// Why a hold this fault asks for is too long, if it is.
    pub fn too_long(&self) -> Option<String> {
        match self {
            Fault::Disk { fsync_ms, .. } if *fsync_ms > MAX_FSYNC_MS => Some(format!(
                "fsync_ms: {fsync_ms} is over {MAX_FSYNC_MS} (a held fsync outlasts its undo)"
            )),
            Fault::Byzantine { delay_ms, .. } if *delay_ms > MAX_VOTE_DELAY_MS => Some(format!(
                "delay_ms: {delay_ms} is over {MAX_VOTE_DELAY_MS} (a held vote outlasts its undo)"
            )),
            _ => None,
        }
    }
}

fn default_vote_delay() -> u64 {
    testnet_node::byzantine::DEFAULT_DELAY_MS
}

/// `30s`, `-1m30s`, `250ms` as signed milliseconds.
pub fn parse_signed_ms(s: &str) -> Result<i64, String> {
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, s),
    };
    humantime::parse_duration(rest)
        .map(|d| sign * d.as_millis() as i64)
        .map_err(|e| format!("{s:?}: {e} (e.g. 30s, -2m, 500ms)"))
}

fn signed_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let s = String::deserialize(d)?;
    parse_signed_ms(&s).map_err(serde::de::Error::custom)
}

fn ser_signed_ms<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&signed(*ms))
}

fn signed(ms: i64) -> String {
    let d = humantime::format_duration(std::time::Duration::from_millis(ms.unsigned_abs()));
    if ms < 0 {
        format!("-{d}")
    } else {
        d.to_string()
    }
}

/// What a process fault does to a node's process (through its agent) or to its
/// container (through the engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProcessAction {
    Kill,
    Start,
    Restart,
    Stop,
    Pause,
    Resume,
}

impl ProcessAction {
    pub fn name(self) -> &'static str {
        match self {
            ProcessAction::Kill => "kill",
            ProcessAction::Start => "start",
            ProcessAction::Restart => "restart",
            ProcessAction::Stop => "stop",
            ProcessAction::Pause => "pause",
            ProcessAction::Resume => "resume",
        }
    }

    /// The action that restores what this one changed (a restart changes
    /// nothing that outlasts it).
    pub fn undo(self) -> Option<ProcessAction> {
        match self {
            ProcessAction::Kill | ProcessAction::Stop => Some(ProcessAction::Start),
            ProcessAction::Pause => Some(ProcessAction::Resume),
            ProcessAction::Start | ProcessAction::Restart | ProcessAction::Resume => None,
        }
    }
}

/// What a fault changes, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// A layer of network faults stacked over the baseline.
    Network(Layer),
    /// Every layer goes (`None`), or the named nodes' patches and every link to them.
    Heal(Option<Vec<String>>),
    /// The zones' latency from `from` to `to` (and back unless `one_way`).
    ZoneLatency {
        from: String,
        to: String,
        ms: u32,
        one_way: bool,
    },
    Process {
        node: String,
        action: ProcessAction,
        container: bool,
    },
    /// A resource limit on these nodes' containers.
    Limit { nodes: Vec<String>, limit: Limit },
    /// These nodes' clock skew.
    Clock { nodes: Vec<String>, skew: Skew },
    /// A Byzantine behaviour switched on in these nodes.
    Byzantine {
        nodes: Vec<String>,
        behaviour: Behaviour,
        delay_ms: u64,
    },
    /// These nodes' data dirs filled.
    DiskFull(Vec<String>),
    /// These nodes' store faults set.
    Disk {
        nodes: Vec<String>,
        faults: DiskFaults,
    },
    /// These nodes' containers replaced from another image.
    Upgrade { nodes: Vec<String>, to: UpgradeTo },
}

/// What an upgrade runs.
#[derive(Debug, Clone, PartialEq)]
pub enum UpgradeTo {
    Image(String),
    /// The testnet's image of our node, speaking this protocol.
    Protocol(crate::image::Protocol),
}

/// How to take back an applied fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Undo {
    /// Remove this layer (by id); what other layers set stays.
    Layer(u64),
    /// Put these one-way zone latencies back.
    ZoneLatency(Vec<(String, String, u32)>),
    Process {
        node: String,
        action: ProcessAction,
        container: bool,
    },
    /// Lift a resource limit (and start the nodes it OOM-killed).
    Limit { nodes: Vec<String>, limit: Limit },
    /// Put these nodes' clocks back to real time.
    Clock(Vec<String>),
    /// Switch this behaviour off in these nodes (others set there stay).
    Byzantine {
        nodes: Vec<String>,
        behaviour: Behaviour,
    },
    /// Free these nodes' disks; restart a node whose store failed.
    DiskFull(Vec<String>),
    /// Clear these nodes' store faults; restart a node whose store failed.
    Disk(Vec<String>),
    /// Put these nodes back on the first image (`None`: the testnet's) if
    /// they still run the second (the one the upgrade set).
    Upgrade(Vec<(String, Option<String>, String)>),
    /// Nothing outlasts the fault (a restart, a heal).
    Nothing,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error("no node {node:?} in testnet {testnet:?}; nodes are {known}")]
    UnknownNode {
        node: String,
        testnet: String,
        known: String,
    },
    #[error("no zone {zone:?} in testnet {testnet:?}; zones are {known}")]
    UnknownZone {
        zone: String,
        testnet: String,
        known: String,
    },
    #[error("unknown shape {0:?}: use halves, bridge, majorities-ring or isolate:NODE")]
    Shape(String),
    #[error("{0}% is not between 0 and 100")]
    Percent(f64),
    #[error("disk_full on {0} fills its data dir, which must be a capped tmpfs: give it `node_options: {{ {0}: {{ disk_mib: 64 }} }}` in the testnet file (a scenario that names the node does so itself)")]
    NoCappedDisk(String),
    #[error("upgrade: give either `image: TAG` or `protocol: {{ version: 2, min_peer: 1 }}`")]
    Upgrade,
    #[error("{0}")]
    TooLong(String),
    #[error("a one-way cut needs the cut group and at least one more: `--one-way n0 n1,n2` drops n0's packets to n1 and n2")]
    OneWay,
}

/// A Jepsen shape as the CLI and scenarios write it: `halves`, `bridge`,
/// `majorities-ring`, `isolate:nK`.
pub fn parse_shape(s: &str) -> Option<Shape> {
    match s {
        "halves" => Some(Shape::Halves),
        "bridge" => Some(Shape::Bridge),
        "majorities-ring" => Some(Shape::MajoritiesRing),
        other => other
            .strip_prefix("isolate:n")
            .and_then(|i| i.parse().ok())
            .map(Shape::Isolate),
    }
}

/// A percentage as per mille, if it is one (0 to 100).
pub fn per_mille(percent: f64) -> Option<u32> {
    (0.0..=100.0)
        .contains(&percent)
        .then(|| (percent * 10.0).round() as u32)
}

fn per_mille_of(percent: f64) -> Result<u32, FaultError> {
    per_mille(percent).ok_or(FaultError::Percent(percent))
}

fn towards(to: &[String]) -> String {
    if to.is_empty() {
        "all".into()
    } else {
        to.join(",")
    }
}

impl Fault {
    /// The process action, node and whether it acts on the whole container.
    pub fn process(&self) -> Option<(&String, ProcessAction, bool)> {
        use ProcessAction as A;
        let (n, a, c) = match self {
            Fault::Kill(n) => (n, A::Kill, false),
            Fault::Start(n) => (n, A::Start, false),
            Fault::Restart(n) => (n, A::Restart, false),
            Fault::Stop(n) => (n, A::Stop, false),
            Fault::Pause(n) => (n, A::Pause, false),
            Fault::Resume(n) => (n, A::Resume, false),
            Fault::KillContainer(n) => (n, A::Kill, true),
            Fault::StartContainer(n) => (n, A::Start, true),
            Fault::RestartContainer(n) => (n, A::Restart, true),
            Fault::StopContainer(n) => (n, A::Stop, true),
            Fault::PauseContainer(n) => (n, A::Pause, true),
            Fault::ResumeContainer(n) => (n, A::Resume, true),
            _ => return None,
        };
        Some((n, a, c))
    }

    /// A process fault from its parts (the inverse of [`Fault::process`]).
    pub fn of_process(node: String, action: ProcessAction, container: bool) -> Fault {
        use ProcessAction as A;
        match (action, container) {
            (A::Kill, false) => Fault::Kill(node),
            (A::Start, false) => Fault::Start(node),
            (A::Restart, false) => Fault::Restart(node),
            (A::Stop, false) => Fault::Stop(node),
            (A::Pause, false) => Fault::Pause(node),
            (A::Resume, false) => Fault::Resume(node),
            (A::Kill, true) => Fault::KillContainer(node),
            (A::Start, true) => Fault::StartContainer(node),
            (A::Restart, true) => Fault::RestartContainer(node),
            (A::Stop, true) => Fault::StopContainer(node),
            (A::Pause, true) => Fault::PauseContainer(node),
            (A::Resume, true) => Fault::ResumeContainer(node),
        }
    }

    /// The same fault with every node name passed through `pick` (scenarios
    /// choose `random` nodes this way).
    pub fn map_nodes(&self, mut pick: impl FnMut(&String) -> String) -> Fault {
        let mut list = |v: &[String]| v.iter().map(&mut pick).collect::<Vec<_>>();
        match self {
            Fault::Partition(p) => Fault::Partition(Partition {
                groups: p.groups.iter().map(|g| list(g)).collect(),
                one_way: p.one_way,
            }),
            Fault::Delay {
                nodes,
                to,
                ms,
                jitter_ms,
                reorder_percent,
            } => Fault::Delay {
                nodes: list(nodes),
                to: list(to),
                ms: *ms,
                jitter_ms: *jitter_ms,
                reorder_percent: *reorder_percent,
            },
            Fault::Loss { nodes, to, percent } => Fault::Loss {
                nodes: list(nodes),
                to: list(to),
                percent: *percent,
            },
            Fault::Duplicate { nodes, to, percent } => Fault::Duplicate {
                nodes: list(nodes),
                to: list(to),
                percent: *percent,
            },
            Fault::Bandwidth { nodes, kbit } => Fault::Bandwidth {
                nodes: list(nodes),
                kbit: *kbit,
            },
            Fault::Cpu { nodes, cores } => Fault::Cpu {
                nodes: list(nodes),
                cores: *cores,
            },
            Fault::Memory { nodes, mib } => Fault::Memory {
                nodes: list(nodes),
                mib: *mib,
            },
            Fault::Clock {
                nodes,
                offset,
                drift_ppm,
            } => Fault::Clock {
                nodes: list(nodes),
                offset: *offset,
                drift_ppm: *drift_ppm,
            },
            Fault::Byzantine {
                nodes,
                behaviour,
                delay_ms,
            } => Fault::Byzantine {
                nodes: list(nodes),
                behaviour: *behaviour,
                delay_ms: *delay_ms,
            },
            Fault::DiskFull { nodes } => Fault::DiskFull { nodes: list(nodes) },
            Fault::Disk {
                nodes,
                fsync_ms,
                error_percent,
            } => Fault::Disk {
                nodes: list(nodes),
                fsync_ms: *fsync_ms,
                error_percent: *error_percent,
            },
            Fault::Upgrade {
                nodes,
                image,
                protocol,
            } => Fault::Upgrade {
                nodes: list(nodes),
                image: image.clone(),
                protocol: *protocol,
            },
            Fault::HealNodes(nodes) => Fault::HealNodes(list(nodes)),
            other => match other.process() {
                Some((n, action, container)) => Fault::of_process(pick(n), action, container),
                None => other.clone(),
            },
        }
    }

    /// Every node name the fault mentions (for validation).
    pub fn named_nodes(&self) -> Vec<&String> {
        match self {
            Fault::Partition(p) => p.groups.iter().flatten().collect(),
            Fault::Delay { nodes, to, .. }
            | Fault::Loss { nodes, to, .. }
            | Fault::Duplicate { nodes, to, .. } => nodes.iter().chain(to).collect(),
            Fault::Bandwidth { nodes, .. }
            | Fault::Cpu { nodes, .. }
            | Fault::Memory { nodes, .. }
            | Fault::Clock { nodes, .. }
            | Fault::Byzantine { nodes, .. }
            | Fault::DiskFull { nodes }
            | Fault::Disk { nodes, .. }
            | Fault::Upgrade { nodes, .. }
            | Fault::HealNodes(nodes) => nodes.iter().collect(),
            other => other.process().map(|(n, _, _)| vec![n]).unwrap_or_default(),
        }
    }

    /// The nodes a fault touches (resolved names), for the report and checks;
    /// for process faults, the nodes allowed to go down.
    pub fn nodes(&self, all: &[String]) -> Vec<String> {
        match self {
            Fault::Partition(p) => p.groups.iter().flatten().cloned().collect(),
            Fault::Delay { nodes, .. }
            | Fault::Loss { nodes, .. }
            | Fault::Duplicate { nodes, .. }
            | Fault::Bandwidth { nodes, .. }
            | Fault::Cpu { nodes, .. }
            | Fault::Memory { nodes, .. }
            | Fault::Clock { nodes, .. }
            | Fault::Byzantine { nodes, .. }
            | Fault::DiskFull { nodes }
            | Fault::Disk { nodes, .. }
            | Fault::Upgrade { nodes, .. }
            | Fault::HealNodes(nodes) => nodes.clone(),
            Fault::Shape(_) | Fault::Latency { .. } | Fault::Heal => all.to_vec(),
            other => other
                .process()
                .map(|(n, _, _)| vec![n.clone()])
                .unwrap_or_default(),
        }
    }

    /// What the fault's window is about, for the checkers and the report.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Partition(_) | Fault::Shape(_) => FaultKind::Partition,
            Fault::Cpu { .. } | Fault::Memory { .. } => FaultKind::Resource,
            Fault::Clock { .. } => FaultKind::Clock,
            Fault::Byzantine { .. } => FaultKind::Byzantine,
            Fault::DiskFull { .. } | Fault::Disk { .. } => FaultKind::Disk,
            // The node goes down while its container is replaced.
            Fault::Upgrade { .. } => FaultKind::Process,
            other if other.process().is_some() => FaultKind::Process,
            _ => FaultKind::Link,
        }
    }

    /// Is the fault undone by [`Fault::Heal`] (every network fault is)?
    pub fn is_heal(&self) -> bool {
        matches!(self, Fault::Heal | Fault::HealNodes(_))
    }

    /// Problems with this fault in a testnet of `names` and `zones`, each as
    /// `key: message` (the caller prefixes the path). `random` is a node.
    pub fn problems(&self, names: &[String], zones: &[&String]) -> Vec<String> {
        let mut p = Vec::new();
        match self {
            Fault::Partition(Partition {
                groups,
                one_way: true,
            }) if groups.len() < 2 || groups.iter().any(|g| g.is_empty()) => {
                p.push(
                    "partition: a one-way cut needs the cut group and at least one more \
                     (`groups: [[n0], [n1, n2]]`: n0's packets to n1 and n2 are dropped)"
                        .into(),
                );
            }
            Fault::Loss { percent, .. } | Fault::Duplicate { percent, .. }
                if per_mille(*percent).is_none() =>
            {
                p.push(format!("percent: {percent} is not between 0 and 100"));
            }
            Fault::Delay {
                reorder_percent, ..
            } if per_mille(*reorder_percent).is_none() => {
                p.push(format!(
                    "reorder_percent: {reorder_percent} is not between 0 and 100"
                ));
            }
            Fault::Upgrade {
                image, protocol, ..
            } if image.is_some() == protocol.is_some() => {
                p.push(
                    "upgrade: give either `image: TAG` or `protocol: { version: 2, min_peer: 1 }` \
                     (our node's image speaking that protocol)"
                        .into(),
                );
            }
            Fault::Disk { error_percent, .. } if per_mille(*error_percent).is_none() => {
                p.push(format!(
                    "error_percent: {error_percent} is not between 0 and 100"
                ));
            }
            Fault::Clock { drift_ppm, .. } if drift_ppm.abs() >= 1_000_000 => {
                p.push(format!(
                    "drift_ppm: {drift_ppm} would stop or reverse the clock (|drift| < 1000000)"
                ));
            }
            other if other.too_long().is_some() => {
                p.extend(other.too_long());
            }
            Fault::Cpu { cores, .. } if !cores.is_finite() || *cores < 0.0 => {
                p.push(format!("cores: {cores} is not a share of cores (0.2 is a fifth of one; 0 lifts the limit)"));
            }
            Fault::Memory { mib, .. } if (1..6).contains(mib) => {
                p.push(format!(
                    "mib: {mib} is below the engine's minimum of 6 MiB (0 lifts the limit)"
                ));
            }
            Fault::Shape(s) if s.starts_with("isolate:max:") => {}
            Fault::Shape(s) => {
                let ok = match parse_shape(s) {
                    Some(Shape::Isolate(k)) => k < names.len(),
                    shape => shape.is_some(),
                };
                if !ok {
                    p.push(format!(
                        "shape: {s:?} is not halves, bridge, majorities-ring or isolate:NODE"
                    ));
                }
            }
            Fault::Latency { from, to, .. } => {
                for z in [from, to].into_iter().filter(|z| !zones.contains(z)) {
                    p.push(format!("latency: no zone {z:?} in the testnet"));
                }
            }
            _ => {}
        }
        for n in self.named_nodes() {
            if n != "random" && !n.starts_with("max:") && !names.contains(n) {
                p.push(format!(
                    "no node {n:?} (nodes are n0..n{}, random, or max:METRIC for the node exporting the most of METRIC)",
                    names.len().saturating_sub(1)
                ));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests;
