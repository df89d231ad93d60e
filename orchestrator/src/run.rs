//! `testnet run`: up, workload and fault timeline while sampling every node,
//! heal, wait for quiescence, check the invariants, report, down.
//! `testnet check`: the same checkers against a running testnet.

mod check;
mod quiescence;
pub mod select;
pub mod timeline;

pub use check::{check, check_invariants};
use quiescence::quiescence;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::load::LoadReport;
use testnet_node::api::FinalizedPage;
use tokio_util::sync::CancellationToken;

use crate::agent::AgentApi;
use crate::chaos::{self, ChaosError};
use crate::checks::check_all;
use crate::engine::Engine;
use crate::fault::{Fault, WindowBook};
use crate::lifecycle::{self, UpRequest};
use crate::load::LoadArgs;
use crate::observe::{sample_all, unix_now, Observations, Quiescence, Sampling};
use crate::report::{self, RunReport};
use crate::scenario::Scenario;
use crate::state::Owner;
use crate::testnet::{NodeProbe, Testnet, TestnetError};

/// How long after the timeline and workload the testnet may take to settle,
/// unless the options say otherwise.
pub const QUIESCENCE: Duration = Duration::from_secs(30);
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Samples in a row the engine may miss before the run ends naming it.
const DAEMON_GRACE: u32 = 3;

