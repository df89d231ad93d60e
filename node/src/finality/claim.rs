//! Claims: the state of a checkpoint, attested by validators from their own
//! windows, so that a node away for longer than the window can install it
//! (state sync, [`super::sync`]).
//!
//! Nodes apply the same certificates in different orders, so two nodes'
//! states after the same count may differ by the last few. A claim carries,
//! besides the state's digests, the last finalizations before it in the
//! claimant's order (its tail). A validator rebuilds the state before the
//! tail from its own window (undoing what it applied since, with the ledger
//! change each finalization made), adds the tail, and signs the claim's hash
//! only if every digest, count and total comes out equal. More than a third
//! of the validators attesting means at least one honest one did.

use std::collections::VecDeque;

use sha2::{Digest, Sha256};

use super::inventory::BUCKETS;
use super::*;
use crate::ledger::tx::Signature;
use crate::ledger::UtxoDigest;

/// Finalizations a claim's tail holds, at most (and at most a quarter of
/// the window): how far apart two honest nodes' orders may be for one to
/// attest the other's claim.
pub const CLAIM_TAIL: usize = 1_024;
/// Claims checked between two ticks, at most, from one peer (each costs a
/// pass over the window): a flood of claims is not checked.
const CHECKS_PER_PEER: usize = 4;
/// Snapshot parts (and offers) served between two ticks, at most (each part
/// reads the checkpoint from disk), and to one peer.
const PARTS_PER_TICK: usize = 16;
const PARTS_PER_PEER: usize = 4;
/// Claims we attested lately, answered again without a check.
const ATTESTED_KEPT: usize = 32;

/// The ledger's state before a finalization, to compute what it changed.
pub(super) struct Mark {
    digest: UtxoDigest,
    count: i64,
    value: i128,
}

impl Mark {
    pub(super) fn of(ledger: &Ledger) -> Mark {
        Mark {
            digest: ledger.digest(),
            count: ledger.len() as i64,
            value: ledger.total_value() as i128,
        }
    }

    pub(super) fn delta(&self, after: &Ledger) -> Delta {
        Delta {
            digest: after.digest().minus(&self.digest),
            count: after.len() as i64 - self.count,
            value: after.total_value() as i128 - self.value,
        }
    }
}

/// Our claim gathering attestations, the newest certified one, and the
/// claims we attested.
#[derive(Default)]
pub(super) struct Claims {
    pub(super) pending: Option<(Claim, [u8; 32], Vec<ClaimVote>)>,
    pub(super) certified: Option<CertifiedClaim>,
    attested: VecDeque<([u8; 32], ClaimVote)>,
    checked: HashMap<NodeId, usize>,
    served: HashMap<NodeId, usize>,
    /// Peers whose snapshot failed lately, and when (not asked for a while).
    pub(super) shunned: HashMap<NodeId, u64>,
    /// Snapshots installed (state syncs that succeeded).
    pub(super) installed: u64,
    /// Our finalized count when a peer was first found far ahead of us,
    /// until a snapshot is installed or a peer holds our very set.
    pub(super) behind: Option<u64>,
}

impl Claims {
    /// Whether `peer` may be served one more part or offer this tick.
    fn may_serve(&mut self, peer: NodeId) -> bool {
        let total: usize = self.served.values().sum();
        let n = self.served.entry(peer).or_default();
        if *n >= PARTS_PER_PEER || total >= PARTS_PER_TICK {
            return false;
        }
        *n += 1;
        true
    }
}

impl Claim {
    /// What attesters sign.
    pub fn hash(&self) -> [u8; 32] {
        let body = postcard::to_stdvec(self).expect("a claim encodes");
        Sha256::new()
            .chain_update(b"testnet-checkpoint-claim-v1\0")
            .chain_update(body)
            .finalize()
            .into()
    }
}

