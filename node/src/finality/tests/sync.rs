//! State sync: claims are attested from the attesters' own windows, a node
//! away for longer than the window installs a certified snapshot and agrees
//! again, and a snapshot that does not add up is refused.

use super::window::step;
use super::*;

const W: usize = 16;

/// Four chains of payments from faucet outputs 0-3.
struct Chains {
    owners: Vec<Keypair>,
    tips: Vec<Transaction>,
    memo: u64,
}

impl Chains {
    fn start(sim: &mut Sim) -> Chains {
        let owners: Vec<Keypair> = (0..4).map(|c| Keypair::from_seed([c as u8; 32])).collect();
        let tips: Vec<Transaction> = (0..4)
            .map(|c| {
                let first = sim.payment(c, c as u64);
                step(sim, &first, &owners[c], 0);
                first
            })
            .collect();
        for t in &tips {
            sim.submit(0, t.clone()).unwrap();
        }
        sim.run();
        Chains {
            owners,
            tips,
            memo: 100,
        }
    }

    /// `steps` rounds of one payment per chain, submitted at `at`'s nodes in
    /// turn; after each, `between`.
    fn pay(
        &mut self,
        sim: &mut Sim,
        steps: usize,
        at: &[usize],
        mut between: impl FnMut(&mut Sim, usize),
    ) {
        for s in 0..steps {
            for c in 0..4 {
                self.memo += 1;
                let next = step(sim, &self.tips[c], &self.owners[c], self.memo);
                sim.submit(at[(s + c) % at.len()], next.clone()).unwrap();
                self.tips[c] = next;
            }
            sim.run();
            between(sim, s);
        }
    }
}

/// Every node not cut ticks once (claims offered, inventories compared).
fn tick(sim: &mut Sim) {
    for i in 0..sim.engines.len() {
        if sim.cut.contains(&i) {
            continue;
        }
        let peers: Vec<NodeId> = (sim.adj[i].iter())
            .filter(|j| !sim.cut.contains(j))
            .map(|j| sim.id(*j))
            .collect();
        let fx = sim.engines[i].on_tick(&peers, sim.now);
        sim.effects(i, fx);
    }
    sim.run();
}

fn syncs(e: &Engine, result: &str) -> u64 {
    e.metrics.state_syncs.with_label_values(&[result]).get()
}

/// n3 is cut off while 40 rounds (160 finalizations, ten windows) are made;
/// the others checkpoint every 8 rounds.
fn away(seed: u64) -> (Sim, Chains) {
    let mut sim = Sim::new(4, |_| Bugs::default(), seed).windowed(W);
    let mut chains = Chains::start(&mut sim);
    sim.cut.insert(3);
    chains.pay(&mut sim, 40, &[0, 1, 2], |sim, s| {
        if s % 8 == 7 {
            for i in 0..3 {
                sim.compact(i);
            }
            tick(sim);
        }
    });
    (sim, chains)
}

#[test]
fn a_node_away_longer_than_the_window_syncs_from_a_certified_snapshot() {
    let (mut sim, mut chains) = away(21);
    let ahead = sim.engines[0].finalized_count();
    assert!(sim.engines[3].finalized_count() + 10 * W <= ahead);
    for i in 0..3 {
        let certified = sim.engines[i]
            .metrics
            .claims
            .with_label_values(&["certified"]);
        assert!(
            certified.get() >= 4,
            "n{i}: {} claims certified",
            certified.get()
        );
    }
    let healed = sim.now;
    sim.heal();
    assert_eq!(sim.installed[3], 1, "n3 installed one snapshot");
    // Final at n3 when it installed them, not when the others finalized.
    assert!(sim.engines[3]
        .finalized()
        .iter()
        .all(|(_, at)| *at > healed));
    assert_eq!(syncs(&sim.engines[3], "ok"), 1);
    assert_eq!(syncs(&sim.engines[3], "refused"), 0);
    for i in 0..4 {
        let e = &sim.engines[i];
        assert_eq!(e.finalized_count(), ahead, "n{i} count");
        assert_eq!(
            e.finalized_digest(),
            sim.engines[0].finalized_digest(),
            "n{i} set"
        );
    }
    sim.assert_agreement(0..4);
    // n3 takes part again: payments submitted there are final everywhere.
    chains.pay(&mut sim, 6, &[3, 0], |_, _| {});
    let n = sim.engines[0].finalized_count();
    assert_eq!(n, ahead + 24);
    for t in &chains.tips {
        for i in 0..4 {
            assert!(sim.finalized(i, &t.id()), "n{i}");
        }
    }
    // And it restarts from the checkpoint the snapshot was written as.
    sim.restart(3);
    assert_eq!(sim.engines[3].finalized_count(), n);
    sim.assert_agreement(0..4);
    assert_eq!(
        sim.engines[3].finalized_digest(),
        sim.engines[0].finalized_digest()
    );
}

