//! A replica batch's signatures checked together (`Engine::preverify`):
//! the same outcomes as checking each alone, a forgery among them still
//! refused.

use super::*;
use crate::finality::quorum::{Approval, Vote};

/// Votes by validators `voters` on `txid` (approvals).
fn votes(sim: &Sim, voters: &[usize], txid: TxId) -> Vec<Vote> {
    let net = &sim.genesis.network_id;
    voters
        .iter()
        .map(|&i| Vote::new(&sim.keys[i], net, txid, true))
        .collect()
}

#[test]
fn a_batch_is_verified_together_and_a_forged_vote_in_it_is_still_dropped() {
    let mut sim = Sim::new(4, |_| Bugs::default(), 7);
    let tx = sim.payment(0, 1);
    let txid = tx.id();
    let mut vs = votes(&sim, &[3, 1, 2], txid);
    // n3's signature over another transaction, put on this one (first: a
    // vote on a transaction final here is not checked at all).
    vs[0].signature = votes(&sim, &[3], TxId([9; 32]))[0].signature;
    let mut batch = vec![LedgerMessage::Tx(tx)];
    batch.extend(vs.into_iter().map(LedgerMessage::Vote));
    let (from, engine) = (sim.id(1), &mut sim.engines[0]);
    let checked = engine.preverify(&batch, []);
    assert_eq!((checked.signatures, checked.valid), (4, 3), "{checked:?}");
    assert_eq!(engine.verified.len(), 3);
    for m in batch {
        engine.on_message(from, m, 5);
    }
    let dropped = engine
        .metrics
        .votes
        .with_label_values(&["dropped", "invalid"]);
    assert_eq!(dropped.get(), 1, "the forged vote was counted");
    // Our approval and n1's and n2's: a quorum of 3 of 4.
    assert!(engine.certificate(&txid).is_some(), "not final");
}

#[test]
fn a_certificate_with_a_forged_approval_is_refused_from_a_batch() {
    let mut sim = Sim::new(4, |_| Bugs::default(), 8);
    let certificate = |sim: &Sim, coin: usize, forge: bool| {
        let tx = sim.payment(coin, coin as u64);
        let mut approvals: Vec<Approval> = votes(sim, &[1, 2, 3], tx.id())
            .into_iter()
            .map(|v| Approval {
                voter: v.voter,
                signature: v.signature,
                proof: v.proof,
            })
            .collect();
        if forge {
            approvals[1].signature.0[40] ^= 1;
        }
        Certificate { tx, approvals }
    };
    let forged = certificate(&sim, 0, true);
    let good = certificate(&sim, 1, false);
    let (forged_id, good_id) = (forged.tx.id(), good.tx.id());
    let batch = [
        LedgerMessage::Certificate(forged.into()),
        LedgerMessage::Certificate(good.into()),
    ];
    let (from, engine) = (sim.id(1), &mut sim.engines[0]);
    let checked = engine.preverify(&batch, []);
    assert_eq!((checked.signatures, checked.valid), (6, 5), "{checked:?}");
    for m in batch {
        engine.on_message(from, m, 5);
    }
    assert!(
        engine.certificate(&forged_id).is_none(),
        "a forged certificate was taken"
    );
    assert!(
        engine.certificate(&good_id).is_some(),
        "a good certificate was refused"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Delivered in batches (signatures checked together), twins sent by at
    /// most f equivocators are never both final, and honest nodes agree.
    #[test]
    fn batched_delivery_keeps_safety_and_agreement(pairs in 1usize..5, liar in 0usize..4, seed: u64) {
        let mut sim = Sim::new(4, |i| Bugs { equivocate: i == liar, ..Bugs::default() }, seed);
        sim.batched = true;
        let mut twins = Vec::new();
        for p in 0..pairs {
            let (a, b) = (sim.payment(p, 2 * p as u64 + 1), sim.payment(p, 2 * p as u64 + 2));
            let (x, y) = (sim.rng.gen_range(0..4), sim.rng.gen_range(0..4));
            let _ = sim.submit(x, a.clone());
            let _ = sim.submit(y, b.clone());
            twins.push((a.id(), b.id()));
        }
        let lone = sim.payment(pairs, 99);
        let lone_id = sim.submit(0, lone).unwrap();
        sim.run();
        for (a, b) in &twins {
            for i in 0..4 {
                prop_assert!(!(sim.finalized(i, a) && sim.finalized(i, b)), "pair final at n{}", i);
            }
        }
        for i in 0..4 {
            prop_assert!(sim.finalized(i, &lone_id), "a lone payment not final at n{}", i);
        }
        sim.assert_agreement((0..4).filter(|i| *i != liar));
    }
}

#[test]
fn votes_beyond_a_quorum_are_not_checked() {
    let mut sim = Sim::new(4, |_| Bugs::default(), 9);
    let tx = sim.payment(0, 1);
    let txid = tx.id();
    sim.engines[0].submit(tx, 5).0.unwrap();
    sim.queue.clear();
    // Our approval is counted; two of the three others make a quorum of 3.
    let batch: Vec<LedgerMessage> = votes(&sim, &[1, 2, 3], txid)
        .into_iter()
        .map(LedgerMessage::Vote)
        .collect();
    let (from, engine) = (sim.id(1), &mut sim.engines[0]);
    let checked = engine.preverify(&batch, []);
    assert_eq!(checked.signatures, 2, "{checked:?}");
    for m in batch {
        engine.on_message(from, m, 6);
    }
    assert!(engine.certificate(&txid).is_some(), "not final");
}
