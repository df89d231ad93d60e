//! Invariant checkers: pure functions of [`Observations`], one verdict each.
//! Edge cases they handle on purpose: a node that never answered (a failure,
//! named), a scrape that failed (the sample is skipped), counters reset by a
//! restart (increments are summed across the reset).

use serde::{Deserialize, Serialize};

use crate::fault::window;
use crate::observe::{split_series, FaultKind, Observations, Sample};
use crate::scenario::{Invariants, MetricAssertion};

/// How long a node restarted by the timeline may take to answer again.
const COME_BACK_SECS: f64 = 20.0;
/// Certificates formed just before a partition may land this long after it.
const PARTITION_GRACE_SECS: f64 = 1.0;

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

/// Runs every invariant the scenario lists.
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
    for m in &inv.metrics {
        out.push(metric(obs, m));
    }
    out
}

/// Sum of a counter's increments over a node's samples. After a restart (the
/// uptime went back, or the counter did) its counters began at 0 again: the new
/// value is all increment.
fn counter_total(samples: &[&Sample], value: impl Fn(&Sample) -> Option<f64>) -> f64 {
    let (mut total, mut prev, mut uptime) = (0.0, 0.0, 0.0);
    for s in samples {
        let (Some(v), Some(st)) = (value(s), s.status.as_ref()) else {
            continue;
        };
        let restarted = st.uptime_secs + 0.5 < uptime || v < prev;
        total += if restarted { v } else { v - prev };
        prev = v;
        uptime = st.uptime_secs;
    }
    total
}

fn never_answered(obs: &Observations, node: &str) -> Option<String> {
    obs.last_status(node)
        .is_none()
        .then(|| format!("{node} never answered /status during the run"))
}

