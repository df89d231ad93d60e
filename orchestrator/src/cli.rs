//! The command line: the clap types, one module per command (each an
//! `exec(&Ctx, Args)`), and what every command shares: the testnet name, the
//! Docker connection, progress lines, the signal helper, exit codes.

pub mod chaos;
pub mod chaos_show;
pub mod check;
pub mod completions;
pub mod down;
pub mod export;
pub mod image;
pub mod logs;
pub mod run;
pub mod schema;
pub mod status;
pub mod up;

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::check_name;
use crate::engine::hosts::{HostSpec, Hosts};
use crate::testnet::{HttpProbe, Testnet};

#[derive(Parser)]
#[command(
    name = "testnet",
    version,
    about = "Multi-node blockchain testnets in Docker: bring up, break, check"
)]
pub struct Cli {
    /// Which testnet (many can run side by side); default: a file's `name:`, else "default".
    #[arg(long, global = true, env = "TESTNET_NAME")]
    pub name: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Bring up a testnet (the embedded 4-node default without FILE) and wait for
    /// a full mesh.
    Up(up::Args),
    /// Nodes, state, IPs, HTTP URLs, peers.
    Status(status::Args),
    /// A node's logs (all nodes without NODE).
    Logs(logs::Args),
    /// Remove every container, network and volume of the testnet (or of all).
    Down(down::Args),
    /// Inject faults: partitions, delay, loss, heal, and process faults on one node.
    Chaos(chaos::Args),
    /// Export the testnet in another format.
    #[command(subcommand)]
    Export(export::Args),
    /// Build the node image explicitly (what `up` does when it is missing).
    #[command(subcommand)]
    Image(image::Args),
    /// Send payments (and double spends) to nodes and check they finalize
    /// everywhere. Exit 0 healthy, 1 an invariant broke, 2 an error.
    Load(crate::load::LoadArgs),
    /// Run a scenario: up, workload and fault timeline, invariant checks, report,
    /// down. Exit 0 when every invariant holds, 1 when one is violated, 2 on an
    /// error of the tool.
    Run(run::Args),
    /// Evaluate the invariants that need no workload on a running testnet
    /// (handshakes, mesh, UTXO agreement, safety, processes). Exit 0 or 1.
    Check(check::Args),
    /// Print the JSON Schema of testnet or scenario files (for editors and validators).
    Schema(schema::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
}

/// An error that ends the command with exit code 2.
#[derive(Debug)]
pub struct Fail(pub String);

impl<E: std::fmt::Display> From<E> for Fail {
    fn from(e: E) -> Self {
        Fail(e.to_string())
    }
}

/// What every command gets: the `--name` given (if any) and a progress printer.
pub struct Ctx {
    name: Option<String>,
    start: Instant,
}

impl Ctx {
    /// The testnet name: `--name`, else `fallback` (a file's), else `default`.
    pub fn name_or(&self, fallback: Option<&str>) -> String {
        self.name
            .clone()
            .or(fallback.map(str::to_owned))
            .unwrap_or_else(|| "default".into())
    }

    pub fn name(&self) -> String {
        self.name_or(None)
    }

    /// A line on stderr with the seconds since the command started.
    pub fn progress(&self, line: &str) {
        eprintln!("[{:>6.1}s] {line}", self.start.elapsed().as_secs_f64());
    }
}

/// The Docker daemons of `hosts` (none: the local one), checked to answer
/// and, with more than one, to form one Swarm.
pub async fn engine_on(hosts: &[HostSpec]) -> Result<Hosts, Fail> {
    // Each daemon answered a ping in `connect`.
    Ok(Hosts::connect(hosts).await?)
}

/// The Docker daemons testnet `name` was brought up on (its plan says; the
/// local one if it has none here).
pub async fn engine_of(name: &str) -> Result<Hosts, Fail> {
    let hosts = crate::state::StateDir::of(name)
        .plan()
        .map(|p| p.hosts)
        .unwrap_or_default();
    engine_on(&hosts).await
}

/// A handle on testnet `name` on Docker; says so when its owner is gone.
pub fn testnet<'a>(
    name: &str,
    engine: &'a Hosts,
    probe: &'a HttpProbe,
) -> Testnet<'a, Hosts, HttpProbe> {
    let tn = Testnet::new(name, engine, probe);
    if let Some(owner) = tn.state.stale_owner() {
        eprintln!(
            "warning: testnet {name:?} was left by {}, which is gone; `testnet down --name {name}` removes it (`testnet down --stale` removes every such testnet)",
            owner.describe()
        );
    }
    tn
}

/// Takes testnet `name`'s lock for `command` (held until dropped), or fails
/// naming the command that holds it.
pub fn lock(name: &str, command: &str) -> Result<crate::state::Lock, Fail> {
    Ok(crate::state::StateDir::of(name).lock(command)?)
}

/// Pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("values serialize")
    );
}

/// SIGINT, SIGTERM or SIGHUP cancel `token` (the command heals and tears down
/// what it created); a second one cancels `hurry` too (tear down at once,
/// skipping what can wait). The exit code says which signal came first.
pub struct Interrupt {
    pub token: CancellationToken,
    pub hurry: CancellationToken,
    signal: std::sync::Arc<std::sync::atomic::AtomicI32>,
}

impl Interrupt {
    /// Listens for the signals; `message` is printed when the first comes.
    pub fn listen(message: &'static str) -> Interrupt {
        use std::sync::atomic::Ordering;
        use tokio::signal::unix::{signal, SignalKind};
        let (token, hurry) = (CancellationToken::new(), CancellationToken::new());
        let got = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
        for (kind, number) in [
            (SignalKind::interrupt(), libc::SIGINT),
            (SignalKind::terminate(), libc::SIGTERM),
            (SignalKind::hangup(), libc::SIGHUP),
        ] {
            let Ok(mut stream) = signal(kind) else {
                continue;
            };
            let (token, hurry, got) = (token.clone(), hurry.clone(), got.clone());
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    let first = got
                        .compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok();
                    if first {
                        eprintln!("{message} (a second signal tears down at once)");
                        token.cancel();
                    } else {
                        eprintln!("second signal: tearing down at once");
                        hurry.cancel();
                    }
                }
            });
        }
        Interrupt {
            token,
            hurry,
            signal: got,
        }
    }

    /// 128 + the signal's number (130 for Ctrl-C).
    pub fn exit_code(&self) -> ExitCode {
        let n = self.signal.load(std::sync::atomic::Ordering::SeqCst);
        ExitCode::from((128 + if n == 0 { libc::SIGINT } else { n }) as u8)
    }
}

/// The `testnet` binary: parses the command line and runs it. Here, not in
/// `main.rs`, so the whole async command tree is compiled once, in this
/// crate: a binary that called `block_on(dispatch(..))` itself compiled it
/// again (42 s of a 3 min 55 s cold release build, alone on the machine at
/// its end).
pub fn main() -> ExitCode {
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
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(Fail(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Runs the command.
pub async fn dispatch(cli: Cli) -> Result<ExitCode, Fail> {
    if let Some(n) = &cli.name {
        check_name(n).map_err(Fail)?;
    }
    let ctx = Ctx {
        name: cli.name,
        start: Instant::now(),
    };
    match cli.command {
        Command::Up(a) => up::exec(&ctx, a).await,
        Command::Status(a) => status::exec(&ctx, a).await,
        Command::Logs(a) => logs::exec(&ctx, a).await,
        Command::Down(a) => down::exec(&ctx, a).await,
        Command::Chaos(a) => chaos::exec(&ctx, a).await,
        Command::Export(a) => export::exec(&ctx, a).await,
        Command::Image(a) => image::exec(&ctx, a).await,
        Command::Load(a) => load_exec(&ctx, a).await,
        Command::Run(a) => run::exec(&ctx, a).await,
        Command::Check(a) => check::exec(&ctx, a).await,
        Command::Schema(a) => schema::exec(&ctx, a).await,
        Command::Completions(a) => completions::exec(&ctx, a).await,
    }
}

/// `testnet load`: against `--endpoint`s, or every node of the Docker testnet.
async fn load_exec(ctx: &Ctx, mut args: crate::load::LoadArgs) -> Result<ExitCode, Fail> {
    if args.endpoints.is_empty() {
        let name = ctx.name();
        let engine = engine_of(&name).await?;
        let probe = HttpProbe::default();
        let tn = testnet(&name, &engine, &probe);
        let nodes = tn.endpoints().await?;
        args.endpoints = nodes.iter().filter_map(|s| s.http_url.clone()).collect();
        args.genesis.get_or_insert(tn.state.genesis());
        args.faucet_key.get_or_insert(tn.state.faucet_key());
    }
    let interrupt = Interrupt::listen("interrupted: stopping the load, reporting what there is...");
    let report = match crate::load::run(&args, interrupt.token.clone()).await {
        Ok(report) => report,
        Err(crate::load::LoadCommandError::Load(e @ crate::load::LoadError::Refused { .. })) => {
            eprintln!("testnet load: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        print_json(&report);
    } else {
        println!("{report}");
    }
    if report.interrupted {
        return Ok(interrupt.exit_code());
    }
    if report.healthy() {
        return Ok(ExitCode::SUCCESS);
    }
    if report.accepted == 0 {
        eprintln!(
            "testnet load: no payment was accepted; refusals by reason: {:?}",
            report.refused
        );
    }
    eprintln!("testnet load: invariants violated (see the report above)");
    Ok(ExitCode::from(1))
}

#[cfg(test)]
mod tests;
