//! Handshake success rate, and connectivity: a full mesh at the start, after
//! every heal and at the end, with no pair connected twice.

use super::{counter_series, counter_total, never_answered, Verdict};
use crate::fault::window;
use crate::observe::{split_series, Observations, Sample};

/// Handshake failures of the transport (the socket broke, went silent or was
/// closed), as opposed to a peer or node doing something wrong.
const TRANSPORT: [&str; 3] = ["io_error", "timeout", "connection_closed"];
/// How long after a fault ends its broken handshakes still count as its own
/// (a dial's SYN held by a cut gets through after the heal, just as the dialer
/// gives up on it).
const FAULT_GRACE: f64 = 5.0;

/// Transport failures between two samples of which a fault window (plus the
/// grace) overlaps: the fault broke those handshakes, not the nodes.
fn excused_by_faults(obs: &Observations, samples: &[&Sample]) -> f64 {
    let transport = |s: &Sample| {
        (!s.metrics.is_empty()).then(|| {
            s.metrics
                .iter()
                .filter(|(k, _)| {
                    let (name, labels) = split_series(k);
                    name == "testnet_handshake_failures_total"
                        && labels
                            .get("reason")
                            .is_some_and(|r| TRANSPORT.contains(&r.as_str()))
                })
                .map(|(_, v)| v)
                .sum::<f64>()
        })
    };
    let series = counter_series(samples, transport);
    series
        .windows(2)
        .filter(|w| {
            obs.faults.iter().any(|f| {
                let end = f.end.unwrap_or(obs.ended) + FAULT_GRACE;
                f.start < w[1].0 && w[0].0 < end
            })
        })
        .map(|w| w[1].1 - w[0].1)
        .sum()
}

pub fn handshake_success(obs: &Observations, min_rate: f64) -> Verdict {
    let mut problems = Vec::new();
    let (mut attempts, mut completed, mut excused) = (0.0, 0.0, 0.0);
    for node in &obs.nodes {
        if let Some(p) = never_answered(obs, node) {
            problems.push(p);
            continue;
        }
        let samples: Vec<&Sample> = obs.of(node).collect();
        let broken = excused_by_faults(obs, &samples);
        excused += broken;
        let a = counter_total(&samples, |s| {
            s.status.as_ref().map(|st| st.handshake_attempts as f64)
        }) - broken;
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
        let mut text = format!(
            "{completed} of {attempts} handshakes completed ({:.2}%)",
            100.0 * completed / attempts
        );
        if excused > 0.0 {
            text.push_str(&format!(
                "; {excused} broken by faults (transport failures during a fault or within {FAULT_GRACE}s after) not counted"
            ));
        }
        text
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
                .map(|(k, v)| {
                    let (_, labels) = split_series(k);
                    format!("{}={v}", labels.get("reason").map_or("?", String::as_str))
                })
                .collect()
        })
        .unwrap_or_default();
    if reasons.is_empty() {
        "-".into()
    } else {
        reasons.join(", ")
    }
}

/// What `node` lacks of its neighbours in this status, if anything: `1 of 3
/// peers`, with the missing ones named when the node names its peers.
fn missing(
    obs: &Observations,
    node: &str,
    (names, peers): &(Vec<String>, usize),
) -> Option<String> {
    let want = obs.neighbours_of(node);
    let gone: Vec<&String> = want.iter().filter(|w| !names.contains(w)).collect();
    let short = if names.is_empty() {
        *peers < want.len()
    } else {
        !gone.is_empty()
    };
    if !short {
        return None;
    }
    let mut text = format!("{peers} of {} peers", want.len());
    if !names.is_empty() {
        let shown: Vec<&str> = gone.iter().take(6).map(|s| s.as_str()).collect();
        let more = gone.len() - shown.len();
        let more = if more > 0 {
            format!(" +{more}")
        } else {
            String::new()
        };
        text.push_str(&format!(", lacks {}{more}", shown.join(", ")));
    }
    Some(text)
}

/// `n5 (2 of 4 peers, lacks n7, n9)`, up to a few nodes, then how many more.
fn lacking(list: &[(String, String)]) -> String {
    let mut parts: Vec<String> = list
        .iter()
        .take(8)
        .map(|(node, what)| format!("{node} ({what})"))
        .collect();
    if list.len() > 8 {
        parts.push(format!("and {} more nodes", list.len() - 8));
    }
    parts.join(", ")
}

