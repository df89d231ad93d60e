//! Checkpoints: the engine's state written as records, and read back.
//!
//! A checkpoint holds what a replay of the whole log would rebuild, without
//! the history: a header with the counts and digests the rest must add up
//! to, the unspent outputs, the window's finalizations (restored as kept,
//! not applied again), the locks, and the pending and recently rejected
//! transactions we approved (as the log has them: a `Lock`, then its
//! `Rejected`). Taken between two batches, a log started at that moment is
//! its tail: the checkpoint and the tail replay to the state of the whole.

use super::types::{CheckpointHeader, Recent};
use super::*;

/// Unspent outputs per `Utxos` record, at most (about 1.3 MB).
const UTXO_CHUNK: usize = 16_384;
/// Locks per `Locks` record, at most (about 2.2 MB).
const LOCK_CHUNK: usize = 32_768;
/// Ledger changes per `Deltas` record, at most (about 1 MB).
const DELTA_CHUNK: usize = 16_384;

/// Why records do not restore a state: the replay stops there.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReplayError(pub String);

/// A checkpoint being read: its header, and the records read of it so far.
pub(super) struct Restoring {
    header: Box<CheckpointHeader>,
    records: u64,
    supply: u64,
    /// Finalizations of the window whose ledger change was read.
    deltas: usize,
}

impl Restoring {
    pub(super) fn seq(&self) -> u64 {
        self.header.seq
    }

    /// Counts a record read inside the checkpoint.
    pub(super) fn read_one(&mut self) {
        self.records += 1;
    }
}

impl Engine {
    /// The state as a checkpoint's records, the last an `End`: replayed into
    /// a fresh engine, they restore it.
    pub fn checkpoint_image(&self) -> Vec<Record> {
        let inventory = self.finalized_set.inventory();
        let mut out = vec![Record::Checkpoint(Box::new(CheckpointHeader {
            version: CheckpointHeader::VERSION,
            network_id: self.cfg.network_id.clone(),
            seq: inventory.count,
            whole: self.finalized_set.digest(),
            buckets: inventory.buckets,
            utxo_digest: self.ledger.digest(),
            utxo_count: self.ledger.len() as u64,
            total_value: self.ledger.total_value(),
            fees: self.ledger.fees(),
            recent: self.finalized.len() as u64,
            conflicts: self.conflicts.clone(),
        }))];
        let utxos: Vec<_> = self.ledger.entries().map(|(o, t)| (*o, *t)).collect();
        out.extend(utxos.chunks(UTXO_CHUNK).map(|c| Record::Utxos(c.to_vec())));
        out.extend(self.finalized.iter().filter_map(|(txid, _)| {
            let f = self.finals.get(txid)?;
            Some(Record::Recent(Box::new(Recent {
                cert: f.cert.clone(),
                at_ms: f.at_ms,
                first_seen_ms: f.first_seen_ms,
                fee: f.fee,
                approvals: f.approvals as u32,
                rejections: f.rejections as u32,
            })))
        }));
        let deltas: Vec<Option<Delta>> = (self.finalized.iter())
            .map(|(txid, _)| self.finals.get(txid).and_then(|f| f.delta))
            .collect();
        out.extend(
            deltas
                .chunks(DELTA_CHUNK)
                .map(|c| Record::Deltas(c.to_vec())),
        );
        if self.cfg.bugs.no_lock_persist {
            return end(out);
        }
        let locks: Vec<_> = self.locks.iter().map(|(o, t)| (*o, *t)).collect();
        out.extend(locks.chunks(LOCK_CHUNK).map(|c| Record::Locks(c.to_vec())));
        let approved = |e: &Entry| e.my_vote == Some(true);
        let mut pending: Vec<(&TxId, &Entry)> = self
            .txs
            .iter()
            .filter(|(_, e)| e.state == TxState::Pending && approved(e))
            .collect();
        pending.sort_by_key(|(t, e)| (e.first_seen_ms, **t));
        out.extend(
            pending
                .into_iter()
                .filter_map(|(_, e)| Some(Record::Lock(e.tx.clone()?))),
        );
        for txid in &self.recent_rejected {
            let Some(e) = self.txs.get(txid).filter(|e| approved(e)) else {
                continue;
            };
            let Some(tx) = &e.tx else { continue };
            out.push(Record::Lock(tx.clone()));
            out.push(Record::Rejected {
                txid: *txid,
                votes: e.tally.votes(*txid).filter(|v| !v.approve).collect(),
            });
        }
        end(out)
    }

