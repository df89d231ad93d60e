//! Checkpoints: a checkpoint and the log after it replay to the state the
//! whole log does, nodes restarted from them keep agreeing, and one that
//! does not add up is refused.

use super::window::history_with;
use super::*;
use inventory::Inventory;

const W: usize = 16;

/// What a node keeps of history: the ledger, the finalized set with its
/// members, the window, the safety alarms.
fn kept(e: &Engine) -> String {
    let l = e.ledger();
    let nothing = Inventory {
        count: 0,
        buckets: vec![TxId([0; 32]); inventory::BUCKETS],
    };
    let members = e.finalized_set.differing(&nothing, usize::MAX);
    format!(
        "utxo {} {} {} {} spent {}\nset {} {:?} {:?}\nmembers {members:?}\nwindow {:?}\nconflicts {:?}",
        l.digest().to_hex(),
        l.len(),
        l.total_value(),
        l.fees(),
        l.spent_len(),
        e.finalized_count(),
        e.finalized_digest(),
        e.finalized_set.inventory(),
        e.finalized(),
        e.conflicts()
    )
}

/// What `/tx` says of each finalization of the window (a replay of the
/// whole log knows less of them than the node did: no first-seen time, no
/// rejections).
fn finals(e: &Engine) -> Vec<Option<TxReport>> {
    e.finalized().iter().map(|(t, _)| e.report(t)).collect()
}

/// The first line where two states differ.
fn same(a: &str, b: &str, what: &str) {
    if let Some((x, y)) = a.lines().zip(b.lines()).find(|(x, y)| x != y) {
        panic!("{what}:\n{x}\n{y}");
    }
    assert_eq!(a.lines().count(), b.lines().count(), "{what}");
}

/// The locks, and the pending transactions we approved.
fn locks(e: &Engine) -> String {
    let mut locks: Vec<_> = e.locks.iter().map(|(o, t)| (o.txid, o.vout, *t)).collect();
    locks.sort();
    let mut pending: Vec<_> = e
        .txs
        .iter()
        .filter(|(_, x)| x.state == TxState::Pending && x.my_vote == Some(true))
        .map(|(t, _)| *t)
        .collect();
    pending.sort();
    format!("locks {locks:?}\npending {pending:?}")
}

#[test]
fn a_checkpoint_and_its_tail_replay_to_the_state_of_the_whole_log() {
    // A window of 4 keeps 4 rejections: the locks of older ones are only
    // in the checkpoint's `Locks`.
    let mut sim = Sim::new(4, |_| Bugs::default(), 21).windowed(4);
    history_with(&mut sim, 30, |sim, s| {
        if s % 7 == 3 {
            for i in 0..4 {
                sim.compact(i);
            }
        }
    });
    let finalized = sim.engines[0].finalized_count();
    assert!(finalized > 4 * W, "{finalized}");
    let forgotten_locks = sim.engines[0]
        .locks
        .values()
        .filter(|t| !sim.engines[0].txs.contains_key(t))
        .count();
    assert!(
        forgotten_locks > 0,
        "no lock of a forgotten rejection: no test"
    );
    for i in 0..4 {
        let (tail, full) = (&sim.persisted[i], &sim.full[i]);
        assert!(matches!(tail[0], Record::Checkpoint(_)), "n{i} compacted");
        assert!(
            tail.len() < full.len() / 2,
            "{} of {}",
            tail.len(),
            full.len()
        );
        let mut whole = sim.fresh_engine(i);
        whole.replay(full.clone(), sim.now).unwrap();
        let mut compacted = sim.fresh_engine(i);
        compacted.replay(tail.clone(), sim.now).unwrap();
        same(&kept(&compacted), &kept(&whole), &format!("n{i}"));
        same(&locks(&compacted), &locks(&whole), &format!("n{i} locks"));
        assert_eq!(compacted.mempool_len(), whole.mempool_len(), "n{i}");
        // And what the node had live.
        let live = &sim.engines[i];
        same(&kept(&compacted), &kept(live), &format!("n{i} live"));
        same(
            &locks(&compacted),
            &locks(live),
            &format!("n{i} live locks"),
        );
        // A checkpoint of the restored state is the same checkpoint.
        let again = compacted.checkpoint_image();
        let mut twice = sim.fresh_engine(i);
        twice.replay(again, sim.now).unwrap();
        same(&kept(&twice), &kept(&compacted), &format!("n{i} twice"));
        // With no tail, what `/tx` says of each is what the node said live.
        let mut now = sim.fresh_engine(i);
        now.replay(live.checkpoint_image(), sim.now).unwrap();
        assert_eq!(finals(&now), finals(live), "n{i} live");
        same(&locks(&now), &locks(live), &format!("n{i} now"));
    }
}

