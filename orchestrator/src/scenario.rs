//! Scenario files: a testnet, a workload, a fault timeline and the invariants
//! that must hold. Same family as testnet files: YAML, typed, unknown fields
//! rejected, errors with path and line.
//!
//! ```yaml
//! name: partition-heal
//! seed: 7                       # fault choices ("random") and workload
//! testnet: { nodes: 5 }         # a testnet file, inline
//! workload: { tps: 20, duration: 40s, double_spend: 0.05, settle: 30s }
//! timeline:
//!   - at: 10s
//!     for: 10s
//!     fault: { partition: [[n0, n1, n2], [n3, n4]] }
//!   - at: 25s
//!     every: 5s                 # repeated: at 25s, 30s, 35s
//!     count: 3
//!     for: 2s
//!     fault: { pause: random }
//! invariants:
//!   handshake_success: { min_rate: 0.99 }
//!   connectivity: { within: 20s }
//!   utxo_agreement: {}
//!   finality: { within: 15s }
//!   safety: {}
//!   processes: {}
//!   metrics:
//!     - { metric: testnet_duplicate_connections_resolved_total, op: "==", value: 0 }
//! ```

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::{load_yaml, parse_yaml, ConfigError, TestnetFile};
use crate::fault::Fault;
pub use crate::op::Op;

pub mod assertion;
mod nemesis;
pub use assertion::{Agg, MetricAssertion, NodeSelect};
pub use nemesis::{Nemesis, NemesisFault};

fn dur<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e} (e.g. 10s, 1m30s, 500ms)")))
}

fn opt_dur<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    dur(d).map(Some)
}

fn ser_dur<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn ser_opt_dur<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_dur(d, s),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "one")]
    pub seed: u64,
    pub testnet: TestnetFile,
    #[serde(default)]
    pub workload: Option<Workload>,
    #[serde(default)]
    pub timeline: Vec<Step>,
    /// A random fault schedule drawn from the seed; on load it becomes
    /// steps at the end of `timeline` (and is gone from here), so the
    /// resolved scenario replays it exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nemesis: Option<Nemesis>,
    /// How many of `timeline`'s steps a nemesis drew (the last ones).
    #[serde(skip)]
    pub nemesis_steps: usize,
    #[serde(default)]
    pub invariants: Invariants,
}

fn one() -> u64 {
    1
}

/// The data dir's tmpfs of a node a `disk_full` step names (MiB).
const DEFAULT_DISK_MIB: u64 = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Our node's payment load: payments per second.
    #[serde(default)]
    pub tps: f64,
    /// How long the load runs; a `command` gets this long (plus `settle`)
    /// before it is stopped and judged failed.
    #[schemars(schema_with = "crate::spelling::duration")]
    #[serde(deserialize_with = "dur", serialize_with = "ser_dur")]
    pub duration: Duration,
    /// Any node's workload: a command run in a helper container on the
    /// testnet's network (see `run::command_workload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// The helper's image (default: the node image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub double_spend: f64,
    /// How long after the load every payment may take to be final everywhere.
    #[schemars(schema_with = "crate::spelling::duration")]
    #[serde(
        default = "settle",
        deserialize_with = "dur",
        serialize_with = "ser_dur"
    )]
    pub settle: Duration,
    /// Send to these nodes only (default: all).
    #[serde(default)]
    pub endpoints: Vec<String>,
}

fn settle() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[schemars(schema_with = "crate::spelling::duration")]
    #[serde(deserialize_with = "dur", serialize_with = "ser_dur")]
    pub at: Duration,
    /// Undo the fault after this long (heal, start, resume).
    #[schemars(schema_with = "crate::spelling::duration")]
    #[serde(
        rename = "for",
        default,
        deserialize_with = "opt_dur",
        serialize_with = "ser_opt_dur",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    #[schemars(schema_with = "crate::spelling::duration")]
    #[serde(
        default,
        deserialize_with = "opt_dur",
        serialize_with = "ser_opt_dur",
        skip_serializing_if = "Option::is_none"
    )]
    pub every: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// `{ partition: [...] }`: a one-key map, not a YAML tag.
    #[schemars(with = "Fault")]
    #[serde(with = "serde_norway::with::singleton_map")]
    pub fault: Fault,
}

