//! What one peer can make an engine hold or send: orphans bounded in bytes,
//! catch-up replies bounded by the frame.

use super::*;

/// The largest transaction there is (256 inputs, 256 outputs: about 34 KB),
/// spending outputs nobody knows: it cannot be checked, only held until its
/// parents show up.
fn orphan(sim: &Sim, memo: u64) -> Transaction {
    let prevs: Vec<OutPoint> = (0..256u32)
        .map(|vout| OutPoint {
            txid: TxId([memo as u8 ^ 0x5a; 32]),
            vout: vout + 1000 * (memo as u32),
        })
        .collect();
    let outputs = (0..256)
        .map(|i| TxOut {
            owner: Keypair::from_seed([i as u8; 32]).id(),
            value: 1_000_000,
        })
        .collect();
    Transaction::signed(
        &sim.genesis.network_id,
        &prevs,
        outputs,
        memo,
        &[&sim.faucet],
    )
}

/// Every orphan is 1 of at most 10,000 by count (340 MB of the largest);
/// 600 of the largest pass the count and are bounded by bytes: the oldest
/// make room, so the newest is held.
#[test]
fn orphans_are_bounded_in_bytes_not_only_in_count() {
    let mut sim = Sim::new(4, |_| Bugs::default(), 3);
    let sent = 600;
    let big: Vec<Transaction> = (0..sent).map(|m| orphan(&sim, m)).collect();
    let size = big.iter().map(|t| t.size()).max().unwrap();
    assert!((30_000..40_000).contains(&size), "{size}");
    let peer = sim.id(1);
    let engine = &mut sim.engines[0];
    let newest = big.last().unwrap().id();
    for tx in big {
        let fx = engine.on_message(peer, LedgerMessage::Tx(tx), 1);
        assert!(fx.is_empty(), "an orphan is held, not voted on or relayed");
    }
    let full = engine
        .metrics
        .rejected
        .with_label_values(&["orphans_full"])
        .get();
    let held = engine.orphans.len();
    let bytes = engine.orphans.bytes();
    assert!(
        bytes <= MAX_ORPHAN_BYTES && bytes + size > MAX_ORPHAN_BYTES,
        "{bytes} held"
    );
    assert_eq!(
        full as usize,
        sent as usize - held,
        "{held} held, up to {size} bytes each"
    );
    assert!(
        engine.orphans.contains(&newest),
        "the oldest made room: a flood cannot hold the pool"
    );
}

/// A catch-up reply holds the certificates that fit in its byte budget, in
/// the order asked, and leaves the rest for the next round.
#[test]
fn catch_up_replies_fit_their_byte_budget() {
    let mut sim = Sim::new(4, |_| Bugs::default(), 4);
    let ids: Vec<TxId> = (0..5)
        .map(|c| sim.submit(0, sim.payment(c, c as u64)).unwrap())
        .collect();
    sim.run();
    let e = &sim.engines[1];
    let sizes: Vec<usize> = ids
        .iter()
        .map(|t| {
            postcard::to_stdvec(e.certificate(t).unwrap())
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(e.certificates_within(&ids, usize::MAX).len(), 5);
    let three: usize = sizes[..3].iter().sum();
    let got = e.certificates_within(&ids, three);
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].tx.id(), ids[2], "in the order asked");
    assert_eq!(e.certificates_within(&ids, three - 1).len(), 2);
    assert!(
        e.certificates_within(&ids, sizes[0] / 2).is_empty(),
        "none fits"
    );
}

/// Twins split two and two in a full mesh of four: each is rejected by a
/// (restarted from the whole log, or from a checkpoint of it)
/// quorum of rejections. n0 had locked A; restarted from its records, it has
/// A rejected again (the lock alone would bring A back as pending for ever,
/// the mempool never empty) and can still offer the rejections to a peer.
#[test]
fn a_rejected_lock_stays_rejected_after_a_restart() {
    for compact in [false, true] {
        a_rejected_lock_stays_rejected_after_a_restart_after(compact);
    }
}

fn a_rejected_lock_stays_rejected_after_a_restart_after(compact: bool) {
    let mut sim = Sim::new(4, |_| Bugs::default(), 5);
    let (a, b) = (sim.payment(0, 1), sim.payment(0, 2));
    sim.submit(0, a.clone()).unwrap();
    sim.submit(2, b.clone()).unwrap();
    sim.deliver_where(|from, to, m| from == 0 && to == 1 && matches!(m, LedgerMessage::Tx(_)));
    sim.deliver_where(|from, to, m| from == 2 && to == 3 && matches!(m, LedgerMessage::Tx(_)));
    sim.run();
    for i in 0..4 {
        assert_eq!(
            sim.engines[i].report(&a.id()).unwrap().state,
            TxState::Rejected
        );
    }
    let kept = sim.persisted[0].iter().any(
        |r| matches!(r, Record::Rejected { txid, votes } if *txid == a.id() && votes.len() >= 2),
    );
    assert!(
        kept,
        "the rejection of a locked transaction is persisted with its votes"
    );
    if compact {
        sim.compact(0);
    }
    sim.restart(0);
    let peer = sim.id(1);
    let e = &mut sim.engines[0];
    assert_eq!(e.report(&a.id()).unwrap().state, TxState::Rejected);
    assert_eq!(e.mempool_len(), 0);
    let offered = e
        .on_peer_connected(peer)
        .iter()
        .filter(|f| {
            matches!(f, Effect::Send(_, LedgerMessage::Vote(v)) if v.txid == a.id() && !v.approve)
        })
        .count();
    assert!(offered >= 2, "rejection votes to offer a peer: {offered}");
}