impl ClaimVote {
    pub fn new(key: &Keypair, claim: [u8; 32]) -> ClaimVote {
        ClaimVote {
            claim,
            voter: key.id(),
            signature: Signature(key.sign(&claim)),
        }
    }

    pub fn verify(&self) -> bool {
        self.voter.verify(&self.claim, &self.signature.0)
    }
}

impl CertifiedClaim {
    /// Whether more than a third of `validators` (distinct) signed the claim.
    pub fn check(&self, validators: &Validators) -> Result<(), String> {
        let hash = self.claim.hash();
        let mut voters = HashSet::new();
        if self.votes.len() > validators.len() {
            return Err(format!("{} attestations", self.votes.len()));
        }
        for v in &self.votes {
            if !voters.insert(v.voter) {
                return Err(format!("two attestations by {}", v.voter.short()));
            }
            if v.claim != hash || !validators.contains(&v.voter) || !v.verify() {
                return Err(format!(
                    "an attestation by {} does not verify",
                    v.voter.short()
                ));
            }
        }
        let need = validators.reject_quorum();
        match voters.len() >= need {
            true => Ok(()),
            false => Err(format!("{} attestations, {need} needed", voters.len())),
        }
    }
}

impl Engine {
    /// The tail a claim of ours carries: a quarter of the window, at most
    /// [`CLAIM_TAIL`].
    fn claim_tail(&self) -> usize {
        (self.cfg.window / 4).clamp(1, CLAIM_TAIL)
    }

    /// The state as it is now as a claim (with a window; a checkpoint of
    /// it is being taken).
    pub fn claim(&self) -> Option<Claim> {
        if self.cfg.window == 0 {
            return None;
        }
        let inv = self.finalized_set.inventory();
        let tail_len = self.claim_tail().min(self.finalized.len());
        Some(Claim {
            network_id: self.cfg.network_id.clone(),
            seq: inv.count,
            whole: self.finalized_set.digest(),
            buckets: inv.buckets,
            utxo_digest: self.ledger.digest(),
            utxo_count: self.ledger.len() as u64,
            total_value: self.ledger.total_value(),
            tail: (self.finalized.iter().skip(self.finalized.len() - tail_len))
                .map(|(t, _)| *t)
                .collect(),
        })
    }

    /// Claims a checkpoint of ours once it is on disk (the one before is
    /// gone, and with it what we offered), attesting it ourselves if we are
    /// a validator; it is offered to peers on each tick until more than a
    /// third attested it.
    pub fn propose(&mut self, claim: Claim) {
        self.claims.certified = None;
        let hash = claim.hash();
        let votes = self
            .cfg
            .key
            .iter()
            .map(|k| ClaimVote::new(k, hash))
            .collect();
        self.claims.pending = Some((claim, hash, votes));
        self.certify_if_attested();
    }

    fn certify_if_attested(&mut self) {
        let Some((_, _, votes)) = &self.claims.pending else {
            return;
        };
        if votes.len() < self.cfg.validators.reject_quorum() {
            return;
        }
        let Some((claim, _, votes)) = self.claims.pending.take() else {
            return;
        };
        self.metrics.claims.with_label_values(&["certified"]).inc();
        tracing::info!(
            seq = claim.seq,
            attesters = votes.len(),
            "checkpoint claim certified"
        );
        self.claims.certified = Some(CertifiedClaim { claim, votes });
    }

    /// On each tick: our claim offered again while it is not certified.
    pub(super) fn claim_tick(&mut self, fx: &mut Vec<Effect>) {
        self.claims.checked.clear();
        self.claims.served.clear();
        fx.extend(self.announce_claim());
    }

    /// Our claim while it is not certified, to every peer (at once when
    /// proposed: until it is certified, we offer no snapshot).
    pub fn announce_claim(&self) -> Vec<Effect> {
        let Some((claim, _, _)) = &self.claims.pending else {
            return Vec::new();
        };
        let claim = LedgerMessage::Claim(Box::new(claim.clone()));
        vec![Effect::Broadcast(claim)]
    }

