//! The `testnet-node` command line: parses it and calls the library. The
//! `testnet-node` binary is [`main`]; so is the orchestrator's
//! `testnet-image-node`, the node the image ships, linked from the
//! orchestrator's own build artefacts.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::genesis::{Addressing, Genesis};
use crate::{Keypair, Node, NodeSetup, SimulatedBug};
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use tracing::{error, info};
use tracing_subscriber::filter::{LevelFilter, Targets};

#[derive(Parser)]
#[command(
    name = "testnet-node",
    version,
    about = "A small blockchain node for testnets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write genesis.json and the keys of every node and of the faucet.
    Genesis(GenesisArgs),
    /// Run a node.
    Run(RunArgs),
    /// Run the in-container agent: supervise COMMAND (the node) and apply faults
    /// asked for on the control API. Needs NET_ADMIN; the node needs nothing.
    Agent(AgentArgs),
}

#[derive(Args)]
struct AgentArgs {
    /// Control API listen address.
    #[arg(long, default_value = "0.0.0.0:9000")]
    control: SocketAddr,
    /// Run no node: hold the network and PID namespaces that the node's own
    /// container joins (any image), and fault its processes by signals.
    #[arg(long, conflicts_with = "command")]
    holder: bool,
    /// The node's own API, for faults through its live seams (`/clock`,
    /// `/byzantine`); our node: `http://127.0.0.1:8000`.
    #[arg(long)]
    node_api: Option<String>,
    /// The node's data dir, for disk faults (filled only if it is a tmpfs).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Holder mode: the node's container preloads libfaketime, and clock
    /// faults write its spec file (`/.testnet-faketime/clock`).
    #[arg(long, requires = "holder")]
    faketime: bool,
    /// The node's command line, after `--`.
    #[arg(last = true, required_unless_present = "holder")]
    command: Vec<String>,
}

#[derive(Args)]
struct GenesisArgs {
    /// Number of validators (n0..n{V-1}; they vote).
    #[arg(long)]
    validators: usize,
    /// Number of full nodes after the validators (n{V}...; they never vote).
    #[arg(long, default_value_t = 0)]
    full_nodes: usize,
    /// Directory to write genesis.json, a key per node (n0.key...) and faucet.key into.
    #[arg(long)]
    out: PathBuf,
    /// All nodes on this host, node i on --p2p-port + i (native runs).
    #[arg(long, conflicts_with = "ips")]
    host: Option<IpAddr>,
    /// One IP per node (validators, then full nodes), all on --p2p-port (containers).
    #[arg(long, value_delimiter = ',')]
    ips: Vec<IpAddr>,
    /// P2P port (the first one with --host).
    #[arg(long, default_value_t = 7000)]
    p2p_port: u16,
    /// Derive keys and network id from this seed (same seed, same genesis).
    #[arg(long)]
    seed: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    #[arg(long)]
    genesis: PathBuf,
    /// This node's key file (from `testnet-node genesis`).
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    data_dir: PathBuf,
    /// P2P listen address.
    #[arg(long)]
    listen: SocketAddr,
    /// HTTP API listen address.
    #[arg(long)]
    http: SocketAddr,
    /// Extra peer to dial, whatever the direction rule (repeatable).
    #[arg(long = "peer")]
    peers: Vec<SocketAddr>,
    /// A neighbour in the testnet's topology (repeatable). With any, the node
    /// dials only its neighbours (by the direction rule), expects exactly them
    /// as peers and relays transactions, votes and certificates; without, it
    /// dials every genesis node: a full mesh.
    #[arg(long = "neighbour")]
    neighbours: Vec<SocketAddr>,
    /// Reproduce a seeded bug on purpose so a checker can be shown to catch it
    /// (repeatable; off by default).
    #[arg(long = "simulate-bug", value_enum)]
    simulate_bugs: Vec<SimulatedBug>,
    /// Keep the certificates of the last N finalizations only (memory stays
    /// bounded; the finalized set's digests still cover everything); a node
    /// more than N/2 behind its peers installs a snapshot of a peer's
    /// checkpoint certified by more than a third of the validators (state
    /// sync). 0 keeps all (no checkpoints, no state sync; memory grows with
    /// history).
    #[arg(long, default_value_t = crate::finality::FINALITY_WINDOW)]
    finality_window: usize,
    /// With a finality window: write a checkpoint of the ledger every N
    /// finalizations and start a new log after it, deleting the older ones
    /// (a restart reads the checkpoint and the log after it, not the whole
    /// history). The first comes early by a phase taken from the node's key,
    /// so nodes that finalize in step do not all write at once. 0: never.
    #[arg(long, default_value_t = crate::datadir::CHECKPOINT_EVERY)]
    checkpoint_every: u64,
    #[arg(long, default_value_t = 64)]
    max_inbound: usize,
    #[arg(long, default_value_t = 64)]
    max_outbound: usize,
    /// Interval between pings to each peer.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    ping_interval: Duration,
    /// Disconnect a peer silent for this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "6s")]
    ping_timeout: Duration,
    /// Log lines as JSON instead of text.
    #[arg(long)]
    log_json: bool,
    /// The P2P protocol version this node speaks (an image can bake it in
    /// with the environment; `testnet image build --protocol-version`).
    #[arg(long, env = "TESTNET_PROTOCOL_VERSION", default_value_t = crate::genesis::PROTOCOL_VERSION)]
    protocol_version: u32,
    /// The oldest protocol version it accepts from a peer (a handshake from
    /// an older one is refused, counted as `protocol_version`).
    #[arg(long, env = "TESTNET_MIN_PEER_VERSION", default_value_t = crate::genesis::PROTOCOL_VERSION)]
    min_peer_version: u32,
}

