//! Metric assertions of a scenario's `invariants.metrics`, for our metrics or
//! any node's:
//!
//! ```yaml
//! - { metric: testnet_duplicate_connections_resolved_total, op: "==", value: 0 }
//! - { metric: etcd_server_has_leader, op: "==", value: 1, nodes: majority, during: "timeline[0]", within: 10s }
//! - { metric: etcd_server_is_leader, agg: sum, op: "<=", value: 1, always: true }
//! ```
//! Across nodes: `agg` (sum, max, min, count of nodes exporting it) compares
//! one figure; else each selected node is judged and `nodes` says how many
//! must hold (all, majority, any, or a list). When: at the span's end by
//! default, at some instant `within` its start, or at every instant with
//! `always`; the span is the run, or a timeline step's fault window with
//! `during`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{opt_dur, ser_opt_dur};
use crate::op::Op;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricAssertion {
    /// Series name.
    pub metric: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub op: Op,
    pub value: f64,
    /// Must hold at some point within this long of the span's start (else:
    /// at its end).
    #[schemars(schema_with = "crate::spelling::duration")]
    #[serde(
        default,
        deserialize_with = "opt_dur",
        serialize_with = "ser_opt_dur",
        skip_serializing_if = "Option::is_none"
    )]
    pub within: Option<Duration>,
    /// Must hold at every instant of the span.
    #[serde(default)]
    pub always: bool,
    /// With `always`: a violation that lasts no longer than this is
    /// tolerated (Raft's deposed leader believes it leads until it misses a
    /// quorum for an election timeout or two).
    #[schemars(schema_with = "crate::spelling::duration")]
    #[serde(
        default,
        deserialize_with = "opt_dur",
        serialize_with = "ser_opt_dur",
        skip_serializing_if = "Option::is_none"
    )]
    pub tolerate: Option<Duration>,
    /// The span: the fault window of a timeline step (`timeline[0]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during: Option<String>,
    /// Which nodes must hold it (judged per node); with `agg`, which nodes
    /// are aggregated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeSelect>,
    /// One figure across the nodes (default without `nodes`: their sum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agg: Option<Agg>,
    /// Each node on its own (the same as `nodes: all`).
    #[serde(default)]
    pub per_node: bool,
    /// A metric that no scrape shows counts as 0 (else: a failure).
    #[serde(default)]
    pub allow_absent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum NodeSelect {
    /// `all`, `majority` or `any`.
    Quantifier(Quantifier),
    /// These nodes, each.
    List(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Quantifier {
    All,
    Majority,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Agg {
    Sum,
    Max,
    Min,
    /// How many of the nodes export a matching series.
    Count,
}

impl NodeSelect {
    /// The nodes judged, and how many of them must hold.
    pub fn resolve(&self, all: &[String]) -> (Vec<String>, usize) {
        match self {
            NodeSelect::Quantifier(q) => {
                let need = match q {
                    Quantifier::All => all.len(),
                    Quantifier::Majority => all.len() / 2 + 1,
                    Quantifier::Any => 1,
                };
                (all.to_vec(), need)
            }
            NodeSelect::List(list) => (list.clone(), list.len()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            NodeSelect::Quantifier(Quantifier::All) => "on every node".into(),
            NodeSelect::Quantifier(Quantifier::Majority) => "on a majority of nodes".into(),
            NodeSelect::Quantifier(Quantifier::Any) => "on some node".into(),
            NodeSelect::List(l) => format!("on {}", l.join(", ")),
        }
    }
}

/// `timeline[3]` -> 3.
pub fn step_index(during: &str) -> Option<usize> {
    during
        .strip_prefix("timeline[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

impl MetricAssertion {
    /// Its problems, each starting with the field path below the assertion
    /// (`.during: ...`); `steps` is the timeline's length.
    pub fn problems(&self, names: &[String], steps: usize, foreign: bool) -> Vec<String> {
        let mut p = Vec::new();
        if !foreign && !self.metric.starts_with("testnet_") {
            p.push(format!(
                ".metric: {:?} is not a testnet_ metric (our node exports only those)",
                self.metric
            ));
        }
        if self.always && self.within.is_some() {
            p.push(
                ": `always` and `within` exclude each other (every instant, or some instant)"
                    .into(),
            );
        }
        if self.tolerate.is_some() && !self.always {
            p.push(".tolerate: goes with `always: true` (how long a violation may last)".into());
        }
        if self.agg.is_some() && self.per_node {
            p.push(
                ": `agg` makes one figure of the nodes; `per_node` judges each: pick one".into(),
            );
        }
        if self.nodes.is_some() && self.per_node {
            p.push(": `per_node` is `nodes: all`; give just one of them".into());
        }
        if let Some(NodeSelect::List(list)) = &self.nodes {
            for n in list.iter().filter(|n| !names.contains(n)) {
                p.push(format!(".nodes: no node {n:?}"));
            }
            if list.is_empty() {
                p.push(".nodes: an empty list selects nothing".into());
            }
        }
        if let Some(d) = &self.during {
            match step_index(d) {
                Some(i) if i < steps => {}
                Some(i) => p.push(format!(
                    ".during: timeline[{i}] does not exist (the timeline has {steps} steps)"
                )),
                None => p.push(format!(".during: {d:?} is not of the form timeline[N]")),
            }
        }
        p
    }

    /// How the verdict names it: `metric etcd_server_is_leader sum <= 1 always`.
    pub fn describe(&self) -> String {
        let mut text = format!("metric {}", self.metric);
        if !self.labels.is_empty() {
            text.push_str(&format!("{:?}", self.labels));
        }
        if let Some(a) = self.agg {
            text.push_str(&format!(" {a:?}").to_lowercase());
        }
        text.push_str(&format!(" {} {}", self.op.symbol(), self.value));
        if let Some(n) = &self.nodes {
            text.push_str(&format!(" {}", n.describe()));
        }
        if let Some(d) = &self.during {
            text.push_str(&format!(" during {d}"));
        }
        if self.always {
            text.push_str(" always");
        }
        if let Some(t) = self.tolerate {
            text.push_str(&format!(" (tolerating {})", humantime::format_duration(t)));
        }
        if let Some(w) = self.within {
            text.push_str(&format!(" within {}", humantime::format_duration(w)));
        }
        text
    }
}
