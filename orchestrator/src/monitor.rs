//! `up --monitor`: Prometheus scraping every node and agent, and Grafana with
//! the provisioned datasource and the dashboards of `dashboards/`, both on the
//! testnet's network with their ports published on 127.0.0.1.
//!
//! Images: the official ones where a registry answers. Offline, Prometheus is
//! assembled from Debian's `prometheus` package with mmdebstrap (the same way
//! as the node's base); Grafana, which Debian does not package, is skipped with
//! a message saying how to get it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::engine::{
    ContainerSpec, ContainerState, Engine, EngineError, Label, LABEL_ROLE, LABEL_TESTNET,
};
use crate::image::{debootstrap_import, short_hash, tar_of, ImageError, PULL_TIMEOUT};
use crate::nodespec::NodeSpec;
use crate::plan::{NodePlan, Plan, AGENT_PORT, HTTP_PORT};

pub const PROMETHEUS_ONLINE: &str = "prom/prometheus:v2.53.0";
pub const GRAFANA_ONLINE: &str = "grafana/grafana-oss:11.6.0";
pub const PROMETHEUS_PORT: u16 = 9090;
pub const GRAFANA_PORT: u16 = 3000;
/// How often Prometheus scrapes every node and agent.
pub const SCRAPE_INTERVAL: &str = "2s";

const MMDEBSTRAP_PROMETHEUS: &[&str] = &["--variant=minbase", "--include=prometheus", "bookworm"];
const PROMETHEUS_DOCKERFILE: &str =
    "FROM BASE\nENTRYPOINT [\"/usr/bin/prometheus\"]\nEXPOSE 9090\n";

pub const RULES: &str = include_str!("../../dashboards/prometheus/rules.yml");
const DATASOURCE: &str =
    include_str!("../../dashboards/grafana/provisioning/datasources/prometheus.yaml");
const DASHBOARD_PROVIDER: &str =
    include_str!("../../dashboards/grafana/provisioning/dashboards/testnet.yaml");
pub const DASHBOARDS: &[(&str, &str)] = &[
    (
        "network.json",
        include_str!("../../dashboards/grafana/dashboards/network.json"),
    ),
    (
        "consensus.json",
        include_str!("../../dashboards/grafana/dashboards/consensus.json"),
    ),
    (
        "ledger.json",
        include_str!("../../dashboards/grafana/dashboards/ledger.json"),
    ),
    (
        "node.json",
        include_str!("../../dashboards/grafana/dashboards/node.json"),
    ),
];

/// The images `up --monitor` runs.
#[derive(Debug, Clone)]
pub struct MonitorImages {
    pub prometheus: String,
    /// `None`: no Grafana image here (offline); Prometheus still runs.
    pub grafana: Option<String>,
    /// Why Grafana is missing, with how to get it.
    pub grafana_note: Option<String>,
}

