//! Nodes chosen when a fault applies, by what they export: `max:METRIC` is
//! the node with the highest value of METRIC then (`max:etcd_server_is_leader`
//! is etcd's leader), also as `isolate:max:METRIC`. A metric no node exports
//! above 0 fails the fault with the values seen.

use crate::chaos::ChaosError;
use crate::engine::Engine;
use crate::fault::Fault;
use crate::observe::parse_exposition;
use crate::testnet::{NodeProbe, Testnet};

pub const PREFIX: &str = "max:";

/// Whether `fault` names a node by a metric.
pub fn is_dynamic(fault: &Fault) -> bool {
    let shape = matches!(fault, Fault::Shape(s) if s.starts_with("isolate:max:"));
    shape || fault.named_nodes().iter().any(|n| n.starts_with(PREFIX))
}

/// The node with the highest value of `metric` now.
async fn pick<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    metric: &str,
) -> Result<String, ChaosError> {
    let nodes = tn.endpoints().await?;
    let mut seen = Vec::new();
    let mut best: Option<(String, f64)> = None;
    for n in &nodes {
        let Some(url) = &n.metrics_url else {
            seen.push(format!("{}: no metrics", n.node));
            continue;
        };
        let value = match tn.probe.get(url).await {
            Some((200, text)) => parse_exposition(&text, |name| name == metric)
                .values()
                .copied()
                .reduce(f64::max),
            _ => None,
        };
        seen.push(format!(
            "{}={}",
            n.node,
            value.map_or("-".into(), |v| v.to_string())
        ));
        if let Some(v) = value.filter(|v| *v > 0.0) {
            if best.as_ref().is_none_or(|(_, b)| v > *b) {
                best = Some((n.node.clone(), v));
            }
        }
    }
    best.map(|(n, _)| n).ok_or_else(|| {
        ChaosError::Select(format!(
            "no node exports {metric} above 0 now ({})",
            seen.join(", ")
        ))
    })
}

/// `fault` with every `max:METRIC` replaced by the node it picks now.
pub async fn resolve<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    fault: &Fault,
) -> Result<Fault, ChaosError> {
    if !is_dynamic(fault) {
        return Ok(fault.clone());
    }
    if let Fault::Shape(s) = fault {
        if let Some(metric) = s.strip_prefix("isolate:max:") {
            return Ok(Fault::Shape(format!("isolate:{}", pick(tn, metric).await?)));
        }
    }
    let mut picked = std::collections::BTreeMap::new();
    for n in fault.named_nodes() {
        if let Some(metric) = n.strip_prefix(PREFIX) {
            if !picked.contains_key(n) {
                picked.insert(n.clone(), pick(tn, metric).await?);
            }
        }
    }
    Ok(fault.map_nodes(|n| picked.get(n).cloned().unwrap_or_else(|| n.clone())))
}
