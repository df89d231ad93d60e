//! An in-memory [`Engine`] for fast tests of the orchestration logic.
//!
//! It behaves like a daemon where it matters: names conflict, containers need an
//! existing network and image, IPs must be free, published ports get distinct host
//! ports, removal is idempotent. Tests can make one container fail to create or
//! exit at start, make pulls fail, and read the sequence of calls.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    ContainerAction, ContainerInfo, ContainerSpec, ContainerState, Engine, EngineError, Label,
    Limit, NetworkInfo, ResourceStats,
};

#[derive(Debug, Default)]
pub struct FakeState {
    pub images: BTreeSet<String>,
    pub networks: BTreeMap<String, NetworkInfo>,
    pub containers: BTreeMap<String, (ContainerSpec, ContainerInfo)>,
    pub volumes: BTreeMap<String, BTreeMap<String, String>>,
    /// Files uploaded per container: (dir, tar size).
    pub uploads: BTreeMap<String, Vec<(String, usize)>>,
    /// Every call, in order, as `verb name`.
    pub calls: Vec<String>,
    pub next_port: u16,
    /// Behaviour switches for tests.
    pub unreachable: bool,
    pub pull_fails: bool,
    pub fail_create: BTreeSet<String>,
    pub exit_on_start: BTreeMap<String, i64>,
    pub logs: BTreeMap<String, String>,
    /// Times each container was started (a start gives it a fresh network
    /// namespace: the fake agent forgets its faults then).
    pub starts: BTreeMap<String, u32>,
    /// Containers whose next starts (this many) fail as if another program
    /// had taken one of their host ports.
    pub port_clash: BTreeMap<String, u32>,
    /// Limits set per container (and what its stats then say).
    pub limits: BTreeMap<String, ResourceStats>,
}

#[derive(Debug, Clone, Default)]
pub struct FakeEngine {
    state: Arc<Mutex<FakeState>>,
}

impl FakeEngine {
    pub fn new() -> Self {
        let engine = FakeEngine::default();
        engine.state().next_port = 40_000;
        engine
    }

    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn call(&self, what: String) -> Result<MutexGuard<'_, FakeState>, EngineError> {
        let mut s = self.state();
        s.calls.push(what);
        if s.unreachable {
            return Err(EngineError::Unreachable("fake daemon is down".into()));
        }
        Ok(s)
    }
}

impl Engine for FakeEngine {
    async fn ping(&self) -> Result<String, EngineError> {
        drop(self.call("ping".into())?);
        Ok("fake engine".into())
    }

    async fn image_exists(&self, tag: &str) -> Result<bool, EngineError> {
        Ok(self
            .call(format!("image_exists {tag}"))?
            .images
            .contains(tag))
    }

    async fn pull_image(&self, reference: &str) -> Result<(), EngineError> {
        let mut s = self.call(format!("pull {reference}"))?;
        if s.pull_fails {
            return Err(EngineError::Pull(reference.into(), "no registry".into()));
        }
        s.images.insert(reference.to_owned());
        Ok(())
    }

    async fn build_image(
        &self,
        tag: &str,
        context: Vec<u8>,
        _labels: BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let mut s = self.call(format!("build {tag}"))?;
        let mut archive = tar::Archive::new(context.as_slice());
        let has_dockerfile = archive
            .entries()
            .map_err(|e| EngineError::Build(tag.into(), e.to_string()))?
            .filter_map(|e| e.ok())
            .any(|e| e.path().is_ok_and(|p| p == Path::new("Dockerfile")));
        if !has_dockerfile {
            return Err(EngineError::Build(
                tag.into(),
                "no Dockerfile in the context".into(),
            ));
        }
        s.images.insert(tag.to_owned());
        Ok(())
    }

    async fn import_image(
        &self,
        tag: &str,
        rootfs: &Path,
        _changes: &[&str],
    ) -> Result<(), EngineError> {
        let mut s = self.call(format!("import {tag}"))?;
        if !rootfs.exists() {
            return Err(EngineError::Build(
                tag.into(),
                format!("{} does not exist", rootfs.display()),
            ));
        }
        s.images.insert(tag.to_owned());
        Ok(())
    }