/// Every node has its topology neighbours (a full mesh by default) at the
/// start, within `within` of every heal, and at the end; no node ever holds
/// more connections than it has peers, and no node resolves a duplicate
/// connection (both count across restarts).
pub fn connectivity(obs: &Observations, within: f64) -> Verdict {
    let mut problems = Vec::new();
    for node in &obs.nodes {
        if let Some(p) = never_answered(obs, node) {
            problems.push(p);
            continue;
        }
        if !obs.foreign {
            // A foreign node may hold several streams per peer by design.
            problems.extend(duplicates(obs, node));
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
        // Per node: none missing at some sample of the window, else what its
        // last sample in the window lacked.
        let lacks = |node: &String| -> Option<String> {
            let mut last = None;
            for s in obs.of(node).filter(|s| s.t >= h && s.t <= h + within) {
                if let Some(view) = obs.peer_view(s) {
                    last = Some(missing(obs, node, &view)?);
                }
            }
            Some(last.unwrap_or_else(|| "no answer".to_owned()))
        };
        let short: Vec<(String, String)> = obs
            .nodes
            .iter()
            .filter_map(|n| lacks(n).map(|g| (n.clone(), g)))
            .collect();
        // A window that ends after the run's last sample is judged at the end.
        if !short.is_empty() && h + within <= obs.ended {
            problems.push(format!(
                "not every node had its neighbours within {within}s of +{:.1}s ({}): {}",
                h - obs.started,
                if h == obs.started { "start" } else { "heal" },
                lacking(&short)
            ));
        }
    }
    if !active_at(obs.ended - 0.001) {
        for node in &obs.nodes {
            match obs.of(node).last().and_then(|s| obs.peer_view(s)) {
                Some(view) => {
                    if let Some(what) = missing(obs, node, &view) {
                        problems.push(format!("{node} ended with {what}"));
                    }
                }
                None if obs.foreign => problems.push(format!(
                    "{node}'s holder did not show its connections at the end"
                )),
                None => match obs.status_at_end(node) {
                    Err(why) if obs.last_status(node).is_some() => problems.push(why),
                    _ => {} // never answered: said above
                },
            }
        }
    }
    let shape = if obs.is_mesh() {
        format!("full mesh of {}", obs.nodes.len())
    } else {
        let links: usize = obs.nodes.iter().map(|n| obs.neighbours_of(n).len()).sum();
        format!(
            "every node's topology neighbours ({} nodes, {} links)",
            obs.nodes.len(),
            links / 2
        )
    };
    let stale: f64 = obs.nodes.iter().map(|n| stale_replaced(obs, n)).sum();
    let redials = if stale > 0.0 {
        format!(" ({stale} stale connection(s) replaced by their peer's redial)")
    } else {
        String::new()
    };
    Verdict::new(
        "connectivity",
        problems,
        format!(
            "{shape} at start and within {within}s of every heal; no duplicate connection{redials}"
        ),
    )
}

/// Inbound connections `node` replaced because their peer dialed again, the old
/// one having ended on the peer's side (it timed this node out while it was
/// paused or cut off, or restarted): one connection per pair all along, so not
/// a duplicate; told in the summary.
fn stale_replaced(obs: &Observations, node: &str) -> f64 {
    let samples: Vec<&Sample> = obs.of(node).collect();
    counter_total(&samples, |s| {
        s.status
            .as_ref()
            .map(|st| st.stale_connections_replaced as f64)
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use testnet_node::api::Status;

    fn status(node: &str, peers: &[&str]) -> Status {
        serde_json::from_value(serde_json::json!({
            "id": "00".repeat(32), "name": node, "network_id": "x",
            "p2p_address": "10.77.0.10:7000", "peers": peers.len(), "peers_inbound": 0,
            "peers_outbound": peers.len(), "expected_peers": 2, "peer_names": peers,
            "handshake_attempts": 2, "handshakes_completed": 2, "handshake_failures": 0,
            "duplicate_connections_resolved": 0, "simulated_bugs": [], "utxo_count": 5,
            "utxo_digest": "aa", "total_value": 1, "fees": 0, "genesis_supply": 1,
            "finalized_transactions": 0, "mempool": 0, "conflicting_certificates": 0,
            "uptime_secs": 10.0, "version": "t"
        }))
        .unwrap()
    }

    /// A ring n0 - n1 - n2 - n3 - n0, sampled twice.
    fn ring(peers_of: impl Fn(usize) -> Vec<&'static str>) -> Observations {
        let names = ["n0", "n1", "n2", "n3"];
        let neighbours = (0..4)
            .map(|i| {
                let pair = [names[(i + 3) % 4], names[(i + 1) % 4]];
                (names[i].to_owned(), pair.map(str::to_owned).to_vec())
            })
            .collect::<BTreeMap<_, _>>();
        let samples = [0.0, 1.0]
            .iter()
            .flat_map(|t| {
                let peers_of = &peers_of;
                (0..4).map(move |i| Sample {
                    t: 100.0 + t,
                    node: names[i].into(),
                    status: Some(status(names[i], &peers_of(i))),
                    process: None,
                    metrics: BTreeMap::new(),
                    agent_metrics: BTreeMap::new(),
                    peers: None,
                })
            })
            .collect();
        Observations {
            nodes: names.map(str::to_owned).to_vec(),
            neighbours,
            started: 100.0,
            ended: 101.5,
            samples,
            ..Observations::default()
        }
    }

    /// n1 counts 8 attempts, 2 of them failing with io_error between its
    /// samples at +2 s and +3 s.
    fn broken_handshakes(fault: Option<(f64, f64)>) -> Observations {
        let mut obs = ring(|i| {
            vec![
                ["n0", "n1", "n2", "n3"][(i + 1) % 4],
                ["n0", "n1", "n2", "n3"][(i + 3) % 4],
            ]
        });
        obs.samples.clear();
        for t in 0..5 {
            for node in ["n0", "n1", "n2", "n3"] {
                let mut st = status(node, &[]);
                let failed = if node == "n1" && t >= 3 { 2 } else { 0 };
                st.handshake_attempts = if node == "n1" { 6 + failed } else { 2 };
                st.handshakes_completed = st.handshake_attempts - failed;
                let metrics = BTreeMap::from([(
                    "testnet_handshake_failures_total{reason=\"io_error\"}".to_owned(),
                    failed as f64,
                )]);
                obs.samples.push(Sample {
                    t: 100.0 + t as f64,
                    node: node.into(),
                    status: Some(st),
                    process: None,
                    metrics,
                    agent_metrics: BTreeMap::new(),
                    peers: None,
                });
            }
        }
        obs.ended = 105.0;
        if let Some((from, to)) = fault {
            obs.faults.push(crate::fault::FaultEvent {
                start: 100.0 + from,
                end: Some(100.0 + to),
                kind: crate::fault::FaultKind::Partition,
                label: "partition".into(),
                nodes: vec![],
                no_quorum: false,
                cut_off: vec![],
                fault: None,
                applied: None,
                step: None,
            });
        }
        obs
    }

    #[test]
    fn handshakes_a_fault_broke_are_the_faults_not_the_nodes() {
        let v = handshake_success(&broken_handshakes(None), 0.95);
        assert!(!v.passed, "no fault: the node's own: {v:?}");
        assert!(v.details[0].contains("n1: 6 of 8"), "{v:?}");
        // A cut healed at +0.5 s: the failures at +2..3 s are within the grace.
        let v = handshake_success(&broken_handshakes(Some((0.0, 0.5))), 0.95);
        assert!(v.passed, "{v:?}");
        assert!(v.summary.contains("2 broken by faults"), "{v:?}");
        // Healed long before (the grace is over): the node's own again.
        let mut obs = broken_handshakes(Some((0.0, 0.5)));
        for s in &mut obs.samples {
            s.t += 10.0;
        }
        obs.ended += 10.0;
        assert!(!handshake_success(&obs, 0.95).passed);
    }

    #[test]
    fn a_sparse_topology_is_judged_by_each_nodes_neighbour_set() {
        let names = ["n0", "n1", "n2", "n3"];
        let right = |i: usize| vec![names[(i + 1) % 4], names[(i + 3) % 4]];
        let v = connectivity(&ring(right), 1.0);
        assert!(v.passed, "{v:?}");
        assert!(v.summary.contains("4 nodes, 4 links"), "{v:?}");
        // n0 holds two peers, as many as it should, but n2 instead of n3.
        let wrong = |i: usize| match i {
            0 => vec!["n1", "n2"],
            _ => right(i),
        };
        let v = connectivity(&ring(wrong), 1.0);
        assert!(!v.passed, "{v:?}");
        assert!(
            v.details
                .iter()
                .any(|d| d.contains("n0 (2 of 2 peers, lacks n3)")),
            "{v:?}"
        );
        assert!(
            v.details.iter().any(|d| d.contains("n0 ended with")),
            "{v:?}"
        );
    }
}
