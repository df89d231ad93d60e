//! `testnet run`: up, workload and fault timeline while sampling every node,
//! heal, wait for quiescence, check the invariants, report, down.
//! `testnet check`: the same checkers against a running testnet.

pub mod timeline;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::load::LoadReport;
use tokio_util::sync::CancellationToken;

use crate::agent::AgentApi;
use crate::chaos::{self, ChaosError};
use crate::checks::{check_all, Verdict};
use crate::engine::Engine;
use crate::fault::{Fault, WindowBook};
use crate::lifecycle::{self, UpRequest};
use crate::load::LoadArgs;
use crate::observe::{sample_all, unix_now, Observations};
use crate::report::{self, RunReport};
use crate::scenario::{Invariants, Scenario};
use crate::testnet::{NodeProbe, Testnet, TestnetError};

/// How long after the timeline and workload the testnet may take to settle.
const QUIESCENCE: Duration = Duration::from_secs(30);
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

pub struct RunOptions {
    pub image: String,
    pub report_dir: PathBuf,
    pub keep: bool,
    pub readiness: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Up(#[from] lifecycle::UpError),
    #[error(transparent)]
    Chaos(#[from] ChaosError),
    #[error(transparent)]
    Testnet(#[from] TestnetError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("workload: {0}")]
    Load(String),
    #[error("interrupted")]
    Interrupted,
    #[error("cannot write the report in {0}: {1}")]
    Report(PathBuf, std::io::Error),
}

/// Runs `scenario` on testnet `tn` and writes its report. `Ok` carries the
/// report (passed or not); `Err` is a tool error (after cleanup, with a report
/// when possible).
pub async fn run<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    scenario: &Scenario,
    opts: &RunOptions,
    progress: &(impl Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<RunReport, RunError> {
    let name = tn.name.as_str();
    // A leftover testnet of this name (a run that did not finish) is removed
    // first, faults and all (`replace`).
    let req = UpRequest {
        file: &scenario.testnet,
        image: &opts.image,
        readiness: opts.readiness,
        replace: true,
        monitor: None,
        agent,
    };
    lifecycle::up(tn, req, progress, cancel).await?;
    let mut obs = Observations {
        testnet: name.to_owned(),
        nodes: scenario.testnet.node_names(),
        started: unix_now(),
        ..Observations::default()
    };
    let result = drive(tn, agent, scenario, &mut obs, progress, cancel).await;
    obs.ended = unix_now();
    // A run that completed has healed (see `drive`); one cut short has not.
    if result.is_err() {
        if let Err(e) = chaos::apply(tn, agent, &Fault::Heal, None).await {
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
        debug_bundle(tn.engine, name, &opts.report_dir, &report).await;
    }
    if opts.keep {
        progress(&format!(
            "--keep: testnet {name} left running (`testnet down --name {name}`)"
        ));
    } else {
        lifecycle::down(tn.engine, Some(name)).await?;
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
        let container = crate::plan::container_name(name, node);
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
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    scenario: &Scenario,
    obs: &mut Observations,
    progress: &(impl Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<(), RunError> {
    let samples = Mutex::new(Vec::new());
    let book = Mutex::new(WindowBook::default());
    let done = CancellationToken::new();
    let http = reqwest::Client::new();
    let sampler = async {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = done.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Ok(nodes) = tn.status().await {
                let s = sample_all(&http, &nodes).await;
                samples.lock().unwrap_or_else(|e| e.into_inner()).extend(s);
            }
        }
    };
    let main = async {
        let outcome = tokio::select! {
            _ = cancel.cancelled() => Err(RunError::Interrupted),
            r = work(tn, agent, scenario, &book, progress) => r,
        };
        done.cancel();
        outcome
    };
    let ((), outcome) = tokio::join!(sampler, main);
    obs.samples = samples.into_inner().unwrap_or_else(|e| e.into_inner());
    obs.faults = book
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_events();
    // One last look at every node, now quiet.
    if let Ok(nodes) = tn.status().await {
        obs.samples.extend(sample_all(&http, &nodes).await);
    }
    obs.load = outcome?;
    Ok(())
}

/// Workload and timeline side by side; then a heal of what is left and quiescence.
async fn work<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    scenario: &Scenario,
    book: &Mutex<WindowBook>,
    progress: &(impl Fn(&str) + Sync),
) -> Result<Option<LoadReport>, RunError> {
    let start = Instant::now();
    // Network faults expire by themselves if this process dies (nobody renews).
    let total = scenario.timeline_end()
        + scenario
            .workload
            .as_ref()
            .map(|w| w.duration + w.settle)
            .unwrap_or_default();
    let lease = Some(total + Duration::from_secs(60));
    let load = async {
        match &scenario.workload {
            Some(w) => workload(tn, w, scenario.seed, progress).await.map(Some),
            None => Ok(None),
        }
    };
    let events = scenario.resolve();
    let timeline = timeline::execute(tn, agent, &events, book, start, lease, progress);
    let (load, timeline) = tokio::join!(load, timeline);
    timeline?;
    let load = load?;
    let open = book.lock().unwrap_or_else(|e| e.into_inner()).any_open();
    if open {
        let at = unix_now();
        chaos::apply(tn, agent, &Fault::Heal, None).await?;
        book.lock().unwrap_or_else(|e| e.into_inner()).heal(at);
    }
    progress("waiting for quiescence (equal finalized counts)");
    quiescence(tn).await;
    Ok(load)
}

async fn workload<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    w: &crate::scenario::Workload,
    seed: u64,
    progress: &(impl Fn(&str) + Sync),
) -> Result<LoadReport, RunError> {
    let nodes = tn.endpoints().await?;
    let args = LoadArgs {
        endpoints: nodes
            .iter()
            .filter(|n| w.endpoints.is_empty() || w.endpoints.contains(&n.node))
            .filter_map(|n| n.http_url.clone())
            .collect(),
        genesis: Some(tn.state.genesis()),
        faucet_key: Some(tn.state.faucet_key()),
        tps: w.tps,
        duration: w.duration,
        double_spend: w.double_spend,
        seed,
        settle: w.settle,
        json: false,
    };
    let cfg = crate::load::config(&args).map_err(|e| RunError::Load(e.to_string()))?;
    crate::load::generator::run(cfg, |line| progress(line))
        .await
        .map_err(|e| RunError::Load(e.to_string()))
}

/// Waits (up to [`QUIESCENCE`]) until every node answers with the same number
/// of finalized transactions, twice in a row.
async fn quiescence<E: Engine, P: NodeProbe>(tn: &Testnet<'_, E, P>) {
    let deadline = Instant::now() + QUIESCENCE;
    let mut calm = 0;
    while Instant::now() < deadline && calm < 2 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(nodes) = tn.status().await else {
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
    tn: &Testnet<'_, E, P>,
) -> Result<Vec<Verdict>, RunError> {
    let http = reqwest::Client::new();
    let first = tn.endpoints().await?;
    let mut obs = Observations {
        testnet: tn.name.clone(),
        nodes: first.iter().map(|n| n.node.clone()).collect(),
        started: unix_now(),
        ..Observations::default()
    };
    for i in 0..3 {
        if i > 0 {
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        let nodes = tn.status().await?;
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

#[cfg(test)]
mod tests;
