//! The P2P network: who dials whom, the connection tasks, and shutdown.
//!
//! Tasks (all tracked by one `TaskTracker`, all stopped by tokens):
//! - one **acceptor** per listener: registers each inbound connection, then spawns
//!   its connection task;
//! - one **dialer** per target address (seed 004: one connection task per peer): waits
//!   while that peer is connected, dials, runs the connection, backs off with jitter;
//! - per connection, the **connection task** (handshake, then the read loop with
//!   ping/pong) and its **writer** (drains a bounded queue into the socket).
//!
//! State shared by them is [`Shared`]: the [`peers::PeerTable`] under a mutex, the
//! nonces of handshakes in flight (self-connection detection), metrics and tokens.
//! Shutdown has two phases: `accepting` stops the acceptor and dialers, then
//! `closing` tells every connection to say goodbye, flush and close; the whole thing
//! is bounded by `Config::shutdown_grace`.

mod admission;
mod announce;
pub mod backoff;
mod connection;
pub mod frame;
pub mod handshake;
pub mod message;
pub mod peers;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use crate::identity::{Keypair, NodeId};
use crate::metrics::P2pMetrics;
use handshake::{HandshakeFailure, LocalHello};
use message::{DisconnectReason, Message};
use peers::{Direction, Endpoint, PeerTable};

/// Tunables of the P2P layer. `Config::new` gives the defaults a node runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub network_id: String,
    pub keypair: Keypair,
    /// The address peers know us by (our genesis address for a validator); the
    /// direction rule compares it.
    pub advertised_addr: SocketAddr,
    /// Every genesis node's P2P address (validators and full nodes); without
    /// `neighbours`, we dial those above us (direction rule): a full mesh.
    pub members: Vec<SocketAddr>,
    /// This node's neighbours in the testnet's topology: when set, we dial
    /// only those above us (direction rule per edge) instead of `members`.
    pub neighbours: Option<Vec<SocketAddr>>,
    /// Extra addresses dialed whatever the direction (`--peer`).
    pub extra_peers: Vec<SocketAddr>,
    /// Names for known node ids (genesis names), for logs and `/peers`.
    pub names: HashMap<NodeId, String>,
    /// Each genesis node's key and P2P address: who may be a peer, and at
    /// which address ([`handshake::check_admission`]).
    pub roster: HashMap<NodeId, SocketAddr>,
    /// Admit keys that are not in genesis too (never under a genesis node's
    /// address): observers and tests' raw peers. Off by default.
    pub open_admission: bool,
    pub max_inbound: usize,
    pub max_outbound: usize,
    /// Connections one source address may hold in their handshake at once,
    /// plus one per genesis node at that address (nodes sharing a host).
    pub max_pending_per_source: usize,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    pub ping_interval: Duration,
    /// A peer that sends nothing for this long is disconnected.
    pub ping_timeout: Duration,
    pub write_timeout: Duration,
    /// Per-peer send queue bounds; a peer past either is disconnected as slow.
    pub peer_queue_messages: usize,
    pub peer_queue_bytes: usize,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub shutdown_grace: Duration,
    /// `--simulate-bug handshake-race`: dial every validator whatever the direction,
    /// and refuse a connection as a duplicate *before* authenticating it whenever
    /// another one to the same peer exists, in any state. Seed 002's broken node.
    pub simulate_handshake_race: bool,
    /// The protocol version spoken, and the oldest accepted from a peer.
    pub protocol_version: u32,
    pub min_peer_version: u32,
}

impl Config {
    pub fn new(network_id: String, keypair: Keypair, advertised_addr: SocketAddr) -> Self {
        Config {
            network_id,
            keypair,
            advertised_addr,
            members: Vec::new(),
            neighbours: None,
            extra_peers: Vec::new(),
            names: HashMap::new(),
            roster: HashMap::new(),
            open_admission: false,
            max_inbound: 64,
            max_outbound: 64,
            max_pending_per_source: 8,
            connect_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(1),
            ping_timeout: Duration::from_secs(6),
            write_timeout: Duration::from_secs(5),
            peer_queue_messages: 4096,
            peer_queue_bytes: 16 * 1024 * 1024,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(3),
            simulate_handshake_race: false,
            protocol_version: crate::genesis::PROTOCOL_VERSION,
            min_peer_version: crate::genesis::PROTOCOL_VERSION,
        }
    }

