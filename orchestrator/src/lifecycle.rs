//! Bringing a testnet up and taking it down.
//!
//! `up` plans the testnet (subnet, static IPs, genesis and keys in the state
//! dir), creates every container in parallel, waits for a full mesh, applies
//! the latency zones and starts monitoring; it rolls back everything it created
//! when anything fails, when readiness times out, and when it is cancelled.
//! `down` removes every resource carrying the testnet's label, and is
//! idempotent.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use testnet_node::genesis::{Addressing, GeneratedGenesis, Genesis};
use tokio_util::sync::CancellationToken;

use crate::agent::AgentApi;
use crate::chaos;
use crate::config::TestnetFile;
use crate::engine::{Engine, EngineError, Label, LABEL_ROLE, LABEL_TESTNET};
use crate::plan::{container_name, free_subnet, network_name, node_ip, NodePlan, Plan, P2P_PORT};
use crate::ports::{self, NoPorts};
use crate::state::Owner;
use crate::testnet::{NodeProbe, NodeSummary, Testnet};

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(
        "testnet {0:?} already exists; run `testnet down --name {0}` first, or pass --replace"
    )]
    Exists(String),
    #[error("no free subnet for {0} nodes in 10.77.0.0/16 for the testnet network; remove unused Docker networks (`docker network prune`)")]
    NoSubnet(usize),
    #[error("{nodes} containers with {edges} links need about {need} ARP entries ({in_use} already held by other testnets and the host), but this kernel keeps at most net.ipv4.neigh.default.gc_thresh3 = {limit} (the neighbour table is shared by every network namespace, so nodes would lose peers with \"neighbor table overflow\" in dmesg); raise it: `sudo sysctl -w net.ipv4.neigh.default.gc_thresh1={t1} net.ipv4.neigh.default.gc_thresh2={t2} net.ipv4.neigh.default.gc_thresh3={t3}`, or choose a sparser topology (`topology: {{ random: {{ degree: 4 }} }}`)")]
    NeighbourTable {
        nodes: usize,
        edges: usize,
        need: u64,
        in_use: u64,
        limit: u64,
        t1: u64,
        t2: u64,
        t3: u64,
    },
    #[error("{nodes} nodes need about {need} MiB of memory, but this host has {available} MiB available; ask for fewer nodes or free memory")]
    Memory {
        nodes: usize,
        need: u64,
        available: u64,
    },
    #[error("node {node} exited at start (code {code}); its last log lines:\n{logs}")]
    Crashed {
        node: String,
        code: i64,
        logs: String,
    },
    #[error("not every node was ready within {deadline:?}:\n{report}")]
    NotReady { deadline: Duration, report: String },
    #[error("applying the latency zones failed: {0}")]
    Zones(String),
    #[error("the testnet file has a `node:` section but no node image was prepared for it (a bug of the caller)")]
    NoNodeImage,
    #[error("the testnet's topology is invalid: {0}")]
    Topology(String),
    #[error("node_options.{0}.image: no image {1} here; build one (`testnet image build --protocol-version 2` prints its tag) or give a tag `docker images` lists")]
    NoImage(String, String),
    #[error("interrupted; everything created was removed")]
    Interrupted,
    #[error("cannot write the testnet's files under {0}: {1}")]
    State(PathBuf, std::io::Error),
    #[error(transparent)]
    Ports(#[from] NoPorts),
    #[error(transparent)]
    Genesis(#[from] testnet_node::genesis::GenesisError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

pub struct UpRequest<'a> {
    pub file: &'a TestnetFile,
    /// Our image: every node's, or in holder mode every holder's.
    pub image: &'a str,
    /// The image of a `node:` section, made ready beforehand
    /// ([`crate::image::ensure_foreign`]).
    pub node_image: Option<&'a str>,
    pub readiness: Duration,
    pub replace: bool,
    /// Also run Prometheus (and Grafana) with these images.
    pub monitor: Option<&'a crate::monitor::MonitorImages>,
    /// Applies the latency zones' baseline.
    pub agent: &'a dyn AgentApi,
    /// Recorded in the state dir before anything is created: a testnet whose
    /// owning process dies is stale.
    pub owner: Owner,
}

/// Brings testnet `tn` up and waits until every node has a full mesh. On any
/// error or cancellation, removes everything it created before returning.
pub async fn up<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    req: UpRequest<'_>,
    progress: &(impl Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<Vec<NodeSummary>, UpError> {
    let name = tn.name.as_str();
    let label = Label::testnet(Some(name));
    let existing = !tn.engine.list_containers(label).await?.is_empty()
        || !tn.engine.list_networks(Some(label)).await?.is_empty();
    if existing {
        if !req.replace {
            return Err(UpError::Exists(name.to_owned()));
        }
        progress(&format!("--replace: removing the existing testnet {name}"));
        down(tn.engine, Some(name)).await?;
    }
    // After a replaced testnet is gone: its neighbour entries go with its links.
    check_capacity(&req)?;
    for (node, o) in &req.file.node_options {
        if let Some(image) = &o.image {
            if !tn.engine.image_exists(image).await? {
                return Err(UpError::NoImage(node.clone(), image.clone()));
            }
        }
    }
    match create_and_wait(tn, &req, progress, cancel).await {
        Ok(summary) => Ok(summary),
        // Another `up` of the same name won the race for the network: what exists
        // is theirs, so nothing is rolled back.
        Err(e @ UpError::Exists(_)) => Err(e),
        Err(e) => {
            progress("rolling back: removing what was created...");
            if let Err(cleanup) = down(tn.engine, Some(name)).await {
                progress(&format!("cleanup failed too: {cleanup}"));
            }
            Err(e)
        }
    }
}

/// Refuses a testnet this host cannot hold: its topology, the kernel's
/// neighbour table (with what other testnets hold already), memory.
fn check_capacity(req: &UpRequest<'_>) -> Result<(), UpError> {
    let graph = req
        .file
        .graph()
        .map_err(|p| UpError::Topology(p.join("; ")))?;
    let need = capacity::Need {
        nodes: req.file.nodes,
        edges: graph.edges(),
        monitor: req.monitor.is_some(),
    };
    let in_use = capacity::read_neighbour_entries().unwrap_or(0);
    match capacity::neighbour_table_problem(need, capacity::read_gc_thresh3(), in_use)
        .or_else(|| capacity::memory_problem(need, capacity::read_available_mib()))
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn create_and_wait<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    req: &UpRequest<'_>,
    progress: &(impl Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<Vec<NodeSummary>, UpError> {
    let check_cancel = || match cancel.is_cancelled() {
        true => Err(UpError::Interrupted),
        false => Ok(()),
    };
    let subnet = create_network(tn, req.file.nodes).await?;
    progress(&format!(
        "network {} ({subnet}) created",
        network_name(&tn.name)
    ));
    let held = ports::held(&tn.engine.list_containers(Label::testnet(None)).await?);
    let per_node = per_node_ports(req.file);
    let pins = ports::pick(
        per_node * req.file.nodes,
        &held,
        ports::ephemeral_range(),
        ports::spread(),
        ports::bindable,
    )?;
    let mut plan = plan(tn, req, &subnet, &pins, per_node)?;
    let genesis = write_state(tn, req, &plan)?;
    check_cancel()?;
    if plan.sparse || plan.validators().len() < plan.nodes.len() {
        progress(&format!(
            "topology: {} over {} nodes ({} links), {} validators",
            req.file.topology.describe(),
            plan.nodes.len(),
            plan.edges(),
            plan.validators().len()
        ));
    }
    create::create_all(tn, &mut plan, &genesis, progress, cancel).await?;
    check_cancel()?;
    let ready = ready::wait_ready(tn, &plan, req.readiness, progress, cancel).await?;
    if plan.zones.is_empty() && req.monitor.is_none() {
        // Nothing changed since the nodes said they were ready.
        return Ok(ready);
    }
    if !plan.zones.is_empty() {
        chaos::apply_baseline(tn, req.agent, &plan)
            .await
            .map_err(|e| UpError::Zones(e.to_string()))?;
        let zones: Vec<String> = plan.zones.zones.keys().cloned().collect();
        progress(&format!("latency zones applied ({})", zones.join(", ")));
    }
    if let Some(images) = req.monitor {
        check_cancel()?;
        crate::monitor::start(tn.engine, &plan, images, progress).await?;
    }
    Ok(tn.status().await?)
}

/// Creates the testnet's network on a free subnet sized for `nodes`. Another
/// `up` may take the subnet picked between the look and the create: then look
/// again.
async fn create_network<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    nodes: usize,
) -> Result<String, UpError> {
    let labels = BTreeMap::from([
        (LABEL_TESTNET.to_owned(), tn.name.clone()),
        (LABEL_ROLE.to_owned(), "network".to_owned()),
    ]);
    let mut attempts = 0;
    loop {
        let mut subnets: Vec<String> = tn
            .engine
            .list_networks(None)
            .await?
            .into_iter()
            .filter_map(|n| n.subnet)
            .collect();
        subnets.extend(crate::plan::host_routes());
        let subnet = free_subnet(&subnets, nodes).ok_or(UpError::NoSubnet(nodes))?;
        match tn
            .engine
            .create_network(&network_name(&tn.name), &subnet, labels.clone())
            .await
        {
            Ok(()) => return Ok(subnet),
            Err(EngineError::Api { message, .. })
                if message.contains("overlaps") && attempts < 10 =>
            {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempts)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn plan<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    req: &UpRequest<'_>,
    subnet: &str,
    pins: &[u16],
    per_node: usize,
) -> Result<Plan, UpError> {
    let graph = req
        .file
        .graph()
        .map_err(|p| UpError::Topology(p.join("; ")))?;
    let names = req.file.node_names();
    let placement = req.file.placement();
    let validators = req.file.validator_count();
    let nodes = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut node = NodePlan {
                container: container_name(&tn.name, n),
                ip: node_ip(subnet, i).unwrap_or(Ipv4Addr::UNSPECIFIED),
                bugs: req.file.bugs_of(n),
                disk_mib: req.file.node_options.get(n).and_then(|o| o.disk_mib),
                image: req.file.node_options.get(n).and_then(|o| o.image.clone()),
                http_port: 0,
                agent_port: 0,
                metrics_port: 0,
                validator: i < validators,
                neighbours: Some(
                    graph
                        .neighbours(i)
                        .iter()
                        .map(|j| names[*j].clone())
                        .collect(),
                ),
                host: placement[i].clone(),
                name: n.clone(),
            };
            node.set_pins(&pins[per_node * i..per_node * (i + 1)]);
            node
        })
        .collect();
    Ok(Plan {
        name: tn.name.clone(),
        network: network_name(&tn.name),
        subnet: subnet.to_owned(),
        image: req.image.to_owned(),
        nodes,
        zones: req.file.zones(),
        sparse: !graph.is_mesh(),
        holder: req.file.uses_holder(),
        node_image: match (&req.file.node, req.file.uses_holder()) {
            (Some(_), _) => Some(req.node_image.ok_or(UpError::NoNodeImage)?.to_owned()),
            (None, true) => Some(req.image.to_owned()),
            (None, false) => None,
        },
        node: req.file.node.clone(),
        hosts: req.file.hosts.clone(),
        finality_window: req.file.finality_window,
        checkpoint_every: req.file.checkpoint_every,
    })
}

/// Host ports each node publishes: API, agent, and a foreign node's metrics
/// when they are not on its API port.
fn per_node_ports(file: &TestnetFile) -> usize {
    match &file.node {
        Some(spec) if spec.ports.metrics.is_some() && spec.ports.metrics != spec.ports.api => 3,
        _ => 2,
    }
}

/// Genesis and keys for the plan's IPs, the plan itself, and no desired faults
/// of an earlier testnet of this name. Returns genesis.json's bytes.
fn write_state<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    req: &UpRequest<'_>,
    plan: &Plan,
) -> Result<Vec<u8>, UpError> {
    let ips: Vec<IpAddr> = plan.nodes.iter().map(|n| IpAddr::V4(n.ip)).collect();
    let addressing = Addressing::Ips {
        ips,
        port: P2P_PORT,
    };
    let validators = plan.validators().len();
    let generated: GeneratedGenesis = Genesis::generate_with_full_nodes(
        validators,
        plan.nodes.len() - validators,
        &addressing,
        req.file.seed.as_deref(),
    )?;
    let dir = tn.state.path().to_owned();
    generated
        .write(&dir)
        .map_err(|e| UpError::State(dir.clone(), std::io::Error::other(e.to_string())))?;
    tn.state.forget_faults();
    tn.state
        .save_plan(plan)
        .and_then(|()| tn.state.save_owner(&req.owner))
        .map_err(|e| UpError::State(e.path, e.source))?;
    Ok(serde_json::to_vec_pretty(&generated.genesis).expect("genesis serializes"))
}

/// Removes a network; while the engine still counts endpoints of containers
/// just removed ("has active endpoints", a lag of the daemon after many
/// removals at once), asks again for up to 10 s.
async fn remove_network<E: Engine>(engine: &E, name: &str) -> Result<(), EngineError> {
    let start = Instant::now();
    loop {
        match engine.remove_network(name).await {
            // An overlay's attachments are released a few seconds after
            // their containers go ("in use by task").
            Err(EngineError::Api { message, .. })
                if (message.contains("active endpoints") || message.contains("in use by task"))
                    && start.elapsed() < Duration::from_secs(10) =>
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(EngineError::Api { action, message }) if message.contains("active endpoints") => {
                return Err(EngineError::Api {
                    action,
                    message: format!(
                        "{message} (its containers are gone, but the Docker daemon still counts \
                         their endpoints, a daemon fault after many removals at once; restarting \
                         the daemon clears it, then `testnet down` again)"
                    ),
                })
            }
            r => return r,
        }
    }
}

/// Containers `down` removes at once.
const REMOVE_AT_ONCE: usize = 16;

/// What `down` removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Removed {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

/// Removes every container, network and volume of testnet `name` (or of every
/// testnet), by label, and the testnet's state dir. Idempotent.
pub async fn down<E: Engine>(engine: &E, name: Option<&str>) -> Result<Removed, EngineError> {
    let label = Label::testnet(name);
    let mut removed = Removed::default();
    // Keep going past a failure: remove all that can be, then report the first error.
    let mut first_error = None;
    // Nodes' own containers before the holders whose namespaces they joined.
    let (holders, others): (Vec<_>, Vec<_>) = engine
        .list_containers(label)
        .await?
        .into_iter()
        .partition(|c| c.labels.get(LABEL_ROLE).is_some_and(|r| r == "holder"));
    // A bounded number at a time: hundreds of removals at once can leave the
    // daemon counting endpoints of containers that are gone.
    for containers in [others, holders] {
        use futures::StreamExt;
        let results: Vec<(String, Result<(), EngineError>)> = futures::stream::iter(&containers)
            .map(|c| async move { (c.name.clone(), engine.remove_container(&c.name).await) })
            .buffer_unordered(REMOVE_AT_ONCE)
            .collect()
            .await;
        for (name, r) in results {
            match r {
                Ok(()) => removed.containers.push(name),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    for n in engine.list_networks(Some(label)).await? {
        match remove_network(engine, &n.name).await {
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
        crate::state::StateDir::of(name).remove();
    }
    Ok(removed)
}

mod capacity;
mod create;
mod ready;
#[cfg(test)]
pub mod rig;
#[cfg(test)]
mod tests;
