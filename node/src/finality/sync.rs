//! State sync: a node far behind (more than half its window) installs a
//! peer's certified checkpoint instead of fetching what the peers forgot.
//!
//! It asks the peer whose inventory showed it ahead (`GetSnapshot`), checks
//! the offered claim's attestations (more than a third of the validators),
//! then fetches the checkpoint in parts: its header, which must state the
//! claim's digests, the unspent outputs and the window's finalizations (each
//! certificate verified). They are restored into a scratch engine, which
//! checks that they add up to the header, and the claim's tail must be the
//! window's last finalizations. Only then is the state installed, keeping
//! our own locks on outputs still unspent and our pending approvals: the
//! driver writes it as a checkpoint before anything else leaves
//! ([`Effect::Installed`]). Windowed catch-up then fetches what came after.
//! A part that does not come within [`SYNC_TIMEOUT_MS`], or a snapshot that
//! does not add up, ends the attempt; the next far-ahead inventory of
//! another peer starts a new one.

use prometheus::Registry;

use super::checkpoint::ReplayError;
use super::types::CheckpointHeader;
use super::*;

/// How long a sync waits for the next part before it gives up.
pub const SYNC_TIMEOUT_MS: u64 = 10_000;
/// How long it waits for an offer (a peer whose newest checkpoint is not
/// certified yet offers none).
const OFFER_TIMEOUT_MS: u64 = 5_000;
/// A request not answered within this is sent again (a peer over its
/// serving budget, or between two checkpoints, answers nothing).
const RETRY_MS: u64 = 1_500;
/// How long a whole sync may take (a peer sending tiny parts slowly).
const SYNC_DEADLINE_MS: u64 = 120_000;
/// Finalizations a snapshot's window may hold, at most.
const MAX_SNAPSHOT_WINDOW: u64 = 200_000;
/// How long a peer whose snapshot failed is not asked again.
const SHUN_MS: u64 = 3 * SYNC_TIMEOUT_MS;

/// A snapshot being fetched.
pub(super) struct Syncing {
    peer: NodeId,
    started_ms: u64,
    last_ms: u64,
    asked_ms: u64,
    offer: Option<CertifiedClaim>,
    next: u32,
    scratch: Option<Box<Engine>>,
    replay: Replay,
    /// The last window finalizations received (as many as the claim's tail).
    last: VecDeque<TxId>,
    /// Every one received (none twice), and how many its header says.
    window: HashSet<TxId>,
    recent: u64,
    utxos: u64,
    /// Approvals of the window checked so far (a batch's signature is
    /// shared by its votes: checked once).
    checked: HashSet<crate::identity::Signed>,
}

/// Part `index` of a checkpoint's records (only its state: the header, the
/// unspent outputs and the window; not its locks), each part at most
/// `budget` encoded bytes (a record larger than that is a part of its own).
/// `None` if there is no such part.
pub fn snapshot_part(
    records: impl IntoIterator<Item = Record>,
    seq: u64,
    index: u32,
    budget: usize,
) -> Option<LedgerMessage> {
    let mut part = SnapshotPart::new(seq, index, budget);
    records.into_iter().for_each(|r| part.push(r));
    part.finish()
}

/// [`snapshot_part`] fed a record at a time (as a checkpoint file is read):
/// only the part asked for is held.
pub struct SnapshotPart {
    seq: u64,
    index: u32,
    budget: usize,
    part: u32,
    size: usize,
    out: Vec<Record>,
}

impl SnapshotPart {
    pub fn new(seq: u64, index: u32, budget: usize) -> SnapshotPart {
        SnapshotPart {
            seq,
            index,
            budget,
            part: 0,
            size: 0,
            out: Vec::new(),
        }
    }

    pub fn push(&mut self, r: Record) {
        let state = matches!(
            r,
            Record::Checkpoint(_) | Record::Utxos(_) | Record::Recent(_)
        );
        if !state || self.part > self.index {
            return;
        }
        let n = postcard::to_stdvec(&r).map_or(usize::MAX, |v| v.len());
        if self.size > 0 && self.size.saturating_add(n) > self.budget {
            self.part += 1;
            self.size = 0;
        }
        self.size = self.size.saturating_add(n);
        if self.part == self.index {
            self.out.push(r);
        }
    }

