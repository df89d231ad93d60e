//! A restart against the history behind it: `cargo bench -p testnet-node
//! --bench restart` makes `RESTART_BENCH_TXS` (default 1,000,000) finalized
//! payments and writes two data dirs of the same history:
//! - the baseline, the whole log (`ledger.log`, finalizations only: the
//!   cheapest whole log there is) as a node without checkpoints keeps it;
//! - a checkpoint (window `RESTART_BENCH_WINDOW`, default 20,000) taken
//!   `RESTART_BENCH_TAIL` (default 5,000, a checkpoint interval) payments
//!   before the end, and the log after it as a validator writes it (each
//!   payment's `Lock`, with real signatures, before its finalization).
//!
//! It prints what taking the checkpoint costs (the image, under the engine's
//! lock; the write, off the replica's task). It then opens each as a node
//! starting does (`datadir::open`: read,
//! replay, take up pending locks) and prints the time, the files' sizes,
//! the ratio, and the RSS after each open.

mod support;

use std::path::Path;
use std::time::Instant;

use support::{env, rss_mib, Payments};
use testnet_node::datadir;
use testnet_node::finality::Record;
use testnet_node::store::Store;

fn size_mib(dir: &Path) -> f64 {
    let bytes: u64 = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let txs = env("RESTART_BENCH_TXS", 1_000_000);
    let window = env("RESTART_BENCH_WINDOW", 20_000);
    let tail = env("RESTART_BENCH_TAIL", 5_000).min(txs);
    let whole = tempfile::tempdir().unwrap();
    let checkpointed = tempfile::tempdir().unwrap();
    println!("{txs} finalized payments; window {window}, a tail of {tail} after the checkpoint");
    // The whole log, and the same history replayed up to the checkpoint.
    let mut payments = Payments::new();
    let mut engine = payments.engine(window, true);
    let (mut log, _, _) = Store::open(whole.path(), "ledger.log").unwrap();
    let made = Instant::now();
    while payments.made() < txs - tail {
        let records = payments.next(10_000.min(txs - tail - payments.made()), false);
        log.append(&records).unwrap();
        engine.replay(records, 0).expect("the history replays");
    }
    let seq = engine.finalized_count() as u64;
    let taking = Instant::now();
    let image = engine.checkpoint_image();
    let took = taking.elapsed();
    let writing = Instant::now();
    assert!(datadir::write_checkpoint(
        checkpointed.path(),
        seq,
        &image,
        None
    ));
    println!(
        "a checkpoint of {} records: taken in {:.1} ms (the replica waits), written in {:.1} ms (off its task)",
        image.len(),
        took.as_secs_f64() * 1e3,
        writing.elapsed().as_secs_f64() * 1e3
    );
    drop(image);
    let name = format!("ledger-{seq:020}.log");
    let (mut after, _, _) = Store::open(checkpointed.path(), &name).unwrap();
    while payments.made() < txs {
        let n = 1_000.min(txs - payments.made());
        let records = payments.next(n, true);
        after.append(&records).unwrap();
        let finals: Vec<Record> = records
            .into_iter()
            .filter(|r| matches!(r, Record::FinalizedAt { .. }))
            .collect();
        log.append(&finals).unwrap();
    }
    drop((engine, log, after));
    println!("made in {:.1} s", made.elapsed().as_secs_f64());
    let open = |dir: &Path| {
        let start = Instant::now();
        let (engine, _, opened) =
            datadir::open(dir, || payments.engine(window, true), 0).expect("the data dir opens");
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(engine.finalized_count(), txs, "every payment restored");
        println!(
            "  {:<28} {:>8.3} s  {:>8.1} MiB on disk  {:>9} records  RSS {:.1} MiB",
            opened
                .checkpoint
                .map_or("whole log".into(), |c| format!("checkpoint at {c}")),
            secs,
            size_mib(dir),
            opened.records,
            rss_mib()
        );
        (engine.finalized_digest(), engine.ledger().digest(), secs)
    };
    println!("restart (open the data dir, replay, take up locks):");
    let (set_a, utxo_a, slow) = open(whole.path());
    let (set_b, utxo_b, fast) = open(checkpointed.path());
    assert_eq!(
        (set_a, utxo_a),
        (set_b, utxo_b),
        "both restore the same state"
    );
    println!(
        "checkpoint + tail: {fast:.3} s against {slow:.3} s for the whole log ({:.3}x)",
        fast / slow.max(1e-9)
    );
}
