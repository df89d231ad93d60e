//! Faults applied and undone through the fake agents of a fake testnet: what
//! each node's agent holds afterwards, and the reconcile after a container
//! comes back with a fresh network namespace.

use std::net::Ipv4Addr;

use super::*;
use crate::config::TestnetFile;
use crate::lifecycle::rig::Rig;

fn ip(i: u8) -> Ipv4Addr {
    // The fake engine's first free subnet is 10.77.0.0/24; nodes from .10.
    Ipv4Addr::new(10, 77, 0, 10 + i)
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn zoned() -> TestnetFile {
    TestnetFile::parse(
        "nodes: 4\nzones: { eu: [n0, n1], us: [n2, n3] }\nlatency: { eu: { us: 30 } }\n",
        "zoned.yaml",
    )
    .unwrap()
}

async fn apply_ok(rig: &Rig, f: Fault) -> Applied {
    apply(&rig.tn(), &rig.agent, &f, None).await.unwrap()
}

#[tokio::test]
async fn undoing_a_partition_keeps_a_delay_applied_after_it() {
    let rig = Rig::up("chaos-layers", TestnetFile::default_testnet()).await;
    let cut = apply_ok(
        &rig,
        Fault::Partition(crate::fault::Partition::groups(vec![
            names(&["n0", "n1"]),
            names(&["n2", "n3"]),
        ])),
    )
    .await;
    assert_eq!(rig.faults_of("n0").unwrap().drop_to, [ip(2), ip(3)].into());
    let delay = Fault::Delay {
        nodes: names(&["n2"]),
        to: names(&["n3"]),
        ms: 100,
        jitter_ms: 0,
        reorder_percent: 0.0,
    };
    apply_ok(&rig, delay).await;
    undo(&rig.tn(), &rig.agent, &cut.undo, None).await.unwrap();
    let n3 = rig.faults_of("n3").unwrap();
    assert!(n3.drop_to.is_empty() && n3.drop_from.is_empty(), "{n3:?}");
    assert_eq!(n3.delay_from[&ip(2)].ms, 100, "the delay stays");
    assert!(rig.faults_of("n0").unwrap().is_healed());
    // A heal takes everything; undoing the delay afterwards changes nothing.
    apply_ok(&rig, Fault::Heal).await;
    assert!(rig.faults_of("n3").unwrap().is_healed());
}

#[tokio::test]
async fn a_latency_change_is_undone_to_the_previous_zone_latency() {
    let rig = Rig::up("chaos-zones", zoned()).await;
    assert_eq!(
        rig.faults_of("n2").unwrap().delay_from[&ip(0)].ms,
        30,
        "zones at up"
    );
    let change = Fault::Latency {
        from: "eu".into(),
        to: "us".into(),
        ms: 80,
        one_way: false,
    };
    let applied = apply_ok(&rig, change).await;
    assert_eq!(rig.faults_of("n2").unwrap().delay_from[&ip(0)].ms, 80);
    assert_eq!(rig.faults_of("n0").unwrap().delay_from[&ip(3)].ms, 80);
    // A heal keeps the new latency: it is the baseline now.
    apply_ok(&rig, Fault::Heal).await;
    assert_eq!(rig.faults_of("n0").unwrap().delay_from[&ip(3)].ms, 80);
    undo(&rig.tn(), &rig.agent, &applied.undo, None)
        .await
        .unwrap();
    assert_eq!(rig.faults_of("n2").unwrap().delay_from[&ip(0)].ms, 30);
    assert_eq!(rig.faults_of("n0").unwrap().delay_from[&ip(3)].ms, 30);
    assert_eq!(rig.tn().plan().unwrap().zones.one_way_ms("us", "eu"), 30);
}

#[tokio::test]
async fn a_restarted_container_gets_its_faults_back() {
    let rig = Rig::up("chaos-reconcile", TestnetFile::default_testnet()).await;
    let loss = Fault::Loss {
        nodes: names(&["n1"]),
        to: names(&["n2"]),
        percent: 5.0,
    };
    apply(&rig.tn(), &rig.agent, &loss, Some(Duration::from_secs(300)))
        .await
        .unwrap();
    let applied = apply_ok(&rig, Fault::RestartContainer("n1".into())).await;
    assert_eq!(applied.detail, "killed, started, faults re-applied");
    assert_eq!(applied.undo, Undo::Nothing);
    let side = rig.agent.side("chaos-reconcile-n1").unwrap();
    assert_eq!(side.start, 2, "a fresh namespace");
    assert_eq!(side.faults.loss_per_mille[&ip(2)], 50);
    let lease = side.lease.expect("what is left of the lease").as_secs_f64();
    assert!(lease > 290.0 && lease <= 300.0, "{lease}");
    // Killed: nothing answers; started again: faults back, the kill undone.
    let kill = apply_ok(&rig, Fault::KillContainer("n1".into())).await;
    assert!(rig.faults_of("n1").is_none());
    undo(&rig.tn(), &rig.agent, &kill.undo, None).await.unwrap();
    assert_eq!(rig.faults_of("n1").unwrap().loss_per_mille[&ip(2)], 50);
    // A node with nothing desired is started without a fault call.
    let calls = rig.agent.calls().len();
    apply_ok(&rig, Fault::RestartContainer("n3".into())).await;
    let new: Vec<String> = rig.agent.calls()[calls..].to_vec();
    assert!(new.iter().all(|c| !c.starts_with("set_faults")), "{new:?}");
}

#[tokio::test]
async fn process_faults_go_through_the_agent_and_undo_to_start() {
    let rig = Rig::up("chaos-process", TestnetFile::default_testnet()).await;
    let pause = apply_ok(&rig, Fault::Pause("n2".into())).await;
    assert!(pause.detail.contains("\"paused\""), "{}", pause.detail);
    assert_eq!(
        pause.undo,
        Undo::Process {
            node: "n2".into(),
            action: ProcessAction::Resume,
            container: false
        }
    );
    undo(&rig.tn(), &rig.agent, &pause.undo, None)
        .await
        .unwrap();
    assert_eq!(rig.agent.calls().last().unwrap(), "resume n2");
    let err = apply(&rig.tn(), &rig.agent, &Fault::Kill("n7".into()), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no node \"n7\"") && err.contains("n0, n1, n2, n3"),
        "{err}"
    );
}

