//! Several Docker daemons as one [`Engine`]: a testnet spread over hosts.
//!
//! One bollard client per host. With more than one host the daemons must form
//! one Docker Swarm: the testnet's network is a Swarm-scoped attachable
//! overlay (created on a manager) and every container is a standalone one
//! with its static IP on it, placed by the orchestrator (the
//! [`LABEL_HOST`] label of its spec). Images are built or pulled on the first
//! host and copied (save, load) to a host that lacks them. Everything else
//! is sent to the daemon holding the container. With one host this is that
//! daemon with nothing added.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use super::docker::DockerEngine;
use super::{
    ContainerAction, ContainerInfo, ContainerSpec, Engine, EngineError, Label, Limit, NetworkInfo,
    ResourceStats, LABEL_HOST,
};

/// One Docker daemon of a testnet file's `hosts:`.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// What nodes, zones and `status` call it (`a`).
    pub name: String,
    /// Its daemon: `unix:///var/run/docker.sock` or `tcp://HOST:2375`.
    pub engine: String,
    /// Where its containers' published ports are reached from the machine
    /// running `testnet` (default: HOST of a `tcp://` engine, else 127.0.0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl HostSpec {
    /// The address published ports bind to and are reached at.
    pub fn reach(&self) -> String {
        if let Some(a) = &self.address {
            return a.clone();
        }
        let rest = self
            .engine
            .strip_prefix("tcp://")
            .or_else(|| self.engine.strip_prefix("http://"));
        match rest {
            Some(r) => {
                let hostport = r.split('/').next().unwrap_or(r);
                match hostport.rsplit_once(':') {
                    Some((h, _)) => h.to_owned(),
                    None => hostport.to_owned(),
                }
            }
            None => "127.0.0.1".into(),
        }
    }

    /// What is wrong with it ("hosts.NAME: ...").
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let ok_name = !self.name.is_empty()
            && self.name.len() <= 32
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok_name {
            p.push(format!(
                "hosts: name {:?} must be 1-32 characters of a-z, A-Z, 0-9, '-' and '_'",
                self.name
            ));
        }
        // bollard is built with its unix and plain-HTTP transports only.
        let schemes = ["unix://", "tcp://", "http://"];
        if !schemes.iter().any(|s| self.engine.starts_with(s)) {
            p.push(format!(
                "hosts.{}.engine: {:?} is not a Docker daemon URL this build speaks (unix:///var/run/docker.sock, tcp://HOST:2375; \
                 for TLS or SSH, forward the daemon's socket, e.g. `ssh -L /tmp/b.sock:/var/run/docker.sock HOST`, and give unix:///tmp/b.sock)",
                self.name, self.engine
            ));
        }
        p
    }
}

/// The daemons of a testnet. Host 0 builds and pulls images and runs what has
/// no host (Prometheus, Grafana).
pub struct Hosts {
    hosts: Vec<(HostSpec, DockerEngine)>,
    /// Where Swarm-scoped networks are created.
    manager: usize,
    /// Container name -> host, as created or listed.
    placed: Mutex<HashMap<String, usize>>,
    /// One image copy at a time.
    copying: tokio::sync::Mutex<()>,
}

impl Hosts {
    /// The local daemon (DOCKER_HOST or the default socket), answering.
    pub async fn local() -> Result<Hosts, EngineError> {
        let spec = HostSpec {
            name: "local".into(),
            engine: std::env::var("DOCKER_HOST").unwrap_or_else(|_| "default".into()),
            address: None,
        };
        let engine = DockerEngine::connect().await?;
        engine.ping().await?;
        Ok(Hosts::of(vec![(spec, engine)], 0))
    }

