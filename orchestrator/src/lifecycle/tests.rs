//! The orchestration logic against the fake engine and a scripted probe.

use super::*;
use crate::agent::fake::FakeAgent;
use crate::engine::fake::FakeEngine;
use crate::engine::LABEL_NODE;
use crate::lifecycle::rig::{self, ScriptedProbe};
use crate::plan::{free_subnet, AGENT_PORT, CONFIG_DIR, HTTP_PORT};

const IMAGE: &str = "testnet-node:test";

fn setup() -> (FakeEngine, TestnetFile) {
    rig::state_dir_for_tests();
    let engine = FakeEngine::new();
    engine.state().images.insert(IMAGE.into());
    (engine, TestnetFile::default_testnet())
}

struct Req<'a> {
    name: &'a str,
    file: &'a TestnetFile,
    readiness: Duration,
    replace: bool,
}

fn request<'a>(name: &'a str, file: &'a TestnetFile) -> Req<'a> {
    Req {
        name,
        file,
        readiness: Duration::from_secs(1),
        replace: false,
    }
}

/// `up` of testnet `r.name` on the fake engine, with a fake agent.
async fn up<P: NodeProbe>(
    engine: &FakeEngine,
    probe: &P,
    r: Req<'_>,
    progress: &(impl Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<Vec<NodeSummary>, UpError> {
    let agent = FakeAgent::new(engine);
    let tn = Testnet::new(r.name, engine, probe);
    let req = UpRequest {
        file: r.file,
        image: IMAGE,
        node_image: None,
        readiness: r.readiness,
        replace: r.replace,
        monitor: None,
        agent: &agent,
        owner: crate::state::Owner::me("test", true),
    };
    super::up(&tn, req, progress, cancel).await
}

fn assert_nothing_left(engine: &FakeEngine) {
    let s = engine.state();
    assert!(s.containers.is_empty(), "{:?}", s.containers.keys());
    assert!(s.networks.is_empty(), "{:?}", s.networks.keys());
}

#[tokio::test]
async fn up_creates_the_network_first_then_each_node_and_waits_for_the_mesh() {
    let (engine, file) = setup();
    let summary = up(
        &engine,
        &ScriptedProbe::healthy(4),
        request("alpha", &file),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(summary.len(), 4);
    assert!(summary
        .iter()
        .all(|s| s.state == "running" && s.peers == Some(3)));
    assert_eq!(summary[0].container, "alpha-n0");
    let s = engine.state();
    let pos = |c: &str| {
        s.calls
            .iter()
            .position(|x| x == c)
            .unwrap_or_else(|| panic!("no call {c}"))
    };
    let mut all_pins = std::collections::BTreeSet::new();
    for i in 0..4 {
        let c = format!("alpha-n{i}");
        assert!(pos("create_network testnet-alpha") < pos(&format!("create {c}")));
        assert!(pos(&format!("create {c}")) < pos(&format!("upload {c}")));
        assert!(pos(&format!("upload {c}")) < pos(&format!("start {c}")));
        assert_eq!(s.uploads[&c][0].0, CONFIG_DIR);
        let (spec, _) = &s.containers[&c];
        assert_eq!(spec.labels[LABEL_TESTNET], "alpha");
        assert_eq!(spec.labels[LABEL_NODE], format!("n{i}"));
        let pins: Vec<u16> = spec.publish.iter().map(|(_, h)| *h).collect();
        assert_eq!(
            spec.publish.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            vec![HTTP_PORT, AGENT_PORT]
        );
        assert!(
            pins.iter().all(|p| crate::ports::RANGE.contains(p)),
            "{pins:?}"
        );
        all_pins.extend(pins);
        assert_eq!(spec.cmd[0], "agent");
    }
    let ips: std::collections::BTreeSet<_> = summary.iter().map(|s| s.ip).collect();
    assert_eq!(ips.len(), 4, "static IPs are distinct");
    assert_eq!(all_pins.len(), 8, "host ports are distinct: {all_pins:?}");
    // The plan keeps the pins, and the URLs are the pinned ports.
    let plan = crate::state::StateDir::of("alpha").plan().unwrap();
    for (node, sum) in plan.nodes.iter().zip(&summary) {
        assert_eq!(
            sum.http_url.as_deref(),
            Some(format!("http://127.0.0.1:{}", node.http_port).as_str())
        );
        assert_eq!(
            sum.agent_url.as_deref(),
            Some(format!("http://127.0.0.1:{}", node.agent_port).as_str())
        );
    }
}

/// Something took a node's pinned port between the pick and the start: the
/// node gets new pins, the plan records them, and `up` succeeds.
#[tokio::test]
async fn a_port_taken_at_start_is_picked_again_and_recorded() {
    let (engine, file) = setup();
    // n1's first two starts find a port taken by another program.
    engine.state().port_clash.insert("pin-retry-n1".into(), 2);
    let summary = up(
        &engine,
        &ScriptedProbe::healthy(4),
        request("pin-retry", &file),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let plan = crate::state::StateDir::of("pin-retry").plan().unwrap();
    for (node, sum) in plan.nodes.iter().zip(&summary) {
        assert_eq!(
            sum.http_url.as_deref(),
            Some(format!("http://127.0.0.1:{}", node.http_port).as_str())
        );
    }
    let starts = engine
        .state()
        .calls
        .iter()
        .filter(|c| *c == "start pin-retry-n1")
        .count();
    assert_eq!(starts, 3, "two failed starts, then new pins");
    assert_eq!(engine.state().port_clash["pin-retry-n1"], 0);
    down(&engine, Some("pin-retry")).await.unwrap();
}

/// A stopped node keeps its URL (read from its pins), so the sampler records
/// it as not answering rather than losing it.
#[tokio::test]
async fn a_stopped_node_keeps_its_urls() {
    let (engine, file) = setup();
    let probe = ScriptedProbe::healthy(4);
    up(
        &engine,
        &probe,
        request("pin-stop", &file),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let tn = Testnet::new("pin-stop", &engine, &probe);
    let before = tn.endpoints().await.unwrap();
    engine
        .container_action("pin-stop-n2", crate::engine::ContainerAction::Kill)
        .await
        .unwrap();
    engine
        .state()
        .containers
        .get_mut("pin-stop-n2")
        .unwrap()
        .1
        .ports
        .clear();
    let after = tn.endpoints().await.unwrap();
    assert!(after[2].state.starts_with("exited"), "{:?}", after[2]);
    assert_eq!(before[2].http_url, after[2].http_url);
    assert_eq!(before[2].agent_url, after[2].agent_url);
    down(&engine, Some("pin-stop")).await.unwrap();
}

#[tokio::test]
async fn a_failed_container_rolls_everything_back() {
    let (engine, file) = setup();
    engine.state().fail_create.insert("beta-n2".into());
    let err = up(
        &engine,
        &ScriptedProbe::healthy(4),
        request("beta", &file),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("beta-n2"), "{err}");
    assert_nothing_left(&engine);
}

#[tokio::test]
async fn readiness_timeout_names_the_nodes_missing_peers_with_their_logs() {
    let (engine, file) = setup();
    engine
        .state()
        .logs
        .insert("gamma-n3".into(), "line a\nline b\nlast words".into());
    let probe = ScriptedProbe::lagging(4, &engine, &["n3"], 1);
    let err = up(
        &engine,
        &probe,
        request("gamma", &file),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, UpError::NotReady { .. }), "{text}");
    assert!(text.contains("n3 (running): 1 of 3 peers"), "{text}");
    assert!(text.contains("| last words"), "{text}");
    assert!(
        !text.contains("n0 ("),
        "only lagging nodes are listed: {text}"
    );
    assert_nothing_left(&engine);
}

#[tokio::test]
async fn a_node_that_exits_at_start_fails_fast_with_its_logs() {
    let (engine, file) = setup();
    engine.state().exit_on_start.insert("delta-n1".into(), 2);
    engine
        .state()
        .logs
        .insert("delta-n1".into(), "error: cannot read genesis file".into());
    let err = up(
        &engine,
        &ScriptedProbe::healthy(4),
        request("delta", &file),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("n1 exited at start (code 2)") && text.contains("cannot read genesis"),
        "{text}"
    );
    assert_nothing_left(&engine);
}

#[tokio::test]
async fn an_existing_name_is_refused_unless_replaced_and_down_is_idempotent() {
    let (engine, file) = setup();
    let probe = ScriptedProbe::healthy(4);
    let cancel = CancellationToken::new();
    up(&engine, &probe, request("eps", &file), &|_| {}, &cancel)
        .await
        .unwrap();
    let err = up(&engine, &probe, request("eps", &file), &|_| {}, &cancel)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("testnet down --name eps"), "{err}");
    let mut replace = request("eps", &file);
    replace.replace = true;
    up(&engine, &probe, replace, &|_| {}, &cancel)
        .await
        .unwrap();
    // A second testnet side by side gets its own subnet.
    up(&engine, &probe, request("zeta", &file), &|_| {}, &cancel)
        .await
        .unwrap();
    let subnets: std::collections::BTreeSet<_> = engine
        .state()
        .networks
        .values()
        .map(|n| n.subnet.clone())
        .collect();
    assert_eq!(subnets.len(), 2);
    let removed = down(&engine, Some("eps")).await.unwrap();
    assert_eq!(removed.containers.len(), 4);
    assert_eq!(removed.networks, vec!["testnet-eps"]);
    assert_eq!(
        down(&engine, Some("eps")).await.unwrap(),
        Removed::default()
    );
    assert_eq!(engine.state().containers.len(), 4, "zeta is untouched");
    down(&engine, None).await.unwrap();
    assert_nothing_left(&engine);
}

#[tokio::test]
async fn cancellation_removes_what_was_created() {
    let (engine, file) = setup();
    let cancel = CancellationToken::new();
    let probe = ScriptedProbe::lagging(4, &engine, &["n0", "n1", "n2", "n3"], 0);
    let mut req = request("eta", &file);
    req.readiness = Duration::from_secs(30);
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        canceller.cancel();
    });
    let err = up(&engine, &probe, req, &|_| {}, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, UpError::Interrupted), "{err}");
    assert!(
        *probe.asked.lock().unwrap() > 0,
        "it was waiting for readiness"
    );
    assert_nothing_left(&engine);
}