    /// A checkpoint's header: only as the first record into a fresh engine.
    pub(super) fn restore_begin(
        &mut self,
        first: bool,
        header: Box<CheckpointHeader>,
    ) -> Result<Restoring, ReplayError> {
        let fresh = self.finalized_count() == 0 && self.txs.is_empty() && self.locks.is_empty();
        if !first || !fresh {
            return Err(ReplayError(
                "a checkpoint record in the middle of a log".into(),
            ));
        }
        if header.version != CheckpointHeader::VERSION {
            return Err(ReplayError(format!(
                "a checkpoint of layout {}, this node reads {}",
                header.version,
                CheckpointHeader::VERSION
            )));
        }
        if self.cfg.window == 0 && header.recent < header.seq {
            return Err(ReplayError(format!(
                "the checkpoint kept the last {} of {} finalizations (it was written with a \
                 finality window): run the node with --finality-window",
                header.recent, header.seq
            )));
        }
        if header.network_id != self.cfg.network_id {
            return Err(ReplayError(format!(
                "the checkpoint is of network {:?}, this node is on {:?}",
                header.network_id, self.cfg.network_id
            )));
        }
        let set = FinalizedSet::restore(header.seq, header.whole, &header.buckets)
            .filter(|s| s.is_consistent() && header.recent <= header.seq)
            .ok_or_else(|| ReplayError("the checkpoint's finalized digests disagree".into()))?;
        self.finalized_set = set;
        self.forgotten = (header.seq - header.recent) as usize;
        self.conflicts = header.conflicts.clone();
        let supply = self
            .ledger
            .restore_begin(header.fees, header.utxo_count, header.recent);
        let recent = (header.recent as usize).min(1 << 20);
        self.finals.reserve(recent);
        self.finalized.reserve(recent);
        Ok(Restoring {
            header,
            records: 1,
            supply,
            deltas: 0,
        })
    }

    /// A record inside a checkpoint (`Lock` and `Rejected` are the log's).
    pub(super) fn restore_part(
        &mut self,
        r: &mut Restoring,
        record: Record,
    ) -> Result<(), ReplayError> {
        match record {
            Record::Utxos(entries) => {
                for (op, out) in entries {
                    if !self.ledger.restore_utxo(op, out) {
                        return Err(ReplayError("the checkpoint's outputs overflow".into()));
                    }
                }
            }
            Record::Recent(kept) => {
                let txid = kept.cert.tx.id();
                for i in &kept.cert.tx.inputs {
                    self.ledger.restore_spent(i.prev, txid);
                }
                self.finalized.push_back((txid, kept.at_ms));
                self.finalized_set.restore_member(txid);
                let Recent {
                    cert,
                    at_ms,
                    first_seen_ms,
                    fee,
                    approvals,
                    rejections,
                } = *kept;
                let kept = window::Final {
                    cert,
                    at_ms,
                    first_seen_ms,
                    fee,
                    approvals: approvals as usize,
                    rejections: rejections as usize,
                    delta: None,
                };
                self.finals.insert(txid, kept);
            }
            Record::Deltas(deltas) => {
                for d in deltas {
                    let txid = self.finalized.get(r.deltas).map(|(t, _)| *t);
                    let kept = txid.and_then(|t| self.finals.get_mut(&t));
                    let Some(kept) = kept else {
                        return Err(ReplayError("more ledger changes than finalizations".into()));
                    };
                    kept.delta = d;
                    r.deltas += 1;
                }
            }
            Record::Locks(locks) if !self.cfg.bugs.no_lock_persist => self.locks.extend(locks),
            _ => {}
        }
        Ok(())
    }

    /// A checkpoint's `End`: what was read must add up to its header.
    pub(super) fn restore_end(&mut self, r: Restoring, records: u64) -> Result<(), ReplayError> {
        let h = &r.header;
        let l = &self.ledger;
        let mismatch = if records != r.records {
            Some(format!("{} records, its end says {records}", r.records))
        } else if l.digest() != h.utxo_digest || l.len() as u64 != h.utxo_count {
            Some(format!(
                "{} unspent outputs with digest {}, its header says {} with {}",
                l.len(),
                l.digest().to_hex(),
                h.utxo_count,
                h.utxo_digest.to_hex()
            ))
        } else if l.total_value() != h.total_value
            || l.total_value().checked_add(l.fees()) != Some(r.supply)
        {
            Some(format!(
                "a total value of {} and fees of {}: not the genesis supply {}",
                l.total_value(),
                l.fees(),
                r.supply
            ))
        } else if self.finalized.len() as u64 != h.recent {
            Some(format!(
                "{} finalizations in its window, its header says {}",
                self.finalized.len(),
                h.recent
            ))
        } else if r.deltas != 0 && r.deltas as u64 != h.recent {
            Some(format!(
                "{} ledger changes for {} finalizations",
                r.deltas, h.recent
            ))
        } else {
            None
        };
        if let Some(m) = mismatch {
            return Err(ReplayError(format!("the checkpoint holds {m}")));
        }
        self.metrics.finalized.inc_by(h.seq);
        // Written with a larger window than this node keeps now.
        self.trim_window();
        self.update_gauges();
        if let Some(claim) = self.claim() {
            self.propose(claim);
        }
        Ok(())
    }
}

fn end(mut records: Vec<Record>) -> Vec<Record> {
    let n = records.len() as u64;
    records.push(Record::End { records: n });
    records
}