/// Thresholds; an absent invariant is not checked. `Invariants::default()`
/// (no `invariants:` key) checks all of them with default bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Invariants {
    #[serde(default)]
    pub handshake_success: Option<HandshakeSuccess>,
    #[serde(default)]
    pub connectivity: Option<Within>,
    #[serde(default)]
    pub utxo_agreement: Option<Empty>,
    #[serde(default)]
    pub finality: Option<Within>,
    #[serde(default)]
    pub safety: Option<Empty>,
    #[serde(default)]
    pub processes: Option<Empty>,
    /// A `workload: { command }` exited 0 and printed no failed operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ok: Option<Empty>,
    /// Every fault of the timeline must be seen to bite: on unless the
    /// scenario says `faults_took_effect: false` (then every verdict about a
    /// fault may be vacuous).
    #[serde(default = "on")]
    pub faults_took_effect: bool,
    #[serde(default)]
    pub metrics: Vec<MetricAssertion>,
}

impl Invariants {
    /// Why a list that checks nothing is refused.
    pub const NOTHING: &'static str = "`invariants:` lists no invariant, so the run would check nothing; omit the key to check all of them with default bounds, or name the ones to check (e.g. `invariants: { safety: {} }`)";

    /// Does it check nothing at all (beyond the faults' effects)?
    pub fn is_empty(&self) -> bool {
        self.handshake_success.is_none()
            && self.connectivity.is_none()
            && self.utxo_agreement.is_none()
            && self.finality.is_none()
            && self.safety.is_none()
            && self.processes.is_none()
            && self.workload_ok.is_none()
            && self.metrics.is_empty()
    }

    /// What a run of a foreign node checks when the scenario does not say:
    /// no crash, its links, its workload if it has one.
    pub fn foreign(workload: bool) -> Self {
        Invariants {
            handshake_success: None,
            utxo_agreement: None,
            finality: None,
            safety: None,
            workload_ok: workload.then_some(Empty {}),
            ..Invariants::default()
        }
    }
}

