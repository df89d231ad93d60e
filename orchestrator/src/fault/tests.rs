//! The fault vocabulary and what each fault plans to, on a plan of 4 nodes.

use super::*;
use crate::plan::NodePlan;
use crate::plan::Plan;
use crate::zones::Zones;
use std::net::Ipv4Addr;

fn plan() -> Plan {
    let mut zones = Zones::default();
    zones
        .zones
        .insert("eu".into(), vec!["n0".into(), "n1".into()]);
    zones
        .zones
        .insert("us".into(), vec!["n2".into(), "n3".into()]);
    zones.set("eu", "us", 30, false);
    Plan {
        name: "t".into(),
        network: "testnet-t".into(),
        subnet: "10.77.0.0/24".into(),
        image: "img".into(),
        nodes: (0..4)
            .map(|i| NodePlan {
                http_port: 0,
                validator: true,
                neighbours: None,
                host: None,
                agent_port: 0,
                metrics_port: 0,
                name: format!("n{i}"),
                container: format!("t-n{i}"),
                ip: ip(i),
                bugs: vec![],
                disk_mib: None,
                image: None,
            })
            .collect(),
        zones,
        sparse: false,
        holder: false,
        node_image: None,
        node: None,
        hosts: Vec::new(),
        finality_window: None,
        checkpoint_every: None,
    }
}

fn ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 10 + i)
}

fn layer(f: &Fault) -> Layer {
    match f.plan(&plan()).unwrap() {
        Planned::Network(l) => l,
        other => panic!("not a network layer: {other:?}"),
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_partition_plans_the_real_drop_sets_and_isolates_nodes_in_no_group() {
    let l = layer(&Fault::Partition(crate::fault::Partition::groups(vec![
        names(&["n0", "n1"]),
        names(&["n2"]),
    ])));
    assert_eq!(l.kind, FaultKind::Partition);
    let cut = |n: &str| l.patches[n].cut.clone().unwrap();
    assert_eq!(cut("n0").to, [ip(2), ip(3)].into());
    assert_eq!(cut("n0").from, [ip(2), ip(3)].into());
    assert_eq!(cut("n2").to, [ip(0), ip(1), ip(3)].into());
    assert_eq!(
        cut("n3").to,
        [ip(0), ip(1), ip(2)].into(),
        "n3 is in no group"
    );
    let isolate = layer(&Fault::Shape("isolate:n1".into()));
    assert_eq!(
        isolate.patches["n1"].cut.clone().unwrap().to,
        [ip(0), ip(2), ip(3)].into()
    );
    assert_eq!(
        isolate.patches["n0"].cut.clone().unwrap().to,
        [ip(1)].into()
    );
}

#[test]
fn delays_are_held_on_the_receivers_and_loss_on_the_sender() {
    let delay = Fault::Delay {
        nodes: names(&["n2"]),
        to: names(&["n3"]),
        ms: 150,
        jitter_ms: 20,
        reorder_percent: 5.0,
    };
    let l = layer(&delay);
    assert_eq!(l.patches.keys().collect::<Vec<_>>(), ["n3"]);
    let d = l.patches["n3"].delay_from[&ip(2)].unwrap();
    assert_eq!((d.ms, d.jitter_ms, d.reorder_per_mille), (150, 20, 50));
    let loss = layer(&Fault::Loss {
        nodes: names(&["n1"]),
        to: vec![],
        percent: 2.5,
    });
    assert_eq!(loss.patches.keys().collect::<Vec<_>>(), ["n1"]);
    assert_eq!(
        loss.patches["n1"].loss_to.len(),
        3,
        "towards every other node"
    );
    assert_eq!(loss.patches["n1"].loss_to[&ip(0)], Some(25));
    let clear = layer(&Fault::Duplicate {
        nodes: names(&["n1"]),
        to: names(&["n0"]),
        percent: 0.0,
    });
    assert_eq!(clear.patches["n1"].duplicate_to[&ip(0)], None, "0% clears");
    let cap = layer(&Fault::Bandwidth {
        nodes: names(&["n0"]),
        kbit: 0,
    });
    assert_eq!(
        cap.patches["n0"].bandwidth,
        Some(None),
        "0 kbit/s removes the cap"
    );
}

#[test]
fn bad_faults_name_what_is_wrong_and_what_exists() {
    let err = Fault::Kill("n9".into())
        .plan(&plan())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no node \"n9\"") && err.contains("n0, n1, n2, n3"),
        "{err}"
    );
    let err = Fault::Shape("isolate:n7".into()).plan(&plan()).unwrap_err();
    assert!(matches!(err, FaultError::UnknownNode { .. }), "{err}");
    let err = Fault::Shape("triangle".into())
        .plan(&plan())
        .unwrap_err()
        .to_string();
    assert!(err.contains("halves, bridge"), "{err}");
    let latency = Fault::Latency {
        from: "eu".into(),
        to: "asia".into(),
        ms: 5,
        one_way: false,
    };
    let err = latency.plan(&plan()).unwrap_err().to_string();
    assert!(
        err.contains("no zone \"asia\"") && err.contains("eu, us"),
        "{err}"
    );
    let loss = Fault::Loss {
        nodes: names(&["n0"]),
        to: vec![],
        percent: 120.0,
    };
    assert_eq!(loss.plan(&plan()).unwrap_err(), FaultError::Percent(120.0));
    let zones = [&"eu".to_owned()];
    let problems = loss.problems(&names(&["n0", "n1"]), &zones);
    assert!(problems[0].starts_with("percent: 120"), "{problems:?}");
    assert!(Fault::Kill("random".into())
        .problems(&names(&["n0"]), &zones)
        .is_empty());
    let clock = |drift_ppm| Fault::Clock {
        nodes: names(&["n0"]),
        offset: 0,
        drift_ppm,
    };
    let stopped = clock(-1_000_000).problems(&names(&["n0"]), &zones);
    assert!(stopped[0].contains("stop or reverse"), "{stopped:?}");
    assert!(clock(-999_999).problems(&names(&["n0"]), &zones).is_empty());
}

