//! Vote finality (FastPay-style) as a sans-I/O state machine.
//!
//! [`Engine`] takes inputs (a client's transaction, a peer's message, a peer
//! connecting, a timer tick) with the current time, updates the ledger, and returns
//! [`Effect`]s: records to persist and messages to send. The driver must write and
//! fsync every `Persist` of a batch before sending any of its messages: a vote never
//! leaves before the lock behind it is on disk.
//!
//! Per transaction: a validator approves it only if none of its inputs is locked by
//! another transaction (first seen wins), else rejects. More than 2/3 approvals form
//! a certificate: the transaction is applied. More than 1/3 rejections: it can never
//! be. A certificate whose parents are not final here waits for them and fetches
//! them; inventories of finalized transactions are compared with peers so a node that
//! missed anything catches up (seed 004).

mod batch;
mod catchup;
mod checkpoint;
mod claim;
pub mod inventory;
mod orphans;
pub mod quorum;
mod replay;
mod sync;
mod types;
pub mod votes;
mod voting;
mod window;

pub use catchup::CATCHUP_REPLY_BYTES;
pub use checkpoint::ReplayError;
pub use claim::CLAIM_TAIL;
pub use replay::Replay;
pub use sync::{snapshot_part, SnapshotPart, SYNC_TIMEOUT_MS};
pub use types::{
    Bugs, CertifiedClaim, CheckpointHeader, Claim, ClaimVote, Delta, Effect, LedgerMessage, Recent,
    Record, TxReport, TxState,
};

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use tracing::{debug, error, warn};

use crate::identity::{Keypair, NodeId};
use crate::ledger::tx::{OutPoint, Transaction, TxId};
use crate::ledger::{Ledger, Rejection};
use crate::metrics::FinalityMetrics;
use inventory::FinalizedSet;
use quorum::{Certificate, Tally, Validators};

/// Finalizations a node keeps by default (`--finality-window`): their
/// certificates serve catch-up; a node further behind syncs from a snapshot.
pub const FINALITY_WINDOW: usize = 20_000;
/// Certificates sent or requested in one message, at most.
pub const MAX_CERTIFICATES_PER_MESSAGE: usize = 256;
/// Txids offered in one `Have`, at most.
pub const MAX_HAVE: usize = 16_384;
/// Transactions held while their inputs are unknown here, at most (the
/// oldest make room for new ones).
pub const MAX_ORPHANS: usize = 10_000;
/// Bytes of such transactions held, at most: they cannot be checked yet
/// (10,000 of the largest would be about 350 MB).
pub const MAX_ORPHAN_BYTES: usize = 16 * 1024 * 1024;
/// Transactions known only from votes (the transaction has not arrived), at most.
pub const MAX_VOTE_ONLY: usize = 10_000;
/// Recently rejected transactions whose votes a reconnecting peer is sent, at most.
pub const MAX_RECENT_REJECTED: usize = 4_096;
/// Certificates waiting for their parents, at most, with a finality window
/// (the oldest make room; without a window they are kept until applied).
pub const MAX_WAITING: usize = 10_000;
/// How long a certificate waits for its parents, with a finality window (one
/// older than the window may never see them: peers forgot them too).
pub const WAITING_TTL_MS: u64 = 60_000;

#[derive(Debug)]
struct Entry {
    tx: Option<Transaction>,
    first_seen_ms: u64,
    decided_ms: Option<u64>,
    state: TxState,
    tally: Tally,
    /// Our vote (approve: true), once cast (its signature is in the tally
    /// once signed).
    my_vote: Option<bool>,
    reason: Option<String>,
    fee: Option<u64>,
    size: usize,
}

impl Entry {
    fn new(now: u64) -> Self {
        Entry {
            tx: None,
            first_seen_ms: now,
            decided_ms: None,
            state: TxState::Pending,
            tally: Tally::default(),
            my_vote: None,
            reason: None,
            fee: None,
            size: 0,
        }
    }
}

