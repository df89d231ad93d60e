//! Invariant checkers: pure functions of [`Observations`], one verdict each.
//! They fail closed: a node that never answered, or went silent before the
//! end, a scrape that never showed the metric asked for, a testnet that did
//! not settle, a list of invariants that checks nothing: each is a failure
//! with its reason, never a pass.
//!
//! - [`network`]: handshake success, connectivity (mesh, duplicates).
//! - [`ledger`]: UTXO agreement and value, safety (finalized sets, conflicts).
//! - [`finality`]: every payment final everywhere within its bound, nothing
//!   final while no validator can gather a quorum.
//! - [`process`]: no crash or restart outside the timeline.
//! - [`effect`]: every fault of the timeline was seen to bite.
//! - [`metric`]: custom metric assertions.
//! - [`workload`]: a workload command succeeded.

pub mod effect;
mod finality;
mod ledger;
mod metric;
mod network;
mod process;
mod workload;

use serde::{Deserialize, Serialize};

pub use effect::faults_took_effect;
pub use finality::finality;
pub use ledger::{safety, utxo_agreement};
pub use metric::metric;
pub use network::{connectivity, handshake_success};
pub use process::processes;
pub use workload::workload_ok;

use crate::observe::{Observations, Sample};
use crate::scenario::Invariants;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub invariant: String,
    pub passed: bool,
    /// One line: what was seen.
    pub summary: String,
    /// Where: one line per offending node, payment or moment (bounded).
    pub details: Vec<String>,
}

impl Verdict {
    fn new(invariant: &str, problems: Vec<String>, ok_summary: String) -> Verdict {
        let passed = problems.is_empty();
        let summary = if passed {
            ok_summary
        } else {
            format!("{} problem(s): {}", problems.len(), problems[0])
        };
        Verdict {
            invariant: invariant.to_owned(),
            passed,
            summary,
            details: problems.into_iter().take(50).collect(),
        }
    }
}

/// Runs every invariant the scenario lists; a list that checks nothing is a
/// failure of its own.
pub fn check_all(inv: &Invariants, obs: &Observations) -> Vec<Verdict> {
    let mut out = Vec::new();
    if let Some(h) = &inv.handshake_success {
        out.push(handshake_success(obs, h.min_rate));
    }
    if let Some(c) = &inv.connectivity {
        out.push(connectivity(obs, c.within.as_secs_f64()));
    }
    if inv.utxo_agreement.is_some() {
        out.push(utxo_agreement(obs));
    }
    if let Some(f) = &inv.finality {
        out.push(finality(obs, f.within.as_secs_f64()));
    }
    if inv.safety.is_some() {
        out.push(safety(obs));
    }
    if inv.processes.is_some() {
        out.push(processes(obs));
    }
    if inv.workload_ok.is_some() {
        out.push(workload_ok(obs));
    }
    for m in &inv.metrics {
        out.push(metric(obs, m));
    }
    if inv.is_empty() {
        out.push(Verdict::new(
            "invariants",
            vec![Invariants::NOTHING.into()],
            String::new(),
        ));
    }
    if inv.faults_took_effect {
        out.push(faults_took_effect(obs));
    }
    out
}

/// A counter's running total over a node's samples, at each sample that has
/// it: after a restart (the uptime went back, or the counter did) its counters
/// began at 0 again, so the new value is all increment.
fn counter_series(samples: &[&Sample], value: impl Fn(&Sample) -> Option<f64>) -> Vec<(f64, f64)> {
    let (mut total, mut prev, mut uptime, mut pid) = (0.0, 0.0, 0.0, None);
    let mut out = Vec::new();
    for s in samples {
        let Some(v) = value(s) else {
            continue;
        };
        // Ours says its uptime; any node's agent says its main process.
        let new_uptime = s.status.as_ref().map(|st| st.uptime_secs);
        let new_pid = s.process.as_ref().and_then(|p| p.pid);
        let restarted = new_uptime.is_some_and(|u| u + 0.5 < uptime)
            || (new_uptime.is_none() && pid.is_some() && new_pid.is_some() && new_pid != pid)
            || v < prev;
        total += if restarted { v } else { v - prev };
        prev = v;
        uptime = new_uptime.unwrap_or(uptime);
        pid = new_pid.or(pid);
        out.push((s.t, total));
    }
    out
}

/// The sum of a counter's increments over a node's samples.
fn counter_total(samples: &[&Sample], value: impl Fn(&Sample) -> Option<f64>) -> f64 {
    counter_series(samples, value).last().map_or(0.0, |v| v.1)
}

fn never_answered(obs: &Observations, node: &str) -> Option<String> {
    match obs.foreign {
        false => obs
            .last_status(node)
            .is_none()
            .then(|| format!("{node} never answered /status during the run")),
        true => (!obs.of(node).any(|s| obs.up(s)))
            .then(|| format!("{node}'s process was never seen running by its holder's agent")),
    }
}

/// When the testnet did not settle at the end, why: verdicts "at quiescence"
/// cannot be trusted then.
fn unsettled(obs: &Observations) -> Option<String> {
    let q = obs.quiescence.as_ref().filter(|q| !q.reached)?;
    Some(format!(
        "the testnet did not settle within {:.0}s of the end: {}",
        q.waited_secs, q.detail
    ))
}

#[cfg(test)]
mod tests;
