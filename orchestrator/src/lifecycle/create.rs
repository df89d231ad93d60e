//! Creating the nodes' containers: each node's own (the agent supervising
//! our node), or in holder mode a holder container of ours (the agent, the
//! IP, the published ports) plus the node's own container joined to the
//! holder's network and PID namespaces, running our node or any image.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::UpError;
use crate::engine::{Engine, EngineError, Label};
use crate::image::tar_of;
use crate::plan::{NodePlan, Plan, CONFIG_DIR};
use crate::ports;
use crate::spec::{agent_spec, process_spec};
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
    // libfaketime's archive, taken once from the first holder that has it.
    let faketime = tokio::sync::OnceCell::new();
    let faketime = &faketime;
    let mut created =
        futures::stream::iter(snapshot.nodes.iter().enumerate().rev())
            .map(|(i, node)| async move {
                (i, create_node(tn, snapshot, node, genesis, faketime).await)
            })
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

/// Creates and starts `node`'s container(s) with its pinned ports; when
/// another process took one of them since the pick, picks again (a few times)
/// and returns the node with its new pins.
async fn create_node<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    plan: &Plan,
    node: &NodePlan,
    genesis: &[u8],
    faketime: &tokio::sync::OnceCell<Vec<u8>>,
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
        let spec = process_spec(&tn.name, plan, &node).map_err(UpError::Topology)?;
        tn.engine.create_container(&spec).await?;
        if plan.node.is_none() {
            tn.engine.upload(&spec.name, CONFIG_DIR, files).await?;
        }
        if plan.node.as_ref().is_some_and(|n| n.faketime) {
            let lib = faketime
                .get_or_try_init(|| {
                    let holder = node.holder();
                    async move {
                        use testnet_node::agent::faketime::IMAGE_LIB;
                        tn.engine.download(&holder, IMAGE_LIB).await
                    }
                })
                .await?;
            give_faketime(tn, lib, &spec.name).await?;
        }
        tn.engine.start_container(&spec.name).await?;
    }
    Ok(node)
}

/// Puts libfaketime (`lib`: its archive, from a holder of our image) into the
/// node's created container, with a spec file of real time, before the node
/// starts: its environment preloads them (`node.faketime`).
async fn give_faketime<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    lib: &[u8],
    container: &str,
) -> Result<(), UpError> {
    use testnet_node::agent::faketime::{DIR, REAL_TIME, SPEC};
    let spec = format!("{}/{SPEC}", DIR.trim_start_matches('/'));
    let files = tar_of(&[(spec.as_str(), REAL_TIME.as_bytes(), 0o644)]);
    tn.engine.upload(container, "/", files).await?;
    tn.engine.upload(container, DIR, lib.to_vec()).await?;
    Ok(())
}
