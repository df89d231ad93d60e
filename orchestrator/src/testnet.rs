//! A testnet as a handle: its name, its state dir on the host, the engine it
//! runs on and how its nodes' HTTP APIs are read. `up` fills it; chaos, run, check and monitoring take it. Generic over the
//! [`Engine`] and the [`NodeProbe`], so the logic runs against the fake engine
//! in unit tests and against Docker for real.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::time::Duration;

use testnet_node::api::Status;

use crate::engine::{
    ContainerInfo, ContainerState, Engine, EngineError, Label, LABEL_API, LABEL_HOLDER, LABEL_HOST,
    LABEL_METRICS, LABEL_NODE, LABEL_P2P, LABEL_PORTS, LABEL_ROLE,
};
use crate::plan::{Plan, AGENT_PORT, HTTP_PORT};
use crate::state::StateDir;

#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    #[error("no testnet named {0:?} is running (`testnet up --name {0}`)")]
    NotRunning(String),
    #[error("no record of testnet {0:?} on this host (bring it up with `testnet up --name {0}`)")]
    NoPlan(String),
    #[error("no node {node:?} in testnet {testnet:?}; nodes are {known}")]
    UnknownNode {
        node: String,
        testnet: String,
        known: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Reads a node's `/status` (HTTP in real runs, scripted in tests).
pub trait NodeProbe: Send + Sync {
    fn status(&self, url: &str) -> impl Future<Output = Option<Status>> + Send;
    /// Any URL of a node or its agent: the status code and body, `None` when
    /// nothing answered (a foreign node's readiness).
    fn get(&self, url: &str) -> impl Future<Output = Option<(u16, String)>> + Send;
}

/// The HTTP probe.
#[derive(Clone)]
pub struct HttpProbe {
    client: reqwest::Client,
}

impl Default for HttpProbe {
    fn default() -> Self {
        HttpProbe {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("HTTP client builds"),
        }
    }
}

impl NodeProbe for HttpProbe {
    async fn status(&self, url: &str) -> Option<Status> {
        self.client
            .get(format!("{url}/status"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    async fn get(&self, url: &str) -> Option<(u16, String)> {
        let r = self.client.get(url).send().await.ok()?;
        let code = r.status().as_u16();
        Some((code, r.text().await.ok()?))
    }
}

/// Nodes asked for their `/status` at once.
const STATUS_AT_ONCE: usize = 32;

/// One node as the engine and its API show it now.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeSummary {
    pub node: String,
    pub container: String,
    /// The host of `hosts:` it runs on (multi-host testnets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub state: String,
    pub ip: Option<Ipv4Addr>,
    pub http_url: Option<String>,
    /// The agent's control API on the host.
    pub agent_url: Option<String>,
    /// The node's metrics on the host (URL with path), where it serves any.
    pub metrics_url: Option<String>,
    /// Holder mode: the container holding the node's namespaces (and the agent).
    pub holder: Option<String>,
    /// A foreign node's p2p port: its peers are read from its agent's view
    /// of the TCP connections on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p2p_port: Option<u16>,
    pub peers: Option<usize>,
    pub expected_peers: Option<usize>,
    /// Whether the node votes (from its API).
    pub validator: Option<bool>,
    pub handshake_failures: Option<u64>,
    pub finalized_transactions: Option<u64>,
    pub utxo_digest: Option<String>,
}

/// A testnet: name, state dir, engine, probe.
pub struct Testnet<'a, E: Engine, P: NodeProbe> {
    pub name: String,
    pub state: StateDir,
    pub engine: &'a E,
    pub probe: &'a P,
}

impl<'a, E: Engine, P: NodeProbe> Testnet<'a, E, P> {
    pub fn new(name: &str, engine: &'a E, probe: &'a P) -> Self {
        Testnet {
            name: name.to_owned(),
            state: StateDir::of(name),
            engine,
            probe,
        }
    }

    /// The plan `up` saved on this host.
    pub fn plan(&self) -> Result<Plan, TestnetError> {
        self.state
            .plan()
            .ok_or_else(|| TestnetError::NoPlan(self.name.clone()))
    }

    /// Every node with its container state and, where its API answers, its
    /// peers and ledger figures (empty when nothing of the testnet runs).
    pub async fn status(&self) -> Result<Vec<NodeSummary>, EngineError> {
        use futures::StreamExt;
        let mut nodes = self.containers().await?;
        // Asked concurrently, a bounded number at a time (hundreds of nodes).
        let statuses: Vec<Option<Status>> = futures::stream::iter(&nodes)
            .map(|n| async move {
                match (&n.http_url, n.state.as_str()) {
                    (Some(u), "running") => self.probe.status(u).await,
                    _ => None,
                }
            })
            .buffered(STATUS_AT_ONCE)
            .collect()
            .await;
        if nodes.iter().any(|n| n.p2p_port.is_some()) {
            // Foreign nodes: peers from their holders' agents, the expected
            // count from the plan (read only for them: it is a file).
            let foreign = self.foreign_peers(&nodes).await;
            let plan = self.plan().ok();
            for (n, peers) in nodes.iter_mut().zip(foreign) {
                if n.p2p_port.is_some() {
                    n.peers = peers;
                    n.expected_peers = plan.as_ref().map(|p| p.neighbours_of(&n.node).len());
                }
            }
        }
        for (n, st) in nodes
            .iter_mut()
            .zip(statuses)
            .filter(|(n, _)| n.p2p_port.is_none())
        {
            n.peers = st.as_ref().map(|s| s.peers);
            n.expected_peers = st.as_ref().map(|s| s.expected_peers);
            n.validator = st.as_ref().map(|s| s.validator);
            n.handshake_failures = st.as_ref().map(|s| s.handshake_failures);
            n.finalized_transactions = st.as_ref().map(|s| s.finalized_transactions);
            n.utxo_digest = st.map(|s| s.utxo_digest);
        }
        Ok(nodes)
    }

    /// A foreign node's peers: the other nodes it has an established TCP
    /// connection with on its p2p port, as its holder's agent sees them.
    async fn foreign_peers(&self, nodes: &[NodeSummary]) -> Vec<Option<usize>> {
        use futures::StreamExt;
        let ips: Vec<Ipv4Addr> = nodes.iter().filter_map(|n| n.ip).collect();
        futures::stream::iter(nodes)
            .map(|n| {
                let ips = &ips;
                async move {
                    let (port, url) = (n.p2p_port?, n.agent_url.as_ref()?);
                    let (_, body) = self.probe.get(&format!("{url}/connections")).await?;
                    let c: testnet_node::api::agent::Connections =
                        serde_json::from_str(&body).ok()?;
                    let peers = c.peers_on(port);
                    Some(
                        peers
                            .iter()
                            .filter(|ip| ips.contains(ip) && Some(**ip) != n.ip)
                            .count(),
                    )
                }
            })
            .buffered(STATUS_AT_ONCE)
            .collect()
            .await
    }

    /// Every node's container and published URLs, without asking the nodes;
    /// fails when nothing of the testnet runs.
    pub async fn endpoints(&self) -> Result<Vec<NodeSummary>, TestnetError> {
        let nodes = self.containers().await?;
        if nodes.is_empty() {
            return Err(TestnetError::NotRunning(self.name.clone()));
        }
        Ok(nodes)
    }

    async fn containers(&self) -> Result<Vec<NodeSummary>, EngineError> {
        let containers = self
            .engine
            .list_containers(Label::testnet(Some(&self.name)))
            .await?;
        let role = |c: &ContainerInfo| c.labels.get(LABEL_ROLE).cloned().unwrap_or_default();
        let holders: BTreeMap<&str, &ContainerInfo> = containers
            .iter()
            .filter(|c| role(c) == "holder")
            .map(|c| (c.name.as_str(), c))
            .collect();
        let mut out: Vec<NodeSummary> = containers
            .iter()
            .filter(|c| role(c) == "node")
            .map(|c| {
                let holder = c
                    .labels
                    .get(LABEL_HOLDER)
                    .map(|h| (h.clone(), holders.get(h.as_str()).copied()));
                summarize(c, holder)
            })
            .collect();
        out.sort_by_key(|s| {
            s.node
                .trim_start_matches('n')
                .parse::<u32>()
                .unwrap_or(u32::MAX)
        });
        Ok(out)
    }

    /// [`Testnet::status`], failing when nothing of the testnet runs.
    pub async fn nodes(&self) -> Result<Vec<NodeSummary>, TestnetError> {
        let nodes = self.status().await?;
        if nodes.is_empty() {
            return Err(TestnetError::NotRunning(self.name.clone()));
        }
        Ok(nodes)
    }

    /// `name` among `nodes`, or an error listing the known ones.
    pub fn find<'n>(
        &self,
        nodes: &'n [NodeSummary],
        name: &str,
    ) -> Result<&'n NodeSummary, TestnetError> {
        nodes
            .iter()
            .find(|n| n.node == name)
            .ok_or_else(|| TestnetError::UnknownNode {
                node: name.to_owned(),
                testnet: self.name.clone(),
                known: nodes
                    .iter()
                    .map(|n| n.node.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// A node container as a summary; in holder mode its IP comes from its
/// holder, and a holder that is not running makes the node unreachable.
fn summarize(c: &ContainerInfo, holder: Option<(String, Option<&ContainerInfo>)>) -> NodeSummary {
    // Pinned ports hold while the container is down; others only while it runs.
    let pinned = c
        .labels
        .get(LABEL_PORTS)
        .map(|v| crate::ports::parse_label(v))
        .unwrap_or_default();
    let published = |port: u16| {
        pinned
            .iter()
            .chain(&c.ports)
            .find(|(p, h)| *p == port && *h != 0)
            .map(|(_, h)| format!("http://{}:{h}", c.published_on))
    };
    // A foreign node says where its API and metrics are; ours: HTTP_PORT.
    let api: Option<u16> = match c.labels.get(LABEL_API) {
        Some(v) => v.parse().ok(),
        None => Some(HTTP_PORT),
    };
    let metrics: Option<(u16, String)> = match c.labels.get(LABEL_METRICS) {
        Some(v) => v
            .split_once('/')
            .and_then(|(p, path)| Some((p.parse().ok()?, format!("/{path}")))),
        None => Some((HTTP_PORT, "/metrics".into())),
    };
    let mut state = state_name(c.state);
    let mut ip = c.ip;
    if let Some((name, h)) = &holder {
        ip = h.and_then(|h| h.ip);
        match h.map(|h| h.state) {
            Some(ContainerState::Running) => {}
            Some(other) => state = format!("holder {}", state_name(other)),
            None => state = format!("holder {name} missing"),
        }
    }
    NodeSummary {
        node: c.labels.get(LABEL_NODE).cloned().unwrap_or_default(),
        container: c.name.clone(),
        host: c.labels.get(LABEL_HOST).cloned(),
        state,
        ip,
        http_url: api.and_then(published),
        agent_url: published(AGENT_PORT),
        metrics_url: metrics.and_then(|(port, path)| Some(format!("{}{path}", published(port)?))),
        holder: holder.map(|(name, _)| name),
        p2p_port: c.labels.get(LABEL_P2P).and_then(|p| p.parse().ok()),
        peers: None,
        expected_peers: None,
        validator: None,
        handshake_failures: None,
        finalized_transactions: None,
        utxo_digest: None,
    }
}

fn state_name(state: ContainerState) -> String {
    match state {
        ContainerState::Running => "running".into(),
        ContainerState::Created => "created".into(),
        ContainerState::Paused => "paused".into(),
        ContainerState::Exited(code) => format!("exited {code}"),
        ContainerState::Other => "other".into(),
    }
}
