//! `testnet run`: up, workload and fault timeline while sampling every node,
//! heal, wait for quiescence, check the invariants, report, down.
//! `testnet check`: the same checkers against a running testnet.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use testnet_node::load::LoadReport;
use tokio_util::sync::CancellationToken;

use crate::chaos::{self, LinkFault, ProcessFault};
use crate::checks::{check_all, Verdict};
use crate::engine::Engine;
use crate::load::LoadArgs;
use crate::observe::{sample_all, unix_now, FaultEvent, FaultKind, Observations};
use crate::report::{self, RunReport};
use crate::scenario::{has_quorum, Action, Fault, Invariants, Scenario};
use crate::testnet::{self as net, state_dir, status, NodeProbe, NodeSummary, UpRequest};

/// How long after the timeline and workload the testnet may take to settle.
const QUIESCENCE: Duration = Duration::from_secs(30);
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

pub struct RunOptions {
    pub name: String,
    pub image: String,
    pub report_dir: PathBuf,
    pub keep: bool,
    pub readiness: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Up(#[from] net::UpError),
    #[error(transparent)]
    Chaos(#[from] chaos::ChaosError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("workload: {0}")]
    Load(String),
    #[error("the scenario: {0}")]
    Invalid(String),
    #[error("interrupted")]
    Interrupted,
    #[error("cannot write the report in {0}: {1}")]
    Report(PathBuf, std::io::Error),
}

/// Runs `scenario` and writes its report. `Ok` carries the report (passed or
/// not); `Err` is a tool error (after cleanup, with a report when possible).
pub async fn run<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    scenario: &Scenario,
    opts: &RunOptions,
    progress: &(impl Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<RunReport, RunError> {
    let name = opts.name.as_str();
    // A leftover testnet of this name (a run that did not finish) is removed
    // first, faults and all (`replace`).
    let req = UpRequest {
        name,
        file: &scenario.testnet,
        image: &opts.image,
        readiness: opts.readiness,
        replace: true,
        monitor: None,
    };
    net::up(engine, probe, req, progress, cancel).await?;
    let mut obs = Observations {
        testnet: name.to_owned(),
        nodes: scenario.testnet.node_names(),
        started: unix_now(),
        ..Observations::default()
    };
    let result = drive(engine, probe, scenario, &mut obs, progress, cancel).await;
    obs.ended = unix_now();
    // A run that completed has healed (see `drive`); one cut short has not.
    if result.is_err() {
        if let Err(e) = chaos::heal(engine, probe, name).await {
            progress(&format!("warning: final heal failed: {e}"));
        }
    }
    let (verdicts, error) = match &result {
        Ok(()) => (check_all(&scenario.invariants, &obs), None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let passed = error.is_none() && verdicts.iter().all(|v| v.passed);
    let report = RunReport {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        seed: scenario.seed,
        passed,
        error,
        verdicts,
        observations: obs,
        resolved_scenario: resolved_yaml(scenario),
    };
    let written = report::write(&opts.report_dir, &report);
    if !passed {
        debug_bundle(engine, name, &opts.report_dir, &report).await;
    }
    if opts.keep {
        progress(&format!(
            "--keep: testnet {name} left running (`testnet down --name {name}`)"
        ));
    } else {
        net::down(engine, Some(name)).await?;
    }
    written.map_err(|e| RunError::Report(opts.report_dir.clone(), e))?;
    result?;
    Ok(report)
}

fn resolved_yaml(scenario: &Scenario) -> String {
    let mut text = serde_yaml_ng::to_string(scenario).unwrap_or_default();
    text.push_str("# resolved timeline (seeded):\n");
    for e in scenario.resolve() {
        text.push_str(&format!("#   +{:?} {:?}\n", e.at, e.action));
    }
    text
}

/// Logs, last metric scrapes and the resolved scenario, for a failed run.
async fn debug_bundle<E: Engine>(engine: &E, name: &str, dir: &Path, report: &RunReport) {
    let bundle = dir.join("debug");
    let _ = std::fs::create_dir_all(&bundle);
    let _ = std::fs::write(bundle.join("scenario.yaml"), &report.resolved_scenario);
    for node in &report.observations.nodes {
        let container = net::container_name(name, node);
        if let Ok(logs) = engine.logs(&container, 5000).await {
            let _ = std::fs::write(bundle.join(format!("{node}.log")), logs);
        }
        if let Some(s) = report
            .observations
            .of(node)
            .filter(|s| !s.metrics.is_empty())
            .last()
        {
            let text: String = s
                .metrics
                .iter()
                .map(|(k, v)| format!("{k} {v}\n"))
                .collect();
            let _ = std::fs::write(bundle.join(format!("{node}.metrics")), text);
        }
        if let Some(st) = report.observations.last_status(node) {
            let _ = std::fs::write(
                bundle.join(format!("{node}.status.json")),
                serde_json::to_vec_pretty(st).unwrap_or_default(),
            );
        }
    }
}

/// The workload and the timeline, sampled all along, then quiescence.
async fn drive<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    scenario: &Scenario,
    obs: &mut Observations,
    progress: &(impl Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<(), RunError> {
    let name = obs.testnet.clone();
    let samples = Mutex::new(Vec::new());
    let faults = Mutex::new(Vec::<FaultEvent>::new());
    let done = CancellationToken::new();
    let http = reqwest::Client::new();
    let start = Instant::now();

    let sampler = async {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = done.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Ok(nodes) = status(engine, probe, &name).await {
                let s = sample_all(&http, &nodes).await;
                samples.lock().expect("not poisoned").extend(s);
            }
        }
    };
    let work = async {
        let nodes = status(engine, probe, &name).await?;
        let load = async {
            match &scenario.workload {
                Some(w) => workload(&name, w, &nodes, scenario.seed, progress)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let timeline = timeline(engine, probe, scenario, &name, &faults, start, progress);
        let (load, timeline) = tokio::join!(load, timeline);
        timeline?;
        let load = load?;
        // Heal what is left, and wait until the nodes agree on how much is final.
        if faults
            .lock()
            .expect("not poisoned")
            .iter()
            .any(|f| f.end.is_none())
        {
            let at = unix_now();
            chaos::heal(engine, probe, &name).await?;
            close_windows(&faults, at, |f| f.kind != FaultKind::Process);
        }
        progress("waiting for quiescence (equal finalized counts, empty mempools)");
        quiescence(engine, probe, &name).await;
        Ok::<Option<LoadReport>, RunError>(load)
    };
    let main = async {
        let outcome = tokio::select! {
            _ = cancel.cancelled() => Err(RunError::Interrupted),
            r = work => r,
        };
        done.cancel();
        outcome
    };
    let ((), outcome) = tokio::join!(sampler, main);
    obs.samples = samples.into_inner().expect("not poisoned");
    obs.faults = faults.into_inner().expect("not poisoned");
    // One last look at every node, now quiet.
    if let Ok(nodes) = status(engine, probe, &name).await {
        obs.samples.extend(sample_all(&http, &nodes).await);
    }
    obs.load = outcome?;
    Ok(())
}

async fn workload(
    testnet: &str,
    w: &crate::scenario::Workload,
    nodes: &[NodeSummary],
    seed: u64,
    progress: &(impl Fn(&str) + Sync),
) -> Result<LoadReport, RunError> {
    let dir = state_dir(testnet);
    let args = LoadArgs {
        endpoints: nodes
            .iter()
            .filter(|n| w.endpoints.is_empty() || w.endpoints.contains(&n.node))
            .filter_map(|n| n.http_url.clone())
            .collect(),
        genesis: Some(dir.join("genesis.json")),
        faucet_key: Some(dir.join("faucet.key")),
        tps: w.tps,
        duration: w.duration,
        double_spend: w.double_spend,
        seed,
        settle: w.settle,
        json: false,
    };
    let cfg = crate::load::config(&args).map_err(|e| RunError::Load(e.to_string()))?;
    testnet_node::load::run(cfg, |line| progress(line))
        .await
        .map_err(|e| RunError::Load(e.to_string()))
}

/// Ends the open windows `which` selects at `at` (when their undo began).
fn close_windows(faults: &Mutex<Vec<FaultEvent>>, at: f64, which: impl Fn(&FaultEvent) -> bool) {
    for f in faults.lock().expect("not poisoned").iter_mut() {
        if f.end.is_none() && which(f) {
            f.end = Some(at);
        }
    }
}

/// Executes the resolved timeline at its offsets from `start`.
async fn timeline<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    scenario: &Scenario,
    name: &str,
    faults: &Mutex<Vec<FaultEvent>>,
    start: Instant,
    progress: &(impl Fn(&str) + Sync),
) -> Result<(), RunError> {
    let all = scenario.testnet.node_names();
    let n = all.len();
    // Network faults expire by themselves if this process dies (nobody renews).
    let total = scenario.timeline_end()
        + scenario
            .workload
            .as_ref()
            .map(|w| w.duration + w.settle)
            .unwrap_or_default();
    let lease = Some(total + Duration::from_secs(60));
    let mut windows: Vec<Option<usize>> = Vec::new();
    for event in scenario.resolve() {
        tokio::time::sleep_until((start + event.at).into()).await;
        let (fault, undo) = match &event.action {
            Action::Apply(f) => (f, false),
            Action::Undo(f) => (f, true),
        };
        let label = fault.label();
        progress(&format!(
            "+{:.1}s {}{label}",
            start.elapsed().as_secs_f64(),
            if undo { "undo " } else { "" }
        ));
        // A window is what is sure to be in place: from when the apply
        // returned (every node has it) to when the undo began (the first
        // node may lose it at once). The false-finality check relies on it.
        let before = unix_now();
        apply_fault(engine, probe, name, &all, fault, undo, lease).await?;
        let now = unix_now();
        if windows.len() <= event.window {
            windows.resize(event.window + 1, None);
        }
        let mut book = faults.lock().expect("not poisoned");
        if undo {
            if let Some(i) = windows[event.window] {
                book[i].end = Some(before);
            }
            continue;
        }
        let kind = match fault {
            Fault::Partition(_) | Fault::Shape(_) => {
                // A new cut replaces the one in place.
                for f in book
                    .iter_mut()
                    .filter(|f| f.kind == FaultKind::Partition && f.end.is_none())
                {
                    f.end = Some(before);
                }
                FaultKind::Partition
            }
            Fault::Delay { .. }
            | Fault::Loss { .. }
            | Fault::Bandwidth { .. }
            | Fault::Latency { .. } => FaultKind::Link,
            Fault::Heal => {
                drop(book);
                close_windows(faults, before, |f| f.kind != FaultKind::Process);
                continue;
            }
            _ => FaultKind::Process,
        };
        let no_quorum = match fault {
            Fault::Partition(groups) => !has_quorum(groups.iter().map(Vec::len), n),
            Fault::Shape(s) if s == "halves" => !has_quorum([n.div_ceil(2)], n),
            Fault::Shape(s) if s.starts_with("isolate:") => !has_quorum([n - 1], n),
            _ => false,
        };
        // A restart is over when it returns; the checkers allow it time to come back.
        let instant = matches!(fault, Fault::Restart(_) | Fault::RestartContainer(_));
        book.push(FaultEvent {
            // A process may be down as soon as the call begins; a cut is sure
            // only once every node has it.
            start: if kind == FaultKind::Process {
                before
            } else {
                now
            },
            end: instant.then_some(now),
            kind,
            label,
            nodes: fault.nodes(&all),
            no_quorum,
        });
        windows[event.window] = Some(book.len() - 1);
    }
    Ok(())
}

async fn apply_fault<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    name: &str,
    all: &[String],
    fault: &Fault,
    undo: bool,
    lease: Option<Duration>,
) -> Result<(), RunError> {
    use testnet_node::faults::Delay;
    let process = |node: &String, f: ProcessFault| (node.clone(), f, false);
    let container = |node: &String, f: ProcessFault| (node.clone(), f, true);
    let (node, action, whole) = match (fault, undo) {
        (Fault::Partition(_) | Fault::Shape(_) | Fault::Heal, true) => {
            // One group of every node: the cut goes, other faults stay.
            chaos::partition_groups(engine, probe, name, &[all.to_vec()], lease).await?;
            return Ok(());
        }
        (Fault::Partition(groups), false) => {
            chaos::partition_groups(engine, probe, name, groups, lease).await?;
            return Ok(());
        }
        (Fault::Shape(s), false) => {
            let shape = chaos::parse_shape(s)
                .ok_or_else(|| RunError::Invalid(format!("unknown shape {s:?}")))?;
            chaos::partition_shape(engine, probe, name, shape, lease).await?;
            return Ok(());
        }
        (Fault::Heal, false) => {
            chaos::heal(engine, probe, name).await?;
            return Ok(());
        }
        (
            Fault::Delay {
                nodes,
                to,
                ms,
                jitter_ms,
            },
            _,
        ) => {
            let f = if undo {
                LinkFault::ClearDelay
            } else {
                LinkFault::Delay(Delay {
                    ms: *ms,
                    jitter_ms: *jitter_ms,
                    reorder_per_mille: 0,
                })
            };
            chaos::link(engine, probe, name, nodes, to, f, lease).await?;
            return Ok(());
        }
        (Fault::Loss { nodes, to, percent }, _) => {
            let f = if undo {
                LinkFault::ClearLoss
            } else {
                LinkFault::Loss(chaos::per_mille(*percent).ok_or_else(|| {
                    RunError::Invalid(format!("loss of {percent}% is not a percentage"))
                })?)
            };
            chaos::link(engine, probe, name, nodes, to, f, lease).await?;
            return Ok(());
        }
        (Fault::Bandwidth { nodes, kbit }, _) => {
            let kbit = (!undo).then_some(*kbit);
            chaos::bandwidth(engine, probe, name, nodes, kbit, lease).await?;
            return Ok(());
        }
        (Fault::Latency { from, to, ms }, _) => {
            if !undo {
                chaos::zone_latency(engine, probe, name, from, to, *ms, false).await?;
            }
            return Ok(());
        }
        (Fault::Kill(n), false) => process(n, ProcessFault::Kill),
        (Fault::Kill(n) | Fault::Stop(n), true) => process(n, ProcessFault::Start),
        (Fault::Restart(n), _) => process(n, ProcessFault::Restart),
        (Fault::Stop(n), false) => process(n, ProcessFault::Stop),
        (Fault::Pause(n), false) => process(n, ProcessFault::Pause),
        (Fault::Pause(n), true) => process(n, ProcessFault::Resume),
        (Fault::KillContainer(n), false) => container(n, ProcessFault::Kill),
        (Fault::KillContainer(n), true) => container(n, ProcessFault::Start),
        (Fault::RestartContainer(n), _) => container(n, ProcessFault::Restart),
    };
    if whole {
        chaos::container(engine, probe, name, &node, action).await?;
    } else {
        chaos::process(engine, probe, name, &node, action).await?;
    }
    Ok(())
}

/// Waits (up to [`QUIESCENCE`]) until every node answers with the same number
/// of finalized transactions and an empty mempool, twice in a row.
async fn quiescence<E: Engine, P: NodeProbe>(engine: &E, probe: &P, name: &str) {
    let deadline = Instant::now() + QUIESCENCE;
    let mut calm = 0;
    while Instant::now() < deadline && calm < 2 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(nodes) = status(engine, probe, name).await else {
            continue;
        };
        let counts: Vec<Option<u64>> = nodes.iter().map(|n| n.finalized_transactions).collect();
        let settled = counts.iter().all(|c| c.is_some()) && counts.windows(2).all(|w| w[0] == w[1]);
        calm = if settled { calm + 1 } else { 0 };
    }
}

/// `testnet check`: samples the running testnet a few times and runs the
/// checkers that need no workload or timeline.
pub async fn check<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    name: &str,
) -> Result<Vec<Verdict>, RunError> {
    let http = reqwest::Client::new();
    let first = status(engine, probe, name).await?;
    if first.is_empty() {
        return Err(chaos::ChaosError::NoTestnet(name.to_owned()).into());
    }
    let mut obs = Observations {
        testnet: name.to_owned(),
        nodes: first.iter().map(|n| n.node.clone()).collect(),
        started: unix_now(),
        ..Observations::default()
    };
    for i in 0..3 {
        if i > 0 {
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        let nodes = status(engine, probe, name).await?;
        obs.samples.extend(sample_all(&http, &nodes).await);
    }
    obs.ended = unix_now();
    let invariants = Invariants {
        finality: None,
        ..Invariants::default()
    };
    let mut verdicts = check_all(&invariants, &obs);
    // On a running testnet "within" is now: the mesh must be there already.
    for v in &mut verdicts {
        if v.invariant == "connectivity" && !v.passed {
            v.summary = format!(
                "{} (checked over {:.0}s)",
                v.summary,
                obs.ended - obs.started
            );
        }
    }
    Ok(verdicts)
}
