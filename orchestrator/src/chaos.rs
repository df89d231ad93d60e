//! Faults on a running testnet, through each node's in-container agent: the
//! library API the scenario runner will use, and `testnet chaos`.
//!
//! Network faults are declarative: the desired [`FaultState`] of every node is
//! computed here and sent whole; the agent applies it as one batch and reads it
//! back. Every applied fault is logged with a timestamp.

use std::net::Ipv4Addr;
use std::time::Duration;

use testnet_node::agent::{FaultReport, ProcessReport};
pub use testnet_node::faults::Shape;
use testnet_node::faults::{partition, shape, Delay, FaultState};

use crate::engine::{Engine, EngineError};
use crate::testnet::{status, NodeProbe, NodeSummary};

#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("no testnet named {0:?} is running")]
    NoTestnet(String),
    #[error("no node {node:?} in testnet {testnet:?}; nodes are {known}")]
    UnknownNode {
        node: String,
        testnet: String,
        known: String,
    },
    #[error("node {0}'s agent is not reachable (is the container running?)")]
    NoAgent(String),
    #[error("agent of {node}: {message}")]
    Agent { node: String, message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A process fault, applied by the agent to the node process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProcessFault {
    Kill,
    Start,
    Restart,
    Stop,
    Pause,
    Resume,
}

impl ProcessFault {
    pub fn action(self) -> &'static str {
        match self {
            ProcessFault::Kill => "kill",
            ProcessFault::Start => "start",
            ProcessFault::Restart => "restart",
            ProcessFault::Stop => "stop",
            ProcessFault::Pause => "pause",
            ProcessFault::Resume => "resume",
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client builds")
}

/// Logs one applied fault with a timestamp (the reports' timeline reads these).
fn log(event: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    eprintln!("[fault {now:.3}] {event}");
}

async fn nodes<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    testnet: &str,
) -> Result<Vec<NodeSummary>, ChaosError> {
    let nodes = status(engine, probe, testnet).await?;
    if nodes.is_empty() {
        return Err(ChaosError::NoTestnet(testnet.to_owned()));
    }
    Ok(nodes)
}

fn find<'a>(
    nodes: &'a [NodeSummary],
    name: &str,
    testnet: &str,
) -> Result<&'a NodeSummary, ChaosError> {
    nodes
        .iter()
        .find(|n| n.node == name)
        .ok_or_else(|| ChaosError::UnknownNode {
            node: name.to_owned(),
            testnet: testnet.to_owned(),
            known: nodes
                .iter()
                .map(|n| n.node.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

async fn agent_call<T: serde::de::DeserializeOwned>(
    node: &NodeSummary,
    request: reqwest::RequestBuilder,
) -> Result<T, ChaosError> {
    let res = request
        .send()
        .await
        .map_err(|_| ChaosError::NoAgent(node.node.clone()))?;
    if !res.status().is_success() {
        return Err(ChaosError::Agent {
            node: node.node.clone(),
            message: res.text().await.unwrap_or_default(),
        });
    }
    res.json().await.map_err(|e| ChaosError::Agent {
        node: node.node.clone(),
        message: e.to_string(),
    })
}

/// Sends each node its whole fault state, concurrently. With a lease, each agent
/// heals by itself unless the state is applied again within it (a runner renews;
/// one that was SIGKILLed does not, and its faults expire).
pub async fn apply(
    states: &[(&NodeSummary, FaultState)],
    lease: Option<Duration>,
) -> Result<Vec<FaultReport>, ChaosError> {
    let http = client();
    let query = lease
        .map(|l| format!("?lease_secs={}", l.as_secs_f64()))
        .unwrap_or_default();
    let calls = states.iter().map(|(node, state)| {
        let url = node.agent_url.clone().unwrap_or_default();
        agent_call::<FaultReport>(node, http.put(format!("{url}/faults{query}")).json(state))
    });
    let results = futures::future::join_all(calls).await;
    let applied: Vec<&str> = states
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|((n, _), _)| n.node.as_str())
        .collect();
    let mut reports = Vec::new();
    for r in results {
        match r {
            Ok(report) => reports.push(report),
            // Say which nodes did get the new state: the fault is half-applied.
            Err(ChaosError::Agent { node, message }) => {
                return Err(ChaosError::Agent {
                    node,
                    message: format!("{message} (applied on: {})", applied.join(", ")),
                })
            }
            Err(e) => return Err(e),
        }
    }
    Ok(reports)
}

/// Reads every node's fault state back.
pub async fn read<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    testnet: &str,
) -> Result<Vec<(String, FaultReport)>, ChaosError> {
    let nodes = nodes(engine, probe, testnet).await?;
    let http = client();
    let mut out = Vec::new();
    for n in &nodes {
        let url = n
            .agent_url
            .clone()
            .ok_or_else(|| ChaosError::NoAgent(n.node.clone()))?;
        out.push((
            n.node.clone(),
            agent_call(n, http.get(format!("{url}/faults"))).await?,
        ));
    }
    Ok(out)
}

/// Splits the testnet into groups that only talk within themselves (node names).
/// Nodes in no group are isolated.
pub async fn partition_groups<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    testnet: &str,
    groups: &[Vec<String>],
    lease: Option<Duration>,
) -> Result<(), ChaosError> {
    let nodes = nodes(engine, probe, testnet).await?;
    let ip_of = |name: &str| -> Result<Ipv4Addr, ChaosError> {
        find(&nodes, name, testnet)?
            .ip
            .ok_or_else(|| ChaosError::NoAgent(name.to_owned()))
    };
    let groups_ip: Vec<Vec<Ipv4Addr>> = groups
        .iter()
        .map(|g| g.iter().map(|n| ip_of(n)).collect::<Result<_, _>>())
        .collect::<Result<_, _>>()?;
    let all: Vec<Ipv4Addr> = nodes.iter().filter_map(|n| n.ip).collect();
    apply_drops(&nodes, &partition(&groups_ip, &all), lease).await?;
    let shown: Vec<String> = groups.iter().map(|g| g.join(",")).collect();
    log(&format!(
        "testnet {testnet}: partition {}",
        shown.join(" | ")
    ));
    Ok(())
}

