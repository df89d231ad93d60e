//! Applying faults to a running testnet: the planned change of a [`Fault`]
//! (see [`crate::fault`]) carried out through each node's agent
//! ([`AgentApi`]) and the engine. `testnet chaos` and the scenario runner both
//! come here, so a fault means the same thing in both.
//!
//! Network faults are declarative: the desired layers live on the host
//! (`faults.json`), each change renders every node's whole state and sends it
//! to the nodes whose state changed (a heal to all); each agent applies it as
//! one batch and reads it back. A container that comes back with a fresh
//! network namespace gets its desired state again ([`reconcile`]). Every
//! applied fault is logged with a timestamp.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use testnet_node::api::agent::FaultReport;
use testnet_node::faults::FaultState;

use crate::agent::{AgentApi, AgentError};
use crate::engine::{ContainerAction, Engine, EngineError};
use crate::fault::{Desired, Fault, FaultError, Planned, ProcessAction, Undo};
use crate::observe::unix_now;
use crate::plan::Plan;
use crate::state::StateError;
use crate::testnet::{NodeProbe, NodeSummary, Testnet, TestnetError};

/// How long a started container's agent may take to answer.
const AGENT_BACK: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error(transparent)]
    Testnet(#[from] TestnetError),
    #[error(transparent)]
    Fault(#[from] FaultError),
    #[error("{source}{applied}")]
    Agent {
        source: AgentError,
        /// Which nodes did get the new state (the fault is half-applied).
        applied: String,
    },
    #[error("node {0}'s agent did not answer within 30 s of the container's start")]
    NotBack(String),
    #[error("choosing the fault's node: {0}")]
    Select(String),
    #[error("resource limit not in place: {0}")]
    Limit(String),
    #[error("byzantine behaviour not in place: {0}")]
    Byzantine(String),
    #[error("disk fault not in place: {0}")]
    Disk(String),
    #[error("upgrade: {0}")]
    Upgrade(String),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error("applied, but cannot record it: {0}")]
    Record(#[from] StateError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<AgentError> for ChaosError {
    fn from(source: AgentError) -> Self {
        ChaosError::Agent {
            source,
            applied: String::new(),
        }
    }
}

/// What applying a fault did, and how to take it back.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub undo: Undo,
    /// One line for the user (a process report, what a container went through).
    pub detail: String,
}

/// Logs one applied fault with a timestamp (the reports' timeline reads these).
fn log(testnet: &str, event: &str) {
    eprintln!("[fault {:.3}] testnet {testnet}: {event}", unix_now());
}

/// Applies `fault` to testnet `tn`. With a lease, network faults heal by
/// themselves unless applied again within it (a runner that was SIGKILLed
/// stops renewing, and its faults expire).
pub async fn apply<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    fault: &Fault,
    lease: Option<Duration>,
) -> Result<Applied, ChaosError> {
    let plan = tn.plan()?;
    let planned = fault.plan(&plan)?;
    let applied = match planned {
        Planned::Process {
            node,
            action,
            container,
        } => process(tn, agent, &node, action, container).await?,
        Planned::Limit { nodes, limit } => limits::apply(tn, agent, &nodes, limit).await?,
        Planned::Clock { nodes, skew } => limits::clock(tn, agent, &nodes, skew).await?,
        Planned::Byzantine {
            nodes,
            behaviour,
            delay_ms,
        } => byzantine::switch(tn, agent, &nodes, behaviour, Some(delay_ms), true).await?,
        Planned::DiskFull(nodes) => disk::fill(tn, agent, &nodes).await?,
        Planned::Disk { nodes, faults } => disk::storage(tn, agent, &nodes, faults).await?,
        Planned::Upgrade { nodes, to } => upgrade::apply(tn, agent, &nodes, &to).await?,
        network => {
            let heal_all = network == Planned::Heal(None);
            let undo = change_network(tn, agent, lease, heal_all, |desired, plan| {
                network_change(network, desired, plan, lease)
            })
            .await?;
            Applied {
                undo,
                detail: "applied".into(),
            }
        }
    };
    log(&tn.name, &fault.label());
    Ok(applied)
}