#[tokio::test]
async fn healing_one_node_keeps_the_other_faults() {
    let rig = Rig::up("chaos-heal-one", TestnetFile::default_testnet()).await;
    apply_ok(&rig, Fault::Shape("isolate:n3".into())).await;
    let delay = Fault::Delay {
        nodes: names(&["n0"]),
        to: names(&["n1"]),
        ms: 40,
        jitter_ms: 0,
        reorder_percent: 0.0,
    };
    apply_ok(&rig, delay).await;
    apply_ok(&rig, Fault::HealNodes(names(&["n3"]))).await;
    assert!(rig.faults_of("n3").unwrap().is_healed());
    assert!(rig.faults_of("n0").unwrap().drop_to.is_empty());
    assert_eq!(rig.faults_of("n1").unwrap().delay_from[&ip(0)].ms, 40);
}

/// CPU and memory limits go to the engine and are read back; the undo lifts
/// them, and lifting a memory limit starts a node it took down (its
/// container exited, as after an OOM kill).
#[tokio::test]
async fn limits_are_set_read_back_and_lifted() {
    use crate::engine::{ContainerState, Limit};
    let rig = Rig::up("chaos-limits", TestnetFile::default_testnet()).await;
    let cpu = apply_ok(
        &rig,
        Fault::Cpu {
            nodes: names(&["n1"]),
            cores: 0.25,
        },
    )
    .await;
    assert_eq!(cpu.detail, "n1: 0.25 cores in place (read back)");
    assert_eq!(
        rig.engine.state().limits["chaos-limits-n1"].cpu_cores,
        Some(0.25)
    );
    undo(&rig.tn(), &rig.agent, &cpu.undo, None).await.unwrap();
    assert_eq!(rig.engine.state().limits["chaos-limits-n1"].cpu_cores, None);

    let mem = apply_ok(
        &rig,
        Fault::Memory {
            nodes: names(&["n2"]),
            mib: 64,
        },
    )
    .await;
    assert_eq!(
        mem.undo,
        Undo::Limit {
            nodes: names(&["n2"]),
            limit: Limit::Memory(None)
        }
    );
    rig.engine
        .state()
        .containers
        .get_mut("chaos-limits-n2")
        .unwrap()
        .1
        .state = ContainerState::Exited(137);
    let starts = rig
        .engine
        .state()
        .starts
        .get("chaos-limits-n2")
        .copied()
        .unwrap_or(0);
    undo(&rig.tn(), &rig.agent, &mem.undo, None).await.unwrap();
    let s = rig.engine.state();
    assert_eq!(s.limits["chaos-limits-n2"].memory_mib, None);
    assert_eq!(
        s.starts["chaos-limits-n2"],
        starts + 1,
        "the OOM-killed node is started again"
    );
    assert_eq!(
        s.containers["chaos-limits-n2"].1.state,
        ContainerState::Running
    );
}

