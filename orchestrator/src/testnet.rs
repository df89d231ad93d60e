//! Bringing a testnet up, reporting on it, and taking it down.
//!
//! Generic over the [`Engine`] and the [`NodeProbe`] (how node HTTP APIs are
//! read), so the logic runs against the fake engine in unit tests and against
//! Docker for real. `up` rolls back everything it created when anything fails,
//! when readiness times out, and when it is cancelled (Ctrl-C); `down` removes
//! every resource carrying the testnet's label, and is idempotent.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use testnet_node::api::Status;
use testnet_node::genesis::{Addressing, GeneratedGenesis, Genesis};
use testnet_node::SimulatedBug;
use tokio_util::sync::CancellationToken;

use crate::config::TestnetFile;
use crate::engine::{
    ContainerSpec, ContainerState, Engine, EngineError, Label, LABEL_NODE, LABEL_ROLE,
    LABEL_TESTNET,
};
use crate::image::tar_of;

pub const P2P_PORT: u16 = 7000;
pub const HTTP_PORT: u16 = 8000;
/// The in-container agent's control API.
pub const AGENT_PORT: u16 = 9000;
/// Where genesis and the node's key are placed in the container.
pub const CONFIG_DIR: &str = "/etc/testnet";

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(
        "testnet {0:?} already exists; run `testnet down --name {0}` first, or pass --replace"
    )]
    Exists(String),
    #[error("no free /24 subnet in 10.77.0.0/16 for the testnet network; remove unused Docker networks (`docker network prune`)")]
    NoSubnet,
    #[error("a full mesh of {nodes} containers needs about {need} ARP entries, but this kernel keeps at most net.ipv4.neigh.default.gc_thresh3 = {limit} (the neighbour table is shared by every network namespace, so nodes would lose peers with \"neighbor table overflow\" in dmesg); raise it: `sudo sysctl -w net.ipv4.neigh.default.gc_thresh1={t1} net.ipv4.neigh.default.gc_thresh2={t2} net.ipv4.neigh.default.gc_thresh3={t3}`")]
    NeighbourTable {
        nodes: usize,
        need: u64,
        limit: u64,
        t1: u64,
        t2: u64,
        t3: u64,
    },
    #[error("node {node} exited at start (code {code}); its last log lines:\n{logs}")]
    Crashed {
        node: String,
        code: i64,
        logs: String,
    },
    #[error("not every node had a full mesh within {deadline:?}:\n{report}")]
    NotReady { deadline: Duration, report: String },
    #[error("applying the latency zones failed: {0}")]
    Zones(String),
    #[error("interrupted; everything created was removed")]
    Interrupted,
    #[error("cannot write the testnet's files under {0}: {1}")]
    State(PathBuf, std::io::Error),
    #[error(transparent)]
    Genesis(#[from] testnet_node::genesis::GenesisError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Reads a node's `/status` (HTTP in real runs, scripted in tests).
pub trait NodeProbe: Send + Sync {
    fn status(&self, url: &str) -> impl Future<Output = Option<Status>> + Send;
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
}

/// One node of a plan.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NodePlan {
    pub name: String,
    pub container: String,
    pub ip: Ipv4Addr,
    pub bugs: Vec<SimulatedBug>,
}

/// What `up` created, saved beside genesis and keys (read by `export compose`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub name: String,
    pub network: String,
    pub subnet: String,
    pub image: String,
    pub nodes: Vec<NodePlan>,
    /// Latency zones, applied as each node's baseline delays (and restored by a heal).
    #[serde(default)]
    pub zones: crate::zones::Zones,
}

impl Plan {
    fn path(testnet: &str) -> PathBuf {
        state_dir(testnet).join("plan.json")
    }

    pub fn load(testnet: &str) -> Option<Plan> {
        let text = std::fs::read_to_string(Self::path(testnet)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the plan where [`Plan::load`] finds it; the error names the file.
    pub fn save(&self) -> Result<(), (PathBuf, std::io::Error)> {
        let path = Self::path(&self.name);
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(self).expect("plan serializes"),
        )
        .map_err(|e| (path, e))
    }
}

pub fn container_name(testnet: &str, node: &str) -> String {
    format!("{testnet}-{node}")
}

pub fn network_name(testnet: &str) -> String {
    format!("testnet-{testnet}")
}

/// Where a testnet's genesis and keys are kept on the host (for `load`, `export`).
pub fn state_dir(testnet: &str) -> PathBuf {
    let base = std::env::var_os("TESTNET_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/testnet")))
        .unwrap_or_else(|| std::env::temp_dir().join("testnet-state"));
    base.join(testnet)
}

