//! The series on small hand-made observations, with the exact points expected.

use std::collections::BTreeMap;

use testnet_node::api::Status;

use super::*;
use crate::load::{LoadReport, Payment};

fn status(peers: usize, expected_peers: usize, finalized: u64, uptime: f64) -> Status {
    serde_json::from_value(serde_json::json!({
        "id": "00".repeat(32), "name": "n", "network_id": "x", "p2p_address": "10.77.0.10:7000",
        "peers": peers, "peers_inbound": 0, "peers_outbound": peers,
        "expected_peers": expected_peers, "handshake_attempts": 0, "handshakes_completed": 0,
        "handshake_failures": 0, "duplicate_connections_resolved": 0,
        "simulated_bugs": [], "utxo_count": 0, "utxo_digest": "aa", "total_value": 0,
        "fees": 0, "genesis_supply": 0, "finalized_transactions": finalized, "mempool": 0,
        "conflicting_certificates": 0, "uptime_secs": uptime, "version": "t"
    }))
    .unwrap()
}

fn sample(node: &str, t: f64, status: Option<Status>) -> Sample {
    Sample {
        t,
        node: node.to_owned(),
        status,
        process: None,
        metrics: BTreeMap::new(),
        agent_metrics: BTreeMap::new(),
        peers: None,
    }
}

/// A sample of `n` at `t` that answered with `finalized` and `uptime`.
fn counted(t: f64, finalized: u64, uptime: f64) -> Sample {
    sample("n", t, Some(status(3, 3, finalized, uptime)))
}

fn load(payments: Vec<Payment>) -> LoadReport {
    LoadReport {
        interrupted: false,
        duration_secs: 0.0,
        planned: 0,
        skipped: 0,
        submitted: 0,
        accepted: 0,
        refused: BTreeMap::new(),
        double_spend_pairs: 0,
        conflicting_pairs_finalized: 0,
        finalized_everywhere: 0,
        not_finalized: 0,
        not_finalized_examples: vec![],
        unread_forgotten: 0,
        vouched: 0,
        latency_p50_ms: 0.0,
        latency_p99_ms: 0.0,
        latency_max_ms: 0.0,
        throughput_tps: 0.0,
        nodes: vec![],
        payments,
        digests_agree: true,
        value_conserved: true,
    }
}

fn fault(start: f64, end: Option<f64>, kind: FaultKind, label: &str) -> FaultEvent {
    FaultEvent {
        start,
        end,
        kind,
        label: label.to_owned(),
        nodes: vec![],
        no_quorum: false,
        cut_off: vec![],
        fault: None,
        applied: None,
        step: None,
    }
}

#[test]
fn node_order_is_declared_nodes_then_the_others_as_first_seen() {
    let obs = Observations {
        nodes: vec!["b".into(), "a".into()],
        samples: ["a", "c", "b", "d", "c"]
            .iter()
            .map(|n| sample(n, 0.0, None))
            .collect(),
        ..Observations::default()
    };
    assert_eq!(node_order(&obs), ["b", "a", "c", "d"]);
}

#[test]
fn samples_by_node_sorts_by_time_and_drops_times_that_are_not_finite() {
    let obs = Observations {
        samples: vec![
            sample("a", 3.0, None),
            sample("b", 1.0, None),
            sample("a", 1.0, None),
            sample("a", f64::NAN, None),
            sample("a", 2.0, None),
        ],
        ..Observations::default()
    };
    let by_node = samples_by_node(&obs, &["a".into(), "b".into(), "z".into()]);
    let times: Vec<(&str, Vec<f64>)> = by_node
        .iter()
        .map(|(n, s)| (n.as_str(), s.iter().map(|s| s.t).collect()))
        .collect();
    assert_eq!(
        times,
        [("a", vec![1.0, 2.0, 3.0]), ("b", vec![1.0]), ("z", vec![])]
    );
}

#[test]
fn latencies_take_the_slowest_node_and_count_payments_final_nowhere() {
    let pay = |sent_ms, final_ms: &[Option<u64>]| Payment {
        held: Vec::new(),
        submitted_to: None,
        sent_ms,
        final_ms: final_ms.to_vec(),
    };
    let l = load(vec![
        pay(1_002_000, &[Some(1_002_100), Some(1_002_350), None]),
        pay(1_001_500, &[None, None]),
        pay(1_001_000, &[Some(1_001_040)]),
        // Final "before" it was sent (clocks apart): 0, not a wrap-around.
        pay(1_003_000, &[Some(1_002_990)]),
        pay(1_004_000, &[]),
    ]);
    let (points, never) = latencies(&l, 1000.0);
    assert_eq!(points, [(1.0, 40.0), (2.0, 350.0), (3.0, 0.0)]);
    assert_eq!(never, 2);
}

#[test]
fn p50_per_second_takes_medians_at_mid_second_and_breaks_at_empty_seconds() {
    let points = [
        (-0.5, 7.0),
        (0.1, 10.0),
        (0.2, 30.0),
        (0.7, 20.0),
        // An even count: the mean of the middle two.
        (1.0, 4.0),
        (1.9, 6.0),
        // Nothing in [2, 3): a new segment.
        (3.5, 100.0),
    ];
    assert_eq!(
        p50_per_second(&points),
        [
            vec![(-0.5, 7.0), (0.5, 20.0), (1.5, 5.0)],
            vec![(3.5, 100.0)]
        ]
    );
    assert!(p50_per_second(&[]).is_empty());
}

