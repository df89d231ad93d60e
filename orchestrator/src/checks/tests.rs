//! Checkers on recorded observations: each one passes on a healthy record and
//! fails, naming the place, on the record of the bug it exists to catch.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::load::{LoadReport, Payment};
use testnet_node::api::agent::{ProcessReport, ProcessState};
use testnet_node::api::Status;

use super::*;
use crate::fault::Fault;
use crate::observe::{FaultEvent, FaultKind, Observations, Sample};
use crate::scenario::{MetricAssertion, Op};

const T0: f64 = 1_700_000_000.0;

#[derive(Clone)]
struct Look {
    peers: usize,
    attempts: u64,
    completed: u64,
    digest: &'static str,
    value: u64,
    finalized: u64,
    conflicting: u64,
    uptime: f64,
}

impl Default for Look {
    fn default() -> Self {
        Look {
            peers: 3,
            attempts: 3,
            completed: 3,
            digest: "aa",
            value: 1000,
            finalized: 10,
            conflicting: 0,
            uptime: 100.0,
        }
    }
}

fn status(node: &str, l: &Look) -> Status {
    serde_json::from_value(serde_json::json!({
        "id": "00".repeat(32), "name": node, "network_id": "x", "p2p_address": "10.77.0.10:7000",
        "peers": l.peers, "peers_inbound": 0, "peers_outbound": l.peers, "expected_peers": 3,
        "handshake_attempts": l.attempts, "handshakes_completed": l.completed,
        "handshake_failures": l.attempts - l.completed, "duplicate_connections_resolved": 0,
        "simulated_bugs": [], "utxo_count": 5, "utxo_digest": l.digest, "total_value": l.value,
        "fees": 0, "genesis_supply": 1000, "finalized_transactions": l.finalized, "mempool": 0,
        "finalized_digest": format!("f{}", l.finalized),
        "conflicting_certificates": l.conflicting, "uptime_secs": l.uptime, "version": "t"
    }))
    .unwrap()
}

fn sample(t: f64, node: &str, look: Option<&Look>) -> Sample {
    Sample {
        t: T0 + t,
        node: node.into(),
        status: look.map(|l| status(node, l)),
        process: Some(ProcessReport {
            state: ProcessState::Running,
            pid: Some(7),
            restarts: 0,
        }),
        metrics: look
            .map(|l| {
                BTreeMap::from([
                    (
                        "testnet_peers{direction=\"outbound\"}".to_owned(),
                        l.peers as f64,
                    ),
                    (
                        "testnet_handshake_failures_total{reason=\"duplicate\"}".to_owned(),
                        (l.attempts - l.completed) as f64,
                    ),
                ])
            })
            .unwrap_or_default(),
        agent_metrics: BTreeMap::new(),
        peers: None,
    }
}

const NODES: [&str; 4] = ["n0", "n1", "n2", "n3"];

/// A healthy 20 s run: one sample per node per second, all meshed and equal.
fn healthy() -> Observations {
    let mut samples = Vec::new();
    for t in 0..=20 {
        for n in NODES {
            samples.push(sample(
                t as f64,
                n,
                Some(&Look {
                    uptime: 100.0 + t as f64,
                    ..Look::default()
                }),
            ));
        }
    }
    Observations {
        testnet: "t".into(),
        nodes: NODES.iter().map(|s| s.to_string()).collect(),
        started: T0,
        ended: T0 + 20.0,
        samples,
        faults: vec![],
        load: Some(load(vec![payment(1.0, [1.1, 1.2, 1.1, 1.3])])),
        ..Observations::default()
    }
}

fn payment(sent: f64, at: [f64; 4]) -> Payment {
    Payment {
        held: Vec::new(),
        submitted_to: None,
        sent_ms: ((T0 + sent) * 1000.0) as u64,
        final_ms: at
            .iter()
            .map(|a| (*a >= 0.0).then(|| ((T0 + a) * 1000.0) as u64))
            .collect(),
    }
}

fn load(payments: Vec<Payment>) -> LoadReport {
    LoadReport {
        interrupted: false,
        duration_secs: 10.0,
        planned: 0,
        skipped: 0,
        submitted: payments.len() as u64,
        accepted: payments.len() as u64,
        refused: BTreeMap::new(),
        double_spend_pairs: 2,
        conflicting_pairs_finalized: 0,
        finalized_everywhere: payments.len() as u64,
        not_finalized: 0,
        not_finalized_examples: vec![],
        unread_forgotten: 0,
        vouched: 0,
        latency_p50_ms: 100.0,
        latency_p99_ms: 300.0,
        latency_max_ms: 300.0,
        throughput_tps: 1.0,
        nodes: NODES
            .iter()
            .map(|n| crate::load::NodeSummary {
                answered: true,
                endpoint: String::new(),
                name: n.to_string(),
                finalized: 1,
                utxo_digest: "aa".into(),
                total_value: 1000,
                fees: 0,
                conflicting_certificates: 0,
            })
            .collect(),
        payments,
        digests_agree: true,
        value_conserved: true,
    }
}

/// Rewrites the samples of `node` from time `from` on.
fn edit(obs: &mut Observations, node: &str, from: f64, f: impl Fn(&mut Sample)) {
    for s in obs
        .samples
        .iter_mut()
        .filter(|s| s.node == node && s.t >= T0 + from)
    {
        f(s);
    }
}

fn partition(start: f64, end: f64, no_quorum: bool) -> FaultEvent {
    FaultEvent {
        start: T0 + start,
        end: Some(T0 + end),
        kind: FaultKind::Partition,
        label: "partition n0,n1 | n2,n3".into(),
        nodes: NODES.iter().map(|s| s.to_string()).collect(),
        no_quorum,
        cut_off: vec![],
        fault: None,
        applied: None,
        step: None,
    }
}

#[test]
fn a_healthy_record_passes_everything() {
    let v = check_all(&crate::scenario::Invariants::default(), &healthy());
    assert_eq!(v.len(), 7);
    for verdict in &v {
        assert!(verdict.passed, "{verdict:?}");
    }
}

#[test]
fn handshake_race_fails_the_success_rate_and_a_restart_does_not_fool_it() {
    let mut obs = healthy();
    // n2 ran the race: 12 attempts, 6 completed.
    edit(&mut obs, "n2", 5.0, |s| {
        s.status.as_mut().unwrap().handshake_attempts = 12;
        s.metrics.insert(
            "testnet_handshake_failures_total{reason=\"duplicate\"}".into(),
            6.0,
        );
        // A reason that never happened is not listed.
        s.metrics.insert(
            "testnet_handshake_failures_total{reason=\"timeout\"}".into(),
            0.0,
        );
    });
    let v = handshake_success(&obs, 0.99);
    assert!(!v.passed);
    assert!(
        v.summary.contains("n2: 3 of 12") && v.summary.ends_with("failures by reason: duplicate=6"),
        "{v:?}"
    );

    // Counters reset by a restart: n1 had 3/3, restarted, then 2 of 4. The
    // increments add up to 5 of 7, not the last 2 of 4 alone.
    let mut obs = healthy();
    edit(&mut obs, "n1", 10.0, |s| {
        let st = s.status.as_mut().unwrap();
        st.handshake_attempts = 4;
        st.handshakes_completed = 2;
        st.uptime_secs = s.t - T0 - 10.0;
    });
    let v = handshake_success(&obs, 0.99);
    assert!(v.details[0].contains("n1: 5 of 7"), "{v:?}");
}