#[derive(Clone)]
pub struct EngineConfig {
    pub network_id: String,
    pub validators: Validators,
    /// Our key, if we are a validator (non-validators relay but never vote).
    pub key: Option<Keypair>,
    pub bugs: Bugs,
    /// Pass on transactions, votes and certificates new here to the other
    /// peers: on in a sparse topology, where a node's neighbours may not hear
    /// them from their origin; off in a full mesh, where everyone does. The
    /// engine's own state (known transactions, the votes of each tally, the
    /// certificates) is the dedup, so each message crosses each link at most
    /// once per direction.
    pub relay: bool,
    /// Finalized transactions whose certificates (and spent outputs) are kept
    /// to serve catch-up and dedup late messages; older ones are forgotten
    /// and only counted in the finalized set's digests (a node further behind
    /// than half of it syncs from a peer's certified checkpoint). 0: keep
    /// them all (and no checkpoints, no state sync).
    pub window: usize,
}

pub struct Engine {
    cfg: EngineConfig,
    ledger: Ledger,
    metrics: FinalityMetrics,
    txs: HashMap<TxId, Entry>,
    locks: HashMap<OutPoint, TxId>,
    /// Every transaction seen spending each outpoint (to reject the losers).
    spenders: HashMap<OutPoint, Vec<TxId>>,
    /// What is kept of each finalized transaction (in the window).
    finals: HashMap<TxId, window::Final>,
    /// Finalized transactions in the order applied here, with times (the
    /// window's; `forgotten` were dropped before them).
    finalized: VecDeque<(TxId, u64)>,
    forgotten: usize,
    finalized_set: FinalizedSet,
    /// Certificates waiting for parents, and which certificates wait on a parent.
    waiting: HashMap<TxId, Arc<Certificate>>,
    waiting_on: HashMap<TxId, HashSet<TxId>>,
    /// Waiting certificates and vote-only entries, oldest first (bounded
    /// with a window; may hold ids no longer there).
    waiting_order: VecDeque<(TxId, u64)>,
    vote_only_order: VecDeque<TxId>,
    /// Transactions whose inputs are unknown here, by missing parent.
    orphans: orphans::OrphanPool,
    mempool: usize,
    mempool_bytes: usize,
    /// Entries known only from votes (their transaction has not arrived).
    vote_only: usize,
    conflicts: Vec<(TxId, TxId)>,
    /// The last rejections decided here, oldest first: a peer that was away
    /// (hops away, behind a cut) hears them on reconnect, or a twin that lost
    /// would stay pending there for ever.
    recent_rejected: std::collections::VecDeque<TxId>,
    tick: u64,
    /// Equivocation switched on live (a Byzantine fault), beside the seeded bug.
    live_equivocate: bool,
    /// Our checkpoints' claims, and those we attested.
    claims: claim::Claims,
    /// A snapshot being fetched (state sync), if one is.
    syncing: Option<Box<sync::Syncing>>,
    /// The current batch's signatures checked together ([`Engine::preverify`]).
    verified: crate::identity::Verified,
    /// Our decisions not signed yet ([`Engine::hold_votes`]).
    held: Option<Vec<(TxId, bool)>>,
}