#[tokio::test]
async fn a_dead_daemon_is_reported_as_such() {
    let (engine, file) = setup();
    engine.state().unreachable = true;
    let err = up(
        &engine,
        &ScriptedProbe::healthy(4),
        request("theta", &file),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("cannot reach the Docker daemon"),
        "{err}"
    );
}

#[tokio::test]
async fn concurrent_ups_get_different_subnets() {
    let (engine, file) = setup();
    let probe = ScriptedProbe::healthy(4);
    let cancel = CancellationToken::new();
    let (a, b) = tokio::join!(
        up(&engine, &probe, request("iota", &file), &|_| {}, &cancel),
        up(&engine, &probe, request("kappa", &file), &|_| {}, &cancel)
    );
    a.unwrap();
    b.unwrap();
    let subnets: std::collections::BTreeSet<_> = engine
        .state()
        .networks
        .values()
        .map(|n| n.subnet.clone())
        .collect();
    assert_eq!(subnets.len(), 2);
}

/// Two `up`s of one name at once: one wins, the other says it exists and does not
/// roll back (which would delete the winner's testnet).
#[tokio::test]
async fn a_same_name_race_leaves_the_winner_alone() {
    let (engine, file) = setup();
    let probe = ScriptedProbe::healthy(4);
    let cancel = CancellationToken::new();
    let (a, b) = tokio::join!(
        up(&engine, &probe, request("lambda", &file), &|_| {}, &cancel),
        up(&engine, &probe, request("lambda", &file), &|_| {}, &cancel)
    );
    let (ok, err) = match (a, b) {
        (Ok(s), Err(e)) | (Err(e), Ok(s)) => (s, e),
        other => panic!("exactly one must win: {other:?}"),
    };
    assert!(matches!(err, UpError::Exists(_)), "{err}");
    assert_eq!(ok.len(), 4);
    assert_eq!(
        engine.state().containers.len(),
        4,
        "the winner's testnet is intact"
    );
    assert_eq!(engine.state().networks.len(), 1);
}