#[test]
fn claims_are_attested_from_another_order_and_a_changed_one_is_not() {
    let (mut sim, _) = away(5);
    sim.compact(0);
    let claim = sim.engines[0].claims.pending.clone().unwrap().0;
    assert!(claim.tail.len() == W / 4, "{}", claim.tail.len());
    // n1 applied the same set in its own order (random delivery).
    assert_eq!(sim.engines[1].attests(&claim), Ok(()));
    let mut changed = [claim.clone(), claim.clone(), claim.clone(), claim.clone()];
    changed[0].utxo_digest = changed[0].utxo_digest.plus(&changed[0].utxo_digest);
    changed[1].total_value += 1;
    changed[2].tail[0] = TxId([7; 32]);
    changed[3].whole.0[0] ^= 1;
    let reasons = [
        "UTXO digest",
        "total value",
        "not final here",
        "finalized set",
    ];
    for (c, reason) in changed.iter().zip(reasons) {
        let why = sim.engines[1].attests(c).unwrap_err();
        assert!(why.contains(reason), "{reason}: {why}");
    }
    // n3, far behind, cannot check it.
    let why = sim.engines[3].attests(&claim).unwrap_err();
    assert!(why.contains("we are at"), "{why}");
    // One finalization fewer in the tail, the cut one later: the same state.
    let mut shorter = claim.clone();
    shorter.tail.remove(0);
    assert_eq!(sim.engines[1].attests(&shorter), Ok(()));
}

#[test]
fn a_snapshot_that_does_not_add_up_is_refused_and_another_peer_serves() {
    let (mut sim, _) = away(9);
    // n0 serves a checkpoint whose first unspent output was changed.
    let Some(Record::Utxos(u)) = sim.persisted[0].get_mut(1) else {
        panic!("a checkpoint's outputs second");
    };
    u[0].1.value += 1;
    let liar = sim.id(0);
    sim.cut.clear();
    // n3 hears of n0 first.
    let n3 = sim.id(3);
    let fx = sim.engines[0].on_peer_connected(n3);
    sim.effects(0, fx);
    sim.deliver_where(|f, t, _| (f, t) == (0, 3) || (f, t) == (3, 0));
    assert_eq!(syncs(&sim.engines[3], "refused"), 1, "the changed snapshot");
    assert_eq!(sim.installed[3], 0);
    assert!(sim.engines[3].claims.shunned.contains_key(&liar));
    sim.heal();
    assert_eq!(sim.installed[3], 1, "from another peer");
    assert_eq!(syncs(&sim.engines[3], "ok"), 1);
    sim.assert_agreement(0..4);
}

#[test]
fn an_offer_without_enough_attestations_is_refused() {
    let (mut sim, _) = away(13);
    sim.cut.clear();
    let mut offer = sim.engines[0].claims.certified.clone().unwrap();
    offer.votes.truncate(1);
    let mut fx = Vec::new();
    let (from, now) = (sim.id(0), sim.now);
    let far = inventory::Inventory {
        count: 1_000,
        buckets: Vec::new(),
    };
    sim.engines[3].maybe_sync(from, &far, now, &mut fx);
    sim.engines[3].on_snapshot_offer(from, offer.clone(), now, &mut fx);
    assert_eq!(syncs(&sim.engines[3], "refused"), 1);
    // A forged attestation does not count either.
    let mut forged = offer;
    let mut v = forged.votes[0].clone();
    v.voter = sim.id(1);
    forged.votes.push(v);
    let from = sim.id(2);
    sim.engines[3].maybe_sync(from, &far, now, &mut fx);
    sim.engines[3].on_snapshot_offer(from, forged, now, &mut fx);
    assert_eq!(syncs(&sim.engines[3], "refused"), 2);
    assert_eq!(sim.engines[3].finalized_count(), 4);
}