/// Cuts the testnet in one of Jepsen's shapes (nodes in n0, n1, ... order).
pub async fn partition_shape<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    testnet: &str,
    kind: Shape,
    lease: Option<Duration>,
) -> Result<(), ChaosError> {
    let nodes = nodes(engine, probe, testnet).await?;
    if let Shape::Isolate(k) = kind {
        find(&nodes, &format!("n{k}"), testnet)?;
    }
    let all: Vec<Ipv4Addr> = nodes.iter().filter_map(|n| n.ip).collect();
    apply_drops(&nodes, &shape(kind, &all), lease).await?;
    log(&format!("testnet {testnet}: partition {kind:?}"));
    Ok(())
}

/// Replaces each node's drops with `plan`'s, keeping its other faults.
async fn apply_drops(
    nodes: &[NodeSummary],
    plan: &[(Ipv4Addr, FaultState)],
    lease: Option<Duration>,
) -> Result<(), ChaosError> {
    let mut merged = Vec::new();
    for node in nodes {
        let Some(cut) = node.ip.and_then(|ip| plan.iter().find(|(i, _)| *i == ip)) else {
            continue;
        };
        let mut state = current(node).await?;
        state.drop_from = cut.1.drop_from.clone();
        state.drop_to = cut.1.drop_to.clone();
        merged.push((node, state));
    }
    apply(&merged, lease).await?;
    Ok(())
}

/// A node's fault state as its agent reads it back from the kernel.
async fn current(node: &NodeSummary) -> Result<FaultState, ChaosError> {
    let url = node
        .agent_url
        .clone()
        .ok_or_else(|| ChaosError::NoAgent(node.node.clone()))?;
    let report: FaultReport = agent_call(node, client().get(format!("{url}/faults"))).await?;
    Ok(report.state)
}

/// A change to link faults, for packets leaving a node towards a target.
#[derive(Debug, Clone, Copy)]
pub enum LinkFault {
    Delay(Delay),
    /// Per mille of packets dropped.
    Loss(u32),
    ClearDelay,
    ClearLoss,
}

