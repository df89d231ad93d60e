//! A finality window: what grows with history stays within it, and what the
//! checkers compare (digests, counts, the ledger) is what it is without one.

use super::*;
use crate::finality::quorum::Vote;

const W: usize = 16;

/// Spends output 0 of `prev` (owned by `owner`) to `owner` again.
pub(super) fn step(sim: &Sim, prev: &Transaction, owner: &Keypair, memo: u64) -> Transaction {
    Transaction::signed(
        &sim.genesis.network_id,
        &[OutPoint {
            txid: prev.id(),
            vout: 0,
        }],
        vec![TxOut {
            owner: owner.id(),
            value: prev.outputs[0].value - 1_000_000,
        }],
        memo,
        &[owner],
    )
}

/// Four chains of payments, each step submitted at another node, with a
/// twin (a double spend of the same output) every tenth step; plus two
/// payments whose outputs are never spent. Returns every transaction made.
fn history(sim: &mut Sim, steps: usize) -> Vec<Transaction> {
    history_with(sim, steps, |_, _| {})
}

/// [`history`], calling `between` after each step.
pub(super) fn history_with(
    sim: &mut Sim,
    steps: usize,
    mut between: impl FnMut(&mut Sim, usize),
) -> Vec<Transaction> {
    let owners: Vec<Keypair> = (0..4).map(|c| Keypair::from_seed([c as u8; 32])).collect();
    let mut made = vec![sim.payment(4, 4), sim.payment(5, 5)];
    let first: Vec<Transaction> = (0..4).map(|c| sim.payment(c, c as u64)).collect();
    made.extend(first.iter().cloned());
    // A chain ends where both twins were rejected (their locks hold the
    // output): it starts again from a faucet output not used yet.
    let mut tips: Vec<Option<Transaction>> = first.into_iter().map(Some).collect();
    let mut spare = 6..crate::genesis::GENESIS_OUTPUTS as usize;
    for t in made.clone() {
        sim.submit(0, t).unwrap();
    }
    sim.run();
    for s in 0..steps {
        for (c, owner) in owners.iter().enumerate() {
            let Some(tip) = &tips[c] else { continue };
            let memo = 1_000 + (s * 4 + c) as u64;
            let next = step(sim, tip, owner, memo);
            let _ = sim.submit((s + c) % 4, next.clone());
            if s % 10 == 0 {
                let twin = step(sim, tip, owner, memo + 500_000);
                let _ = sim.submit((s + c + 1) % 4, twin.clone());
                made.push(twin);
            }
            made.push(next);
        }
        sim.run();
        // The chain goes on from whichever twin won.
        for tip in &mut tips {
            let spent = tip.as_ref().map(|t| OutPoint {
                txid: t.id(),
                vout: 0,
            });
            let winner = spent.and_then(|op| sim.engines[0].ledger().spent_by(&op));
            *tip = winner.and_then(|w| made.iter().find(|t| t.id() == w).cloned());
        }
        for (c, tip) in tips.iter_mut().enumerate() {
            if let (None, Some(coin)) = (&tip, spare.next()) {
                let fresh = sim.payment(coin, c as u64);
                sim.submit(c, fresh.clone()).unwrap();
                made.push(fresh.clone());
                *tip = Some(fresh);
            }
        }
        sim.run();
        between(sim, s);
    }
    made
}

#[test]
fn a_window_bounds_every_structure_and_changes_no_digest() {
    let mut kept = Sim::new(4, |_| Bugs::default(), 11);
    let mut windowed = Sim::new(4, |_| Bugs::default(), 11).windowed(W);
    let steps = 40;
    history(&mut kept, steps);
    let made = history(&mut windowed, steps);
    let finalized = kept.engines[0].finalized_count();
    assert!(finalized > 4 * W, "{finalized}");
    for i in 0..4 {
        let (k, w) = (&kept.engines[i], &windowed.engines[i]);
        assert_eq!(w.finalized_count(), finalized, "n{i} count");
        assert_eq!(
            w.finalized_digest(),
            k.finalized_digest(),
            "n{i} set digest"
        );
        assert_eq!(w.ledger().digest(), k.ledger().digest(), "n{i} UTXO digest");
        let f = w.footprint();
        assert_eq!((f.finals, f.finalized, f.members), (W, W, W), "n{i}: {f:?}");
        assert!(f.spent <= W, "n{i}: {f:?}");
        assert_eq!(f.waiting, 0, "n{i}: {f:?}");
        // Only the rejected twins are left, with the locks of those that
        // ended a chain, as without a window (the ring of recent rejections
        // is larger than this run's).
        let kf = k.footprint();
        assert_eq!(
            (f.txs, f.locks, f.spenders),
            (kf.txs, kf.locks, kf.spenders),
            "n{i}: {f:?}"
        );
        assert!(f.txs <= made.len() - finalized, "n{i}: {f:?}");
        // Without a window, everything is kept.
        assert_eq!(k.footprint().finals, finalized);
    }
    windowed.assert_agreement(0..4);
    // `/finalized` pages start at the oldest kept.
    let page = windowed.engines[1].finalized_page(0, 5);
    assert_eq!(
        (page.first, page.entries.len(), page.total),
        (finalized - W, 5, finalized)
    );
    let tail = windowed.engines[1].finalized_page(finalized - 2, 100);
    assert_eq!(tail.entries, windowed.engines[1].finalized()[W - 2..]);
    assert!(windowed.engines[1]
        .finalized_page(finalized, 100)
        .entries
        .is_empty());
}

