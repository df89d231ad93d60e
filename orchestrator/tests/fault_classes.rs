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
    let shown = chaos_show(name).await;
    let n0 = &shown_of(&shown, "n0")["state"];
    assert_eq!(n0["drop_to"].as_array().map(Vec::len), Some(2), "{n0}");
    assert!(
        shown_of(&shown, "n1")["state"]["drop_to"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "one way only: {shown:?}"
    );
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

/// `testnet chaos byzantine` switches a behaviour on in a running node (its
/// /status shows it), composes with a second one, and `--off` takes each
/// away; the node refuses the same switch from outside its namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byzantine_behaviours_switch_on_and_off_through_the_agent_only() {
    let image = image().await;
    let name = "e2e-byzantine-cli";
    let _guard = Guard(name);
    let out = run(&["up", "--name", name, "--image", &image]).await;
    assert!(out.status.success(), "{}", text(&out));
    let status = run(&["status", "--name", name, "--json"]).await;
    let nodes: Vec<Value> = serde_json::from_slice(&status.stdout).unwrap();
    let api = field(&nodes, "n1", "http_url");
    let shown = || async {
        let s: Value = reqwest::get(format!("{api}/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        s["byzantine"]["behaviours"].clone()
    };
    let chaos = |extra: &'static [&'static str]| async move {
        let mut args = vec!["chaos", "byzantine", "--nodes", "n1", "--name", name];
        args.extend(extra);
        let out = run(&args).await;
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };
    let said = chaos(&["--behaviour", "mute"]).await;
    assert!(said.contains("n1: mute in place (read back)"), "{said}");
    chaos(&["--behaviour", "bad-signatures"]).await;
    assert_eq!(shown().await, serde_json::json!(["mute", "bad-signatures"]));
    chaos(&["--behaviour", "mute", "--off"]).await;
    assert_eq!(shown().await, serde_json::json!(["bad-signatures"]));
    // A node process that restarts comes back honest; its agent sets the
    // misbehaviour again: a fault lasts its window, not a process's life.
    let restart = run(&["chaos", "restart", "n1", "--name", name]).await;
    assert!(restart.status.success(), "{}", text(&restart));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = reqwest::get(format!("{api}/status")).await;
        let back = match now {
            Ok(r) => r
                .json::<Value>()
                .await
                .ok()
                .map(|s| s["byzantine"]["behaviours"].clone()),
            Err(_) => None,
        };
        if back == Some(serde_json::json!(["bad-signatures"])) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not set again after the restart: {back:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // From the host (not the node's loopback): refused, nothing changes.
    let refused = reqwest::Client::new()
        .put(format!("{api}/byzantine"))
        .json(&serde_json::json!({ "behaviours": ["equivocate"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(shown().await, serde_json::json!(["bad-signatures"]));
    chaos(&["--behaviour", "bad-signatures", "--off"]).await;
    assert_eq!(
        shown().await,
        Value::Null,
        "honest again: no byzantine field"
    );
    let bad = run(&[
        "chaos",
        "byzantine",
        "--nodes",
        "n1",
        "--behaviour",
        "loud",
        "--name",
        name,
    ])
    .await;
    assert!(
        !bad.status.success() && text(&bad).contains("withhold-certificates"),
        "{}",
        text(&bad)
    );
    down_leaves_nothing(name).await;
}

/// One Byzantine validator of four, through every behaviour in turn under
/// load: the scenario passes (safety, finality of what honest nodes
/// accepted, the forged votes and garbage dropped and counted). Two that
/// equivocate (f + 1) are caught by safety.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byzantine_of_four_is_tolerated_and_two_equivocators_are_caught() {
    let image = image().await;
    let _guard = Guard("e2e-byzantine-f");
    let (code, report, _) = run_scenario(&image, "byzantine-f.scenario.yaml").await;
    assert_eq!(code, Some(0), "{}", report["verdicts"]);
    let faults = report["observations"]["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 6);
    for f in faults {
        let applied = f["applied"].as_str().unwrap_or("");
        assert!(applied.contains("in place (read back)"), "{f}");
    }
    let finality = report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["invariant"] == "finality")
        .unwrap();
    assert!(
        finality["summary"]
            .as_str()
            .unwrap()
            .contains("while it was Byzantine, not judged"),
        "{finality}"
    );
    let _guard = Guard("e2e-byzantine-f-plus-one");
    let (code, report, _) = run_scenario(&image, "byzantine-f-plus-one.scenario.yaml").await;
    assert_eq!(code, Some(1), "{}", report["verdicts"]);
    let safety = &report["verdicts"][0];
    assert_eq!(safety["invariant"], "safety");
    assert!(
        safety["summary"]
            .as_str()
            .unwrap()
            .contains("had both twins finalized"),
        "{safety}"
    );
}

/// The shipped nemesis: its seeded schedule runs fault by fault (each seen
/// to bite), every invariant holds, and the report's scenario.yaml holds the
/// drawn schedule as plain steps, labelled as the faults the run applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_nemesis_runs_its_schedule_and_writes_it_for_replay() {
    let image = image().await;
    let _guard = Guard("e2e-nemesis");
    let (code, report, dir) = run_scenario(&image, "nemesis.scenario.yaml").await;
    assert_eq!(code, Some(0), "{}", report["verdicts"]);
    let applied: Vec<String> = report["observations"]["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["label"].as_str().unwrap().to_owned())
        .collect();
    let replay = testnet::scenario::Scenario::load(&dir.join("scenario.yaml")).unwrap();
    assert_eq!(replay.nemesis_steps, 0, "drawn once, replayed as steps");
    let drawn: Vec<String> = replay.timeline.iter().map(|s| s.fault.label()).collect();
    assert_eq!(drawn.len(), 8, "{drawn:?}");
    assert_eq!(applied, drawn);
}

/// Every txid `api` lists as finalized, page by page.
async fn finalized_ids(api: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = reqwest::get(format!("{api}/finalized?after={after}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entries = page["entries"].as_array().unwrap();
        ids.extend(
            entries
                .iter()
                .map(|e| e["txid"].as_str().unwrap().to_owned()),
        );
        after = page["next"].as_u64().unwrap();
        if entries.is_empty() || after >= page["total"].as_u64().unwrap() {
            return ids;
        }
    }
}

/// Waits up to 30 s for `api`'s /health to answer `code`.
async fn health_becomes(api: &str, code: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = reqwest::get(format!("{api}/health"))
            .await
            .map(|r| r.status().as_u16());
        if now.as_ref().ok() == Some(&code) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{api}/health never answered {code}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A full disk: the node stops voting and reports unhealthy while the
/// others finalize; freed and restarted while cut off from every peer (so
/// only its own log can tell it anything), it still holds every payment it
/// had finalized before the disk filled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_node_closed_and_loses_nothing_it_acknowledged() {
    let image = image().await;
    let name = "e2e-disk-full";
    let _guard = Guard(name);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capped.yaml");
    std::fs::write(&file, "nodes: 4\nnode_options: { n2: { disk_mib: 16 } }\n").unwrap();
    let out = run(&[
        "up",
        file.to_str().unwrap(),
        "--name",
        name,
        "--image",
        &image,
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let status = run(&["status", "--name", name, "--json"]).await;
    let nodes: Vec<Value> = serde_json::from_slice(&status.stdout).unwrap();
    let n2 = field(&nodes, "n2", "http_url");
    let load = |secs: &'static str| async move {
        let args = [
            "load",
            "--name",
            name,
            "--tps",
            "10",
            "--duration",
            secs,
            "--settle",
            "10s",
            "--json",
        ];
        run(&args).await
    };
    let before = load("4s").await;
    assert!(before.status.success(), "{}", text(&before));
    let durable = finalized_ids(&n2).await;
    assert!(durable.len() > 40, "{} finalized on n2", durable.len());
    let out = run(&["chaos", "disk-full", "--nodes", "n2", "--name", name]).await;
    assert!(text(&out).contains("n2: disk full"), "{}", text(&out));
    // Under load n2 must write, cannot, and fails closed; the others go on.
    let during = load("4s").await;
    let report: Value = serde_json::from_slice(&during.stdout).unwrap();
    assert!(report["accepted"].as_u64().unwrap() > 0, "{report}");
    health_becomes(&n2, 503).await;
    let shown: Value = reqwest::get(format!("{n2}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        shown["store_error"]
            .as_str()
            .unwrap()
            .contains("No space left"),
        "{shown}"
    );
    // Cut off, freed, restarted: what n2 knows now comes from its own log.
    let cut = run(&[
        "chaos",
        "partition",
        "--shape",
        "isolate:n2",
        "--name",
        name,
    ])
    .await;
    assert!(cut.status.success(), "{}", text(&cut));
    let off = run(&[
        "chaos",
        "disk-full",
        "--nodes",
        "n2",
        "--off",
        "--name",
        name,
    ])
    .await;
    assert!(off.status.success(), "{}", text(&off));
    health_becomes(&n2, 200).await;
    let after: std::collections::HashSet<String> = finalized_ids(&n2).await.into_iter().collect();
    let lost: Vec<&String> = durable.iter().filter(|t| !after.contains(*t)).collect();
    assert!(
        lost.is_empty(),
        "n2 lost {} of {} finalized: {lost:?}",
        lost.len(),
        durable.len()
    );
    run(&["chaos", "heal", "--name", name]).await;
    down_leaves_nothing(name).await;
}

/// The shipped disk scenario: a filled disk and a failing store, each node
/// failing closed and coming back whole; every invariant holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_faults_under_load_fail_closed_and_come_back_whole() {
    let image = image().await;
    let _guard = Guard("e2e-disk-faults");
    let (code, report, _) = run_scenario(&image, "disk-faults.scenario.yaml").await;
    assert_eq!(code, Some(0), "{}", report["verdicts"]);
    let processes = report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["invariant"] == "processes")
        .unwrap();
    let said = processes["summary"].as_str().unwrap();
    assert!(
        said.contains("n2's store failed under `disk_full n2`"),
        "{said}"
    );
    assert!(said.contains("n3's store failed under `disk n3"), "{said}");
}

/// `testnet chaos upgrade`: n1, cut off from every peer, gets a container
/// from our image speaking protocol 2; it keeps its IP and ports (the same
/// URL answers), its data (what it had finalized, with no peer to learn it
/// from again) and its cut (its agent drops the others' packets again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_keeps_the_nodes_data_address_and_faults() {
    let image = image().await;
    let name = "e2e-upgrade-cli";
    let _guard = Guard(name);
    let out = run(&["up", "--name", name, "--image", &image]).await;
    assert!(out.status.success(), "{}", text(&out));
    let load = run(&[
        "load",
        "--name",
        name,
        "--tps",
        "10",
        "--duration",
        "3s",
        "--json",
    ])
    .await;
    assert!(load.status.success(), "{}", text(&load));
    let status = run(&["status", "--name", name, "--json"]).await;
    let nodes: Vec<Value> = serde_json::from_slice(&status.stdout).unwrap();
    let n1 = field(&nodes, "n1", "http_url");
    let before = finalized_ids(&n1).await;
    assert!(before.len() > 20, "{} finalized on n1", before.len());
    let cut = run(&[
        "chaos",
        "partition",
        "--shape",
        "isolate:n1",
        "--name",
        name,
    ])
    .await;
    assert!(cut.status.success(), "{}", text(&cut));
    let up = run(&[
        "chaos",
        "upgrade",
        "--nodes",
        "n1",
        "--protocol-version",
        "2",
        "--min-peer-version",
        "1",
        "--name",
        name,
    ])
    .await;
    assert!(up.status.success(), "{}", text(&up));
    assert!(
        text(&up).contains("n1: container replaced"),
        "{}",
        text(&up)
    );
    let shown: Value = reqwest::get(format!("{n1}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["protocol_version"], 2, "{shown}");
    let after: std::collections::HashSet<String> = finalized_ids(&n1).await.into_iter().collect();
    let lost = before.iter().filter(|t| !after.contains(*t)).count();
    assert_eq!(lost, 0, "n1 lost {lost} of {} finalized", before.len());
    let shown = chaos_show(name).await;
    let report = shown_of(&shown, "n1");
    assert_eq!(
        report["state"]["drop_from"].as_array().map(Vec::len),
        Some(3),
        "{report}"
    );
    down_leaves_nothing(name).await;
}

/// The shipped upgrade scenarios: a rolling upgrade to a compatible version
/// under load passes; an incompatible one is caught by handshake_success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_passes_and_an_incompatible_one_is_caught() {
    let image = image().await;
    let _guard = Guard("e2e-rolling-upgrade");
    let (code, report, _) = run_scenario(&image, "rolling-upgrade.scenario.yaml").await;
    assert_eq!(code, Some(0), "{}", report["verdicts"]);
    for f in report["observations"]["faults"].as_array().unwrap() {
        let applied = f["applied"].as_str().unwrap_or("");
        assert!(applied.contains("speaks protocol 2 in place"), "{f}");
    }
    let _guard = Guard("e2e-bug-incompatible-upgrade");
    let (code, report, _) = run_scenario(&image, "bug-incompatible-upgrade.scenario.yaml").await;
    assert_eq!(code, Some(1), "{}", report["verdicts"]);
    for (i, invariant) in ["handshake_success", "connectivity"].iter().enumerate() {
        let v = &report["verdicts"][i];
        assert_eq!(v["invariant"], *invariant);
        assert_eq!(v["passed"], false, "{v}");
    }
}