#[test]
fn connectivity_wants_the_mesh_back_after_a_heal_and_no_duplicates() {
    let mut obs = healthy();
    obs.faults.push(partition(5.0, 8.0, true));
    // Peers drop during the partition and come back at +9: fine within 5 s.
    for n in NODES {
        edit(&mut obs, n, 5.0, |s| {
            if s.t < T0 + 9.0 {
                s.status.as_mut().unwrap().peers = 1;
            }
        });
    }
    assert!(
        connectivity(&obs, 5.0).passed,
        "{:?}",
        connectivity(&obs, 5.0)
    );
    // n3 never gets its peers back.
    edit(&mut obs, "n3", 9.0, |s| {
        s.status.as_mut().unwrap().peers = 1
    });
    let v = connectivity(&obs, 5.0);
    assert!(
        !v.passed && v.summary.contains("heal") && v.summary.contains("n3"),
        "{v:?}"
    );
    // A duplicate connection: more connections than peers.
    let mut obs = healthy();
    edit(&mut obs, "n0", 3.0, |s| {
        s.status.as_mut().unwrap().peers = 4
    });
    let v = connectivity(&obs, 5.0);
    assert!(
        !v.passed && v.summary.contains("n0 held 4 connections"),
        "{v:?}"
    );
}

#[test]
fn utxo_agreement_catches_digest_disagreement_and_created_value() {
    let mut obs = healthy();
    edit(&mut obs, "n1", 15.0, |s| {
        let st = s.status.as_mut().unwrap();
        st.utxo_digest = "bb".into();
        st.total_value = 1500; // utxo-no-spend: inputs never removed
    });
    let v = utxo_agreement(&obs);
    assert!(!v.passed);
    let all = v.details.join("\n");
    assert!(
        all.contains("n1: total value 1500") && all.contains("created"),
        "{all}"
    );
    assert!(
        all.contains("digests disagree") && all.contains("bb on n1"),
        "{all}"
    );
    // A node that never reported is a failure, not a pass.
    let mut obs = healthy();
    edit(&mut obs, "n2", 0.0, |s| s.status = None);
    let v = utxo_agreement(&obs);
    assert!(
        !v.passed && v.summary.contains("n2 never answered"),
        "{v:?}"
    );
}

#[test]
fn finality_bounds_latency_resumes_after_heal_and_refuses_false_finality() {
    let mut obs = healthy();
    // Sent during a no-quorum partition (5..10), final at +11: allowed.
    obs.faults.push(partition(5.0, 10.0, true));
    obs.load = Some(load(vec![payment(6.0, [11.0, 11.0, 11.2, 11.5])]));
    assert!(finality(&obs, 3.0).passed, "{:?}", finality(&obs, 3.0));
    // One node only at +16: over the bound after the heal.
    obs.load = Some(load(vec![payment(6.0, [11.0, 11.0, 11.2, 16.0])]));
    let v = finality(&obs, 3.0);
    assert!(
        !v.passed && v.summary.contains("final on n3 only at +16.0s"),
        "{v:?}"
    );
    // Final during the partition that leaves no quorum: false finality.
    obs.load = Some(load(vec![payment(6.0, [7.0, 11.0, 11.0, 11.0])]));
    let v = finality(&obs, 3.0);
    assert!(
        !v.passed && v.details.iter().any(|d| d.contains("false finality")),
        "{v:?}"
    );
    // passive-catchup: never final on the node that was cut off.
    obs.load = Some(load(vec![payment(6.0, [11.0, 11.0, 11.0, -1.0])]));
    let v = finality(&obs, 3.0);
    assert!(
        !v.passed && v.summary.contains("never final on n3"),
        "{v:?}"
    );
    // The same, held by n3 unlisted (it installed a snapshot, its ledger
    // agreeing at the end): final there, with no time to bound.
    let mut held = payment(6.0, [11.0, 11.0, 11.0, -1.0]);
    held.held = vec![3];
    obs.load = Some(load(vec![held]));
    let v = finality(&obs, 3.0);
    assert!(v.passed, "{v:?}");
    // No workload: the invariant cannot hold by default.
    obs.load = None;
    assert!(!finality(&obs, 3.0).passed);
}

#[test]
fn safety_catches_conflicting_certificates_and_diverging_sets() {
    let mut obs = healthy();
    edit(&mut obs, "n2", 12.0, |s| {
        s.status.as_mut().unwrap().conflicting_certificates = 1
    });
    let v = safety(&obs);
    assert!(
        !v.passed && v.summary.contains("n2 saw 1 conflicting"),
        "{v:?}"
    );
    let mut obs = healthy();
    obs.load.as_mut().unwrap().conflicting_pairs_finalized = 1;
    edit(&mut obs, "n0", 15.0, |s| {
        let st = s.status.as_mut().unwrap();
        st.finalized_transactions = 11;
        st.finalized_digest = "f11".into();
    });
    let v = safety(&obs);
    let all = v.details.join("\n");
    assert!(
        all.contains("1 of 2 double-spend pairs")
            && all.contains("11 (f11) on n0; 10 (f10) on n1,n2,n3"),
        "{all}"
    );
}

#[test]
fn processes_allow_timeline_restarts_only() {
    let mut obs = healthy();
    // n1 is down from +6 to +8 and comes back with a small uptime.
    edit(&mut obs, "n1", 6.0, |s| {
        if s.t < T0 + 8.0 {
            s.status = None;
        } else {
            s.status.as_mut().unwrap().uptime_secs = s.t - T0 - 8.0;
        }
    });
    let v = processes(&obs);
    assert!(
        !v.passed && v.summary.contains("n1 was down at +6.0s"),
        "{v:?}"
    );
    obs.faults.push(FaultEvent {
        start: T0 + 5.5,
        end: Some(T0 + 6.0),
        kind: FaultKind::Process,
        label: "restart n1".into(),
        nodes: vec!["n1".into()],
        no_quorum: false,
        cut_off: vec![],
        fault: None,
        applied: None,
        step: None,
    });
    assert!(processes(&obs).passed, "{:?}", processes(&obs));
    // A restart seen only by the agent's count is caught too.
    let mut obs = healthy();
    edit(&mut obs, "n3", 10.0, |s| {
        s.process.as_mut().unwrap().restarts = 1
    });
    assert!(!processes(&obs).passed);
}