/// Finds or builds the monitoring images, saying which path it took.
pub async fn ensure_images<E: Engine>(
    engine: &E,
    progress: &impl Fn(&str),
) -> Result<MonitorImages, ImageError> {
    let prometheus = if engine.image_exists(PROMETHEUS_ONLINE).await? {
        progress(&format!("prometheus image {PROMETHEUS_ONLINE}: cached"));
        PROMETHEUS_ONLINE.to_owned()
    } else {
        let tag = format!(
            "testnet-prometheus:bookworm-{}",
            short_hash(&[
                MMDEBSTRAP_PROMETHEUS.join(" ").as_bytes(),
                PROMETHEUS_DOCKERFILE.as_bytes()
            ])
        );
        if engine.image_exists(&tag).await? {
            progress(&format!("prometheus image {tag}: cached"));
            tag
        } else {
            match tokio::time::timeout(PULL_TIMEOUT, engine.pull_image(PROMETHEUS_ONLINE)).await {
                Ok(Ok(())) => {
                    progress(&format!("prometheus image {PROMETHEUS_ONLINE}: pulled"));
                    PROMETHEUS_ONLINE.to_owned()
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {PULL_TIMEOUT:?}"),
                    };
                    progress(&format!("prometheus image: {PROMETHEUS_ONLINE} cannot be pulled; assembling it from Debian's prometheus package with mmdebstrap (once)..."));
                    let base = format!("{}-rootfs", tag.replace(':', "-"));
                    let base = format!("{base}:latest");
                    debootstrap_import(engine, &base, MMDEBSTRAP_PROMETHEUS, &[], why).await?;
                    let dockerfile =
                        PROMETHEUS_DOCKERFILE.replace("FROM BASE", &format!("FROM {base}"));
                    let context = tar_of(&[("Dockerfile", dockerfile.as_bytes(), 0o644)]);
                    let labels =
                        BTreeMap::from([(LABEL_ROLE.to_owned(), "prometheus-image".to_owned())]);
                    engine.build_image(&tag, context, labels).await?;
                    progress(&format!("prometheus image {tag}: built (offline path)"));
                    tag
                }
            }
        }
    };
    let (grafana, grafana_note) = if engine.image_exists(GRAFANA_ONLINE).await? {
        progress(&format!("grafana image {GRAFANA_ONLINE}: cached"));
        (Some(GRAFANA_ONLINE.to_owned()), None)
    } else {
        match tokio::time::timeout(PULL_TIMEOUT, engine.pull_image(GRAFANA_ONLINE)).await {
            Ok(Ok(())) => {
                progress(&format!("grafana image {GRAFANA_ONLINE}: pulled"));
                (Some(GRAFANA_ONLINE.to_owned()), None)
            }
            _ => {
                let note = format!(
                    "Grafana skipped: {GRAFANA_ONLINE} cannot be pulled here and Debian does not package Grafana. \
                     On a machine with registry access `testnet up --monitor` runs it; or load the image \
                     (`docker save {GRAFANA_ONLINE}` elsewhere, `docker load` here) and run again. \
                     The dashboards are in dashboards/grafana/ for any Grafana pointed at the Prometheus above."
                );
                progress(&note);
                (None, Some(note))
            }
        }
    };
    Ok(MonitorImages {
        prometheus,
        grafana,
        grafana_note,
    })
}

/// `prometheus.yml` for a testnet: every node (ours `:8000/metrics`, a
/// foreign one where its `node:` section says) and agent (`:9000`), labelled
/// with the node name and testnet, and the alerting rules. A foreign node's
/// `metrics:` map renames its series to our contract's names, so the
/// dashboards and rules read them.
pub fn prometheus_config(testnet: &str, nodes: &[NodePlan], spec: Option<&NodeSpec>) -> String {
    let mut out = format!(
        "global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  evaluation_interval: {SCRAPE_INTERVAL}\n\
         rule_files:\n  - /etc/testnet-prometheus/rules.yml\n\
         scrape_configs:\n"
    );
    let node_at = match spec {
        Some(s) => s.ports.metrics.map(|p| (p, s.metrics_path.clone())),
        None => Some((HTTP_PORT, "/metrics".to_owned())),
    };
    let jobs = node_at
        .iter()
        .map(|(p, path)| ("node", *p, path.clone()))
        .chain([("agent", AGENT_PORT, "/metrics".to_owned())]);
    for (job, port, path) in jobs {
        out.push_str(&format!(
            "  - job_name: {job}\n    metrics_path: '{path}'\n"
        ));
        let renames = spec
            .map(|s| &s.metrics)
            .filter(|m| job == "node" && !m.is_empty());
        if let Some(map) = renames {
            out.push_str("    metric_relabel_configs:\n");
            for (ours, theirs) in map {
                out.push_str(&format!(
                    "      - {{source_labels: [__name__], regex: '{theirs}', target_label: __name__, replacement: '{ours}'}}\n"
                ));
            }
        }
        out.push_str("    static_configs:\n");
        for n in nodes {
            out.push_str(&format!(
                "      - targets: ['{}:{port}']\n        labels: {{node: '{}', testnet: '{testnet}'}}\n",
                n.ip, n.name
            ));
        }
    }
    out
}

