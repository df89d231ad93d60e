//! A replica: the finality [`Engine`] driven by the network, the store and a clock.
//!
//! One task owns the driving. It takes a batch of inputs (client submissions,
//! peer messages, peer arrivals, a timer tick), runs them through the engine,
//! appends the batch's records to the store and fsyncs **once** (group commit),
//! and only then sends the batch's messages and answers its clients. HTTP queries
//! read the engine through a short lock.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::byzantine::{Behaviour, Misbehaviour};
use crate::datadir::Checkpointer;
use crate::finality::votes::MAX_VOTES_PER_BATCH;
use crate::finality::{Effect, Engine, Record};
use crate::identity::NodeId;
use crate::ledger::tx::{Transaction, TxId};
use crate::ledger::Rejection;
use crate::p2p::message::Message;
use crate::p2p::{Network, NetworkEvent};
use crate::store::Store;

/// Inputs taken per batch, at most.
const MAX_BATCH: usize = 512;
/// How long our first unsigned vote waits for others to share its
/// signature (a batch of [`MAX_VOTES_PER_BATCH`] goes at once).
const VOTE_HOLD: Duration = Duration::from_millis(4);

pub fn now_ms() -> u64 {
    crate::clock::real_ms()
}

/// Why a submission was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("the node is shutting down or its store failed")]
    Unavailable,
}

enum Command {
    Submit(Transaction, oneshot::Sender<Result<TxId, SubmitError>>),
}

/// What HTTP handlers hold: a way to submit, and the engine to read.
#[derive(Clone)]
pub struct ReplicaHandle {
    commands: mpsc::Sender<Command>,
    engine: Arc<Mutex<Engine>>,
    /// Why the replica stopped, once its store failed (it votes no more).
    failure: Arc<Mutex<Option<String>>>,
    /// The wall clock the engine is driven with (skewed by a clock fault).
    pub clock: Arc<crate::clock::Clock>,
    /// Byzantine behaviours switched on live (a fault); honest by default.
    pub byzantine: Arc<crate::byzantine::Byzantine>,
    /// Disk faults of the store (a fault); a healthy disk by default.
    pub storage: Arc<crate::store::StorageFaults>,
    /// The ledger's checkpoints, as the checkpointer writes them.
    pub checkpoints: Arc<crate::datadir::Progress>,
    /// Held for writing from a batch's first change to the engine until its
    /// records are durable; HTTP reads take it for reading, so they never
    /// show what a crash could still lose.
    view: Arc<tokio::sync::RwLock<()>>,
}

impl ReplicaHandle {
    /// Submits a transaction; resolves once it is accepted and persisted, or refused.
    pub async fn submit(&self, tx: Transaction) -> Result<TxId, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Submit(tx, reply))
            .await
            .map_err(|_| SubmitError::Unavailable)?;
        answer.await.map_err(|_| SubmitError::Unavailable)?
    }

    /// Submits transactions together (they reach the engine in as few
    /// batches as the queue allows); each answer as [`ReplicaHandle::submit`]
    /// gives it, in order.
    pub async fn submit_many(&self, txs: Vec<Transaction>) -> Vec<Result<TxId, SubmitError>> {
        let mut answers = Vec::with_capacity(txs.len());
        for tx in txs {
            let (reply, answer) = oneshot::channel();
            match self.commands.send(Command::Submit(tx, reply)).await {
                Ok(()) => answers.push(Some(answer)),
                Err(_) => answers.push(None),
            }
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                Some(a) => a.await.unwrap_or(Err(SubmitError::Unavailable)),
                None => Err(SubmitError::Unavailable),
            });
        }
        results
    }

    /// The engine as it is now, durable or not (the replica's own use, and
    /// tests); HTTP reads go through [`ReplicaHandle::durable`] first.
    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until no batch is between changing the engine and making its
    /// records durable; while the guard lives, what the engine shows is on
    /// disk (a batch that failed to persist stops the replica: reads after
    /// it show the node unhealthy).
    pub async fn durable(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.view.read().await
    }

    /// The store error that stopped the replica, if one did.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

pub struct Replica {
    pub handle: ReplicaHandle,
    commands: mpsc::Receiver<Command>,
}