#[test]
fn subnets_never_overlap_existing_networks() {
    let existing = vec![
        "172.17.0.0/16".to_owned(),
        "10.77.0.0/24".to_owned(),
        "10.77.1.0/25".to_owned(),
    ];
    assert_eq!(free_subnet(&existing, 4).unwrap(), "10.77.2.0/24");
    assert!(free_subnet(&["10.0.0.0/8".to_owned()], 4).is_none());
}

/// A ring of 6 with 3 validators: each node is handed its two neighbours,
/// genesis lists 3 validators and 3 full nodes, and readiness wants 2 peers
/// per node (a node with 1 is named).
#[tokio::test]
async fn a_sparse_testnet_hands_each_node_its_neighbours_and_waits_for_them() {
    let (engine, _) = setup();
    let file = TestnetFile::parse("nodes: 6\nvalidators: 3\ntopology: ring\n", "t").unwrap();
    let probe = ScriptedProbe {
        degree: Some(2),
        ..ScriptedProbe::healthy(6)
    };
    up(
        &engine,
        &probe,
        request("ring", &file),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let plan = crate::state::StateDir::of("ring").plan().unwrap();
    assert!(plan.sparse);
    assert_eq!(plan.validators(), ["n0", "n1", "n2"]);
    assert_eq!(plan.neighbours_of("n0"), ["n1", "n5"]);
    let genesis =
        testnet_node::genesis::Genesis::load(&crate::state::StateDir::of("ring").genesis())
            .unwrap();
    assert_eq!((genesis.validators.len(), genesis.full_nodes.len()), (3, 3));
    let cmd = engine.state().containers["ring-n0"].0.cmd.join(" ");
    let ip = |n: &str| plan.ip_of(n).unwrap();
    assert!(
        cmd.contains(&format!("--neighbour {}:7000", ip("n1"))),
        "{cmd}"
    );
    assert!(
        cmd.contains(&format!("--neighbour {}:7000", ip("n5"))),
        "{cmd}"
    );
    assert_eq!(cmd.matches("--neighbour").count(), 2, "{cmd}");
    super::down(&engine, Some("ring")).await.unwrap();

    let probe = ScriptedProbe {
        degree: Some(2),
        ..ScriptedProbe::lagging(6, &engine, &["n4"], 1)
    };
    let err = up(
        &engine,
        &probe,
        request("ring", &file),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("n4 (running): 1 of 2 peers"), "{err}");
    assert_nothing_left(&engine);
}

/// A full mesh is not handed neighbour lists: every node dials genesis.
#[tokio::test]
async fn a_mesh_is_not_handed_neighbours() {
    let (engine, file) = setup();
    up(
        &engine,
        &ScriptedProbe::healthy(4),
        request("mesh", &file),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let cmd = engine.state().containers["mesh-n0"].0.cmd.join(" ");
    assert!(!cmd.contains("--neighbour"), "{cmd}");
    super::down(&engine, Some("mesh")).await.unwrap();
}

/// Holder mode: each node is a holder (the IP, the published ports, the
/// agent with `--holder`) and the node's own container joined to it; status
/// reads the node's state with the holder's IP; a holder that is gone makes
/// its node unreachable; `down` removes the nodes before their holders.
#[tokio::test]
async fn holder_mode_pairs_each_node_with_a_holder() {
    let (engine, mut file) = setup();
    file.holder = true;
    let summary = up(
        &engine,
        &ScriptedProbe::healthy(4),
        request("held", &file),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(summary.len(), 4, "holders are not nodes: {summary:?}");
    {
        let s = engine.state();
        for (i, n) in summary.iter().enumerate() {
            let (holder, _) = &s.containers[&format!("held-n{i}-holder")];
            let (node, info) = &s.containers[&format!("held-n{i}")];
            assert_eq!(holder.labels[LABEL_ROLE], "holder");
            assert_eq!(holder.cmd.last().map(String::as_str), Some("--holder"));
            assert_eq!(holder.cap_add, ["NET_ADMIN"]);
            assert_eq!(
                node.join.as_deref(),
                Some(format!("held-n{i}-holder").as_str())
            );
            assert_eq!(node.cmd[0], "run", "our node's own command: {:?}", node.cmd);
            assert!(node.cap_add.is_empty() && info.ip.is_none());
            assert_eq!(s.uploads[&format!("held-n{i}")][0].0, CONFIG_DIR);
            assert_eq!(n.ip, holder.ip.into(), "the node's IP is its holder's");
            assert_eq!(
                n.holder.as_deref(),
                Some(format!("held-n{i}-holder").as_str())
            );
            assert!(n.http_url.is_some() && n.agent_url.is_some());
        }
    }
    let probe = ScriptedProbe::healthy(4);
    let tn = Testnet::new("held", &engine, &probe);
    engine
        .state()
        .containers
        .get_mut("held-n2-holder")
        .unwrap()
        .1
        .state = crate::engine::ContainerState::Exited(137);
    let nodes = tn.status().await.unwrap();
    assert_eq!(nodes[2].state, "holder exited 137");
    let removed = down(&engine, Some("held")).await.unwrap();
    let first_holder = removed
        .containers
        .iter()
        .position(|c| c.ends_with("-holder"));
    let last_node = removed
        .containers
        .iter()
        .rposition(|c| !c.ends_with("-holder"));
    assert!(
        first_holder > last_node,
        "nodes first: {:?}",
        removed.containers
    );
    assert_nothing_left(&engine);
}
