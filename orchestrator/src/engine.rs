//! The engine seam: what the orchestrator asks of a container engine.
//!
//! [`docker::DockerEngine`] implements it on bollard; [`fake::FakeEngine`] keeps
//! everything in memory for fast tests of the orchestration logic. Every resource
//! the orchestrator creates carries [`LABEL_TESTNET`] (and the others below), so
//! `down` finds everything of a testnet by label, whatever state it is in.

pub mod docker;
pub mod fake;
pub mod hosts;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::Path;

/// The testnet a resource belongs to.
pub const LABEL_TESTNET: &str = "io.testnet.name";
/// The node name of a container (`n0`, ...).
pub const LABEL_NODE: &str = "io.testnet.node";
/// What a resource is for (`node`, `network`).
pub const LABEL_ROLE: &str = "io.testnet.role";
/// A node container's pinned host ports (`8000:23456,9000:23457`), readable
/// while it is stopped.
pub const LABEL_PORTS: &str = "io.testnet.ports";
/// The container port of a node's API, when not ours (`8000`).
pub const LABEL_API: &str = "io.testnet.api";
/// Where a node's metrics are, when not ours: `PORT/PATH`, or `none`.
pub const LABEL_METRICS: &str = "io.testnet.metrics";
/// The container port a foreign node links to its peers on.
pub const LABEL_P2P: &str = "io.testnet.p2p";
/// The holder container a node's own container joined (holder mode).
pub const LABEL_HOLDER: &str = "io.testnet.holder";
/// The host (of a testnet file's `hosts:`) a container is placed on.
pub const LABEL_HOST: &str = "io.testnet.host";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker daemon ({0}); is it running? (`systemctl start docker`, or set DOCKER_HOST)")]
    Unreachable(String),
    #[error("{what} {name:?} already exists")]
    Conflict { what: &'static str, name: String },
    #[error("{what} {name:?} not found")]
    NotFound { what: &'static str, name: String },
    #[error("image {0:?} cannot be pulled: {1}")]
    Pull(String, String),
    #[error("building image {0:?} failed: {1}")]
    Build(String, String),
    #[error("a host port is taken ({0})")]
    PortTaken(String),
    #[error("Docker refused {action}: {message}")]
    Api { action: String, message: String },
    /// A multi-host problem: the engines do not form one Swarm, a host is
    /// unknown, an image could not be copied.
    #[error("{0}")]
    Hosts(String),
}

/// A label filter: the key, and the value if it must match one.
#[derive(Debug, Clone, Copy)]
pub struct Label<'a> {
    pub key: &'a str,
    pub value: Option<&'a str>,
}

impl<'a> Label<'a> {
    /// Resources of testnet `name`, or of every testnet.
    pub fn testnet(name: Option<&'a str>) -> Self {
        Label {
            key: LABEL_TESTNET,
            value: name,
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match (labels.get(self.key), self.value) {
            (Some(_), None) => true,
            (Some(v), Some(want)) => v == want,
            (None, _) => false,
        }
    }
}

/// A container to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub cmd: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub network: String,
    pub ip: Ipv4Addr,
    /// Container TCP ports published on 127.0.0.1: (container port, host
    /// port), host port 0 letting the engine pick one.
    pub publish: Vec<(u16, u16)>,
    pub cap_add: Vec<String>,
    /// `KEY=value` environment variables.
    pub env: Vec<String>,
    /// Extra DNS names on the network (e.g. `prometheus`).
    pub aliases: Vec<String>,
    /// Join this container's network and PID namespaces (the holder
    /// pattern) instead of a network: `network`, `ip`, `publish` and
    /// `aliases` are then not used.
    pub join: Option<String>,
    /// tmpfs mounts: (path in the container, options such as `size=64m`).
    pub tmpfs: Vec<(String, String)>,
    /// Paths in the container that get an anonymous volume of their own:
    /// kept across a restart, removed with the container, and written
    /// straight to the engine's disk, not through its storage driver.
    pub volumes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Exited(i64),
    Other,
}

/// What [`Engine::container_action`] does to a running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerAction {
    /// SIGKILL to PID 1.
    Kill,
    /// SIGTERM, then SIGKILL after a few seconds.
    Stop,
    /// Freeze every process (cgroup freezer).
    Pause,
    Unpause,
}

/// A resource limit changed on a running container (`None`: no limit).
#[derive(
    Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// CPU time, in cores (0.2: a fifth of one core).
    Cpu(Option<f64>),
    /// Memory, in MiB, swap included (the kernel OOM-kills past it).
    Memory(Option<u64>),
}

