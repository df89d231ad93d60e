//! The node under test when it is not ours: a testnet file's `node:` section.
//!
//! ```yaml
//! nodes: 3
//! node:
//!   packages: [etcd-server]            # or image: quay.io/coreos/etcd:v3.5.17
//!   command: [etcd, --name, "{name}", --initial-cluster, "{peers}", ...]
//!   peer_format: "{name}=http://{ip}:2380"
//!   peer_separator: ","
//!   env: { ETCD_DATA_DIR: /var/lib/etcd }
//!   ports: { p2p: 2380, api: 2379, metrics: 2379 }
//!   metrics_path: /metrics
//!   ready: { http: /health }           # or { metric: etcd_server_has_leader, op: "==", value: 1 }
//!   data_dir: /var/lib/etcd
//!   faketime: false                    # true: clock faults through libfaketime
//! ```
//! Placeholders in `command`, `env` and `peer_format`: `{name}`, `{index}`,
//! `{ip}`; in `command` and `env` also `{peers}` (every node, itself included,
//! each as `peer_format`, joined by `peer_separator`) and `{neighbours}` (its
//! topology neighbours only). Each node runs in a container of its own that
//! joins a holder container of ours (the agent: faults, process signals).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::op::Op;
use testnet_node::agent::faketime;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// An image to run (pulled where missing and a registry answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Debian packages to assemble an image from, offline (instead of `image`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// The container's command (after the image's entrypoint, if it has one).
    pub command: Vec<String>,
    #[serde(default = "default_peer_format")]
    pub peer_format: String,
    #[serde(default = "default_separator")]
    pub peer_separator: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub ports: NodePorts,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// When a node counts as up (default: something listens on its p2p port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<Ready>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
    /// Our contract's metric names -> this node's equivalents.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, String>,
    /// Preload libfaketime in the node's container so clock faults reach it
    /// (dynamically linked glibc binaries only: not Go, static or musl ones).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub faketime: bool,
}

fn default_peer_format() -> String {
    "{ip}".into()
}

fn default_separator() -> String {
    ",".into()
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodePorts {
    /// Where nodes connect to each other (connectivity is judged on it).
    pub p2p: u16,
    /// The client API, published on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<u16>,
    /// Where `metrics_path` is served (default: none scraped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<u16>,
}

/// `{ http: /health }` (a 2xx on the API port) or `{ metric: NAME, op, value }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<Op>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// What one node's placeholders stand for.
pub struct Slot<'a> {
    pub name: &'a str,
    pub index: usize,
    pub ip: Ipv4Addr,
}

const PLACEHOLDERS: &str = "{name}, {index}, {ip}, {peers}, {neighbours}";