    pub fn finish(self) -> Option<LedgerMessage> {
        (!self.out.is_empty()).then_some(LedgerMessage::SnapshotPart {
            seq: self.seq,
            index: self.index,
            last: self.part == self.index,
            records: self.out,
        })
    }
}

impl Engine {
    /// Snapshots installed since the engine started: each replaced the
    /// list of finalizations (`/finalized` says so).
    pub fn snapshots_installed(&self) -> u64 {
        self.claims.installed
    }

    /// A peer's inventory: far enough ahead (more than half our window), it
    /// is asked for a snapshot, unless a sync is under way. Once we were so
    /// far behind, any peer ahead of us is asked, until a snapshot is
    /// installed or a peer holds the same set as ours: catch-up soon brings
    /// what is still in the peers' windows (our count rises near theirs) but
    /// never what they forgot, and those holes would stay.
    pub(super) fn maybe_sync(
        &mut self,
        from: NodeId,
        inv: &super::inventory::Inventory,
        now: u64,
        fx: &mut Vec<Effect>,
    ) {
        let own = self.finalized_count() as u64;
        let gap = (self.cfg.window as u64 / 2).max(1);
        if self.cfg.window == 0 || self.cfg.bugs.passive_catchup {
            return;
        }
        if inv.count == own && inv.buckets == self.finalized_set.inventory().buckets {
            self.claims.behind = None;
        }
        if inv.count > own + gap && self.claims.behind.is_none() {
            self.claims.behind = Some(own);
        }
        if self.claims.behind.is_none() || inv.count <= own {
            return;
        }
        self.sync_tick(now, fx);
        self.claims.shunned.retain(|_, at| *at + SHUN_MS >= now);
        if self.syncing.is_some() || self.claims.shunned.contains_key(&from) {
            return;
        }
        let theirs = inv.count;
        tracing::info!(peer = %from.short(), ours = own, theirs, behind_since = ?self.claims.behind, "behind: asking for a snapshot");
        self.syncing = Some(Box::new(Syncing::new(from, now)));
        fx.push(Effect::Send(from, LedgerMessage::GetSnapshot));
    }

    /// On each tick: a request not answered is sent again; a sync whose
    /// peer went quiet ends.
    pub(super) fn sync_tick(&mut self, now: u64, fx: &mut Vec<Effect>) {
        if let Some(s) = self.syncing.as_deref_mut() {
            if s.asked_ms.saturating_add(RETRY_MS) < now {
                s.asked_ms = now;
                let again = match &s.offer {
                    None => LedgerMessage::GetSnapshot,
                    Some(o) => LedgerMessage::GetSnapshotPart {
                        seq: o.claim.seq,
                        index: s.next,
                    },
                };
                fx.push(Effect::Send(s.peer, again));
            }
        }
        if let Some(s) = &self.syncing {
            let wait = match s.offer {
                None => OFFER_TIMEOUT_MS,
                Some(_) => SYNC_TIMEOUT_MS,
            };
            let late = s.started_ms.saturating_add(SYNC_DEADLINE_MS) < now;
            if s.last_ms.saturating_add(wait) < now || late {
                let peer = s.peer;
                let why = format!("{} did not answer in time", peer.short());
                self.end_sync(peer, "timeout", &why, now);
            }
        }
    }

    /// A sync that failed: its peer is tried last for a while.
    fn end_sync(&mut self, peer: NodeId, result: &str, why: &str, now: u64) {
        self.syncing = None;
        self.claims.shunned.insert(peer, now);
        self.metrics.state_syncs.with_label_values(&[result]).inc();
        warn!(result, why, "state sync failed");
    }