/// Nodes compacted and restarted from their checkpoints (and tails) at
/// different points, under load with twins, end with the others' ledger,
/// set and count.
#[test]
fn nodes_restarted_from_checkpoints_keep_agreeing() {
    let mut sim = Sim::new(4, |_| Bugs::default(), 23).windowed(8);
    let mut restarts = 0;
    history_with(&mut sim, 40, |sim, s| {
        let i = s % 4;
        if s % 3 == 0 {
            sim.compact(i);
        }
        if s % 5 == 4 {
            sim.restart(i);
            restarts += 1;
            sim.heal();
        }
    });
    sim.heal();
    assert!(restarts >= 8);
    sim.assert_agreement(0..4);
    let count = sim.engines[0].finalized_count();
    assert!(count > 4 * 8, "{count}");
    for i in 1..4 {
        let (a, b) = (&sim.engines[0], &sim.engines[i]);
        assert_eq!(b.finalized_count(), count, "n{i}");
        assert_eq!(b.finalized_digest(), a.finalized_digest(), "n{i}");
    }
}

#[test]
fn a_checkpoint_that_does_not_add_up_is_refused() {
    let mut sim = Sim::new(4, |_| Bugs::default(), 25).windowed(W);
    history_with(&mut sim, 12, |_, _| {});
    let image = sim.engines[0].checkpoint_image();
    let replay = |records: Vec<Record>| {
        let mut e = sim.fresh_engine(0);
        e.replay(records, 0).map(|_| e).map_err(|e| e.to_string())
    };
    assert!(replay(image.clone()).is_ok());
    let refused = |records: Vec<Record>, why: &str| {
        let err = replay(records).err().unwrap_or_default();
        assert!(err.contains(why), "{why:?} in {err:?}");
    };
    let mut changed = image.clone();
    let Some(Record::Utxos(u)) = changed.iter_mut().find(|r| matches!(r, Record::Utxos(_))) else {
        panic!("no outputs")
    };
    u[0].1.value += 1;
    refused(changed, "unspent outputs with digest");
    refused(image[..image.len() - 1].to_vec(), "torn");
    let mut short = image.clone();
    let k = short
        .iter()
        .position(|r| matches!(r, Record::Recent(_)))
        .unwrap();
    short.remove(k);
    refused(short.clone(), "more ledger changes than finalizations");
    // Without the ledger changes (an older checkpoint has none).
    let deltas = |r: &Record| matches!(r, Record::Deltas(_));
    let d = image.iter().filter(|r| deltas(r)).count() as u64;
    assert!(d > 0);
    short.retain(|r| !deltas(r));
    refused(short.clone(), "records, its end says");
    if let Some(Record::End { records }) = short.last_mut() {
        *records -= 1 + d;
    }
    refused(short, "finalizations in its window");
    let mut older = image.clone();
    older.retain(|r| !deltas(r));
    if let Some(Record::End { records }) = older.last_mut() {
        *records -= d;
    }
    let e = replay(older).expect("a checkpoint without ledger changes restores");
    assert!(e.finals.values().all(|f| f.delta.is_none()));
    let mut fewer = image.clone();
    if let Some(Record::Deltas(x)) = fewer.iter_mut().find(|r| deltas(r)) {
        x.pop();
    }
    refused(fewer, "ledger changes for");
    let mut other = image.clone();
    if let Record::Checkpoint(h) = &mut other[0] {
        h.network_id = "elsewhere".into();
    }
    refused(other, "network");
    let mut digests = image.clone();
    if let Record::Checkpoint(h) = &mut digests[0] {
        h.buckets[3].0[0] ^= 1;
    }
    refused(digests, "finalized digests disagree");
    refused([image.clone(), image.clone()].concat(), "in the middle");
    refused(image[1..].to_vec(), "outside a checkpoint");
    let mut huge = image.clone();
    let Some(Record::Utxos(u)) = huge.iter_mut().find(|r| matches!(r, Record::Utxos(_))) else {
        panic!("no outputs")
    };
    u[0].1.value = u64::MAX;
    refused(huge, "overflow");
    let mut later = image.clone();
    if let Record::Checkpoint(h) = &mut later[0] {
        h.version += 1;
    }
    refused(later, "layout");
    // A node run without a window cannot take up a checkpoint that forgot.
    sim.window = 0;
    let err = sim
        .fresh_engine(0)
        .replay(image, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("run the node with --finality-window"), "{err}");
}