/// A clock skew goes through the agent and is undone to real time.
#[tokio::test]
async fn a_clock_skew_is_set_through_the_agent_and_undone() {
    use testnet_node::clock::Skew;
    let rig = Rig::up("chaos-clock", TestnetFile::default_testnet()).await;
    let skew = apply_ok(
        &rig,
        Fault::Clock {
            nodes: names(&["n3"]),
            offset: 30_000,
            drift_ppm: 0,
        },
    )
    .await;
    assert_eq!(
        skew.detail,
        "n3: clock +30000 ms, drift 0 ppm in place (read back)"
    );
    assert_eq!(skew.undo, Undo::Clock(names(&["n3"])));
    undo(&rig.tn(), &rig.agent, &skew.undo, None).await.unwrap();
    let back = rig.agent.side("chaos-clock-n3").unwrap().clock;
    assert_eq!(back, Skew::default());
}

/// Byzantine behaviours compose on one node: each undo switches off only its
/// own, and the fault parses from a scenario's words.
#[tokio::test]
async fn byzantine_behaviours_compose_and_each_undo_takes_only_its_own() {
    use testnet_node::byzantine::Behaviour;
    let rig = Rig::up("chaos-byz", TestnetFile::default_testnet()).await;
    let parse = |y: &str| {
        serde_norway::with::singleton_map::deserialize::<Fault, _>(
            serde_norway::Deserializer::from_str(y),
        )
    };
    let mute = parse("byzantine: { nodes: [n1], behaviour: mute }").unwrap();
    let mute = apply_ok(&rig, mute).await;
    assert_eq!(mute.detail, "n1: mute in place (read back)");
    let delay = parse("byzantine: { nodes: [n1], behaviour: delay-votes, delay_ms: 500 }").unwrap();
    assert_eq!(delay.label(), "byzantine n1 delay-votes 500 ms");
    let delay = apply_ok(&rig, delay).await;
    assert_eq!(delay.detail, "n1: mute, delay-votes in place (read back)");
    undo(&rig.tn(), &rig.agent, &mute.undo, None).await.unwrap();
    let side = rig.agent.side("chaos-byz-n1").unwrap().byzantine;
    assert!(!side.is(Behaviour::Mute) && side.is(Behaviour::DelayVotes));
    assert_eq!(side.delay_ms, 500);
    undo(&rig.tn(), &rig.agent, &delay.undo, None)
        .await
        .unwrap();
    let side = rig.agent.side("chaos-byz-n1").unwrap().byzantine;
    assert!(side.behaviours.is_empty(), "honest again: {side:?}");
    let err = parse("byzantine: { nodes: [n1], behaviour: loud }")
        .unwrap_err()
        .to_string();
    assert!(err.contains("equivocate"), "names the choices: {err}");
}