    /// The daemons of `specs` (the local one if there are none), each
    /// answering, and with more than one, members of one Swarm.
    pub async fn connect(specs: &[HostSpec]) -> Result<Hosts, EngineError> {
        if specs.is_empty() {
            return Hosts::local().await;
        }
        let mut hosts = Vec::new();
        for spec in specs {
            let engine = DockerEngine::connect_to(&spec.engine, &spec.reach())
                .await
                .map_err(|e| named(spec, e))?;
            engine.ping().await.map_err(|e| named(spec, e))?;
            hosts.push((spec.clone(), engine));
        }
        let manager = match hosts.len() {
            1 => 0,
            _ => {
                let mut members = Vec::new();
                for (spec, engine) in &hosts {
                    members.push(engine.swarm_member().await.map_err(|e| named(spec, e))?);
                }
                let nodes = match members.iter().position(|m| m.manager) {
                    Some(m) => hosts[m].1.swarm_nodes().await?,
                    None => Vec::new(),
                };
                one_swarm(specs, &members, &nodes).map_err(EngineError::Hosts)?
            }
        };
        Ok(Hosts::of(hosts, manager))
    }

    fn of(hosts: Vec<(HostSpec, DockerEngine)>, manager: usize) -> Hosts {
        Hosts {
            hosts,
            manager,
            placed: Mutex::new(HashMap::new()),
            copying: tokio::sync::Mutex::new(()),
        }
    }

    /// `e` of host `spec`, named when there are several.
    fn err(&self, spec: &HostSpec, e: EngineError) -> EngineError {
        match self.is_multi() {
            true => named(spec, e),
            false => e,
        }
    }

    /// More than one daemon.
    pub fn is_multi(&self) -> bool {
        self.hosts.len() > 1
    }

    /// The first daemon: images are made there.
    pub fn primary(&self) -> &DockerEngine {
        &self.hosts[0].1
    }

    /// The host names, in order.
    pub fn names(&self) -> Vec<String> {
        self.hosts.iter().map(|(s, _)| s.name.clone()).collect()
    }

    fn index_of(&self, host: &str) -> Result<usize, EngineError> {
        self.hosts
            .iter()
            .position(|(s, _)| s.name == host)
            .ok_or_else(|| {
                EngineError::Hosts(format!(
                    "no host {host:?} among this testnet's hosts ({})",
                    self.names().join(", ")
                ))
            })
    }

    /// The daemon holding container `name` (the first if none does).
    async fn at(&self, name: &str) -> Result<&DockerEngine, EngineError> {
        if !self.is_multi() {
            return Ok(self.primary());
        }
        if let Some(i) = self.placed.lock().expect("not poisoned").get(name) {
            return Ok(&self.hosts[*i].1);
        }
        for (i, (_, engine)) in self.hosts.iter().enumerate() {
            if engine.has_container(name).await? {
                self.place(name, i);
                return Ok(engine);
            }
        }
        Ok(self.primary())
    }

    fn place(&self, name: &str, host: usize) {
        self.placed
            .lock()
            .expect("not poisoned")
            .insert(name.to_owned(), host);
    }