impl Engine {
    pub fn new(cfg: EngineConfig, ledger: Ledger, metrics: FinalityMetrics) -> Self {
        let engine = Engine {
            cfg,
            ledger,
            metrics,
            txs: HashMap::new(),
            locks: HashMap::new(),
            spenders: HashMap::new(),
            finals: HashMap::new(),
            finalized: VecDeque::new(),
            forgotten: 0,
            finalized_set: FinalizedSet::default(),
            live_equivocate: false,
            waiting: HashMap::new(),
            waiting_on: HashMap::new(),
            waiting_order: VecDeque::new(),
            vote_only_order: VecDeque::new(),
            orphans: Default::default(),
            mempool: 0,
            mempool_bytes: 0,
            vote_only: 0,
            conflicts: Vec::new(),
            recent_rejected: std::collections::VecDeque::new(),
            tick: 0,
            claims: Default::default(),
            syncing: None,
            verified: Default::default(),
            held: None,
        };
        engine.update_gauges();
        engine
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Order-independent digest of the finalized set: equal on nodes that
    /// finalized the same transactions, whatever the order.
    pub fn finalized_digest(&self) -> TxId {
        self.finalized_set.digest()
    }

    pub fn certificate(&self, txid: &TxId) -> Option<&Certificate> {
        self.finals.get(txid).map(|f| &*f.cert)
    }

    pub fn mempool_len(&self) -> usize {
        self.mempool
    }

    /// Pairs of finalized transactions that spend a common output (must stay empty).
    pub fn conflicts(&self) -> &[(TxId, TxId)] {
        &self.conflicts
    }

    fn update_gauges(&self) {
        self.metrics.utxo_set_size.set(self.ledger.len() as i64);
        self.metrics
            .utxo_digest_prefix
            .set(self.ledger.digest().prefix48() as i64);
        let d = self.finalized_set.digest().0;
        let prefix = u64::from_be_bytes([0, 0, d[0], d[1], d[2], d[3], d[4], d[5]]);
        self.metrics.finalized_digest_prefix.set(prefix as i64);
        self.metrics.mempool.set(self.mempool as i64);
    }

    /// Switches live equivocation on or off (the seeded bug stays as set).
    pub fn set_live_equivocate(&mut self, on: bool) {
        self.live_equivocate = on;
    }

    fn equivocates(&self) -> bool {
        self.cfg.bugs.equivocate || self.live_equivocate
    }

    fn reject_count(&self, r: &Rejection) {
        self.metrics.rejected.with_label_values(&[r.label()]).inc();
    }

    /// A transaction submitted by a client. Accepted means valid, not conflicting
    /// with a transaction we locked, and now being voted on.
    pub fn submit(&mut self, tx: Transaction, now: u64) -> (Result<TxId, Rejection>, Vec<Effect>) {
        let txid = tx.id();
        if self.is_final(&txid) || self.txs.get(&txid).is_some_and(|e| e.tx.is_some()) {
            return (Ok(txid), Vec::new());
        }
        let checked = match self.ledger.check_with(&tx, &self.verified) {
            Ok(c) => c,
            Err(r) => {
                self.reject_count(&r);
                return (Err(r), Vec::new());
            }
        };
        if !self.equivocates() {
            if let Some((op, by)) = self.locked_by_other(&tx, &txid) {
                let r = Rejection::Conflict { outpoint: op, by };
                self.reject_count(&r);
                return (Err(r), Vec::new());
            }
        }
        if let Err(r) = self.mempool_has_room(tx.size()) {
            self.reject_count(&r);
            return (Err(r), Vec::new());
        }
        let mut fx = vec![Effect::Broadcast(LedgerMessage::Tx(tx.clone()))];
        self.admit(txid, tx, checked.fee, now);
        self.vote(txid, &mut fx);
        self.check_quorum(txid, now, &mut fx);
        (Ok(txid), fx)
    }

    fn mempool_has_room(&self, size: usize) -> Result<(), Rejection> {
        let l = self.ledger.limits();
        if self.mempool >= l.mempool_max_transactions {
            return Err(Rejection::MempoolFull("transactions"));
        }
        if self.mempool_bytes + size > l.mempool_max_bytes {
            return Err(Rejection::MempoolFull("bytes"));
        }
        Ok(())
    }

    fn locked_by_other(&self, tx: &Transaction, txid: &TxId) -> Option<(OutPoint, TxId)> {
        tx.inputs.iter().find_map(|i| {
            self.locks
                .get(&i.prev)
                .filter(|by| *by != txid)
                .map(|by| (i.prev, *by))
        })
    }

    /// Records a valid transaction as pending.
    fn admit(&mut self, txid: TxId, tx: Transaction, fee: u64, now: u64) {
        let size = tx.size();
        for i in &tx.inputs {
            let s = self.spenders.entry(i.prev).or_default();
            if !s.contains(&txid) {
                s.push(txid);
            }
        }
        let e = self.entry(txid, now);
        let (no_tx, pending) = (e.tx.is_none(), e.state == TxState::Pending);
        if no_tx && pending {
            self.mempool += 1;
            self.mempool_bytes += size;
        }
        if no_tx {
            self.vote_only -= 1;
        }
        let e = self.entry(txid, now);
        e.tx = Some(tx);
        e.fee = Some(fee);
        e.size = size;
        self.update_gauges();
    }

    /// Forms a certificate or a rejection once the votes are there.
    fn check_quorum(&mut self, txid: TxId, now: u64, fx: &mut Vec<Effect>) {
        let validators = &self.cfg.validators;
        let Some(e) = self.txs.get(&txid) else { return };
        if e.state != TxState::Pending {
            return;
        }
        let Some(tx) = &e.tx else { return };
        if let Some(cert) = e.tally.certificate(tx, validators) {
            let cert = Arc::new(cert);
            self.metrics.certificates.inc();
            // Whoever assembles a certificate shares it: peers that missed votes
            // get finality without waiting for catch-up.
            fx.push(Effect::Broadcast(LedgerMessage::Certificate(cert.clone())));
            self.finalize(cert, now, fx);
        } else if e.tally.rejections() >= validators.reject_quorum() {
            // Locked here: the lock's record would bring it back as pending.
            if e.my_vote == Some(true) {
                let votes = e.tally.votes(txid).filter(|v| !v.approve).collect();
                fx.push(Effect::Persist(Record::Rejected { txid, votes }));
            }
            self.decide_rejected(txid, "vote_rejected", now);
        }
    }

    fn decide_rejected(&mut self, txid: TxId, reason: &str, now: u64) {
        let Some(e) = self.txs.get_mut(&txid) else {
            return;
        };
        if e.state != TxState::Pending {
            return;
        }
        e.state = TxState::Rejected;
        e.decided_ms = Some(now);
        e.reason = Some(reason.to_owned());
        if e.tx.is_some() {
            self.mempool -= 1;
            self.mempool_bytes -= e.size;
        }
        if self.recent_rejected.len() >= self.recent_rejected_cap() {
            if let Some(old) = self.recent_rejected.pop_front() {
                self.forget_rejected(old);
            }
        }
        self.recent_rejected.push_back(txid);
        self.metrics.rejected.with_label_values(&[reason]).inc();
        self.update_gauges();
    }

    /// Applies a verified certificate, or parks it until its parents are final.
    fn finalize(&mut self, cert: Arc<Certificate>, now: u64, fx: &mut Vec<Effect>) {
        let txid = cert.tx.id();
        if self.is_final(&txid) {
            return;
        }
        let mut missing = Vec::new();
        for i in &cert.tx.inputs {
            if self.ledger.contains(&i.prev) {
                continue;
            }
            if let Some(other) = self.ledger.spent_by(&i.prev) {
                if other == txid {
                    return; // applied here before, and forgotten since
                }
                // Quorum intersection makes this impossible with at most f faulty
                // validators: report it loudly, it is what the checkers look for.
                if !self.conflicts.contains(&(other, txid)) {
                    error!(tx = %txid.short(), other = %other.short(), "SAFETY VIOLATION: certificate spends an output already spent by a finalized transaction");
                    self.metrics.conflicting_certificates.inc();
                    self.conflicts.push((other, txid));
                }
                return;
            }
            missing.push(i.prev.txid);
        }
        if !missing.is_empty() {
            self.park(txid, cert, missing, now, fx);
            return;
        }
        self.waiting.remove(&txid);
        let before = claim::Mark::of(&self.ledger);
        let fee = self.ledger.apply(&cert.tx, !self.cfg.bugs.utxo_no_spend);
        let delta = before.delta(&self.ledger);
        for i in &cert.tx.inputs {
            self.locks.remove(&i.prev);
        }
        // Only what `/tx` reports is kept of its entry.
        let (first_seen_ms, approvals, rejections) = match self.txs.remove(&txid) {
            Some(e) => {
                if e.tx.is_some() && e.state == TxState::Pending {
                    self.metrics
                        .finality_latency
                        .observe(now.saturating_sub(e.first_seen_ms) as f64 / 1000.0);
                    self.mempool -= 1;
                    self.mempool_bytes -= e.size;
                }
                if e.tx.is_none() {
                    self.vote_only -= 1;
                }
                let approvals = e.tally.approvals().max(cert.approvals.len());
                (e.first_seen_ms, approvals, e.tally.rejections())
            }
            None => (now, cert.approvals.len(), 0),
        };
        self.metrics.finalized.inc();
        fx.push(Effect::Persist(Record::FinalizedAt {
            cert: cert.clone(),
            at_ms: now,
        }));
        // Conflicting transactions can never be final now; later ones fail
        // the ledger's check (the output is spent).
        let losers: Vec<TxId> = cert
            .tx
            .inputs
            .iter()
            .flat_map(|i| self.spenders.remove(&i.prev).unwrap_or_default())
            .filter(|t| *t != txid)
            .collect();
        for loser in losers {
            self.decide_rejected(loser, "input_spent", now);
        }
        let kept = window::Final {
            cert,
            at_ms: now,
            first_seen_ms,
            fee,
            approvals,
            rejections,
            delta: Some(delta),
        };
        self.remember(txid, kept);
        self.update_gauges();
        // Children waiting for this parent.
        for child in self.waiting_on.remove(&txid).unwrap_or_default() {
            if let Some(c) = self.waiting.get(&child).cloned() {
                self.finalize(c, now, fx);
            }
        }
        for tx in self.orphans.take_children(&txid) {
            self.on_tx(tx, None, now, fx);
        }
    }

    /// Holds a certificate until its `missing` parents are final here, and asks for them.
    fn park(
        &mut self,
        txid: TxId,
        cert: Arc<Certificate>,
        mut missing: Vec<TxId>,
        now: u64,
        fx: &mut Vec<Effect>,
    ) {
        if self.cfg.window > 0 && self.applied_before(&cert) {
            return;
        }
        missing.sort();
        missing.dedup();
        for parent in &missing {
            self.waiting_on.entry(*parent).or_default().insert(txid);
        }
        if self.waiting.insert(txid, cert).is_none() && self.cfg.window > 0 {
            self.waiting_order.push_back((txid, now));
            self.bound_waiting(now);
        }
        if !self.cfg.bugs.passive_catchup {
            fx.push(Effect::Broadcast(LedgerMessage::GetCertificates(missing)));
        }
    }

    /// A transaction gossiped by peer `from` (`None`: an orphan whose parents
    /// arrived).
    fn on_tx(&mut self, tx: Transaction, from: Option<NodeId>, now: u64, fx: &mut Vec<Effect>) {
        let txid = tx.id();
        if self.is_final(&txid) {
            return;
        }
        if let Some(e) = self.txs.get(&txid) {
            if e.state != TxState::Pending || e.my_vote.is_some() || e.tx.is_some() {
                return;
            }
        }
        match self.ledger.check_with(&tx, &self.verified) {
            Ok(checked) => {
                if self.mempool_has_room(tx.size()).is_err() {
                    return;
                }
                if self.cfg.relay {
                    fx.push(match from {
                        Some(from) => Effect::Relay(from, LedgerMessage::Tx(tx.clone())),
                        None => Effect::Broadcast(LedgerMessage::Tx(tx.clone())),
                    });
                }
                self.admit(txid, tx, checked.fee, now);
                self.vote(txid, fx);
                self.check_quorum(txid, now, fx);
            }
            Err(Rejection::UnknownInput(_)) => {
                if self.orphans.contains(&txid) {
                    return;
                }
                let parents: Vec<TxId> = tx
                    .inputs
                    .iter()
                    .filter(|i| !self.ledger.contains(&i.prev))
                    .map(|i| i.prev.txid)
                    .collect();
                let evicted = self
                    .orphans
                    .insert(tx, parents, MAX_ORPHANS, MAX_ORPHAN_BYTES);
                if evicted > 0 {
                    self.metrics
                        .rejected
                        .with_label_values(&["orphans_full"])
                        .inc_by(evicted as u64);
                }
            }
            Err(r @ Rejection::InputSpent { .. }) => {
                // A double spend of a final output: reject it so it is decided.
                self.reject_count(&r);
                let known = self.txs.get(&txid).map(|e| e.my_vote.is_some());
                if self.cfg.key.is_none()
                    || known == Some(true)
                    || (known.is_none() && self.cfg.window > 0 && !self.room_for_vote_only())
                {
                    return;
                }
                self.entry(txid, now);
                self.cast(txid, false, fx);
            }
            Err(r) => {
                debug!(tx = %txid.short(), reason = r.label(), "invalid transaction from a peer");
                self.reject_count(&r);
            }
        }
    }

    fn on_certificate(&mut self, cert: Arc<Certificate>, now: u64, fx: &mut Vec<Effect>) -> bool {
        let txid = cert.tx.id();
        if self.is_final(&txid) || self.waiting.contains_key(&txid) {
            return false;
        }
        let tally = self.txs.get(&txid).map(|e| &e.tally);
        let known = |a: &quorum::Approval, msg: &[u8; 32]| {
            tally.is_some_and(|t| t.has_approval(a))
                || self.verified.contains(&a.voter, msg, &a.signature.0)
        };
        let verified = cert.verify(&self.cfg.network_id, &self.cfg.validators, known);
        if let Err(e) = verified {
            warn!(tx = %txid.short(), error = %e, "dropping an invalid certificate");
            return false;
        }
        if self.ledger.check_shape(&cert.tx).is_err() {
            warn!(tx = %txid.short(), "dropping a certificate of a malformed transaction");
            return false;
        }
        self.finalize(cert, now, fx);
        true
    }

    /// A message from peer `from`.
    pub fn on_message(&mut self, from: NodeId, msg: LedgerMessage, now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        match msg {
            LedgerMessage::Tx(tx) => self.on_tx(tx, Some(from), now, &mut fx),
            LedgerMessage::Vote(v) => self.on_vote(from, v, now, &mut fx),
            LedgerMessage::Votes(b) => self.on_votes(from, b, now, &mut fx),
            LedgerMessage::Certificate(c) => {
                let relayed = self.cfg.relay.then(|| c.clone());
                if self.on_certificate(c, now, &mut fx) {
                    if let Some(c) = relayed {
                        fx.push(Effect::Relay(from, LedgerMessage::Certificate(c)));
                    }
                }
            }
            LedgerMessage::Inventory(_)
            | LedgerMessage::Have(_)
            | LedgerMessage::GetCertificates(_)
            | LedgerMessage::Certificates(_) => self.on_catch_up(from, msg, now, &mut fx),
            LedgerMessage::Claim(_)
            | LedgerMessage::ClaimVote(_)
            | LedgerMessage::GetSnapshot
            | LedgerMessage::SnapshotOffer(_)
            | LedgerMessage::GetSnapshotPart { .. }
            | LedgerMessage::SnapshotPart { .. } => self.on_state_sync(from, msg, now, &mut fx),
        }
        fx
    }
}

#[cfg(test)]
impl Engine {
    /// The counter equals what a scan of the entries would say.
    fn vote_only_is_counted(&self) -> bool {
        self.vote_only == self.txs.values().filter(|e| e.tx.is_none()).count()
    }
}

#[cfg(test)]
mod tests;
