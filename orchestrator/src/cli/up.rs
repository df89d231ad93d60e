//! `testnet up`: plan, build or find the image, create, wait for the mesh.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{print_json, testnet, Ctx, Fail, Interrupt};
use crate::agent::HttpAgent;
use crate::config::TestnetFile;
use crate::engine::hosts::Hosts;
use crate::engine::Engine;
use crate::lifecycle::{self, UpError, UpRequest};
use crate::monitor::MonitorImages;
use crate::testnet::{HttpProbe, NodeSummary};

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    testnet up                                  # 4 validators, full mesh\n  \
    testnet up --nodes 7\n  \
    testnet up testnets/sparse-100.yaml --replace\n  \
    testnet --name demo up testnets/etcd.yaml --json\n  \
    TESTNET_NAME=demo testnet status")]
pub struct Args {
    /// A testnet file (see testnets/).
    file: Option<PathBuf>,
    /// Number of validators (overrides the file).
    #[arg(long)]
    nodes: Option<usize>,
    /// Remove a testnet of the same name first.
    #[arg(long)]
    replace: bool,
    /// Use this image instead of building one.
    #[arg(long)]
    image: Option<String>,
    /// Use this statically linked testnet-node instead of building it.
    #[arg(long, env = "TESTNET_NODE_BINARY")]
    node_binary: Option<PathBuf>,
    /// How long to wait for every node to have a full mesh.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    timeout: Duration,
    /// Print the final summary as JSON.
    #[arg(long)]
    json: bool,
    /// Also run Prometheus and Grafana with the dashboards of dashboards/
    /// (or `monitor: true` in the file).
    #[arg(long)]
    monitor: bool,
}