/// Takes back what [`apply`] did: removes a layer, restores zone latencies,
/// starts or resumes a process.
pub async fn undo<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    undo: &Undo,
    lease: Option<Duration>,
) -> Result<(), ChaosError> {
    match undo {
        Undo::Nothing => return Ok(()),
        Undo::Layer(id) => {
            change_network(tn, agent, lease, false, |desired, _| {
                desired.remove(*id);
            })
            .await?;
        }
        Undo::ZoneLatency(prior) => {
            change_network(tn, agent, lease, false, |_, plan| {
                for (a, b, ms) in prior {
                    plan.zones.set(a, b, *ms, true);
                }
            })
            .await?;
        }
        Undo::Process {
            node,
            action,
            container,
        } => {
            process(tn, agent, node, *action, *container).await?;
        }
        Undo::Limit { nodes, limit } => limits::lift(tn, agent, nodes, *limit).await?,
        Undo::Clock(nodes) => {
            limits::clock(tn, agent, nodes, Default::default()).await?;
        }
        Undo::Byzantine { nodes, behaviour } => {
            byzantine::switch(tn, agent, nodes, *behaviour, None, false).await?;
        }
        Undo::DiskFull(nodes) => disk::heal(tn, agent, nodes, true).await?,
        Undo::Disk(nodes) => disk::heal(tn, agent, nodes, false).await?,
        Undo::Upgrade(back) => upgrade::back(tn, agent, back).await?,
    }
    log(&tn.name, &format!("undo {undo:?}"));
    Ok(())
}

/// Changes the desired layers or the zones, as `planned` says; returns the undo.
fn network_change(
    planned: Planned,
    desired: &mut Desired,
    plan: &mut Plan,
    lease: Option<Duration>,
) -> Undo {
    match planned {
        Planned::Network(mut layer) => {
            layer.lease_until = lease.map(|l| unix_now() + l.as_secs_f64());
            Undo::Layer(desired.push(layer))
        }
        Planned::Heal(None) => {
            desired.heal_all();
            Undo::Nothing
        }
        Planned::Heal(Some(names)) => {
            let ips: BTreeSet<_> = names.iter().filter_map(|n| plan.ip_of(n)).collect();
            desired.heal_nodes(&names, &ips);
            Undo::Nothing
        }
        Planned::ZoneLatency {
            from,
            to,
            ms,
            one_way,
        } => {
            let mut prior = vec![(from.clone(), to.clone(), plan.zones.one_way_ms(&from, &to))];
            if !one_way && from != to {
                prior.push((to.clone(), from.clone(), plan.zones.one_way_ms(&to, &from)));
            }
            plan.zones.set(&from, &to, ms, one_way);
            Undo::ZoneLatency(prior)
        }
        Planned::Process { .. }
        | Planned::Limit { .. }
        | Planned::Clock { .. }
        | Planned::Byzantine { .. }
        | Planned::DiskFull(_)
        | Planned::Disk { .. }
        | Planned::Upgrade { .. } => Undo::Nothing,
    }
}

/// Loads the desired layers and the plan, lets `change` edit them, sends every
/// node whose rendered state changed (every node with `all`) its new state,
/// and records both.
async fn change_network<E: Engine, P: NodeProbe, R>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    lease: Option<Duration>,
    all: bool,
    change: impl FnOnce(&mut Desired, &mut Plan) -> R,
) -> Result<R, ChaosError> {
    let mut plan = tn.plan()?;
    let mut desired = tn.state.desired();
    desired.expire(unix_now());
    let before = desired.render(&plan.baseline());
    let out = change(&mut desired, &mut plan);
    let after = desired.render(&plan.baseline());
    let nodes = tn.endpoints().await?;
    let targets: Vec<(&NodeSummary, &FaultState)> = nodes
        .iter()
        .filter(|n| n.state == "running")
        .filter_map(|n| Some((n, after.get(&n.node)?)))
        .filter(|(n, state)| all || before.get(&n.node) != Some(*state))
        .collect();
    let result = send(agent, &targets, lease).await;
    // What was sent is in place: record it even when another node failed.
    tn.state.save_desired(&desired)?;
    tn.state.save_plan(&plan)?;
    result?;
    Ok(out)
}

/// Sends each node its whole state, concurrently.
async fn send(
    agent: &dyn AgentApi,
    targets: &[(&NodeSummary, &FaultState)],
    lease: Option<Duration>,
) -> Result<Vec<FaultReport>, ChaosError> {
    let calls = targets.iter().map(|(n, s)| agent.set_faults(n, s, lease));
    let results = futures::future::join_all(calls).await;
    let applied: Vec<&str> = targets
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|((n, _), _)| n.node.as_str())
        .collect();
    let mut reports = Vec::new();
    for r in results {
        match r {
            Ok(report) => reports.push(report),
            Err(source) => {
                return Err(ChaosError::Agent {
                    source,
                    applied: format!(" (applied on: {})", applied.join(", ")),
                })
            }
        }
    }
    Ok(reports)
}

