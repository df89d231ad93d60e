//! Upgrades: a node's container replaced with one from another image of
//! ours, keeping what makes it the same node: its data dir (copied out of the
//! stopped node and back in), its IP and host ports (the plan's), its config,
//! and its network faults (re-applied once its agent answers). The plan
//! records the node's image, so later container restarts keep it.

use std::time::{Duration, Instant};

use super::{reconcile, Applied, ChaosError};
use crate::agent::AgentApi;
use crate::engine::Engine;
use crate::fault::{ProcessAction, Undo, UpgradeTo};
use crate::plan::{NodePlan, Plan};
use crate::testnet::{NodeProbe, Testnet};

/// How long a replaced node may take to answer `/status`.
const BACK_WITHIN: Duration = Duration::from_secs(30);

/// Upgrades each of `nodes` to `to`; the undo puts each back on its image.
pub(super) async fn apply<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    nodes: &[String],
    to: &UpgradeTo,
) -> Result<Applied, ChaosError> {
    let plan = tn.plan()?;
    if plan.holder || plan.node.is_some() {
        return Err(ChaosError::Upgrade(
            "replaces our node's own container; a holder-mode or foreign-image testnet has \
             none to replace (give such nodes their image in the testnet file)"
                .into(),
        ));
    }
    let image = match to {
        UpgradeTo::Image(tag) => tag.clone(),
        UpgradeTo::Protocol(p) => {
            crate::image::ensure_protocol_image(tn.engine, &plan.image, *p, &|_| {}).await?
        }
    };
    if !tn.engine.image_exists(&image).await? {
        return Err(ChaosError::Upgrade(format!(
            "no image {image} here; build one (`testnet image build --protocol-version 2` \
             prints its tag) or give a tag `docker images` lists"
        )));
    }
    let mut back = Vec::new();
    let mut said = Vec::new();
    for node in nodes {
        let before = plan
            .nodes
            .iter()
            .find(|n| &n.name == node)
            .and_then(|n| n.image.clone());
        said.push(replace(tn, agent, node, Some(image.clone())).await?);
        back.push((node.clone(), before, image.clone()));
    }
    Ok(Applied {
        undo: Undo::Upgrade(back),
        detail: said.join("; "),
    })
}

/// Puts each node back on its image (`None`: the testnet's), unless a later
/// upgrade changed it since (that one's undo owns it now).
pub(super) async fn back<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    back: &[(String, Option<String>, String)],
) -> Result<(), ChaosError> {
    for (node, image, set) in back {
        let plan = tn.plan()?;
        let now = plan
            .nodes
            .iter()
            .find(|n| &n.name == node)
            .and_then(|n| n.image.clone());
        if now.as_ref() == Some(set) {
            replace(tn, agent, node, image.clone()).await?;
        }
    }
    Ok(())
}

/// Stops `node` (so its data is all on disk), copies its data dir out,
/// replaces its container from `image`, re-applies its faults, and waits
/// for it to answer; says what runs now.
async fn replace<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    node: &str,
    image: Option<String>,
) -> Result<String, ChaosError> {
    let mut plan = tn.plan()?;
    let all = tn.endpoints().await?;
    let n = tn.find(&all, node)?;
    let Some(np) = plan.nodes.iter_mut().find(|p| p.name == node) else {
        return Err(ChaosError::Upgrade(format!("{node} is not in the plan")));
    };
    if np.disk_mib.is_some() {
        return Err(ChaosError::Upgrade(format!(
            "{node}'s data dir is a tmpfs (disk_mib): it goes with the container and cannot be \
             carried over"
        )));
    }
    // A stopped node has fsynced all it acknowledged; a node already down is fine too.
    let _ = agent.process(n, ProcessAction::Stop).await;
    let data = tn
        .engine
        .download(&n.container, crate::plan::DATA_DIR)
        .await?;
    let previous = std::mem::replace(&mut np.image, image);
    let np = np.clone();
    tn.state.save_plan(&plan)?;
    if let Err(e) = replace_node(tn, &plan, &np, data.clone()).await {
        // Never left without a container: back on the image it ran, with its data.
        let mut old = np.clone();
        old.image = previous;
        if let Some(p) = plan.nodes.iter_mut().find(|p| p.name == node) {
            *p = old.clone();
        }
        tn.state.save_plan(&plan)?;
        let rolled = match replace_node(tn, &plan, &old, data).await {
            Ok(()) => "it runs its previous image again".to_owned(),
            Err(again) => format!("going back failed too: {again}"),
        };
        return Err(ChaosError::Upgrade(format!("{node}: {e}; {rolled}")));
    }
    reconcile(tn, agent, node).await?;
    let runs = np.image.as_deref().unwrap_or(&plan.image).to_owned();
    let protocol = answered(tn, node).await?;
    Ok(format!(
        "{node}: container replaced, runs {runs}, speaks protocol {protocol} in place (read back)"
    ))
}

/// Waits for `node` to answer `/status` again; its protocol version.
async fn answered<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    node: &str,
) -> Result<String, ChaosError> {
    let deadline = Instant::now() + BACK_WITHIN;
    loop {
        let all = tn.endpoints().await?;
        let n = tn.find(&all, node)?;
        if let Some(url) = &n.http_url {
            if let Some(s) = tn.probe.status(url).await {
                return Ok(s.protocol_version.map_or("?".into(), |v| v.to_string()));
            }
        }
        if Instant::now() > deadline {
            return Err(ChaosError::Upgrade(format!(
                "{node} did not answer /status within {BACK_WITHIN:?} of its new container's \
                 start (see `testnet logs {node}`)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Replaces `node`'s container (our node, direct mode) with one from its
/// plan (its image may have changed), with the same IP and host ports, its
/// config and the data dir `data` (a tar of it, as the engine copied it out
/// of the old container) put back before it starts.
async fn replace_node<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    plan: &Plan,
    node: &NodePlan,
    data: Vec<u8>,
) -> Result<(), ChaosError> {
    let genesis = std::fs::read(tn.state.genesis())
        .map_err(|e| ChaosError::Upgrade(format!("{}: {e}", tn.state.genesis().display())))?;
    let key = std::fs::read(tn.state.node_key(&node.name)).unwrap_or_default();
    let files =
        crate::image::tar_of(&[("genesis.json", &genesis, 0o644), ("node.key", &key, 0o600)]);
    tn.engine.remove_container(&node.container).await?;
    let spec = crate::spec::agent_spec(&tn.name, plan, node);
    tn.engine.create_container(&spec).await?;
    tn.engine
        .upload(&spec.name, crate::plan::CONFIG_DIR, files)
        .await?;
    let parent = std::path::Path::new(crate::plan::DATA_DIR)
        .parent()
        .and_then(|p| p.to_str())
        .unwrap_or("/");
    tn.engine.upload(&spec.name, parent, data).await?;
    tn.engine.start_container(&spec.name).await?;
    Ok(())
}