impl Replica {
    pub fn new(engine: Engine) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        Replica {
            handle: ReplicaHandle {
                commands: tx,
                engine: Arc::new(Mutex::new(engine)),
                failure: Arc::new(Mutex::new(None)),
                clock: Arc::default(),
                byzantine: Arc::default(),
                storage: Arc::default(),
                checkpoints: Arc::default(),
                view: Arc::default(),
            },
            commands: rx,
        }
    }

    /// Drives the engine until `stop` is cancelled or the store fails.
    pub async fn run(
        self,
        mut store: Store<Record>,
        mut checkpointer: Checkpointer,
        network: Network,
        mut events: mpsc::Receiver<NetworkEvent>,
        tick: Duration,
        stop: CancellationToken,
    ) {
        let Replica {
            handle,
            mut commands,
        } = self;
        store.set_faults(handle.storage.clone());
        let mut behaved = Misbehaviour::honest();
        let mut release_at: Option<Instant> = None;
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Reused: a batch of hundreds of inputs grown afresh each time was
        // a chain of reallocations of a hundred kilobytes.
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                Some(e) = events.recv() => batch.push(Input::Net(e)),
                Some(c) = commands.recv() => batch.push(Input::Client(c)),
                _ = ticker.tick() => batch.push(Input::Tick),
                _ = tokio::time::sleep_until(release_at.unwrap_or_else(Instant::now)),
                    if release_at.is_some() => {}
            }
            fill(&mut batch, &mut events, &mut commands);
            let peers = if batch.iter().any(|i| matches!(i, Input::Tick)) {
                network.peer_ids()
            } else {
                Vec::new()
            };
            let mut effects = Vec::new();
            let mut replies = Vec::new();
            let behaving = handle.byzantine.get();
            let changing = handle.view.clone().write_owned().await;
            {
                let mut engine = handle.engine();
                if checkpointer.poll(&mut engine) {
                    effects.extend(engine.announce_claim());
                }
                let now = handle.clock.now_ms();
                engine.set_live_equivocate(behaving.is(Behaviour::Equivocate));
                // A behaviour switched off: offer every peer what an honest
                // node would have sent meanwhile (as to a peer reconnecting).
                if behaved
                    .behaviours
                    .difference(&behaving.behaviours)
                    .next()
                    .is_some()
                {
                    for peer in network.peer_ids() {
                        effects.extend(engine.on_peer_connected(peer));
                    }
                }
                apply(
                    &mut engine,
                    &mut batch,
                    &peers,
                    now,
                    &mut effects,
                    &mut replies,
                );
                release_votes(&mut engine, &mut release_at, now, &mut effects);
            }
            let (records, mut effects) = persisted(effects);
            let appended = !records.is_empty();
            if appended {
                let (back, written) = tokio::task::spawn_blocking(move || {
                    let r = store.append(&records);
                    (store, r)
                })
                .await
                .expect("store task does not panic");
                store = back;
                if let Err(e) = written {
                    // Nothing of this batch may leave: no vote without its lock.
                    error!(error = %e, "cannot persist; the replica stops voting");
                    stopped(&handle, replies, e.to_string());
                    break;
                }
            }
            if let Some(seq) = installed(&effects) {
                // The snapshot's state is made durable before anything leaves.
                match persist_install(&handle, &mut checkpointer, &mut store, seq).await {
                    Ok(announce) => effects.extend(announce),
                    Err(e) => {
                        error!(error = %e, "cannot persist a snapshot; the replica stops voting");
                        stopped(&handle, replies, e);
                        break;
                    }
                }
            } else if appended {
                checkpointer.after_batch(&mut store, &handle.engine());
            }
            drop(changing);
            let mute = behaving.is(Behaviour::Mute);
            serve_snapshots(&network, checkpointer.dir(), mute, &mut effects);
            send(&network, &behaving, effects);
            behaved = behaving;
            for (reply, result) in replies {
                let _ = reply.send(result.map_err(SubmitError::from));
            }
        }
        checkpointer.finish().await;
        info!("replica stopped");
    }
}

/// Sends a batch's messages, as the node's live behaviours bend them.
fn send(network: &Network, behaving: &Misbehaviour, effects: Vec<Effect>) {
    let out = crate::byzantine::bend(behaving, effects);
    dispatch(network, out.now);
    if out.garbage {
        network.broadcast_payload(None, "garbage", crate::byzantine::garbage());
    }
    if !out.held.is_empty() {
        let (network, hold) = (network.clone(), Duration::from_millis(behaving.delay_ms));
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            dispatch(&network, out.held);
        });
    }
}

type Replies = Vec<(
    oneshot::Sender<Result<TxId, SubmitError>>,
    Result<TxId, Rejection>,
)>;

/// Runs a batch's inputs through the engine, their signatures checked
/// together first.
fn apply(
    engine: &mut Engine,
    batch: &mut Vec<Input>,
    peers: &[NodeId],
    now: u64,
    effects: &mut Vec<Effect>,
    replies: &mut Replies,
) {
    let messages = batch.iter().filter_map(|i| match i {
        Input::Net(NetworkEvent::Message(_, m)) => Some(m),
        _ => None,
    });
    let submitted = batch.iter().filter_map(|i| match i {
        Input::Client(Command::Submit(tx, _)) => Some(tx),
        _ => None,
    });
    engine.preverify(messages, submitted);
    // Our votes are held and signed together ([`release_votes`]).
    engine.hold_votes();
    for input in batch.drain(..) {
        match input {
            Input::Net(NetworkEvent::Message(from, m)) => {
                effects.extend(engine.on_message(from, m, now))
            }
            Input::Net(NetworkEvent::PeerConnected(peer)) => {
                effects.extend(engine.on_peer_connected(peer))
            }
            Input::Client(Command::Submit(tx, reply)) => {
                let (result, fx) = engine.submit(tx, now);
                effects.extend(fx);
                replies.push((reply, result));
            }
            Input::Tick => effects.extend(engine.on_tick(peers, now)),
        }
    }
}

