//! Creating the nodes' containers: each node's own (the agent supervising
//! our node), or in holder mode a holder container of ours (the agent, the
//! IP, the published ports) plus the node's own container joined to the
//! holder's network and PID namespaces, running our node or any image.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::UpError;
use crate::engine::{
    ContainerSpec, Engine, EngineError, Label, LABEL_API, LABEL_HOLDER, LABEL_METRICS, LABEL_NODE,
    LABEL_P2P, LABEL_PORTS, LABEL_ROLE, LABEL_TESTNET,
};
use crate::image::tar_of;
use crate::plan::{NodePlan, Plan, AGENT_PORT, CONFIG_DIR};
use crate::ports;
use crate::testnet::{NodeProbe, Testnet};

/// Containers created at once: enough to keep the engine busy, few enough
/// that hundreds of nodes do not queue hundreds of requests on it.
const CREATE_AT_ONCE: usize = 16;

/// Creates and starts every node's container, a bounded number at a time,
/// saying how far it got; saves the plan again when a node had to take other
/// host ports.
pub(super) async fn create_all<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    plan: &mut Plan,
    genesis: &[u8],
    progress: &(impl Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<(), UpError> {
    use futures::StreamExt;
    let start = Instant::now();
    let total = plan.nodes.len();
    let snapshot = plan.clone();
    let snapshot = &snapshot;
    // Highest address first: by the direction rule the lower end of a link
    // dials, so each node finds its dial targets listening when it starts
    // instead of backing off from refused dials while later ones come up.
    let mut created = futures::stream::iter(snapshot.nodes.iter().enumerate().rev())
        .map(|(i, node)| async move { (i, create_node(tn, snapshot, node, genesis).await) })
        .buffer_unordered(CREATE_AT_ONCE);
    let (mut done, mut repinned, mut said) = (0, false, Instant::now());
    while let Some((i, r)) = created.next().await {
        let node = r?;
        repinned |= node != plan.nodes[i];
        plan.nodes[i] = node;
        done += 1;
        if cancel.is_cancelled() {
            return Err(UpError::Interrupted);
        }
        if total >= 32 && done < total && said.elapsed() >= Duration::from_secs(2) {
            progress(&format!(
                "{done}/{total} containers started ({:.1}s)",
                start.elapsed().as_secs_f64()
            ));
            said = Instant::now();
        }
    }
    if repinned {
        tn.state
            .save_plan(plan)
            .map_err(|e| UpError::State(e.path, e.source))?;
    }
    progress(&format!(
        "{total} containers created and started, {CREATE_AT_ONCE} at a time ({:.1}s)",
        start.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The agent is the container's main process and supervises the node, so
/// process faults keep the network namespace; in holder mode it holds the
/// namespaces and runs no node. In a sparse topology the node is handed its
/// neighbours.
fn agent_command(plan: &Plan, node: &NodePlan) -> Vec<String> {
    let mut cmd: Vec<String> = vec![
        "agent".into(),
        "--control".into(),
        format!("0.0.0.0:{AGENT_PORT}"),
    ];
    if plan.node.is_none() {
        // Our node's live seams (clock, misbehaviour, storage), on the
        // loopback of the shared namespace, and its data dir (disk faults).
        cmd.extend([
            "--node-api".into(),
            format!("http://127.0.0.1:{}", crate::plan::HTTP_PORT),
            "--data-dir".into(),
            crate::plan::DATA_DIR.into(),
        ]);
    }
    if plan.holder {
        cmd.push("--holder".into());
    } else {
        cmd.extend(["--".into(), "/usr/local/bin/testnet-node".into()]);
        cmd.extend(plan.node_args(node));
    }
    cmd
}

/// Creates and starts `node`'s container(s) with its pinned ports; when
/// another process took one of them since the pick, picks again (a few times)
/// and returns the node with its new pins.
async fn create_node<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    plan: &Plan,
    node: &NodePlan,
    genesis: &[u8],
) -> Result<NodePlan, UpError> {
    let mut node = node.clone();
    let key = std::fs::read(tn.state.node_key(&node.name)).unwrap_or_default();
    let files = tar_of(&[("genesis.json", genesis, 0o644), ("node.key", &key, 0o600)]);
    let mut attempts = 0;
    loop {
        let spec = agent_spec(&tn.name, plan, &node);
        tn.engine.create_container(&spec).await?;
        if !plan.holder {
            tn.engine
                .upload(&spec.name, CONFIG_DIR, files.clone())
                .await?;
        }
        match tn.engine.start_container(&spec.name).await {
            Ok(()) => break,
            Err(EngineError::PortTaken(_)) if attempts < 5 => {
                attempts += 1;
                tn.engine.remove_container(&spec.name).await?;
                let held = ports::held(&tn.engine.list_containers(Label::testnet(None)).await?);
                let count = plan.published_ports().len();
                let pins = ports::pick(
                    count,
                    &held,
                    ports::ephemeral_range(),
                    ports::spread(),
                    ports::bindable,
                )?;
                node.set_pins(&pins);
            }
            Err(e) => return Err(e.into()),
        }
    }
    if plan.holder {
        let spec = process_spec(&tn.name, plan, &node)?;
        tn.engine.create_container(&spec).await?;
        if plan.node.is_none() {
            tn.engine.upload(&spec.name, CONFIG_DIR, files).await?;
        }
        tn.engine.start_container(&spec.name).await?;
    }
    Ok(node)
}

/// Replaces `node`'s container (our node, direct mode) with one from its
/// plan (its image may have changed), with the same IP and host ports, its
/// config and the data dir `data` (a tar of it, as the engine copied it out
/// of the old container) put back before it starts.
pub(crate) async fn replace_node<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    plan: &Plan,
    node: &NodePlan,
    data: Vec<u8>,
) -> Result<(), UpError> {
    let genesis =
        std::fs::read(tn.state.genesis()).map_err(|e| UpError::State(tn.state.genesis(), e))?;
    let key = std::fs::read(tn.state.node_key(&node.name)).unwrap_or_default();
    let files = tar_of(&[("genesis.json", &genesis, 0o644), ("node.key", &key, 0o600)]);
    tn.engine.remove_container(&node.container).await?;
    let spec = agent_spec(&tn.name, plan, node);
    tn.engine.create_container(&spec).await?;
    tn.engine.upload(&spec.name, CONFIG_DIR, files).await?;
    let parent = std::path::Path::new(crate::plan::DATA_DIR)
        .parent()
        .and_then(|p| p.to_str())
        .unwrap_or("/");
    tn.engine.upload(&spec.name, parent, data).await?;
    tn.engine.start_container(&spec.name).await?;
    Ok(())
}

fn labels(testnet: &str, plan: &Plan, node: &NodePlan, role: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (LABEL_TESTNET.to_owned(), testnet.to_owned()),
        (LABEL_NODE.to_owned(), node.name.clone()),
        (LABEL_ROLE.to_owned(), role.to_owned()),
        (LABEL_PORTS.to_owned(), ports::label(&plan.pins_of(node))),
    ]);
    if plan.node.is_some() {
        let api = plan.api_port().map_or("none".into(), |p| p.to_string());
        let metrics = plan
            .metrics_at()
            .map_or("none".into(), |(port, path)| format!("{port}{path}"));
        labels.insert(LABEL_API.to_owned(), api);
        labels.insert(LABEL_METRICS.to_owned(), metrics);
        labels.insert(LABEL_P2P.to_owned(), plan.p2p_port().to_string());
    }
    labels
}