/// Applies `fault` to packets leaving each of `from` towards `to` (every other
/// node when empty). Loss is dropped on the sender's egress;
/// delay is held on the receivers' ingress (same effect on the wire, without the
/// sender's TCP stack counting held packets against itself).
pub async fn link<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    testnet: &str,
    from: &[String],
    to: &[String],
    fault: LinkFault,
    lease: Option<Duration>,
) -> Result<(), ChaosError> {
    let nodes = nodes(engine, probe, testnet).await?;
    for n in from.iter().chain(to) {
        find(&nodes, n, testnet)?;
    }
    // (sender, receiver) pairs.
    let mut pairs = Vec::new();
    for name in from {
        let sender = find(&nodes, name, testnet)?;
        for receiver in nodes
            .iter()
            .filter(|o| o.node != *name && (to.is_empty() || to.contains(&o.node)))
        {
            pairs.push((sender, receiver));
        }
    }
    let delaying = matches!(fault, LinkFault::Delay(_) | LinkFault::ClearDelay);
    let mut changed: Vec<(&NodeSummary, FaultState)> = Vec::new();
    for (sender, receiver) in pairs {
        let (holder, peer) = if delaying {
            (receiver, sender)
        } else {
            (sender, receiver)
        };
        let Some(peer_ip) = peer.ip else { continue };
        let pos = match changed.iter().position(|(n, _)| n.node == holder.node) {
            Some(p) => p,
            None => {
                changed.push((holder, current(holder).await?));
                changed.len() - 1
            }
        };
        let state = &mut changed[pos].1;
        match fault {
            LinkFault::Delay(d) => {
                state.delay_from.insert(peer_ip, d);
            }
            LinkFault::Loss(p) => {
                state.loss_per_mille.insert(peer_ip, p);
            }
            LinkFault::ClearDelay => {
                state.delay_from.remove(&peer_ip);
            }
            LinkFault::ClearLoss => {
                state.loss_per_mille.remove(&peer_ip);
            }
        }
    }
    apply(&changed, lease).await?;
    let towards = if to.is_empty() {
        "all".to_owned()
    } else {
        to.join(",")
    };
    log(&format!(
        "testnet {testnet}: {fault:?} on {} -> {towards}",
        from.join(",")
    ));
    Ok(())
}

/// Caps the egress bandwidth of each of `nodes` (`None` removes the cap).
pub async fn bandwidth<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    testnet: &str,
    names: &[String],
    kbit: Option<u32>,
    lease: Option<Duration>,
) -> Result<(), ChaosError> {
    let nodes = nodes(engine, probe, testnet).await?;
    let mut states = Vec::new();
    for name in names {
        let node = find(&nodes, name, testnet)?;
        let mut state = current(node).await?;
        state.bandwidth_kbit = kbit;
        states.push((node, state));
    }
    apply(&states, lease).await?;
    log(&format!(
        "testnet {testnet}: bandwidth {kbit:?} kbit/s on {}",
        names.join(",")
    ));
    Ok(())
}

/// Removes every network fault of every node.
pub async fn heal<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    testnet: &str,
) -> Result<(), ChaosError> {
    let nodes = nodes(engine, probe, testnet).await?;
    let states: Vec<(&NodeSummary, FaultState)> = nodes
        .iter()
        .filter(|n| n.agent_url.is_some())
        .map(|n| (n, FaultState::default()))
        .collect();
    apply(&states, None).await?;
    log(&format!("testnet {testnet}: healed"));
    Ok(())
}

/// Applies a process fault to one node.
pub async fn process<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    testnet: &str,
    node: &str,
    fault: ProcessFault,
) -> Result<ProcessReport, ChaosError> {
    let nodes = nodes(engine, probe, testnet).await?;
    let n = find(&nodes, node, testnet)?;
    let url = n
        .agent_url
        .clone()
        .ok_or_else(|| ChaosError::NoAgent(node.to_owned()))?;
    let report = agent_call(
        n,
        client().post(format!("{url}/process/{}", fault.action())),
    )
    .await?;
    log(&format!("testnet {testnet}: {} {node}", fault.action()));
    Ok(report)
}
