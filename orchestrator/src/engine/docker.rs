//! [`Engine`] on the Docker Engine API, through bollard, API version negotiated
//! (the daemons this runs against speak 1.41 and newer).

mod limits;
mod swarm;

pub use swarm::{SwarmMember, SwarmNode};

/// The dynamic range of an overlay: its first /29, six daemons' addresses.
const OVERLAY_RANGE_PREFIX: u8 = 29;
/// The most daemons one overlay of a testnet spans.
pub const MAX_HOSTS: usize = 6;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerConfig, ContainerCreateBody, ContainerSummaryStateEnum, EndpointIpamConfig,
    EndpointSettings, HostConfig, Ipam, IpamConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CommitContainerOptionsBuilder, CreateContainerOptionsBuilder,
    CreateImageOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;

use super::{
    ContainerAction, ContainerInfo, ContainerSpec, ContainerState, Engine, EngineError, Label,
    Limit, NetworkInfo, ResourceStats, LABEL_ROLE,
};
use crate::process::{mark_is_gone, process_mark};

pub struct DockerEngine {
    docker: Docker,
    /// The address published ports bind to, and are reached at from here.
    publish_on: String,
}

/// An image reference's repository and tag (`latest` if it names none); a
/// registry's port is not a tag.
fn repo_tag(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, "latest"),
    }
}

fn api(action: impl Into<String>) -> impl FnOnce(BollardError) -> EngineError {
    let action = action.into();
    move |e| match e {
        BollardError::DockerResponseServerError { message, .. }
            if message.contains("port is already allocated")
                || message.contains("address already in use") =>
        {
            EngineError::PortTaken(message)
        }
        BollardError::DockerResponseServerError { message, .. } => {
            EngineError::Api { action, message }
        }
        // The connection failed (the daemon died, restarted or never ran): that
        // is the daemon's absence, not a refusal.
        BollardError::HyperResponseError { .. }
        | BollardError::HyperLegacyError { .. }
        | BollardError::IOError { .. }
        | BollardError::RequestTimeoutError
        | BollardError::SocketNotFoundError(_) => EngineError::Unreachable(e.to_string()),
        other => EngineError::Api {
            action,
            message: other.to_string(),
        },
    }
}

fn label_filter(label: Label<'_>) -> HashMap<String, Vec<String>> {
    let l = match label.value {
        Some(v) => format!("{}={v}", label.key),
        None => label.key.to_owned(),
    };
    HashMap::from([("label".to_owned(), vec![l])])
}

impl DockerEngine {
    /// Connects to the local daemon (DOCKER_HOST or the default socket) and
    /// negotiates the API version.
    pub async fn connect() -> Result<Self, EngineError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| EngineError::Unreachable(e.to_string()))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| EngineError::Unreachable(e.to_string()))?;
        Ok(DockerEngine {
            docker,
            publish_on: "127.0.0.1".into(),
        })
    }

    /// Connects to the daemon at `url` (`unix:///path`, `tcp://host:port`)
    /// and negotiates the API version; containers publish their ports on
    /// `publish_on`, the address they are reached at from here.
    pub async fn connect_to(url: &str, publish_on: &str) -> Result<Self, EngineError> {
        let unreachable = |e: BollardError| EngineError::Unreachable(format!("{url}: {e}"));
        let docker = Docker::connect_with_host(url).map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        Ok(DockerEngine {
            docker,
            publish_on: publish_on.to_owned(),
        })
    }

    /// Creates a network: a bridge on this daemon, or a Swarm-scoped
    /// attachable overlay (standalone containers of every host join it).
    async fn network(
        &self,
        name: &str,
        subnet: &str,
        labels: BTreeMap<String, String>,
        overlay: bool,
    ) -> Result<(), EngineError> {
        let req = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some(if overlay { "overlay" } else { "bridge" }.into()),
            attachable: overlay.then_some(true),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.to_owned()),
                    // Every daemon on an overlay takes an address of its own
                    // from the dynamic range: keep it to .2-.7, below the
                    // nodes' static IPs (from .10).
                    ip_range: overlay.then(|| {
                        let base = subnet.split('/').next().unwrap_or(subnet);
                        format!("{base}/{OVERLAY_RANGE_PREFIX}")
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(labels.into_iter().collect()),
            ..Default::default()
        };
        match self.docker.create_network(req).await {
            Ok(_) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Err(EngineError::Conflict {
                what: "network",
                name: name.to_owned(),
            }),
            Err(e) => Err(api(format!("creating network {name}"))(e)),
        }
    }
}