/// Runs the command line of the process; the exit code to end with.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Genesis(args) => genesis(args),
        Command::Run(args) => run(args),
        Command::Agent(args) => return agent(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn genesis(args: GenesisArgs) -> anyhow::Result<()> {
    let addressing = if args.ips.is_empty() {
        Addressing::Host {
            ip: args.host.unwrap_or(IpAddr::from([127, 0, 0, 1])),
            first_port: args.p2p_port,
        }
    } else {
        Addressing::Ips {
            ips: args.ips,
            port: args.p2p_port,
        }
    };
    let generated = Genesis::generate_with_full_nodes(
        args.validators,
        args.full_nodes,
        &addressing,
        args.seed.as_deref(),
    )?;
    generated.write(&args.out)?;
    println!(
        "wrote {} (network {}, {} validators, {} full nodes) and keys to {}",
        args.out.join("genesis.json").display(),
        generated.genesis.network_id,
        args.validators,
        args.full_nodes,
        args.out.display()
    );
    Ok(())
}

fn agent(args: AgentArgs) -> ExitCode {
    init_logging(false);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        let control = TcpListener::bind(args.control)
            .await
            .with_context(|| format!("cannot listen for control on {}", args.control))?;
        let mode = if args.holder {
            info!(control = %args.control, "agent holding the namespaces of a node's container");
            crate::agent::Mode::Holder
        } else {
            info!(control = %args.control, command = ?args.command, "agent supervising the node");
            crate::agent::Mode::Supervise(args.command)
        };
        let seams = crate::agent::Seams {
            node_api: args.node_api,
            data_dir: args.data_dir,
            faketime: args.faketime,
        };
        crate::agent::run(control, mode, seams)
            .await
            .context("cannot start the node")
    });
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_json);
    crate::datadir::few_arenas();
    if args.ping_timeout <= args.ping_interval {
        bail!(
            "--ping-timeout ({:?}) must be longer than --ping-interval ({:?})",
            args.ping_timeout,
            args.ping_interval
        );
    }
    let genesis = Genesis::load(&args.genesis)?;
    let keypair = Keypair::load(&args.key)?;
    // Two workers: a node is small, and a testnet host runs many of them.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Listen for SIGTERM/SIGINT before anything else: a signal during start-up
        // must end the node cleanly, not by the default action.
        use tokio::signal::unix::{signal, SignalKind};
        let mut term =
            signal(SignalKind::terminate()).context("cannot install a SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot install a SIGINT handler")?;
        let p2p = TcpListener::bind(args.listen).await.with_context(|| {
            format!(
                "cannot listen for P2P on {} (another node on that port? choose another --listen)",
                args.listen
            )
        })?;
        let http = TcpListener::bind(args.http).await.with_context(|| {
            format!(
                "cannot listen for HTTP on {} (port in use? choose another --http)",
                args.http
            )
        })?;
        let mut setup = NodeSetup::new(genesis, keypair, args.data_dir, args.listen);
        setup.bugs.extend(args.simulate_bugs);
        setup.p2p.extra_peers = args.peers;
        if !args.neighbours.is_empty() {
            setup = setup.with_neighbours(args.neighbours);
        }
        setup.finality_window = args.finality_window;
        setup.checkpoint_every = args.checkpoint_every;
        setup.p2p.max_inbound = args.max_inbound;
        setup.p2p.max_outbound = args.max_outbound;
        setup.p2p.ping_interval = args.ping_interval;
        setup.p2p.ping_timeout = args.ping_timeout;
        setup.p2p.protocol_version = args.protocol_version;
        setup.p2p.min_peer_version = args.min_peer_version;
        let node = Node::start(setup, p2p, http).await?;
        let signal = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(signal, "shutting down");
        if node.shutdown().await {
            info!("stopped");
        } else {
            error!("some tasks did not stop within the shutdown bound; exiting anyway");
        }
        Ok(())
    })
}

