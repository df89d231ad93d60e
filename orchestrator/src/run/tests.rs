//! The runner on the fake engine and fake agents: the timeline at its
//! offsets, the windows it books, undo of every kind, a whole run.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::quiescence::settled;
use super::timeline::execute;
use super::*;
use crate::fault::{FaultEvent, FaultKind};
use crate::lifecycle::rig::{Rig, IMAGE};
use crate::scenario::Scenario;

fn scenario(timeline: &str) -> Scenario {
    let text = format!(
        "name: fake\ntestnet: {{ nodes: 4, zones: {{ a: [n0, n1], b: [n2, n3] }}, latency: {{ a: {{ b: 10 }} }} }}\ntimeline:\n{timeline}"
    );
    Scenario::parse(&text, "fake.scenario.yaml").unwrap()
}

/// Runs the timeline of `s` on the rig; its windows and quorum gaps, with
/// times relative to its start.
async fn book_of(rig: &Rig, s: &Scenario) -> (Vec<FaultEvent>, Vec<crate::fault::QuorumGap>) {
    let book = Mutex::new(WindowBook::default());
    let started = unix_now();
    execute(
        &rig.tn(),
        &rig.agent,
        &s.resolve(),
        &book,
        Instant::now(),
        None,
        &|_| {},
    )
    .await
    .unwrap();
    let (mut w, mut gaps) = book.into_inner().unwrap().into_parts();
    for e in &mut w {
        e.start -= started;
        e.end = e.end.map(|end| end - started);
    }
    for g in &mut gaps {
        g.start -= started;
        g.end = g.end.map(|end| end - started);
    }
    (w, gaps)
}

async fn windows(rig: &Rig, s: &Scenario) -> Vec<FaultEvent> {
    book_of(rig, s).await.0
}

#[tokio::test]
async fn the_timeline_books_each_window_from_apply_to_undo() {
    let s = scenario(
        "  - { at: 0ms, for: 300ms, fault: { partition: [[n0, n1], [n2, n3]] } }\n\
         \x20 - { at: 100ms, for: 300ms, fault: { pause: n3 } }\n\
         \x20 - { at: 150ms, fault: { restart_container: n1 } }\n\
         \x20 - { at: 500ms, for: 100ms, fault: { shape: isolate:n2 } }\n",
    );
    let rig = Rig::up("run-windows", s.testnet.clone()).await;
    let w = windows(&rig, &s).await;
    let labels: Vec<&str> = w.iter().map(|e| e.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "partition n0,n1 | n2,n3",
            "pause n3",
            "restart container n1",
            "partition isolate:n2"
        ]
    );
    let (cut, pause, restart, isolate) = (&w[0], &w[1], &w[2], &w[3]);
    assert!(cut.no_quorum, "2 | 2 leaves nobody a quorum");
    assert!(!isolate.no_quorum, "n0, n1, n3 still hear each other");
    assert_eq!(cut.kind, FaultKind::Partition);
    assert_eq!(pause.kind, FaultKind::Process);
    assert_eq!(pause.nodes, ["n3"]);
    let near = |got: f64, want: f64| (got - want).abs() < 0.08;
    assert!(
        near(cut.start, 0.0) && near(cut.end.unwrap(), 0.3),
        "{cut:?}"
    );
    assert!(
        near(pause.start, 0.1) && near(pause.end.unwrap(), 0.4),
        "{pause:?}"
    );
    assert_eq!(
        restart.end.map(|e| e >= restart.start),
        Some(true),
        "a restart is instant"
    );
    assert!(near(isolate.end.unwrap(), 0.6), "{isolate:?}");
    // Every fault was undone: nothing is held, the paused process runs again.
    for n in ["n0", "n1", "n2", "n3"] {
        let f = rig.faults_of(n).unwrap();
        assert!(f.drop_to.is_empty() && f.drop_from.is_empty(), "{n}: {f:?}");
    }
    let calls = rig.agent.calls();
    assert!(calls.iter().any(|c| c == "pause n3") && calls.iter().any(|c| c == "resume n3"));
}