    pub(super) fn on_snapshot_offer(
        &mut self,
        from: NodeId,
        offer: CertifiedClaim,
        now: u64,
        fx: &mut Vec<Effect>,
    ) {
        let Some(s) = self.syncing.as_deref() else {
            return;
        };
        let fetching = s.offer.as_ref().map(|o| o.claim.seq);
        // A newer one: the peer's checkpoint changed under the fetch.
        if s.peer != from || fetching.is_some_and(|seq| offer.claim.seq <= seq) {
            return;
        }
        // Where we were when found far behind (what catch-up brought since
        // does not fill what the peers forgot).
        let own = (self.claims.behind).unwrap_or(self.finalized_count() as u64);
        let checked = offer.check(&self.cfg.validators).and_then(|()| {
            let c = &offer.claim;
            // Far enough ahead to be worth it (a Byzantine peer cannot make
            // us swap our state for about the same).
            if c.network_id != self.cfg.network_id || c.seq <= own + self.cfg.window as u64 / 4 {
                return Err(format!("a claim at {} (we were at {own})", c.seq));
            }
            Ok(())
        });
        if let Err(why) = checked {
            let why = format!("the offer of {}: {why}", from.short());
            return self.end_sync(from, "refused", &why, now);
        }
        let mut cfg = self.cfg.clone();
        cfg.key = None;
        let scratch = Engine::new(
            cfg,
            self.ledger.clone(),
            FinalityMetrics::register(&Registry::new()),
        );
        let seq = offer.claim.seq;
        let Some(s) = self.syncing.as_deref_mut() else {
            return;
        };
        let started = s.started_ms;
        *s = Syncing::new(from, now);
        s.started_ms = started;
        s.offer = Some(offer);
        s.scratch = Some(Box::new(scratch));
        fx.push(Effect::Send(
            from,
            LedgerMessage::GetSnapshotPart { seq, index: 0 },
        ));
    }

    pub(super) fn on_snapshot_part(
        &mut self,
        from: NodeId,
        (seq, index, last): (u64, u32, bool),
        records: Vec<Record>,
        now: u64,
        fx: &mut Vec<Effect>,
    ) {
        let Some(s) = self.syncing.as_deref_mut() else {
            return;
        };
        let expected = s.offer.as_ref().map(|o| o.claim.seq);
        if s.peer != from || expected != Some(seq) || s.next != index {
            return;
        }
        (s.last_ms, s.asked_ms) = (now, now);
        let network = self.cfg.network_id.clone();
        let validators = self.cfg.validators.clone();
        if let Err(ReplayError(why)) = s.feed(records, &network, &validators) {
            let why = format!("the snapshot of {}: {why}", from.short());
            return self.end_sync(from, "refused", &why, now);
        }
        if !last {
            s.next += 1;
            let index = s.next;
            fx.push(Effect::Send(
                from,
                LedgerMessage::GetSnapshotPart { seq, index },
            ));
            return;
        }
        let Some(s) = self.syncing.take() else { return };
        let own = self.finalized_count() as u64;
        match s.finish(own) {
            Ok(scratch) => self.install(*scratch, seq, now, fx),
            Err(ReplayError(why)) => {
                let why = format!("the snapshot of {}: {why}", from.short());
                self.end_sync(from, "refused", &why, now);
            }
        }
    }