/// Replaces the placeholders of `template`; an unknown `{...}` is an error
/// naming it and the known ones (`{{` and `}}` stand for braces).
pub fn expand(template: &str, vars: &BTreeMap<&str, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = [rest.find("{"), rest.find("}")].into_iter().flatten().min() {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{{").or_else(|| tail.strip_prefix("}}")) {
            out.push_str(&tail[..1]);
            rest = t;
            continue;
        }
        let Some(end) = tail.find("}").filter(|_| tail.starts_with("{")) else {
            return Err(format!(
                "unmatched brace in {template:?} (write }}}} for a brace)"
            ));
        };
        let key = &tail[1..end];
        match vars.get(key) {
            Some(v) => out.push_str(v),
            None => {
                return Err(format!(
                    "unknown placeholder {{{key}}} in {template:?}; known: {PLACEHOLDERS}"
                ))
            }
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl NodeSpec {
    fn slot_vars(slot: &Slot<'_>) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("name", slot.name.to_owned()),
            ("index", slot.index.to_string()),
            ("ip", slot.ip.to_string()),
        ])
    }

    fn peer_list(&self, slots: &[&Slot<'_>]) -> Result<String, String> {
        let each: Result<Vec<String>, String> = slots
            .iter()
            .map(|s| expand(&self.peer_format, &Self::slot_vars(s)))
            .collect();
        Ok(each?.join(&self.peer_separator))
    }

    /// The command and `KEY=value` environment of `all[me]`, whose topology
    /// neighbours are `neighbours` (indices into `all`).
    pub fn resolve(
        &self,
        all: &[Slot<'_>],
        me: usize,
        neighbours: &[usize],
    ) -> Result<(Vec<String>, Vec<String>), String> {
        let mut vars = Self::slot_vars(&all[me]);
        vars.insert("peers", self.peer_list(&all.iter().collect::<Vec<_>>())?);
        let near: Vec<&Slot<'_>> = neighbours.iter().filter_map(|j| all.get(*j)).collect();
        vars.insert("neighbours", self.peer_list(&near)?);
        let command = self
            .command
            .iter()
            .map(|a| expand(a, &vars))
            .collect::<Result<_, _>>()?;
        let mut env: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| Ok(format!("{k}={}", expand(v, &vars)?)))
            .collect::<Result<_, String>>()?;
        if self.faketime {
            env.extend(faketime::env().into_iter().map(|(k, v)| format!("{k}={v}")));
        }
        Ok((command, env))
    }

    /// Everything wrong with the section; `agent_port` is the port the
    /// holder's agent takes in the node's network namespace.
    pub fn problems(&self, agent_port: u16) -> Vec<String> {
        let mut p = Vec::new();
        match (&self.image, self.packages.is_empty()) {
            (Some(_), false) => p.push("node: give `image` or `packages`, not both".into()),
            (None, true) => p.push(
                "node: say where the node comes from: `image: REF` (pulled) or \
                 `packages: [DEBIAN-PACKAGE, ...]` (assembled offline)"
                    .into(),
            ),
            _ => {}
        }
        if self.command.is_empty() {
            p.push("node.command: empty; give the node's command line as a list".into());
        }
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let probe = [Slot {
            name: "n0",
            index: 0,
            ip,
        }];
        if let Err(e) = self.resolve(&probe, 0, &[]) {
            p.push(format!("node: {e}"));
        }
        let ports = [Some(self.ports.p2p), self.ports.api, self.ports.metrics];
        if ports.contains(&Some(0)) {
            p.push("node.ports: 0 is not a port".into());
        }
        if ports.contains(&Some(agent_port)) {
            p.push(format!(
                "node.ports: {agent_port} is the agent's control port in the node's network \
                 namespace; the node must not listen on it"
            ));
        }
        if !self.metrics_path.starts_with('/') {
            p.push(format!(
                "node.metrics_path: {:?} must start with '/'",
                self.metrics_path
            ));
        }
        if let Some(r) = &self.ready {
            p.extend(self.ready_problems(r));
        }
        let ours = faketime::env();
        if self.faketime {
            for k in self
                .env
                .keys()
                .filter(|k| ours.iter().any(|(o, _)| o == *k))
            {
                p.push(format!(
                    "node.env.{k}: `faketime: true` sets it (libfaketime); leave it out"
                ));
            }
        }
        for ours in self.metrics.keys().filter(|k| !k.starts_with("testnet_")) {
            p.push(format!(
                "node.metrics.{ours}: keys are our contract's metric names (testnet_...), \
                 values the node's own, e.g. {{ testnet_peers: etcd_network_active_peers }}"
            ));
        }
        p
    }

    fn ready_problems(&self, r: &Ready) -> Vec<String> {
        match (&r.http, &r.metric) {
            (Some(_), None) if self.ports.api.is_none() => {
                vec!["node.ready.http: needs `ports.api` (the port it is asked on)".into()]
            }
            (Some(path), None) if !path.starts_with('/') => {
                vec![format!("node.ready.http: {path:?} must start with '/'")]
            }
            (Some(_), None) if r.op.is_some() || r.value.is_some() => {
                vec!["node.ready: `op` and `value` go with `metric`, not `http`".into()]
            }
            (Some(_), None) => vec![],
            (None, Some(_)) if self.ports.metrics.is_none() => {
                vec!["node.ready.metric: needs `ports.metrics` (where metrics are served)".into()]
            }
            (None, Some(_)) if r.op.is_none() || r.value.is_none() => {
                vec!["node.ready.metric: give `op` and `value` too, e.g. { metric: up, op: \"==\", value: 1 }".into()]
            }
            (None, Some(_)) => vec![],
            _ => vec![
                "node.ready: give one of `http: /PATH` or `metric: NAME` (with op and value)"
                    .into(),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etcd() -> NodeSpec {
        serde_norway::from_str(
            "packages: [etcd-server]\n\
             command: [etcd, --name, '{name}', --initial-cluster, '{peers}', --listen-peer-urls, 'http://{ip}:2380']\n\
             peer_format: '{name}=http://{ip}:2380'\n\
             env: { ETCD_DATA_DIR: '/var/lib/etcd/{name}' }\n\
             ports: { p2p: 2380, api: 2379, metrics: 2379 }\n\
             ready: { http: /health }\n",
        )
        .unwrap()
    }

    #[test]
    fn placeholders_expand_per_node() {
        let spec = etcd();
        assert!(spec.problems(9000).is_empty(), "{:?}", spec.problems(9000));
        let all: Vec<Slot> = (0..3)
            .map(|i| Slot {
                name: ["n0", "n1", "n2"][i],
                index: i,
                ip: Ipv4Addr::new(10, 77, 0, 10 + i as u8),
            })
            .collect();
        let (cmd, env) = spec.resolve(&all, 1, &[0, 2]).unwrap();
        assert_eq!(cmd[2], "n1");
        assert_eq!(
            cmd[4],
            "n0=http://10.77.0.10:2380,n1=http://10.77.0.11:2380,n2=http://10.77.0.12:2380"
        );
        assert_eq!(cmd[6], "http://10.77.0.11:2380");
        assert_eq!(env, ["ETCD_DATA_DIR=/var/lib/etcd/n1"]);
        let vars = BTreeMap::from([("ip", "1.2.3.4".to_owned())]);
        assert_eq!(expand("{{json}} {ip}", &vars).unwrap(), "{json} 1.2.3.4");
        assert_eq!(
            expand(
                "{neighbours}",
                &BTreeMap::from([("neighbours", String::new())])
            )
            .unwrap(),
            ""
        );
    }

    #[test]
    fn mistakes_are_named_with_the_fix() {
        let mut spec = etcd();
        spec.command.push("{hostname}".into());
        spec.image = Some("etcd:3.5".into());
        spec.ports.api = None;
        spec.ports.p2p = 9000;
        let p = spec.problems(9000).join("\n");
        assert!(
            p.contains("unknown placeholder {hostname}") && p.contains("{peers}"),
            "{p}"
        );
        assert!(p.contains("`image` or `packages`, not both"), "{p}");
        assert!(p.contains("node.ready.http: needs `ports.api`"), "{p}");
        assert!(p.contains("agent's control port"), "{p}");
        let mut spec = etcd();
        spec.packages.clear();
        spec.ready = Some(Ready {
            http: None,
            metric: Some("up".into()),
            op: None,
            value: None,
        });
        spec.command = vec!["x {oops".into()];
        let p = spec.problems(9000).join("\n");
        assert!(p.contains("`image: REF`"), "{p}");
        assert!(p.contains("give `op` and `value` too"), "{p}");
        assert!(p.contains("unmatched brace"), "{p}");
    }
}