fn parse_cidr(s: &str) -> Option<(u32, u32)> {
    let (ip, len) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - len.min(32))
    };
    Some((u32::from(ip) & mask, mask))
}

/// The first 10.77.X.0/24 that overlaps no existing network.
pub fn free_subnet(existing: &[String]) -> Option<(String, [u8; 3])> {
    let taken: Vec<(u32, u32)> = existing.iter().filter_map(|s| parse_cidr(s)).collect();
    (0u8..=255).find_map(|x| {
        let (net, mask) = parse_cidr(&format!("10.77.{x}.0/24"))?;
        let overlaps = taken
            .iter()
            .any(|(t, tm)| (net & tm) == *t || (*t & mask) == net);
        (!overlaps).then(|| (format!("10.77.{x}.0/24"), [10, 77, x]))
    })
}

/// What `up` reports at the end.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeSummary {
    pub node: String,
    pub container: String,
    pub state: String,
    pub ip: Option<Ipv4Addr>,
    pub http_url: Option<String>,
    /// The agent's control API on the host.
    pub agent_url: Option<String>,
    pub peers: Option<usize>,
    pub expected_peers: Option<usize>,
    pub handshake_failures: Option<u64>,
    pub finalized_transactions: Option<u64>,
    pub utxo_digest: Option<String>,
}

pub struct UpRequest<'a> {
    pub name: &'a str,
    pub file: &'a TestnetFile,
    pub image: &'a str,
    pub readiness: Duration,
    pub replace: bool,
    /// Also run Prometheus (and Grafana) with these images.
    pub monitor: Option<&'a crate::monitor::MonitorImages>,
}

/// The host's neighbour (ARP) table limit, where the engine is local.
fn read_gc_thresh3() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A full mesh of `n` containers puts about n * (n + 1) entries in the kernel's
/// neighbour table (each container knows every other and the gateway; the host
/// knows each container), which all network namespaces share. Past
/// `gc_thresh3` the kernel drops entries and the mesh never completes.
pub fn neighbour_table_problem(n: usize, gc_thresh3: Option<u64>) -> Option<UpError> {
    let limit = gc_thresh3?;
    let need = (n as u64) * (n as u64 + 1) + 64;
    (need > limit).then(|| {
        let t3 = (need * 4).next_power_of_two();
        UpError::NeighbourTable {
            nodes: n,
            need,
            limit,
            t1: t3 / 4,
            t2: t3 / 2,
            t3,
        }
    })
}

