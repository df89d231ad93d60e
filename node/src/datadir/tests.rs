//! The data dir on real files: checkpoints written and rotated, restarts
//! from them, and each point a crash can leave the files at.

use super::*;
use crate::finality::quorum::Validators;
use crate::finality::{Bugs, Effect, EngineConfig};
use crate::genesis::{Addressing, Genesis};
use crate::identity::Keypair;
use crate::ledger::tx::{genesis_txid, OutPoint, Transaction, TxOut};
use crate::ledger::{Ledger, Limits};
use crate::metrics::FinalityMetrics;

/// One validator (its votes alone finalize), a window of 8, and a chain of
/// payments from faucet coin 0 to itself.
struct Solo {
    genesis: Genesis,
    key: Keypair,
    faucet: Keypair,
    tip: OutPoint,
    value: u64,
    dir: tempfile::TempDir,
}

impl Solo {
    fn new() -> Solo {
        Solo::new_on("datadir")
    }

    fn new_on(network: &str) -> Solo {
        let g = Genesis::generate_with_full_nodes(
            1,
            0,
            &Addressing::Host {
                ip: "127.0.0.1".parse().unwrap(),
                first_port: 7000,
            },
            Some(network),
        )
        .unwrap();
        let tip = OutPoint {
            txid: genesis_txid(&g.genesis.network_id),
            vout: 0,
        };
        Solo {
            value: g.genesis.initial_outputs[0].value,
            genesis: g.genesis,
            key: g.validator_keys[0].clone(),
            faucet: g.faucet_key,
            tip,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn fresh(&self) -> Engine {
        Solo::engine(&self.genesis, &self.key)
    }

    fn engine(genesis: &Genesis, key: &Keypair) -> Engine {
        Engine::new(
            EngineConfig {
                network_id: genesis.network_id.clone(),
                validators: Validators::from_genesis(genesis),
                key: Some(key.clone()),
                bugs: Bugs::default(),
                relay: false,
                window: 8,
            },
            Ledger::from_genesis(genesis, Limits::default()),
            FinalityMetrics::register(&prometheus::Registry::new()),
        )
    }

    /// What a checkpointer reads its checkpoints back into.
    fn verify(&self) -> Fresh {
        let (genesis, key) = (self.genesis.clone(), self.key.clone());
        Arc::new(move || Solo::engine(&genesis, &key))
    }

    fn open(&self) -> Result<(Engine, Store<Record>, Opened), DataDirError> {
        open(self.dir.path(), || self.fresh(), 0)
    }

    /// `n` payments, each a batch appended to `store`, a checkpoint taken
    /// after it when one is due (and waited for).
    async fn pay(&mut self, n: usize, e: &mut Engine, s: &mut Store<Record>, c: &mut Checkpointer) {
        for _ in 0..n {
            self.value -= 1_000_000;
            let out = TxOut {
                owner: self.faucet.id(),
                value: self.value,
            };
            let net = &self.genesis.network_id;
            let tx = Transaction::signed(net, &[self.tip], vec![out], 0, &[&self.faucet]);
            let (r, fx) = e.submit(tx, 1);
            self.tip = OutPoint {
                txid: r.unwrap(),
                vout: 0,
            };
            let records: Vec<Record> = fx
                .into_iter()
                .filter_map(|f| match f {
                    Effect::Persist(r) => Some(r),
                    _ => None,
                })
                .collect();
            assert_eq!(records.len(), 2, "a lock and a finalization");
            s.append(&records).unwrap();
            c.after_batch(s, e);
            c.finish().await;
        }
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// What a restart must bring back.
fn state(e: &Engine) -> String {
    format!(
        "{} {} {:?} {:?} {:?}",
        e.ledger().digest().to_hex(),
        e.ledger().fees(),
        e.finalized_digest(),
        e.finalized_page(0, 100),
        e.report(&e.finalized_page(e.finalized_count() - 1, 1).entries[0].0)
    )
}

#[tokio::test]
async fn a_restart_reads_the_newest_checkpoint_and_the_log_after_it() {
    let mut solo = Solo::new();
    let (mut e, mut s, opened) = solo.open().unwrap();
    assert_eq!(
        (opened.checkpoint, opened.records, opened.active),
        (None, 0, 0)
    );
    let mut c = Checkpointer::new(solo.dir.path(), 10, opened.active, solo.verify());
    solo.pay(45, &mut e, &mut s, &mut c).await;
    assert_eq!(
        solo.names(),
        [checkpoint_name(40), log_name(40)],
        "older checkpoints and logs deleted, ledger.log too"
    );
    let live = state(&e);
    drop((e, s));
    let (e, _, opened) = solo.open().unwrap();
    assert_eq!(state(&e), live);
    assert_eq!(
        (opened.checkpoint, opened.logs, opened.active),
        (Some(40), 1, 40)
    );
    assert!(opened.skipped.is_empty(), "{:?}", opened.skipped);
    // The checkpoint (header, outputs, 8 kept, their ledger changes, end)
    // and 5 payments of 2.
    assert_eq!(opened.records, 4 + 8 + 10);
}

#[tokio::test]
async fn every_point_a_crash_can_stop_at_reopens_to_the_state() {
    let mut solo = Solo::new();
    let (mut e, mut s, opened) = solo.open().unwrap();
    let mut c = Checkpointer::new(solo.dir.path(), 10, opened.active, solo.verify());
    solo.pay(45, &mut e, &mut s, &mut c).await;
    // A checkpoint whose write was cut short: its temporary file is left.
    std::fs::write(
        solo.dir.path().join(format!("{}.tmp", checkpoint_name(45))),
        b"half",
    )
    .unwrap();
    let (_, _, opened) = solo.open().unwrap();
    assert_eq!(opened.checkpoint, Some(40));
    assert!(
        !solo.names().iter().any(|n| n.ends_with(".tmp")),
        "{:?}",
        solo.names()
    );
    // The log rotated at 45, the checkpoint at 45 written torn (a disk that
    // lied about a sync), 3 more payments in the new log.
    s.rotate(solo.dir.path(), &log_name(45)).unwrap();
    let image = e.checkpoint_image();
    store::write_file(solo.dir.path(), &checkpoint_name(45), &image).unwrap();
    let path = solo.dir.path().join(checkpoint_name(45));
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let mut never = Checkpointer::new(solo.dir.path(), 0, 45, solo.verify());
    solo.pay(3, &mut e, &mut s, &mut never).await;
    let live = state(&e);
    drop((e, s));
    let (e, _, opened) = solo.open().unwrap();
    assert_eq!(state(&e), live, "the checkpoint before it and both logs");
    assert_eq!(
        (opened.checkpoint, opened.logs, opened.active),
        (Some(40), 2, 45)
    );
    assert!(opened.skipped[0].contains("torn"), "{:?}", opened.skipped);
    drop(e);
    // The log started with the checkpoint that does not restore, gone: the
    // records after it with it.
    let log45 = solo.dir.path().join(log_name(45));
    let tail = std::fs::read(&log45).unwrap();
    std::fs::remove_file(&log45).unwrap();
    let err = solo.open().err().expect("a gap").to_string();
    assert!(err.contains("does not restore"), "{err}");
    std::fs::write(&log45, &tail).unwrap();
    // A corrupt record in a log that is not the last (only the last can be
    // torn by a crash): refused, not skipped.
    let log40 = solo.dir.path().join(log_name(40));
    let good = std::fs::read(&log40).unwrap();
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0xff;
    std::fs::write(&log40, &bad).unwrap();
    let err = solo.open().err().expect("refused").to_string();
    assert!(err.contains("not the last"), "{err}");
    assert!(err.contains("restore the file from a backup"), "{err}");
    std::fs::write(&log40, &good).unwrap();
    // A log between two others missing: the count does not meet the next
    // (with no checkpoint that says so).
    let torn = solo.dir.path().join(checkpoint_name(45));
    let torn_bytes = std::fs::read(&torn).unwrap();
    std::fs::remove_file(&torn).unwrap();
    std::fs::rename(&log45, solo.dir.path().join(log_name(46))).unwrap();
    let err = solo.open().err().expect("a gap").to_string();
    assert!(
        err.contains("ends at 45: a log between them is missing"),
        "{err}"
    );
    std::fs::remove_file(solo.dir.path().join(log_name(46))).unwrap();
    std::fs::write(&log45, &tail).unwrap();
    std::fs::write(&torn, &torn_bytes).unwrap();
    // The log after the checkpoint that reads deleted: its records are gone.
    std::fs::remove_file(&log40).unwrap();
    let err = solo.open().err().expect("a gap").to_string();
    assert!(
        err.contains(&format!("{} is missing", log_name(40))),
        "{err}"
    );
    assert!(
        err.contains("may then approve a conflicting transaction"),
        "{err}"
    );
    // No checkpoint reads and the log from genesis is gone.
    std::fs::remove_file(solo.dir.path().join(checkpoint_name(40))).unwrap();
    let err = solo.open().err().expect("a gap").to_string();
    assert!(err.contains("oldest log starts after 45"), "{err}");
    assert!(err.contains("checkpoints that did not restore"), "{err}");
}

#[tokio::test]
async fn without_a_checkpoint_the_log_from_genesis_is_read() {
    let mut solo = Solo::new();
    let (mut e, mut s, opened) = solo.open().unwrap();
    let mut never = Checkpointer::new(solo.dir.path(), 0, opened.active, solo.verify());
    solo.pay(12, &mut e, &mut s, &mut never).await;
    assert_eq!(solo.names(), [GENESIS_LOG]);
    let live = state(&e);
    drop((e, s));
    let (e, _, opened) = solo.open().unwrap();
    assert_eq!(state(&e), live);
    assert_eq!(
        (opened.checkpoint, opened.records, opened.active),
        (None, 24, 0)
    );
}

/// A checkpoint that does not read back (here: into an engine of another
/// network) is removed, and the files before it are kept.
#[tokio::test]
async fn a_checkpoint_that_does_not_read_back_deletes_nothing() {
    let mut solo = Solo::new();
    let (mut e, mut s, opened) = solo.open().unwrap();
    let mut c = Checkpointer::new(solo.dir.path(), 10, opened.active, solo.verify());
    solo.pay(12, &mut e, &mut s, &mut c).await;
    let other = Solo::new_on("elsewhere");
    let mut c = Checkpointer::new(solo.dir.path(), 10, 10, other.verify());
    solo.pay(10, &mut e, &mut s, &mut c).await;
    assert_eq!(
        solo.names(),
        [checkpoint_name(10), log_name(10), log_name(20)],
        "the checkpoint at 20 removed, the one at 10 and its log kept"
    );
    assert_eq!(c.progress().report().failed, 1);
    let live = state(&e);
    drop((e, s));
    let (e, _, opened) = solo.open().unwrap();
    assert_eq!(state(&e), live);
    assert_eq!((opened.checkpoint, opened.logs), (Some(10), 2));
}

/// A snapshot installed starts its log, then writes its checkpoint: a crash
/// in between leaves an empty log past a gap and no checkpoint. Nothing was
/// written after it: it is removed, and the node opens where it was.
#[tokio::test]
async fn an_empty_last_log_without_its_checkpoint_is_removed() {
    let mut solo = Solo::new();
    let (mut e, mut s, opened) = solo.open().unwrap();
    let mut c = Checkpointer::new(solo.dir.path(), 10, opened.active, solo.verify());
    solo.pay(25, &mut e, &mut s, &mut c).await;
    let live = state(&e);
    drop((e, s));
    std::fs::write(solo.dir.path().join(log_name(900)), b"").unwrap();
    let (e, _, opened) = solo.open().unwrap();
    assert_eq!(state(&e), live);
    assert_eq!((opened.checkpoint, opened.active), (Some(20), 20));
    assert!(!solo.names().contains(&log_name(900)), "{:?}", solo.names());
    drop(e);
    // Not empty: records after a gap are not dropped, the gap is an error.
    std::fs::write(solo.dir.path().join(log_name(900)), b"x").unwrap();
    let err = solo.open().err().expect("a gap").to_string();
    assert!(err.contains("a log between them is missing"), "{err}");
}

#[tokio::test]
async fn a_phase_moves_the_checkpoints_and_keeps_them_every_apart() {
    let mut solo = Solo::new();
    let (mut e, mut s, opened) = solo.open().unwrap();
    let mut c = Checkpointer::new(solo.dir.path(), 10, opened.active, solo.verify()).with_phase(13);
    solo.pay(45, &mut e, &mut s, &mut c).await;
    // Due at 7 (3 early), then 17, 27, 37; the older ones deleted.
    assert_eq!(solo.names(), [checkpoint_name(37), log_name(37)]);
    drop((e, s));
    let (_, _, opened) = solo.open().unwrap();
    assert_eq!((opened.checkpoint, opened.active), (Some(37), 37));
}

/// A checkpoint is written on a thread of its own, at a lower priority than
/// the replica's, and what it returns comes back.
#[test]
fn a_checkpoint_is_written_on_a_thread_of_lower_priority() {
    // SAFETY: getpriority reads the calling thread's nice value.
    let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
    let (before, here) = (nice(), std::thread::current().id());
    let (name, niced, there) = in_background(|| {
        let me = std::thread::current();
        (me.name().map(String::from), nice(), me.id())
    });
    assert_eq!(name.as_deref(), Some("checkpoint"));
    // A process already run at a lower priority keeps it.
    assert_eq!(niced, BACKGROUND_NICE.max(before));
    assert_ne!(there, here);
    assert_eq!(nice(), before, "the caller's priority is untouched");
}
