//! A whole node: P2P network plus HTTP API, started from genesis and a key, stopped
//! in two phases within a bound.
//!
//! `Node::start` takes already-bound listeners (as mini-redis does) so tests bind
//! `127.0.0.1:0` and learn the ports before anything runs.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use crate::api::Status;
use crate::datadir::Checkpointer;
use crate::finality::quorum::Validators;
use crate::finality::{Bugs, Engine, EngineConfig, Record};
use crate::genesis::Genesis;
use crate::identity::Keypair;
use crate::ledger::{Ledger, Limits};
use crate::metrics::{FinalityMetrics, Metrics};
use crate::p2p::{self, Network};
use crate::replica::{now_ms, Replica};
use crate::state::NodeState;
use crate::store::Store;

/// Bugs from the seeds that a node reproduces on purpose, so the orchestrator's
/// checkers can be shown to catch them. All are off by default.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SimulatedBug {
    /// Seed 002: no dial-direction rule, and a second connection to a peer is
    /// rejected as a duplicate *before* the handshake, so simultaneous dials kill
    /// each other and handshakes fail.
    HandshakeRace,
    /// Seed 004: finalized transactions never remove their inputs from the UTXO
    /// set, so this node's digest and total value drift from the others'.
    UtxoNoSpend,
    /// Approve every valid transaction, even one conflicting with a transaction
    /// already approved: on more than f validators, double spends get certified.
    Equivocate,
    /// Seed 004: never fetch missing certificates; a node that missed some (paused,
    /// partitioned, restarted) stays behind.
    PassiveCatchup,
    /// Do not persist vote locks: after a restart the node forgets what it
    /// approved and may approve a conflicting transaction.
    NoLockPersist,
}

