//! Process faults on a node in holder mode: its processes are signalled by
//! the holder's agent through the shared PID namespace (kill, stop, pause,
//! resume); a node whose main process is gone has an exited container, which
//! only the engine can start again.

use std::time::{Duration, Instant};

use testnet_node::api::agent::{ProcessReport, ProcessState};

use super::ChaosError;
use crate::agent::AgentApi;
use crate::engine::{ContainerState, Engine, Label};
use crate::fault::ProcessAction;
use crate::testnet::{NodeProbe, NodeSummary, Testnet};

/// How long a killed node's container may take to be seen as exited, and a
/// started one's processes to show up.
const SETTLE: Duration = Duration::from_secs(15);

/// Applies `action` to held node `n`; returns what its agent reports after.
pub(super) async fn process<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    n: &NodeSummary,
    action: ProcessAction,
) -> Result<ProcessReport, ChaosError> {
    match action {
        ProcessAction::Start => start(tn, agent, n).await,
        ProcessAction::Restart => {
            agent.process(n, ProcessAction::Kill).await?;
            start(tn, agent, n).await
        }
        other => Ok(agent.process(n, other).await?),
    }
}

/// Starts the node's container once the engine has seen it exit, and waits
/// until the agent sees the node's processes.
async fn start<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    n: &NodeSummary,
) -> Result<ProcessReport, ChaosError> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let state = tn
            .engine
            .list_containers(Label::testnet(Some(&tn.name)))
            .await?
            .into_iter()
            .find(|c| c.name == n.container)
            .map(|c| c.state);
        match state {
            Some(ContainerState::Running) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => break,
        }
    }
    tn.engine.start_container(&n.container).await?;
    loop {
        let report = agent.process_report(n).await?;
        if report.state == ProcessState::Running {
            return Ok(report);
        }
        if Instant::now() > deadline {
            return Err(ChaosError::NotBack(n.node.clone()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
