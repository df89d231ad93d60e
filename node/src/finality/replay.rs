//! Rebuilding an engine from its persisted records on start.

use super::*;

impl Engine {
    /// Rebuilds state from persisted records (in the order they were
    /// written): finalizations at the time they happened (older logs: at
    /// `now`), locks as pending approvals, rejections of locked transactions
    /// decided again with their votes.
    pub fn replay(&mut self, records: Vec<Record>, now: u64) {
        let mut sink = Vec::new();
        for r in records {
            match r {
                Record::Finalized(cert) => self.finalize(cert, now, &mut sink),
                Record::FinalizedAt { cert, at_ms } => self.finalize(cert, at_ms, &mut sink),
                Record::Lock(tx) => {
                    if self.cfg.bugs.no_lock_persist {
                        continue;
                    }
                    let txid = tx.id();
                    if self.is_final(&txid) {
                        continue;
                    }
                    // We locked it after a successful check, so its parents were
                    // final and replayed before it; anything else is decided.
                    if let Ok(checked) = self.ledger.check(&tx) {
                        self.admit(txid, tx, checked.fee, now);
                        self.vote(txid, &mut sink);
                    }
                }
                Record::Rejected { txid, votes } => {
                    if let Some(e) = self.txs.get_mut(&txid) {
                        for v in votes.iter().filter(|v| v.txid == txid && !v.approve) {
                            e.tally.add(v);
                        }
                    }
                    self.decide_rejected(txid, "vote_rejected", now);
                }
            }
        }
        // A replayed certificate may have been written after the lock it releases.
        let pending_locked: Vec<TxId> = self.locks.values().copied().collect();
        for t in pending_locked {
            if self.is_final(&t) {
                self.locks.retain(|_, v| *v != t);
            }
        }
    }
}
