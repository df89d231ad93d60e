//! What a fault sets on nodes beyond their links: resource limits on their
//! containers, live through the engine (each read back: a limit the engine
//! does not show is an error, not a fault in place; lifting a memory limit
//! starts again the nodes it OOM-killed), and clock skews through each
//! node's agent and clock seam (read back from the node).

use super::{process, Applied, ChaosError};
use crate::agent::AgentApi;
use crate::engine::{Engine, Limit};
use crate::fault::{ProcessAction, Undo};
use crate::testnet::{NodeProbe, Testnet};

/// Sets `limit` on each of `nodes`; the undo lifts it. Lifting one (`None`)
/// starts again what a memory limit OOM-killed.
pub(super) async fn apply<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    nodes: &[String],
    limit: Limit,
) -> Result<Applied, ChaosError> {
    if matches!(limit, Limit::Cpu(None) | Limit::Memory(None)) {
        lift(tn, agent, nodes, limit).await?;
    }
    let all = tn.endpoints().await?;
    let mut said = Vec::new();
    for node in nodes {
        let n = tn.find(&all, node)?;
        if !matches!(limit, Limit::Cpu(None) | Limit::Memory(None)) {
            tn.engine.update_limit(&n.container, limit).await?;
        }
        let back = tn.engine.resource_stats(&n.container).await?;
        let (shown, wanted) = match limit {
            Limit::Cpu(c) => (
                back.cpu_cores.map(|v| format!("{v:.2} cores")),
                c.map(|v| format!("{v:.2} cores")),
            ),
            Limit::Memory(m) => (
                back.memory_mib.map(|v| format!("{v} MiB")),
                m.map(|v| format!("{v} MiB")),
            ),
        };
        if shown != wanted {
            return Err(ChaosError::Limit(format!(
                "{node}: asked for {}, the engine shows {}",
                wanted.as_deref().unwrap_or("no limit"),
                shown.as_deref().unwrap_or("no limit")
            )));
        }
        said.push(format!(
            "{node}: {} in place (read back)",
            shown.unwrap_or_else(|| "no limit".into())
        ));
    }
    let lifted = match limit {
        Limit::Cpu(_) => Limit::Cpu(None),
        Limit::Memory(_) => Limit::Memory(None),
    };
    let undo = match limit {
        Limit::Cpu(None) | Limit::Memory(None) => Undo::Nothing,
        _ => Undo::Limit {
            nodes: nodes.to_vec(),
            limit: lifted,
        },
    };
    Ok(Applied {
        undo,
        detail: said.join("; "),
    })
}

/// Lifts `limit` (already the lifted one) from `nodes`; a node whose
/// container the memory limit OOM-killed is started again, its faults
/// re-applied.
pub(super) async fn lift<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    nodes: &[String],
    limit: Limit,
) -> Result<(), ChaosError> {
    let all = tn.endpoints().await?;
    for node in nodes {
        let n = tn.find(&all, node)?;
        tn.engine.update_limit(&n.container, limit).await?;
        if matches!(limit, Limit::Memory(_)) && n.state.starts_with("exited") {
            process(tn, agent, node, ProcessAction::Start, true).await?;
        }
    }
    Ok(())
}

/// Skews `nodes`' clocks (the default skew: real time again); the undo puts
/// them back.
pub(super) async fn clock<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    nodes: &[String],
    skew: testnet_node::clock::Skew,
) -> Result<Applied, ChaosError> {
    let all = tn.endpoints().await?;
    let mut said = Vec::new();
    for node in nodes {
        let n = tn.find(&all, node)?;
        let back = agent.set_clock(n, skew).await?;
        said.push(format!(
            "{node}: clock {:+} ms, drift {} ppm in place (read back)",
            back.skew.offset_ms, back.skew.drift_ppm
        ));
    }
    let undo = match skew == Default::default() {
        true => Undo::Nothing,
        false => Undo::Clock(nodes.to_vec()),
    };
    Ok(Applied {
        undo,
        detail: said.join("; "),
    })
}
