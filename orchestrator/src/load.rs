//! `testnet load`: payments at a target rate, with double spends, against any
//! nodes' HTTP APIs, tracked to finality on every node.
//!
//! Map:
//! - [`generator`]: the load generator: wallets funded from the faucet, payments
//!   and double spends at a rate, finality followed on every node
//!   ([`generator::run`], configured by [`LoadConfig`]).
//! - `client`: [`NodeClient`], the generator's JSON client of one node.
//! - `report`: [`LoadReport`], what a load run found (per-node end state,
//!   finality, latency, safety).
//! - This file: the `testnet load` command ([`LoadArgs`], [`config`], [`run`]).

use std::path::PathBuf;
use std::time::Duration;

use testnet_node::genesis::Genesis;
use testnet_node::Keypair;

mod client;
pub mod command;
pub mod generator;
mod report;

pub use client::NodeClient;
pub use generator::LoadConfig;
pub use report::{LoadReport, NodeSummary, Payment};

/// Why the load generator stopped (the `testnet load` command's own errors are
/// [`LoadCommandError`]).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no endpoint given")]
    NoEndpoints,
    #[error("{url}: {source}")]
    Http { url: String, source: reqwest::Error },
    /// A request of many submissions failed as a whole (each counts it).
    #[error("{url}: {error}")]
    Unanswered { url: String, error: String },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the wallets hold {have} coins and the faucet none to fan out (is this the right genesis and faucet key?)")]
    NoFunds { have: usize },
    #[error("fan-out transactions were not final on every node within {0:?}")]
    FanOutStalled(Duration),
    /// The network under test refused a valid payment outright (before the
    /// load could start): a finding about the nodes, not a tool error.
    #[error("{url} refused a valid payment from the faucet: {reason}")]
    Refused { url: String, reason: String },
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    testnet load --tps 200 --duration 30s --double-spend 0.05\n  \
    testnet load --endpoint http://127.0.0.1:8000 --genesis g/genesis.json --faucet-key g/faucet.key\n\n\
    Exit codes: 0 healthy, 1 an invariant broke, 2 an error.")]
pub struct LoadArgs {
    /// Base URL of a node's HTTP API (repeatable), e.g. http://127.0.0.1:8000.
    /// Without it: every node of the Docker testnet of --name.
    #[arg(long = "endpoint")]
    pub endpoints: Vec<String>,
    /// The testnet's genesis.json (default: the one `testnet up` wrote).
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// The faucet's key file (default: the one `testnet up` wrote).
    #[arg(long)]
    pub faucet_key: Option<PathBuf>,
    /// Payments per second.
    #[arg(long, default_value_t = 50.0)]
    pub tps: f64,
    /// How long to send.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub duration: Duration,
    /// Share of payments sent as double spends, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.0)]
    pub double_spend: f64,
    /// Seed of the wallets and of the payment choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long to wait after the load for every payment to be final everywhere.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub settle: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadCommandError {
    #[error("--tps must be above 0 and --double-spend between 0 and 1")]
    BadRate,
    #[error("pass --genesis and --faucet-key with --endpoint (or no --endpoint, to use a testnet brought up by `testnet up`)")]
    NoGenesis,
    #[error(transparent)]
    Genesis(#[from] testnet_node::genesis::GenesisError),
    #[error(transparent)]
    Key(#[from] testnet_node::identity::IdentityError),
    #[error("{0} (is every --endpoint a running node of this genesis?)")]
    Load(#[from] LoadError),
}

/// The load generator's configuration from `args`: rates checked, genesis and
/// faucet key read.
pub fn config(args: &LoadArgs) -> Result<LoadConfig, LoadCommandError> {
    if !(args.tps > 0.0 && args.tps.is_finite() && (0.0..=1.0).contains(&args.double_spend)) {
        return Err(LoadCommandError::BadRate);
    }
    let (Some(genesis), Some(faucet)) = (&args.genesis, &args.faucet_key) else {
        return Err(LoadCommandError::NoGenesis);
    };
    let genesis = Genesis::load(genesis)?;
    let faucet = Keypair::load(faucet)?;
    let mut cfg = LoadConfig::new(args.endpoints.clone(), genesis, faucet);
    cfg.tps = args.tps;
    cfg.duration = args.duration;
    cfg.double_spend = args.double_spend;
    cfg.seed = args.seed;
    cfg.settle = args.settle;
    Ok(cfg)
}

/// Runs the load until done or `stop`; the report says whether the testnet
/// stayed healthy (and whether it was cut short).
pub async fn run(
    args: &LoadArgs,
    stop: tokio_util::sync::CancellationToken,
) -> Result<LoadReport, LoadCommandError> {
    let mut cfg = config(args)?;
    cfg.stop = stop;
    let quiet = args.json;
    Ok(generator::run(cfg, |line| {
        if !quiet {
            eprintln!("{line}");
        }
    })
    .await?)
}