/// The container that owns the node's IP and runs the agent: the node's own
/// (role `node`), or in holder mode its holder (role `holder`).
fn agent_spec(testnet: &str, plan: &Plan, node: &NodePlan) -> ContainerSpec {
    let (name, role) = match plan.holder {
        true => (node.holder(), "holder"),
        false => (node.container.clone(), "node"),
    };
    ContainerSpec {
        name,
        image: match plan.holder {
            true => plan.image.clone(),
            false => node.image.clone().unwrap_or_else(|| plan.image.clone()),
        },
        cmd: agent_command(plan, node),
        labels: labels(testnet, plan, node, role),
        network: plan.network.clone(),
        ip: node.ip,
        publish: plan.pins_of(node),
        cap_add: vec!["NET_ADMIN".into()],
        env: Vec::new(),
        aliases: Vec::new(),
        join: None,
        tmpfs: match (plan.holder, node.disk_mib) {
            (false, Some(mib)) => vec![(crate::plan::DATA_DIR.into(), format!("size={mib}m"))],
            _ => Vec::new(),
        },
    }
}

/// Holder mode: the node's own container, in its holder's namespaces.
fn process_spec(testnet: &str, plan: &Plan, node: &NodePlan) -> Result<ContainerSpec, UpError> {
    let (cmd, env) = plan
        .process_command(node)
        .map_err(|e| UpError::Topology(format!("node.command of {}: {e}", node.name)))?;
    let mut labels = labels(testnet, plan, node, "node");
    labels.insert(LABEL_HOLDER.to_owned(), node.holder());
    Ok(ContainerSpec {
        name: node.container.clone(),
        image: node
            .image
            .clone()
            .or_else(|| plan.node_image.clone())
            .unwrap_or_else(|| plan.image.clone()),
        cmd,
        labels,
        network: plan.network.clone(),
        ip: node.ip,
        publish: Vec::new(),
        cap_add: Vec::new(),
        env,
        aliases: Vec::new(),
        join: Some(node.holder()),
        tmpfs: Vec::new(),
    })
}
