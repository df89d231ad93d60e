//! Faults on a running testnet, through each node's in-container agent: the
//! library API the scenario runner will use, and `testnet chaos`.
//!
//! Network faults are declarative: the desired [`FaultState`] of every node is
//! computed here and sent whole; the agent applies it as one batch and reads it
//! back. Every applied fault is logged with a timestamp.
//!
//! The desired state of every node is also kept on the host (`faults.json` in
//! the testnet's state dir): a container that is killed or restarted comes back
//! with a fresh network namespace and no rules, and gets its faults back from
//! there. A heal restores each node's baseline: the delays of its latency zone.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use testnet_node::agent::{FaultReport, ProcessReport};
pub use testnet_node::faults::Shape;
use testnet_node::faults::{partition, shape, Delay, FaultState};

use crate::engine::{ContainerAction, Engine, EngineError};
use crate::observe::unix_now;
use crate::testnet::{state_dir, status, NodeProbe, NodeSummary, Plan};
use crate::zones::Zones;

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
    #[error("node {0}'s agent did not answer within 30 s of the container's start")]
    NotBack(String),
    #[error("no zone {zone:?} in testnet {testnet:?}; zones are {known}")]
    UnknownZone {
        zone: String,
        testnet: String,
        known: String,
    },
    #[error("applied, but cannot record it in {0}: {1}")]
    Record(std::path::PathBuf, std::io::Error),
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

/// A Jepsen shape as the CLI and scenarios write it: `halves`, `bridge`,
/// `majorities-ring`, `isolate:nK`.
pub fn parse_shape(s: &str) -> Option<Shape> {
    match s {
        "halves" => Some(Shape::Halves),
        "bridge" => Some(Shape::Bridge),
        "majorities-ring" => Some(Shape::MajoritiesRing),
        other => other
            .strip_prefix("isolate:n")
            .and_then(|i| i.parse().ok())
            .map(Shape::Isolate),
    }
}

/// A percentage as per mille, if it is one (0 to 100).
pub fn per_mille(percent: f64) -> Option<u32> {
    (0.0..=100.0)
        .contains(&percent)
        .then(|| (percent * 10.0).round() as u32)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client builds")
}

/// Logs one applied fault with a timestamp (the reports' timeline reads these).
fn log(event: &str) {
    eprintln!("[fault {:.3}] {event}", unix_now());
}

/// One node's desired faults, as last applied.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Desired {
    state: FaultState,
    /// Unix time the agent's lease ends (the agent heals by itself then).
    #[serde(default)]
    lease_until: Option<f64>,
}

fn book_path(testnet: &str) -> std::path::PathBuf {
    state_dir(testnet).join("faults.json")
}

fn load_book(testnet: &str) -> BTreeMap<String, Desired> {
    std::fs::read(book_path(testnet))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_book(testnet: &str, book: &BTreeMap<String, Desired>) {
    let path = book_path(testnet);
    let tmp = path.with_extension("json.tmp");
    let written = std::fs::create_dir_all(state_dir(testnet))
        .and_then(|()| std::fs::write(&tmp, serde_json::to_vec_pretty(book).expect("serializes")))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        // The faults are applied; only a container restart would miss them.
        eprintln!(
            "warning: cannot record the desired faults in {}: {e}",
            path.display()
        );
    }
}

/// Forgets the desired faults of `testnet` (a fresh `up` starts healed).
pub fn forget(testnet: &str) {
    let _ = std::fs::remove_file(book_path(testnet));
}

/// What `node` should carry now: its last applied state while its lease runs,
/// else its baseline.
fn desired(
    testnet: &str,
    node: &NodeSummary,
    nodes: &[NodeSummary],
) -> (FaultState, Option<Duration>) {
    let now = unix_now();
    match load_book(testnet).remove(&node.node) {
        Some(d) if d.lease_until.is_none_or(|t| t > now) => (
            d.state,
            d.lease_until.map(|t| Duration::from_secs_f64(t - now)),
        ),
        _ => (
            baseline(testnet, nodes)
                .remove(&node.node)
                .unwrap_or_default(),
            None,
        ),
    }
}

/// Each node's healed state: the delays of its latency zone, if any.
fn baseline(testnet: &str, nodes: &[NodeSummary]) -> BTreeMap<String, FaultState> {
    let zones = Plan::load(testnet).map(|p| p.zones).unwrap_or_default();
    zones_baseline(&zones, nodes)
}

