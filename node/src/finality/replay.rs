//! Rebuilding an engine from its persisted records on start.

use super::checkpoint::{ReplayError, Restoring};
use super::*;

/// A replay under way: records are fed one at a time, in the order
/// written (a checkpoint's, then its tail's), so no log is ever held whole.
pub struct Replay {
    now: u64,
    at: usize,
    /// Locks read whose transaction is not final yet, with their position.
    locked: HashMap<TxId, (usize, Transaction)>,
    sink: Vec<Effect>,
    restoring: Option<Restoring>,
    /// The count of the checkpoint restored, if one was.
    restored: Option<u64>,
}

impl Replay {
    /// `now`: the time of finalizations whose record has none (older logs).
    pub fn new(now: u64) -> Self {
        Replay {
            now,
            at: 0,
            locked: HashMap::new(),
            sink: Vec::new(),
            restoring: None,
            restored: None,
        }
    }

    /// The finalized count of the checkpoint read whole, if one was.
    pub fn restored(&self) -> Option<u64> {
        self.restored
    }

    /// Records fed so far.
    pub fn records(&self) -> usize {
        self.at
    }
}

impl Engine {
    /// Rebuilds state from persisted records (in the order they were
    /// written): see [`Engine::replay_record`].
    pub fn replay(&mut self, records: Vec<Record>, now: u64) -> Result<(), ReplayError> {
        let mut r = Replay::new(now);
        for record in records {
            self.replay_record(&mut r, record)?;
        }
        self.replay_finish(r)
    }

    /// One record: finalizations at the time they happened (older logs: at
    /// `now`), locks as pending approvals, rejections of locked transactions
    /// decided again with their votes, a checkpoint restored (only first).
    ///
    /// Most locks are followed by their transaction's finalization a few
    /// records later: a lock is only taken up (checked: a signature
    /// verification; voted on: a signature) if its transaction is not final
    /// by the end of the log, or when its rejection is read.
    pub fn replay_record(&mut self, r: &mut Replay, record: Record) -> Result<(), ReplayError> {
        r.at += 1;
        if let Some(c) = r.restoring.as_mut() {
            if !matches!(record, Record::End { .. }) {
                c.read_one();
            }
        }
        match record {
            Record::Finalized(cert) => self.replay_final(Arc::new(cert), r.now, r),
            Record::FinalizedAt { cert, at_ms } => self.replay_final(cert, at_ms, r),
            Record::Lock(tx) => {
                if !self.cfg.bugs.no_lock_persist {
                    let txid = tx.id();
                    if !self.is_final(&txid) {
                        r.locked.insert(txid, (r.at, tx));
                    }
                }
            }
            Record::Rejected { txid, votes } => {
                if let Some((_, tx)) = r.locked.remove(&txid) {
                    self.relock(txid, tx, r.now, &mut r.sink);
                }
                if let Some(e) = self.txs.get_mut(&txid) {
                    for v in votes.iter().filter(|v| v.txid == txid && !v.approve) {
                        e.tally.add(v);
                    }
                }
                self.decide_rejected(txid, "vote_rejected", r.now);
            }
            Record::Checkpoint(header) => {
                r.restoring = Some(self.restore_begin(r.at == 1, header)?);
            }
            Record::End { records } => {
                let c = r.restoring.take().ok_or_else(outside)?;
                let seq = c.seq();
                self.restore_end(c, records)?;
                r.restored = Some(seq);
            }
            part
            @ (Record::Utxos(_) | Record::Recent(_) | Record::Locks(_) | Record::Deltas(_)) => {
                let c = r.restoring.as_mut().ok_or_else(outside)?;
                self.restore_part(c, part)?;
            }
        }
        r.sink.clear();
        Ok(())
    }

    /// After the last record: the locks still pending are taken up.
    pub fn replay_finish(&mut self, r: Replay) -> Result<(), ReplayError> {
        if r.restoring.is_some() {
            return Err(ReplayError(
                "the checkpoint ends before its End record (torn)".into(),
            ));
        }
        let mut sink = r.sink;
        let mut pending: Vec<(usize, TxId, Transaction)> = r
            .locked
            .into_iter()
            .map(|(t, (at, tx))| (at, t, tx))
            .collect();
        pending.sort_by_key(|(at, _, _)| *at);
        for (_, txid, tx) in pending {
            self.relock(txid, tx, r.now, &mut sink);
        }
        self.update_gauges();
        Ok(())
    }

    fn replay_final(&mut self, cert: Arc<Certificate>, at_ms: u64, r: &mut Replay) {
        if !r.locked.is_empty() {
            r.locked.remove(&cert.tx.id());
        }
        self.finalize(cert, at_ms, &mut r.sink);
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

fn outside() -> ReplayError {
    ReplayError("a checkpoint record outside a checkpoint".into())
}
