//! `testnet`: parses the command line and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use testnet::config::{check_name, TestnetFile};
use testnet::engine::docker::DockerEngine;
use testnet::engine::{Engine, Label};
use testnet::testnet::{self as net, HttpProbe, NodeSummary, UpRequest};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "testnet",
    version,
    about = "Multi-node blockchain testnets in Docker: bring up, break, check"
)]
struct Cli {
    /// Which testnet (many can run side by side).
    #[arg(long, global = true)]
    name: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bring up a testnet (the embedded 4-node default without FILE) and wait for
    /// a full mesh.
    Up {
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
    },
    /// Nodes, state, IPs, HTTP URLs, peers.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// A node's logs (all nodes without NODE).
    Logs {
        node: Option<String>,
        #[arg(long)]
        follow: bool,
        #[arg(long, default_value_t = 100)]
        tail: usize,
    },
    /// Remove every container, network and volume of the testnet (or of all).
    Down {
        #[arg(long)]
        all: bool,
    },
    /// Inject faults: partitions, delay, loss, heal, and process faults on one node.
    Chaos {
        /// Network faults heal by themselves after this long unless applied again
        /// (what a scenario runner does; a killed one stops renewing).
        #[arg(long, value_parser = humantime::parse_duration, global = true)]
        lease: Option<Duration>,
        #[command(subcommand)]
        fault: Chaos,
    },
    /// Export the testnet in another format.
    #[command(subcommand)]
    Export(Export),
    /// Build the node image explicitly (what `up` does when it is missing).
    #[command(subcommand)]
    Image(ImageCmd),
    /// Send payments (and double spends) to nodes and check they finalize
    /// everywhere. Exit 0 healthy, 1 an invariant broke, 2 an error.
    Load(testnet::load::LoadArgs),
    /// Run a scenario: up, workload and fault timeline, invariant checks, report,
    /// down. Exit 0 when every invariant holds, 1 when one is violated, 2 on an
    /// error of the tool.
    Run {
        /// A scenario file (see testnets/*.scenario.yaml).
        file: PathBuf,
        /// Where to write report.json, junit.xml, report.html (and debug/ on
        /// failure). Default: testnet-report/<scenario>.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Leave the testnet running afterwards.
        #[arg(long)]
        keep: bool,
        #[arg(long)]
        image: Option<String>,
        #[arg(long, env = "TESTNET_NODE_BINARY")]
        node_binary: Option<PathBuf>,
        #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
        timeout: Duration,
    },
    /// Evaluate the invariants that need no workload on a running testnet
    /// (handshakes, mesh, UTXO agreement, safety, processes). Exit 0 or 1.
    Check {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Chaos {
    /// Split into groups that only talk within themselves: `partition n0,n1 n2,n3`
    /// (nodes in no group are isolated), or a Jepsen shape: `partition --shape
    /// halves|bridge|majorities-ring|isolate:n2`.
    Partition {
        #[arg(required_unless_present = "shape")]
        groups: Vec<String>,
        #[arg(long, conflicts_with = "groups")]
        shape: Option<String>,
    },
    /// Remove every network fault (back to the latency zones, if any), or only
    /// those of the named nodes and of the links to them.
    Heal { nodes: Vec<String> },
    /// Hold every packet leaving --nodes (towards --to, default all) this long.
    Delay {
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        #[arg(long)]
        ms: u32,
        #[arg(long, default_value_t = 0)]
        jitter_ms: u32,
        /// Share of packets sent at once, overtaking the held ones (netem's reorder).
        #[arg(long, default_value_t = 0.0)]
        reorder_percent: f64,
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
    },
    /// Send a copy of this share of packets leaving --nodes (towards --to).
    Duplicate {
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        #[arg(long)]
        percent: f64,
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
    },
    /// Change the latency between two zones of the testnet file while it runs
    /// (both ways unless --one-way); a heal keeps it.
    Latency {
        from_zone: String,
        to_zone: String,
        #[arg(long)]
        ms: u32,
        #[arg(long)]
        one_way: bool,
    },
    /// Cap the egress bandwidth of --nodes (0 removes the cap).
    Bandwidth {
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        #[arg(long)]
        kbit: u32,
    },
    /// Drop this share of packets leaving --nodes (towards --to, default all).
    Loss {
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        #[arg(long)]
        percent: f64,
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
    },
    /// Read back every node's fault rules.
    Show,
    /// SIGKILL the node process (the container and its network stay), or with
    /// --container the whole container.
    Kill(Target),
    /// Start a killed or stopped node process (or container: its faults are
    /// applied again once it is back).
    Start(Target),
    /// Kill and start the node process (or container, faults re-applied).
    Restart(Target),
    /// SIGTERM the node process, graceful (or stop the container).
    Stop(Target),
    /// SIGSTOP the node process (or freeze the container).
    Pause(Target),
    /// SIGCONT a paused node process (or thaw the container).
    Resume(Target),
}

#[derive(clap::Args)]
struct Target {
    node: String,
    /// Act on the container instead of the node process: its network namespace
    /// is recreated, and the orchestrator re-applies the node's faults on start.
    #[arg(long)]
    container: bool,
}

#[derive(Subcommand)]
enum Export {
    /// A docker-compose file equivalent to the testnet (genesis and keys beside it).
    Compose {
        /// Where to write it (default docker-compose.<name>.yml).
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Build (or find cached) the base and node images.
    Build {
        #[arg(long, env = "TESTNET_NODE_BINARY")]
        node_binary: Option<PathBuf>,
    },
}

/// The monitoring URLs under the node table, when the testnet has them.
async fn print_monitor(
    engine: &DockerEngine,
    name: &str,
    images: Option<&testnet::monitor::MonitorImages>,
) {
    let Ok(urls) = testnet::monitor::urls(engine, name).await else {
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

/// A percentage option as per mille.
fn per_mille(percent: f64) -> Result<u32, Fail> {
    testnet::chaos::per_mille(percent)
        .ok_or_else(|| Fail(format!("{percent}% is not between 0 and 100")))
}

/// An error that ends the command with exit code 2.
struct Fail(String);

impl<E: std::fmt::Display> From<E> for Fail {
    fn from(e: E) -> Self {
        Fail(e.to_string())
    }
}

fn progress_printer() -> impl Fn(&str) + Sync {
    let start = Instant::now();
    move |line: &str| eprintln!("[{:>6.1}s] {line}", start.elapsed().as_secs_f64())
}

fn print_table(nodes: &[NodeSummary]) {
    println!(
        "{:<6} {:<22} {:<10} {:<14} {:<24} PEERS",
        "NODE", "CONTAINER", "STATE", "IP", "HTTP"
    );
    for n in nodes {
        let peers = match (n.peers, n.expected_peers) {
            (Some(p), Some(e)) => format!("{p}/{e}"),
            _ => "-".into(),
        };
        println!(
            "{:<6} {:<22} {:<10} {:<14} {:<24} {}",
            n.node,
            n.container,
            n.state,
            n.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            n.http_url.as_deref().unwrap_or("-"),
            peers
        );
    }
}

async fn build_image(
    engine: &DockerEngine,
    node_binary: Option<PathBuf>,
    progress: &(impl Fn(&str) + Sync),
) -> Result<String, Fail> {
    let binary = match node_binary {
        Some(b) => b,
        None => testnet::image::build_static_node(progress).await?,
    };
    let built = testnet::image::ensure_node_image(engine, &binary, progress).await?;
    Ok(built.tag)
}

async fn run(cli: Cli) -> Result<ExitCode, Fail> {
    if let Some(n) = &cli.name {
        check_name(n).map_err(Fail)?;
    }
    let progress = progress_printer();
    match cli.command {
        Command::Load(mut args) => {
            if args.endpoints.is_empty() {
                let name = cli.name.clone().unwrap_or_else(|| "default".into());
                let engine = DockerEngine::connect().await?;
                let summary = net::status(&engine, &HttpProbe::default(), &name).await?;
                if summary.is_empty() {
                    return Err(Fail(format!("no testnet named {name:?} is running; give --endpoint URLs or `testnet up --name {name}`")));
                }
                args.endpoints = summary.iter().filter_map(|s| s.http_url.clone()).collect();
                let dir = net::state_dir(&name);
                args.genesis.get_or_insert(dir.join("genesis.json"));
                args.faucet_key.get_or_insert(dir.join("faucet.key"));
            }
            let report = testnet::load::run(&args).await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("report serializes")
                );
            } else {
                println!("{report}");
            }
            if report.healthy() {
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("testnet load: invariants violated (see the report above)");
            return Ok(ExitCode::from(1));
        }
        Command::Export(Export::Compose { file }) => {
            let name = cli.name.unwrap_or_else(|| "default".into());
            let out = file.unwrap_or_else(|| PathBuf::from(format!("docker-compose.{name}.yml")));
            testnet::compose::export(&name, &out)?;
            println!("wrote {} (with genesis.json and node keys beside it); run it with `docker-compose -f {} up`", out.display(), out.display());
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let engine = DockerEngine::connect().await?;
    engine.ping().await?;
    let probe = HttpProbe::default();
    match cli.command {
        Command::Up {
            file,
            nodes,
            replace,
            image,
            node_binary,
            timeout,
            json,
            monitor,
        } => {
            let mut tf = match &file {
                Some(path) => TestnetFile::load(path)?,
                None => TestnetFile::default_testnet(),
            };
            if let Some(n) = nodes {
                tf.nodes = n;
                let text = serde_yaml_ng::to_string(&serde_json::json!({ "nodes": n }))
                    .unwrap_or_default();
                TestnetFile::parse(&text, "--nodes")?;
            }
            let name = cli
                .name
                .or(tf.name.clone())
                .unwrap_or_else(|| "default".into());
            progress(&format!(
                "bringing up testnet {name:?}: {} validators",
                tf.nodes
            ));
            let image = match image.or(tf.image.clone()) {
                Some(tag) => {
                    if !engine.image_exists(&tag).await? {
                        return Err(Fail(format!(
                            "image {tag:?} does not exist (drop --image/image: to build one)"
                        )));
                    }
                    tag
                }
                None => build_image(&engine, node_binary, &progress).await?,
            };
            let monitor_images = if monitor || tf.monitor {
                Some(testnet::monitor::ensure_images(&engine, &progress).await?)
            } else {
                None
            };
            let cancel = CancellationToken::new();
            let on_signal = cancel.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("interrupted: tearing down what was created...");
                    on_signal.cancel();
                }
            });
            let req = UpRequest {
                name: &name,
                file: &tf,
                image: &image,
                readiness: timeout,
                replace,
                monitor: monitor_images.as_ref(),
            };
            match net::up(&engine, &probe, req, &progress, &cancel).await {
                Ok(summary) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&summary).expect("summary serializes")
                        );
                    } else {
                        print_table(&summary);
                        print_monitor(&engine, &name, monitor_images.as_ref()).await;
                        println!("\ntestnet {name:?} is up. Next: `testnet status --name {name}`, `testnet logs --name {name} n0`, `testnet load --name {name}`, `testnet down --name {name}`");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(net::UpError::Interrupted) => {
                    eprintln!("interrupted; nothing of testnet {name:?} is left");
                    Ok(ExitCode::from(130))
                }
                Err(e @ net::UpError::Exists(_)) => Err(Fail(e.to_string())),
                Err(e) => Err(Fail(format!(
                    "{e}\n(nothing of testnet {name:?} was left behind)"
                ))),
            }
        }
        Command::Status { json } => {
            let name = cli.name.unwrap_or_else(|| "default".into());
            let summary = net::status(&engine, &probe, &name).await?;
            if summary.is_empty() {
                return Err(Fail(format!(
                    "no testnet named {name:?} is running (`testnet up --name {name}`)"
                )));
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&summary).expect("summary serializes")
                );
            } else {
                print_table(&summary);
                print_monitor(&engine, &name, None).await;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs { node, follow, tail } => {
            let name = cli.name.unwrap_or_else(|| "default".into());
            let nodes = engine.list_containers(Label::testnet(Some(&name))).await?;
            if nodes.is_empty() {
                return Err(Fail(format!("no testnet named {name:?} is running")));
            }
            let chosen: Vec<_> = match &node {
                Some(n) => {
                    let c = nodes
                        .iter()
                        .find(|c| c.labels.get(testnet::engine::LABEL_NODE) == Some(n))
                        .ok_or_else(|| {
                            let known: Vec<_> = nodes
                                .iter()
                                .filter_map(|c| c.labels.get(testnet::engine::LABEL_NODE).cloned())
                                .collect();
                            Fail(format!(
                                "no node {n:?} in testnet {name:?}; nodes are {}",
                                known.join(", ")
                            ))
                        })?;
                    vec![c.clone()]
                }
                None => nodes,
            };
            if follow {
                let follows = chosen.iter().map(|c| {
                    let prefix = if node.is_some() {
                        String::new()
                    } else {
                        format!("{}| ", c.name)
                    };
                    let engine = &engine;
                    async move { engine.follow_logs(&c.name, tail, &prefix).await }
                });
                for r in futures::future::join_all(follows).await {
                    r?;
                }
            } else {
                for c in &chosen {
                    for line in engine.logs(&c.name, tail).await?.lines() {
                        if node.is_some() {
                            println!("{line}");
                        } else {
                            println!("{}| {line}", c.name);
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Down { all } => {
            let name = cli.name.unwrap_or_else(|| "default".into());
            let removed = net::down(&engine, if all { None } else { Some(&name) }).await?;
            println!(
                "removed {} containers, {} networks, {} volumes{}",
                removed.containers.len(),
                removed.networks.len(),
                removed.volumes.len(),
                if all {
                    " (all testnets)".to_owned()
                } else {
                    format!(" of testnet {name:?}")
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Chaos { lease, fault: c } => {
            let name = cli.name.unwrap_or_else(|| "default".into());
            use testnet::chaos::{self, ProcessFault};
            let one = |t: Target, f: ProcessFault| (t, f);
            let (target, fault) = match c {
                Chaos::Partition {
                    shape: Some(kind), ..
                } => {
                    let Some(kind) = chaos::parse_shape(&kind) else {
                        return Err(Fail(format!(
                            "unknown shape {kind:?}: use halves, bridge, majorities-ring or isolate:NODE"
                        )));
                    };
                    chaos::partition_shape(&engine, &probe, &name, kind, lease).await?;
                    return Ok(ExitCode::SUCCESS);
                }
                Chaos::Partition { groups, .. } => {
                    let groups: Vec<Vec<String>> = groups
                        .iter()
                        .map(|g| {
                            g.split(',')
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned)
                                .collect()
                        })
                        .collect();
                    chaos::partition_groups(&engine, &probe, &name, &groups, lease).await?;
                    return Ok(ExitCode::SUCCESS);
                }
                Chaos::Heal { nodes } => {
                    if nodes.is_empty() {
                        chaos::heal(&engine, &probe, &name).await?;
                    } else {
                        chaos::heal_nodes(&engine, &probe, &name, &nodes).await?;
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                Chaos::Delay {
                    nodes,
                    ms,
                    jitter_ms,
                    reorder_percent,
                    to,
                } => {
                    let reorder_per_mille = per_mille(reorder_percent)?;
                    let fault = if ms > 0 {
                        chaos::LinkFault::Delay(testnet_node::faults::Delay {
                            ms,
                            jitter_ms,
                            reorder_per_mille,
                        })
                    } else {
                        chaos::LinkFault::ClearDelay
                    };
                    chaos::link(&engine, &probe, &name, &nodes, &to, fault, lease).await?;
                    return Ok(ExitCode::SUCCESS);
                }
                Chaos::Bandwidth { nodes, kbit } => {
                    let kbit = (kbit > 0).then_some(kbit);
                    chaos::bandwidth(&engine, &probe, &name, &nodes, kbit, lease).await?;
                    return Ok(ExitCode::SUCCESS);
                }
                Chaos::Loss { nodes, percent, to } => {
                    let fault = match per_mille(percent)? {
                        0 => chaos::LinkFault::ClearLoss,
                        p => chaos::LinkFault::Loss(p),
                    };
                    chaos::link(&engine, &probe, &name, &nodes, &to, fault, lease).await?;
                    return Ok(ExitCode::SUCCESS);
                }
                Chaos::Duplicate { nodes, percent, to } => {
                    let fault = match per_mille(percent)? {
                        0 => chaos::LinkFault::ClearDuplicate,
                        p => chaos::LinkFault::Duplicate(p),
                    };
                    chaos::link(&engine, &probe, &name, &nodes, &to, fault, lease).await?;
                    return Ok(ExitCode::SUCCESS);
                }
                Chaos::Latency {
                    from_zone,
                    to_zone,
                    ms,
                    one_way,
                } => {
                    chaos::zone_latency(&engine, &probe, &name, &from_zone, &to_zone, ms, one_way)
                        .await?;
                    return Ok(ExitCode::SUCCESS);
                }
                Chaos::Show => {
                    for (node, report) in chaos::read(&engine, &probe, &name).await? {
                        println!(
                            "{node}: {}",
                            serde_json::to_string(&report).expect("report serializes")
                        );
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                Chaos::Kill(t) => one(t, ProcessFault::Kill),
                Chaos::Start(t) => one(t, ProcessFault::Start),
                Chaos::Restart(t) => one(t, ProcessFault::Restart),
                Chaos::Stop(t) => one(t, ProcessFault::Stop),
                Chaos::Pause(t) => one(t, ProcessFault::Pause),
                Chaos::Resume(t) => one(t, ProcessFault::Resume),
            };
            let node = target.node;
            if target.container {
                let done = chaos::container(&engine, &probe, &name, &node, fault).await?;
                println!("{node}: container {done}");
                return Ok(ExitCode::SUCCESS);
            }
            let report = chaos::process(&engine, &probe, &name, &node, fault).await?;
            println!(
                "{node}: {}",
                serde_json::to_string(&report).expect("report serializes")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Image(ImageCmd::Build { node_binary }) => {
            let tag = build_image(&engine, node_binary, &progress).await?;
            println!("{tag}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            file,
            report,
            keep,
            image,
            node_binary,
            timeout,
        } => {
            let scenario = testnet::scenario::Scenario::load(&file)?;
            let name = cli.name.unwrap_or_else(|| scenario.name.clone());
            let image = match image.or(scenario.testnet.image.clone()) {
                Some(tag) => tag,
                None => build_image(&engine, node_binary, &progress).await?,
            };
            let cancel = CancellationToken::new();
            let on_signal = cancel.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("interrupted: healing and tearing down...");
                    on_signal.cancel();
                }
            });
            let opts = testnet::run::RunOptions {
                name,
                image,
                report_dir: report
                    .unwrap_or_else(|| PathBuf::from("testnet-report").join(&scenario.name)),
                keep,
                readiness: timeout,
            };
            progress(&format!(
                "scenario {}: {} validators, {} timeline steps",
                scenario.name,
                scenario.testnet.nodes,
                scenario.timeline.len()
            ));
            let report = testnet::run::run(&engine, &probe, &scenario, &opts, &progress, &cancel)
                .await
                .map_err(|e| {
                    Fail(format!(
                        "{e} (report, if any, in {})",
                        opts.report_dir.display()
                    ))
                })?;
            for v in &report.verdicts {
                println!(
                    "{} {:<40} {}",
                    if v.passed { "PASS" } else { "FAIL" },
                    v.invariant,
                    v.summary
                );
            }
            println!(
                "scenario {}: {}; report in {}",
                report.scenario,
                if report.passed { "passed" } else { "FAILED" },
                opts.report_dir.display()
            );
            Ok(if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Check { json } => {
            let name = cli.name.unwrap_or_else(|| "default".into());
            let verdicts = testnet::run::check(&engine, &probe, &name).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&verdicts).expect("verdicts serialize")
                );
            } else {
                for v in &verdicts {
                    println!(
                        "{} {:<20} {}",
                        if v.passed { "PASS" } else { "FAIL" },
                        v.invariant,
                        v.summary
                    );
                    for d in v.details.iter().skip(1) {
                        println!("     {d}");
                    }
                }
            }
            Ok(if verdicts.iter().all(|v| v.passed) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Load(_) | Command::Export(_) => {
            unreachable!("handled before connecting to Docker")
        }
    }
}

fn main() -> ExitCode {
    // `testnet status | head` must end quietly, not panic on a closed pipe.
    // SAFETY: restoring the default disposition of SIGPIPE at start-up.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(Fail(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