    /// The addresses this node dials: its neighbours (or, without a topology,
    /// every genesis node) above it in (ip, port) order (all of them under the
    /// simulated race), plus extra peers; never itself, each once.
    pub fn dial_targets(&self) -> Vec<SocketAddr> {
        let mut seen = HashSet::new();
        self.neighbours
            .as_ref()
            .unwrap_or(&self.members)
            .iter()
            .filter(|a| self.simulate_handshake_race || self.advertised_addr < **a)
            .chain(self.extra_peers.iter())
            .filter(|a| **a != self.advertised_addr && seen.insert(**a))
            .copied()
            .collect()
    }
}

/// What the network tells the ledger.
#[derive(Debug)]
pub enum NetworkEvent {
    PeerConnected(NodeId),
    Message(NodeId, crate::finality::LedgerMessage),
}

/// Why an established session ended. `label()` is the reason of
/// `testnet_peer_disconnects_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    PingTimeout,
    PeerClosed,
    PeerDisconnected(DisconnectReason),
    Duplicate,
    /// The peer dialed again; this older connection of its was dead on its side.
    Redialed,
    Shutdown,
    SendQueueFull,
    WriteTimeout,
    BadFrame,
    MalformedMessage,
    UnexpectedMessage,
    Io,
}

impl SessionEnd {
    pub fn label(self) -> &'static str {
        match self {
            SessionEnd::PingTimeout => "ping_timeout",
            SessionEnd::PeerClosed => "peer_closed",
            SessionEnd::PeerDisconnected(r) => match r {
                DisconnectReason::Shutdown => "peer_shutdown",
                DisconnectReason::Duplicate => "duplicate",
                DisconnectReason::ProtocolViolation => "peer_protocol_violation",
                DisconnectReason::SlowPeer => "peer_slow",
                DisconnectReason::TooManyPeers => "peer_too_many",
            },
            SessionEnd::Duplicate => "duplicate",
            SessionEnd::Redialed => "redialed",
            SessionEnd::Shutdown => "shutdown",
            SessionEnd::SendQueueFull => "send_queue_full",
            SessionEnd::WriteTimeout => "write_timeout",
            SessionEnd::BadFrame => "bad_frame",
            SessionEnd::MalformedMessage => "malformed_message",
            SessionEnd::UnexpectedMessage => "unexpected_message",
            SessionEnd::Io => "io_error",
        }
    }

    /// What we tell the peer when we are the one closing, if anything.
    fn goodbye(self) -> Option<DisconnectReason> {
        match self {
            SessionEnd::Shutdown => Some(DisconnectReason::Shutdown),
            SessionEnd::Duplicate | SessionEnd::Redialed => Some(DisconnectReason::Duplicate),
            SessionEnd::SendQueueFull => Some(DisconnectReason::SlowPeer),
            SessionEnd::BadFrame | SessionEnd::MalformedMessage | SessionEnd::UnexpectedMessage => {
                Some(DisconnectReason::ProtocolViolation)
            }
            _ => None,
        }
    }
}

/// A request to close a connection, with the first reason given winning.
#[derive(Debug)]
struct CloseSignal {
    token: CancellationToken,
    reason: Mutex<Option<SessionEnd>>,
}

impl CloseSignal {
    fn close(&self, reason: SessionEnd) {
        lock(&self.reason).get_or_insert(reason);
        self.token.cancel();
    }

    /// The reason, or `Shutdown` when the network-wide token cancelled it.
    fn reason(&self) -> SessionEnd {
        lock(&self.reason).unwrap_or(SessionEnd::Shutdown)
    }
}

/// A frame queued for a connection's writer.
#[derive(Debug)]
struct Outgoing {
    kind: &'static str,
    payload: Bytes,
}

/// What the network holds of each connection: how to send to it and close it.
#[derive(Debug, Clone)]
struct PeerHandle {
    tx: mpsc::Sender<Outgoing>,
    queued_bytes: Arc<AtomicUsize>,
    close: Arc<CloseSignal>,
    /// Last ping RTT in microseconds, `u64::MAX` until measured.
    rtt_micros: Arc<AtomicU64>,
    since: Instant,
}

#[derive(Debug, PartialEq, Eq)]
struct QueueFull;

impl PeerHandle {
    fn new(config: &Config, closing: &CancellationToken) -> (Self, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(config.peer_queue_messages);
        let handle = PeerHandle {
            tx,
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            close: Arc::new(CloseSignal {
                token: closing.child_token(),
                reason: Mutex::new(None),
            }),
            rtt_micros: Arc::new(AtomicU64::new(u64::MAX)),
            since: Instant::now(),
        };
        (handle, rx)
    }