impl Default for Invariants {
    fn default() -> Self {
        Invariants {
            handshake_success: Some(HandshakeSuccess::default()),
            connectivity: Some(Within::default()),
            utxo_agreement: Some(Empty {}),
            finality: Some(Within::default()),
            safety: Some(Empty {}),
            processes: Some(Empty {}),
            workload_ok: None,
            faults_took_effect: true,
            metrics: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandshakeSuccess {
    #[serde(default = "min_rate")]
    pub min_rate: f64,
}

fn on() -> bool {
    true
}

fn min_rate() -> f64 {
    0.99
}

impl Default for HandshakeSuccess {
    fn default() -> Self {
        HandshakeSuccess {
            min_rate: min_rate(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Within {
    #[schemars(schema_with = "crate::spelling::duration")]
    #[serde(
        default = "within",
        deserialize_with = "dur",
        serialize_with = "ser_dur"
    )]
    pub within: Duration,
}

fn within() -> Duration {
    Duration::from_secs(20)
}

impl Default for Within {
    fn default() -> Self {
        Within { within: within() }
    }
}

/// One concrete action of the resolved timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Offset from the start of the run.
    #[serde(serialize_with = "ser_dur")]
    pub at: Duration,
    pub action: Action,
    /// Index of the fault window this event opens or closes.
    pub window: usize,
    /// The timeline step it comes from.
    pub step: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Apply(Fault),
    /// Undo what `window` did: heal network faults, start or resume processes.
    Undo(Fault),
}

impl Scenario {
    pub fn parse(text: &str, source_name: &str) -> Result<Self, ConfigError> {
        // Without an `invariants:` key a foreign node gets the checks that
        // can judge it (ours read our contract).
        let listed = serde_norway::from_str::<serde_norway::Value>(text)
            .ok()
            .is_some_and(|v| v.get("invariants").is_some());
        parse_yaml(text, source_name, |s: &mut Scenario| {
            if s.testnet.node.is_some() && !listed {
                let command = s.workload.as_ref().is_some_and(|w| w.command.is_some());
                s.invariants = Invariants::foreign(command);
            }
            s.cap_disks();
            let mut problems = s.testnet.problems();
            if let Some(n) = s.nemesis.take() {
                let names = s.testnet.node_names();
                // A foreign node's clock moves only through libfaketime.
                let no_clock = s.testnet.node.as_ref().is_some_and(|n| !n.faketime);
                let wrong = n.problems(names.len(), no_clock);
                // A schedule is drawn only from a sound nemesis (a bad one
                // could ask for billions of faults).
                let drawn = match wrong.is_empty() {
                    true => n.schedule(s.seed, &names),
                    false => Vec::new(),
                };
                problems.extend(wrong.into_iter().map(|e| format!("nemesis: {e}")));
                s.nemesis_steps = drawn.len();
                s.timeline.extend(drawn);
            }
            problems.extend(s.problems());
            problems
        })
    }

    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        load_yaml(path, Self::parse)
    }

    /// Our nodes a `disk_full` step names (every node for `random`) get a
    /// capped data dir to fill, unless the testnet gives them one.
    fn cap_disks(&mut self) {
        if self.testnet.node.is_some() {
            return;
        }
        let names = self.testnet.node_names();
        for step in &self.timeline {
            let Fault::DiskFull { nodes } = &step.fault else {
                continue;
            };
            for n in nodes {
                let targets = match n.as_str() {
                    "random" => names.clone(),
                    _ => vec![n.clone()],
                };
                for t in targets.into_iter().filter(|t| names.contains(t)) {
                    let o = self.testnet.node_options.entry(t).or_default();
                    o.disk_mib.get_or_insert(DEFAULT_DISK_MIB);
                }
            }
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = crate::config::check_name(&self.name) {
            p.push(format!("name: {e}"));
        }
        let names = self.testnet.node_names();
        if let Some(w) = self.workload.as_ref().filter(|w| w.command.is_some()) {
            if w.command.as_ref().is_some_and(|c| c.is_empty()) {
                p.push("workload.command: empty; give the command line as a list".into());
            }
            if w.tps != 0.0 || w.double_spend != 0.0 || !w.endpoints.is_empty() {
                p.push("workload: `tps`, `double_spend` and `endpoints` shape our payment load; a `command` workload takes none of them".into());
            }
        } else if let Some(w) = &self.workload {
            if w.image.is_some() {
                p.push("workload.image: goes with `command`".into());
            }
            if !(w.tps > 0.0 && w.tps <= 2000.0) {
                p.push(format!("workload.tps: {} is not in (0, 2000]", w.tps));
            }
            if !(0.0..=1.0).contains(&w.double_spend) {
                p.push(format!(
                    "workload.double_spend: {} is not in [0, 1]",
                    w.double_spend
                ));
            }
            for n in w.endpoints.iter().filter(|n| !names.contains(n)) {
                p.push(format!("workload.endpoints: no node {n:?}"));
            }
        }
        for (i, step) in self.timeline.iter().enumerate() {
            let at = format!("timeline[{i}]");
            let zones: Vec<&String> = self.testnet.zones.keys().collect();
            for problem in step.fault.problems(&names, &zones) {
                p.push(format!("{at}.fault: {problem}"));
            }
            if step.every.is_some() != step.count.is_some() {
                p.push(format!("{at}: `every` and `count` go together"));
            }
            if let (Some(every), Some(d)) = (step.every, step.duration) {
                if d >= every {
                    p.push(format!("{at}: `for` must be shorter than `every`"));
                }
            }
            let lasting = step.fault.is_heal()
                || matches!(step.fault.process(), Some((_, a, _)) if a.undo().is_none());
            if lasting && step.duration.is_some() {
                p.push(format!("{at}: `for` means nothing for {:?}", step.fault));
            }
        }
        if self.invariants.is_empty() {
            p.push(format!("invariants: {}", Invariants::NOTHING));
        }
        for (i, m) in self.invariants.metrics.iter().enumerate() {
            let at = format!("invariants.metrics[{i}]");
            let foreign = self.testnet.node.is_some();
            p.extend(
                m.problems(&names, self.timeline.len(), foreign)
                    .into_iter()
                    .map(|e| format!("{at}{e}")),
            );
        }
        p.extend(self.contract_problems());
        p
    }

    /// A foreign node speaks none of our contract: the invariants that read
    /// it cannot judge it (and would fail for want of data), so listing them
    /// is a mistake named here.
    fn contract_problems(&self) -> Vec<String> {
        let Some(node) = &self.testnet.node else {
            if self.invariants.workload_ok.is_some() {
                return vec![
                    "invariants.workload_ok: judges a `workload: { command: [...] }`; \
                             our node's load has its own invariants (finality, utxo_agreement)"
                        .into(),
                ];
            }
            return Vec::new();
        };
        let what = node
            .image
            .clone()
            .unwrap_or_else(|| node.packages.join("+"));
        let inv = &self.invariants;
        let mut p = Vec::new();
        for (name, listed) in [
            ("handshake_success", inv.handshake_success.is_some()),
            ("utxo_agreement", inv.utxo_agreement.is_some()),
            ("finality", inv.finality.is_some()),
            ("safety", inv.safety.is_some()),
        ] {
            if listed {
                p.push(format!(
                    "invariants.{name}: reads our node's /status, which the node image {what} \
                     does not serve; judge it with `metrics:` assertions (node selectors, \
                     windows, aggregates), `processes`, `connectivity` and `workload_ok`"
                ));
            }
        }
        if let Some(w) = &self.workload {
            if w.command.is_none() {
                p.push(format!(
                    "workload: our payment load needs our node; give the node image {what} \
                     a `workload: {{ command: [...] }}`"
                ));
            }
        }
        for (i, step) in self.timeline.iter().enumerate() {
            let why = match &step.fault {
                Fault::Clock { .. } if !node.faketime => {
                    "a foreign node's clock moves through libfaketime: set `node: { faketime: \
                     true }` in the testnet file (dynamically linked glibc binaries only: not \
                     Go, static or musl ones)"
                }
                Fault::Byzantine { .. } => {
                    "misbehaviours are our node's seam; the node image cannot be bent this way"
                }
                Fault::Disk { .. } | Fault::DiskFull { .. } => {
                    "disk faults go through our node's storage seam and capped data dir"
                }
                _ => continue,
            };
            p.push(format!("timeline[{i}].fault: {why} (node image {what})"));
        }
        p
    }

    /// The concrete timeline: repeats expanded, `random` nodes chosen with the
    /// seed (the same seed gives the same run), undo events added for `for`.
    pub fn resolve(&self) -> Vec<Event> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let names = self.testnet.node_names();
        let mut pick = |n: &String| -> String {
            if n == "random" {
                names[rng.gen_range(0..names.len())].clone()
            } else {
                n.clone()
            }
        };
        let mut events = Vec::new();
        let mut window = 0;
        for (index, step) in self.timeline.iter().enumerate() {
            for k in 0..step.count.unwrap_or(1) {
                let at = step.at + step.every.unwrap_or_default() * k;
                let fault = step.fault.map_nodes(&mut pick);
                events.push(Event {
                    at,
                    action: Action::Apply(fault.clone()),
                    window,
                    step: index,
                });
                if let Some(d) = step.duration {
                    events.push(Event {
                        at: at + d,
                        action: Action::Undo(fault),
                        window,
                        step: index,
                    });
                }
                window += 1;
            }
        }
        events.sort_by_key(|e| e.at);
        events
    }

    /// When the timeline's last event happens.
    pub fn timeline_end(&self) -> Duration {
        self.resolve()
            .iter()
            .map(|e| e.at)
            .max()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name: demo
seed: 7
testnet: { nodes: 4 }
workload: { tps: 10, duration: 20s }
timeline:
  - at: 5s
    for: 5s
    fault: { partition: [[n0, n1], [n2, n3]] }
  - at: 12s
    every: 3s
    count: 3
    for: 1s
    fault: { pause: random }
invariants:
  safety: {}
  metrics:
    - { metric: testnet_peers, op: ">=", value: 3, per_node: true }
"#;

    #[test]
    fn scenarios_parse_and_resolve_deterministically() {
        let s = Scenario::parse(EXAMPLE, "s.yaml").unwrap();
        assert_eq!(s.invariants.metrics[0].op, Op::Ge);
        assert!(
            s.invariants.finality.is_none(),
            "only what is listed is checked"
        );
        let events = s.resolve();
        assert_eq!(events.len(), 2 + 3 * 2);
        assert_eq!(events[0].at, Duration::from_secs(5));
        assert!(matches!(
            events[1].action,
            Action::Undo(Fault::Partition(_))
        ));
        let paused: Vec<String> = events
            .iter()
            .filter_map(|e| match &e.action {
                Action::Apply(Fault::Pause(n)) => Some(n.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(paused.len(), 3);
        assert!(paused.iter().all(|n| n != "random"));
        assert_eq!(s.resolve(), events, "same seed, same run");
        assert_eq!(s.timeline_end(), Duration::from_secs(19));
        let mut other = s.clone();
        other.seed = 8;
        let picks = |s: &Scenario| format!("{:?}", s.resolve());
        assert!((9..40).any(|seed| {
            other.seed = seed;
            picks(&other) != picks(&s)
        }));
    }

    #[test]
    fn bad_scenarios_name_the_problem() {
        let err = Scenario::parse(&EXAMPLE.replace("pause: random", "pause: n9"), "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("timeline[1].fault: no node \"n9\""), "{err}");
        let err = Scenario::parse(&EXAMPLE.replace("for: 5s", "for: soon"), "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.yaml:") && err.contains("timeline[0].for"),
            "{err}"
        );
        let err = Scenario::parse(&EXAMPLE.replace("partition:", "partitoin:"), "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("partitoin"), "{err}");
        let err = Scenario::parse(&EXAMPLE.replace("op: \">=\"", "op: \"~\""), "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invariants.metrics[0].op"), "{err}");
    }

    #[test]
    fn a_foreign_clock_needs_libfaketime_and_our_seams_are_refused() {
        let foreign = |faketime: &str, fault: &str| {
            let text = format!(
                "name: f\ntestnet:\n  nodes: 3\n  node:\n    image: x\n    command: [x]\n    \
                 ports: {{ p2p: 2380 }}\n{faketime}\ntimeline:\n  - {{ at: 1s, fault: {fault} }}\n\
                 invariants: {{ processes: {{}} }}\n"
            );
            Scenario::parse(&text, "f.yaml").map_err(|e| e.to_string())
        };
        let clock = "{ clock: { nodes: [n1], offset: 30s } }";
        let err = foreign("", clock).unwrap_err();
        assert!(
            err.contains("timeline[0].fault: a foreign node's clock moves through libfaketime"),
            "{err}"
        );
        let green = foreign("    faketime: true", clock);
        assert!(green.is_ok(), "{green:?}");
        for (fault, why) in [
            (
                "{ byzantine: { nodes: [n1], behaviour: mute } }",
                "misbehaviours",
            ),
            ("{ disk_full: { nodes: [n1] } }", "storage seam"),
        ] {
            let err = foreign("    faketime: true", fault).unwrap_err();
            assert!(err.contains(why), "{fault}: {err}");
        }
        let nemesis = |faketime: &str| {
            let text = format!(
                "name: f\ntestnet:\n  nodes: 3\n  node:\n    image: x\n    command: [x]\n    \
                 ports: {{ p2p: 2380 }}\n{faketime}\nnemesis: {{ faults: [clock], every: 5s, for: 2s, \
                 until: 20s }}\ninvariants: {{ processes: {{}} }}\n"
            );
            Scenario::parse(&text, "n.yaml").map_err(|e| e.to_string())
        };
        let err = nemesis("").unwrap_err();
        assert!(
            err.contains("nemesis: clock: a foreign node's clock"),
            "{err}"
        );
        assert!(nemesis("    faketime: true").is_ok());
    }

    #[test]
    fn a_scenario_written_back_reads_the_same() {
        let s = Scenario::parse(EXAMPLE, "s.yaml").unwrap();
        let text = serde_norway::to_string(&s).unwrap();
        assert_eq!(Scenario::parse(&text, "again.yaml").unwrap(), s, "{text}");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testnets");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().ends_with(".scenario.yaml") {
                Scenario::load(&path).unwrap();
                // The YAML fuzz target's property: written out, it reads back the same.
                crate::fuzzing::yaml(&std::fs::read(&path).unwrap());
            }
        }
    }

    #[test]
    fn shipped_scenarios_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testnets");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().ends_with(".scenario.yaml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                assert!(
                    !s.resolve().is_empty() || s.workload.is_some(),
                    "{}",
                    s.name
                );
                n += 1;
            }
        }
        assert!(n >= 9, "{n} scenarios");
    }
}