/// Where the monitoring of a testnet answers on the host.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MonitorUrls {
    pub prometheus: Option<String>,
    pub grafana: Option<String>,
}

/// Starts Prometheus (and Grafana if there is an image) on the testnet's
/// network and waits until they answer.
pub async fn start<E: Engine>(
    engine: &E,
    plan: &Plan,
    images: &MonitorImages,
    progress: &(impl Fn(&str) + Sync),
) -> Result<MonitorUrls, EngineError> {
    let (testnet, network, nodes) = (plan.name.as_str(), plan.network.as_str(), &plan.nodes);
    let labels = |role: &str| {
        BTreeMap::from([
            (LABEL_TESTNET.to_owned(), testnet.to_owned()),
            (LABEL_ROLE.to_owned(), role.to_owned()),
        ])
    };
    let ip = |k: u32| plan.monitor_ip(k);
    let prom = ContainerSpec {
        name: format!("{testnet}-prometheus"),
        image: images.prometheus.clone(),
        cmd: [
            "--config.file=/etc/testnet-prometheus/prometheus.yml",
            "--storage.tsdb.path=/tmp/prometheus",
            "--storage.tsdb.retention.time=1d",
            "--web.listen-address=0.0.0.0:9090",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        labels: labels("prometheus"),
        network: network.to_owned(),
        ip: ip(0),
        publish: vec![(PROMETHEUS_PORT, 0)],
        cap_add: vec![],
        env: vec![],
        aliases: vec!["prometheus".into()],
        join: None,
        tmpfs: Vec::new(),
        volumes: Vec::new(),
    };
    let config = prometheus_config(testnet, nodes, plan.node.as_ref());
    engine.create_container(&prom).await?;
    engine
        .upload(
            &prom.name,
            "/etc",
            tar_of(&[
                (
                    "testnet-prometheus/prometheus.yml",
                    config.as_bytes(),
                    0o644,
                ),
                ("testnet-prometheus/rules.yml", RULES.as_bytes(), 0o644),
            ]),
        )
        .await?;
    engine.start_container(&prom.name).await?;
    let mut urls = MonitorUrls {
        prometheus: wait_http(engine, testnet, "prometheus", PROMETHEUS_PORT, "/-/ready").await?,
        grafana: None,
    };
    progress(&format!(
        "prometheus ready at {} (scraping {} nodes and agents every {SCRAPE_INTERVAL})",
        urls.prometheus.as_deref().unwrap_or("?"),
        nodes.len()
    ));
    if let Some(image) = &images.grafana {
        urls.grafana = start_grafana(engine, plan, image, progress).await?;
    }
    Ok(urls)
}

/// Grafana with the datasource and our dashboards provisioned; its URL once
/// it answers.
async fn start_grafana<E: Engine>(
    engine: &E,
    plan: &Plan,
    image: &str,
    progress: &(impl Fn(&str) + Sync),
) -> Result<Option<String>, EngineError> {
    let testnet = plan.name.as_str();
    let graf = ContainerSpec {
        name: format!("{testnet}-grafana"),
        image: image.to_owned(),
        cmd: vec![],
        labels: BTreeMap::from([
            (LABEL_TESTNET.to_owned(), testnet.to_owned()),
            (LABEL_ROLE.to_owned(), "grafana".to_owned()),
        ]),
        network: plan.network.clone(),
        ip: plan.monitor_ip(1),
        publish: vec![(GRAFANA_PORT, 0)],
        cap_add: vec![],
        env: [
            "GF_AUTH_ANONYMOUS_ENABLED=true",
            "GF_AUTH_ANONYMOUS_ORG_ROLE=Admin",
            "GF_AUTH_DISABLE_LOGIN_FORM=true",
            "GF_ANALYTICS_REPORTING_ENABLED=false",
            "GF_ANALYTICS_CHECK_FOR_UPDATES=false",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        aliases: vec!["grafana".into()],
        join: None,
        tmpfs: Vec::new(),
        volumes: Vec::new(),
    };
    engine.create_container(&graf).await?;
    // Provisioning under /etc/grafana, dashboards where the provider looks.
    let provisioning = tar_of(&[
        (
            "provisioning/datasources/prometheus.yaml",
            DATASOURCE.as_bytes(),
            0o644,
        ),
        (
            "provisioning/dashboards/testnet.yaml",
            DASHBOARD_PROVIDER.as_bytes(),
            0o644,
        ),
    ]);
    let paths: Vec<String> = DASHBOARDS
        .iter()
        .map(|(n, _)| format!("dashboards/{n}"))
        .collect();
    let dashboards: Vec<(&str, &[u8], u32)> = paths
        .iter()
        .zip(DASHBOARDS)
        .map(|(p, (_, json))| (p.as_str(), json.as_bytes(), 0o644))
        .collect();
    engine
        .upload(&graf.name, "/etc/grafana", provisioning)
        .await?;
    engine
        .upload(&graf.name, "/var/lib/grafana", tar_of(&dashboards))
        .await?;
    engine.start_container(&graf.name).await?;
    let url = wait_http(engine, testnet, "grafana", GRAFANA_PORT, "/api/health").await?;
    progress(&format!(
        "grafana ready at {} (anonymous admin; dashboards under testnet/)",
        url.as_deref().unwrap_or("?")
    ));
    Ok(url)
}

/// The monitoring URLs of a running testnet (for `status`).
pub async fn urls<E: Engine>(engine: &E, testnet: &str) -> Result<MonitorUrls, EngineError> {
    let containers = engine
        .list_containers(Label::testnet(Some(testnet)))
        .await?;
    let url = |role: &str, port: u16| {
        containers
            .iter()
            .filter(|c| c.state == ContainerState::Running)
            .find(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(role))
            .and_then(|c| {
                let (_, h) = c.ports.iter().find(|(p, _)| *p == port)?;
                Some(format!("http://{}:{h}", c.published_on))
            })
    };
    Ok(MonitorUrls {
        prometheus: url("prometheus", PROMETHEUS_PORT),
        grafana: url("grafana", GRAFANA_PORT),
    })
}

/// Waits (60 s at most) until `path` of the container of `role` answers 200.
async fn wait_http<E: Engine>(
    engine: &E,
    testnet: &str,
    role: &str,
    port: u16,
    path: &str,
) -> Result<Option<String>, EngineError> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let base = match role {
            "prometheus" => urls(engine, testnet).await?.prometheus,
            _ => urls(engine, testnet).await?.grafana,
        };
        if let Some(base) = &base {
            let ok = http
                .get(format!("{base}{path}"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(Some(base.clone()));
            }
        }
        if Instant::now() > deadline {
            let logs = engine
                .logs(&format!("{testnet}-{role}"), 20)
                .await
                .unwrap_or_default();
            return Err(EngineError::Build(
                format!("{testnet}-{role}"),
                format!("{role} did not answer {path} on port {port} within 60 s; its last log lines:\n{logs}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every PromQL expression the monitoring ships, as `(where, expr)`:
///
/// - `"<file>.json panel <id> \"<title>\" target <refId>"`: a panel query
///   (panels of collapsed rows too);
/// - `"<file>.json annotation \"<name>\""`: an annotation query (fault windows);
/// - `"rules.yml alert <name> value_expr"`: the value an alert compares;
/// - `"rules.yml alert <name> expr"`: the alert's condition.
///
/// All but the alert conditions return at least one series on a healthy
/// testnet; a condition returns nothing until it fires. Dashboard expressions
/// carry `$testnet` (and `$node`): see [`instantiate`].
pub fn all_expressions() -> Vec<(String, String)> {
    fn panels(file: &str, list: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or_default();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    let ref_id = t["refId"].as_str().unwrap_or_default();
                    out.push((
                        format!("{file} panel {} \"{title}\" target {ref_id}", p["id"]),
                        expr.to_owned(),
                    ));
                }
            }
            panels(file, &p["panels"], out);
        }
    }
    let mut out = Vec::new();
    for (file, text) in DASHBOARDS {
        let Ok(d) = serde_json::from_str::<serde_json::Value>(text) else {
            continue;
        };
        panels(file, &d["panels"], &mut out);
        for a in d["annotations"]["list"].as_array().into_iter().flatten() {
            if let Some(e) = a["expr"].as_str() {
                let name = a["name"].as_str().unwrap_or_default();
                out.push((format!("{file} annotation \"{name}\""), e.to_owned()));
            }
        }
    }
    if let Ok(rules) = serde_norway::from_str::<serde_norway::Value>(RULES) {
        for g in rules["groups"].as_sequence().into_iter().flatten() {
            for r in g["rules"].as_sequence().into_iter().flatten() {
                let (kind, name) = match (r["alert"].as_str(), r["record"].as_str()) {
                    (Some(a), _) => ("alert", a),
                    (None, Some(rec)) => ("record", rec),
                    (None, None) => ("rule", "?"),
                };
                if let Some(e) = r["expr"].as_str() {
                    out.push((format!("rules.yml {kind} {name} expr"), e.trim().to_owned()));
                }
                if let Some(e) = r["annotations"]["value_expr"].as_str() {
                    out.push((
                        format!("rules.yml {kind} {name} value_expr"),
                        e.trim().to_owned(),
                    ));
                }
            }
        }
    }
    out
}

/// An expression with the dashboards' variables filled in for `testnet`.
pub fn instantiate(expr: &str, testnet: &str, node: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("${__rate_interval}", "1m")
        .replace("$__interval", "10s")
        .replace("${__interval}", "10s")
        .replace("$__range", "5m")
        .replace("${testnet}", testnet)
        .replace("$testnet", testnet)
        .replace("${node}", node)
        .replace("$node", node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn every_node_and_agent_is_a_labelled_target() {
        let nodes: Vec<NodePlan> = (0..3)
            .map(|i| NodePlan {
                http_port: 0,
                validator: true,
                neighbours: None,
                host: None,
                agent_port: 0,
                metrics_port: 0,
                name: format!("n{i}"),
                container: format!("t-n{i}"),
                ip: Ipv4Addr::new(10, 77, 1, 10 + i),
                bugs: vec![],
                disk_mib: None,
                image: None,
            })
            .collect();
        let text = prometheus_config("t", &nodes, None);
        let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        let jobs = doc["scrape_configs"].as_sequence().unwrap();
        assert_eq!(jobs.len(), 2);
        for (job, port) in [(&jobs[0], 8000), (&jobs[1], 9000)] {
            let targets = job["static_configs"].as_sequence().unwrap();
            assert_eq!(targets.len(), 3);
            assert_eq!(
                targets[2]["targets"][0].as_str().unwrap(),
                format!("10.77.1.12:{port}")
            );
            assert_eq!(targets[2]["labels"]["node"].as_str().unwrap(), "n2");
            assert_eq!(targets[2]["labels"]["testnet"].as_str().unwrap(), "t");
        }
        assert_eq!(doc["global"]["scrape_interval"].as_str().unwrap(), "2s");
        // A foreign node: its port and path, its names mapped to ours.
        let spec: NodeSpec = serde_norway::from_str(
            "image: etcd\ncommand: [etcd]\nports: { p2p: 2380, metrics: 2381 }\n\
             metrics_path: /m\nmetrics: { testnet_peers: etcd_network_active_peers }\n",
        )
        .unwrap();
        let text = prometheus_config("t", &nodes, Some(&spec));
        let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        let node = &doc["scrape_configs"][0];
        assert_eq!(node["metrics_path"].as_str().unwrap(), "/m");
        assert_eq!(
            node["static_configs"][1]["targets"][0].as_str().unwrap(),
            "10.77.1.11:2381"
        );
        let rename = &node["metric_relabel_configs"][0];
        assert_eq!(
            rename["regex"].as_str().unwrap(),
            "etcd_network_active_peers"
        );
        assert_eq!(rename["replacement"].as_str().unwrap(), "testnet_peers");
        assert_eq!(
            doc["scrape_configs"][1]["job_name"].as_str().unwrap(),
            "agent"
        );
    }
}