/// Certificates and votes of transactions the window forgot change nothing:
/// no false alarm, no state, and what waits for parents nobody has expires.
#[test]
fn late_messages_about_forgotten_transactions_change_nothing() {
    let mut kept = Sim::new(4, |_| Bugs::default(), 5);
    let mut windowed = Sim::new(4, |_| Bugs::default(), 5).windowed(W);
    let made = history(&mut kept, 10);
    history(&mut windowed, 10);
    let n0 = &kept.engines[0];
    let old: Vec<Certificate> = made
        .iter()
        .filter_map(|t| n0.certificate(&t.id()).cloned())
        .filter(|c| !windowed.engines[0].is_final(&c.tx.id()))
        .collect();
    assert!(old.len() > 20, "{}", old.len());
    let before = (
        windowed.engines[0].ledger().digest(),
        windowed.engines[0].finalized_digest(),
        windowed.engines[0].finalized_count(),
    );
    let from = windowed.id(1);
    let mut now = windowed.now;
    for c in &old {
        now += 1;
        let votes: Vec<Vote> = (1..4)
            .map(|v| {
                Vote::new(
                    &windowed.keys[v],
                    &windowed.genesis.network_id,
                    c.tx.id(),
                    true,
                )
            })
            .collect();
        let e = &mut windowed.engines[0];
        e.on_message(from, LedgerMessage::Certificate(c.clone().into()), now);
        for v in votes {
            e.on_message(from, LedgerMessage::Vote(v), now);
        }
    }
    let e = &windowed.engines[0];
    let after = (
        e.ledger().digest(),
        e.finalized_digest(),
        e.finalized_count(),
    );
    assert_eq!(after, before);
    assert!(e.conflicts().is_empty());
    // The first payments' outputs were never spent: known as applied, not
    // parked. Chain steps (outputs spent and forgotten) wait, then expire.
    let f = e.footprint();
    assert!(f.waiting > 0 && f.waiting < 2 * old.len(), "{f:?}");
    let peers = [windowed.id(1)];
    let e = &mut windowed.engines[0];
    let asks = e.on_tick(&peers, now);
    assert!(asks
        .iter()
        .any(|f| matches!(f, Effect::Broadcast(LedgerMessage::GetCertificates(_)))));
    e.on_tick(&peers, now + WAITING_TTL_MS + 1);
    let f = e.footprint();
    assert_eq!(f.waiting, 0, "expired: {f:?}");
}

/// A node cut off for fewer finalizations than the window catches up from
/// peers that keep one, and ends with their digests.
#[test]
fn a_node_away_for_less_than_the_window_catches_up() {
    let mut sim = Sim::new(4, |_| Bugs::default(), 3).windowed(64);
    sim.cut.insert(3);
    history(&mut sim, 6);
    assert!(sim.engines[3].finalized_count() < sim.engines[0].finalized_count());
    sim.heal();
    for i in 1..4 {
        assert_eq!(
            sim.engines[i].finalized_digest(),
            sim.engines[0].finalized_digest(),
            "n{i}"
        );
    }
    sim.assert_agreement(0..4);
}

/// Twins split two and two: both rejected, n0 and n1 locked `a`, n2 and n3
/// `b`. Once the ring of recent rejections (as long as the window) moved past
/// them, their entries are gone but not the locks: each twin sent again is
/// refused where the other was approved, and neither is ever final (a
/// validator that forgot its lock would approve the other twin: two
/// conflicting certificates with no faulty validator).
#[test]
fn forgotten_rejections_keep_their_locks() {
    let mut sim = Sim::new(4, |_| Bugs::default(), 5).windowed(W);
    let split = |sim: &mut Sim, coin: usize, memo: u64| {
        let (a, b) = (sim.payment(coin, memo), sim.payment(coin, memo + 1));
        sim.submit(0, a.clone()).unwrap();
        sim.submit(2, b.clone()).unwrap();
        sim.deliver_where(|f, t, m| f == 0 && t == 1 && matches!(m, LedgerMessage::Tx(_)));
        sim.deliver_where(|f, t, m| f == 2 && t == 3 && matches!(m, LedgerMessage::Tx(_)));
        sim.run();
        (a, b)
    };
    let (a, b) = split(&mut sim, 0, 1);
    let rejected = |sim: &Sim, t: &Transaction| {
        (0..4).all(|i| sim.engines[i].report(&t.id()).map(|r| r.state) == Some(TxState::Rejected))
    };
    assert!(rejected(&sim, &a) && rejected(&sim, &b));
    for coin in 1..crate::genesis::GENESIS_OUTPUTS as usize {
        split(&mut sim, coin, 10 + 2 * coin as u64);
    }
    for i in 0..4 {
        let e = &sim.engines[i];
        assert!(e.report(&a.id()).is_none(), "n{i} forgot a");
        assert!(e.footprint().txs <= W, "n{i}: {:?}", e.footprint());
    }
    let refused = |r: Result<TxId, Rejection>| matches!(r, Err(Rejection::Conflict { .. }));
    assert!(refused(sim.submit(0, b.clone())), "n0 still holds a's lock");
    assert!(refused(sim.submit(1, b.clone())), "n1 still holds a's lock");
    assert!(refused(sim.submit(2, a.clone())), "n2 still holds b's lock");
    sim.run();
    for i in 0..4 {
        assert!(
            !sim.finalized(i, &a.id()) && !sim.finalized(i, &b.id()),
            "n{i}"
        );
    }
    sim.assert_agreement(0..4);
}