    /// Queues a frame without waiting: a full queue is the peer's problem, never
    /// the sender's (a slow peer cannot stall the others).
    /// `max_bytes: None` skips the byte bound (the goodbye after a full queue).
    fn enqueue(
        &self,
        kind: &'static str,
        payload: Bytes,
        max_bytes: Option<usize>,
    ) -> Result<(), QueueFull> {
        let len = payload.len();
        // Counted before the send so the writer's subtraction can never run first
        // and wrap the counter; undone if the frame is not queued.
        let before = self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if max_bytes.is_some_and(|max| before.saturating_add(len) > max) {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            return Err(QueueFull);
        }
        match self.tx.try_send(Outgoing { kind, payload }) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                match e {
                    mpsc::error::TrySendError::Full(_) => Err(QueueFull),
                    // The writer is gone: the connection is closing anyway.
                    mpsc::error::TrySendError::Closed(_) => Ok(()),
                }
            }
        }
    }
}

/// State shared by the network's tasks.
struct Shared {
    config: Config,
    hello: LocalHello,
    metrics: P2pMetrics,
    table: Mutex<PeerTable<PeerHandle>>,
    /// Nonces of our handshakes in flight: a VERSION carrying one is from ourselves.
    nonces: Mutex<HashSet<u64>>,
    /// Bumped whenever a peer is established or lost; dialers wait on it.
    changes: watch::Sender<u64>,
    accepting: CancellationToken,
    closing: CancellationToken,
    tracker: TaskTracker,
    inbound_slots: Arc<Semaphore>,
    outbound_slots: Arc<Semaphore>,
    /// Inbound handshakes in flight per source address.
    pending: admission::PendingBySource,
    /// Genesis nodes per IP address (several share one on a single host).
    members_at: HashMap<std::net::IpAddr, usize>,
    /// Where ledger messages and peer arrivals go; `None` drops them.
    events: Option<mpsc::Sender<NetworkEvent>>,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every
/// critical section here leaves the data consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, PeerTable<PeerHandle>> {
        lock(&self.table)
    }

    /// Publishes the peer count after a change to the table.
    fn peers_changed(&self) {
        let (inbound, outbound) = self.table().counts();
        self.metrics
            .peers
            .with_label_values(&["inbound"])
            .set(inbound as i64);
        self.metrics
            .peers
            .with_label_values(&["outbound"])
            .set(outbound as i64);
        self.changes.send_modify(|n| *n += 1);
    }

    fn name_of(&self, id: &NodeId) -> String {
        self.config
            .names
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.short())
    }
}

/// An established peer, as reported by `/peers`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PeerInfo {
    pub id: NodeId,
    /// The genesis name when the peer is a validator, else a short id.
    pub name: String,
    /// The address the peer listens on (from its VERSION).
    pub address: SocketAddr,
    /// The far end of this TCP connection.
    pub remote_addr: SocketAddr,
    pub direction: Direction,
    /// Last ping round trip, once measured.
    pub rtt_ms: Option<f64>,
    pub connected_secs: f64,
}

/// A running P2P network. Cheap to clone; `shutdown` stops every task.
#[derive(Clone)]
pub struct Network {
    shared: Arc<Shared>,
}

impl Network {
    /// Starts accepting on `listener` and dialing the configured targets. Ledger
    /// messages and peer arrivals are sent to `events` (dropped if `None`).
    pub fn start(
        config: Config,
        listener: TcpListener,
        metrics: P2pMetrics,
        events: Option<mpsc::Sender<NetworkEvent>>,
    ) -> Network {
        let local = Endpoint {
            node_id: config.keypair.id(),
            listen_addr: config.advertised_addr,
        };
        let shared = Arc::new(Shared {
            hello: LocalHello {
                protocol_version: config.protocol_version,
                min_peer_version: config.min_peer_version,
                network_id: config.network_id.clone(),
                node_id: local.node_id,
                listen_addr: local.listen_addr,
            },
            table: Mutex::new(PeerTable::new(local)),
            nonces: Mutex::new(HashSet::new()),
            changes: watch::channel(0).0,
            accepting: CancellationToken::new(),
            closing: CancellationToken::new(),
            tracker: TaskTracker::new(),
            inbound_slots: Arc::new(Semaphore::new(config.max_inbound)),
            outbound_slots: Arc::new(Semaphore::new(config.max_outbound)),
            pending: Default::default(),
            members_at: config.roster.values().fold(HashMap::new(), |mut m, a| {
                *m.entry(a.ip()).or_default() += 1;
                m
            }),
            events,
            metrics,
            config,
        });
        let span = tracing::Span::current();
        shared
            .tracker
            .spawn(accept_loop(shared.clone(), listener).instrument(span.clone()));
        for target in shared.config.dial_targets() {
            shared
                .tracker
                .spawn(dial_loop(shared.clone(), target).instrument(span.clone()));
        }
        announce::announce(&announce::dialers(&shared.config));
        Network { shared }
    }