pub struct RunOptions {
    pub image: String,
    /// The image of the scenario's `node:` section, made ready beforehand.
    pub node_image: Option<String>,
    pub report_dir: PathBuf,
    pub keep: bool,
    pub readiness: Duration,
    /// How long the testnet may take to settle at the end ([`QUIESCENCE`]).
    pub quiescence: Duration,
    /// Cancelled by a second interrupt: skip the heal and the debug bundle,
    /// tear down at once.
    pub hurry: CancellationToken,
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
        node_image: opts.node_image.as_deref(),
        image: &opts.image,
        readiness: opts.readiness,
        replace: true,
        monitor: None,
        agent,
        owner: Owner::me("run", false),
    };
    match lifecycle::up(tn, req, progress, cancel).await {
        Err(lifecycle::UpError::Interrupted) => return Err(RunError::Interrupted),
        up => up?,
    };
    let mut obs = Observations {
        testnet: name.to_owned(),
        nodes: scenario.testnet.node_names(),
        foreign: scenario.testnet.node.is_some(),
        neighbours: sparse_neighbours(tn),
        started: unix_now(),
        ..Observations::default()
    };
    let result = drive(
        tn,
        agent,
        scenario,
        opts.quiescence,
        &mut obs,
        progress,
        cancel,
    )
    .await;
    obs.ended = unix_now();
    let interrupted = matches!(result, Err(RunError::Interrupted));
    // A run that completed has healed (see `drive`); one cut short has not.
    if result.is_err() {
        let heal = chaos::apply(tn, agent, &Fault::Heal, None);
        tokio::select! {
            healed = heal => if let Err(e) = healed {
                progress(&format!("warning: final heal failed: {e}"));
            },
            _ = opts.hurry.cancelled() => progress("heal skipped"),
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
        interrupted,
        error,
        verdicts,
        observations: obs,
        resolved_scenario: resolved_yaml(scenario),
    };
    let written = report::write(&opts.report_dir, &report);
    if !passed {
        tokio::select! {
            () = debug_bundle(tn.engine, name, &opts.report_dir, &report) => {}
            _ = opts.hurry.cancelled() => progress("debug bundle skipped"),
        }
    }
    if opts.keep {
        // The testnet outlives this run: it is the user's now, never stale.
        if let Err(e) = tn.state.save_owner(&Owner::me("run --keep", true)) {
            progress(&format!("warning: {e}"));
        }
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

/// Each node's neighbours when the topology is not a full mesh (a mesh needs
/// no list).
fn sparse_neighbours<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
) -> std::collections::BTreeMap<String, Vec<String>> {
    match tn.plan() {
        Ok(plan) if plan.sparse => plan.neighbour_sets(),
        _ => Default::default(),
    }
}

fn resolved_yaml(scenario: &Scenario) -> String {
    let mut text = serde_norway::to_string(scenario).unwrap_or_default();
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
    quiet_within: Duration,
    obs: &mut Observations,
    progress: &(impl Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<(), RunError> {
    let wanted = scenario.invariants.metrics.iter().map(|m| m.metric.clone());
    let how = Sampling::of(&tn.plan()?, wanted);
    let how = &how;
    let samples = Mutex::new(Vec::new());
    let book = Mutex::new(WindowBook::default());
    let done = CancellationToken::new();
    let http = reqwest::Client::new();
    // The engine's answer each second; a daemon that stops answering ends the run.
    let (lost_tx, mut lost) = tokio::sync::oneshot::channel();
    let mut lost_tx = Some(lost_tx);
    let sampler = async {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        // A round of hundreds of nodes may outlast a tick: the next one waits.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut unreachable = 0;
        loop {
            tokio::select! {
                _ = done.cancelled() => break,
                _ = tick.tick() => {}
            }
            match tn.status().await {
                Ok(nodes) => {
                    unreachable = 0;
                    let s = sample_all(&http, &nodes, how).await;
                    samples.lock().unwrap_or_else(|e| e.into_inner()).extend(s);
                }
                Err(e @ crate::engine::EngineError::Unreachable(_)) => {
                    unreachable += 1;
                    if unreachable >= DAEMON_GRACE {
                        if let Some(tx) = lost_tx.take() {
                            let _ = tx.send(e);
                        }
                        break;
                    }
                }
                Err(_) => {}
            }
        }
    };
    let main = async {
        let outcome = tokio::select! {
            _ = cancel.cancelled() => Err(RunError::Interrupted),
            // A sampler that ends without sending disables this branch.
            Ok(e) = &mut lost => Err(RunError::Engine(e)),
            r = work(tn, agent, scenario, &book, quiet_within, progress) => r,
        };
        done.cancel();
        outcome
    };
    let ((), outcome) = tokio::join!(sampler, main);
    obs.samples = samples.into_inner().unwrap_or_else(|e| e.into_inner());
    (obs.faults, obs.quorum_gaps) = book
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_parts();
    // One last look at every node, now quiet.
    if let Ok(nodes) = tn.status().await {
        obs.samples.extend(sample_all(&http, &nodes, how).await);
        obs.finalized = finalized_if_different(&http, obs, &nodes).await;
    }
    let worked = outcome?;
    obs.load = worked.load;
    obs.command = worked.command;
    obs.timeline_end = Some(worked.timeline_end);
    obs.quiescence = worked.quiescence;
    Ok(())
}

/// Each node's finalized transactions, when their finalized-set digests at
/// the end differ (so safety can name the first difference).
async fn finalized_if_different(
    http: &reqwest::Client,
    obs: &Observations,
    nodes: &[crate::testnet::NodeSummary],
) -> BTreeMap<String, Vec<String>> {
    let digests: BTreeSet<&str> = obs
        .nodes
        .iter()
        .filter_map(|n| obs.last_status(n).map(|s| s.finalized_digest.as_str()))
        .collect();
    let mut out = BTreeMap::new();
    if digests.len() < 2 {
        return out;
    }
    for n in nodes {
        let Some(url) = &n.http_url else { continue };
        let mut ids = Vec::new();
        // A node with a finality window lists only its window's.
        let mut after = 0;
        // Bounded: a testnet run finalizes far fewer.
        while ids.len() < 1_000_000 {
            let page: Option<FinalizedPage> = async {
                let url = format!("{url}/finalized?after={after}");
                http.get(url).send().await.ok()?.json().await.ok()
            }
            .await;
            match page {
                Some(p) if !p.entries.is_empty() => {
                    ids.extend(p.entries.iter().map(|e| e.txid.to_string()));
                    after = p.next;
                }
                _ => break,
            }
        }
        out.insert(n.node.clone(), ids);
    }
    out
}

/// What the workload and timeline left for the report.
struct Worked {
    load: Option<LoadReport>,
    command: Option<crate::load::command::CommandReport>,
    timeline_end: f64,
    /// `None`: a foreign node's run (no contract to judge quiescence by).
    quiescence: Option<Quiescence>,
}

/// Workload and timeline side by side; then a heal of what is left and quiescence.
async fn work<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    scenario: &Scenario,
    book: &Mutex<WindowBook>,
    limit: Duration,
    progress: &(impl Fn(&str) + Sync),
) -> Result<Worked, RunError> {
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
            Some(w) if w.command.is_some() => {
                command_workload(tn, w, progress).await.map(Load::Command)
            }
            Some(w) => workload(tn, w, scenario.seed, progress)
                .await
                .map(Load::Payments),
            None => Ok(Load::Nothing),
        }
    };
    let events = scenario.resolve();
    let timeline = timeline::execute(tn, agent, &events, book, start, lease, progress);
    let (load, timeline) = tokio::join!(load, timeline);
    timeline?;
    let timeline_end = unix_now();
    let load = load?;
    let open = book.lock().unwrap_or_else(|e| e.into_inner()).any_open();
    if open {
        let at = unix_now();
        chaos::apply(tn, agent, &Fault::Heal, None).await?;
        book.lock().unwrap_or_else(|e| e.into_inner()).heal(at);
    }
    let quiescence = match scenario.testnet.node {
        Some(_) => None,
        None => {
            progress("waiting for quiescence (equal finalized sets, empty mempools)");
            let q = quiescence(tn, limit).await;
            progress(&format!("quiescence: {}", q.detail));
            Some(q)
        }
    };
    let (load, command) = match load {
        Load::Payments(l) => (Some(l), None),
        Load::Command(c) => (None, Some(c)),
        Load::Nothing => (None, None),
    };
    Ok(Worked {
        load,
        command,
        timeline_end,
        quiescence,
    })
}

enum Load {
    Payments(LoadReport),
    Command(crate::load::command::CommandReport),
    Nothing,
}

/// A `workload: { command }`: run to its end in a helper container.
async fn command_workload<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    w: &crate::scenario::Workload,
    progress: &(impl Fn(&str) + Sync),
) -> Result<crate::load::command::CommandReport, RunError> {
    let plan = tn.plan()?;
    let command = w.command.clone().unwrap_or_default();
    let shown = command.join(" ");
    let first = shown.lines().next().unwrap_or_default();
    let more = if first.len() < shown.len() {
        " ..."
    } else {
        ""
    };
    progress(&format!(
        "workload: {first}{more} (up to {}s)",
        (w.duration + w.settle).as_secs()
    ));
    let r = crate::load::command::run(
        tn.engine,
        &plan,
        &command,
        w.image.as_deref(),
        w.duration,
        w.duration + w.settle,
    )
    .await?;
    progress(&format!(
        "workload: exit {}, {} operations ok, {} failed",
        r.exit_code
            .map_or("none (stopped)".into(), |c| c.to_string()),
        r.succeeded(),
        r.failed()
    ));
    Ok(r)
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

#[cfg(test)]
mod tests;
