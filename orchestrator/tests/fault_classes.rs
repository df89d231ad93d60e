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