fn zones_baseline(zones: &Zones, nodes: &[NodeSummary]) -> BTreeMap<String, FaultState> {
    let named: Vec<(String, Ipv4Addr)> = nodes
        .iter()
        .filter_map(|n| n.ip.map(|ip| (n.node.clone(), ip)))
        .collect();
    zones.baseline(&named)
}

/// Puts every node (with an agent) back to its baseline: `zones`' delays only.
async fn apply_zones(
    testnet: &str,
    nodes: &[NodeSummary],
    zones: &Zones,
) -> Result<(), ChaosError> {
    let base = zones_baseline(zones, nodes);
    let states: Vec<(&NodeSummary, FaultState)> = nodes
        .iter()
        .filter(|n| n.agent_url.is_some())
        .map(|n| (n, base.get(&n.node).cloned().unwrap_or_default()))
        .collect();
    apply(testnet, &states, None).await?;
    Ok(())
}

/// Applies the latency zones' baseline (what `up` does for a file with zones).
pub async fn apply_baseline(
    testnet: &str,
    nodes: &[NodeSummary],
    zones: &Zones,
) -> Result<(), ChaosError> {
    apply_zones(testnet, nodes, zones).await?;
    log(&format!("testnet {testnet}: latency zones applied"));
    Ok(())
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
    testnet: &str,
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
    let mut book = load_book(testnet);
    let lease_until = lease.map(|l| unix_now() + l.as_secs_f64());
    for ((node, state), r) in states.iter().zip(&results) {
        if r.is_ok() {
            book.insert(
                node.node.clone(),
                Desired {
                    state: state.clone(),
                    lease_until,
                },
            );
        }
    }
    save_book(testnet, &book);
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
    apply_drops(testnet, &nodes, &partition(&groups_ip, &all), lease).await?;
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
    apply_drops(testnet, &nodes, &shape(kind, &all), lease).await?;
    log(&format!("testnet {testnet}: partition {kind:?}"));
    Ok(())
}

/// Replaces each node's drops with `plan`'s, keeping its other faults.
async fn apply_drops(
    testnet: &str,
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
    apply(testnet, &merged, lease).await?;
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
    /// Per mille of packets sent twice.
    Duplicate(u32),
    ClearDelay,
    ClearLoss,
    ClearDuplicate,
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
            LinkFault::Duplicate(p) => {
                state.duplicate_per_mille.insert(peer_ip, p);
            }
            LinkFault::ClearDuplicate => {
                state.duplicate_per_mille.remove(&peer_ip);
            }
        }
    }
    apply(testnet, &changed, lease).await?;
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
    apply(testnet, &states, lease).await?;
    log(&format!(
        "testnet {testnet}: bandwidth {kbit:?} kbit/s on {}",
        names.join(",")
    ));
    Ok(())
}

/// Removes every network fault of every node (back to the zones' delays, if any).
pub async fn heal<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    testnet: &str,
) -> Result<(), ChaosError> {
    let nodes = nodes(engine, probe, testnet).await?;
    let zones = Plan::load(testnet).map(|p| p.zones).unwrap_or_default();
    apply_zones(testnet, &nodes, &zones).await?;
    log(&format!("testnet {testnet}: healed"));
    Ok(())
}

/// Heals the named nodes only: each goes back to its baseline, and every other
/// node drops its faults towards or from them (partition, loss, delay,
/// duplicate on those links). Other faults stay.
pub async fn heal_nodes<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    testnet: &str,
    names: &[String],
) -> Result<(), ChaosError> {
    let nodes = nodes(engine, probe, testnet).await?;
    let mut ips = Vec::new();
    for name in names {
        ips.extend(find(&nodes, name, testnet)?.ip);
    }
    let base = baseline(testnet, &nodes);
    let mut states = Vec::new();
    for node in nodes.iter().filter(|n| n.agent_url.is_some()) {
        let own = base.get(&node.node).cloned().unwrap_or_default();
        let state = if names.contains(&node.node) {
            own
        } else {
            let mut s = current(node).await?;
            for ip in &ips {
                s.drop_from.remove(ip);
                s.drop_to.remove(ip);
                s.loss_per_mille.remove(ip);
                s.duplicate_per_mille.remove(ip);
                match own.delay_from.get(ip) {
                    Some(d) => s.delay_from.insert(*ip, *d),
                    None => s.delay_from.remove(ip),
                };
            }
            s
        };
        states.push((node, state));
    }
    apply(testnet, &states, None).await?;
    log(&format!("testnet {testnet}: healed {}", names.join(",")));
    Ok(())
}