/// Six payments at once each round, a tail of four: the claim's tail begins
/// mid-round, where two nodes applied the round in different orders. The
/// attester finds the cut where its set is the claimant's.
#[test]
fn a_claim_whose_tail_begins_where_orders_differ_is_attested() {
    let mut differed = 0;
    for seed in 0..8 {
        let mut sim = Sim::new(4, |_| Bugs::default(), seed).windowed(W);
        let mut chains = Chains::start(&mut sim);
        let mut coin = 4;
        for _ in 0..3 {
            for c in 0..4 {
                chains.memo += 1;
                let next = step(&sim, &chains.tips[c], &chains.owners[c], chains.memo);
                sim.submit(c, next.clone()).unwrap();
                chains.tips[c] = next;
            }
            for at in 0..2 {
                let fresh = sim.payment(coin, 900 + coin as u64);
                sim.submit(at, fresh).unwrap();
                coin += 1;
            }
            sim.run();
        }
        sim.compact(0);
        let claim = sim.engines[0].claims.pending.clone().unwrap().0;
        assert_eq!(claim.tail.len(), W / 4);
        let last = |i: usize| -> Vec<TxId> {
            let f = sim.engines[i].finalized();
            f[f.len() - 6..].iter().map(|(t, _)| *t).collect()
        };
        differed += usize::from(last(0) != last(1));
        for i in 1..4 {
            assert_eq!(sim.engines[i].attests(&claim), Ok(()), "seed {seed}, n{i}");
        }
    }
    assert!(differed > 0, "no seed applied a round in two orders");
}

/// A node that finalized a transaction the snapshot lacks (final after the
/// snapshot's cut) applies it again when it installs: its input stays
/// spent, and a twin spending it draws no approval from that node.
#[test]
fn what_we_finalized_that_the_snapshot_lacks_is_applied_again() {
    let (mut sim, _) = away(17);
    // T is final on n0-n2 after their last checkpoints, and n3 gets its
    // certificate through the cut.
    let t = sim.payment(9, 9);
    let twin = sim.payment(9, 10);
    sim.submit(0, t.clone()).unwrap();
    sim.run();
    let cert = sim.engines[0].certificate(&t.id()).unwrap().clone();
    let (n0, now) = (sim.id(0), sim.now);
    let fx = sim.engines[3].on_message(n0, LedgerMessage::Certificate(cert.into()), now);
    sim.effects(3, fx);
    assert!(sim.engines[3].is_final(&t.id()));
    let Some(Record::Checkpoint(h)) = sim.persisted[0].first() else {
        panic!("n0 holds a checkpoint")
    };
    assert!(
        h.seq < sim.engines[0].finalized_count() as u64,
        "T after it"
    );
    sim.cut.clear();
    let n3 = sim.id(3);
    let fx = sim.engines[0].on_peer_connected(n3);
    sim.effects(0, fx);
    sim.deliver_where(|f, t, _| (f, t) == (0, 3) || (f, t) == (3, 0));
    assert_eq!(sim.installed[3], 1);
    assert!(sim.engines[3].is_final(&t.id()), "applied again");
    let spent = t.inputs[0].prev;
    assert_eq!(sim.engines[3].ledger().spent_by(&spent), Some(t.id()));
    let fx = sim.engines[3].on_message(n0, LedgerMessage::Tx(twin), sim.now);
    let approves = fx
        .iter()
        .any(|e| matches!(e, Effect::Broadcast(LedgerMessage::Vote(v)) if v.approve));
    assert!(!approves, "n3 approved a twin of what it finalized");
    sim.heal();
    sim.assert_agreement(0..4);
}

/// A snapshot whose window holds a transaction final only after its cut (a
/// real certificate, but not part of the state it claims) is refused.
#[test]
fn a_window_with_a_transaction_from_after_the_cut_is_refused() {
    let (mut sim, _) = away(19);
    let t = sim.payment(9, 9);
    sim.submit(0, t.clone()).unwrap();
    sim.run();
    let cert = sim.engines[0].certificate(&t.id()).unwrap().clone();
    let image = &mut sim.persisted[0];
    let first = image
        .iter()
        .position(|r| matches!(r, Record::Recent(_)))
        .unwrap();
    let Record::Recent(kept) = &image[first] else {
        unreachable!()
    };
    let forged = Recent {
        cert: cert.into(),
        ..(**kept).clone()
    };
    // (Mid-window: the oldest beyond n3's window would be forgotten.)
    image.insert(first + W / 2, Record::Recent(Box::new(forged)));
    if let Record::Checkpoint(h) = &mut image[0] {
        h.recent += 1;
    }
    sim.cut.clear();
    let n3 = sim.id(3);
    let fx = sim.engines[0].on_peer_connected(n3);
    sim.effects(0, fx);
    sim.deliver_where(|f, t, _| (f, t) == (0, 3) || (f, t) == (3, 0));
    assert_eq!(syncs(&sim.engines[3], "refused"), 1);
    assert_eq!(sim.installed[3], 0);
    sim.heal();
    assert_eq!(sim.installed[3], 1, "from another peer");
    sim.assert_agreement(0..4);
}

