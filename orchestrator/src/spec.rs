//! The container specs of a node, from the plan: the container that owns its
//! IP and runs the agent (our node's own, or its holder), and in holder mode
//! the node's own container joined to the holder. Creating them is
//! `lifecycle`'s; replacing one (an upgrade) is `chaos`'s.

use std::collections::BTreeMap;

use crate::engine::{
    ContainerSpec, LABEL_API, LABEL_HOLDER, LABEL_HOST, LABEL_METRICS, LABEL_NODE, LABEL_P2P,
    LABEL_PORTS, LABEL_ROLE, LABEL_TESTNET,
};
use crate::plan::{NodePlan, Plan, AGENT_PORT};
use crate::ports;

/// The agent is the container's main process and supervises the node, so
/// process faults keep the network namespace; in holder mode it holds the
/// namespaces and runs no node. In a sparse topology the node is handed its
/// neighbours.
pub(crate) fn agent_command(plan: &Plan, node: &NodePlan) -> Vec<String> {
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
        if plan.node.as_ref().is_some_and(|n| n.faketime) {
            cmd.push("--faketime".into());
        }
    } else {
        cmd.extend(["--".into(), "/usr/local/bin/testnet-node".into()]);
        cmd.extend(plan.node_args(node));
    }
    cmd
}

fn labels(testnet: &str, plan: &Plan, node: &NodePlan, role: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (LABEL_TESTNET.to_owned(), testnet.to_owned()),
        (LABEL_NODE.to_owned(), node.name.clone()),
        (LABEL_ROLE.to_owned(), role.to_owned()),
        (LABEL_PORTS.to_owned(), ports::label(&plan.pins_of(node))),
    ]);
    if let Some(host) = &node.host {
        labels.insert(LABEL_HOST.to_owned(), host.clone());
    }
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
pub(crate) fn agent_spec(testnet: &str, plan: &Plan, node: &NodePlan) -> ContainerSpec {
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
        volumes: data_volume(plan, node),
    }
}

/// Our node's data dir (direct mode, no tmpfs) on an anonymous volume: its
/// log's appends and fsyncs then go straight to the engine's disk, not
/// through the storage driver (fuse-overlayfs, where the engine uses it,
/// took a tenth of the machine at 1,000 tx/s). It lives as long as the
/// container, restarts included; an upgrade copies it as before.
fn data_volume(plan: &Plan, node: &NodePlan) -> Vec<String> {
    match (plan.holder, plan.node.is_none(), node.disk_mib) {
        (false, true, None) => vec![crate::plan::DATA_DIR.into()],
        _ => Vec::new(),
    }
}

/// Holder mode: the node's own container, in its holder's namespaces.
pub(crate) fn process_spec(
    testnet: &str,
    plan: &Plan,
    node: &NodePlan,
) -> Result<ContainerSpec, String> {
    let (cmd, env) = plan
        .process_command(node)
        .map_err(|e| format!("node.command of {}: {e}", node.name))?;
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
        volumes: Vec::new(),
    })
}