    /// A peer's claim: attested (our vote sent back) if our window rebuilds it.
    pub(super) fn on_claim(&mut self, from: NodeId, claim: Claim, fx: &mut Vec<Effect>) {
        let Some(key) = &self.cfg.key else { return };
        let hash = claim.hash();
        if let Some((_, vote)) = self.claims.attested.iter().find(|(h, _)| *h == hash) {
            fx.push(Effect::Send(from, LedgerMessage::ClaimVote(vote.clone())));
            return;
        }
        let checked = self.claims.checked.entry(from).or_default();
        if *checked >= CHECKS_PER_PEER {
            return;
        }
        *checked += 1;
        match self.attests(&claim) {
            Ok(()) => {
                let vote = ClaimVote::new(key, hash);
                self.metrics.claims.with_label_values(&["attested"]).inc();
                if self.claims.attested.len() >= ATTESTED_KEPT {
                    self.claims.attested.pop_front();
                }
                self.claims.attested.push_back((hash, vote.clone()));
                fx.push(Effect::Send(from, LedgerMessage::ClaimVote(vote)));
            }
            Err(why) => debug!(seq = claim.seq, from = %from.short(), why, "not attesting a claim"),
        }
    }

    /// An attestation of our pending claim.
    pub(super) fn on_claim_vote(&mut self, vote: ClaimVote) {
        let Some((_, hash, votes)) = &mut self.claims.pending else {
            return;
        };
        if vote.claim != *hash
            || !self.cfg.validators.contains(&vote.voter)
            || votes.iter().any(|v| v.voter == vote.voter)
            || !vote.verify()
        {
            return;
        }
        votes.push(vote);
        self.certify_if_attested();
    }

    /// Whether our history rebuilds `claim`: some cut of ours near where
    /// its tail begins (our first q finalizations, as a set, are the
    /// claimant's; orders differ near any cut) plus the rest of its tail
    /// (each final here) gives all its digests, and its count.
    pub(super) fn attests(&self, claim: &Claim) -> Result<(), String> {
        if claim.network_id != self.cfg.network_id || claim.buckets.len() != BUCKETS {
            return Err("another network, or not 256 buckets".into());
        }
        let count = self.finalized_count() as u64;
        let tail = claim.tail.len() as u64;
        if claim.seq > count || tail > CLAIM_TAIL as u64 || tail > claim.seq {
            let seq = claim.seq;
            return Err(format!(
                "a claim at {seq} with a tail of {tail}, we are at {count}"
            ));
        }
        let forgotten = self.forgotten as u64;
        let base = claim.seq - tail;
        let lo = base.saturating_sub(tail).max(forgotten);
        if lo > base {
            return Err(format!(
                "its tail starts at {base}, our window at {forgotten}"
            ));
        }
        let delta = |txid: &TxId| {
            let d = self.finals.get(txid).and_then(|f| f.delta);
            d.ok_or_else(|| format!("{}: its ledger change is unknown here", txid.short()))
        };
        let mut at = State::of(self);
        let mut pos = HashSet::new();
        for (txid, _) in self.finalized.range((lo - forgotten) as usize..) {
            at.undo(txid, &delta(txid)?);
            pos.insert(*txid);
        }
        // Our first `lo`, and the tail (what of it we applied after that).
        let (mut in_tail, mut extra) = (HashSet::new(), 0u64);
        for txid in &claim.tail {
            if !in_tail.insert(*txid) || !self.is_final(txid) {
                return Err(format!(
                    "{} of its tail is not final here (or twice)",
                    txid.short()
                ));
            }
            if pos.contains(txid) {
                at.redo(txid, &delta(txid)?);
                extra += 1;
            }
        }
        let (hi, mut q, mut nominal) = (claim.seq.min(count), lo, None);
        loop {
            if q + extra == claim.seq {
                match at.matches(claim) {
                    Ok(()) => return Ok(()),
                    Err(why) if q == base || nominal.is_none() => nominal = Some(why),
                    Err(_) => {}
                }
            }
            if q >= hi {
                break;
            }
            let txid = self.finalized[(q - forgotten) as usize].0;
            match in_tail.contains(&txid) {
                true => extra -= 1,
                false => at.redo(&txid, &delta(&txid)?),
            }
            q += 1;
        }
        let why = nominal.unwrap_or_else(|| "its count".into());
        Err(format!(
            "no cut of ours from {lo} to {hi} with its tail: {why}"
        ))
    }