#[test]
fn process_faults_round_trip_and_know_their_undo() {
    for action in [
        ProcessAction::Kill,
        ProcessAction::Start,
        ProcessAction::Restart,
        ProcessAction::Stop,
        ProcessAction::Pause,
        ProcessAction::Resume,
    ] {
        for container in [false, true] {
            let f = Fault::of_process("n2".into(), action, container);
            assert_eq!(f.process(), Some((&"n2".to_owned(), action, container)));
            assert_eq!(f.kind(), FaultKind::Process);
            let planned = f.plan(&plan()).unwrap();
            assert_eq!(
                planned,
                Planned::Process {
                    node: "n2".into(),
                    action,
                    container
                }
            );
        }
    }
    assert_eq!(ProcessAction::Kill.undo(), Some(ProcessAction::Start));
    assert_eq!(ProcessAction::Pause.undo(), Some(ProcessAction::Resume));
    assert_eq!(ProcessAction::Restart.undo(), None);
    assert_eq!(
        Fault::of_process("n1".into(), ProcessAction::Restart, true).label(),
        "restart container n1"
    );
}

#[test]
fn scenario_yaml_keeps_its_shape() {
    #[derive(serde::Deserialize)]
    struct Step {
        #[serde(with = "serde_norway::with::singleton_map")]
        fault: Fault,
    }
    let parse = |y: &str| serde_norway::from_str::<Step>(y).map(|s| s.fault);
    assert_eq!(parse("fault: heal").unwrap(), Fault::Heal);
    assert_eq!(
        parse("fault: { kill: n1 }").unwrap(),
        Fault::Kill("n1".into())
    );
    assert_eq!(
        parse("fault: { restart_container: n2 }").unwrap(),
        Fault::RestartContainer("n2".into())
    );
    assert_eq!(
        parse("fault: { partition: [[n0, n1], [n2]] }").unwrap(),
        Fault::Partition(crate::fault::Partition::groups(vec![
            names(&["n0", "n1"]),
            names(&["n2"])
        ]))
    );
    let one_way =
        parse("fault: { partition: { groups: [[n0], [n1, n2]], one_way: true } }").unwrap();
    assert_eq!(
        one_way,
        Fault::Partition(crate::fault::Partition {
            groups: vec![names(&["n0"]), names(&["n1", "n2"])],
            one_way: true,
        })
    );
    // n0's packets to n1 and n2 go; theirs to n0 and everything of n3 stay.
    let l = layer(&one_way);
    let cut = |n: &str| l.patches[n].cut.clone().unwrap();
    assert_eq!(cut("n0").to, [ip(1), ip(2)].into());
    assert!(cut("n0").from.is_empty());
    assert_eq!(cut("n1").from, [ip(0)].into());
    assert!(cut("n3").from.is_empty() && cut("n3").to.is_empty());
    let lonely = Fault::Partition(crate::fault::Partition {
        groups: vec![names(&["n0"])],
        one_way: true,
    });
    assert!(matches!(lonely.plan(&plan()), Err(FaultError::OneWay)));
    assert!(lonely.problems(&names(&["n0", "n1"]), &[])[0].contains("at least one more"));
    assert_eq!(
        parse("fault: { delay: { nodes: [n1], ms: 100 } }").unwrap(),
        Fault::Delay {
            nodes: names(&["n1"]),
            to: vec![],
            ms: 100,
            jitter_ms: 0,
            reorder_percent: 0.0
        }
    );
    assert!(parse("fault: { delay: { nodes: [n1], ms: 100, colour: red } }").is_err());
}

#[test]
fn random_nodes_are_picked_through_map_nodes() {
    let f = Fault::Loss {
        nodes: names(&["random"]),
        to: names(&["n0", "random"]),
        percent: 1.0,
    };
    let mut k = 0;
    let resolved = f.map_nodes(|n| {
        k += 1;
        if n == "random" {
            format!("n{k}")
        } else {
            n.clone()
        }
    });
    assert_eq!(
        resolved.named_nodes(),
        [&"n1".to_owned(), &"n0".to_owned(), &"n3".to_owned()]
    );
    let kill = Fault::PauseContainer("random".into()).map_nodes(|_| "n2".into());
    assert_eq!(kill, Fault::PauseContainer("n2".into()));
}
