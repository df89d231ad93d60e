//! An in-memory [`AgentApi`] that follows the [`FakeEngine`]'s containers, for
//! tests of the fault logic and the runner without Docker.
//!
//! Like the real agent, it answers only while its container runs, and a
//! container start gives it a fresh network namespace: the faults it held are
//! gone (the orchestrator must apply them again). Node processes are killed,
//! stopped, paused and started as the real agent does. Every call is logged.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use testnet_node::api::agent::DiskReport;
use testnet_node::api::agent::{FaultReport, ProcessReport, ProcessState};
use testnet_node::byzantine::Misbehaviour;
use testnet_node::clock::{ClockReport, Skew};
use testnet_node::faults::FaultState;
use testnet_node::store::DiskFaults;

use super::{AgentApi, AgentError};
use crate::engine::fake::FakeEngine;
use crate::engine::ContainerState;
use crate::fault::ProcessAction;
use crate::testnet::NodeSummary;

/// One agent's state, for the container start it belongs to.
#[derive(Debug, Clone)]
pub struct AgentSide {
    pub start: u32,
    pub faults: FaultState,
    pub lease: Option<Duration>,
    pub process: ProcessState,
    pub restarts: u64,
    /// The node's clock skew (a fresh process runs on real time).
    pub clock: Skew,
    /// The node's live misbehaviours (a fresh process is honest).
    pub byzantine: Misbehaviour,
    /// Whether the data dir is filled, and the store's disk faults.
    pub disk_full: bool,
    pub storage: DiskFaults,
}

#[derive(Default)]
pub struct FakeAgent {
    engine: FakeEngine,
    agents: Mutex<BTreeMap<String, AgentSide>>,
    calls: Mutex<Vec<String>>,
}

impl FakeAgent {
    pub fn new(engine: &FakeEngine) -> FakeAgent {
        FakeAgent {
            engine: engine.clone(),
            ..FakeAgent::default()
        }
    }

    /// Every call so far, as `verb node`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What the agent of `container` holds now (`None`: not running).
    pub fn side(&self, container: &str) -> Option<AgentSide> {
        self.reach(container).ok()?.get(container).cloned()
    }

    /// The agent of `container`, reset if the container started again since.
    fn reach(
        &self,
        container: &str,
    ) -> Result<MutexGuard<'_, BTreeMap<String, AgentSide>>, String> {
        let (running, start) = {
            let s = self.engine.state();
            let running = s
                .containers
                .get(container)
                .is_some_and(|(_, info)| info.state == ContainerState::Running);
            (running, s.starts.get(container).copied().unwrap_or(0))
        };
        if !running {
            return Err(container.to_owned());
        }
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = agents.get(container).is_none_or(|a| a.start != start);
        if fresh {
            agents.insert(
                container.to_owned(),
                AgentSide {
                    start,
                    faults: FaultState::default(),
                    lease: None,
                    process: ProcessState::Running,
                    restarts: 0,
                    clock: Skew::default(),
                    byzantine: Misbehaviour::honest(),
                    disk_full: false,
                    storage: DiskFaults::default(),
                },
            );
        }
        Ok(agents)
    }

    fn with<T>(
        &self,
        node: &NodeSummary,
        verb: &str,
        f: impl FnOnce(&mut AgentSide) -> T,
    ) -> Result<T, AgentError> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{verb} {}", node.node));
        let mut agents = self
            .reach(&node.container)
            .map_err(|_| AgentError::Unreachable(node.node.clone()))?;
        let side = agents.get_mut(&node.container).expect("reach inserts it");
        Ok(f(side))
    }
}

/// The node process as this fake agent reports it (a restart is a new pid).
fn process_of(side: &AgentSide) -> ProcessReport {
    ProcessReport {
        state: side.process,
        pid: (side.process != ProcessState::Stopped).then_some(100 + side.restarts as u32),
        restarts: side.restarts,
    }
}

fn report(side: &AgentSide) -> FaultReport {
    FaultReport {
        state: side.faults.clone(),
        installed: !side.faults.is_healed(),
        foreign_rules: Vec::new(),
        lease_remaining_secs: side.lease.map(|l| l.as_secs_f64()),
    }
}

impl AgentApi for FakeAgent {
    fn faults<'a>(
        &'a self,
        node: &'a NodeSummary,
    ) -> BoxFuture<'a, Result<FaultReport, AgentError>> {
        Box::pin(async move { self.with(node, "faults", |a| report(a)) })
    }

    fn set_faults<'a>(
        &'a self,
        node: &'a NodeSummary,
        state: &'a FaultState,
        lease: Option<Duration>,
    ) -> BoxFuture<'a, Result<FaultReport, AgentError>> {
        Box::pin(async move {
            self.with(node, "set_faults", |a| {
                a.faults = state.clone();
                a.lease = lease;
                report(a)
            })
        })
    }

    fn set_clock<'a>(
        &'a self,
        node: &'a NodeSummary,
        skew: Skew,
    ) -> BoxFuture<'a, Result<ClockReport, AgentError>> {
        Box::pin(async move {
            self.with(node, "clock", |a| {
                a.clock = skew;
                ClockReport {
                    skew,
                    now_ms: 0,
                    real_ms: 0,
                }
            })
        })
    }

    fn byzantine<'a>(
        &'a self,
        node: &'a NodeSummary,
        set: Option<&'a Misbehaviour>,
    ) -> BoxFuture<'a, Result<Misbehaviour, AgentError>> {
        Box::pin(async move {
            self.with(node, "byzantine", |a| {
                if let Some(m) = set {
                    a.byzantine = m.clone();
                }
                a.byzantine.clone()
            })
        })
    }

    fn disk<'a>(
        &'a self,
        node: &'a NodeSummary,
        full: Option<bool>,
    ) -> BoxFuture<'a, Result<DiskReport, AgentError>> {
        Box::pin(async move {
            self.with(node, "disk", |a| {
                if let Some(full) = full {
                    a.disk_full = full;
                }
                let mib = 1 << 20;
                DiskReport {
                    path: "/var/lib/testnet".into(),
                    filled_bytes: if a.disk_full { 60 * mib } else { 0 },
                    free_bytes: if a.disk_full { 0 } else { 60 * mib },
                    total_bytes: 64 * mib,
                }
            })
        })
    }

    fn storage<'a>(
        &'a self,
        node: &'a NodeSummary,
        set: Option<&'a DiskFaults>,
    ) -> BoxFuture<'a, Result<DiskFaults, AgentError>> {
        Box::pin(async move {
            self.with(node, "storage", |a| {
                if let Some(f) = set {
                    a.storage = *f;
                }
                a.storage
            })
        })
    }

    fn process_report<'a>(
        &'a self,
        node: &'a NodeSummary,
    ) -> BoxFuture<'a, Result<ProcessReport, AgentError>> {
        Box::pin(async move { self.with(node, "process", |a| process_of(a)) })
    }

    fn process<'a>(
        &'a self,
        node: &'a NodeSummary,
        action: ProcessAction,
    ) -> BoxFuture<'a, Result<ProcessReport, AgentError>> {
        Box::pin(async move {
            self.with(node, action.name(), |a| {
                a.process = match action {
                    ProcessAction::Kill | ProcessAction::Stop => ProcessState::Stopped,
                    ProcessAction::Pause => ProcessState::Paused,
                    ProcessAction::Resume => ProcessState::Running,
                    ProcessAction::Start | ProcessAction::Restart => {
                        a.restarts += 1;
                        ProcessState::Running
                    }
                };
                process_of(a)
            })
        })
    }
}