    /// Takes the state of `scratch` (a verified snapshot at `seq`). What we
    /// finalized that it lacks (we applied it in another order, or its
    /// claimant left it out) is applied again, or an input of it would be
    /// unspent and unlocked here: we could approve a conflicting
    /// transaction. Every lock is kept (one on an output spent long ago
    /// blocks nothing), and every pending transaction (one spending an
    /// output the snapshot spent is rejected); the conflicts it states are
    /// not taken (nobody attested them).
    fn install(&mut self, scratch: Engine, seq: u64, now: u64, fx: &mut Vec<Effect>) {
        let before = self.finalized_count() as u64;
        let Engine {
            ledger,
            finals,
            finalized,
            forgotten,
            finalized_set,
            ..
        } = scratch;
        self.ledger = ledger;
        let ours = std::mem::replace(&mut self.finals, finals);
        let order = std::mem::replace(&mut self.finalized, finalized);
        let waiting = std::mem::take(&mut self.waiting);
        self.forgotten = forgotten;
        self.finalized_set = finalized_set;
        // Final here from now on (what `/finalized` and `/tx` say).
        self.finalized.iter_mut().for_each(|(_, at)| *at = now);
        self.finals.values_mut().for_each(|f| f.at_ms = now);
        let (finals, ledger) = (&self.finals, &self.ledger);
        // A pending one the snapshot applied (before its window) is final.
        self.txs.retain(|txid, e| {
            e.state == TxState::Pending
                && !finals.contains_key(txid)
                && e.tx.as_ref().is_some_and(|tx| !ledger.applied(txid, tx))
        });
        self.spenders.clear();
        (self.mempool, self.mempool_bytes, self.vote_only) = (0, 0, 0);
        for (txid, e) in &self.txs {
            self.mempool += 1;
            self.mempool_bytes += e.size;
            for i in e.tx.iter().flat_map(|tx| &tx.inputs) {
                self.spenders.entry(i.prev).or_default().push(*txid);
            }
        }
        self.recent_rejected.clear();
        self.vote_only_order.clear();
        self.waiting_on.clear();
        self.waiting_order.clear();
        self.orphans = Default::default();
        self.metrics.finalized.inc_by(seq.saturating_sub(before));
        // Ours that spend an output unspent here now, in our order
        // (parents first: a child of one applied again follows it); then
        // what waited for parents.
        for (txid, _) in order {
            let Some(f) = ours.get(&txid) else { continue };
            let unspent = f
                .cert
                .tx
                .inputs
                .iter()
                .any(|i| self.ledger.contains(&i.prev));
            if unspent && !self.is_final(&txid) && !self.applied_before(&f.cert) {
                self.finalize(f.cert.clone(), now, fx);
            }
        }
        for cert in waiting.into_values() {
            self.finalize(cert, now, fx);
        }
        // Ours not applied again (waiting for a parent): their inputs still
        // unspent here stay locked, as when we approved them.
        for (txid, f) in &ours {
            if !self.is_final(txid) && !self.applied_before(&f.cert) {
                for i in f
                    .cert
                    .tx
                    .inputs
                    .iter()
                    .filter(|i| self.ledger.contains(&i.prev))
                {
                    self.locks.entry(i.prev).or_insert(*txid);
                }
            }
        }
        let lost: Vec<TxId> = (self.txs.iter())
            .filter(|(_, e)| {
                (e.tx.iter().flat_map(|tx| &tx.inputs))
                    .any(|i| self.ledger.spent_by(&i.prev).is_some())
            })
            .map(|(t, _)| *t)
            .collect();
        for txid in lost {
            self.decide_rejected(txid, "input_spent", now);
        }
        self.metrics.state_syncs.with_label_values(&["ok"]).inc();
        // What we claimed of the old state is gone with its checkpoint.
        self.claims.pending = None;
        self.claims.certified = None;
        self.claims.installed += 1;
        self.claims.behind = None;
        self.update_gauges();
        tracing::info!(seq, from = before, "installed a snapshot");
        fx.push(Effect::Installed { seq });
    }
}

impl Syncing {
    fn new(peer: NodeId, now: u64) -> Syncing {
        Syncing {
            peer,
            started_ms: now,
            last_ms: now,
            asked_ms: now,
            offer: None,
            next: 0,
            scratch: None,
            replay: Replay::new(now),
            last: VecDeque::new(),
            window: HashSet::new(),
            recent: 0,
            utxos: 0,
            checked: HashSet::new(),
        }
    }