impl SimulatedBug {
    pub fn name(self) -> &'static str {
        match self {
            SimulatedBug::HandshakeRace => "handshake-race",
            SimulatedBug::UtxoNoSpend => "utxo-no-spend",
            SimulatedBug::Equivocate => "equivocate",
            SimulatedBug::PassiveCatchup => "passive-catchup",
            SimulatedBug::NoLockPersist => "no-lock-persist",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the address of a listener: {0}")]
    Listener(std::io::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Ledger(#[from] crate::datadir::DataDirError),
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeSetup {
    pub genesis: Genesis,
    pub data_dir: PathBuf,
    pub bugs: BTreeSet<SimulatedBug>,
    /// P2P tunables; `NodeSetup::new` fills them from genesis.
    pub p2p: p2p::Config,
    pub limits: Limits,
    /// How often catch-up compares inventories with peers.
    pub catchup_interval: Duration,
    /// Finalizations whose certificates are kept (0: all; see `EngineConfig`).
    pub finality_window: usize,
    /// Finalizations between two checkpoints of the ledger (with a window;
    /// 0: never, the log keeps the whole history).
    pub checkpoint_every: u64,
}

impl NodeSetup {
    /// A setup for `keypair`. A genesis node (validator or full node) advertises
    /// its genesis address; any other node advertises `listen`.
    pub fn new(genesis: Genesis, keypair: Keypair, data_dir: PathBuf, listen: SocketAddr) -> Self {
        let advertised = genesis
            .member(&keypair.id())
            .map(|v| v.p2p_address)
            .unwrap_or(listen);
        let mut p2p = p2p::Config::new(genesis.network_id.clone(), keypair, advertised);
        p2p.members = genesis.members().map(|v| v.p2p_address).collect();
        p2p.names = genesis
            .members()
            .map(|v| (v.public_key, v.name.clone()))
            .collect();
        p2p.roster = genesis
            .members()
            .map(|v| (v.public_key, v.p2p_address))
            .collect();
        NodeSetup {
            genesis,
            data_dir,
            bugs: BTreeSet::new(),
            p2p,
            limits: Limits::default(),
            catchup_interval: Duration::from_secs(1),
            finality_window: crate::finality::FINALITY_WINDOW,
            checkpoint_every: crate::datadir::CHECKPOINT_EVERY,
        }
    }

    pub fn with_bug(mut self, bug: SimulatedBug) -> Self {
        self.bugs.insert(bug);
        self
    }

    /// Places the node in a topology: it dials only `neighbours` (those above
    /// it), expects exactly them as peers, and relays what is new to it, since
    /// its neighbours may not hear it from the origin.
    pub fn with_neighbours(mut self, neighbours: Vec<SocketAddr>) -> Self {
        self.p2p.neighbours = Some(neighbours);
        self
    }

    /// The peers this node should end up with: its neighbours, or every other
    /// genesis node (a full mesh).
    pub fn expected_peers(&self) -> usize {
        let me = self.p2p.advertised_addr;
        let others = |list: &[SocketAddr]| {
            let set: std::collections::HashSet<&SocketAddr> =
                list.iter().filter(|a| **a != me).collect();
            set.len()
        };
        match &self.p2p.neighbours {
            Some(n) => others(n),
            None => others(&self.p2p.members),
        }
    }
}

/// A running node.
pub struct Node {
    state: Arc<NodeState>,
    p2p_addr: SocketAddr,
    http_addr: SocketAddr,
    http_stop: CancellationToken,
    replica_stop: CancellationToken,
    tasks: TaskTracker,
}

impl Node {
    /// Starts the node on already-bound listeners.
    pub async fn start(
        mut setup: NodeSetup,
        p2p_listener: TcpListener,
        http_listener: TcpListener,
    ) -> Result<Node, NodeError> {
        std::fs::create_dir_all(&setup.data_dir).map_err(|source| NodeError::DataDir {
            path: setup.data_dir.clone(),
            source,
        })?;
        let p2p_addr = p2p_listener.local_addr().map_err(NodeError::Listener)?;
        let http_addr = http_listener.local_addr().map_err(NodeError::Listener)?;
        let id = setup.p2p.keypair.id();
        let name = setup
            .genesis
            .member(&id)
            .map(|v| v.name.clone())
            .unwrap_or_else(|| id.short());
        setup.p2p.simulate_handshake_race = setup.bugs.contains(&SimulatedBug::HandshakeRace);
        let span = tracing::info_span!("node", name = %name);
        let _enter = span.enter();
        if !setup.bugs.is_empty() {
            warn!(bugs = ?setup.bugs, "running with SIMULATED BUGS on purpose");
        }
        let metrics = Metrics::new();
        let expected_peers = setup.expected_peers();
        metrics.expected_peers.set(expected_peers as i64);
        let p2p_address = setup.p2p.advertised_addr;
        let protocol_version = setup.p2p.protocol_version;
        let (engine, store, checkpointer) = open_ledger(&setup, &metrics)?;
        let (events_tx, events_rx) = tokio::sync::mpsc::channel(4096);
        let network = Network::start(
            setup.p2p,
            p2p_listener,
            metrics.p2p.clone(),
            Some(events_tx),
        );
        let mut replica = Replica::new(engine);
        replica.handle.checkpoints = checkpointer.progress();
        let replica_handle = replica.handle.clone();
        let replica_stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(
            replica
                .run(
                    store,
                    checkpointer,
                    network.clone(),
                    events_rx,
                    setup.catchup_interval,
                    replica_stop.clone(),
                )
                .in_current_span(),
        );
        let state = Arc::new(NodeState {
            id,
            name: name.clone(),
            network_id: setup.genesis.network_id.clone(),
            p2p_address,
            expected_peers,
            validator: setup.genesis.validator(&id).is_some(),
            simulated_bugs: setup.bugs.iter().map(|b| b.name().to_owned()).collect(),
            network,
            replica: replica_handle,
            metrics,
            started: Instant::now(),
            boot_ms: crate::clock::real_ms(),
            genesis_supply: setup.genesis.total_supply(),
            protocol_version,
        });
        let http_stop = CancellationToken::new();
        serve_http(&tasks, http_listener, state.clone(), http_stop.clone());
        info!(p2p = %p2p_addr, http = %http_addr, id = %id.short(), "node started");
        drop(_enter);
        Ok(Node {
            state,
            p2p_addr,
            http_addr,
            http_stop,
            replica_stop,
            tasks,
        })
    }

    pub fn state(&self) -> &Arc<NodeState> {
        &self.state
    }

    pub fn network(&self) -> &Network {
        &self.state.network
    }

    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    pub fn status(&self) -> Status {
        self.state.status()
    }

    pub fn p2p_addr(&self) -> SocketAddr {
        self.p2p_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Stops P2P (two phases, bounded by its grace period), then HTTP. Returns
    /// whether everything stopped within its bound.
    pub async fn shutdown(self) -> bool {
        let p2p_clean = self.state.network.shutdown().await;
        self.replica_stop.cancel();
        self.http_stop.cancel();
        self.tasks.close();
        let http_clean = tokio::time::timeout(Duration::from_secs(2), self.tasks.wait())
            .await
            .is_ok();
        p2p_clean && http_clean
    }
}

/// The finality engine over the genesis ledger, with what the ledger log on disk
/// holds replayed into it, and the log to append to.
fn open_ledger(
    setup: &NodeSetup,
    metrics: &Metrics,
) -> Result<(Engine, Store<Record>, Checkpointer), NodeError> {
    let id = setup.p2p.keypair.id();
    let bug = |b| setup.bugs.contains(&b);
    let bugs = Bugs {
        utxo_no_spend: bug(SimulatedBug::UtxoNoSpend),
        equivocate: bug(SimulatedBug::Equivocate),
        passive_catchup: bug(SimulatedBug::PassiveCatchup),
        no_lock_persist: bug(SimulatedBug::NoLockPersist),
    };
    let validators = Validators::from_genesis(&setup.genesis);
    let key = validators.contains(&id).then(|| setup.p2p.keypair.clone());
    let (genesis, limits) = (setup.genesis.clone(), setup.limits.clone());
    let (relay, window) = (setup.p2p.neighbours.is_some(), setup.finality_window);
    let make = Arc::new(move |metrics: FinalityMetrics| {
        let cfg = EngineConfig {
            network_id: genesis.network_id.clone(),
            validators: validators.clone(),
            key: key.clone(),
            bugs,
            relay,
            window,
        };
        Engine::new(cfg, Ledger::from_genesis(&genesis, limits.clone()), metrics)
    });
    let started = Instant::now();
    let live = || make(metrics.finality.clone());
    let (engine, store, opened) = crate::datadir::open(&setup.data_dir, live, now_ms())?;
    crate::datadir::release_free_memory();
    if opened.truncated_bytes > 0 {
        warn!(
            bytes = opened.truncated_bytes,
            "dropped a torn tail from the ledger log"
        );
    }
    if opened.records > 0 {
        info!(
            checkpoint = opened.checkpoint,
            logs = opened.logs,
            records = opened.records,
            finalized = engine.finalized_count(),
            ms = started.elapsed().as_millis() as u64,
            "ledger restored from disk"
        );
    }
    let every = setup.checkpoint_every;
    // Checkpoints written are read back into engines whose metrics count nothing.
    let fresh: crate::datadir::Fresh =
        Arc::new(move || make(FinalityMetrics::register(&prometheus::Registry::new())));
    // A phase of its own (from its key) spreads the nodes' checkpoints apart.
    let phase = u64::from_le_bytes(id.as_bytes()[..8].try_into().expect("8 bytes"));
    let checkpointer =
        Checkpointer::new(&setup.data_dir, every, opened.active, fresh).with_phase(phase);
    checkpointer.progress().restored(opened.checkpoint);
    Ok((engine, store, checkpointer))
}

/// Serves the HTTP API on `listener` until `stop`, as a task of `tasks`.
fn serve_http(
    tasks: &TaskTracker,
    listener: TcpListener,
    state: Arc<NodeState>,
    stop: CancellationToken,
) {
    let app = crate::http::router(state);
    tasks.spawn(
        async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                warn!(error = %e, "HTTP server failed");
            }
        }
        .in_current_span(),
    );
}
