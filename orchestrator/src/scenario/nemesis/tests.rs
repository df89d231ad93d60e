use super::*;
use crate::scenario::Scenario;

const FILE: &str = r#"
name: chaos-monkey
seed: 11
testnet: { nodes: 4 }
workload: { tps: 10, duration: 40s }
timeline:
  - { at: 1s, fault: { delay: { nodes: [n0], ms: 10 } } }
nemesis: { faults: [partition, isolate, pause, kill, restart, delay, loss, duplicate, clock, cpu], every: 4s, for: 3s, quiet: 5s, until: 30s }
"#;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

#[test]
fn the_same_seed_draws_the_same_schedule_and_another_seed_another() {
    let s = Scenario::parse(FILE, "chaos-monkey").unwrap();
    assert!(s.nemesis.is_none(), "drawn into the timeline");
    assert_eq!(s.nemesis_steps, 7, "at 5, 9, ..., 29 s");
    assert_eq!(s.timeline.len(), 8);
    assert_eq!(s.timeline[1].at, Duration::from_secs(5));
    assert_eq!(s.timeline[7].at, Duration::from_secs(29));
    let again = Scenario::parse(FILE, "chaos-monkey").unwrap();
    assert_eq!(s.timeline, again.timeline);
    let other = Scenario::parse(&FILE.replace("seed: 11", "seed: 12"), "x").unwrap();
    assert_ne!(s.timeline, other.timeline);
    // Replayed from the resolved scenario: the same steps, drawn no more.
    let text = serde_norway::to_string(&s).unwrap();
    assert!(!text.contains("nemesis"), "{text}");
    let replay = Scenario::parse(&text, "resolved").unwrap();
    assert_eq!(replay.timeline, s.timeline);
    assert_eq!(replay.resolve(), s.resolve());
}

#[test]
fn overlapping_faults_never_hold_one_node_twice_and_a_restart_has_no_for() {
    let n = Nemesis {
        faults: vec![
            NemesisFault::Kill,
            NemesisFault::Pause,
            NemesisFault::Restart,
            NemesisFault::Clock,
        ],
        every: Duration::from_secs(1),
        duration: Duration::from_secs(5),
        quiet: Some(Duration::ZERO),
        until: Duration::from_secs(60),
    };
    let steps = n.schedule(3, &names(4));
    assert!(steps.len() > 20, "{}", steps.len());
    for (i, a) in steps.iter().enumerate() {
        let node = a.fault.named_nodes()[0].clone();
        assert_eq!(a.duration.is_none(), matches!(a.fault, Fault::Restart(_)));
        for b in &steps[i + 1..] {
            if b.fault.named_nodes()[0] == &node {
                assert!(b.at >= a.at + n.duration, "{node} held twice: {a:?} {b:?}");
            }
        }
    }
    // Four nodes, each held 5 s, one start a second: some slots find none free.
    assert!(steps.len() < 61);
}

#[test]
fn a_bad_nemesis_is_named() {
    let bad = |edit: &str| {
        Scenario::parse(
            &FILE.replace("every: 4s, for: 3s, quiet: 5s, until: 30s", edit),
            "bad",
        )
        .unwrap_err()
        .to_string()
    };
    assert!(bad("every: 4s, for: 3s, quiet: 5s, until: 5s").contains("until"));
    assert!(bad("every: 0s, for: 3s, until: 30s").contains("`every` and `for`"));
    assert!(bad("every: 1ms, for: 3s, until: 30s").contains("more than 1000 faults"));
    // Refused before anything is drawn (it would take billions of steps).
    assert!(bad("every: 1ms, for: 1ms, until: 10000h").contains("more than 1000 faults"));
    let err = Scenario::parse(
        &FILE.replace("faults: [partition,", "faults: [meteor,"),
        "bad",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("isolate"), "names the classes: {err}");
    let empty = Scenario::parse(
        &FILE.replace(
            "[partition, isolate, pause, kill, restart, delay, loss, duplicate, clock, cpu]",
            "[]",
        ),
        "bad",
    )
    .unwrap_err()
    .to_string();
    assert!(empty.contains("nemesis: faults: empty"), "{empty}");
}

#[test]
fn a_node_a_disk_full_step_names_gets_a_capped_data_dir() {
    let s = Scenario::parse(
        "name: d\ntestnet: { nodes: 4, node_options: { n3: { disk_mib: 128 } } }\n\
         workload: { tps: 5, duration: 5s }\ntimeline:\n\
         - { at: 1s, for: 2s, fault: { disk_full: { nodes: [n1, n3] } } }\n",
        "d",
    )
    .unwrap();
    let mib = |n: &str| s.testnet.node_options.get(n).and_then(|o| o.disk_mib);
    assert_eq!(mib("n1"), Some(32));
    assert_eq!(mib("n3"), Some(128), "the testnet's own cap stays");
    assert_eq!(mib("n0"), None);
}