pub async fn exec(ctx: &Ctx, a: Args) -> Result<ExitCode, Fail> {
    let mut tf = match &a.file {
        Some(path) => TestnetFile::load(path)?,
        None => TestnetFile::default_testnet(),
    };
    let engine = super::engine_on(&tf.hosts).await?;
    if let Some(n) = a.nodes {
        tf.nodes = n;
        // The same checks as a file's `nodes:`.
        let text = serde_norway::to_string(&serde_json::json!({ "nodes": n })).unwrap_or_default();
        TestnetFile::parse(&text, "--nodes")?;
        // And with the rest of the file: validators and links must still fit.
        let problems = tf.problems();
        if !problems.is_empty() {
            return Err(Fail(format!(
                "--nodes {n} does not fit the testnet file: {}",
                problems.join("; ")
            )));
        }
    }
    let name = ctx.name_or(tf.name.as_deref());
    let who = tf.describe_nodes();
    ctx.progress(&format!(
        "bringing up testnet {name:?}: {who}, {}",
        tf.topology.describe()
    ));
    let image = match a.image.or(tf.image.clone()) {
        Some(tag) if !engine.image_exists(&tag).await? => {
            return Err(Fail(format!(
                "image {tag:?} does not exist (drop --image/image: to build one)"
            )))
        }
        Some(tag) => tag,
        None => super::image::build(ctx, &engine, a.node_binary).await?,
    };
    let node_image = match &tf.node {
        Some(spec) => {
            Some(crate::image::ensure_foreign(&engine, spec, &|l: &str| ctx.progress(l)).await?)
        }
        None => None,
    };
    let monitor = match a.monitor || tf.monitor {
        true => Some(crate::monitor::ensure_images(&engine, &|l: &str| ctx.progress(l)).await?),
        false => None,
    };
    let mut images = vec![image.as_str()];
    images.extend(node_image.as_deref());
    spread_images(ctx, &engine, &tf, &images).await?;
    let interrupt = Interrupt::listen("interrupted: tearing down what was created...");
    let (probe, agent) = (HttpProbe::default(), HttpAgent::default());
    let _lock = super::lock(&name, "up")?;
    let tn = testnet(&name, &engine, &probe);
    let stale = tn.state.stale_owner().is_some();
    if stale {
        ctx.progress(&format!("removing the stale testnet {name:?} first"));
    }
    let req = UpRequest {
        file: &tf,
        node_image: node_image.as_deref(),
        image: &image,
        readiness: a.timeout,
        replace: a.replace || stale,
        monitor: monitor.as_ref(),
        agent: &agent,
        owner: crate::state::Owner::me("up", true),
    };
    match lifecycle::up(&tn, req, &|l: &str| ctx.progress(l), &interrupt.token).await {
        Ok(summary) if a.json => print_json(&summary),
        Ok(summary) => {
            print_table(&summary);
            print_monitor(&engine, &name, monitor.as_ref()).await;
            println!("\ntestnet {name:?} is up. Next: `testnet status --name {name}`, `testnet logs --name {name} n0`, `testnet load --name {name}`, `testnet down --name {name}`");
        }
        Err(UpError::Interrupted) => {
            eprintln!("interrupted; nothing of testnet {name:?} is left");
            return Ok(interrupt.exit_code());
        }
        Err(e @ UpError::Exists(_)) => return Err(Fail(e.to_string())),
        Err(e) => {
            return Err(Fail(format!(
                "{e}\n(nothing of testnet {name:?} was left behind)"
            )))
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The node table; a HOST column when the testnet spans hosts.
pub fn print_table(nodes: &[NodeSummary]) {
    let hosts = nodes.iter().any(|n| n.host.is_some());
    let host = |h: &str| match hosts {
        true => format!("{h:<8} "),
        false => String::new(),
    };
    println!(
        "{:<6} {:<9} {}{:<22} {:<10} {:<14} {:<24} PEERS",
        "NODE",
        "ROLE",
        host("HOST"),
        "CONTAINER",
        "STATE",
        "IP",
        "HTTP"
    );
    for n in nodes {
        let peers = match (n.peers, n.expected_peers) {
            (Some(p), Some(e)) => format!("{p}/{e}"),
            _ => "-".into(),
        };
        let role = match n.validator {
            Some(true) => "validator",
            Some(false) => "full",
            None => "-",
        };
        println!(
            "{:<6} {:<9} {}{:<22} {:<10} {:<14} {:<24} {}",
            n.node,
            role,
            host(n.host.as_deref().unwrap_or("-")),
            n.container,
            n.state,
            n.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            n.http_url.as_deref().unwrap_or("-"),
            peers
        );
    }
}

/// Copies the images the nodes run (`images` and the file's per-node ones)
/// from the first host to every other that lacks them.
pub async fn spread_images(
    ctx: &Ctx,
    engine: &Hosts,
    tf: &TestnetFile,
    images: &[&str],
) -> Result<(), Fail> {
    if !engine.is_multi() {
        return Ok(());
    }
    let mut all: Vec<&str> = images.to_vec();
    all.extend(tf.node_options.values().filter_map(|o| o.image.as_deref()));
    all.dedup();
    ctx.progress(&format!(
        "hosts {}: one Swarm; copying {} image(s) where missing",
        engine.names().join(", "),
        all.len()
    ));
    for image in all {
        engine
            .spread_image(image, &|l: &str| ctx.progress(l))
            .await?;
    }
    Ok(())
}

/// The monitoring URLs under the node table, when the testnet has them.
pub async fn print_monitor(engine: &Hosts, name: &str, images: Option<&MonitorImages>) {
    let Ok(urls) = crate::monitor::urls(engine, name).await else {
        return;
    };
    if let Some(p) = &urls.prometheus {
        println!("\nprometheus  {p}");
    }
    if let Some(g) = &urls.grafana {
        println!("grafana     {g}  (dashboards: testnet / Network overview, Consensus, Ledger agreement, Node drill-down)");
    } else if let Some(note) = images.and_then(|i| i.grafana_note.as_ref()) {
        println!("grafana     -  {note}");
    }
}
