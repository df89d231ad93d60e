//! What the engine keeps of history, and for how long.
//!
//! A finalized transaction's entry (its transaction, its tally of votes) is
//! dropped when it is applied: only its certificate and what `/tx` reports
//! stay ([`Final`]). With a finality window of W (`--finality-window`), the
//! certificates, the spent-output records and the local order of the oldest
//! finalizations beyond W are forgotten too; the finalized set's count and
//! digests stay global, so inventories and the checkers' digests still cover
//! everything. Rejected transactions are dropped when they leave the ring of
//! recent rejections (as long as the window, at most 4,096), keeping the locks
//! they hold (a lock holds an unspent output: the UTXO set bounds them, and a
//! validator that forgot one could approve a conflicting transaction),
//! transactions known only from votes and certificates
//! waiting for parents are bounded, the oldest making room (and a waiting
//! certificate expires after a minute). Without a window
//! (0) every certificate is kept, as a peer away for a long time needs them:
//! there is no state sync from a snapshot yet.

use super::*;

/// What is kept of a finalized transaction.
#[derive(Debug)]
pub(super) struct Final {
    pub(super) cert: std::sync::Arc<Certificate>,
    pub(super) at_ms: u64,
    pub(super) first_seen_ms: u64,
    pub(super) fee: u64,
    pub(super) approvals: usize,
    pub(super) rejections: usize,
    /// What applying it changed in the ledger (unknown for finalizations
    /// restored from an older checkpoint or a snapshot).
    pub(super) delta: Option<Delta>,
}

impl Final {
    pub(super) fn report(&self, txid: TxId) -> TxReport {
        TxReport {
            txid,
            state: TxState::Finalized,
            first_seen_ms: self.first_seen_ms,
            decided_ms: Some(self.at_ms),
            approvals: self.approvals,
            rejections: self.rejections,
            reason: None,
            fee: Some(self.fee),
        }
    }
}

/// One page of the finalized transactions in the order applied here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizedSlice {
    /// The position of the first entry: more than asked for when the ones
    /// before were forgotten (the window).
    pub first: usize,
    pub entries: Vec<(TxId, u64)>,
    /// How many were ever finalized here.
    pub total: usize,
}

impl Engine {
    /// What `GET /tx/{id}` says of a transaction known here.
    pub fn report(&self, txid: &TxId) -> Option<TxReport> {
        if let Some(f) = self.finals.get(txid) {
            return Some(f.report(*txid));
        }
        let e = self.txs.get(txid)?;
        e.tx.as_ref()?;
        Some(TxReport {
            txid: *txid,
            state: e.state,
            first_seen_ms: e.first_seen_ms,
            decided_ms: e.decided_ms,
            approvals: e.tally.approvals(),
            rejections: e.tally.rejections(),
            reason: e.reason.clone(),
            fee: e.fee,
        })
    }

    /// Finalized here, and still in the window (or no window).
    pub fn is_final(&self, txid: &TxId) -> bool {
        self.finals.contains_key(txid)
    }

    /// How many transactions were ever finalized here.
    pub fn finalized_count(&self) -> usize {
        self.forgotten + self.finalized.len()
    }

    /// The finalization window (0: none, everything is kept).
    pub fn window(&self) -> usize {
        self.cfg.window
    }

    /// Up to `limit` finalized transactions from position `after` on (in the
    /// order applied here; positions count from the first ever).
    pub fn finalized_page(&self, after: usize, limit: usize) -> FinalizedSlice {
        let total = self.finalized_count();
        let first = after.clamp(self.forgotten, total);
        let end = first.saturating_add(limit).min(total);
        FinalizedSlice {
            first,
            entries: self
                .finalized
                .range(first - self.forgotten..end - self.forgotten)
                .copied()
                .collect(),
            total,
        }
    }

    /// The entry of `txid`, made (as known only from votes) if there is none.
    pub(super) fn entry(&mut self, txid: TxId, now: u64) -> &mut Entry {
        if !self.txs.contains_key(&txid) {
            self.vote_only += 1;
            if self.cfg.window > 0 {
                self.vote_only_order.push_back(txid);
                // Stale ids (entries filled or decided since) go now and then.
                if self.vote_only_order.len() > 2 * MAX_VOTE_ONLY {
                    let txs = &self.txs;
                    self.vote_only_order
                        .retain(|t| txs.get(t).is_some_and(|e| e.tx.is_none()));
                }
            }
        }
        self.txs.entry(txid).or_insert_with(|| Entry::new(now))
    }

    /// Rejections whose votes a reconnecting peer is sent, at most (with a
    /// window, no more than the window).
    pub(super) fn recent_rejected_cap(&self) -> usize {
        match self.cfg.window {
            0 => MAX_RECENT_REJECTED,
            w => w.min(MAX_RECENT_REJECTED),
        }
    }