/// What a container's cgroup says of its resources.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ResourceStats {
    /// CFS periods in which the container was throttled, and for how long.
    pub throttled_periods: u64,
    pub throttled_secs: f64,
    /// The CPU quota in cores, if any.
    pub cpu_cores: Option<f64>,
    /// The memory limit in MiB, if any (an unlimited one reads as none).
    pub memory_mib: Option<u64>,
    /// The kernel OOM-killed a process of the container.
    pub oom_killed: bool,
}

/// A container as listed by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub name: String,
    pub state: ContainerState,
    pub labels: BTreeMap<String, String>,
    pub ip: Option<Ipv4Addr>,
    /// (container port, host port on `published_on`).
    pub ports: Vec<(u16, u16)>,
    /// The address its published ports are reached at from here (127.0.0.1
    /// on the local engine).
    pub published_on: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub name: String,
    /// CIDR, e.g. `10.77.3.0/24`.
    pub subnet: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// What the orchestrator needs from a container engine. Futures are `Send` so
/// operations on many containers can run concurrently.
pub trait Engine: Send + Sync {
    /// A short description of the engine (version), or why it is unreachable.
    fn ping(&self) -> impl Future<Output = Result<String, EngineError>> + Send;

    fn image_exists(&self, tag: &str) -> impl Future<Output = Result<bool, EngineError>> + Send;
    /// Pulls `reference` from a registry.
    fn pull_image(&self, reference: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Builds `tag` from a tar build context holding a `Dockerfile`.
    fn build_image(
        &self,
        tag: &str,
        context: Vec<u8>,
        labels: BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Imports a root filesystem tarball as image `tag` (`docker import`),
    /// with `changes`: Dockerfile instructions that only set its config
    /// (`ENTRYPOINT`, `EXPOSE`...; `docker import --change`).
    fn import_image(
        &self,
        tag: &str,
        rootfs: &Path,
        changes: &[&str],
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Makes image `tag` from image `from` in one commit: a container of
    /// `from` is created (never started), each `(dir, tar)` of `uploads` is
    /// extracted into it, it is committed with `changes` (config-only
    /// Dockerfile instructions: `ENV`, `LABEL`...) and removed, whatever
    /// happened. The container carries the role `derive-scratch` (found by
    /// it if a killed run left it; the Docker engine's next derive removes
    /// it), which the image keeps unless `changes` set another. A `docker build` commits a container per instruction,
    /// seconds each on some storage drivers.
    fn derive_image(
        &self,
        tag: &str,
        from: &str,
        uploads: Vec<(String, Vec<u8>)>,
        changes: &[String],
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    fn create_network(
        &self,
        name: &str,
        subnet: &str,
        labels: BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    fn remove_network(&self, name: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Networks carrying `label` (any value) or `label=value`; all if `label` is `None`.
    fn list_networks(
        &self,
        label: Option<Label<'_>>,
    ) -> impl Future<Output = Result<Vec<NetworkInfo>, EngineError>> + Send;

    fn create_container(
        &self,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Extracts a tar archive into `dir` of a (created) container.
    fn upload(
        &self,
        container: &str,
        dir: &str,
        tar: Vec<u8>,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// A tar archive of `path` in a container (its last path component at
    /// the archive's top, as `docker cp` gives it).
    fn download(
        &self,
        container: &str,
        path: &str,
    ) -> impl Future<Output = Result<Vec<u8>, EngineError>> + Send;
    fn start_container(&self, name: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Kill, stop, pause or unpause a container (its network namespace goes with
    /// a kill or stop and is recreated on start).
    fn container_action(
        &self,
        name: &str,
        action: ContainerAction,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Changes a limit of a container, live (`docker update`).
    fn update_limit(
        &self,
        name: &str,
        limit: Limit,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Its limits, throttling and OOM kills, read back.
    fn resource_stats(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<ResourceStats, EngineError>> + Send;
    /// Kills and removes a container with its anonymous volumes; fine if absent.
    fn remove_container(&self, name: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Containers (in any state) carrying `label`.
    fn list_containers(
        &self,
        label: Label<'_>,
    ) -> impl Future<Output = Result<Vec<ContainerInfo>, EngineError>> + Send;
    /// The last `tail` lines of a container's output.
    fn logs(
        &self,
        name: &str,
        tail: usize,
    ) -> impl Future<Output = Result<String, EngineError>> + Send;

    /// Volumes carrying `label`.
    fn list_volumes(
        &self,
        label: Label<'_>,
    ) -> impl Future<Output = Result<Vec<String>, EngineError>> + Send;
    fn remove_volume(&self, name: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
}
