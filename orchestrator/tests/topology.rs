//! Topologies end to end (Docker): a hundred nodes on a sparse graph with full
//! nodes finalize every payment everywhere, and the shipped topology scenarios
//! exit as they say (a ring cut in two places, the sparse-100 chaos run, a
//! seeded bug on a full node far from every validator, and its twin).

#[path = "support/e2e.rs"]
mod e2e;

use e2e::*;
use serde_json::Value;

/// A hundred containers at a time: two such tests at once would share the two
/// cores and the kernel's neighbour table, and measure each other.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn shipped(file: &str) -> String {
    format!("{}/../testnets/{file}", env!("CARGO_MANIFEST_DIR"))
}

/// Issue 13's acceptance: 100 nodes (7 validators, random degree 4) come up
/// with each node holding exactly its neighbours; 20 tx/s for 10 s is final on
/// all 100 nodes; nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sparse_nodes_finalize_every_payment_on_every_node() {
    let image = image().await;
    let _heavy = HEAVY.lock().await;
    let name = "e2e-sparse100";
    let _guard = Guard(name);
    let file = shipped("sparse-100.yaml");
    let up = run(&["up", &file, "--name", name, "--image", &image]).await;
    assert!(up.status.success(), "{}", text(&up));
    let status = run(&["status", "--name", name, "--json"]).await;
    let nodes: Vec<Value> = serde_json::from_slice(&status.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}: {}", text(&status)));
    assert_eq!(nodes.len(), 100);
    let validators = nodes.iter().filter(|n| n["validator"] == true).count();
    assert_eq!(validators, 7, "n0..n6 vote");
    for n in &nodes {
        assert_eq!(n["expected_peers"], 4, "degree 4: {n}");
        assert_eq!(n["peers"], n["expected_peers"], "{n}");
    }
    let load = run(&[
        "load",
        "--name",
        name,
        "--tps",
        "20",
        "--duration",
        "10s",
        "--json",
    ])
    .await;
    let report: Value = serde_json::from_slice(&load.stdout)
        .unwrap_or_else(|e| panic!("load --json: {e}: {}", text(&load)));
    eprintln!(
        "100 sparse nodes: {} accepted, {} final on all 100, p50 {} ms, p99 {} ms",
        report["accepted"],
        report["finalized_everywhere"],
        report["latency_p50_ms"],
        report["latency_p99_ms"]
    );
    assert!(load.status.success(), "{}", text(&load));
    assert!(report["accepted"].as_u64().unwrap() >= 150, "{report}");
    assert_eq!(report["finalized_everywhere"], report["accepted"]);
    assert_eq!(report["not_finalized"], 0);
    assert_eq!(report["nodes"].as_array().unwrap().len(), 100);
    assert_eq!(report["digests_agree"], true);
    down_leaves_nothing(name).await;
}

/// The shipped topology scenarios: ring-16 and sparse-100 pass; a seeded bug
/// on a full node four hops from the nearest validator is caught (and named),
/// and the same scenario without it passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_scenarios_exit_as_stated() {
    let image = image().await;
    let _heavy = HEAVY.lock().await;
    for file in ["ring-16.scenario.yaml", "sparse-100.scenario.yaml"] {
        let stem = file.trim_end_matches(".scenario.yaml");
        let _guard = Guard(Box::leak(format!("e2e-{stem}").into_boxed_str()));
        let (code, report, _) = run_scenario(&image, file).await;
        assert_eq!(
            code,
            Some(0),
            "{file} failed: {}",
            serde_json::to_string_pretty(&report["verdicts"]).unwrap()
        );
        let connectivity = report["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["invariant"] == "connectivity")
            .unwrap()
            .clone();
        assert!(
            connectivity["summary"]
                .as_str()
                .unwrap()
                .contains("topology neighbours"),
            "judged by neighbour sets: {connectivity}"
        );
    }
    let file = "bug-full-node.scenario.yaml";
    let _guard = Guard("e2e-bug-full-node");
    let (code, report, _) = run_scenario(&image, file).await;
    assert_eq!(code, Some(1), "{report}");
    let caught = report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["invariant"] == "utxo_agreement")
        .unwrap()
        .clone();
    assert_eq!(caught["passed"], false, "{caught}");
    assert!(caught["details"].to_string().contains("n7"), "{caught}");
    let (_tmp, twin, buggy) = twin_of(file);
    assert_eq!(buggy, ["n7"]);
    let _twin_guard = Guard("e2e-bug-full-node-twin");
    let (code, report, _) = run_scenario_at(&image, &twin).await;
    assert_eq!(
        code,
        Some(0),
        "without its bug: {}",
        serde_json::to_string_pretty(&report["verdicts"]).unwrap()
    );
}