    /// Copies image `tag` from the first host to every other host that
    /// lacks it; says which it copied to.
    pub async fn spread_image(
        &self,
        tag: &str,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Vec<String>, EngineError> {
        let mut copied = Vec::new();
        for i in 1..self.hosts.len() {
            if self.copy_image(i, tag, progress).await? {
                copied.push(self.hosts[i].0.name.clone());
            }
        }
        Ok(copied)
    }

    /// Copies `tag` to host `i` if it lacks it (true if it did).
    async fn copy_image(
        &self,
        i: usize,
        tag: &str,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<bool, EngineError> {
        let _one = self.copying.lock().await;
        let (spec, target) = &self.hosts[i];
        if i == 0 || target.image_exists(tag).await? {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        let tar = self.primary().save_image(tag).await.map_err(|e| {
            EngineError::Hosts(format!(
                "cannot copy image {tag} to host {}: saving it on {} failed: {e}",
                spec.name, self.hosts[0].0.name
            ))
        })?;
        let mib = tar.len() as f64 / (1024.0 * 1024.0);
        target
            .load_image(tag, tar)
            .await
            .map_err(|e| named(spec, e))?;
        progress(&format!(
            "image {tag} copied to host {} ({mib:.0} MiB in {:.1} s)",
            spec.name,
            started.elapsed().as_secs_f64()
        ));
        Ok(true)
    }

    /// `logs --follow` of a container, on its daemon.
    pub async fn follow_logs(
        &self,
        name: &str,
        tail: usize,
        prefix: &str,
    ) -> Result<(), EngineError> {
        self.at(name).await?.follow_logs(name, tail, prefix).await
    }
}

/// An error of one host, named, of the same kind (the daemon's absence
/// stays [`EngineError::Unreachable`]: a run stops on it at once).
fn named(spec: &HostSpec, e: EngineError) -> EngineError {
    let host = format!("host {} ({})", spec.name, spec.engine);
    match e {
        EngineError::Unreachable(m) => EngineError::Unreachable(format!("{host}: {m}")),
        EngineError::Api { action, message } => EngineError::Api {
            action: format!("{action} on {host}"),
            message,
        },
        EngineError::Hosts(m) => EngineError::Hosts(format!("{host}: {m}")),
        other => other,
    }
}

/// The manager among `members` (one per host, in order) if they form one
/// Swarm whose manager lists every one of them ready; else why not and how
/// to make one.
pub fn one_swarm(
    specs: &[HostSpec],
    members: &[crate::engine::docker::SwarmMember],
    nodes: &[crate::engine::docker::SwarmNode],
) -> Result<usize, String> {
    let how = format!(
        "make one: `docker -H {a} swarm init --advertise-addr ADDRESS_OF_{A}`, then on every other host \
         `docker -H HOST swarm join --token $(docker -H {a} swarm join-token -q worker) ADDRESS_OF_{A}:2377` \
         (ports 2377/tcp, 7946/tcp+udp and 4789/udp open between the hosts)",
        a = specs[0].engine,
        A = specs[0].name.to_uppercase()
    );
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let all = names.join(", ");
    for (spec, m) in specs.iter().zip(members) {
        if m.state != "active" {
            let why = m
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            return Err(format!(
                "hosts {all} do not form one Docker Swarm: host {} is not in a swarm (state {}{why}); {how}",
                spec.name, m.state
            ));
        }
    }
    let Some(manager) = members.iter().position(|m| m.manager) else {
        return Err(format!(
            "hosts {all} are in a swarm, but none of them is a manager (the overlay network is made on one); \
             add a manager to `hosts:` or promote one (`docker node promote NODE`)"
        ));
    };
    for (spec, m) in specs.iter().zip(members) {
        match nodes.iter().find(|n| n.id == m.node_id) {
            None => {
                return Err(format!(
                    "hosts {all} do not form one Docker Swarm: host {} (node {}) is not a member of \
                     host {}'s swarm; {how}",
                    spec.name, m.node_id, specs[manager].name
                ))
            }
            Some(n) if !n.ready => {
                return Err(format!(
                    "host {} is in the swarm but not ready (`docker -H {} node ls`); is its daemon reachable from the manager?",
                    spec.name, specs[manager].engine
                ))
            }
            Some(_) => {}
        }
    }
    let mut ids: Vec<&str> = members.iter().map(|m| m.node_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    if ids.len() < members.len() {
        return Err(format!(
            "two of hosts {all} are the same Docker daemon (same swarm node ID); give each host once"
        ));
    }
    Ok(manager)
}

impl Engine for Hosts {
    async fn ping(&self) -> Result<String, EngineError> {
        let mut out = Vec::new();
        for (spec, engine) in &self.hosts {
            let v = engine.ping().await.map_err(|e| self.err(spec, e))?;
            out.push(match self.is_multi() {
                true => format!("{}: {v}", spec.name),
                false => v,
            });
        }
        Ok(out.join("; "))
    }

    async fn image_exists(&self, tag: &str) -> Result<bool, EngineError> {
        self.primary().image_exists(tag).await
    }

    async fn pull_image(&self, reference: &str) -> Result<(), EngineError> {
        self.primary().pull_image(reference).await
    }

    async fn build_image(
        &self,
        tag: &str,
        context: Vec<u8>,
        labels: BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        self.primary().build_image(tag, context, labels).await
    }

    async fn import_image(
        &self,
        tag: &str,
        rootfs: &Path,
        changes: &[&str],
    ) -> Result<(), EngineError> {
        self.primary().import_image(tag, rootfs, changes).await
    }

    async fn derive_image(
        &self,
        tag: &str,
        from: &str,
        uploads: Vec<(String, Vec<u8>)>,
        changes: &[String],
    ) -> Result<(), EngineError> {
        self.primary()
            .derive_image(tag, from, uploads, changes)
            .await
    }

    async fn create_network(
        &self,
        name: &str,
        subnet: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        match self.is_multi() {
            true => {
                let (spec, manager) = &self.hosts[self.manager];
                manager
                    .create_overlay(name, subnet, labels)
                    .await
                    .map_err(|e| match e {
                        EngineError::Api { .. } => named(spec, e),
                        other => other,
                    })
            }
            false => self.primary().create_network(name, subnet, labels).await,
        }
    }

    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        // A Swarm-scoped network goes from every host with the manager's
        // removal, a moment later: wait for that.
        self.hosts[self.manager].1.remove_network(name).await?;
        if !self.is_multi() {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let mut left = Vec::new();
            for (spec, engine) in &self.hosts {
                if engine
                    .list_networks(None)
                    .await?
                    .iter()
                    .any(|n| n.name == name)
                {
                    left.push(spec.name.clone());
                }
            }
            if left.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(EngineError::Hosts(format!(
                    "network {name} was removed on the manager but is still listed on host(s) {} after 15 s; \
                     `testnet down` again, or `docker network rm {name}` there",
                    left.join(", ")
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    async fn list_networks(
        &self,
        label: Option<Label<'_>>,
    ) -> Result<Vec<NetworkInfo>, EngineError> {
        let mut out: Vec<NetworkInfo> = Vec::new();
        for (spec, engine) in &self.hosts {
            for n in engine
                .list_networks(label)
                .await
                .map_err(|e| self.err(spec, e))?
            {
                if !out.iter().any(|o| o.name == n.name) {
                    out.push(n);
                }
            }
        }
        Ok(out)
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<(), EngineError> {
        let i = match spec.labels.get(LABEL_HOST) {
            Some(h) if self.is_multi() => self.index_of(h)?,
            _ => 0,
        };
        self.copy_image(i, &spec.image, &|l: &str| eprintln!("{l}"))
            .await?;
        self.hosts[i].1.create_container(spec).await?;
        self.place(&spec.name, i);
        Ok(())
    }

    async fn upload(&self, container: &str, dir: &str, tar: Vec<u8>) -> Result<(), EngineError> {
        self.at(container).await?.upload(container, dir, tar).await
    }

    async fn download(&self, container: &str, path: &str) -> Result<Vec<u8>, EngineError> {
        self.at(container).await?.download(container, path).await
    }

    async fn start_container(&self, name: &str) -> Result<(), EngineError> {
        self.at(name).await?.start_container(name).await
    }

    async fn container_action(
        &self,
        name: &str,
        action: ContainerAction,
    ) -> Result<(), EngineError> {
        self.at(name).await?.container_action(name, action).await
    }

    async fn update_limit(&self, name: &str, limit: Limit) -> Result<(), EngineError> {
        self.at(name).await?.update_limit(name, limit).await
    }

    async fn resource_stats(&self, name: &str) -> Result<ResourceStats, EngineError> {
        self.at(name).await?.resource_stats(name).await
    }

    async fn remove_container(&self, name: &str) -> Result<(), EngineError> {
        self.at(name).await?.remove_container(name).await
    }

    async fn list_containers(&self, label: Label<'_>) -> Result<Vec<ContainerInfo>, EngineError> {
        let mut out = Vec::new();
        for (i, (spec, engine)) in self.hosts.iter().enumerate() {
            let list = engine
                .list_containers(label)
                .await
                .map_err(|e| self.err(spec, e))?;
            if self.is_multi() {
                for c in &list {
                    self.place(&c.name, i);
                }
            }
            out.extend(list);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn logs(&self, name: &str, tail: usize) -> Result<String, EngineError> {
        self.at(name).await?.logs(name, tail).await
    }

    async fn list_volumes(&self, label: Label<'_>) -> Result<Vec<String>, EngineError> {
        let mut out: Vec<String> = Vec::new();
        for (spec, engine) in &self.hosts {
            for v in engine
                .list_volumes(label)
                .await
                .map_err(|e| self.err(spec, e))?
            {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        Ok(out)
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        for (_, engine) in &self.hosts {
            engine.remove_volume(name).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