pub fn handshake_success(obs: &Observations, min_rate: f64) -> Verdict {
    let mut problems = Vec::new();
    let (mut attempts, mut completed) = (0.0, 0.0);
    for node in &obs.nodes {
        if let Some(p) = never_answered(obs, node) {
            problems.push(p);
            continue;
        }
        let samples: Vec<&Sample> = obs.of(node).collect();
        let a = counter_total(&samples, |s| {
            s.status.as_ref().map(|st| st.handshake_attempts as f64)
        });
        let c = counter_total(&samples, |s| {
            s.status.as_ref().map(|st| st.handshakes_completed as f64)
        });
        attempts += a;
        completed += c;
        if a > 0.0 && c / a < min_rate {
            let reasons: Vec<String> = samples
                .iter()
                .rev()
                .find(|s| !s.metrics.is_empty())
                .map(|s| {
                    s.metrics
                        .iter()
                        .filter(|(k, v)| {
                            k.starts_with("testnet_handshake_failures_total") && **v > 0.0
                        })
                        .map(|(k, v)| {
                            format!("{}={v}", split_series(k).1.get("reason").unwrap_or(&"?"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            problems.push(format!(
                "{node}: {c} of {a} handshakes completed ({:.1}% < {:.1}%); failures by reason: {}",
                100.0 * c / a,
                100.0 * min_rate,
                if reasons.is_empty() {
                    "-".into()
                } else {
                    reasons.join(", ")
                }
            ));
        }
    }
    let rate = if attempts > 0.0 {
        completed / attempts
    } else {
        1.0
    };
    if attempts > 0.0 && rate < min_rate && problems.is_empty() {
        problems.push(format!(
            "overall {:.1}% < {:.1}%",
            100.0 * rate,
            100.0 * min_rate
        ));
    }
    Verdict::new(
        "handshake_success",
        problems,
        format!(
            "{completed} of {attempts} handshakes completed ({:.2}%)",
            100.0 * rate
        ),
    )
}

/// Full mesh at the start, within `within` of every heal, and at the end; no
/// node ever holds more connections than it has peers (a duplicate pair).
pub fn connectivity(obs: &Observations, within: f64) -> Verdict {
    let mut problems = Vec::new();
    let n = obs.nodes.len();
    for node in &obs.nodes {
        if let Some(p) = never_answered(obs, node) {
            problems.push(p);
        }
        if let Some(s) = obs.of(node).find(|s| {
            s.status
                .as_ref()
                .is_some_and(|st| st.peers > st.expected_peers)
        }) {
            let st = s.status.as_ref().expect("found with a status");
            problems.push(format!(
                "{node} held {} connections for {} peers at +{:.1}s (a pair connected twice)",
                st.peers,
                st.expected_peers,
                s.t - obs.started
            ));
        }
    }
    let active_at = |t: f64| {
        window::active_at(&obs.faults, t, obs.ended)
            .next()
            .is_some()
    };
    let mut heals: Vec<f64> = vec![obs.started];
    heals.extend(window::heals(&obs.faults, obs.ended));
    for h in heals {
        let meshed = |node: &String| {
            obs.of(node).any(|s| {
                s.t >= h
                    && s.t <= h + within
                    && s.status.as_ref().is_some_and(|st| st.peers + 1 >= n)
            })
        };
        let missing: Vec<&String> = obs.nodes.iter().filter(|n| !meshed(n)).collect();
        // A window that ends after the run's last sample is judged at the end.
        if !missing.is_empty() && h + within <= obs.ended {
            problems.push(format!(
                "no full mesh within {within}s of +{:.1}s ({}): {} below {} peers",
                h - obs.started,
                if h == obs.started { "start" } else { "heal" },
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                n - 1
            ));
        }
    }
    for node in &obs.nodes {
        if let Some(st) = obs.of(node).last().and_then(|s| s.status.as_ref()) {
            if st.peers + 1 < n && !active_at(obs.ended - 0.001) {
                problems.push(format!("{node} ended with {} of {} peers", st.peers, n - 1));
            }
        }
    }
    Verdict::new(
        "connectivity",
        problems,
        format!(
            "full mesh of {n} at start and within {within}s of every heal; no duplicate connection"
        ),
    )
}

/// At the end (quiescence): equal UTXO digests, and on every node
/// `total_value + fees == genesis_supply`.
pub fn utxo_agreement(obs: &Observations) -> Verdict {
    let mut problems = Vec::new();
    let mut digests: Vec<(String, String)> = Vec::new();
    for node in &obs.nodes {
        let Some(st) = obs.last_status(node) else {
            problems.push(format!(
                "{node} never answered /status: its ledger is unknown"
            ));
            continue;
        };
        digests.push((node.clone(), st.utxo_digest.clone()));
        if st.total_value.checked_add(st.fees) != Some(st.genesis_supply) {
            problems.push(format!(
                "{node}: total value {} + fees {} != genesis supply {} (value {} out of nothing)",
                st.total_value,
                st.fees,
                st.genesis_supply,
                if st.total_value + st.fees > st.genesis_supply {
                    "created"
                } else {
                    "lost"
                }
            ));
        }
    }
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (node, d) in &digests {
        match groups.iter_mut().find(|(g, _)| g == d) {
            Some((_, v)) => v.push(node.clone()),
            None => groups.push((d.clone(), vec![node.clone()])),
        }
    }
    if groups.len() > 1 {
        problems.push(format!(
            "UTXO digests disagree: {}",
            groups
                .iter()
                .map(|(d, v)| format!("{} on {}", &d[..d.len().min(12)], v.join(",")))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Verdict::new(
        "utxo_agreement",
        problems,
        format!(
            "{} nodes agree on the UTXO digest; value conserved",
            digests.len()
        ),
    )
}

/// Every accepted payment final on every node within `within` of being sent
/// (or of the end of a fault window it overlapped), and nothing final while a
/// partition leaves no group with a quorum.
pub fn finality(obs: &Observations, within: f64) -> Verdict {
    let Some(load) = &obs.load else {
        return Verdict::new(
            "finality",
            vec!["no workload ran: nothing to check".into()],
            String::new(),
        );
    };
    let mut problems = Vec::new();
    let names: Vec<String> = load.nodes.iter().map(|n| n.name.clone()).collect();
    let mut worst = 0.0f64;
    for p in &load.payments {
        let sent = p.sent_ms as f64 / 1000.0;
        // Faults overlapping the payment's life push its deadline to their end.
        let mut start = sent;
        for f in &obs.faults {
            let end = f.end.unwrap_or(obs.ended);
            if f.start <= start + within && end > start {
                start = start.max(end);
            }
        }
        for (i, at) in p.final_ms.iter().enumerate() {
            let node = names.get(i).map(String::as_str).unwrap_or("?");
            match at {
                None => problems.push(format!(
                    "payment sent at +{:.1}s never final on {node}",
                    sent - obs.started
                )),
                Some(ms) => {
                    let t = *ms as f64 / 1000.0;
                    worst = worst.max(t - sent);
                    if t > start + within {
                        problems.push(format!(
                            "payment sent at +{:.1}s final on {node} only at +{:.1}s (bound {within}s after +{:.1}s)",
                            sent - obs.started,
                            t - obs.started,
                            start - obs.started
                        ));
                    }
                    if let Some(f) = obs.faults.iter().find(|f| {
                        f.no_quorum
                            && t > f.start + PARTITION_GRACE_SECS
                            && t < f.end.unwrap_or(obs.ended)
                    }) {
                        problems.push(format!(
                            "payment final on {node} at +{:.1}s during `{}` which leaves no quorum (false finality)",
                            t - obs.started,
                            f.label
                        ));
                    }
                }
            }
        }
    }
    if load.payments.is_empty() {
        problems.push("no payment was accepted".into());
    }
    Verdict::new(
        "finality",
        problems,
        format!(
            "{} payments final on all {} nodes; slowest {:.2}s; p99 at a node {:.0} ms",
            load.payments.len(),
            names.len(),
            worst,
            load.latency_p99_ms
        ),
    )
}

/// No conflicting pair finalized anywhere (by the workload's twins and by each
/// node's own count of conflicting certificates); every node finalized the same
/// number of transactions at the end.
pub fn safety(obs: &Observations) -> Verdict {
    let mut problems = Vec::new();
    if let Some(load) = &obs.load {
        if load.conflicting_pairs_finalized > 0 {
            problems.push(format!(
                "{} of {} double-spend pairs had both twins finalized",
                load.conflicting_pairs_finalized, load.double_spend_pairs
            ));
        }
    }
    let mut counts = Vec::new();
    for node in &obs.nodes {
        let Some(st) = obs.last_status(node) else {
            problems.push(format!("{node} never answered /status"));
            continue;
        };
        let conflicting = obs
            .of(node)
            .filter_map(|s| s.status.as_ref())
            .map(|s| s.conflicting_certificates)
            .max()
            .unwrap_or(0);
        if conflicting > 0 {
            problems.push(format!(
                "{node} saw {conflicting} conflicting certificate(s)"
            ));
        }
        counts.push((node.clone(), st.finalized_transactions));
    }
    if counts.windows(2).any(|w| w[0].1 != w[1].1) {
        problems.push(format!(
            "nodes finalized different sets: {}",
            counts
                .iter()
                .map(|(n, c)| format!("{n}={c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Verdict::new(
        "safety",
        problems,
        "no conflicting pair finalized; every node finalized the same transactions".into(),
    )
}

/// No node went down or restarted unless a process fault of the timeline did it.
pub fn processes(obs: &Observations) -> Verdict {
    let mut problems = Vec::new();
    let allowed = |node: &str, t: f64| {
        obs.faults.iter().any(|f| {
            f.kind == FaultKind::Process
                && f.nodes.iter().any(|n| n == node)
                && t >= f.start
                && t <= f.end.map_or(f64::INFINITY, |e| e + COME_BACK_SECS)
        })
    };
    for node in &obs.nodes {
        if let Some(p) = never_answered(obs, node) {
            problems.push(p);
            continue;
        }
        let mut prev: Option<&Sample> = None;
        for s in obs.of(node) {
            let down = s.status.is_none();
            let restarted = match (prev.and_then(|p| p.status.as_ref()), s.status.as_ref()) {
                (Some(a), Some(b)) => b.uptime_secs + 0.5 < a.uptime_secs,
                _ => false,
            } || match (prev.and_then(|p| p.process.as_ref()), s.process.as_ref()) {
                (Some(a), Some(b)) => b.restarts > a.restarts,
                _ => false,
            };
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
    Verdict::new(
        "processes",
        problems,
        "no node crashed or restarted outside the timeline".into(),
    )
}

fn metric_value(s: &Sample, m: &MetricAssertion) -> Option<f64> {
    if s.metrics.is_empty() {
        return None; // the scrape failed
    }
    Some(
        s.metrics
            .iter()
            .filter(|(k, _)| {
                let (name, labels) = split_series(k);
                name == m.metric
                    && m.labels
                        .iter()
                        .all(|(lk, lv)| labels.get(lk.as_str()) == Some(&lv.as_str()))
            })
            .map(|(_, v)| v)
            .sum(),
    )
}

/// A custom assertion: `metric{labels} op value`, summed over nodes (or on each
/// node), at the end or at some point `within` the start.
pub fn metric(obs: &Observations, m: &MetricAssertion) -> Verdict {
    let name = format!(
        "metric {}{} {} {}",
        m.metric,
        if m.labels.is_empty() {
            String::new()
        } else {
            format!("{:?}", m.labels)
        },
        m.op.symbol(),
        m.value
    );
    // Per node: its samples; combined: the sum of each node's latest value at
    // each sample time.
    let holds_for = |samples: Vec<&Sample>| -> (bool, Option<f64>) {
        let values: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|s| Some((s.t, metric_value(s, m)?)))
            .collect();
        let last = values.last().map(|v| v.1);
        let ok = match m.within {
            Some(w) => values
                .iter()
                .any(|(t, v)| *t <= obs.started + w.as_secs_f64() && m.op.holds(*v, m.value)),
            None => last.is_some_and(|v| m.op.holds(v, m.value)),
        };
        (ok, last)
    };
    let mut problems = Vec::new();
    if m.per_node {
        for node in &obs.nodes {
            let (ok, last) = holds_for(obs.of(node).collect());
            if !ok {
                problems.push(match last {
                    Some(v) => format!("{node}: {} = {v}", m.metric),
                    None => format!("{node}: never scraped"),
                });
            }
        }
    } else {
        let latest: Vec<(f64, f64)> = obs
            .nodes
            .iter()
            .filter_map(|n| {
                let s = obs.of(n).filter(|s| !s.metrics.is_empty()).last()?;
                Some((s.t, metric_value(s, m)?))
            })
            .collect();
        let total: f64 = latest.iter().map(|v| v.1).sum();
        let ok = if latest.len() < obs.nodes.len() {
            problems.push(format!(
                "only {} of {} nodes were ever scraped",
                latest.len(),
                obs.nodes.len()
            ));
            false
        } else if m.within.is_some() {
            // At some sample time the sum over nodes held.
            let mut times: Vec<f64> = obs.samples.iter().map(|s| s.t).collect();
            times.sort_by(|a, b| a.total_cmp(b));
            times.dedup();
            times.iter().any(|&t| {
                let sum: Option<f64> = obs
                    .nodes
                    .iter()
                    .map(|n| {
                        obs.of(n)
                            .filter(|s| s.t <= t)
                            .filter_map(|s| metric_value(s, m))
                            .last()
                    })
                    .sum();
                t <= obs.started + m.within.unwrap_or_default().as_secs_f64()
                    && sum.is_some_and(|v| m.op.holds(v, m.value))
            })
        } else {
            m.op.holds(total, m.value)
        };
        if !ok && problems.is_empty() {
            problems.push(format!("{} summed over nodes = {total}", m.metric));
        }
    }
    Verdict::new(&name, problems, "holds".into())
}

#[cfg(test)]
mod tests;
