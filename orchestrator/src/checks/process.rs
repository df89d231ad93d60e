//! No node went down, restarted or lost its store unless a fault of the
//! timeline did it (a lost store only under a disk fault).

use super::{never_answered, Verdict};
use crate::observe::{FaultKind, Observations, Sample};

/// How long a node restarted by the timeline may take to answer again.
const COME_BACK_SECS: f64 = 20.0;

pub fn processes(obs: &Observations) -> Verdict {
    let mut problems = Vec::new();
    // A process fault may take its node down; so may a memory limit (an OOM
    // kill is a crash the timeline caused, and its undo starts the node).
    let cause_of = |node: &str, t: f64, kinds: &[FaultKind]| {
        obs.faults.iter().find(|f| {
            kinds.contains(&f.kind)
                && f.nodes.iter().any(|n| n == node)
                && t >= f.start
                && t <= f.end.map_or(f64::INFINITY, |e| e + COME_BACK_SECS)
        })
    };
    // A disk fault fails the node closed (it stays up); only its undo's
    // restart, after the window, takes it down.
    let disk_heal = |node: &str, t: f64| {
        obs.faults.iter().find(|f| {
            f.kind == FaultKind::Disk
                && f.nodes.iter().any(|n| n == node)
                && f.end.is_some_and(|e| t >= e && t <= e + COME_BACK_SECS)
        })
    };
    let cause = |node: &str, t: f64| {
        cause_of(node, t, &[FaultKind::Process, FaultKind::Resource]).or_else(|| disk_heal(node, t))
    };
    let allowed = |node: &str, t: f64| cause(node, t).is_some();
    let mut caused = Vec::new();
    for node in &obs.nodes {
        if let Some(p) = never_answered(obs, node) {
            problems.push(p);
            continue;
        }
        let mut prev: Option<&Sample> = None;
        for s in obs.of(node) {
            // A failed store is excused only under a disk fault on the node.
            if let Some(e) = s.status.as_ref().and_then(|st| st.store_error.as_ref()) {
                if let Some(f) = cause_of(node, s.t, &[FaultKind::Disk]) {
                    let note = format!(
                        "{node}'s store failed under `{}` and it stopped voting (the timeline caused it)",
                        f.label
                    );
                    if !caused.contains(&note) {
                        caused.push(note);
                    }
                    prev = Some(s);
                    continue;
                }
                problems.push(format!(
                    "{node}'s store failed at +{:.1}s and it stopped voting: {e}",
                    s.t - obs.started
                ));
                break;
            }
            let down = !obs.up(s);
            let restarted = match (prev.and_then(|p| p.status.as_ref()), s.status.as_ref()) {
                (Some(a), Some(b)) => b.uptime_secs + 0.5 < a.uptime_secs,
                _ => false,
            } || match (prev.and_then(|p| p.process.as_ref()), s.process.as_ref()) {
                (Some(a), Some(b)) => {
                    b.restarts > a.restarts
                        || (a.pid.is_some() && b.pid.is_some() && a.pid != b.pid)
                }
                _ => false,
            };
            if down {
                if let Some(f) = cause_of(node, s.t, &[FaultKind::Resource]) {
                    let note = format!(
                        "{node} went down under `{}` (a crash the timeline caused)",
                        f.label
                    );
                    if !caused.contains(&note) {
                        caused.push(note);
                    }
                }
            }
            if (down || restarted) && !allowed(node, s.t) {
                problems.push(format!(
                    "{node} {} at +{:.1}s with no process fault in the timeline",
                    if down { "was down" } else { "restarted" },
                    s.t - obs.started
                ));
                break;
            }
            prev = Some(s);
        }
    }
    let mut summary = "no node crashed or restarted outside the timeline".to_owned();
    if !caused.is_empty() {
        summary.push_str(&format!("; {}", caused.join("; ")));
    }
    Verdict::new("processes", problems, summary)
}
