//! The votes of a batch of inputs verified together. Ed25519 batch
//! verification checks n signatures for about half the cost of n single
//! checks; the replica hands the engine each batch's messages first, and
//! `on_vote` then skips the check of a vote verified here.
//!
//! A batch with one bad signature fails as a whole: then nothing is marked,
//! and every vote is checked alone as before (a forger costs one batch check
//! more, and gains nothing). Batch verification uses the cofactored equation,
//! single verification the cofactorless one: a signature crafted with
//! small-order components by its own signer can pass one and fail the other.
//! Only a validator can craft its own vote so, and a Byzantine validator can
//! already tell nodes different things (equivocate); quorums tolerate it.

use std::collections::HashSet;

use ed25519_dalek::{Signature as Sig, VerifyingKey};

use super::quorum::{vote_message, Vote};
use super::types::LedgerMessage;
use super::{Engine, TxState};
use crate::identity::NodeId;

/// Fewer votes than this are left to single checks.
const MIN_BATCH: usize = 4;

/// Signatures verified in the current batch: by signer, the message signed
/// and the signature (all three: a valid signature copied onto another
/// message must still be checked, and fail).
#[derive(Debug, Default)]
pub(super) struct Preverified(HashSet<(NodeId, [u8; 32], [u8; 64])>);

impl Preverified {
    /// Was this vote's signature verified in the batch? (Each counts once.)
    pub(super) fn take(&mut self, network_id: &str, vote: &Vote) -> bool {
        let message = vote_message(network_id, &vote.txid, vote.approve);
        self.0.remove(&(vote.voter, message, vote.signature.0))
    }
}

impl Engine {
    /// Verifies together the signatures of the votes among `messages` that
    /// [`Engine::on_message`] would check one by one (a validator's, on a
    /// transaction not final here, from a voter not counted yet). Replaces
    /// what an earlier batch left.
    pub fn preverify<'a>(&mut self, messages: impl IntoIterator<Item = &'a LedgerMessage>) {
        self.preverified.0.clear();
        let mut seen = HashSet::new();
        let votes: Vec<&Vote> = messages
            .into_iter()
            .filter_map(|m| match m {
                LedgerMessage::Vote(v) => Some(v),
                _ => None,
            })
            .filter(|v| self.cfg.validators.contains(&v.voter))
            .filter(|v| {
                !self
                    .txs
                    .get(&v.txid)
                    .is_some_and(|e| e.tally.has_voted(&v.voter) || e.state == TxState::Finalized)
            })
            .filter(|v| seen.insert((v.voter, v.txid, v.approve, v.signature.0)))
            .collect();
        if votes.len() < MIN_BATCH {
            return;
        }
        let Some(keys) = votes
            .iter()
            .map(|v| v.voter.verifying_key())
            .collect::<Option<Vec<VerifyingKey>>>()
        else {
            return;
        };
        let messages: Vec<[u8; 32]> = votes
            .iter()
            .map(|v| vote_message(&self.cfg.network_id, &v.txid, v.approve))
            .collect();
        let refs: Vec<&[u8]> = messages.iter().map(|m| &m[..]).collect();
        let signatures: Vec<Sig> = votes
            .iter()
            .map(|v| Sig::from_bytes(&v.signature.0))
            .collect();
        if ed25519_dalek::verify_batch(&refs, &signatures, &keys).is_ok() {
            let marked = votes.iter().zip(&messages);
            self.preverified
                .0
                .extend(marked.map(|(v, m)| (v.voter, *m, v.signature.0)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finality::{quorum::Validators, Bugs, EngineConfig};
    use crate::genesis::{Addressing, Genesis};
    use crate::identity::Keypair;
    use crate::ledger::tx::{Signature, TxId};
    use crate::ledger::{Ledger, Limits};
    use crate::metrics::FinalityMetrics;

    /// An engine whose validators are `keys`' holders.
    fn engine_with_validators(keys: &[Keypair]) -> Engine {
        let g = Genesis::generate_with_full_nodes(
            1,
            0,
            &Addressing::Host {
                ip: "127.0.0.1".parse().unwrap(),
                first_port: 7000,
            },
            Some("batch"),
        )
        .unwrap();
        Engine::new(
            EngineConfig {
                network_id: g.genesis.network_id.clone(),
                validators: Validators::new(keys.iter().map(Keypair::id).collect()),
                key: None,
                bugs: Bugs::default(),
                relay: false,
            },
            Ledger::from_genesis(&g.genesis, Limits::default()),
            FinalityMetrics::register(&prometheus::Registry::new()),
        )
    }

    fn votes(keys: &[Keypair], net: &str) -> Vec<LedgerMessage> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| LedgerMessage::Vote(Vote::new(k, net, TxId([i as u8; 32]), true)))
            .collect()
    }

    #[test]
    fn a_batch_of_good_votes_is_marked_and_one_forgery_marks_none() {
        let keys: Vec<Keypair> = (0..6).map(|_| Keypair::generate()).collect();
        let mut engine = engine_with_validators(&keys);
        let net = engine.cfg.network_id.clone();
        let good = votes(&keys, &net);
        engine.preverify(&good);
        for m in &good {
            let LedgerMessage::Vote(v) = m else {
                unreachable!()
            };
            assert!(engine.preverified.take(&net, v), "{v:?} not marked");
            assert!(!engine.preverified.take(&net, v), "marked twice");
        }
        // A good signature copied onto another transaction is not taken for verified.
        engine.preverify(&good);
        let LedgerMessage::Vote(v) = &good[0] else {
            unreachable!()
        };
        let mut copied = v.clone();
        copied.txid = TxId([0xee; 32]);
        assert!(
            !engine.preverified.take(&net, &copied),
            "a copied signature passed"
        );
        let mut bad = votes(&keys, &net);
        if let LedgerMessage::Vote(v) = &mut bad[2] {
            v.signature = Signature([7; 64]);
        }
        engine.preverify(&bad);
        for m in &bad {
            let LedgerMessage::Vote(v) = m else {
                unreachable!()
            };
            assert!(
                !engine.preverified.take(&net, v),
                "a batch with a forgery marked {v:?}"
            );
        }
        // Too few to batch, or from no validator: left to single checks.
        engine.preverify(&good[..MIN_BATCH - 1]);
        assert!(engine.preverified.0.is_empty());
        let outsiders: Vec<Keypair> = (0..6).map(|_| Keypair::generate()).collect();
        engine.preverify(&votes(&outsiders, &net));
        assert!(engine.preverified.0.is_empty());
    }
}