    async fn derive_image(
        &self,
        tag: &str,
        from: &str,
        uploads: Vec<(String, Vec<u8>)>,
        changes: &[String],
    ) -> Result<(), EngineError> {
        let mut s = self.call(format!("derive {tag} from {from}"))?;
        if !s.images.contains(from) {
            return Err(EngineError::NotFound {
                what: "image",
                name: from.into(),
            });
        }
        for (dir, tar) in uploads {
            s.calls.push(format!("upload {} bytes to {dir}", tar.len()));
        }
        for change in changes {
            s.calls.push(format!("change {change}"));
        }
        s.images.insert(tag.to_owned());
        Ok(())
    }

    async fn create_network(
        &self,
        name: &str,
        subnet: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let mut s = self.call(format!("create_network {name}"))?;
        if s.networks.contains_key(name) {
            return Err(EngineError::Conflict {
                what: "network",
                name: name.into(),
            });
        }
        if s.networks
            .values()
            .any(|n| n.subnet.as_deref() == Some(subnet))
        {
            return Err(EngineError::Api {
                action: format!("creating network {name}"),
                message: "Pool overlaps with other one on this address space".into(),
            });
        }
        s.networks.insert(
            name.into(),
            NetworkInfo {
                name: name.into(),
                subnet: Some(subnet.into()),
                labels,
            },
        );
        Ok(())
    }

    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        let mut s = self.call(format!("remove_network {name}"))?;
        if s.containers.values().any(|(spec, _)| spec.network == name) {
            return Err(EngineError::Api {
                action: format!("removing network {name}"),
                message: "network has active endpoints".into(),
            });
        }
        s.networks.remove(name);
        Ok(())
    }

    async fn list_networks(
        &self,
        label: Option<Label<'_>>,
    ) -> Result<Vec<NetworkInfo>, EngineError> {
        let s = self.call("list_networks".into())?;
        Ok(s.networks
            .values()
            .filter(|n| label.is_none_or(|l| l.matches(&n.labels)))
            .cloned()
            .collect())
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<(), EngineError> {
        let mut s = self.call(format!("create {}", spec.name))?;
        if s.fail_create.contains(&spec.name) {
            return Err(EngineError::Api {
                action: format!("creating container {}", spec.name),
                message: "injected failure".into(),
            });
        }
        if s.containers.contains_key(&spec.name) {
            return Err(EngineError::Conflict {
                what: "container",
                name: spec.name.clone(),
            });
        }
        if let Some(holder) = &spec.join {
            if !s.containers.contains_key(holder) {
                return Err(EngineError::NotFound {
                    what: "container",
                    name: holder.clone(),
                });
            }
        } else if !s.networks.contains_key(&spec.network) {
            return Err(EngineError::NotFound {
                what: "network",
                name: spec.network.clone(),
            });
        }
        if !s.images.contains(&spec.image) {
            return Err(EngineError::NotFound {
                what: "image",
                name: spec.image.clone(),
            });
        }
        if spec.join.is_none()
            && s.containers
                .values()
                .any(|(c, _)| c.join.is_none() && c.network == spec.network && c.ip == spec.ip)
        {
            return Err(EngineError::Api {
                action: format!("creating container {}", spec.name),
                message: format!("Address {} already in use", spec.ip),
            });
        }
        let mut ports = Vec::new();
        for &(p, host) in &spec.publish {
            let host = match host {
                0 => {
                    s.next_port += 1;
                    s.next_port - 1
                }
                h => h,
            };
            ports.push((p, host));
        }
        if spec.join.is_some() {
            ports.clear();
        }
        let info = ContainerInfo {
            name: spec.name.clone(),
            state: ContainerState::Created,
            labels: spec.labels.clone(),
            ip: spec.join.is_none().then_some(spec.ip),
            ports,
            published_on: "127.0.0.1".into(),
        };
        s.containers.insert(spec.name.clone(), (spec.clone(), info));
        Ok(())
    }

    async fn download(&self, container: &str, path: &str) -> Result<Vec<u8>, EngineError> {
        let s = self.call(format!("download {container} {path}"))?;
        if !s.containers.contains_key(container) {
            return Err(EngineError::NotFound {
                what: "container",
                name: container.into(),
            });
        }
        Ok(format!("tar of {path} in {container}").into_bytes())
    }

    async fn upload(&self, container: &str, dir: &str, tar: Vec<u8>) -> Result<(), EngineError> {
        let mut s = self.call(format!("upload {container}"))?;
        if !s.containers.contains_key(container) {
            return Err(EngineError::NotFound {
                what: "container",
                name: container.into(),
            });
        }
        s.uploads
            .entry(container.into())
            .or_default()
            .push((dir.into(), tar.len()));
        Ok(())
    }

    async fn start_container(&self, name: &str) -> Result<(), EngineError> {
        let mut s = self.call(format!("start {name}"))?;
        let exit = s.exit_on_start.get(name).copied();
        let Some((spec, info)) = s.containers.get(name) else {
            return Err(EngineError::NotFound {
                what: "container",
                name: name.into(),
            });
        };
        if let Some(holder) = &spec.join {
            let running = s
                .containers
                .get(holder)
                .is_some_and(|(_, h)| h.state == ContainerState::Running);
            if !running {
                return Err(EngineError::Api {
                    action: format!("starting container {name}"),
                    message: format!("cannot join container {holder}: it is not running"),
                });
            }
        }
        let clash = info.ports.iter().map(|(_, h)| *h).find(|h| {
            s.containers.values().any(|(_, o)| {
                o.name != name
                    && o.state == ContainerState::Running
                    && o.ports.iter().any(|(_, oh)| oh == h)
            })
        });
        let forced = info
            .ports
            .first()
            .map(|(_, h)| *h)
            .filter(|_| s.port_clash.get(name).is_some_and(|n| *n > 0));
        if let Some(h) = clash.or(forced) {
            if let Some(n) = s.port_clash.get_mut(name) {
                *n = n.saturating_sub(1);
            }
            return Err(EngineError::PortTaken(format!(
                "Bind for 127.0.0.1:{h} failed: port is already allocated"
            )));
        }
        let info = &mut s.containers.get_mut(name).expect("looked up above").1;
        info.state = match exit {
            Some(code) => ContainerState::Exited(code),
            None => ContainerState::Running,
        };
        *s.starts.entry(name.to_owned()).or_default() += 1;
        Ok(())
    }

    async fn container_action(
        &self,
        name: &str,
        action: ContainerAction,
    ) -> Result<(), EngineError> {
        let mut s = self.call(format!("{action:?} {name}").to_lowercase())?;
        let Some((_, info)) = s.containers.get_mut(name) else {
            return Err(EngineError::NotFound {
                what: "container",
                name: name.into(),
            });
        };
        info.state = match action {
            ContainerAction::Kill => ContainerState::Exited(137),
            ContainerAction::Stop => ContainerState::Exited(0),
            ContainerAction::Pause => ContainerState::Paused,
            ContainerAction::Unpause => ContainerState::Running,
        };
        Ok(())
    }

    async fn update_limit(&self, name: &str, limit: Limit) -> Result<(), EngineError> {
        let mut s = self.call(format!("update {name}"))?;
        if !s.containers.contains_key(name) {
            return Err(EngineError::NotFound {
                what: "container",
                name: name.into(),
            });
        }
        let stats = s.limits.entry(name.into()).or_default();
        match limit {
            Limit::Cpu(cores) => stats.cpu_cores = cores,
            Limit::Memory(mib) => stats.memory_mib = mib,
        }
        Ok(())
    }

    async fn resource_stats(&self, name: &str) -> Result<ResourceStats, EngineError> {
        let s = self.call(format!("stats {name}"))?;
        match s.containers.contains_key(name) {
            true => Ok(s.limits.get(name).cloned().unwrap_or_default()),
            false => Err(EngineError::NotFound {
                what: "container",
                name: name.into(),
            }),
        }
    }

    async fn remove_container(&self, name: &str) -> Result<(), EngineError> {
        let mut s = self.call(format!("remove {name}"))?;
        s.containers.remove(name);
        Ok(())
    }

    async fn list_containers(&self, label: Label<'_>) -> Result<Vec<ContainerInfo>, EngineError> {
        let s = self.call("list_containers".into())?;
        Ok(s.containers
            .values()
            .map(|(_, info)| info)
            .filter(|c| label.matches(&c.labels))
            .cloned()
            .collect())
    }

    async fn logs(&self, name: &str, tail: usize) -> Result<String, EngineError> {
        let s = self.call(format!("logs {name}"))?;
        let text = s.logs.get(name).cloned().unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        Ok(lines[lines.len().saturating_sub(tail)..].join("\n"))
    }

    async fn list_volumes(&self, label: Label<'_>) -> Result<Vec<String>, EngineError> {
        let s = self.call("list_volumes".into())?;
        Ok(s.volumes
            .iter()
            .filter(|(_, l)| label.matches(l))
            .map(|(n, _)| n.clone())
            .collect())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.call(format!("remove_volume {name}"))?
            .volumes
            .remove(name);
        Ok(())
    }
}
