//! Docker end to end for fault classes beyond the symmetric network cuts
//! (issue 19), each with its effect measured on the real kernel.

#[path = "support/e2e.rs"]
mod e2e;

use std::time::{Duration, Instant};

use e2e::*;
use serde_json::Value;

/// `testnet_fault_matched_packets{kind}` of `node`'s agent.
async fn matched(nodes: &[Value], node: &str, kind: &str) -> f64 {
    let agent = field(nodes, node, "agent_url");
    let text = reqwest::get(format!("{agent}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("testnet_fault_matched_packets{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn field(nodes: &[Value], node: &str, key: &str) -> String {
    nodes
        .iter()
        .find(|n| n["node"] == node)
        .and_then(|n| n[key].as_str())
        .unwrap_or_else(|| panic!("no {key} for {node}: {nodes:?}"))
        .to_owned()
}

/// A one-way cut: n0's packets to n1 and n2 are dropped (counted on n0's
/// way out), theirs to n0 still arrive (counted on arrival); n3, in no group,
/// keeps its link to n0. A heal leaves no rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_cut_drops_one_direction_and_counts_the_other_arriving() {
    let image = image().await;
    let name = "e2e-oneway";
    let _guard = Guard(name);
    let out = run(&["up", "--name", name, "--image", &image]).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&[
        "chaos",
        "partition",
        "--one-way",
        "n0",
        "n1,n2",
        "--name",
        name,
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("partition n0 -/-> n1,n2"),
        "{}",
        text(&out)
    );
    let nodes: Vec<Value> =
        serde_json::from_slice(&run(&["status", "--name", name, "--json"]).await.stdout).unwrap();
    let start = Instant::now();
    let (dropped, arrived) = loop {
        let seen = (
            matched(&nodes, "n0", "drop").await,
            matched(&nodes, "n0", "arrived").await,
        );
        if (seen.0 > 0.0 && seen.1 > 0.0) || start.elapsed() > Duration::from_secs(20) {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        dropped > 0.0,
        "n0's packets to n1, n2 dropped on the way out"
    );
    assert!(arrived > 0.0, "n1's and n2's packets still arrive at n0");
    assert_eq!(matched(&nodes, "n3", "drop").await, 0.0, "n3 is untouched");
    let shown = text(&run(&["chaos", "show", "--name", name]).await);
    assert!(shown.contains("drop_to"), "{shown}");
    let out = run(&["chaos", "partition", "--one-way", "n0", "--name", name]).await;
    assert!(
        !out.status.success() && text(&out).contains("needs the cut group and at least one more"),
        "{}",
        text(&out)
    );
    run(&["chaos", "heal", "--name", name]).await;
    assert_no_rules(name).await;
    down_leaves_nothing(name).await;
}

/// CPU and memory limits, live through the engine: a node held to 0.02
/// cores under load is throttled (the cgroup's throttled periods rise); one
/// held to 6 MiB (the engine's minimum; a node's anonymous memory is about
/// 1.2 MiB idle and grows with what it finalized) is OOM-killed under load
/// (the container exits, the engine says OOM);
/// lifting the memory limit starts it again and the mesh comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_and_memory_limits_throttle_and_oom_kill() {
    use testnet::engine::docker::DockerEngine;
    use testnet::engine::Engine;
    let image = image().await;
    let name = "e2e-limits";
    let _guard = Guard(name);
    let out = run(&["up", "--name", name, "--image", &image]).await;
    assert!(out.status.success(), "{}", text(&out));
    let engine = DockerEngine::connect().await.unwrap();
    let before = engine.resource_stats("e2e-limits-n1").await.unwrap();
    assert_eq!(before.cpu_cores, None, "{before:?}");

    let out = run(&[
        "chaos", "cpu", "--nodes", "n1", "--cores", "0.02", "--name", name,
    ])
    .await;
    assert!(
        text(&out).contains("0.02 cores in place (read back)"),
        "{}",
        text(&out)
    );
    let load = run(&["load", "--name", name, "--tps", "40", "--duration", "4s"]).await;
    let during = engine.resource_stats("e2e-limits-n1").await.unwrap();
    assert!(
        during.throttled_periods > before.throttled_periods,
        "throttled: {before:?} -> {during:?}; load: {}",
        text(&load)
    );
    let out = run(&[
        "chaos", "cpu", "--nodes", "n1", "--cores", "0", "--name", name,
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        engine
            .resource_stats("e2e-limits-n1")
            .await
            .unwrap()
            .cpu_cores,
        None
    );

    let out = run(&[
        "chaos", "memory", "--nodes", "n2", "--mib", "6", "--name", name,
    ])
    .await;
    assert!(
        text(&out).contains("6 MiB in place (read back)"),
        "{}",
        text(&out)
    );
    let start = Instant::now();
    let oom = loop {
        let s = engine.resource_stats("e2e-limits-n2").await.unwrap();
        if s.oom_killed || start.elapsed() > Duration::from_secs(60) {
            break s;
        }
        // Work the node so it allocates past the limit.
        let _ = run(&["load", "--name", name, "--tps", "200", "--duration", "5s"]).await;
    };
    assert!(oom.oom_killed, "no OOM kill at 6 MiB: {oom:?}");
    let out = run(&[
        "chaos", "memory", "--nodes", "n2", "--mib", "0", "--name", name,
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let after = engine.resource_stats("e2e-limits-n2").await.unwrap();
    assert_eq!(after.memory_mib, None, "lifted: {after:?}");
    let start = Instant::now();
    loop {
        let nodes: Vec<Value> =
            serde_json::from_slice(&run(&["status", "--name", name, "--json"]).await.stdout)
                .unwrap();
        let n2 = nodes.iter().find(|n| n["node"] == "n2").unwrap();
        if n2["state"] == "running" && n2["peers"] == 3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "n2 not back: {n2}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    down_leaves_nothing(name).await;
}

/// A clock 30 s ahead on one validator of four: the scenario passes (safety,
/// finality), the node's /status showed the skew while it lasted, and the
/// fault was read back in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_clock_is_read_back_and_safety_holds() {
    let image = image().await;
    let _guard = Guard("e2e-clock-skew");
    let (code, report, _) = run_scenario(&image, "clock-skew.scenario.yaml").await;
    assert_eq!(code, Some(0), "{}", report["verdicts"]);
    let samples = report["observations"]["samples"].as_array().unwrap();
    let skewed = samples.iter().any(|s| {
        s["node"] == "n1"
            && s["status"]["clock"]["offset_ms"] == 30_000
            && s["status"]["clock"]["drift_ppm"] == 500
    });
    assert!(skewed, "n1's /status never showed the skew");
    let others_real = samples
        .iter()
        .filter(|s| s["node"] == "n0" && s["status"].is_object())
        .all(|s| s["status"]["clock"]["offset_ms"] == 0);
    assert!(others_real, "n0 kept real time");
    let fault = &report["observations"]["faults"][0];
    assert!(
        fault["applied"]
            .as_str()
            .unwrap_or("")
            .contains("n1: clock +30000 ms, drift 500 ppm in place"),
        "{fault}"
    );
}