#[tokio::test]
async fn a_latency_step_is_undone_and_a_heal_closes_the_network_windows() {
    let s = scenario(
        "  - { at: 0ms, for: 150ms, fault: { latency: { from: a, to: b, ms: 90 } } }\n\
         \x20 - { at: 50ms, fault: { loss: { nodes: [n0], percent: 10 } } }\n\
         \x20 - { at: 60ms, fault: { kill: n2 } }\n\
         \x20 - { at: 100ms, fault: heal }\n",
    );
    let rig = Rig::up("run-heal", s.testnet.clone()).await;
    let w = windows(&rig, &s).await;
    let (latency, loss, kill) = (&w[0], &w[1], &w[2]);
    let near = |got: f64, want: f64| (got - want).abs() < 0.08;
    assert!(
        near(latency.end.unwrap(), 0.1),
        "the heal closed it: {latency:?}"
    );
    assert!(near(loss.end.unwrap(), 0.1), "{loss:?}");
    assert_eq!(kill.end, None, "a heal leaves processes down");
    // The heal kept the changed latency (the baseline); the undo put 10 ms back.
    assert_eq!(rig.tn().plan().unwrap().zones.one_way_ms("a", "b"), 10);
    let ip0 = rig.tn().plan().unwrap().ip_of("n0").unwrap();
    assert_eq!(rig.faults_of("n2").unwrap().delay_from[&ip0].ms, 10);
    assert!(rig.faults_of("n0").unwrap().loss_per_mille.is_empty());
}

fn fake_options(report_dir: &std::path::Path) -> RunOptions {
    RunOptions {
        image: IMAGE.into(),
        node_image: None,
        report_dir: report_dir.to_owned(),
        keep: false,
        readiness: Duration::from_secs(1),
        quiescence: Duration::from_millis(600),
        hurry: CancellationToken::new(),
    }
}

/// The Docker daemon dies mid-run: the run fails naming it (exit 2), the
/// report says so, and once the daemon is back `down` removes everything.
#[tokio::test]
async fn a_daemon_that_dies_mid_run_is_named_and_down_cleans_up_after() {
    crate::lifecycle::rig::state_dir_for_tests();
    let s = Scenario::parse(
        "name: fake-dead\ntestnet: { nodes: 4 }\ntimeline:\n  - { at: 0ms, for: 20s, fault: { partition: [[n0, n1, n2], [n3]] } }\n",
        "fake-dead.scenario.yaml",
    )
    .unwrap();
    let engine = crate::engine::fake::FakeEngine::new();
    engine.state().images.insert(IMAGE.into());
    let probe = crate::lifecycle::rig::ScriptedProbe::healthy(4);
    let agent = crate::agent::fake::FakeAgent::new(&engine);
    let tn = Testnet::new("fake-dead", &engine, &probe);
    let dir = tempfile::tempdir().unwrap();
    let killer = engine.clone();
    let (opts, cancel) = (fake_options(dir.path()), CancellationToken::new());
    let run_it = run(&tn, &agent, &s, &opts, &|_| {}, &cancel);
    let kill = async {
        // Dies once the testnet is up, while the 20 s partition is on: only
        // the sampler asks the engine then.
        while killer.state().starts.len() < 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        killer.state().unreachable = true;
        Instant::now()
    };
    let (result, died) = tokio::join!(run_it, kill);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("cannot reach the Docker daemon"), "{err}");
    assert!(
        died.elapsed() < Duration::from_secs(8),
        "the run ended {:?} after the daemon died, not at the timeline's end",
        died.elapsed()
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot reach the Docker daemon")),
        "{report}"
    );
    engine.state().unreachable = false;
    assert!(
        !engine.state().containers.is_empty(),
        "left while the daemon was away"
    );
    crate::lifecycle::down(&engine, Some("fake-dead"))
        .await
        .unwrap();
    let left = engine.state();
    assert!(left.containers.is_empty() && left.networks.is_empty());
}