/// A batch's records to persist, moved out of its effects (the rest).
fn persisted(effects: Vec<Effect>) -> (Vec<Record>, Vec<Effect>) {
    let mut rest = Vec::with_capacity(effects.len());
    let mut records = Vec::new();
    for e in effects {
        match e {
            Effect::Persist(r) => records.push(r),
            e => rest.push(e),
        }
    }
    (records, rest)
}

/// Signs and sends our held votes once the first has waited [`VOTE_HOLD`]
/// or they fill a batch; else says when they are due.
fn release_votes(
    engine: &mut Engine,
    release_at: &mut Option<Instant>,
    now: u64,
    effects: &mut Vec<Effect>,
) {
    let held = engine.held_votes();
    if held == 0 {
        return;
    }
    let at = *release_at.get_or_insert_with(|| Instant::now() + VOTE_HOLD);
    if held >= MAX_VOTES_PER_BATCH || Instant::now() >= at {
        effects.extend(engine.release_votes(now));
        *release_at = None;
    }
}

/// Adds what else is waiting to a batch, up to [`MAX_BATCH`].
fn fill(
    batch: &mut Vec<Input>,
    events: &mut mpsc::Receiver<NetworkEvent>,
    commands: &mut mpsc::Receiver<Command>,
) {
    while batch.len() < MAX_BATCH {
        match events.try_recv() {
            Ok(e) => batch.push(Input::Net(e)),
            Err(_) => break,
        }
    }
    while batch.len() < MAX_BATCH {
        match commands.try_recv() {
            Ok(c) => batch.push(Input::Client(c)),
            Err(_) => break,
        }
    }
}

/// The replica stops (its store failed): why, and every client waiting told.
fn stopped(handle: &ReplicaHandle, replies: Replies, why: String) {
    *handle.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    for (reply, _) in replies {
        let _ = reply.send(Err(SubmitError::Unavailable));
    }
}

/// Writes the state of a snapshot installed (at `seq`) as a checkpoint;
/// returns its claim's announcement.
async fn persist_install(
    handle: &ReplicaHandle,
    checkpointer: &mut Checkpointer,
    store: &mut Store<Record>,
    seq: u64,
) -> Result<Vec<Effect>, String> {
    let (image, claim, count) = {
        let engine = handle.engine();
        let count = engine.finalized_count() as u64;
        (engine.checkpoint_image(), engine.claim(), count)
    };
    checkpointer.install(store, image, count, seq).await?;
    let mut engine = handle.engine();
    Ok(claim.map_or_else(Vec::new, |claim| {
        engine.propose(claim);
        engine.announce_claim()
    }))
}

/// The snapshot installed in this batch, if one was.
fn installed(effects: &[Effect]) -> Option<u64> {
    effects.iter().find_map(|e| match e {
        Effect::Installed { seq } => Some(*seq),
        _ => None,
    })
}

/// Reads the snapshot parts peers asked for off the replica's task, and
/// sends each when read (a part not here is not answered: the peer's sync
/// times out and tries another peer).
/// A muted node (a Byzantine fault) serves none.
fn serve_snapshots(
    network: &Network,
    dir: &std::path::Path,
    mute: bool,
    effects: &mut Vec<Effect>,
) {
    effects.retain(|e| {
        let Effect::ServeSnapshot { to, seq, index } = *e else {
            return true;
        };
        if mute {
            return false;
        }
        let (network, dir) = (network.clone(), dir.to_path_buf());
        tokio::task::spawn_blocking(move || {
            if let Some(part) = crate::datadir::snapshot_part(&dir, seq, index) {
                network.send_to(&to, &Message::Ledger(part));
            }
        });
        false
    });
}

fn dispatch(network: &Network, effects: Vec<Effect>) {
    for e in effects {
        match e {
            Effect::Persist(_) | Effect::ServeSnapshot { .. } | Effect::Installed { .. } => {}
            Effect::Broadcast(m) => {
                network.broadcast(&Message::Ledger(m));
            }
            Effect::Send(to, m) => {
                network.send_to(&to, &Message::Ledger(m));
            }
            Effect::Relay(from, m) => {
                network.broadcast_except(Some(&from), &Message::Ledger(m));
            }
        }
    }
}

enum Input {
    Net(NetworkEvent),
    Client(Command),
    Tick,
}