/// Applies the latency zones' baseline on every node (what `up` does for a
/// file with zones).
pub async fn apply_baseline<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    plan: &Plan,
) -> Result<(), ChaosError> {
    let base = plan.baseline();
    let nodes = tn.endpoints().await?;
    let targets: Vec<(&NodeSummary, &FaultState)> = nodes
        .iter()
        .filter_map(|n| Some((n, base.get(&n.node)?)))
        .collect();
    send(agent, &targets, None).await?;
    log(&tn.name, "latency zones applied");
    Ok(())
}

/// Every node's fault state as its agent reads it back.
pub async fn read<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
) -> Result<Vec<(String, FaultReport)>, ChaosError> {
    let nodes = tn.endpoints().await?;
    let mut out = Vec::new();
    for n in &nodes {
        out.push((n.node.clone(), agent.faults(n).await?));
    }
    Ok(out)
}

/// A process fault on a node's process (through its agent) or its whole
/// container (through the engine; its faults come back on start).
async fn process<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    node: &str,
    action: ProcessAction,
    container: bool,
) -> Result<Applied, ChaosError> {
    let nodes = tn.endpoints().await?;
    let n = tn.find(&nodes, node)?;
    let detail = if container {
        container_action(tn, agent, n, action).await?
    } else {
        let report = match n.holder {
            Some(_) => held::process(tn, agent, n, action).await?,
            None => agent.process(n, action).await?,
        };
        serde_json::to_string(&report).expect("report serializes")
    };
    let undo = match action.undo() {
        Some(action) => Undo::Process {
            node: node.to_owned(),
            action,
            container,
        },
        None => Undo::Nothing,
    };
    Ok(Applied { undo, detail })
}

async fn container_action<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    node: &NodeSummary,
    action: ProcessAction,
) -> Result<String, ChaosError> {
    let name = &node.container;
    let engine_action = |a| tn.engine.container_action(name, a);
    let mut did = Vec::new();
    if matches!(action, ProcessAction::Kill | ProcessAction::Restart) {
        engine_action(ContainerAction::Kill).await?;
        did.push("killed");
    }
    match action {
        ProcessAction::Stop => {
            engine_action(ContainerAction::Stop).await?;
            did.push("stopped");
        }
        ProcessAction::Pause => {
            engine_action(ContainerAction::Pause).await?;
            did.push("paused");
        }
        ProcessAction::Resume => {
            engine_action(ContainerAction::Unpause).await?;
            did.push("resumed");
        }
        ProcessAction::Start | ProcessAction::Restart => {
            tn.engine.start_container(name).await?;
            did.push("started");
            if reconcile(tn, agent, &node.node).await? {
                did.push("faults re-applied");
            }
        }
        ProcessAction::Kill => {}
    }
    Ok(did.join(", "))
}

/// After a container start: waits for `node`'s agent, then gives it what it
/// should carry (its desired layers while their lease runs, over its
/// baseline). True when there was anything to apply.
pub async fn reconcile<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    node: &str,
) -> Result<bool, ChaosError> {
    let back = wait_agent(tn, agent, node).await?;
    let plan = tn.plan()?;
    let mut desired = tn.state.desired();
    let now = unix_now();
    desired.expire(now);
    let state = desired
        .render(&plan.baseline())
        .remove(node)
        .unwrap_or_default();
    if state.is_healed() {
        return Ok(false);
    }
    let lease = desired
        .lease_of(node)
        .map(|until| Duration::from_secs_f64((until - now).max(0.001)));
    agent.set_faults(&back, &state, lease).await?;
    Ok(true)
}

/// `node` once its agent answers again after a container start (on the same
/// pinned port; a testnet of an older plan may have a new one).
async fn wait_agent<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    node: &str,
) -> Result<NodeSummary, ChaosError> {
    let deadline = Instant::now() + AGENT_BACK;
    loop {
        let nodes = tn.endpoints().await?;
        let n = tn.find(&nodes, node)?;
        if agent.faults(n).await.is_ok() {
            return Ok(n.clone());
        }
        if Instant::now() > deadline {
            return Err(ChaosError::NotBack(node.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each node's desired state now (what `chaos show` compares with).
pub fn desired_states<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
) -> Result<BTreeMap<String, FaultState>, ChaosError> {
    let plan = tn.plan()?;
    let mut desired = tn.state.desired();
    desired.expire(unix_now());
    Ok(desired.render(&plan.baseline()))
}

mod byzantine;
mod disk;
mod held;
mod limits;
#[cfg(test)]
mod tests;
mod upgrade;
