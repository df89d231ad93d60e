//! Our votes of a replica batch signed once (`Engine::hold_votes`), and
//! peers counting a batch of votes, or refusing it whole.

use super::*;
use crate::finality::quorum::{Approval, CertificateError};
use crate::finality::votes::{VoteBatch, MAX_VOTES_PER_BATCH};

fn vote_batches(fx: &[Effect]) -> Vec<VoteBatch> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Broadcast(LedgerMessage::Votes(b)) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

fn sends_votes(fx: &[Effect]) -> bool {
    fx.iter().any(|e| {
        matches!(
            e,
            Effect::Broadcast(LedgerMessage::Vote(_) | LedgerMessage::Votes(_))
        )
    })
}

fn counted(engine: &Engine, direction: &str, vote: &str) -> u64 {
    engine
        .metrics
        .votes
        .with_label_values(&[direction, vote])
        .get()
}

#[test]
fn a_batch_of_our_votes_is_one_signature_that_peers_check_once() {
    let mut sim = Sim::new(4, |_| Bugs::default(), 10);
    let txs: Vec<Transaction> = (0..5).map(|c| sim.payment(c, c as u64 + 1)).collect();
    let n0 = &mut sim.engines[0];
    n0.hold_votes();
    let mut fx = Vec::new();
    for tx in &txs {
        let (r, f) = n0.submit(tx.clone(), 1);
        r.unwrap();
        fx.extend(f);
    }
    let locks = fx
        .iter()
        .filter(|e| matches!(e, Effect::Persist(Record::Lock(_))))
        .count();
    assert_eq!(
        locks, 5,
        "each approval's lock is persisted as it is decided"
    );
    assert!(!sends_votes(&fx), "a vote left before the batch ended");
    assert_eq!((n0.held_votes(), counted(n0, "sent", "approve")), (5, 0));
    let released = n0.release_votes(2);
    assert_eq!((n0.held_votes(), counted(n0, "sent", "approve")), (0, 5));
    let batches = vote_batches(&released);
    assert_eq!(batches.len(), 1, "{released:?}");
    let decided: Vec<_> = txs.iter().map(|t| (t.id(), true)).collect();
    assert_eq!(batches[0].decisions, decided);
    assert_eq!(n0.report(&txs[0].id()).unwrap().approvals, 1, "our own");

    // n1 takes the transactions and the batch in one of its batches: five
    // input signatures and one for the five votes.
    let mut msgs: Vec<LedgerMessage> = txs.iter().cloned().map(LedgerMessage::Tx).collect();
    msgs.push(LedgerMessage::Votes(batches[0].clone()));
    let (from, n1) = (sim.id(0), &mut sim.engines[1]);
    let checked = n1.preverify(&msgs, []);
    assert_eq!((checked.signatures, checked.valid), (6, 6), "{checked:?}");
    for m in msgs {
        n1.on_message(from, m, 3);
    }
    assert_eq!(counted(n1, "received", "approve"), 5);
    for tx in &txs {
        assert_eq!(n1.report(&tx.id()).unwrap().approvals, 2, "n0's and n1's");
    }
}

#[test]
fn a_batch_that_does_not_verify_is_refused_whole() {
    let mut sim = Sim::new(4, |_| Bugs::default(), 11);
    let txs: Vec<Transaction> = (0..4).map(|c| sim.payment(c, c as u64 + 1)).collect();
    let decisions: Vec<_> = txs.iter().map(|t| (t.id(), true)).collect();
    let net = sim.genesis.network_id.clone();
    let good = VoteBatch::sign(&sim.keys[3], &net, decisions.clone());
    let mut forged = good.clone();
    forged.signature.0[7] ^= 1;
    let mut moved = good.clone();
    moved.decisions[2].1 = false;
    let outsider = VoteBatch::sign(&Keypair::from_seed([99; 32]), &net, decisions.clone());
    let oversize = VoteBatch::sign(
        &sim.keys[3],
        &net,
        (0..=MAX_VOTES_PER_BATCH as u32)
            .map(|i| (TxId([i as u8; 32]), true))
            .collect(),
    );
    let (from, n1) = (sim.id(3), &mut sim.engines[1]);
    for tx in &txs {
        n1.on_message(from, LedgerMessage::Tx(tx.clone()), 1);
    }
    for bad in [forged, moved, outsider, oversize] {
        n1.on_message(from, LedgerMessage::Votes(bad), 2);
    }
    assert_eq!(counted(n1, "received", "approve"), 0);
    assert_eq!(counted(n1, "received", "reject"), 0);
    // A forged or changed batch drops its votes; an outsider's or an
    // oversize one counts as one.
    let dropped = 4 + 4 + 1 + 1;
    assert_eq!(counted(n1, "dropped", "invalid"), dropped);
    n1.on_message(from, LedgerMessage::Votes(good), 3);
    assert_eq!(
        counted(n1, "received", "approve"),
        4,
        "the good batch counts"
    );
}

#[test]
fn a_certificate_of_batched_votes_stands_alone_and_its_paths_are_checked() {
    let sim = Sim::new(4, |_| Bugs::default(), 12);
    let txs: Vec<Transaction> = (0..3).map(|c| sim.payment(c, c as u64 + 1)).collect();
    let net = &sim.genesis.network_id;
    let decisions: Vec<_> = txs.iter().map(|t| (t.id(), true)).collect();
    // n1..n3 each approved the three in one batch.
    let votes: Vec<Vec<_>> = (1..4)
        .map(|i| VoteBatch::sign(&sim.keys[i], net, decisions.clone()).votes())
        .collect();
    let certificate = |k: usize| Certificate {
        tx: txs[k].clone(),
        approvals: votes
            .iter()
            .map(|vs| Approval {
                voter: vs[k].voter,
                signature: vs[k].signature,
                proof: vs[k].proof.clone(),
            })
            .collect(),
    };
    let validators = &sim.engines[0].cfg.validators;
    for k in 0..3 {
        assert_eq!(certificate(k).verify(net, validators, |_, _| false), Ok(()));
    }
    let mut other_path = certificate(0);
    other_path.approvals[1].proof = votes[1][1].proof.clone();
    let mut bent_path = certificate(2);
    bent_path.approvals[0].proof.siblings[0][0] ^= 1;
    for bad in [other_path, bent_path] {
        assert!(matches!(
            bad.verify(net, validators, |_, _| false),
            Err(CertificateError::BadSignature(_))
        ));
    }
    // A peer that counted n1's vote does not take a different path for it.
    let mut tally = quorum::Tally::default();
    tally.add(&votes[0][0]);
    let approval = &certificate(0).approvals[0];
    assert!(tally.has_approval(approval));
    let mut elsewhere = approval.clone();
    elsewhere.proof.index ^= 1;
    assert!(!tally.has_approval(&elsewhere));
}
