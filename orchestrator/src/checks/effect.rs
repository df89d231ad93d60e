//! Did each fault of the timeline bite? A fault with no observed effect makes
//! every later verdict about it vacuous, so `faults_took_effect` fails on it.
//!
//! What counts as seen, by fault:
//! - a cut: its drop rules dropped packets, or a node lost peers;
//! - a delay or a zone latency: pings slower than half the delay;
//! - loss, duplicate: the rules dropped or copied packets (the agent's counters);
//! - a bandwidth cap: it held packets back (tbf overlimits);
//! - kill, stop, pause: the node was seen down, or the agent (or the engine)
//!   reported the process stopped or paused; restart: the node came back with
//!   a fresh uptime; start, resume: the node answered afterwards.
//!
//! A fault that clears (a rate of 0) has nothing to show and passes.

use super::Verdict;
use crate::fault::{Fault, FaultEvent, ProcessAction};
use crate::observe::{split_series, Observations, Sample};

/// How long after a window's end its effect may still show in a sample.
const SLACK_SECS: f64 = 2.0;
/// How long a restarted or started node may take to answer again.
const COME_BACK_SECS: f64 = 20.0;

pub fn faults_took_effect(obs: &Observations) -> Verdict {
    let mut problems = Vec::new();
    let mut seen = 0;
    for w in &obs.faults {
        match effect(obs, w) {
            Ok(_) => seen += 1,
            Err(why) => problems.push(format!(
                "`{}` at +{:.1}s: no observed effect ({why})",
                w.label,
                w.start - obs.started
            )),
        }
    }
    Verdict::new(
        "faults_took_effect",
        problems,
        format!("every fault of the timeline was seen to bite ({seen})"),
    )
}

/// What was seen of fault window `w`, or why nothing was.
pub fn effect(obs: &Observations, w: &FaultEvent) -> Result<String, String> {
    let Some(fault) = &w.fault else {
        return Err("the run did not record what the fault was".into());
    };
    let until = w.end.unwrap_or(obs.ended) + SLACK_SECS;
    let during = |node: &str| -> Vec<&Sample> {
        obs.samples
            .iter()
            .filter(|s| s.node == node && s.t >= w.start && s.t <= until)
            .collect()
    };
    let at = |s: &Sample| format!("+{:.1}s", s.t - obs.started);
    match fault {
        Fault::Partition(_) | Fault::Shape(_) => cut_effect(obs, w, &during, &at),
        Fault::Delay { ms: 0, .. }
        | Fault::Loss { percent: 0.0, .. }
        | Fault::Duplicate { percent: 0.0, .. }
        | Fault::Bandwidth { kbit: 0, .. } => Ok("clears a fault: nothing to see".into()),
        // A foreign node measures no pings for us: the packets held in the
        // queue are the witness, on the receiving nodes (a delay holds what
        // arrives from the delayed nodes).
        Fault::Delay { .. } | Fault::Latency { .. } if obs.foreign => {
            let everywhere = FaultEvent {
                nodes: obs.nodes.clone(),
                ..w.clone()
            };
            counted(
                &everywhere,
                &during,
                "testnet_fault_matched_packets{kind=\"delay\"}",
                "held",
            )
        }
        Fault::Delay { ms, .. } | Fault::Latency { ms, .. } => slow_pings(obs, w, *ms, until),
        Fault::Loss { .. } => counted(
            w,
            &during,
            "testnet_fault_matched_packets{kind=\"loss\"}",
            "dropped",
        ),
        Fault::Duplicate { .. } => counted(
            w,
            &during,
            "testnet_fault_matched_packets{kind=\"duplicate\"}",
            "copied",
        ),
        Fault::Bandwidth { .. } => counted(
            w,
            &during,
            "testnet_fault_bandwidth_overlimits",
            "held back",
        ),
        Fault::Heal | Fault::HealNodes(_) => Ok("a heal".into()),
        // The engine's or the node's read-back (see `chaos::limits`, `chaos::disk`).
        Fault::Cpu { .. }
        | Fault::Memory { .. }
        | Fault::Clock { .. }
        | Fault::Byzantine { .. }
        | Fault::DiskFull { .. }
        | Fault::Disk { .. }
        | Fault::Upgrade { .. } => match w.applied.as_deref() {
            Some(a) if a.contains("in place (read back)") => Ok(a.to_owned()),
            other => Err(format!(
                "nothing read the change back in place ({})",
                other.unwrap_or("nothing reported")
            )),
        },
        other => {
            let (node, action, _) = other.process().expect("the rest are process faults");
            process_effect(obs, w, node, action)
        }
    }
}

fn cut_effect<'a>(
    obs: &'a Observations,
    w: &FaultEvent,
    during: &dyn Fn(&str) -> Vec<&'a Sample>,
    at: &dyn Fn(&Sample) -> String,
) -> Result<String, String> {
    if let Ok(dropped) = counted(
        w,
        during,
        "testnet_fault_matched_packets{kind=\"drop\"}",
        "dropped",
    ) {
        return Ok(dropped);
    }
    let n = obs.nodes.len();
    for node in &w.nodes {
        if let Some(s) = during(node)
            .into_iter()
            .find(|s| s.status.as_ref().is_some_and(|st| st.peers + 1 < n))
        {
            let peers = s.status.as_ref().map_or(0, |st| st.peers);
            return Ok(format!(
                "{node} down to {peers} of {} peers at {}",
                n - 1,
                at(s)
            ));
        }
    }
    Err("its rules dropped no packet and no node lost a peer".into())
}

