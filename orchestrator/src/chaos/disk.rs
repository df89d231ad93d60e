//! Disk faults: a node's data dir filled (its tmpfs, by its agent) and its
//! store's fsyncs slowed or its writes failed (the node's storage seam, via
//! its agent). Each is read back. A node whose store failed stops voting and
//! stays so: the undo frees the disk, clears the faults and restarts it, so
//! it comes back from what it had made durable.

use testnet_node::store::DiskFaults;

use super::{process, Applied, ChaosError};
use crate::agent::AgentApi;
use crate::engine::Engine;
use crate::fault::{ProcessAction, Undo};
use crate::testnet::{NodeProbe, Testnet};

/// Free bytes a filled disk may still show (less than a store record).
const FULL_ENOUGH: u64 = 64 * 1024;

/// Fills each of `nodes`' data dirs until no byte is free.
pub(super) async fn fill<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    nodes: &[String],
) -> Result<Applied, ChaosError> {
    let all = tn.endpoints().await?;
    let mut said = Vec::new();
    for node in nodes {
        let n = tn.find(&all, node)?;
        let r = agent.disk(n, Some(true)).await?;
        if r.free_bytes > FULL_ENOUGH {
            return Err(ChaosError::Disk(format!(
                "{node}: {} bytes still free after the fill",
                r.free_bytes
            )));
        }
        said.push(format!(
            "{node}: disk full ({} of {} MiB filled, {} bytes free) in place (read back)",
            r.filled_bytes >> 20,
            r.total_bytes >> 20,
            r.free_bytes
        ));
    }
    Ok(Applied {
        undo: Undo::DiskFull(nodes.to_vec()),
        detail: said.join("; "),
    })
}

/// Sets `faults` in each of `nodes`' stores (zero: a healthy disk).
pub(super) async fn storage<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    nodes: &[String],
    faults: DiskFaults,
) -> Result<Applied, ChaosError> {
    let all = tn.endpoints().await?;
    let mut said = Vec::new();
    for node in nodes {
        let n = tn.find(&all, node)?;
        let back = agent.storage(n, Some(&faults)).await?;
        if back != faults {
            return Err(ChaosError::Disk(format!(
                "{node}: asked for {faults:?}, the node reads back {back:?}"
            )));
        }
        said.push(format!(
            "{node}: fsync +{} ms, {}% write errors in place (read back)",
            back.fsync_ms, back.error_percent
        ));
    }
    let undo = match faults == DiskFaults::default() {
        true => Undo::Nothing,
        false => Undo::Disk(nodes.to_vec()),
    };
    Ok(Applied {
        undo,
        detail: said.join("; "),
    })
}

/// Frees `nodes`' disks (`free`, those with a capped data dir) or clears
/// their store faults (else), and restarts each whose store failed meanwhile
/// (a disk fault still in place on it fails it again, as it should).
pub(super) async fn heal<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    nodes: &[String],
    free: bool,
) -> Result<(), ChaosError> {
    let plan = tn.plan()?;
    let all = tn.endpoints().await?;
    for node in nodes {
        let n = tn.find(&all, node)?;
        let capped = plan
            .nodes
            .iter()
            .any(|p| &p.name == node && p.disk_mib.is_some());
        match free {
            true if capped => {
                agent.disk(n, Some(false)).await?;
            }
            true => {}
            false => {
                agent.storage(n, Some(&DiskFaults::default())).await?;
            }
        }
        let failed = match &n.http_url {
            Some(url) => tn
                .probe
                .status(url)
                .await
                .is_some_and(|s| s.store_error.is_some()),
            None => false,
        };
        if failed {
            process(tn, agent, node, ProcessAction::Restart, false).await?;
        }
    }
    Ok(())
}