#[test]
fn metric_assertions_sum_filter_and_skip_failed_scrapes() {
    let mut obs = healthy();
    let m = |metric: &str, labels: &[(&str, &str)], op: Op, value: f64, per_node: bool| {
        MetricAssertion {
            metric: metric.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            op,
            value,
            within: None,
            per_node,
            allow_absent: false,
            always: false,
            tolerate: None,
            during: None,
            nodes: None,
            agg: None,
        }
    };
    assert!(metric(&obs, &m("testnet_peers", &[], Op::Eq, 12.0, false)).passed);
    assert!(
        metric(
            &obs,
            &m(
                "testnet_peers",
                &[("direction", "outbound")],
                Op::Ge,
                3.0,
                true
            )
        )
        .passed
    );
    assert!(
        !metric(
            &obs,
            &m(
                "testnet_peers",
                &[("direction", "inbound")],
                Op::Gt,
                0.0,
                false
            )
        )
        .passed
    );
    // The last scrape of n0 failed: its previous one counts.
    edit(&mut obs, "n0", 20.0, |s| s.metrics.clear());
    assert!(metric(&obs, &m("testnet_peers", &[], Op::Eq, 12.0, false)).passed);
    // `within`: held at some point early on.
    edit(&mut obs, "n1", 10.0, |s| {
        s.metrics
            .insert("testnet_peers{direction=\"outbound\"}".into(), 0.0);
    });
    let mut early = m("testnet_peers", &[], Op::Eq, 12.0, false);
    assert!(!metric(&obs, &early).passed, "at the end it is 9");
    early.within = Some(Duration::from_secs(5));
    assert!(metric(&obs, &early).passed);
    // A node never scraped fails the assertion.
    edit(&mut obs, "n2", 0.0, |s| s.metrics.clear());
    let v = metric(&obs, &m("testnet_peers", &[], Op::Ge, 0.0, false));
    assert!(
        !v.passed && v.summary.contains("n2: never scraped"),
        "{v:?}"
    );
}

// Issue 11: each point of "verdicts that cannot lie" on a recorded run.

/// Point 1: a list of invariants that checks nothing fails, and such a
/// scenario is refused at load with the fix.
#[test]
fn an_empty_invariant_list_fails_and_is_refused_at_load() {
    let v = check_all(&crate::scenario::Invariants { ..none() }, &healthy());
    assert_eq!(v.len(), 1);
    assert!(
        !v[0].passed && v[0].summary.contains("check nothing"),
        "{v:?}"
    );
    let err = crate::scenario::Scenario::parse(
        "name: x\ntestnet: { nodes: 4 }\ninvariants: {}\n",
        "x.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("invariants:") && err.contains("omit the key"),
        "{err}"
    );
}

fn none() -> crate::scenario::Invariants {
    crate::scenario::Invariants {
        handshake_success: None,
        connectivity: None,
        utxo_agreement: None,
        finality: None,
        safety: None,
        processes: None,
        workload_ok: None,
        faults_took_effect: false,
        metrics: vec![],
    }
}

fn window(kind: FaultKind, start: f64, end: Option<f64>, label: &str) -> FaultEvent {
    FaultEvent {
        start: T0 + start,
        end: end.map(|e| T0 + e),
        kind,
        label: label.into(),
        nodes: vec!["n2".into()],
        no_quorum: false,
        cut_off: vec![],
        fault: None,
        applied: None,
        step: None,
    }
}

/// Point 2: a fault that leaves a quorum (an open-ended delay) pushes no
/// deadline; one that takes the quorum pushes it to its end, and an open one
/// ends with the timeline.
#[test]
fn only_what_keeps_a_payment_from_a_quorum_pushes_its_deadline() {
    let mut obs = healthy();
    obs.faults.push(window(
        FaultKind::Link,
        2.0,
        None,
        "delay n2 -> all 3000 ms",
    ));
    obs.load = Some(load(vec![payment(3.0, [6.1, 6.1, 6.2, 6.1])]));
    let v = finality(&obs, 2.0);
    assert!(!v.passed && v.summary.contains("due by +5.0s"), "{v:?}");
    // n3 cut off from +2, never healed by the timeline, which ended at +8:
    // n3's payments are due 2 s after that, not 2 s after the end of the run.
    obs.faults[0].cut_off = vec!["n3".into()];
    obs.timeline_end = Some(T0 + 8.0);
    obs.load = Some(load(vec![payment(3.0, [3.5, 3.5, 3.5, 9.5])]));
    assert!(finality(&obs, 2.0).passed, "{:?}", finality(&obs, 2.0));
    obs.load = Some(load(vec![payment(3.0, [3.5, 3.5, 3.5, 10.5])]));
    let v = finality(&obs, 2.0);
    assert!(!v.passed && v.summary.contains("due by +10.0s"), "{v:?}");
}

/// Point 2 too: a node that is down or cut off has its own deadline pushed,
/// and so does every node for a payment that node accepted.
#[test]
fn a_node_down_or_cut_off_pushes_only_its_payments() {
    let mut obs = healthy();
    let mut kill = window(FaultKind::Process, 2.0, Some(8.0), "kill n2");
    kill.nodes = vec!["n2".into()];
    obs.faults.push(kill);
    let mut late = payment(3.0, [3.5, 3.5, 9.0, 3.5]);
    obs.load = Some(load(vec![late.clone()]));
    assert!(finality(&obs, 2.0).passed, "n2 back at +8, due +10");
    late.final_ms[0] = Some(((T0 + 9.0) * 1000.0) as u64);
    obs.load = Some(load(vec![late.clone()]));
    assert!(!finality(&obs, 2.0).passed, "n0 was not held");
    late.submitted_to = Some(2);
    obs.load = Some(load(vec![late]));
    assert!(
        finality(&obs, 2.0).passed,
        "accepted by n2: held everywhere"
    );
    let mut obs = healthy();
    let mut cut = window(FaultKind::Partition, 2.0, Some(8.0), "isolate n3");
    cut.cut_off = vec!["n3".into()];
    obs.faults.push(cut);
    obs.load = Some(load(vec![payment(3.0, [3.5, 3.5, 3.5, 9.0])]));
    assert!(finality(&obs, 2.0).passed, "{:?}", finality(&obs, 2.0));
}