/// The largest value of an agent figure on the fault's nodes during it.
fn counted<'a>(
    w: &FaultEvent,
    during: &dyn Fn(&str) -> Vec<&'a Sample>,
    series: &str,
    verb: &str,
) -> Result<String, String> {
    let best = w
        .nodes
        .iter()
        .filter_map(|n| {
            let v = during(n)
                .iter()
                .filter_map(|s| s.agent_metrics.get(series).copied())
                .fold(0.0, f64::max);
            (v > 0.0).then_some((n, v))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match best {
        Some((node, v)) => Ok(format!("{node}'s rules {verb} {v} packets")),
        None => Err(format!(
            "no agent of {} reported packets {verb}",
            w.nodes.join(",")
        )),
    }
}

/// Pings slower than half of `ms` during the window, on any node.
fn slow_pings(obs: &Observations, w: &FaultEvent, ms: u32, until: f64) -> Result<String, String> {
    let threshold = ms as f64 / 2000.0;
    for node in &obs.nodes {
        let before = obs
            .of(node)
            .filter(|s| s.t <= w.start)
            .filter_map(|s| slower_than(s, threshold))
            .last()
            .unwrap_or(0.0);
        let most = obs
            .of(node)
            .filter(|s| s.t > w.start && s.t <= until)
            .filter_map(|s| slower_than(s, threshold))
            .fold(before, f64::max);
        if most > before {
            return Ok(format!(
                "{node} measured {} pings slower than {} ms",
                most - before,
                ms / 2
            ));
        }
    }
    Err(format!("no node measured a ping slower than {} ms", ms / 2))
}

/// Pings of this sample's node slower than the largest histogram bound at or
/// under `threshold` seconds (cumulative).
fn slower_than(s: &Sample, threshold: f64) -> Option<f64> {
    let count = *s.metrics.get("testnet_ping_rtt_seconds_count")?;
    let under = s
        .metrics
        .iter()
        .filter_map(|(k, v)| {
            let (name, labels) = split_series(k);
            let le: f64 = labels.get("le")?.parse().ok()?;
            (name == "testnet_ping_rtt_seconds_bucket" && le <= threshold).then_some((le, *v))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or(0.0, |(_, v)| v);
    Some(count - under)
}

fn process_effect(
    obs: &Observations,
    w: &FaultEvent,
    node: &str,
    action: ProcessAction,
) -> Result<String, String> {
    let applied = w.applied.as_deref().unwrap_or("");
    let until = w.end.unwrap_or(obs.ended) + SLACK_SECS;
    let samples: Vec<&Sample> = obs.of(node).filter(|s| s.t >= w.start).collect();
    let at = |s: &Sample| format!("+{:.1}s", s.t - obs.started);
    match action {
        ProcessAction::Kill | ProcessAction::Stop | ProcessAction::Pause => {
            if let Some(s) = samples.iter().find(|s| s.t <= until && !obs.up(s)) {
                return Ok(format!("{node} was down at {}", at(s)));
            }
            // A node that answered its scrapes before and none in the window
            // did not run then, whatever its process table said at the look.
            let answered_before = obs.of(node).any(|s| s.t < w.start && !s.metrics.is_empty());
            if let Some(s) = samples
                .iter()
                .find(|s| s.t <= until && answered_before && s.metrics.is_empty())
            {
                return Ok(format!("{node} answered no scrape at {}", at(s)));
            }
            // The agent's report ("stopped", "paused") or the engine's
            // ("killed, ...", "stopped", "paused").
            if ["killed", "stopped", "paused"]
                .iter()
                .any(|e| applied.contains(e))
            {
                return Ok(format!("{node}: {}", applied.trim()));
            }
            Err(format!(
                "{node} was never seen down and nothing reported it stopped or paused"
            ))
        }
        ProcessAction::Restart if obs.foreign => {
            let before = obs
                .of(node)
                .filter(|s| s.t < w.start)
                .filter_map(|s| s.process.as_ref()?.pid)
                .last();
            samples
                .iter()
                .filter(|s| s.t <= w.start + COME_BACK_SECS)
                .find(|s| {
                    let pid = s.process.as_ref().and_then(|p| p.pid);
                    obs.up(s) && pid.is_some() && pid != before
                })
                .map(|s| format!("{node} ran a new main process at {}", at(s)))
                .ok_or_else(|| {
                    format!("{node} was never seen running a new process after the restart")
                })
        }
        ProcessAction::Restart => samples
            .iter()
            .filter(|s| s.t <= w.start + COME_BACK_SECS)
            .find(|s| {
                s.status
                    .as_ref()
                    .is_some_and(|st| st.uptime_secs <= s.t - w.start + 1.0)
            })
            .map(|s| format!("{node} answered with a fresh uptime at {}", at(s)))
            .ok_or_else(|| format!("{node} never answered with an uptime from after the restart")),
        ProcessAction::Start | ProcessAction::Resume => samples
            .iter()
            .filter(|s| s.t <= w.start + COME_BACK_SECS)
            .find(|s| obs.up(s))
            .map(|s| format!("{node} was up at {}", at(s)))
            .ok_or_else(|| format!("{node} did not answer within {COME_BACK_SECS}s")),
    }
}