#[test]
fn throughput_is_the_rate_between_answered_samples_broken_at_gaps_and_restarts() {
    let samples = [
        counted(100.0, 0, 50.0),
        counted(101.0, 10, 51.0),
        counted(103.0, 50, 53.0),
        // Too close to the previous sample for a rate.
        counted(103.0005, 50, 53.0),
        sample("n", 104.0, None),
        // The first answer after a gap has nothing to compare with.
        counted(105.0, 60, 55.0),
        counted(106.0, 66, 56.0),
        // The counter went down: restarted.
        counted(107.0, 2, 0.4),
        counted(108.0, 5, 1.4),
        // The uptime went down while the counter did not: restarted too.
        counted(109.0, 9, 0.2),
        counted(110.0, 10, 1.2),
    ];
    let refs: Vec<&Sample> = samples.iter().collect();
    assert_eq!(
        throughput(&refs, 100.0),
        [
            vec![(0.5, 10.0), (2.0, 20.0)],
            vec![(5.5, 6.0)],
            vec![(7.5, 3.0)],
            vec![(9.5, 1.0)],
        ]
    );
}

#[test]
fn peers_follow_the_answered_samples_and_break_where_a_node_did_not_answer() {
    let samples = [
        sample("n", 9.0, None),
        sample("n", 10.0, Some(status(3, 3, 0, 1.0))),
        sample("n", 11.0, None),
        sample("n", 12.0, Some(status(2, 3, 0, 1.0))),
        sample("n", 13.0, Some(status(3, 3, 0, 1.0))),
        sample("n", 14.0, None),
    ];
    let refs: Vec<&Sample> = samples.iter().collect();
    assert_eq!(
        peers(&refs, 10.0),
        [vec![(0.0, 3.0)], vec![(2.0, 2.0), (3.0, 3.0)]]
    );
}

#[test]
fn full_mesh_is_the_most_peers_any_node_expected() {
    let mut obs = Observations {
        samples: vec![
            sample("a", 0.0, Some(status(1, 3, 0, 1.0))),
            sample("b", 0.0, None),
            sample("c", 0.0, Some(status(1, 4, 0, 1.0))),
        ],
        ..Observations::default()
    };
    assert_eq!(full_mesh(&obs), Some(4));
    // A lone validator expects no peer: no reference line.
    obs.samples = vec![sample("a", 0.0, Some(status(0, 0, 0, 1.0)))];
    assert_eq!(full_mesh(&obs), None);
    obs.samples = vec![sample("a", 0.0, None)];
    assert_eq!(full_mesh(&obs), None);
}

#[test]
fn fault_windows_are_relative_to_the_start_and_open_ones_last_to_the_end() {
    let obs = Observations {
        started: 100.0,
        ended: 130.0,
        faults: vec![
            fault(122.0, None, FaultKind::Process, "restart n2"),
            fault(110.0, Some(118.0), FaultKind::Partition, "partition"),
            fault(90.0, Some(95.0), FaultKind::Link, "before the start"),
        ],
        ..Observations::default()
    };
    let windows: Vec<(&str, f64, f64)> = fault_windows(&obs)
        .iter()
        .map(|w| (w.fault.label.as_str(), w.from, w.to))
        .collect();
    assert_eq!(
        windows,
        [
            ("restart n2", 22.0, 30.0),
            ("partition", 10.0, 18.0),
            ("before the start", -10.0, -5.0),
        ]
    );
}

#[test]
fn fault_kinds_are_listed_once_in_order_of_first_occurrence() {
    let faults = [
        fault(0.0, None, FaultKind::Partition, "p1"),
        fault(0.0, None, FaultKind::Process, "r"),
        fault(0.0, None, FaultKind::Partition, "p2"),
        fault(0.0, None, FaultKind::Link, "l"),
    ];
    assert_eq!(
        fault_kinds(&faults),
        [FaultKind::Partition, FaultKind::Process, FaultKind::Link]
    );
    assert!(fault_kinds(&[]).is_empty());
}

#[test]
fn downsample_keeps_each_buckets_low_and_high_in_x_order() {
    let points = [
        (0.0, 1.0),
        (1.0, 5.0),
        (2.0, 3.0),
        (3.0, 0.0),
        (4.0, 2.0),
        (5.0, 2.0),
        (6.0, 9.0),
        (7.0, 1.0),
    ];
    // Two buckets of four: (high, low) from the first, (high, low) from the second.
    assert_eq!(
        downsample(&points, 4),
        [(1.0, 5.0), (3.0, 0.0), (6.0, 9.0), (7.0, 1.0)]
    );
    // A flat bucket gives one point.
    let flat = [(0.0, 2.0), (1.0, 2.0), (2.0, 2.0), (3.0, 2.0), (4.0, 7.0)];
    assert_eq!(downsample(&flat, 4), [(0.0, 2.0), (3.0, 2.0), (4.0, 7.0)]);
    // Short enough, or a budget too small to keep extremes: unchanged.
    assert_eq!(downsample(&points, 8), points);
    assert_eq!(downsample(&points, 3), points);
}