/// Point 4: safety compares sets, not counts, and names the first difference.
#[test]
fn safety_compares_finalized_sets_not_counts() {
    let mut obs = healthy();
    edit(&mut obs, "n1", 15.0, |s| {
        s.status.as_mut().unwrap().finalized_digest = "twin-b".into()
    });
    obs.finalized = BTreeMap::from([
        ("n0".to_owned(), vec!["a1".to_owned(), "twin-a".to_owned()]),
        ("n1".to_owned(), vec!["a1".to_owned(), "twin-b".to_owned()]),
    ]);
    let v = safety(&obs);
    assert!(!v.passed, "{v:?}");
    assert!(
        v.summary.contains("10 (twin-b) on n1")
            && v.summary
                .contains("first difference: twin-a final on n0, not on n1"),
        "{v:?}"
    );
}

/// Point 5: the duplicate counter counts, across a restart.
#[test]
fn connectivity_reads_the_duplicate_counter_across_restarts() {
    let mut obs = healthy();
    edit(&mut obs, "n2", 5.0, |s| {
        let st = s.status.as_mut().unwrap();
        st.duplicate_connections_resolved = if s.t < T0 + 10.0 { 1 } else { 0 };
        if s.t >= T0 + 10.0 {
            st.uptime_secs = s.t - T0 - 10.0;
        }
    });
    let v = connectivity(&obs, 5.0);
    assert!(
        !v.passed && v.summary.contains("n2 resolved 1 duplicate"),
        "{v:?}"
    );
}

/// The green twin: a peer that redialed a paused node, whose old connection it
/// had already dropped, made no duplicate; the count is told, not failed.
#[test]
fn a_stale_connection_replaced_by_a_redial_is_no_duplicate() {
    let mut obs = healthy();
    edit(&mut obs, "n2", 5.0, |s| {
        s.status.as_mut().unwrap().stale_connections_replaced = 2
    });
    let v = connectivity(&obs, 5.0);
    assert!(
        v.passed
            && v.summary
                .contains("(2 stale connection(s) replaced by their peer's redial)"),
        "{v:?}"
    );
}

/// Points 6 and 9: a node silent at the end fails connectivity, UTXO
/// agreement and safety instead of being judged on its stale status.
#[test]
fn a_node_silent_at_the_end_is_not_judged_on_its_last_answer() {
    let mut obs = healthy();
    edit(&mut obs, "n3", 12.0, |s| s.status = None);
    for v in [connectivity(&obs, 5.0), utxo_agreement(&obs), safety(&obs)] {
        assert!(
            !v.passed && v.summary.contains("n3 did not answer after +11.0s"),
            "{v:?}"
        );
    }
}

/// Point 7: `testnet check` judges the mesh over the span it sampled.
#[test]
fn check_judges_the_mesh_over_its_own_span() {
    let mut obs = healthy();
    obs.ended = T0 + 2.0;
    obs.samples.retain(|s| s.t <= T0 + 2.0);
    obs.load = None;
    edit(&mut obs, "n1", 0.0, |s| {
        s.status.as_mut().unwrap().peers = 2
    });
    edit(&mut obs, "n1", 2.0, |s| s.status = None);
    let v = check_all(&crate::run::check_invariants(&obs), &obs);
    let c = v.iter().find(|v| v.invariant == "connectivity").unwrap();
    assert!(!c.passed && c.summary.contains("(start): n1"), "{c:?}");
}

/// Point 8: counters add up across restarts; an absent metric is a failure
/// unless allowed.
#[test]
fn metric_counters_add_up_across_restarts_and_absent_metrics_fail() {
    let mut obs = healthy();
    for n in NODES {
        edit(&mut obs, n, 0.0, |s| {
            let restarted = n == "n0" && s.t >= T0 + 10.0;
            let v = if restarted { 2.0 } else { 5.0 };
            s.metrics.insert("testnet_votes_total".into(), v);
            if restarted {
                s.status.as_mut().unwrap().uptime_secs = s.t - T0 - 10.0;
            }
        });
    }
    let m = |metric: &str, op, value, allow_absent| MetricAssertion {
        metric: metric.into(),
        labels: BTreeMap::new(),
        op,
        value,
        within: None,
        per_node: false,
        allow_absent,
        always: false,
        tolerate: None,
        during: None,
        nodes: None,
        agg: None,
    };
    let v = metric(&obs, &m("testnet_votes_total", Op::Eq, 22.0, false));
    assert!(
        v.passed,
        "5 + 2 on n0 after its restart, 5 on each other: {v:?}"
    );
    let v = metric(&obs, &m("testnet_never_exported_total", Op::Eq, 0.0, false));
    assert!(
        !v.passed
            && v.summary
                .contains("no scrape showed testnet_never_exported_total"),
        "{v:?}"
    );
    assert!(metric(&obs, &m("testnet_never_exported_total", Op::Eq, 0.0, true)).passed);
}

/// Point 11: a testnet that did not settle fails the checks made at quiescence.
#[test]
fn an_unsettled_testnet_fails_the_end_checks_with_the_reason() {
    let mut obs = healthy();
    obs.quiescence = Some(crate::observe::Quiescence {
        reached: false,
        waited_secs: 30.0,
        detail: "n1 mempool 3".into(),
    });
    for v in [utxo_agreement(&obs), safety(&obs)] {
        assert!(
            !v.passed
                && v.summary
                    .contains("did not settle within 30s of the end: n1 mempool 3"),
            "{v:?}"
        );
    }
    obs.quiescence.as_mut().unwrap().reached = true;
    assert!(utxo_agreement(&obs).passed);
}

/// Point 12: false finality is judged on the quorum gaps (any cause, any
/// overlap), not on the kind of one fault.
#[test]
fn false_finality_is_judged_on_the_quorum_gaps() {
    let mut obs = healthy();
    obs.quorum_gaps.push(crate::fault::QuorumGap {
        start: T0 + 4.0,
        end: Some(T0 + 9.0),
        why: "n0 down; n1 down".into(),
    });
    obs.load = Some(load(vec![payment(3.0, [6.0, 9.5, 9.5, 9.5])]));
    let v = finality(&obs, 2.0);
    assert!(
        !v.passed
            && v.details
                .iter()
                .any(|d| d.contains("n0 down; n1 down") && d.contains("false finality")),
        "{v:?}"
    );
    // Final after the gap: fine, the deadline moved to its end.
    obs.load = Some(load(vec![payment(3.0, [9.5, 9.5, 9.5, 10.9])]));
    assert!(finality(&obs, 2.0).passed, "{:?}", finality(&obs, 2.0));
    // A window that began without a quorum (n1 was down too) but outlived the
    // gap does not make what is final after the gap false finality.
    let mut kill = window(FaultKind::Process, 4.0, Some(15.0), "kill n0");
    kill.no_quorum = true;
    kill.nodes = vec!["n0".into()];
    obs.faults.push(kill);
    obs.load = Some(load(vec![payment(10.0, [16.0, 10.5, 10.5, 10.5])]));
    assert!(finality(&obs, 2.0).passed, "{:?}", finality(&obs, 2.0));
}