/// A full disk needs a capped data dir (named in the error with its fix);
/// with one, the fill and the store faults go through the agent and the
/// undo frees and clears them.
#[tokio::test]
async fn disk_faults_need_a_capped_disk_and_are_undone_through_the_agent() {
    let plain = Rig::up("chaos-disk0", TestnetFile::default_testnet()).await;
    let full = Fault::DiskFull {
        nodes: names(&["n2"]),
    };
    let err = apply(&plain.tn(), &plain.agent, &full, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("n2: { disk_mib: 64 }"), "{err}");
    let file = TestnetFile::parse(
        "nodes: 4\nnode_options: { n2: { disk_mib: 16 } }\n",
        "t.yaml",
    )
    .unwrap();
    let rig = Rig::up("chaos-disk", file).await;
    let filled = apply_ok(&rig, full).await;
    assert!(filled.detail.contains("n2: disk full"), "{}", filled.detail);
    assert!(rig.agent.side("chaos-disk-n2").unwrap().disk_full);
    let slow = apply_ok(
        &rig,
        Fault::Disk {
            nodes: names(&["n2"]),
            fsync_ms: 200,
            error_percent: 5.0,
        },
    )
    .await;
    assert_eq!(
        slow.detail,
        "n2: fsync +200 ms, 5% write errors in place (read back)"
    );
    // Each undo takes back its own fault only.
    undo(&rig.tn(), &rig.agent, &filled.undo, None)
        .await
        .unwrap();
    let side = rig.agent.side("chaos-disk-n2").unwrap();
    assert!(!side.disk_full && side.storage.fsync_ms == 200, "{side:?}");
    undo(&rig.tn(), &rig.agent, &slow.undo, None).await.unwrap();
    let side = rig.agent.side("chaos-disk-n2").unwrap();
    assert_eq!(side.storage, Default::default());
}

/// An upgrade replaces the container from a protocol image built from the
/// testnet's, carries the data dir over, keeps the node's cut (re-applied
/// to its fresh agent), records the image in the plan, and its undo goes
/// back to the testnet's image.
#[tokio::test]
async fn an_upgrade_replaces_the_container_keeping_data_and_faults() {
    let rig = Rig::up("chaos-upgrade", TestnetFile::default_testnet()).await;
    apply_ok(&rig, Fault::Shape("isolate:n1".into())).await;
    let protocol = crate::image::Protocol {
        version: 2,
        min_peer: 1,
    };
    let up = apply_ok(
        &rig,
        Fault::Upgrade {
            nodes: names(&["n1"]),
            image: None,
            protocol: Some(protocol),
        },
    )
    .await;
    assert!(
        up.detail
            .contains("n1: container replaced, runs testnet-node:"),
        "{}",
        up.detail
    );
    let plan = rig.tn().plan().unwrap();
    let image = plan.nodes[1]
        .image
        .clone()
        .expect("the plan records n1's image");
    let spec = rig.engine.state().containers["chaos-upgrade-n1"].0.clone();
    assert_eq!(spec.image, image);
    let calls = rig.engine.state().calls.clone();
    assert!(
        calls
            .iter()
            .any(|c| c == "download chaos-upgrade-n1 /var/lib/testnet"),
        "{calls:?}"
    );
    let uploads = rig.engine.state().uploads["chaos-upgrade-n1"].clone();
    assert!(
        uploads.iter().any(|(dir, _)| dir == "/var/lib"),
        "{uploads:?}"
    );
    assert!(
        !rig.faults_of("n1").unwrap().drop_from.is_empty(),
        "the cut came back"
    );
    assert_eq!(
        up.undo,
        Undo::Upgrade(vec![("n1".into(), None, image.clone())])
    );
    undo(&rig.tn(), &rig.agent, &up.undo, None).await.unwrap();
    assert_eq!(rig.tn().plan().unwrap().nodes[1].image, None);
    assert_eq!(
        rig.engine.state().containers["chaos-upgrade-n1"].0.image,
        crate::lifecycle::rig::IMAGE
    );
    let err = apply(
        &rig.tn(),
        &rig.agent,
        &Fault::Upgrade {
            nodes: names(&["n1"]),
            image: Some("testnet-node:nowhere".into()),
            protocol: None,
        },
        None,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("no image testnet-node:nowhere here"), "{err}");
}
