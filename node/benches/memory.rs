//! The engine's memory against its history: `cargo bench -p testnet-node
//! --bench memory` feeds `MEMORY_BENCH_TXS` (default 1,000,000) finalized
//! payments to an engine through `Engine::replay` (the path a restart takes;
//! it checks no signature, so certificates carry dummy ones), once with a
//! finality window of `MEMORY_BENCH_WINDOW` (default 20,000) and once without
//! (the baseline, in the same run), each in a child process of its own, and
//! prints each one's RSS every tenth of the way, the ratio, the growth per
//! payment over the second half, and the replay rate. Payments are 16
//! chains from the genesis outputs: each spends its chain's last output whole
//! into one new one, as the load generator does. A third child replays a
//! validator's log (each payment's `Lock` record, with real signatures,
//! before its finalization) with the window: its replay time against the
//! first's is what the locks cost a restart.

mod support;

use std::process::Command;
use std::time::Instant;

use support::{env, rss_mib, Payments};

/// Replays `txs` payments into an engine keeping `window` (with `locks`: as
/// a validator wrote them); prints `step txs rss_mib replay_secs` lines.
fn child(txs: usize, window: usize, locks: bool) {
    let mut payments = Payments::new();
    let mut engine = payments.engine(window, locks);
    println!("step 0 {:.1} 0", rss_mib());
    let mut replaying = std::time::Duration::ZERO;
    let (chunk, report_every) = (10_000, (txs / 10).max(1));
    while payments.made() < txs {
        let before = payments.made();
        let records = payments.next(chunk.min(txs - before), locks);
        let start = Instant::now();
        engine.replay(records, 0).expect("the history replays");
        replaying += start.elapsed();
        let done = payments.made();
        if done / report_every != before / report_every || done == txs {
            println!(
                "step {done} {:.1} {:.3}",
                rss_mib(),
                replaying.as_secs_f64()
            );
        }
    }
    assert_eq!(engine.finalized_count(), txs, "every payment applied");
}

/// Runs a child; its (txs, MiB, secs) lines.
fn measure(txs: usize, window: usize, locks: bool) -> Vec<(usize, f64, f64)> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "child",
            &txs.to_string(),
            &window.to_string(),
            &locks.to_string(),
        ])
        .output()
        .expect("the bench runs itself");
    assert!(
        out.status.success(),
        "child (window {window}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figures: Vec<(usize, f64, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.strip_prefix("step ")?.split(' ');
            Some((
                f.next()?.parse().ok()?,
                f.next()?.parse().ok()?,
                f.next()?.parse().ok()?,
            ))
        })
        .collect();
    // Fail closed: a child that printed no figure (or no RSS) measured nothing.
    assert!(
        figures.len() >= 2 && figures.iter().all(|f| f.1 > 0.0),
        "child (window {window}) printed no figures: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    figures
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if args.get(1).map(String::as_str) == Some("child") {
        child(
            args[2].parse().unwrap(),
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
        );
        return;
    }
    let txs = env("MEMORY_BENCH_TXS", 1_000_000);
    let window = env("MEMORY_BENCH_WINDOW", 20_000);
    println!("{txs} finalized payments replayed into an engine; window {window} vs none");
    let bounded = measure(txs, window, false);
    let all = measure(txs, 0, false);
    let validator = measure(txs, window, true);
    println!(
        "{:>10} | {:>14} | {:>14} | {:>6}",
        "finalized", "RSS window MiB", "RSS none MiB", "ratio"
    );
    for ((n, w, _), (_, a, _)) in bounded.iter().zip(&all) {
        println!(
            "{n:>10} | {w:>14.1} | {a:>14.1} | {:>6.3}",
            w / a.max(0.001)
        );
    }
    let rate = |v: &[(usize, f64, f64)]| {
        v.last()
            .map_or(0.0, |(n, _, s)| s * 1e6 / (*n).max(1) as f64)
    };
    // Over the second half: a window fills first, then stays.
    let per = |v: &[(usize, f64, f64)]| match (v.get(v.len() / 2), v.last()) {
        (Some((m, a, _)), Some((n, b, _))) if n > m => (b - a) * 1024.0 * 1024.0 / (n - m) as f64,
        _ => 0.0,
    };
    println!(
        "growth per payment over the second half: window {:.0} B, none {:.0} B; replay {:.1} µs \
         per payment with a window, {:.1} without",
        per(&bounded),
        per(&all),
        rate(&bounded),
        rate(&all)
    );
    println!(
        "a validator's log (a Lock before each finalization): replay {:.1} µs per payment, \
         {:.2}x the finalizations alone; RSS at the end {:.1} MiB",
        rate(&validator),
        rate(&validator) / rate(&bounded).max(0.001),
        validator.last().map_or(0.0, |v| v.1)
    );
}