/// A checkpoint cut into parts: every state record once, in order, each
/// part within the budget, only the last marked so; no locks.
#[test]
fn a_checkpoint_is_served_in_parts_within_a_budget() {
    let (sim, _) = away(23);
    let image = sim.persisted[0].clone();
    let state: Vec<Record> = (image.iter())
        .filter(|r| {
            matches!(
                r,
                Record::Checkpoint(_) | Record::Utxos(_) | Record::Recent(_)
            )
        })
        .cloned()
        .collect();
    let budget = 3_000;
    let (mut got, mut index) = (Vec::new(), 0);
    loop {
        let Some(LedgerMessage::SnapshotPart {
            records, last, seq, ..
        }) = snapshot_part(image.clone(), 7, index, budget)
        else {
            panic!("part {index} missing");
        };
        assert_eq!(seq, 7);
        let size: usize = records
            .iter()
            .map(|r| postcard::to_stdvec(r).unwrap().len())
            .sum();
        assert!(
            size <= budget || records.len() == 1,
            "part {index}: {size} bytes"
        );
        got.extend(records);
        if last {
            break;
        }
        index += 1;
    }
    assert!(index >= 2, "{index}");
    assert_eq!(got, state);
    assert!(snapshot_part(image, 7, index + 1, budget).is_none());
}

/// n3 is away for 20 finalizations (a window and a quarter). When it meets
/// n0 again, catch-up brings the window's 16 before n0's offer arrives: the
/// offer (at n0's count) is then no more than a quarter window past n3's
/// count, yet n3 still lacks the 4 that n0 forgot. It must take the offer
/// (measured from where it was when found behind), or those stay missing.
#[test]
fn catch_up_that_comes_before_the_offer_leaves_no_holes() {
    let mut sim = Sim::new(4, |_| Bugs::default(), 13).windowed(W);
    let net = sim.genesis.network_id.clone();
    // One output fanned out to 24, then 20 payments that spend one each
    // (independent: each applies without the others).
    let owner = Keypair::from_seed([42; 32]);
    let value = sim.genesis.initial_outputs[0].value / 32;
    let out = |value| TxOut {
        owner: owner.id(),
        value,
    };
    let coin = OutPoint {
        txid: crate::ledger::tx::genesis_txid(&net),
        vout: 0,
    };
    let fan = Transaction::signed(&net, &[coin], vec![out(value); 24], 1, &[&sim.faucet]);
    sim.submit(0, fan.clone()).unwrap();
    sim.run();
    sim.cut.insert(3);
    for i in 0..(W + 4) as u32 {
        let spent = OutPoint {
            txid: fan.id(),
            vout: i,
        };
        let tx = Transaction::signed(
            &net,
            &[spent],
            vec![out(value / 2)],
            100 + i as u64,
            &[&owner],
        );
        sim.submit(i as usize % 3, tx).unwrap();
        sim.run();
    }
    for i in 0..3 {
        sim.compact(i);
    }
    tick(&mut sim);
    let (ahead, behind) = (
        sim.engines[0].finalized_count(),
        sim.engines[3].finalized_count(),
    );
    assert_eq!(ahead, behind + W + 4);
    sim.cut.clear();
    let (n0, n3) = (sim.id(0), sim.id(3));
    let fx = sim.engines[0].on_peer_connected(n3);
    sim.effects(0, fx);
    let fx = sim.engines[3].on_peer_connected(n0);
    sim.effects(3, fx);
    // Everything between n0 and n3 but the snapshot's offer and parts.
    let snapshot = |m: &LedgerMessage| {
        matches!(
            m,
            LedgerMessage::SnapshotOffer(_)
                | LedgerMessage::GetSnapshotPart { .. }
                | LedgerMessage::SnapshotPart { .. }
        )
    };
    sim.deliver_where(|f, t, m| matches!((f, t), (0, 3) | (3, 0)) && !snapshot(m));
    assert_eq!(
        sim.engines[3].finalized_count(),
        behind + W,
        "the window caught up"
    );
    assert!(
        sim.queue.iter().any(|(_, _, m)| snapshot(m)),
        "no offer made"
    );
    sim.heal();
    assert_eq!(syncs(&sim.engines[3], "refused"), 0);
    assert_eq!(sim.installed[3], 1, "n3 installed no snapshot");
    assert_eq!(sim.engines[3].finalized_count(), ahead);
    assert_eq!(
        sim.engines[3].finalized_digest(),
        sim.engines[0].finalized_digest()
    );
    sim.assert_agreement(0..4);
}
