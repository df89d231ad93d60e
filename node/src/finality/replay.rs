//! Rebuilding an engine from its persisted records on start.

use super::*;

impl Engine {
    /// Rebuilds state from persisted records (in the order they were
    /// written): finalizations at the time they happened (older logs: at
    /// `now`), locks as pending approvals, rejections of locked transactions
    /// decided again with their votes.
    ///
    /// Most locks are followed by their transaction's finalization a few
    /// records later: a lock is only taken up (checked: a signature
    /// verification; voted on: a signature) if its transaction is not final
    /// by the end of the log, or when its rejection is read.
    pub fn replay(&mut self, records: Vec<Record>, now: u64) {
        let mut sink = Vec::new();
        let mut locked: HashMap<TxId, (usize, Transaction)> = HashMap::new();
        for (at, r) in records.into_iter().enumerate() {
            match r {
                Record::Finalized(cert) => self.replay_final(cert, now, &mut locked, &mut sink),
                Record::FinalizedAt { cert, at_ms } => {
                    self.replay_final(cert, at_ms, &mut locked, &mut sink)
                }
                Record::Lock(tx) => {
                    if self.cfg.bugs.no_lock_persist {
                        continue;
                    }
                    let txid = tx.id();
                    if !self.is_final(&txid) {
                        locked.insert(txid, (at, tx));
                    }
                }
                Record::Rejected { txid, votes } => {
                    if let Some((_, tx)) = locked.remove(&txid) {
                        self.relock(txid, tx, now, &mut sink);
                    }
                    if let Some(e) = self.txs.get_mut(&txid) {
                        for v in votes.iter().filter(|v| v.txid == txid && !v.approve) {
                            e.tally.add(v);
                        }
                    }
                    self.decide_rejected(txid, "vote_rejected", now);
                }
            }
        }
        let mut pending: Vec<(usize, TxId, Transaction)> = locked
            .into_iter()
            .map(|(t, (at, tx))| (at, t, tx))
            .collect();
        pending.sort_by_key(|(at, _, _)| *at);
        for (_, txid, tx) in pending {
            self.relock(txid, tx, now, &mut sink);
        }
        // A replayed certificate may have been written after the lock it releases.
        let pending_locked: Vec<TxId> = self.locks.values().copied().collect();
        for t in pending_locked {
            if self.is_final(&t) {
                self.locks.retain(|_, v| *v != t);
            }
        }
    }

    fn replay_final(
        &mut self,
        cert: Certificate,
        at_ms: u64,
        locked: &mut HashMap<TxId, (usize, Transaction)>,
        sink: &mut Vec<Effect>,
    ) {
        if !locked.is_empty() {
            locked.remove(&cert.tx.id());
        }
        self.finalize(cert, at_ms, sink);
    }

    /// Takes up a persisted lock: we locked it after a successful check, so
    /// its parents were final and replayed before it; anything else is decided.
    fn relock(&mut self, txid: TxId, tx: Transaction, now: u64, sink: &mut Vec<Effect>) {
        if self.is_final(&txid) {
            return;
        }
        match self.ledger.check(&tx) {
            Ok(checked) => {
                self.admit(txid, tx, checked.fee, now);
                self.vote(txid, sink);
            }
            // A twin was finalized: it lost, as when it was decided live
            // (kept as rejected, so gossip of it again draws no vote from
            // us contradicting the approval we gave it).
            Err(Rejection::InputSpent { .. }) => {
                self.entry(txid, now);
                self.decide_rejected(txid, "input_spent", now);
                if let Some(e) = self.txs.get_mut(&txid) {
                    e.size = tx.size();
                    e.tx = Some(tx);
                    self.vote_only -= 1;
                }
            }
            Err(_) => {}
        }
    }
}
