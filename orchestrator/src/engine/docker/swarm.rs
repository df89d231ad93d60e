//! What a multi-host testnet asks of one daemon beyond [`Engine`]: its place
//! in a Swarm, a Swarm-scoped overlay, images copied between daemons, and
//! which daemon holds a container.
//!
//! [`Engine`]: crate::engine::Engine

use std::collections::BTreeMap;

use bollard::errors::Error as BollardError;
use bollard::models::{LocalNodeState, NodeState};
use bollard::query_parameters::ImportImageOptionsBuilder;
use futures::StreamExt;

use super::{api, DockerEngine};
use crate::engine::EngineError;

/// A daemon's place in a Swarm, as its `/info` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmMember {
    /// Its node ID in the Swarm (empty outside one).
    pub node_id: String,
    /// `active`, `inactive`, `pending`, `error`, `locked`.
    pub state: String,
    /// A manager: it can create Swarm-scoped networks and list the nodes.
    pub manager: bool,
    /// The address it advertises to the Swarm.
    pub addr: String,
    pub error: Option<String>,
}

/// A node of the Swarm as a manager lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmNode {
    pub id: String,
    pub hostname: String,
    pub ready: bool,
}

impl DockerEngine {
    /// Its place in a Swarm.
    pub async fn swarm_member(&self) -> Result<SwarmMember, EngineError> {
        let info = self.docker.info().await.map_err(api("reading /info"))?;
        let swarm = info.swarm.unwrap_or_default();
        Ok(SwarmMember {
            node_id: swarm.node_id.unwrap_or_default(),
            state: match swarm.local_node_state {
                Some(LocalNodeState::ACTIVE) => "active".into(),
                Some(other) => other.to_string(),
                None => "inactive".into(),
            },
            manager: swarm.control_available.unwrap_or(false),
            addr: swarm.node_addr.unwrap_or_default(),
            error: swarm.error.filter(|e| !e.is_empty()),
        })
    }

    /// The Swarm's nodes (a manager only).
    pub async fn swarm_nodes(&self) -> Result<Vec<SwarmNode>, EngineError> {
        let nodes = self
            .docker
            .list_nodes(None)
            .await
            .map_err(api("listing the Swarm's nodes"))?;
        Ok(nodes
            .into_iter()
            .map(|n| SwarmNode {
                id: n.id.unwrap_or_default(),
                hostname: n.description.and_then(|d| d.hostname).unwrap_or_default(),
                ready: n.status.and_then(|s| s.state) == Some(NodeState::READY),
            })
            .collect())
    }

    /// Creates a Swarm-scoped attachable overlay (a manager only).
    pub async fn create_overlay(
        &self,
        name: &str,
        subnet: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        self.network(name, subnet, labels, true).await
    }

    /// `docker save` of one image.
    pub async fn save_image(&self, tag: &str) -> Result<Vec<u8>, EngineError> {
        let mut stream = self.docker.export_image(tag);
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            tar.extend_from_slice(&chunk.map_err(api(format!("saving image {tag}")))?);
        }
        Ok(tar)
    }

    /// `docker load` of what [`DockerEngine::save_image`] gave.
    pub async fn load_image(&self, tag: &str, tar: Vec<u8>) -> Result<(), EngineError> {
        let opts = ImportImageOptionsBuilder::new().quiet(true).build();
        let mut stream = self
            .docker
            .import_image(opts, bollard::body_full(tar.into()), None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(api(format!("loading image {tag}")))?;
            if let Some(err) = info.error_detail.and_then(|d| d.message) {
                return Err(EngineError::Api {
                    action: format!("loading image {tag}"),
                    message: err,
                });
            }
        }
        Ok(())
    }

    /// Whether this daemon has a container of that name (in any state).
    pub async fn has_container(&self, name: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_container(name, None).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(api(format!("inspecting {name}"))(e)),
        }
    }
}