#[tokio::test]
async fn a_whole_run_on_fakes_reports_its_windows_and_leaves_nothing() {
    crate::lifecycle::rig::state_dir_for_tests();
    let s = Scenario::parse(
        "name: fake-run\ntestnet: { nodes: 4 }\ntimeline:\n  - { at: 0ms, for: 200ms, fault: { partition: [[n0, n1, n2], [n3]] } }\n  - { at: 100ms, fault: { kill: n1 } }\ninvariants: { safety: {} }\n",
        "fake-run.scenario.yaml",
    )
    .unwrap();
    let engine = crate::engine::fake::FakeEngine::new();
    engine.state().images.insert(IMAGE.into());
    let probe = crate::lifecycle::rig::ScriptedProbe::healthy(4);
    let agent = crate::agent::fake::FakeAgent::new(&engine);
    let tn = Testnet::new("fake-run", &engine, &probe);
    let dir = tempfile::tempdir().unwrap();
    let opts = fake_options(dir.path());
    let report = run(&tn, &agent, &s, &opts, &|_| {}, &CancellationToken::new())
        .await
        .unwrap();
    let faults = &report.observations.faults;
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert!(faults[0].end.is_some(), "the cut was undone");
    assert_eq!(faults[1].end, None, "n1 stays killed to the end");
    let names: Vec<&str> = report
        .verdicts
        .iter()
        .map(|v| v.invariant.as_str())
        .collect();
    assert_eq!(
        names,
        ["safety", "faults_took_effect"],
        "what the scenario lists, and the effects"
    );
    assert!(dir.path().join("report.json").exists());
    let left = engine.state();
    assert!(
        left.containers.is_empty() && left.networks.is_empty(),
        "down at the end"
    );
}

/// Issue 11, point 12: the book learns the quorum from the validators the
/// timeline took down and the cuts in place together, whatever their kinds.
#[tokio::test]
async fn overlapping_process_faults_take_the_quorum() {
    let s = scenario(
        "  - { at: 0ms, for: 300ms, fault: { kill: n0 } }\n\
         \x20 - { at: 100ms, for: 100ms, fault: { pause_container: n1 } }\n\
         \x20 - { at: 400ms, for: 100ms, fault: { shape: isolate:n3 } }\n",
    );
    let rig = Rig::up("run-quorum", s.testnet.clone()).await;
    let (windows, gaps) = book_of(&rig, &s).await;
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    let gap = &gaps[0];
    let near = |got: f64, want: f64| (got - want).abs() < 0.08;
    assert!(
        near(gap.start, 0.1) && near(gap.end.unwrap(), 0.2),
        "{gap:?}"
    );
    assert!(
        gap.why.contains("n0 down") && gap.why.contains("n1 down"),
        "{gap:?}"
    );
    assert!(
        !windows[0].no_quorum,
        "one validator down of four leaves a quorum"
    );
    assert!(windows[1].no_quorum, "the second one takes it");
    assert_eq!(windows[2].cut_off, ["n3"], "{:?}", windows[2]);
    assert!(!windows[2].no_quorum);
}

/// Issue 11, point 11: quiescence wants every node answering with one
/// finalized set, looks at the mempools, and says what it saw.
#[test]
fn quiescence_wants_one_finalized_set_and_empty_mempools() {
    let look = |node: &str, finalized: u64, digest: &str, mempool: usize| {
        let mut st = crate::lifecycle::rig::fake_status(3, 3);
        st.finalized_transactions = finalized;
        st.finalized_digest = digest.into();
        st.mempool = mempool;
        crate::observe::Sample {
            t: 0.0,
            node: node.into(),
            status: Some(st),
            process: None,
            metrics: Default::default(),
            agent_metrics: Default::default(),
            peers: None,
        }
    };
    let s = settled(&[look("n0", 5, "d", 0), look("n1", 5, "d", 0)]);
    assert!(s.agree && s.quiet, "{}", s.detail);
    let s = settled(&[look("n0", 5, "d", 0), look("n1", 5, "e", 0)]);
    assert!(
        !s.agree && s.detail.contains("finalized sets differ"),
        "{}",
        s.detail
    );
    // The same set with a transaction nobody can decide any more: they agree,
    // but it is not quiet (quiescence waits for it, then says so).
    let s = settled(&[look("n0", 5, "d", 2), look("n1", 5, "d", 0)]);
    assert!(
        s.agree && !s.quiet && s.detail.contains("n0 mempool 2"),
        "{}",
        s.detail
    );
    let mut silent = look("n1", 5, "d", 0);
    silent.status = None;
    let s = settled(&[look("n0", 5, "d", 0), silent]);
    assert!(
        !s.agree && s.detail.contains("not answering: n1"),
        "{}",
        s.detail
    );
    assert!(!settled(&[]).agree);
}