impl Engine for DockerEngine {
    async fn ping(&self) -> Result<String, EngineError> {
        let v = self.docker.version().await.map_err(api("version"))?;
        Ok(format!(
            "Docker {} (API {})",
            v.version.unwrap_or_default(),
            self.docker.client_version()
        ))
    }

    async fn image_exists(&self, tag: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_image(tag).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(api("inspect image")(e)),
        }
    }

    async fn pull_image(&self, reference: &str) -> Result<(), EngineError> {
        let opts = CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build();
        let mut stream = self.docker.create_image(Some(opts), None, None);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                return Err(EngineError::Pull(reference.to_owned(), e.to_string()));
            }
        }
        Ok(())
    }

    async fn build_image(
        &self,
        tag: &str,
        context: Vec<u8>,
        labels: BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let labels: HashMap<String, String> = labels.into_iter().collect();
        let opts = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(tag)
            .rm(true)
            .forcerm(true)
            .labels(&labels)
            .build();
        let mut stream =
            self.docker
                .build_image(opts, None, Some(bollard::body_full(context.into())));
        let mut log = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(s) = info.stream {
                        log.push_str(&s);
                    }
                    if let Some(err) = info.error_detail.and_then(|d| d.message) {
                        return Err(EngineError::Build(tag.to_owned(), format!("{err}\n{log}")));
                    }
                }
                Err(e) => return Err(EngineError::Build(tag.to_owned(), format!("{e}\n{log}"))),
            }
        }
        Ok(())
    }

    async fn import_image(
        &self,
        tag: &str,
        rootfs: &Path,
        changes: &[&str],
    ) -> Result<(), EngineError> {
        let (repo, version) = repo_tag(tag);
        let bytes = tokio::fs::read(rootfs).await.map_err(|e| {
            EngineError::Build(
                tag.to_owned(),
                format!("cannot read {}: {e}", rootfs.display()),
            )
        })?;
        let opts = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo(repo)
            .tag(version)
            .changes(changes.iter().map(|c| c.to_string()).collect())
            .build();
        let mut stream =
            self.docker
                .create_image(Some(opts), Some(bollard::body_full(bytes.into())), None);
        while let Some(item) = stream.next().await {
            item.map_err(|e| EngineError::Build(tag.to_owned(), e.to_string()))?;
        }
        Ok(())
    }

    async fn derive_image(
        &self,
        tag: &str,
        from: &str,
        uploads: Vec<(String, Vec<u8>)>,
        changes: &[String],
    ) -> Result<(), EngineError> {
        self.sweep_derive_scratch().await;
        // Unique across processes, PID namespaces and machines sharing a
        // daemon, and naming its maker for the sweep above.
        let container = format!(
            "{DERIVE_PREFIX}{}-{:08x}",
            process_mark(),
            rand::random::<u32>()
        );
        let body = ContainerCreateBody {
            image: Some(from.to_owned()),
            network_disabled: Some(true),
            labels: Some(HashMap::from([(
                LABEL_ROLE.to_owned(),
                "derive-scratch".to_owned(),
            )])),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default()
            .name(&container)
            .build();
        self.docker
            .create_container(Some(opts), body)
            .await
            .map_err(api(format!("creating a container of {from} to make {tag}")))?;
        let made = async {
            for (dir, tar) in uploads {
                self.upload(&container, &dir, tar).await?;
            }
            let (repo, version) = repo_tag(tag);
            let opts = CommitContainerOptionsBuilder::default()
                .container(&container)
                .repo(repo)
                .tag(version)
                .changes(&changes.join("\n"))
                .pause(false)
                .build();
            self.docker
                .commit_container(opts, ContainerConfig::default())
                .await
                .map(drop)
                .map_err(api(format!("committing {container} as {tag}")))
        }
        .await;
        match (made, self.remove_container(&container).await) {
            (Err(EngineError::Api { action, message }), Err(left)) => Err(EngineError::Api {
                action,
                message: format!("{message}; and removing {container} failed too: {left}"),
            }),
            (made, removed) => made.and(removed),
        }
    }

    async fn create_network(
        &self,
        name: &str,
        subnet: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        self.network(name, subnet, labels, false).await
    }

    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        match self.docker.remove_network(name).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(api(format!("removing network {name}"))(e)),
        }
    }

    async fn list_networks(
        &self,
        label: Option<Label<'_>>,
    ) -> Result<Vec<NetworkInfo>, EngineError> {
        let mut b = ListNetworksOptionsBuilder::default();
        if let Some(l) = label {
            b = b.filters(&label_filter(l));
        }
        let nets = self
            .docker
            .list_networks(Some(b.build()))
            .await
            .map_err(api("listing networks"))?;
        Ok(nets
            .into_iter()
            .map(|n| NetworkInfo {
                name: n.name.unwrap_or_default(),
                subnet: n
                    .ipam
                    .and_then(|i| i.config)
                    .and_then(|c| c.into_iter().find_map(|c| c.subnet)),
                labels: n.labels.unwrap_or_default().into_iter().collect(),
            })
            .collect())
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<(), EngineError> {
        let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
            .publish
            .iter()
            .map(|(p, host)| {
                (
                    format!("{p}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: Some(self.publish_on.clone()),
                        host_port: Some(match host {
                            0 => String::new(),
                            h => h.to_string(),
                        }),
                    }]),
                )
            })
            .collect();
        let mut body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(spec.cmd.clone()),
            env: (!spec.env.is_empty()).then(|| spec.env.clone()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            exposed_ports: Some(
                spec.publish
                    .iter()
                    .map(|(p, _)| format!("{p}/tcp"))
                    .collect(),
            ),
            volumes: (!spec.volumes.is_empty()).then(|| spec.volumes.clone()),
            host_config: Some(HostConfig {
                network_mode: Some(spec.network.clone()),
                port_bindings: Some(port_bindings),
                cap_add: Some(spec.cap_add.clone()),
                init: Some(false),
                tmpfs: (!spec.tmpfs.is_empty()).then(|| spec.tmpfs.iter().cloned().collect()),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    spec.network.clone(),
                    EndpointSettings {
                        ipam_config: Some(EndpointIpamConfig {
                            ipv4_address: Some(spec.ip.to_string()),
                            ..Default::default()
                        }),
                        aliases: (!spec.aliases.is_empty()).then(|| spec.aliases.clone()),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        if let Some(holder) = &spec.join {
            // The pod pattern: the holder's network and PID namespaces.
            body.exposed_ports = None;
            body.networking_config = None;
            body.host_config = Some(HostConfig {
                network_mode: Some(format!("container:{holder}")),
                pid_mode: Some(format!("container:{holder}")),
                cap_add: Some(spec.cap_add.clone()),
                init: Some(false),
                ..Default::default()
            });
        }
        let opts = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        match self.docker.create_container(Some(opts), body).await {
            Ok(_) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Err(EngineError::Conflict {
                what: "container",
                name: spec.name.clone(),
            }),
            Err(e) => Err(api(format!("creating container {}", spec.name))(e)),
        }
    }

    async fn upload(&self, container: &str, dir: &str, tar: Vec<u8>) -> Result<(), EngineError> {
        let opts = UploadToContainerOptionsBuilder::default().path(dir).build();
        self.docker
            .upload_to_container(container, Some(opts), bollard::body_full(tar.into()))
            .await
            .map_err(api(format!("copying files into {container}")))
    }

    async fn download(&self, container: &str, path: &str) -> Result<Vec<u8>, EngineError> {
        let opts = bollard::query_parameters::DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut stream = self.docker.download_from_container(container, Some(opts));
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(api(format!("copying {path} out of {container}")))?;
            tar.extend_from_slice(&chunk);
        }
        Ok(tar)
    }

    async fn start_container(&self, name: &str) -> Result<(), EngineError> {
        self.docker
            .start_container(name, None)
            .await
            .map_err(api(format!("starting {name}")))
    }

    async fn container_action(
        &self,
        name: &str,
        action: ContainerAction,
    ) -> Result<(), EngineError> {
        let what = format!("{action:?} of {name}").to_lowercase();
        let result = match action {
            ContainerAction::Kill => {
                let opts = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
                self.docker.kill_container(name, Some(opts)).await
            }
            ContainerAction::Stop => {
                let opts = StopContainerOptionsBuilder::new().t(5).build();
                self.docker.stop_container(name, Some(opts)).await
            }
            ContainerAction::Pause => self.docker.pause_container(name).await,
            ContainerAction::Unpause => self.docker.unpause_container(name).await,
        };
        result.map_err(api(what))
    }

    async fn update_limit(&self, name: &str, limit: Limit) -> Result<(), EngineError> {
        self.update(name, limit).await
    }

    async fn resource_stats(&self, name: &str) -> Result<ResourceStats, EngineError> {
        self.stats(name).await
    }

    async fn remove_container(&self, name: &str) -> Result<(), EngineError> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(name, Some(opts)).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            // Already being removed by a concurrent call.
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(api(format!("removing {name}"))(e)),
        }
    }

    async fn list_containers(&self, label: Label<'_>) -> Result<Vec<ContainerInfo>, EngineError> {
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&label_filter(label))
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(api("listing containers"))?;
        let mut out = Vec::new();
        for c in list {
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned();
            let state = match c.state {
                Some(ContainerSummaryStateEnum::RUNNING) => ContainerState::Running,
                Some(ContainerSummaryStateEnum::CREATED) => ContainerState::Created,
                Some(ContainerSummaryStateEnum::PAUSED) => ContainerState::Paused,
                Some(ContainerSummaryStateEnum::EXITED) | Some(ContainerSummaryStateEnum::DEAD) => {
                    // "Exited (137) 3 seconds ago"
                    let code = c
                        .status
                        .as_deref()
                        .and_then(|s| s.split_once('(')?.1.split_once(')')?.0.parse().ok())
                        .unwrap_or(-1);
                    ContainerState::Exited(code)
                }
                _ => ContainerState::Other,
            };
            let ip = c
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|n| {
                    n.into_values()
                        .find_map(|e| e.ip_address.filter(|s| !s.is_empty()))
                })
                .and_then(|s| s.parse::<Ipv4Addr>().ok());
            let ports = c
                .ports
                .unwrap_or_default()
                .into_iter()
                .filter(|p| p.ip.as_deref() == Some(self.publish_on.as_str()))
                .filter_map(|p| Some((p.private_port, p.public_port?)))
                .collect();
            out.push(ContainerInfo {
                name,
                state,
                labels: c.labels.unwrap_or_default().into_iter().collect(),
                ip,
                ports,
                published_on: self.publish_on.clone(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn logs(&self, name: &str, tail: usize) -> Result<String, EngineError> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let mut stream = self.docker.logs(name, Some(opts));
        let mut out = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => out.push_str(&chunk.to_string()),
                Err(e) => return Err(api(format!("reading logs of {name}"))(e)),
            }
        }
        Ok(out)
    }

    async fn list_volumes(&self, label: Label<'_>) -> Result<Vec<String>, EngineError> {
        let opts = ListVolumesOptionsBuilder::default()
            .filters(&label_filter(label))
            .build();
        let res = self
            .docker
            .list_volumes(Some(opts))
            .await
            .map_err(api("listing volumes"))?;
        Ok(res
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        match self
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(api(format!("removing volume {name}"))(e)),
        }
    }
}