/// Finalized transactions keep the time they were finalized across a restart.
#[test]
fn replay_keeps_the_time_of_each_finalization() {
    let mut sim = Sim::new(4, |_| Bugs::default(), 6);
    let first = sim.submit(0, sim.payment(0, 1)).unwrap();
    sim.run();
    sim.now += 60_000;
    let second = sim.submit(0, sim.payment(1, 2)).unwrap();
    sim.run();
    let before: Vec<(TxId, u64)> = sim.engines[3].finalized().to_vec();
    assert_eq!(before.len(), 2);
    assert!(before[1].1 >= before[0].1 + 60_000);
    sim.now += 3_600_000;
    sim.restart(3);
    assert_eq!(
        sim.engines[3].finalized(),
        &before[..],
        "{first:?} {second:?}"
    );
}

/// 256 transactions of about 9 KB (256 outputs each) finalized while n3 was
/// cut off: catching up, n3 asks for all of them at once, and the answers
/// come in frames that can hold them (the run asserts every message fits),
/// over as many rounds as it takes.
#[test]
fn catching_up_large_transactions_fits_in_frames() {
    let mut sim = Sim::new(4, |_| Bugs::default(), 7);
    let (owner, payee) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
    let net = sim.genesis.network_id.clone();
    let coin = OutPoint {
        txid: crate::ledger::tx::genesis_txid(&net),
        vout: 0,
    };
    let wide = |value: u64, to: &Keypair| {
        (0..256)
            .map(|_| TxOut {
                owner: to.id(),
                value,
            })
            .collect::<Vec<_>>()
    };
    sim.cut = [3].into();
    let parent = Transaction::signed(&net, &[coin], wide(243_000_000, &owner), 0, &[&sim.faucet]);
    let parent_id = sim.submit(0, parent).unwrap();
    sim.run();
    let mut ids = vec![parent_id];
    for vout in 0..255u32 {
        let prev = OutPoint {
            txid: parent_id,
            vout,
        };
        let child = Transaction::signed(&net, &[prev], wide(940_000, &payee), 1, &[&owner]);
        ids.push(sim.submit((vout % 3) as usize, child).unwrap());
    }
    sim.run();
    let certs: usize = ids
        .iter()
        .map(|t| {
            postcard::to_stdvec(sim.engines[0].certificate(t).unwrap())
                .unwrap()
                .len()
        })
        .sum();
    assert!(
        certs > FRAME,
        "{certs} bytes of certificates fit in one frame: no test"
    );
    assert!(!sim.finalized(3, &parent_id));
    sim.heal();
    for t in &ids {
        assert!(sim.finalized(3, t), "n3 caught up on every one");
    }
    sim.assert_agreement(0..4);
}

/// A restart takes up only the locks still pending at the end of the log:
/// n0, cut off, locked `a` and `c`; `a`'s twin `b` was finalized by the
/// others and its certificate reached n0. Restarted, n0 holds `c` pending
/// with its lock and our approval, and `a` rejected (it lost to `b`), as
/// before the restart: gossiped again, `a` draws no vote from n0 against the
/// approval it gave it.
#[test]
fn a_restart_takes_up_only_the_locks_still_pending() {
    for compact in [false, true] {
        a_restart_takes_up_only_the_locks_still_pending_after(compact);
    }
}

fn a_restart_takes_up_only_the_locks_still_pending_after(compact: bool) {
    let mut sim = Sim::new(4, |_| Bugs::default(), 8);
    let (a, b, c) = (sim.payment(0, 1), sim.payment(0, 2), sim.payment(1, 3));
    sim.cut.insert(0);
    sim.submit(0, a.clone()).unwrap();
    sim.submit(0, c.clone()).unwrap();
    sim.submit(1, b.clone()).unwrap();
    sim.run();
    let cert = sim.engines[1].certificate(&b.id()).unwrap().clone();
    let from = sim.id(1);
    let fx = sim.engines[0].on_message(from, LedgerMessage::Certificate(cert.into()), sim.now);
    sim.effects(0, fx);
    if compact {
        sim.compact(0);
    }
    sim.restart(0);
    let e = &sim.engines[0];
    assert!(e.is_final(&b.id()));
    let lost = e.report(&a.id()).unwrap();
    assert_eq!(
        (lost.state, lost.reason.as_deref()),
        (TxState::Rejected, Some("input_spent"))
    );
    let pending = e.report(&c.id()).unwrap();
    assert_eq!((pending.state, pending.approvals), (TxState::Pending, 1));
    assert_eq!(e.mempool_len(), 1);
    assert_eq!(e.footprint().locks, 1, "c's input only");
    let fx = sim.engines[0].on_message(from, LedgerMessage::Tx(a.clone()), sim.now);
    assert!(fx.is_empty(), "{fx:?}");
}
