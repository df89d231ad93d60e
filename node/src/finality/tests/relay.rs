//! Relay over sparse graphs: full nodes between validators, votes that cross a
//! healed link hops away from their voter, and the dedup that keeps each
//! message to one crossing per link and direction.

use super::*;

/// n0..n3 vote; n4 and n5 are full nodes at the far end of a line.
const LINE: [(usize, usize); 5] = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)];

#[test]
fn a_payment_from_the_far_end_of_a_line_is_final_on_every_node() {
    let mut sim = Sim::with_topology(4, 6, Some(&LINE), |_| Bugs::default(), 1);
    let txid = sim.submit(5, sim.payment(0, 1)).unwrap();
    sim.run();
    for i in 0..6 {
        assert!(sim.finalized(i, &txid), "n{i} did not finalize");
    }
    sim.assert_agreement(0..6);
    // Flooding with dedup: a message crosses each of the 5 links at most once
    // each way (a certificate may be formed on both sides of a link at once).
    let links = LINE.len();
    assert!(sim.delivered["tx"] <= 2 * links, "{:?}", sim.delivered);
    assert!(
        sim.delivered["vote"] <= 4 * 2 * links,
        "{:?}",
        sim.delivered
    );
    assert!(
        sim.delivered["certificate"] <= 2 * links,
        "{:?}",
        sim.delivered
    );
}

#[test]
fn without_relay_a_full_node_two_hops_from_the_validators_is_never_heard() {
    let mut sim = Sim::with_topology(4, 6, Some(&LINE), |_| Bugs::default(), 1);
    sim.relay = false;
    sim.engines = (0..6).map(|i| sim.fresh_engine(i)).collect();
    let txid = sim.submit(5, sim.payment(0, 1)).unwrap();
    sim.run();
    assert!(
        (0..6).all(|i| !sim.finalized(i, &txid)),
        "n4 does not pass the payment on, so no validator ever sees it"
    );
}

/// n0 - n4 - n1 - n2, with validator n3 down (no links): a quorum needs n0,
/// n1 and n2. A payment at n0 while the n4-n1 link is cut leaves n0's vote at
/// n4, a full node; after the heal only n4 can pass it on, since n0's own link
/// never went down.
#[test]
fn votes_cross_a_healed_link_hops_away_from_their_voter() {
    let edges = [(0, 4), (4, 1), (1, 2)];
    let mut sim = Sim::with_topology(4, 5, Some(&edges), |_| Bugs::default(), 2);
    sim.cut = [1, 2].into();
    let txid = sim.submit(0, sim.payment(0, 1)).unwrap();
    sim.run();
    assert!(!sim.finalized(0, &txid));
    assert_eq!(sim.engines[4].report(&txid).unwrap().approvals, 1);
    sim.cut.clear();
    for (a, b) in [(4, 1), (1, 4)] {
        let peer = sim.id(b);
        let fx = sim.engines[a].on_peer_connected(peer);
        sim.effects(a, fx);
    }
    sim.run();
    for i in [0, 1, 2, 4] {
        assert!(sim.finalized(i, &txid), "n{i} did not finalize");
    }
}

/// A ring of 8 with the validators side by side: the node opposite them is
/// cut off during payments, then catches up from its neighbours, which are
/// full nodes.
#[test]
fn catch_up_works_across_hops() {
    let ring: Vec<(usize, usize)> = (0..8).map(|i| (i, (i + 1) % 8)).collect();
    for passive in [false, true] {
        let bugs = |i| Bugs {
            passive_catchup: passive && i == 5,
            ..Bugs::default()
        };
        let mut sim = Sim::with_topology(4, 8, Some(&ring), bugs, 3);
        sim.cut = [5].into();
        let ids: Vec<TxId> = (0..3)
            .map(|c| sim.submit(c % 4, sim.payment(c, c as u64)).unwrap())
            .collect();
        sim.run();
        assert!(ids
            .iter()
            .all(|t| sim.finalized(4, t) && !sim.finalized(5, t)));
        sim.heal();
        let caught_up = ids.iter().all(|t| sim.finalized(5, t));
        assert_eq!(caught_up, !passive, "passive catch-up: {passive}");
        if !passive {
            sim.assert_agreement(0..8);
        }
    }
}

/// Twins A and B split the four validators two and two: both are rejected.
/// Full node n4, linked to n0 only, had both pending when its link went down;
/// on reconnect n0 passes on the rejections, or the twins would stay pending
/// there for ever (and the mempool never empty).
#[test]
fn a_peer_that_was_away_hears_the_rejections_on_reconnect() {
    let mut edges = vec![(0, 4)];
    for a in 0..4 {
        edges.extend((a + 1..4).map(|b| (a, b)));
    }
    let mut sim = Sim::with_topology(4, 5, Some(&edges), |_| Bugs::default(), 4);
    let (a, b) = (sim.payment(0, 1), sim.payment(0, 2));
    sim.submit(0, a.clone()).unwrap();
    sim.submit(2, b.clone()).unwrap();
    // n4 hears both twins from n0, then its link goes down.
    sim.deliver_where(|_, to, m| to == 4 && matches!(m, LedgerMessage::Tx(_)));
    sim.deliver_where(|_, to, m| to == 0 && matches!(m, LedgerMessage::Tx(_)));
    sim.deliver_where(|from, to, m| from == 0 && to == 4 && matches!(m, LedgerMessage::Tx(_)));
    sim.cut = [4].into();
    // n1 approves A first, n3 approves B first: two and two.
    sim.deliver_where(|from, to, m| from == 0 && to == 1 && matches!(m, LedgerMessage::Tx(_)));
    sim.deliver_where(|from, to, m| from == 2 && to == 3 && matches!(m, LedgerMessage::Tx(_)));
    sim.run();
    for t in [a.id(), b.id()] {
        for i in 0..4 {
            assert_eq!(sim.engines[i].report(&t).unwrap().state, TxState::Rejected);
        }
        assert_eq!(sim.engines[4].report(&t).unwrap().state, TxState::Pending);
    }
    sim.cut.clear();
    let n4 = sim.id(4);
    let fx = sim.engines[0].on_peer_connected(n4);
    sim.effects(0, fx);
    sim.run();
    for t in [a.id(), b.id()] {
        assert_eq!(sim.engines[4].report(&t).unwrap().state, TxState::Rejected);
    }
    assert_eq!(sim.engines[4].mempool_len(), 0);
}