    /// A part's records, checked and restored into the scratch engine.
    fn feed(
        &mut self,
        records: Vec<Record>,
        network: &str,
        validators: &Validators,
    ) -> Result<(), ReplayError> {
        let (Some(offer), Some(scratch)) = (&self.offer, self.scratch.as_deref_mut()) else {
            return Err(ReplayError("a part before the offer".into()));
        };
        let claim = &offer.claim;
        if records.is_empty() {
            return Err(ReplayError("an empty part".into()));
        }
        for r in records {
            match &r {
                Record::Checkpoint(h) if self.replay.records() == 0 => {
                    states_claim(h, claim)?;
                    if h.recent > MAX_SNAPSHOT_WINDOW.min(h.seq) {
                        return Err(ReplayError(format!("a window of {}", h.recent)));
                    }
                    self.recent = h.recent;
                }
                Record::Utxos(u) if self.replay.records() > 0 => {
                    self.utxos += u.len() as u64;
                    if self.utxos > claim.utxo_count {
                        return Err(ReplayError("more unspent outputs than claimed".into()));
                    }
                }
                Record::Recent(kept) if self.replay.records() > 0 => {
                    let checked = &self.checked;
                    kept.cert
                        .verify(network, validators, |a, msg| {
                            checked.contains(&(a.voter, *msg, a.signature.0))
                        })
                        .map_err(|e| ReplayError(format!("a certificate of its window: {e}")))?;
                    self.checked.extend(kept.cert.signed(network));
                    let txid = kept.cert.tx.id();
                    if !self.window.insert(txid) || self.window.len() as u64 > self.recent {
                        return Err(ReplayError(format!("{} twice in its window", txid.short())));
                    }
                    if self.last.len() >= claim.tail.len().max(1) {
                        self.last.pop_front();
                    }
                    self.last.push_back(txid);
                }
                _ => return Err(ReplayError("a record out of place".into())),
            }
            scratch.replay_record(&mut self.replay, r)?;
        }
        Ok(())
    }

    /// After the last part: the state restored whole, with the claim's tail.
    fn finish(mut self, own: u64) -> Result<Box<Engine>, ReplayError> {
        let (Some(offer), Some(mut scratch)) = (self.offer.take(), self.scratch.take()) else {
            return Err(ReplayError("no snapshot".into()));
        };
        let end = Record::End {
            records: self.replay.records() as u64,
        };
        scratch.replay_record(&mut self.replay, end)?;
        if self.replay.restored() != Some(offer.claim.seq) {
            return Err(ReplayError("it did not restore".into()));
        }
        let tail: Vec<TxId> = self.last.iter().copied().collect();
        let want = &offer.claim.tail;
        if !want.is_empty() && &tail[tail.len().saturating_sub(want.len())..] != want.as_slice() {
            return Err(ReplayError(
                "its window does not end with the claim's tail".into(),
            ));
        }
        if own >= offer.claim.seq {
            return Err(ReplayError(format!("we caught up to {own} meanwhile")));
        }
        // Each finalization of the window is part of the state: its inputs
        // spent, its outputs unspent or spent by a later one (not, say, a
        // transaction final after the claim's cut).
        let l = &scratch.ledger;
        for (txid, _) in &scratch.finalized {
            let tx = scratch.finals.get(txid).map(|f| &f.cert.tx);
            let part = tx.is_some_and(|tx| {
                tx.inputs.iter().all(|i| !l.contains(&i.prev))
                    && (tx.outpoints()).all(|(op, _)| l.contains(&op) || l.spent_by(&op).is_some())
            });
            if !part {
                return Err(ReplayError(format!(
                    "{} of its window is not part of its state",
                    txid.short()
                )));
            }
        }
        Ok(scratch)
    }
}

/// The header of a snapshot must state what the claim does.
fn states_claim(h: &CheckpointHeader, c: &Claim) -> Result<(), ReplayError> {
    let same = h.network_id == c.network_id
        && h.seq == c.seq
        && h.whole == c.whole
        && h.buckets == c.buckets
        && h.utxo_digest == c.utxo_digest
        && h.utxo_count == c.utxo_count
        && h.total_value == c.total_value;
    match same {
        true => Ok(()),
        false => Err(ReplayError("its header is not the certified claim".into())),
    }
}
