//! `report.html` in a real browser (Debian's headless `chromium`): a report
//! written from synthetic observations through the public API lays out its
//! plots with a size and raises no error; a broken page is caught.

#[path = "support/browser.rs"]
mod browser;

use std::collections::BTreeMap;
use std::path::Path;

use testnet::checks::Verdict;
use testnet::load::{LoadReport, NodeSummary, Payment};
use testnet::observe::{FaultEvent, FaultKind, Observations, Sample};
use testnet::report::{self, RunReport};
use testnet_node::api::agent::{ProcessReport, ProcessState};
use testnet_node::api::Status;

const T0: f64 = 1_700_000_000.0;
const NODES: [&str; 4] = ["n0", "n1", "n2", "n3"];
const PLOTS: [&str; 3] = [
    "Finality latency over time",
    "Throughput over time",
    "Peers per node over time",
];

fn status(node: &str, peers: usize, finalized: u64) -> Status {
    serde_json::from_value(serde_json::json!({
        "id": "00".repeat(32), "name": node, "network_id": "x", "p2p_address": "10.77.0.10:7000",
        "peers": peers, "peers_inbound": 0, "peers_outbound": peers, "expected_peers": 3,
        "handshake_attempts": 3, "handshakes_completed": 3,
        "handshake_failures": 0, "duplicate_connections_resolved": 0,
        "simulated_bugs": [], "utxo_count": 5, "utxo_digest": "aa", "total_value": 1000,
        "fees": 0, "genesis_supply": 1000, "finalized_transactions": finalized, "mempool": 0,
        "conflicting_certificates": 0, "uptime_secs": 100.0, "version": "t"
    }))
    .expect("a status")
}

/// 30 s of 4 nodes sampled every second, partitioned n0,n1 | n2,n3 from +10 s
/// to +18 s (one peer each, nothing finalizes), with payments every 100 ms.
fn observations() -> Observations {
    let partitioned = |t: f64| (10.0..18.0).contains(&t);
    let mut samples = Vec::new();
    for (i, node) in NODES.iter().enumerate() {
        let mut finalized = 0;
        for t in (0..=30).map(f64::from) {
            if !partitioned(t) {
                finalized += 20 + i as u64;
            }
            let peers = if partitioned(t) { 1 } else { 3 };
            samples.push(Sample {
                t: T0 + t,
                node: (*node).to_owned(),
                status: Some(status(node, peers, finalized)),
                process: Some(ProcessReport {
                    state: ProcessState::Running,
                    pid: Some(7),
                    restarts: 0,
                }),
                metrics: BTreeMap::new(),
                agent_metrics: BTreeMap::new(),
                peers: None,
            });
        }
    }
    samples.sort_by(|a, b| a.t.total_cmp(&b.t));
    Observations {
        testnet: "tn".into(),
        nodes: NODES.iter().map(|n| (*n).to_owned()).collect(),
        started: T0,
        ended: T0 + 30.0,
        samples,
        faults: vec![FaultEvent {
            start: T0 + 10.0,
            end: Some(T0 + 18.0),
            kind: FaultKind::Partition,
            label: "partition n0,n1 | n2,n3".into(),
            nodes: NODES.iter().map(|n| (*n).to_owned()).collect(),
            no_quorum: true,
            cut_off: vec![],
            fault: None,
            applied: None,
            step: None,
        }],
        load: Some(load()),
        ..Observations::default()
    }
}