/// The name of a container `derive_image` makes: then its maker's
/// `process_mark`, then a random part.
const DERIVE_PREFIX: &str = "testnet-derive-";

impl DockerEngine {
    /// Removes the `derive-scratch` containers of runs that were killed
    /// mid-derive (their maker, named in the container's name, was a process
    /// of this boot and PID namespace and is gone); best effort, a live run's
    /// and those of other machines or containers are kept.
    async fn sweep_derive_scratch(&self) {
        let scratch = Label {
            key: LABEL_ROLE,
            value: Some("derive-scratch"),
        };
        let Ok(list) = self.list_containers(scratch).await else {
            return;
        };
        for c in list {
            let mark = c
                .name
                .strip_prefix(DERIVE_PREFIX)
                .and_then(|m| m.rsplit_once('-'));
            if mark.is_some_and(|(mark, _)| mark_is_gone(mark)) {
                let _ = self.remove_container(&c.name).await;
            }
        }
    }

    /// Streams a container's output to stdout until it stops (`logs --follow`).
    pub async fn follow_logs(
        &self,
        name: &str,
        tail: usize,
        prefix: &str,
    ) -> Result<(), EngineError> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(true)
            .tail(&tail.to_string())
            .build();
        let mut stream = self.docker.logs(name, Some(opts));
        while let Some(item) = stream.next().await {
            let chunk = item.map_err(api(format!("reading logs of {name}")))?;
            for line in chunk.to_string().lines() {
                println!("{prefix}{line}");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::repo_tag;

    #[test]
    fn a_references_tag_is_after_its_last_colon_unless_that_is_a_registry_port() {
        assert_eq!(repo_tag("testnet-node:abc"), ("testnet-node", "abc"));
        assert_eq!(repo_tag("debian"), ("debian", "latest"));
        assert_eq!(
            repo_tag("reg:5000/team/node"),
            ("reg:5000/team/node", "latest")
        );
        assert_eq!(
            repo_tag("reg:5000/team/node:v2"),
            ("reg:5000/team/node", "v2")
        );
    }
}