/// Changes the latency between zones `a` and `b` (one-way: only `a` to `b`)
/// on the running testnet, and records it as the new baseline.
pub async fn zone_latency<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    testnet: &str,
    a: &str,
    b: &str,
    ms: u32,
    one_way: bool,
) -> Result<(), ChaosError> {
    let nodes = nodes(engine, probe, testnet).await?;
    let mut plan = Plan::load(testnet).ok_or_else(|| ChaosError::NoTestnet(testnet.to_owned()))?;
    for z in [a, b] {
        if !plan.zones.zones.contains_key(z) {
            return Err(ChaosError::UnknownZone {
                zone: z.to_owned(),
                testnet: testnet.to_owned(),
                known: plan
                    .zones
                    .zones
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let old = zones_baseline(&plan.zones, &nodes);
    plan.zones.set(a, b, ms, one_way);
    let new = zones_baseline(&plan.zones, &nodes);
    // Only the links whose baseline changed; other faults stay as they are.
    let mut changed = Vec::new();
    for node in &nodes {
        let (Some(before), Some(after)) = (old.get(&node.node), new.get(&node.node)) else {
            continue;
        };
        if before == after {
            continue;
        }
        let mut state = current(node).await?;
        for ip in nodes.iter().filter_map(|n| n.ip) {
            match after.delay_from.get(&ip) {
                Some(d) => state.delay_from.insert(ip, *d),
                None if before.delay_from.contains_key(&ip) => state.delay_from.remove(&ip),
                None => None,
            };
        }
        changed.push((node, state));
    }
    apply(testnet, &changed, None).await?;
    plan.save()
        .map_err(|(path, e)| ChaosError::Record(path, e))?;
    log(&format!(
        "testnet {testnet}: latency {a} -> {b}{} {ms} ms",
        if one_way { "" } else { " and back" }
    ));
    Ok(())
}

/// Applies a fault to a node's whole container: its network namespace goes
/// with a kill or stop, so on start the node's desired faults are applied again
/// (once its agent answers).
pub async fn container<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    testnet: &str,
    node: &str,
    fault: ProcessFault,
) -> Result<String, ChaosError> {
    let nodes = nodes(engine, probe, testnet).await?;
    let name = find(&nodes, node, testnet)?.container.clone();
    let mut did = Vec::new();
    if matches!(fault, ProcessFault::Kill | ProcessFault::Restart) {
        engine
            .container_action(&name, ContainerAction::Kill)
            .await?;
        did.push("killed");
    }
    match fault {
        ProcessFault::Stop => {
            engine
                .container_action(&name, ContainerAction::Stop)
                .await?;
            did.push("stopped");
        }
        ProcessFault::Pause => {
            engine
                .container_action(&name, ContainerAction::Pause)
                .await?;
            did.push("paused");
        }
        ProcessFault::Resume => {
            engine
                .container_action(&name, ContainerAction::Unpause)
                .await?;
            did.push("resumed");
        }
        ProcessFault::Start | ProcessFault::Restart => {
            engine.start_container(&name).await?;
            did.push("started");
            let all = wait_agent(engine, probe, testnet, node).await?;
            let back = find(&all, node, testnet)?;
            let (state, lease) = desired(testnet, back, &all);
            if !state.is_healed() {
                apply(testnet, &[(back, state)], lease).await?;
                did.push("faults re-applied");
            }
        }
        ProcessFault::Kill => {}
    }
    let done = did.join(", ");
    log(&format!("testnet {testnet}: container of {node} {done}"));
    Ok(done)
}

/// Every node, once `node`'s agent answers again after a container start (its
/// published port may have changed).
async fn wait_agent<E: Engine, P: NodeProbe>(
    engine: &E,
    probe: &P,
    testnet: &str,
    node: &str,
) -> Result<Vec<NodeSummary>, ChaosError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = client();
    loop {
        let nodes = nodes(engine, probe, testnet).await?;
        let n = find(&nodes, node, testnet)?;
        if let Some(url) = &n.agent_url {
            if http
                .get(format!("{url}/faults"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(nodes);
            }
        }
        if Instant::now() > deadline {
            return Err(ChaosError::NotBack(node.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
