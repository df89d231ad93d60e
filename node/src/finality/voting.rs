//! Our votes, cast one by one or held for a batch and signed together
//! ([`super::votes`]), and the votes peers send, alone or in batches.

use tracing::warn;

use super::quorum::Vote;
use super::votes::{VoteBatch, MAX_VOTES_PER_BATCH};
use super::{Effect, Engine, LedgerMessage, Record, TxState};
use crate::identity::NodeId;
use crate::ledger::tx::TxId;

impl Engine {
    /// From now until [`Engine::release_votes`], our votes are decided
    /// (locks taken and persisted) but signed only then, together.
    pub fn hold_votes(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    /// Our decisions held, not signed yet.
    pub fn held_votes(&self) -> usize {
        self.held.as_ref().map_or(0, Vec::len)
    }

    /// Signs the votes held since [`Engine::hold_votes`], one signature per
    /// [`MAX_VOTES_PER_BATCH`], counts them here and sends them.
    pub fn release_votes(&mut self, now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let (Some(held), Some(key)) = (self.held.take(), self.cfg.key.clone()) else {
            return fx;
        };
        for decisions in held.chunks(MAX_VOTES_PER_BATCH) {
            let approvals = decisions.iter().filter(|(_, a)| *a).count();
            self.count_sent(true, approvals);
            self.count_sent(false, decisions.len() - approvals);
            let (batch, mut votes) =
                VoteBatch::sign_open(&key, &self.cfg.network_id, decisions.to_vec());
            for vote in &votes {
                if let Some(e) = self.txs.get_mut(&vote.txid) {
                    e.tally.add(vote);
                    self.check_quorum(vote.txid, now, &mut fx);
                }
            }
            fx.push(Effect::Broadcast(match votes.len() {
                1 => LedgerMessage::Vote(votes.remove(0)),
                _ => LedgerMessage::Votes(batch),
            }));
        }
        fx
    }

    /// Casts our vote on a known, valid, pending transaction (once).
    pub(super) fn vote(&mut self, txid: TxId, fx: &mut Vec<Effect>) {
        if self.cfg.key.is_none() {
            return;
        }
        let Some(e) = self.txs.get(&txid) else { return };
        if e.my_vote.is_some() || e.state != TxState::Pending {
            return;
        }
        let Some(tx) = e.tx.clone() else { return };
        let conflict = self.locked_by_other(&tx, &txid);
        let approve = conflict.is_none() || self.equivocates();
        if approve {
            for i in &tx.inputs {
                if !self.equivocates() || !self.locks.contains_key(&i.prev) {
                    self.locks.insert(i.prev, txid);
                }
            }
            if !self.cfg.bugs.no_lock_persist {
                fx.push(Effect::Persist(Record::Lock(tx)));
            }
        }
        self.cast(txid, approve, fx);
    }

    /// Our decision on `txid`, signed now or held for the batch.
    pub(super) fn cast(&mut self, txid: TxId, approve: bool, fx: &mut Vec<Effect>) {
        let Some(key) = &self.cfg.key else { return };
        let vote = match &mut self.held {
            Some(held) => {
                held.push((txid, approve));
                None
            }
            None => Some(Vote::new(key, &self.cfg.network_id, txid, approve)),
        };
        if let Some(e) = self.txs.get_mut(&txid) {
            e.my_vote = Some(approve);
            if let Some(v) = &vote {
                e.tally.add(v);
            }
        }
        if let Some(v) = vote {
            self.count_sent(approve, 1);
            fx.push(Effect::Broadcast(LedgerMessage::Vote(v)));
        }
    }

    fn count_sent(&self, approve: bool, n: usize) {
        let label = if approve { "approve" } else { "reject" };
        let sent = self.metrics.votes.with_label_values(&["sent", label]);
        sent.inc_by(n as u64);
    }

    /// Whether a vote of `voter` on `txid` would count here.
    pub(super) fn wanted(&self, txid: &TxId, voter: &NodeId) -> bool {
        !self.is_final(txid) && !self.txs.get(txid).is_some_and(|e| e.tally.has_voted(voter))
    }

    pub(super) fn on_vote(&mut self, from: NodeId, vote: Vote, now: u64, fx: &mut Vec<Effect>) {
        // A vote heard before (relayed by another neighbour) costs no signature check.
        if !self.wanted(&vote.txid, &vote.voter) {
            return;
        }
        if !self.cfg.validators.contains(&vote.voter)
            || !vote.verify_with(&self.cfg.network_id, &self.verified)
        {
            self.drop_votes(&vote.voter, 1);
            return;
        }
        if self.count(&vote, now, fx) && self.cfg.relay {
            fx.push(Effect::Relay(from, LedgerMessage::Vote(vote)));
        }
    }

    /// A batch of a validator's votes: its signature checked once.
    pub(super) fn on_votes(
        &mut self,
        from: NodeId,
        batch: VoteBatch,
        now: u64,
        fx: &mut Vec<Effect>,
    ) {
        // Malformed or an outsider's: one dropped, whatever it claims to hold.
        if !batch.well_formed() || !self.cfg.validators.contains(&batch.voter) {
            self.drop_votes(&batch.voter, 1);
            return;
        }
        if !batch
            .decisions
            .iter()
            .any(|(t, _)| self.wanted(t, &batch.voter))
        {
            return;
        }
        let (msg, votes) = batch.open(&self.cfg.network_id);
        if !self.verified.verify(&batch.voter, &msg, &batch.signature.0) {
            self.drop_votes(&batch.voter, batch.decisions.len());
            return;
        }
        let mut counted = false;
        for vote in votes {
            counted |= self.wanted(&vote.txid, &vote.voter) && self.count(&vote, now, fx);
        }
        if counted && self.cfg.relay {
            fx.push(Effect::Relay(from, LedgerMessage::Votes(batch)));
        }
    }

    fn drop_votes(&self, voter: &NodeId, n: usize) {
        warn!(voter = %voter.short(), votes = n, "dropping votes that do not verify");
        self.metrics
            .votes
            .with_label_values(&["dropped", "invalid"])
            .inc_by(n as u64);
    }

    /// Counts a verified vote; whether it was new here.
    fn count(&mut self, vote: &Vote, now: u64, fx: &mut Vec<Effect>) -> bool {
        if !self.txs.contains_key(&vote.txid) && !self.room_for_vote_only() {
            return false;
        }
        let e = self.entry(vote.txid, now);
        if !e.tally.add(vote) {
            return false;
        }
        let label = if vote.approve { "approve" } else { "reject" };
        self.metrics
            .votes
            .with_label_values(&["received", label])
            .inc();
        self.check_quorum(vote.txid, now, fx);
        true
    }
}