fn init_logging(json: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = log_targets(LevelFilter::INFO);
    // The builder's own filter lets everything through: `filter` decides.
    let builder = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().finish().with(filter).init();
    } else {
        builder.finish().with(filter).init();
    }
}

/// The log filter: `RUST_LOG` as env_logger reads it (`debug`,
/// `warn,testnet_node::p2p=debug`), else `default`. A value it cannot read
/// is reported on stderr and `default` used. (tracing's `EnvFilter`, used
/// before, also read span filters, and pulled a regex engine into the
/// build.)
pub fn log_targets(default: LevelFilter) -> Targets {
    let (targets, complaint) = read_log_filter(std::env::var("RUST_LOG").ok().as_deref(), default);
    if let Some(why) = complaint {
        eprintln!("{why}");
    }
    targets
}

/// [`log_targets`] of the value `v`: the filter, and why `v` was not taken.
fn read_log_filter(v: Option<&str>, default: LevelFilter) -> (Targets, Option<String>) {
    let fallback = Targets::new().with_default(default);
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => (fallback, None),
        Some(v) => match v.parse() {
            Ok(targets) => (targets, None),
            Err(e) => (
                fallback,
                Some(format!(
                    "RUST_LOG={v:?} is not a log filter ({e}): logging at {default}; write \
                     LEVEL or TARGET=LEVEL,... (levels: error, warn, info, debug, trace, off)"
                )),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_is_read_as_levels_per_target() {
        let (t, why) = read_log_filter(Some("warn,testnet_node::p2p=debug"), LevelFilter::INFO);
        assert!(why.is_none());
        assert!(t.would_enable("testnet_node::p2p::peers", &Level::DEBUG));
        assert!(!t.would_enable("testnet_node::replica", &Level::INFO));
        assert!(t.would_enable("testnet_node::replica", &Level::WARN));
        let (t, why) = read_log_filter(None, LevelFilter::INFO);
        assert!(why.is_none() && t.would_enable("x", &Level::INFO));
        assert!(!t.would_enable("x", &Level::DEBUG));
        let (t, why) = read_log_filter(Some("p2p=loud"), LevelFilter::WARN);
        let why = why.expect("a level that is none is refused");
        assert!(
            why.contains("p2p=loud") && why.contains("logging at warn"),
            "{why}"
        );
        assert!(t.would_enable("x", &Level::WARN) && !t.would_enable("x", &Level::INFO));
    }
}