// faults_took_effect: each kind of fault, seen to bite and not.

fn with_fault(fault: Fault, start: f64, end: f64) -> Observations {
    let mut obs = healthy();
    let nodes = match fault.process() {
        Some((n, _, _)) => vec![n.clone()],
        None => fault.nodes(&NODES.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
    };
    obs.faults.push(FaultEvent {
        start: T0 + start,
        end: Some(T0 + end),
        kind: fault.kind(),
        label: fault.label(),
        nodes,
        no_quorum: false,
        cut_off: vec![],
        fault: Some(fault),
        applied: Some("applied".into()),
        step: None,
    });
    obs
}

fn bites(obs: &Observations) -> Verdict {
    faults_took_effect(obs)
}

#[test]
fn a_cut_is_seen_by_its_dropped_packets_or_lost_peers() {
    let cut = Fault::Partition(crate::fault::Partition::groups(vec![
        vec!["n0".into(), "n1".into()],
        vec!["n2".into(), "n3".into()],
    ]));
    let mut obs = with_fault(cut, 5.0, 9.0);
    let v = bites(&obs);
    assert!(
        !v.passed && v.summary.contains("dropped no packet"),
        "{v:?}"
    );
    edit(&mut obs, "n1", 6.0, |s| {
        s.agent_metrics
            .insert("testnet_fault_matched_packets{kind=\"drop\"}".into(), 37.0);
    });
    let w = &obs.faults[0];
    assert_eq!(
        effect::effect(&obs, w).unwrap(),
        "n1's rules dropped 37 packets"
    );
    let mut obs = with_fault(obs.faults[0].fault.clone().unwrap(), 5.0, 9.0);
    edit(&mut obs, "n3", 7.0, |s| {
        s.status.as_mut().unwrap().peers = 1
    });
    assert!(bites(&obs).passed, "{:?}", bites(&obs));
}

#[test]
fn a_delay_is_seen_in_pings_slower_than_half_of_it() {
    let delay = Fault::Delay {
        nodes: vec!["n2".into()],
        to: vec![],
        ms: 100,
        jitter_ms: 0,
        reorder_percent: 0.0,
    };
    let mut obs = with_fault(delay, 5.0, 9.0);
    // Every node: 10 pings so far, all under 1 ms; during the delay n0 gets 3
    // more, all of them slow.
    for n in NODES {
        edit(&mut obs, n, 0.0, |s| {
            s.metrics
                .insert("testnet_ping_rtt_seconds_count".into(), 10.0);
            s.metrics
                .insert("testnet_ping_rtt_seconds_bucket{le=\"0.001\"}".into(), 10.0);
            s.metrics
                .insert("testnet_ping_rtt_seconds_bucket{le=\"0.05\"}".into(), 10.0);
            s.metrics
                .insert("testnet_ping_rtt_seconds_bucket{le=\"0.1\"}".into(), 10.0);
        });
    }
    let v = bites(&obs);
    assert!(
        !v.passed && v.summary.contains("slower than 50 ms"),
        "{v:?}"
    );
    // Three pings between 50 and 100 ms: slower than half of the 100 ms.
    edit(&mut obs, "n0", 7.0, |s| {
        s.metrics
            .insert("testnet_ping_rtt_seconds_count".into(), 13.0);
        s.metrics
            .insert("testnet_ping_rtt_seconds_bucket{le=\"0.1\"}".into(), 13.0);
    });
    let w = &obs.faults[0];
    assert_eq!(
        effect::effect(&obs, w).unwrap(),
        "n0 measured 3 pings slower than 50 ms"
    );
    // Slow pings only long after the window (+15): not this delay's.
    let mut later = obs.clone();
    edit(&mut later, "n0", 7.0, |s| {
        if s.t < T0 + 15.0 {
            s.metrics
                .insert("testnet_ping_rtt_seconds_count".into(), 10.0);
            s.metrics
                .insert("testnet_ping_rtt_seconds_bucket{le=\"0.1\"}".into(), 10.0);
        }
    });
    assert!(!bites(&later).passed, "{:?}", bites(&later));
}

#[test]
fn loss_duplicate_and_caps_are_seen_in_the_agents_counters() {
    for (fault, series) in [
        (
            Fault::Loss {
                nodes: vec!["n1".into()],
                to: vec![],
                percent: 5.0,
            },
            "testnet_fault_matched_packets{kind=\"loss\"}",
        ),
        (
            Fault::Duplicate {
                nodes: vec!["n1".into()],
                to: vec![],
                percent: 5.0,
            },
            "testnet_fault_matched_packets{kind=\"duplicate\"}",
        ),
        (
            Fault::Bandwidth {
                nodes: vec!["n1".into()],
                kbit: 256,
            },
            "testnet_fault_bandwidth_overlimits",
        ),
    ] {
        let mut obs = with_fault(fault.clone(), 5.0, 9.0);
        assert!(!bites(&obs).passed, "{fault:?}");
        // Counted on another node: not this fault's.
        edit(&mut obs, "n2", 6.0, |s| {
            s.agent_metrics.insert(series.into(), 4.0);
        });
        assert!(!bites(&obs).passed, "{fault:?}");
        edit(&mut obs, "n1", 6.0, |s| {
            s.agent_metrics.insert(series.into(), 4.0);
        });
        assert!(bites(&obs).passed, "{fault:?}: {:?}", bites(&obs));
    }
    // A rate of 0 clears: nothing to see, nothing wrong.
    let clear = Fault::Loss {
        nodes: vec!["n1".into()],
        to: vec![],
        percent: 0.0,
    };
    assert!(bites(&with_fault(clear, 5.0, 9.0)).passed);
}

/// A paused node whose process table still read as running at the look
/// (held etcd in CI), but that answered no scrape in the window while it
/// had answered them before: the pause bit. Never answering is no evidence.
#[test]
fn a_pause_is_seen_by_scrapes_that_stopped_answering() {
    let scraped = |obs: &mut Observations, from: f64, to: f64| {
        for s in obs.samples.iter_mut().filter(|s| s.node == "n1") {
            match s.t < T0 + from || s.t > T0 + to {
                true => s.metrics.insert("up".into(), 1.0),
                false => {
                    s.metrics.clear();
                    None
                }
            };
        }
    };
    let mut obs = with_fault(Fault::Pause("n1".into()), 5.0, 9.0);
    assert!(!bites(&obs).passed, "nothing seen yet");
    scraped(&mut obs, 5.5, 8.5);
    let v = bites(&obs);
    assert!(v.passed, "{v:?}");
    let mut never = with_fault(Fault::Pause("n1".into()), 5.0, 9.0);
    scraped(&mut never, -1.0, 100.0);
    assert!(!bites(&never).passed, "never answering shows nothing");
}

#[test]
fn process_faults_are_seen_down_or_reported_and_restarts_by_their_uptime() {
    let mut obs = with_fault(Fault::Kill("n1".into()), 5.0, 9.0);
    let v = bites(&obs);
    assert!(!v.passed && v.summary.contains("never seen down"), "{v:?}");
    // Down only in the two seconds after the window: seen; only long after: not.
    let mut slack = obs.clone();
    edit(&mut slack, "n1", 10.0, |s| {
        if s.t <= T0 + 10.0 {
            s.status = None;
        }
    });
    assert!(bites(&slack).passed, "{:?}", bites(&slack));
    let mut late = obs.clone();
    edit(&mut late, "n1", 15.0, |s| s.status = None);
    assert!(!bites(&late).passed);
    edit(&mut obs, "n1", 6.0, |s| {
        if s.t < T0 + 9.0 {
            s.status = None;
        }
    });
    assert!(bites(&obs).passed, "{:?}", bites(&obs));
    // Too short to sample: the agent's own report counts.
    let mut obs = with_fault(Fault::Pause("n1".into()), 5.0, 5.2);
    obs.faults[0].applied = Some("{\"state\":\"paused\",\"pid\":7,\"restarts\":0}".into());
    assert!(bites(&obs).passed, "{:?}", bites(&obs));
    // A restart: the node must come back with a fresh uptime.
    let mut obs = with_fault(Fault::Restart("n2".into()), 5.0, 5.0);
    assert!(!bites(&obs).passed);
    edit(&mut obs, "n2", 6.0, |s| {
        s.status.as_mut().unwrap().uptime_secs = s.t - T0 - 5.5;
    });
    assert!(bites(&obs).passed, "{:?}", bites(&obs));
    // A window with no record of its fault cannot be judged.
    let mut obs = with_fault(Fault::Kill("n1".into()), 5.0, 9.0);
    obs.faults[0].fault = None;
    assert!(!bites(&obs).passed);
}

/// Mutation tests found these gaps: a hold that begins after a payment's
/// deadline does not move it; a payment final exactly at its bound is in time;
/// the summary's slowest payment is its latency.
#[test]
fn a_hold_after_the_deadline_moves_nothing_and_the_bound_is_inclusive() {
    let mut obs = healthy();
    let mut late_cut = window(FaultKind::Partition, 8.0, Some(12.0), "isolate n3");
    late_cut.cut_off = vec!["n3".into()];
    obs.faults.push(late_cut);
    // Sent at +3, due at +5; the cut of n3 only begins at +8.
    obs.load = Some(load(vec![payment(3.0, [3.5, 3.5, 3.5, 9.0])]));
    let v = finality(&obs, 2.0);
    assert!(!v.passed && v.summary.contains("due by +5.0s"), "{v:?}");
    // Exactly at the bound: in time.
    obs.load = Some(load(vec![payment(3.0, [3.5, 3.5, 3.5, 5.0])]));
    let v = finality(&obs, 2.0);
    assert!(v.passed, "{v:?}");
    assert!(v.summary.contains("slowest 2.00s"), "{v:?}");
}

/// Mutation tests again: certificates formed just before a gap may land
/// within a second of its start; the gap's edges are exclusive.
#[test]
fn false_finality_allows_the_grace_and_ends_with_the_gap() {
    let mut obs = healthy();
    obs.quorum_gaps.push(crate::fault::QuorumGap {
        start: T0 + 4.0,
        end: Some(T0 + 9.0),
        why: "n0 down; n1 down".into(),
    });
    let false_finality = |obs: &Observations| {
        finality(obs, 20.0)
            .details
            .iter()
            .any(|d| d.contains("false finality"))
    };
    for (at, flagged) in [
        (4.5, false),
        (5.0, false),
        (5.5, true),
        (8.9, true),
        (9.0, false),
    ] {
        obs.load = Some(load(vec![payment(3.0, [at, 3.5, 3.5, 3.5])]));
        assert_eq!(false_finality(&obs), flagged, "final at +{at}");
    }
}

/// Mutation tests: an effect may show up to two seconds after its window ends
/// (the next samples), not later; the summary counts the faults seen.
#[test]
fn an_effect_counts_within_the_slack_after_its_window_only() {
    let cut = Fault::Partition(crate::fault::Partition::groups(vec![
        vec!["n0".into(), "n1".into()],
        vec!["n2".into(), "n3".into()],
    ]));
    let mut obs = with_fault(cut.clone(), 5.0, 9.0);
    edit(&mut obs, "n3", 10.0, |s| {
        if s.t <= T0 + 10.0 {
            s.status.as_mut().unwrap().peers = 1
        }
    });
    let v = bites(&obs);
    assert!(v.passed && v.summary.ends_with("(1)"), "{v:?}");
    let mut obs = with_fault(cut, 5.0, 9.0);
    edit(&mut obs, "n3", 15.0, |s| {
        s.status.as_mut().unwrap().peers = 1
    });
    assert!(!bites(&obs).passed, "seen only at +15: not this fault's");
}

/// Mutation tests: restarts and starts are judged within 20 s of the fault,
/// with a second of slack on the uptime; a histogram's other buckets do not
/// count as ping buckets.
#[test]
fn restarts_and_starts_are_judged_within_their_come_back_time() {
    let fresh = |obs: &mut Observations, node: &str, from: f64, lag: f64| {
        edit(obs, node, from, |s| {
            s.status.as_mut().unwrap().uptime_secs = s.t - T0 - from + lag
        });
    };
    // Restarted at +5, answering from +8 with 3.5 s of uptime: within a second.
    let mut obs = with_fault(Fault::Restart("n2".into()), 5.0, 5.0);
    fresh(&mut obs, "n2", 8.0, 3.5);
    assert!(bites(&obs).passed, "{:?}", bites(&obs));
    let mut obs = with_fault(Fault::Restart("n2".into()), 5.0, 5.0);
    fresh(&mut obs, "n2", 8.0, 4.5);
    assert!(!bites(&obs).passed, "an uptime from before the restart");
    // A restart (and a start) 25 s before the record: too long ago to judge by.
    for fault in [Fault::Restart("n2".into()), Fault::Start("n2".into())] {
        let mut obs = with_fault(fault.clone(), -25.0, -25.0);
        fresh(&mut obs, "n2", 0.0, 0.0);
        assert!(!bites(&obs).passed, "{fault:?}");
    }
    // A start at +5, the node answering at +6: seen.
    let mut obs = with_fault(Fault::Start("n2".into()), 5.0, 5.0);
    assert!(bites(&obs).passed, "{:?}", bites(&obs));
    edit(&mut obs, "n2", 0.0, |s| s.status = None);
    assert!(!bites(&obs).passed);
}

#[test]
fn only_ping_buckets_count_and_fast_pings_are_no_effect() {
    let delay = Fault::Delay {
        nodes: vec!["n2".into()],
        to: vec![],
        ms: 100,
        jitter_ms: 0,
        reorder_percent: 0.0,
    };
    let mut obs = with_fault(delay, 5.0, 9.0);
    for n in NODES {
        edit(&mut obs, n, 0.0, |s| {
            // Fast pings keep coming: 10 before, 13 during, all under 50 ms.
            let pings = if s.t >= T0 + 6.0 { 13.0 } else { 10.0 };
            for series in [
                "testnet_ping_rtt_seconds_count",
                "testnet_ping_rtt_seconds_bucket{le=\"0.05\"}",
                "testnet_ping_rtt_seconds_bucket{le=\"0.1\"}",
            ] {
                s.metrics.insert(series.into(), pings);
            }
            s.metrics.insert(
                "testnet_finality_latency_seconds_bucket{le=\"0.05\"}".into(),
                500.0,
            );
        });
    }
    assert!(!bites(&obs).passed, "{:?}", bites(&obs));
}

/// Mutation tests: nodes that report no finalized-set digest cannot be
/// compared, even when their counts agree.
#[test]
fn safety_fails_when_nodes_report_no_finalized_digest() {
    let mut obs = healthy();
    for n in NODES {
        edit(&mut obs, n, 0.0, |s| {
            s.status.as_mut().unwrap().finalized_digest = String::new()
        });
    }
    let v = safety(&obs);
    assert!(
        !v.passed && v.summary.contains("n0 reports no finalized_digest"),
        "{v:?}"
    );
}

/// Mutation tests: the rate is a floor per node (exactly at it passes), and a
/// passing verdict says the overall rate.
#[test]
fn handshake_rate_is_a_per_node_floor_and_the_summary_says_the_overall_rate() {
    let mut obs = healthy();
    edit(&mut obs, "n2", 5.0, |s| {
        let st = s.status.as_mut().unwrap();
        st.handshake_attempts = 12;
        st.handshakes_completed = 6;
    });
    let v = handshake_success(&obs, 0.5);
    assert!(v.passed, "{v:?}");
    assert_eq!(v.summary, "15 of 21 handshakes completed (71.43%)");
    assert!(!handshake_success(&obs, 0.51).passed);
}

/// Mutation tests: the mesh must be back within the bound (not later), a node
/// that ends short of peers fails, and an open process fault at the end
/// excuses the end check.
#[test]
fn connectivity_bounds_the_return_and_judges_the_end() {
    let mut obs = healthy();
    obs.faults.push(partition(5.0, 8.0, true));
    edit(&mut obs, "n3", 5.0, |s| {
        if s.t < T0 + 15.0 {
            s.status.as_mut().unwrap().peers = 1;
        }
    });
    let v = connectivity(&obs, 5.0);
    assert!(
        !v.passed && v.summary.contains("heal): n3"),
        "back at +15, bound +13: {v:?}"
    );
    let mut obs = healthy();
    edit(&mut obs, "n3", 19.0, |s| {
        s.status.as_mut().unwrap().peers = 1
    });
    let v = connectivity(&obs, 5.0);
    assert!(
        !v.passed && v.summary.contains("n3 ended with 1 of 3 peers"),
        "{v:?}"
    );
    // n3 killed at +10 for good: not meshed at the end, and that is the timeline's doing.
    let mut obs = healthy();
    obs.faults
        .push(window(FaultKind::Process, 10.0, None, "kill n3"));
    edit(&mut obs, "n3", 10.0, |s| s.status = None);
    assert!(
        connectivity(&obs, 5.0).passed,
        "{:?}",
        connectivity(&obs, 5.0)
    );
}

/// Mutation tests: only a process fault of that node, from its start and
/// within the come-back time, excuses a node being down.
#[test]
fn processes_excuse_only_that_nodes_process_fault_in_its_time() {
    let down = |obs: &mut Observations| {
        edit(obs, "n1", 6.0, |s| {
            if s.t < T0 + 8.0 {
                s.status = None;
            }
        })
    };
    let with = |w: FaultEvent| {
        let mut obs = healthy();
        down(&mut obs);
        obs.faults.push(w);
        processes(&obs)
    };
    let mut cut = window(FaultKind::Partition, 5.0, Some(9.0), "partition");
    cut.nodes = vec!["n1".into()];
    assert!(
        !with(cut).passed,
        "a partition does not take a process down"
    );
    let mut other = window(FaultKind::Process, 5.0, Some(9.0), "kill n2");
    other.nodes = vec!["n2".into()];
    assert!(!with(other).passed, "another node's kill");
    let mut later = window(FaultKind::Process, 7.0, Some(9.0), "kill n1");
    later.nodes = vec!["n1".into()];
    assert!(!with(later).passed, "down before its kill began");
    let mut long_ago = window(FaultKind::Process, -25.0, Some(-25.0), "restart n1");
    long_ago.nodes = vec!["n1".into()];
    assert!(!with(long_ago).passed, "past its come-back time");
    let mut own = window(FaultKind::Process, 5.0, Some(9.0), "kill n1");
    own.nodes = vec!["n1".into()];
    assert!(with(own).passed);
}

/// From mutation testing: `within` is a deadline after the start; a value
/// reached only after it fails, one reached before it passes.
#[test]
fn a_metric_within_a_bound_counts_only_values_before_the_deadline() {
    let mut obs = healthy();
    for n in NODES {
        edit(&mut obs, n, 0.0, |s| {
            let v = if s.t >= T0 + 8.0 { 1.0 } else { 0.0 };
            s.metrics.insert("testnet_certificates_total".into(), v);
        });
    }
    let m = |within: u64, per_node: bool| MetricAssertion {
        metric: "testnet_certificates_total".into(),
        labels: BTreeMap::new(),
        op: Op::Ge,
        value: if per_node { 1.0 } else { 4.0 },
        within: Some(Duration::from_secs(within)),
        per_node,
        allow_absent: false,
        always: false,
        tolerate: None,
        during: None,
        nodes: None,
        agg: None,
    };
    for per_node in [false, true] {
        let late = metric(&obs, &m(5, per_node));
        assert!(!late.passed, "reached at +8 s, bound 5 s: {late:?}");
        let in_time = metric(&obs, &m(10, per_node));
        assert!(in_time.passed, "reached at +8 s, bound 10 s: {in_time:?}");
    }
}

/// From mutation testing: a restart seen only in the node's uptime is caught;
/// an uptime read up to half a second behind the last one (sampling jitter)
/// is not a restart.
#[test]
fn processes_see_restarts_by_uptime_with_half_a_second_of_jitter() {
    let mut obs = healthy();
    edit(&mut obs, "n2", 10.0, |s| {
        s.status.as_mut().unwrap().uptime_secs = s.t - T0 - 9.0;
    });
    let v = processes(&obs);
    assert!(
        !v.passed && v.summary.contains("n2 restarted at +10.0s"),
        "{v:?}"
    );
    // healthy(): uptime is 100 + t. At +10 s read 0.5 s behind +9 s's value.
    let mut obs = healthy();
    edit(&mut obs, "n2", 10.0, |s| {
        s.status.as_mut().unwrap().uptime_secs = s.t - T0 + 98.5;
    });
    let v = processes(&obs);
    assert!(v.passed, "108.5 after 109.0 is no restart: {v:?}");
    let mut obs = healthy();
    edit(&mut obs, "n2", 10.0, |s| {
        s.status.as_mut().unwrap().uptime_secs = s.t - T0 + 88.5;
    });
    assert!(!processes(&obs).passed, "98.5 after 109.0 is a restart");
}

/// A node whose store failed (it reports it in `/status`) fails `processes`,
/// named with the time and the error, even inside a process fault's window.
#[test]
fn processes_fail_a_node_whose_store_failed() {
    let mut obs = healthy();
    let mut restart = window(FaultKind::Process, 5.0, Some(15.0), "restart n1");
    restart.nodes = vec!["n1".into()];
    obs.faults.push(restart);
    assert!(processes(&obs).passed);
    edit(&mut obs, "n1", 7.0, |s| {
        s.status.as_mut().unwrap().store_error =
            Some("cannot write to /var/lib/testnet/log: File too large".into());
    });
    let v = processes(&obs);
    assert!(
        !v.passed
            && v.summary.contains(
                "n1's store failed at +7.0s and it stopped voting: cannot write to /var/lib/testnet/log"
            ),
        "{v:?}"
    );
    // Under a disk fault on n1 the same failure is the timeline's doing.
    let mut full = window(FaultKind::Disk, 6.0, Some(12.0), "disk_full n1");
    full.nodes = vec!["n1".into()];
    obs.faults.push(full);
    let v = processes(&obs);
    assert!(v.passed, "{v:?}");
    assert!(
        v.summary.contains("n1's store failed under `disk_full n1`"),
        "{v:?}"
    );
}

/// Under a disk fault a node fails closed and stays up: down inside the
/// window is a crash; the undo's restart, right after it, is the timeline's.
#[test]
fn processes_allow_a_disk_faults_heal_restart_but_not_a_crash_inside() {
    let down_from = |at: f64| {
        let mut obs = healthy();
        let mut full = window(FaultKind::Disk, 5.0, Some(10.0), "disk_full n1");
        full.nodes = vec!["n1".into()];
        obs.faults.push(full);
        edit(&mut obs, "n1", at, |s| {
            if s.t < T0 + at + 1.0 {
                s.status = None;
            } else {
                s.status.as_mut().unwrap().uptime_secs = s.t - T0 - at - 1.0;
            }
        });
        processes(&obs)
    };
    assert!(down_from(10.0).passed, "{:?}", down_from(10.0));
    let v = down_from(6.0);
    assert!(
        !v.passed && v.summary.contains("n1 was down at +6.0s"),
        "{v:?}"
    );
}

/// From mutation testing: a testnet where no node attempted a handshake fails,
/// and says so rather than a rate of 0 of 0.
#[test]
fn no_handshake_attempted_fails_and_says_so() {
    let mut obs = healthy();
    for n in NODES {
        edit(&mut obs, n, 0.0, |s| {
            let st = s.status.as_mut().unwrap();
            st.handshake_attempts = 0;
            st.handshakes_completed = 0;
        });
    }
    let v = handshake_success(&obs, 0.5);
    assert!(!v.passed, "{v:?}");
    assert!(
        v.summary
            .ends_with(": no handshake was attempted by any node"),
        "{v:?}"
    );
}

/// From mutation testing: a node that never answered fails every checker that
/// reads its status, named with the reason (handshakes would otherwise add
/// up without it).
#[test]
fn a_node_that_never_answered_fails_each_checker_by_name() {
    let mut obs = healthy();
    edit(&mut obs, "n2", 0.0, |s| s.status = None);
    for v in [
        handshake_success(&obs, 0.5),
        connectivity(&obs, 5.0),
        processes(&obs),
    ] {
        assert!(
            !v.passed
                && v.details
                    .iter()
                    .any(|d| d == "n2 never answered /status during the run"),
            "{v:?}"
        );
    }
}

/// From mutation testing: counters restart with the node (its uptime went
/// back, even when the counter did not), and an uptime read half a second
/// behind is jitter, not a restart.
#[test]
fn counters_add_up_across_a_restart_seen_only_in_the_uptime() {
    let restarted = |uptime_at: fn(f64) -> f64| {
        let mut obs = healthy();
        edit(&mut obs, "n1", 10.0, move |s| {
            let st = s.status.as_mut().unwrap();
            st.uptime_secs = uptime_at(s.t - T0);
            st.handshake_attempts = 4;
            st.handshakes_completed = 4;
        });
        handshake_success(&obs, 0.5).summary
    };
    // healthy(): 3 of 3 on each node, uptime 100 + t.
    assert_eq!(
        restarted(|t| t - 9.5),
        "16 of 16 handshakes completed (100.00%)",
        "n1: 3 before its restart + 4 after"
    );
    assert_eq!(
        restarted(|t| t + 98.5),
        "13 of 13 handshakes completed (100.00%)",
        "n1: no restart, 4 in all"
    );
}

/// A node down under a memory limit (an OOM kill) is a crash the timeline
/// caused: allowed, and named in the verdict; the same outage with no such
/// window fails.
#[test]
fn an_oom_under_a_memory_limit_is_a_timeline_crash() {
    let mut obs = healthy();
    edit(&mut obs, "n2", 6.0, |s| {
        if s.t < T0 + 9.0 {
            s.status = None;
        } else {
            s.status.as_mut().unwrap().uptime_secs = s.t - T0 - 9.0;
        }
    });
    let v = processes(&obs);
    assert!(
        !v.passed && v.summary.contains("n2 was down at +6.0s"),
        "{v:?}"
    );
    obs.faults.push(FaultEvent {
        start: T0 + 5.0,
        end: Some(T0 + 8.0),
        kind: FaultKind::Resource,
        label: "memory n2 6 MiB".into(),
        nodes: vec!["n2".into()],
        no_quorum: false,
        cut_off: vec![],
        fault: None,
        applied: None,
        step: None,
    });
    let v = processes(&obs);
    assert!(
        v.passed
            && v.summary
                .contains("n2 went down under `memory n2 6 MiB` (a crash the timeline caused)"),
        "{v:?}"
    );
}