    /// Established peers, sorted by address.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let table = self.shared.table();
        let mut peers: Vec<PeerInfo> = table
            .peers()
            .map(|p| {
                let rtt = p.handle.rtt_micros.load(Ordering::Relaxed);
                PeerInfo {
                    id: p.peer.node_id,
                    name: self.shared.name_of(&p.peer.node_id),
                    address: p.peer.listen_addr,
                    remote_addr: p.remote,
                    direction: p.direction,
                    rtt_ms: (rtt != u64::MAX).then(|| rtt as f64 / 1000.0),
                    connected_secs: p.handle.since.elapsed().as_secs_f64(),
                }
            })
            .collect();
        peers.sort_by_key(|p| p.address);
        peers
    }

    pub fn peer_count(&self) -> usize {
        let (i, o) = self.shared.table().counts();
        i + o
    }

    /// A receiver that changes whenever a peer is established or lost.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Sends `message` to every established peer without waiting for any of them.
    /// Peers whose queue is full are disconnected as slow. Returns how many peers
    /// it was queued for.
    pub fn broadcast(&self, message: &Message) -> usize {
        self.broadcast_except(None, message)
    }

    /// [`Network::broadcast`] to every established peer but `except` (the one
    /// a relayed message came from).
    pub fn broadcast_except(&self, except: Option<&NodeId>, message: &Message) -> usize {
        self.broadcast_payload(except, message.kind(), message.encode())
    }

    /// Queues an encoded `payload` (even one that is no message: a Byzantine
    /// node's garbage) for every established peer but `except`.
    pub fn broadcast_payload(
        &self,
        except: Option<&NodeId>,
        kind: &'static str,
        payload: Bytes,
    ) -> usize {
        let max = self.shared.config.peer_queue_bytes;
        let mut sent = 0;
        let table = self.shared.table();
        for peer in table.peers().filter(|p| Some(&p.peer.node_id) != except) {
            match peer.handle.enqueue(kind, payload.clone(), Some(max)) {
                Ok(()) => sent += 1,
                Err(QueueFull) => peer.handle.close.close(SessionEnd::SendQueueFull),
            }
        }
        sent
    }

    /// Sends `message` to the established peer `to`; false if it is not connected.
    /// A full queue disconnects the peer as slow.
    pub fn send_to(&self, to: &NodeId, message: &Message) -> bool {
        let max = self.shared.config.peer_queue_bytes;
        let table = self.shared.table();
        let Some(peer) = table.peers().find(|p| &p.peer.node_id == to) else {
            return false;
        };
        match peer
            .handle
            .enqueue(message.kind(), message.encode(), Some(max))
        {
            Ok(()) => true,
            Err(QueueFull) => {
                peer.handle.close.close(SessionEnd::SendQueueFull);
                false
            }
        }
    }

    /// Ids of the established peers.
    pub fn peer_ids(&self) -> Vec<NodeId> {
        self.shared
            .table()
            .peers()
            .map(|p| p.peer.node_id)
            .collect()
    }

    /// Two-phase shutdown: stop accepting and dialing, then close every connection
    /// with a goodbye and flush. Returns whether every task ended within the grace
    /// period (the caller exits either way).
    pub async fn shutdown(&self) -> bool {
        let shared = &self.shared;
        shared.accepting.cancel();
        shared.closing.cancel();
        shared.tracker.close();
        let clean = tokio::time::timeout(shared.config.shutdown_grace, shared.tracker.wait())
            .await
            .is_ok();
        if !clean {
            warn!(
                grace = ?shared.config.shutdown_grace,
                "P2P tasks still running after the shutdown grace period"
            );
        }
        clean
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let local = listener.local_addr().ok();
    info!(listen = ?local, advertised = %shared.config.advertised_addr, "P2P listening");
    loop {
        let accepted = tokio::select! {
            _ = shared.accepting.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: pause instead of spinning on the error.
                warn!(error = %e, "accept failed");
                tokio::select! {
                    _ = shared.accepting.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        shared
            .metrics
            .handshake_attempts
            .with_label_values(&["inbound"])
            .inc();
        let at = shared.members_at.get(&remote.ip()).copied().unwrap_or(0);
        let max = shared.config.max_pending_per_source + at;
        let Some(pending) = shared.pending.admit(remote.ip(), max) else {
            refuse_inbound(&shared, stream, HandshakeFailure::SourceLimit(remote.ip()));
            continue;
        };
        let Ok(permit) = shared.inbound_slots.clone().try_acquire_owned() else {
            refuse_inbound(&shared, stream, HandshakeFailure::InboundLimit);
            continue;
        };
        let (handle, rx) = PeerHandle::new(&shared.config, &shared.closing);
        let id = shared
            .table()
            .register(Direction::Inbound, remote, None, handle.clone());
        let task_shared = shared.clone();
        shared.tracker.spawn(
            async move {
                let pending = Some(pending);
                let inbound = Direction::Inbound;
                connection::run(&task_shared, stream, id, inbound, handle, rx, pending).await;
                drop(permit);
            }
            .in_current_span(),
        );
    }
    debug!("acceptor stopped");
}

/// Counts `failure` and refuses the connection with a goodbye, unread.
fn refuse_inbound(shared: &Shared, stream: TcpStream, failure: HandshakeFailure) {
    shared
        .metrics
        .handshake_failures
        .with_label_values(&[failure.label()])
        .inc();
    debug!(
        reason = failure.label(),
        "refusing inbound connection: {failure}"
    );
    shared.tracker.spawn(connection::refuse(
        stream,
        DisconnectReason::TooManyPeers,
        shared.config.write_timeout,
    ));
}

async fn dial_loop(shared: Arc<Shared>, target: SocketAddr) {
    let config = &shared.config;
    let mut backoff = backoff::Backoff::new(config.backoff_base, config.backoff_max);
    let mut changes = shared.changes.subscribe();
    loop {
        // One connection per peer: while it is connected (either direction), wait.
        if !config.simulate_handshake_race {
            while shared.table().is_connected_to(target) {
                tokio::select! {
                    _ = shared.accepting.cancelled() => return,
                    changed = changes.changed() => if changed.is_err() { return },
                }
            }
        }
        let permit = tokio::select! {
            _ = shared.accepting.cancelled() => return,
            permit = shared.outbound_slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (handle, rx) = PeerHandle::new(config, &shared.closing);
        // Registered before the connect: the dial is visible from its first moment.
        let id = shared
            .table()
            .register(Direction::Outbound, target, Some(target), handle.clone());
        let connected = tokio::select! {
            _ = shared.accepting.cancelled() => {
                shared.table().remove(id);
                return;
            }
            c = tokio::time::timeout(config.connect_timeout, TcpStream::connect(target)) => c,
        };
        match connected {
            Ok(Ok(stream)) => {
                shared
                    .metrics
                    .handshake_attempts
                    .with_label_values(&["outbound"])
                    .inc();
                let outbound = Direction::Outbound;
                match connection::run(&shared, stream, id, outbound, handle, rx, None).await {
                    connection::Outcome::HandshakeFailed(HandshakeFailure::SelfConnection) => {
                        info!(%target, "address is ourselves; no longer dialing it");
                        return;
                    }
                    connection::Outcome::Session(end) => {
                        debug!(%target, reason = end.label(), "session ended; will redial");
                        backoff.reset();
                    }
                    connection::Outcome::HandshakeFailed(_)
                    | connection::Outcome::LostDuplicate => {}
                }
            }
            Ok(Err(e)) => {
                shared.table().remove(id);
                let reason = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => "refused",
                    std::io::ErrorKind::TimedOut => "timeout",
                    _ => "io_error",
                };
                shared
                    .metrics
                    .dial_failures
                    .with_label_values(&[reason])
                    .inc();
                debug!(%target, error = %e, attempt = backoff.failures() + 1, "dial failed");
            }
            Err(_) => {
                shared.table().remove(id);
                shared
                    .metrics
                    .dial_failures
                    .with_label_values(&["timeout"])
                    .inc();
                debug!(%target, timeout = ?config.connect_timeout, "dial timed out");
            }
        }
        drop(permit);
        let delay = backoff.next_delay(&mut rand::thread_rng());
        tokio::select! {
            _ = shared.accepting.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
