//! Byzantine behaviours switched on and off in running nodes, through each
//! node's agent and the node's misbehaviour seam. A behaviour is added to what
//! the node does already and its undo takes only that one away, so
//! overlapping Byzantine faults on one node compose; every change is read back
//! from the node.

use testnet_node::byzantine::Behaviour;

use super::{Applied, ChaosError};
use crate::agent::AgentApi;
use crate::engine::Engine;
use crate::fault::Undo;
use crate::testnet::{NodeProbe, Testnet};

/// Switches `behaviour` on (`on`) or off in each of `nodes`.
pub(super) async fn switch<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    nodes: &[String],
    behaviour: Behaviour,
    delay_ms: Option<u64>,
    on: bool,
) -> Result<Applied, ChaosError> {
    let all = tn.endpoints().await?;
    let mut said = Vec::new();
    for node in nodes {
        let n = tn.find(&all, node)?;
        let mut m = agent.byzantine(n, None).await?;
        match on {
            true => m.behaviours.insert(behaviour),
            false => m.behaviours.remove(&behaviour),
        };
        if let Some(ms) = delay_ms {
            m.delay_ms = ms;
        }
        let back = agent.byzantine(n, Some(&m)).await?;
        if back.is(behaviour) != on {
            return Err(ChaosError::Byzantine(format!(
                "{node}: asked to switch {} {}, the node reads back {:?}",
                behaviour.label(),
                if on { "on" } else { "off" },
                back.behaviours
            )));
        }
        let now: Vec<&str> = back.behaviours.iter().map(|b| b.label()).collect();
        said.push(format!(
            "{node}: {} in place (read back)",
            match now.is_empty() {
                true => "honest".to_owned(),
                false => now.join(", "),
            }
        ));
    }
    let undo = match on {
        true => Undo::Byzantine {
            nodes: nodes.to_vec(),
            behaviour,
        },
        false => Undo::Nothing,
    };
    Ok(Applied {
        undo,
        detail: said.join("; "),
    })
}