/// Brings a testnet up and waits until every node has a full mesh. On any error
/// or cancellation, removes everything it created before returning.
pub async fn up<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    req: UpRequest<'_>,
    progress: &(impl Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<Vec<NodeSummary>, UpError> {
    let name = req.name;
    let containers = req.file.nodes + if req.monitor.is_some() { 2 } else { 0 };
    if let Some(e) = neighbour_table_problem(containers, read_gc_thresh3()) {
        return Err(e);
    }
    let label = Label::testnet(Some(name));
    let existing = !engine.list_containers(label).await?.is_empty()
        || !engine.list_networks(Some(label)).await?.is_empty();
    if existing {
        if !req.replace {
            return Err(UpError::Exists(name.to_owned()));
        }
        progress(&format!("--replace: removing the existing testnet {name}"));
        down(engine, Some(name)).await?;
    }
    let result = create_and_wait(engine, probe, &req, progress, cancel).await;
    match result {
        Ok(summary) => Ok(summary),
        // Another `up` of the same name won the race for the network: what exists
        // is theirs, so nothing is rolled back.
        Err(e @ UpError::Exists(_)) => Err(e),
        Err(e) => {
            progress("rolling back: removing what was created...");
            if let Err(cleanup) = down(engine, Some(name)).await {
                progress(&format!("cleanup failed too: {cleanup}"));
            }
            Err(e)
        }
    }
}

async fn create_and_wait<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    req: &UpRequest<'_>,
    progress: &(impl Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<Vec<NodeSummary>, UpError> {
    let name = req.name;
    let check_cancel = || {
        if cancel.is_cancelled() {
            Err(UpError::Interrupted)
        } else {
            Ok(())
        }
    };
    // Another `up` may take the subnet we picked between our look and our create:
    // then look again and take the next free one.
    let network = network_name(name);
    let base_labels = BTreeMap::from([(LABEL_TESTNET.to_owned(), name.to_owned())]);
    let mut net_labels = base_labels.clone();
    net_labels.insert(LABEL_ROLE.into(), "network".into());
    let mut attempts = 0;
    let (subnet, prefix) = loop {
        let subnets: Vec<String> = engine
            .list_networks(None)
            .await?
            .into_iter()
            .filter_map(|n| n.subnet)
            .collect();
        let (subnet, prefix) = free_subnet(&subnets).ok_or(UpError::NoSubnet)?;
        match engine
            .create_network(&network, &subnet, net_labels.clone())
            .await
        {
            Ok(()) => break (subnet, prefix),
            Err(EngineError::Api { message, .. })
                if message.contains("overlaps") && attempts < 10 =>
            {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempts)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    progress(&format!("network {network} ({subnet}) created"));
    let nodes: Vec<NodePlan> = req
        .file
        .node_names()
        .into_iter()
        .enumerate()
        .map(|(i, n)| NodePlan {
            container: container_name(name, &n),
            ip: Ipv4Addr::new(prefix[0], prefix[1], prefix[2], 10 + i as u8),
            bugs: req.file.bugs_of(&n),
            name: n,
        })
        .collect();
    let ips: Vec<IpAddr> = nodes.iter().map(|n| IpAddr::V4(n.ip)).collect();
    let generated: GeneratedGenesis = Genesis::generate(
        nodes.len(),
        &Addressing::Ips {
            ips,
            port: P2P_PORT,
        },
        req.file.seed.as_deref(),
    )?;
    let dir = state_dir(name);
    generated
        .write(&dir)
        .map_err(|e| UpError::State(dir.clone(), std::io::Error::other(e.to_string())))?;
    let plan = Plan {
        name: name.to_owned(),
        network: network.clone(),
        subnet: subnet.clone(),
        image: req.image.to_owned(),
        nodes: nodes.clone(),
        zones: req.file.zones(),
    };
    // A fresh testnet has no faults: forget the desired faults of an earlier one.
    crate::chaos::forget(name);
    plan.save().map_err(|(path, e)| UpError::State(path, e))?;
    check_cancel()?;

    let genesis_json = serde_json::to_vec_pretty(&generated.genesis).expect("genesis serializes");
    let start = Instant::now();
    let create_one = |i: usize| {
        let node = &nodes[i];
        let mut labels = base_labels.clone();
        labels.insert(LABEL_NODE.into(), node.name.clone());
        labels.insert(LABEL_ROLE.into(), "node".into());
        // The agent supervises the node, so process faults keep the namespace.
        let mut cmd: Vec<String> = [
            "agent",
            "--control",
            &format!("0.0.0.0:{AGENT_PORT}"),
            "--",
            "/usr/local/bin/testnet-node",
            "run",
            "--genesis",
            "/etc/testnet/genesis.json",
            "--key",
            "/etc/testnet/node.key",
            "--data-dir",
            "/var/lib/testnet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        cmd.extend(["--listen".into(), format!("0.0.0.0:{P2P_PORT}")]);
        cmd.extend(["--http".into(), format!("0.0.0.0:{HTTP_PORT}")]);
        for b in &node.bugs {
            cmd.extend(["--simulate-bug".into(), b.name().into()]);
        }
        let spec = ContainerSpec {
            name: node.container.clone(),
            image: req.image.to_owned(),
            cmd,
            labels,
            network: network.clone(),
            ip: node.ip,
            publish: vec![HTTP_PORT, AGENT_PORT],
            cap_add: vec!["NET_ADMIN".into()],
            env: Vec::new(),
            aliases: Vec::new(),
        };
        let key = std::fs::read(dir.join(format!("{}.key", node.name))).unwrap_or_default();
        let files = tar_of(&[
            ("genesis.json", &genesis_json, 0o644),
            ("node.key", &key, 0o600),
        ]);
        async move {
            engine.create_container(&spec).await?;
            engine.upload(&spec.name, CONFIG_DIR, files).await?;
            engine.start_container(&spec.name).await?;
            Ok::<(), EngineError>(())
        }
    };
    let created = futures::future::join_all((0..nodes.len()).map(create_one)).await;
    for r in created {
        r?;
    }
    progress(&format!(
        "{} containers created and started in parallel ({:.1}s)",
        nodes.len(),
        start.elapsed().as_secs_f64()
    ));
    check_cancel()?;
    wait_ready(
        engine,
        probe,
        name,
        nodes.len(),
        req.readiness,
        progress,
        cancel,
    )
    .await?;
    if !plan.zones.is_empty() {
        let nodes = status(engine, probe, name).await?;
        crate::chaos::apply_baseline(name, &nodes, &plan.zones)
            .await
            .map_err(|e| UpError::Zones(e.to_string()))?;
        progress(&format!(
            "latency zones applied ({})",
            plan.zones
                .zones
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(images) = req.monitor {
        check_cancel()?;
        crate::monitor::start(
            engine,
            name,
            &network,
            prefix,
            &nodes,
            images,
            &base_labels,
            progress,
        )
        .await?;
    }
    Ok(status(engine, probe, name).await?)
}

/// Waits until every node reports `n - 1` peers. Fails fast when a container exits.
async fn wait_ready<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    name: &str,
    n: usize,
    deadline: Duration,
    progress: &(impl Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<(), UpError> {
    let start = Instant::now();
    let mut last_ready = usize::MAX;
    loop {
        if cancel.is_cancelled() {
            return Err(UpError::Interrupted);
        }
        let summary = status(engine, probe, name).await?;
        for s in &summary {
            if let Some(code) = s.state.strip_prefix("exited ").and_then(|c| c.parse().ok()) {
                let logs = engine.logs(&s.container, 20).await.unwrap_or_default();
                return Err(UpError::Crashed {
                    node: s.node.clone(),
                    code,
                    logs,
                });
            }
        }
        let ready = summary.iter().filter(|s| s.peers == Some(n - 1)).count();
        if ready != last_ready {
            progress(&format!(
                "waiting for a full mesh: {ready}/{n} nodes have {} peers ({:.1}s)",
                n - 1,
                start.elapsed().as_secs_f64()
            ));
            last_ready = ready;
        }
        if ready == n {
            return Ok(());
        }
        if start.elapsed() > deadline {
            let mut report = String::new();
            for s in summary.iter().filter(|s| s.peers != Some(n - 1)) {
                let peers = match s.peers {
                    Some(p) => format!("{p} of {} peers", n - 1),
                    None => "HTTP API not answering".into(),
                };
                let logs = engine.logs(&s.container, 5).await.unwrap_or_default();
                report.push_str(&format!("  {} ({}): {peers}\n", s.node, s.state));
                for line in logs.lines() {
                    report.push_str(&format!("    | {line}\n"));
                }
            }
            return Err(UpError::NotReady { deadline, report });
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(UpError::Interrupted),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Every node of testnet `name` with its container state and, where its API
/// answers, its peers and ledger figures.
pub async fn status<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    name: &str,
) -> Result<Vec<NodeSummary>, EngineError> {
    let containers = engine.list_containers(Label::testnet(Some(name))).await?;
    let mut out = Vec::new();
    for c in containers
        .into_iter()
        .filter(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some("node"))
    {
        let published = |port: u16| {
            c.ports
                .iter()
                .find(|(p, _)| *p == port)
                .map(|(_, h)| format!("http://127.0.0.1:{h}"))
        };
        let url = published(HTTP_PORT);
        let st = match (&url, c.state) {
            (Some(u), ContainerState::Running) => probe.status(u).await,
            _ => None,
        };
        out.push(NodeSummary {
            node: c.labels.get(LABEL_NODE).cloned().unwrap_or_default(),
            container: c.name.clone(),
            state: match c.state {
                ContainerState::Running => "running".into(),
                ContainerState::Created => "created".into(),
                ContainerState::Paused => "paused".into(),
                ContainerState::Exited(code) => format!("exited {code}"),
                ContainerState::Other => "other".into(),
            },
            ip: c.ip,
            http_url: url,
            agent_url: published(AGENT_PORT),
            peers: st.as_ref().map(|s| s.peers),
            expected_peers: st.as_ref().map(|s| s.expected_peers),
            handshake_failures: st.as_ref().map(|s| s.handshake_failures),
            finalized_transactions: st.as_ref().map(|s| s.finalized_transactions),
            utxo_digest: st.map(|s| s.utxo_digest),
        });
    }
    out.sort_by_key(|s| {
        s.node
            .trim_start_matches('n')
            .parse::<u32>()
            .unwrap_or(u32::MAX)
    });
    Ok(out)
}

/// What `down` removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Removed {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

/// Removes every container, network and volume of testnet `name` (or of every
/// testnet), by label. Idempotent.
pub async fn down<E: Engine>(engine: &E, name: Option<&str>) -> Result<Removed, EngineError> {
    let label = Label::testnet(name);
    let mut removed = Removed::default();
    // Keep going past a failure: remove all that can be, then report the first error.
    let mut first_error = None;
    let containers = engine.list_containers(label).await?;
    let removals = containers.iter().map(|c| engine.remove_container(&c.name));
    for (c, r) in containers
        .iter()
        .zip(futures::future::join_all(removals).await)
    {
        match r {
            Ok(()) => removed.containers.push(c.name.clone()),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    for n in engine.list_networks(Some(label)).await? {
        match engine.remove_network(&n.name).await {
            Ok(()) => removed.networks.push(n.name),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    for v in engine.list_volumes(label).await? {
        match engine.remove_volume(&v).await {
            Ok(()) => removed.volumes.push(v),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if let Some(name) = name {
        let _ = std::fs::remove_dir_all(state_dir(name));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests;
