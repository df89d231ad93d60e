//! A replica batch's signatures checked together (see
//! [`crate::identity::Verified`]): the replica hands the engine each batch's
//! inputs first, and the engine's own checks then take a signature found
//! valid here for verified. Only what those checks would verify is taken:
//! a validator's vote not counted yet, a certificate's approvals not in our
//! tally, the input signatures of a transaction not seen yet whose outputs
//! spent are known here. Votes beyond what decides a transaction (a quorum
//! with those already counted and queued) are left out: they arrive after it
//! is decided and are not checked at all.

use std::collections::HashMap;

use super::quorum::{vote_message, Certificate, Vote};
use super::votes::VoteBatch;
use super::{Engine, LedgerMessage, TxState, MAX_CERTIFICATES_PER_MESSAGE};
use crate::identity::{Checked, Signed};
use crate::ledger::tx::{Transaction, TxId};

/// Votes queued in this batch, by transaction and side (approve: true).
type Queued = HashMap<(TxId, bool), usize>;

impl Engine {
    /// Checks together the signatures that [`Engine::on_message`] (for
    /// `messages`) and [`Engine::submit`] (for `submitted`) would check one
    /// by one, in place of what an earlier batch left.
    pub fn preverify<'a>(
        &mut self,
        messages: impl IntoIterator<Item = &'a LedgerMessage>,
        submitted: impl IntoIterator<Item = &'a Transaction>,
    ) -> Checked {
        let mut signed = Vec::new();
        // Votes queued per transaction and side (approve, reject).
        let mut queued = HashMap::new();
        for m in messages {
            match m {
                LedgerMessage::Vote(v) => self.vote_signature(v, &mut queued, &mut signed),
                LedgerMessage::Votes(b) => self.batch_signature(b, &mut signed),
                LedgerMessage::Tx(tx) => self.input_signatures(tx, &mut signed),
                LedgerMessage::Certificate(c) => {
                    self.approval_signatures(c, &mut queued, &mut signed)
                }
                LedgerMessage::Certificates(certs) => certs
                    .iter()
                    .take(MAX_CERTIFICATES_PER_MESSAGE)
                    .for_each(|c| self.approval_signatures(c, &mut queued, &mut signed)),
                _ => {}
            }
        }
        for tx in submitted {
            self.input_signatures(tx, &mut signed);
        }
        let checked = self.verified.check(signed);
        if checked.valid < checked.signatures && checked.batches > 0 {
            tracing::debug!(
                ?checked,
                "a batch of signatures held some that do not verify"
            );
        }
        checked
    }

    fn vote_signature(&self, v: &Vote, queued: &mut Queued, signed: &mut Vec<Signed>) {
        let tally = self.txs.get(&v.txid).map(|e| &e.tally);
        if !self.wanted(&v.txid, &v.voter) || !self.cfg.validators.contains(&v.voter) {
            return;
        }
        let (held, quorum) = match v.approve {
            true => (
                tally.map_or(0, |t| t.approvals()),
                self.cfg.validators.approve_quorum(),
            ),
            false => (
                tally.map_or(0, |t| t.rejections()),
                self.cfg.validators.reject_quorum(),
            ),
        };
        let n = queued.entry((v.txid, v.approve)).or_default();
        if held + *n < quorum {
            if let Some(msg) = v.message(&self.cfg.network_id) {
                *n += 1;
                signed.push((v.voter, msg, v.signature.0));
            }
        }
    }

    /// A batch of votes is one signature: checked if any of its votes
    /// would be counted.
    fn batch_signature(&self, b: &VoteBatch, signed: &mut Vec<Signed>) {
        if b.well_formed()
            && self.cfg.validators.contains(&b.voter)
            && b.decisions.iter().any(|(t, _)| self.wanted(t, &b.voter))
        {
            signed.push((b.voter, b.message(&self.cfg.network_id), b.signature.0));
        }
    }

    fn approval_signatures(&self, c: &Certificate, queued: &mut Queued, signed: &mut Vec<Signed>) {
        let txid = c.tx.id();
        if self.is_final(&txid) || self.waiting.contains_key(&txid) {
            return;
        }
        let tally = self.txs.get(&txid).map(|e| &e.tally);
        let n = queued.entry((txid, true)).or_default();
        for a in c.approvals.iter().take(self.cfg.validators.len()) {
            let counted = tally.is_some_and(|t| t.has_approval(a));
            let msg = vote_message(&self.cfg.network_id, &txid, true, &a.proof);
            if let (false, true, Some(msg)) = (counted, self.cfg.validators.contains(&a.voter), msg)
            {
                *n += 1;
                signed.push((a.voter, msg, a.signature.0));
            }
        }
    }

    fn input_signatures(&self, tx: &Transaction, signed: &mut Vec<Signed>) {
        let txid = tx.id();
        let seen = self
            .txs
            .get(&txid)
            .is_some_and(|e| e.state != TxState::Pending || e.my_vote.is_some() || e.tx.is_some());
        if seen || self.is_final(&txid) || self.ledger.check_shape(tx).is_err() {
            return;
        }
        let msg = tx.signing_message(&self.cfg.network_id);
        for input in &tx.inputs {
            if let Some(out) = self.ledger.get(&input.prev) {
                signed.push((out.owner, msg, input.signature.0));
            }
        }
    }
}
