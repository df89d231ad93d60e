//! The seams' keeper: what was set through the node's seams (a clock skew, a
//! misbehaviour, disk faults) is set again on a node process that came back
//! without it (killed and started, crashed, OOM-killed), so a fault lasts as
//! long as its window, not as long as a process. It holds the same lock as
//! the seam PUTs, so it never puts back a value a PUT just replaced.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::seams::{forward, seam};
use super::Agent;
use crate::byzantine::Misbehaviour;
use crate::clock::{ClockReport, Skew};
use crate::store::DiskFaults;

/// How often the node's seams are compared with what was set.
const KEEP_EVERY: Duration = Duration::from_secs(1);
/// A keeper call's bound: short, as PUTs wait for the lock it holds (a
/// paused node accepts the connection and never answers).
const CALL: Duration = Duration::from_millis(500);

pub(super) async fn keep(agent: Arc<Agent>) {
    if agent.node_api.is_none() && !agent.faketime {
        return;
    }
    let mut tick = tokio::time::interval(KEEP_EVERY);
    loop {
        tick.tick().await;
        let mut kept = agent.kept.lock().await;
        if let Some(w) = kept.faketime {
            kept.faketime = Some(refaketime(w));
        }
        if let (Some(skew), Some(url)) = (kept.clock, seam(&agent, "clock")) {
            if skew != Skew::default() {
                if let Ok(now) = forward::<Skew, ClockReport>(&url, None, CALL).await {
                    if now.skew != skew {
                        tracing::warn!(
                            ?skew,
                            "the node came back on real time: its skew is set again"
                        );
                        let _ = forward::<Skew, ClockReport>(&url, Some(&skew), CALL).await;
                    }
                }
            }
        }
        let honest = Misbehaviour::honest();
        restore(&agent, "byzantine", kept.byzantine.clone(), honest).await;
        restore(&agent, "storage", kept.storage, DiskFaults::default()).await;
    }
}

/// PUTs `kept` through seam `what` when the node shows something else (a
/// kept `fresh` value is what a new process has anyway).
async fn restore<T>(agent: &Agent, what: &str, kept: Option<T>, fresh: T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let (Some(kept), Some(url)) = (kept.filter(|k| *k != fresh), seam(agent, what)) else {
        return;
    };
    if let Ok(now) = forward::<T, T>(&url, None, CALL).await {
        if now != kept {
            tracing::warn!(
                seam = what,
                ?kept,
                "the node came back without it: set again"
            );
            let _ = forward::<T, T>(&url, Some(&kept), CALL).await;
        }
    }
}

/// A foreign node's spec file, written again for a main process that started
/// after it was written: the drift counts from its own start (and a pending
/// return to real time is written once a process runs).
fn refaketime(w: super::faketime::Written) -> super::faketime::Written {
    let main = super::holder::main_pid(&super::holder::node_processes());
    match main {
        Some(pid) if w.pid != Some(pid) => match super::faketime::write(pid, w.skew, w.set_ms) {
            Ok(again) => {
                tracing::warn!(pid, skew = ?w.skew, "a new node process: its clock spec is written again");
                again
            }
            Err(e) => {
                tracing::warn!(pid, "cannot write the clock spec again: {e}");
                w
            }
        },
        _ => w,
    }
}
