//! Handshake success rate, and connectivity: a full mesh at the start, after
//! every heal and at the end, with no pair connected twice.

use super::{counter_total, never_answered, Verdict};
use crate::fault::window;
use crate::observe::{split_series, Observations, Sample};

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
            problems.push(format!(
                "{node}: {c} of {a} handshakes completed ({:.1}% < {:.1}%); failures by reason: {}",
                100.0 * c / a,
                100.0 * min_rate,
                failure_reasons(&samples)
            ));
        }
    }
    // No overall floor of its own: when every node holds the rate, so does
    // their sum.
    let summary = if attempts > 0.0 {
        format!(
            "{completed} of {attempts} handshakes completed ({:.2}%)",
            100.0 * completed / attempts
        )
    } else {
        "no handshake was attempted by any node".to_owned()
    };
    if attempts == 0.0 && problems.is_empty() {
        problems.push(summary.clone());
    }
    Verdict::new("handshake_success", problems, summary)
}

/// `reason=count` of the failures in the node's last scrape.
fn failure_reasons(samples: &[&Sample]) -> String {
    let reasons: Vec<String> = samples
        .iter()
        .rev()
        .find(|s| !s.metrics.is_empty())
        .map(|s| {
            s.metrics
                .iter()
                .filter(|(k, v)| k.starts_with("testnet_handshake_failures_total") && **v > 0.0)
                .map(|(k, v)| format!("{}={v}", split_series(k).1.get("reason").unwrap_or(&"?")))
                .collect()
        })
        .unwrap_or_default();
    if reasons.is_empty() {
        "-".into()
    } else {
        reasons.join(", ")
    }
}

/// Full mesh at the start, within `within` of every heal, and at the end; no
/// node ever holds more connections than it has peers, and no node resolves a
/// duplicate connection (both count across restarts).
pub fn connectivity(obs: &Observations, within: f64) -> Verdict {
    let mut problems = Vec::new();
    let n = obs.nodes.len();
    for node in &obs.nodes {
        if let Some(p) = never_answered(obs, node) {
            problems.push(p);
            continue;
        }
        problems.extend(duplicates(obs, node));
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
        let missing: Vec<&str> = obs
            .nodes
            .iter()
            .filter(|n| !meshed(n))
            .map(String::as_str)
            .collect();
        // A window that ends after the run's last sample is judged at the end.
        if !missing.is_empty() && h + within <= obs.ended {
            problems.push(format!(
                "no full mesh within {within}s of +{:.1}s ({}): {} below {} peers",
                h - obs.started,
                if h == obs.started { "start" } else { "heal" },
                missing.join(", "),
                n - 1
            ));
        }
    }
    if !active_at(obs.ended - 0.001) {
        for node in &obs.nodes {
            match obs.status_at_end(node) {
                Ok(st) if st.peers + 1 < n => {
                    problems.push(format!("{node} ended with {} of {} peers", st.peers, n - 1))
                }
                Ok(_) => {}
                Err(why) if obs.last_status(node).is_some() => problems.push(why),
                Err(_) => {} // never answered: said above
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

/// A pair connected twice: more connections than peers at some sample, or a
/// duplicate the node had to resolve.
fn duplicates(obs: &Observations, node: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(s) = obs.of(node).find(|s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.peers > st.expected_peers)
    }) {
        let st = s.status.as_ref().expect("found with a status");
        out.push(format!(
            "{node} held {} connections for {} peers at +{:.1}s (a pair connected twice)",
            st.peers,
            st.expected_peers,
            s.t - obs.started
        ));
    }
    let samples: Vec<&Sample> = obs.of(node).collect();
    let resolved = counter_total(&samples, |s| {
        s.status
            .as_ref()
            .map(|st| st.duplicate_connections_resolved as f64)
    });
    if resolved > 0.0 {
        out.push(format!(
            "{node} resolved {resolved} duplicate connection(s) (a pair connected twice)"
        ));
    }
    out
}
