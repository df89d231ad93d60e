//! Readiness: `up` waits until every node has exactly its topology
//! neighbours as peers, fails fast when a container exits, and otherwise
//! names the nodes still missing peers with their last log lines.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::UpError;

mod foreign;
use crate::engine::Engine;
use crate::plan::Plan;
use crate::testnet::{NodeProbe, NodeSummary, Testnet};

/// Nodes whose logs a readiness failure shows, at most.
const REPORTED: usize = 8;

/// The peers each node of `plan` must have, in node order.
fn expected(plan: &Plan) -> Vec<(String, usize)> {
    plan.nodes
        .iter()
        .map(|n| (n.name.clone(), plan.neighbours_of(&n.name).len()))
        .collect()
}

fn is_ready(s: &NodeSummary, want: &[(String, usize)]) -> bool {
    let need = want.iter().find(|(n, _)| *n == s.node).map(|(_, k)| *k);
    s.peers.is_some() && s.peers == need
}

/// Waits until every node of `plan` reports its neighbours as peers, and
/// returns what they reported then.
pub(super) async fn wait_ready<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    plan: &Plan,
    deadline: Duration,
    progress: &(impl Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<Vec<NodeSummary>, UpError> {
    let want = expected(plan);
    let n = want.len();
    let what = if let Some(spec) = &plan.node {
        foreign::describe(spec)
    } else if plan.sparse {
        "their topology neighbours".to_owned()
    } else {
        format!("a full mesh ({} peers each)", n.saturating_sub(1))
    };
    let start = Instant::now();
    let (mut last_ready, mut said) = (usize::MAX, Instant::now() - Duration::from_secs(60));
    // A status round of hundreds of nodes takes a while itself: look less
    // often. A small testnet is ready within tens of milliseconds of its
    // last container's start: look soon, then back off to that.
    let every = Duration::from_millis(200 + 5 * n as u64);
    let mut next = Duration::from_millis(25).min(every);
    loop {
        if cancel.is_cancelled() {
            return Err(UpError::Interrupted);
        }
        let summary = tn.status().await?;
        for s in &summary {
            if let Some(code) = s.state.strip_prefix("exited ").and_then(|c| c.parse().ok()) {
                let logs = tn.engine.logs(&s.container, 20).await.unwrap_or_default();
                return Err(UpError::Crashed {
                    node: s.node.clone(),
                    code,
                    logs,
                });
            }
        }
        let ready = match &plan.node {
            Some(spec) => foreign::count_ready(tn.probe, spec, &summary).await,
            None => summary.iter().filter(|s| is_ready(s, &want)).count(),
        };
        if ready == n {
            progress(&format!(
                "all {n} nodes have {what} ({:.1}s)",
                start.elapsed().as_secs_f64()
            ));
            return Ok(summary);
        }
        if ready != last_ready && said.elapsed() >= Duration::from_secs(1) {
            progress(&format!(
                "waiting for {what}: {ready}/{n} nodes ready ({:.1}s)",
                start.elapsed().as_secs_f64()
            ));
            (last_ready, said) = (ready, Instant::now());
        }
        if start.elapsed() > deadline {
            let report = match &plan.node {
                Some(spec) => foreign::not_ready_report(tn, spec, &summary).await,
                None => not_ready_report(tn, &summary, &want).await,
            };
            return Err(UpError::NotReady { deadline, report });
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(UpError::Interrupted),
            _ = tokio::time::sleep(next) => {}
        }
        next = (next * 2).min(every);
    }
}

/// The nodes missing peers, the first few with their last log lines.
async fn not_ready_report<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    summary: &[NodeSummary],
    want: &[(String, usize)],
) -> String {
    let missing: Vec<&NodeSummary> = summary.iter().filter(|s| !is_ready(s, want)).collect();
    let mut report = String::new();
    for s in missing.iter().take(REPORTED) {
        let need = want
            .iter()
            .find(|(n, _)| *n == s.node)
            .map_or(0, |(_, k)| *k);
        let peers = match s.peers {
            Some(p) => format!("{p} of {need} peers"),
            None => "HTTP API not answering".into(),
        };
        let logs = tn.engine.logs(&s.container, 5).await.unwrap_or_default();
        report.push_str(&format!("  {} ({}): {peers}\n", s.node, s.state));
        for line in logs.lines() {
            report.push_str(&format!("    | {line}\n"));
        }
    }
    if missing.len() > REPORTED {
        let rest: Vec<&str> = missing[REPORTED..]
            .iter()
            .map(|s| s.node.as_str())
            .collect();
        report.push_str(&format!(
            "  and {} more not ready: {}\n",
            rest.len(),
            rest.join(", ")
        ));
    }
    report
}