    /// A message of state sync (claims and snapshots).
    pub(super) fn on_state_sync(
        &mut self,
        from: NodeId,
        msg: LedgerMessage,
        now: u64,
        fx: &mut Vec<Effect>,
    ) {
        match msg {
            LedgerMessage::Claim(claim) => self.on_claim(from, *claim, fx),
            LedgerMessage::ClaimVote(vote) => self.on_claim_vote(vote),
            LedgerMessage::GetSnapshot | LedgerMessage::GetSnapshotPart { .. } => {
                if self.claims.certified.is_none() || !self.claims.may_serve(from) {
                    return;
                }
                let Some(c) = &self.claims.certified else {
                    return;
                };
                match msg {
                    LedgerMessage::GetSnapshotPart { seq, index } if seq == c.claim.seq => {
                        fx.push(Effect::ServeSnapshot {
                            to: from,
                            seq,
                            index,
                        })
                    }
                    // (A part of a checkpoint that is gone: the one we hold now.)
                    _ => {
                        let offer = LedgerMessage::SnapshotOffer(Box::new(c.clone()));
                        fx.push(Effect::Send(from, offer));
                    }
                }
            }
            LedgerMessage::SnapshotOffer(offer) => self.on_snapshot_offer(from, *offer, now, fx),
            LedgerMessage::SnapshotPart {
                seq,
                index,
                records,
                last,
            } => self.on_snapshot_part(from, (seq, index, last), records, now, fx),
            _ => {}
        }
    }
}

/// A ledger state and finalized set, walked back and forth along a window.
struct State {
    whole: [u8; 32],
    buckets: Vec<TxId>,
    digest: UtxoDigest,
    count: i128,
    value: i128,
}

impl State {
    fn of(e: &Engine) -> State {
        State {
            whole: e.finalized_set.digest().0,
            buckets: e.finalized_set.inventory().buckets,
            digest: e.ledger.digest(),
            count: e.ledger.len() as i128,
            value: e.ledger.total_value() as i128,
        }
    }

    fn toggle(&mut self, txid: &TxId) {
        let b = &mut self.buckets[txid.0[0] as usize].0;
        for ((w, b), x) in self.whole.iter_mut().zip(b.iter_mut()).zip(txid.0) {
            *w ^= x;
            *b ^= x;
        }
    }

    fn undo(&mut self, txid: &TxId, d: &Delta) {
        self.toggle(txid);
        self.digest = self.digest.minus(&d.digest);
        self.count -= d.count as i128;
        self.value -= d.value;
    }

    fn redo(&mut self, txid: &TxId, d: &Delta) {
        self.toggle(txid);
        self.digest = self.digest.plus(&d.digest);
        self.count += d.count as i128;
        self.value += d.value;
    }

    fn matches(&self, c: &Claim) -> Result<(), String> {
        let differs = if self.whole != c.whole.0 || self.buckets != c.buckets {
            "the finalized set"
        } else if self.digest != c.utxo_digest {
            "the UTXO digest"
        } else if self.count != c.utxo_count as i128 {
            "the count of unspent outputs"
        } else if self.value != c.total_value as i128 {
            "the total value"
        } else {
            return Ok(());
        };
        Err(format!("{differs} differs from ours at {}", c.seq))
    }
}