    /// Whether a txid offered by a peer is one this node applied and forgot
    /// (its first output is unspent or recorded spent here): not to fetch.
    pub(super) fn forgotten_final(&self, txid: &TxId) -> bool {
        let op = OutPoint {
            txid: *txid,
            vout: 0,
        };
        self.cfg.window > 0 && (self.ledger.contains(&op) || self.ledger.spent_by(&op).is_some())
    }

    /// Whether an entry known only from votes may be made: under the cap, or
    /// (with a window) once the oldest such entry is dropped.
    pub(super) fn room_for_vote_only(&mut self) -> bool {
        if self.vote_only < MAX_VOTE_ONLY {
            return true;
        }
        if self.cfg.window == 0 {
            return false;
        }
        while let Some(old) = self.vote_only_order.pop_front() {
            if self.txs.get(&old).is_some_and(|e| e.tx.is_none()) {
                self.drop_entry(old);
                return true;
            }
        }
        false
    }

    /// Records a finalization, forgetting the oldest beyond the window.
    pub(super) fn remember(&mut self, txid: TxId, kept: Final) {
        self.finalized.push_back((txid, kept.at_ms));
        self.finalized_set.insert(txid);
        self.finals.insert(txid, kept);
        self.trim_window();
    }

    /// Forgets the oldest finalizations beyond the window.
    pub(super) fn trim_window(&mut self) {
        if self.cfg.window == 0 {
            return;
        }
        while self.finalized.len() > self.cfg.window {
            let Some((old, _)) = self.finalized.pop_front() else {
                break;
            };
            self.forgotten += 1;
            self.finalized_set.forget(&old);
            if let Some(f) = self.finals.remove(&old) {
                for i in &f.cert.tx.inputs {
                    self.ledger.forget_spent(&i.prev, &old);
                }
            }
        }
    }

    /// A rejection leaving the ring of recent ones: with a window, its entry
    /// and its place among the spenders go (the locks it holds stay).
    pub(super) fn forget_rejected(&mut self, txid: TxId) {
        if self.cfg.window > 0
            && self
                .txs
                .get(&txid)
                .is_some_and(|e| e.state == TxState::Rejected)
        {
            self.drop_entry(txid);
        }
    }

    /// Drops the entry of a transaction that is not pending with its
    /// transaction (it is in no mempool count). Its locks stay: a lock is
    /// released only by a finalization spending the output.
    fn drop_entry(&mut self, txid: TxId) {
        let Some(e) = self.txs.remove(&txid) else {
            return;
        };
        let Some(tx) = e.tx else {
            self.vote_only -= 1;
            return;
        };
        for i in &tx.inputs {
            if let Some(s) = self.spenders.get_mut(&i.prev) {
                s.retain(|t| *t != txid);
                if s.is_empty() {
                    self.spenders.remove(&i.prev);
                }
            }
        }
    }

    /// Whether this certificate's transaction was applied here already
    /// (and forgotten): an output of it is unspent or spent here.
    pub(super) fn applied_before(&self, cert: &Certificate) -> bool {
        self.ledger.applied(&cert.tx.id(), &cert.tx)
    }

    /// Drops the waiting certificates parked more than [`WAITING_TTL_MS`]
    /// ago, and the oldest beyond [`MAX_WAITING`].
    pub(super) fn bound_waiting(&mut self, now: u64) {
        while let Some(&(old, parked)) = self.waiting_order.front() {
            let expired = parked.saturating_add(WAITING_TTL_MS) < now;
            if !expired && self.waiting.len() <= MAX_WAITING {
                break;
            }
            self.waiting_order.pop_front();
            let Some(cert) = self.waiting.remove(&old) else {
                continue;
            };
            for i in &cert.tx.inputs {
                if let Some(w) = self.waiting_on.get_mut(&i.prev.txid) {
                    w.remove(&old);
                    if w.is_empty() {
                        self.waiting_on.remove(&i.prev.txid);
                    }
                }
            }
        }
        if self.waiting_order.len() > 2 * MAX_WAITING {
            let waiting = &self.waiting;
            self.waiting_order.retain(|(t, _)| waiting.contains_key(t));
        }
    }
}

#[cfg(test)]
impl Engine {
    /// The finalized transactions of the window, in the order applied here.
    pub(super) fn finalized(&self) -> Vec<(TxId, u64)> {
        self.finalized.iter().copied().collect()
    }

    /// How many entries each structure that grows with history holds.
    pub(super) fn footprint(&self) -> Footprint {
        Footprint {
            txs: self.txs.len(),
            finals: self.finals.len(),
            finalized: self.finalized.len(),
            members: self.finalized_set.members(),
            spent: self.ledger.spent_len(),
            spenders: self.spenders.len(),
            locks: self.locks.len(),
            waiting: self.waiting.len() + self.waiting_on.len(),
            orders: self.waiting_order.len() + self.vote_only_order.len(),
        }
    }
}

#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Footprint {
    pub txs: usize,
    pub finals: usize,
    pub finalized: usize,
    pub members: usize,
    pub spent: usize,
    pub spenders: usize,
    pub locks: usize,
    pub waiting: usize,
    pub orders: usize,
}