fn load() -> LoadReport {
    let ms = |secs: f64| (T0 * 1000.0 + secs * 1000.0) as u64;
    let payments: Vec<Payment> = (20..280)
        .map(|k| {
            let sent = ms(f64::from(k) / 10.0);
            let done = if (ms(10.0)..ms(18.0)).contains(&sent) {
                ms(18.3)
            } else {
                sent + 150
            };
            Payment {
                held: Vec::new(),
                sent_ms: sent,
                submitted_to: Some(k as usize % 4),
                final_ms: (0..4).map(|n| Some(done + 10 * n)).collect(),
            }
        })
        .collect();
    let node = |n: &str| NodeSummary {
        endpoint: format!("http://{n}:8080"),
        answered: true,
        name: n.to_owned(),
        finalized: 500,
        utxo_digest: "ab".repeat(32),
        total_value: 1000,
        fees: 0,
        conflicting_certificates: 0,
    };
    LoadReport {
        interrupted: false,
        duration_secs: 26.0,
        planned: payments.len() as u64,
        submitted: payments.len() as u64,
        skipped: 0,
        accepted: payments.len() as u64,
        refused: BTreeMap::new(),
        double_spend_pairs: 0,
        conflicting_pairs_finalized: 0,
        finalized_everywhere: payments.len() as u64,
        not_finalized: 0,
        not_finalized_examples: vec![],
        unread_forgotten: 0,
        vouched: 0,
        latency_p50_ms: 160.0,
        latency_p99_ms: 8300.0,
        latency_max_ms: 8330.0,
        throughput_tps: 10.0,
        nodes: NODES.iter().map(|n| node(n)).collect(),
        payments,
        digests_agree: true,
        value_conserved: true,
    }
}

fn run_report() -> RunReport {
    let verdict = |invariant: &str, passed: bool, summary: &str| Verdict {
        invariant: invariant.into(),
        passed,
        summary: summary.into(),
        details: vec![],
    };
    RunReport {
        scenario: "partition-heal".into(),
        description: Some("Split in two halves, then heal <&>".into()),
        seed: 7,
        passed: false,
        interrupted: false,
        error: None,
        verdicts: vec![
            verdict("connectivity", true, "every node back to 3 peers"),
            verdict("finality", false, "payment <a&b> not final on \"n3\""),
        ],
        observations: observations(),
        resolved_scenario: "name: partition-heal\n".into(),
    }
}

#[test]
fn the_report_lays_out_its_plots_in_a_browser_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    report::write(dir.path(), &run_report()).unwrap();
    let started = std::time::Instant::now();
    let seen = browser::check_report_in_browser(dir.path());
    eprintln!("checked in chromium in {:.1?}", started.elapsed());

    let labels: Vec<&str> = seen.svgs.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, PLOTS, "the three plots, in order");
    for s in &seen.svgs {
        // Wider than a thumbnail: the plots fill the page's column.
        assert!(s.width >= 300.0 && s.height >= 80.0, "{s:?}");
    }
    assert_eq!(seen.screenshot, dir.path().join("report.png"));
    let png = std::fs::metadata(&seen.screenshot).unwrap().len();
    assert!(png > 10_000, "a screenshot of a whole page: {png} bytes");
    // The probed copy does not stay behind.
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "junit.xml",
            "report.html",
            "report.json",
            "report.png",
            "scenario.yaml"
        ]
    );
}

/// The checker can fail: a page whose plot is laid out with no size, that
/// throws, and that logs an error is refused with each reason.
#[test]
fn a_page_with_an_empty_plot_and_a_script_error_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_page(
        dir.path(),
        "<svg aria-label=\"ok\" width=\"200\" height=\"100\"><rect width=\"200\" height=\"100\"/></svg>\n\
         <svg aria-label=\"collapsed\" viewBox=\"0 0 100 50\" style=\"width:0\"></svg>\n\
         <script>console.error('bad <data> & more'); undefinedPlot.draw();</script>",
    );
    let why = browser::render_in_browser(dir.path()).expect_err("a broken page is refused");
    for reason in [
        "svg #1 (\"collapsed\") has zero size: 0 x",
        "uncaught: Uncaught ReferenceError: undefinedPlot is not defined",
        "console.error: bad <data> & more",
        "console: \"bad <data> & more\"",
    ] {
        assert!(why.contains(reason), "no {reason:?} in: {why}");
    }
    assert!(!why.contains("svg #0"), "the sized plot passes: {why}");
}

/// Without chromium the checker says what to install.
#[test]
fn a_missing_browser_says_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    write_page(dir.path(), "<svg width=\"10\" height=\"10\"></svg>");
    let why = browser::render_with("chromium-that-is-not-installed", dir.path())
        .expect_err("no browser, no check");
    assert!(
        why.contains("install Debian's chromium package (apt-get install chromium)"),
        "{why}"
    );
}

fn write_page(dir: &Path, body: &str) {
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>t</title></head>\n<body>\n{body}\n</body></html>\n"
    );
    std::fs::write(dir.join("report.html"), html).unwrap();
}
