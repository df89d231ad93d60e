//! Finality throughput on the real Docker engine. `cargo bench -p testnet
//! --bench throughput` brings up 4 validators (full mesh) and offers payments
//! with `testnet load` (on the same cores, as a user would run it) at each
//! rate of `THROUGHPUT_BENCH_RATES` (default `200,1000,2000,3000,4000`) for
//! `THROUGHPUT_BENCH_SECS` (default 15) each. For every rate it prints what
//! was offered, accepted and final on every node per second, the ratio of
//! final to offered (1.00: the network kept up), latency p50/p99 from
//! submission to finality, and how busy the machine was (the share of all
//! cores, from /proc/stat). The lowest rate is the unloaded baseline the
//! others' latencies are compared with, measured in the same run.
//!
//! `THROUGHPUT_BENCH_NAME` names the testnet (default `bench-tput`); it is
//! removed at the end, also on a failure.

use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_testnet");

fn testnet(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the testnet binary runs")
}

fn must(args: &[&str]) -> String {
    let out = testnet(args);
    assert!(
        out.status.success(),
        "testnet {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (busy, total) jiffies of all cores.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Removes the testnet when dropped (a failed assertion included).
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = testnet(&["down", "--name", &self.0]);
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks; there is nothing to list
    }
    let name = std::env::var("THROUGHPUT_BENCH_NAME").unwrap_or_else(|_| "bench-tput".into());
    let rates: Vec<f64> = std::env::var("THROUGHPUT_BENCH_RATES")
        .unwrap_or_else(|_| "200,1000,2000,3000,4000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let secs: u64 = std::env::var("THROUGHPUT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let image = must(&["image", "build"]).trim().to_owned();
    let _down = Down(name.clone());
    must(&[
        "up",
        "--name",
        &name,
        "--nodes",
        "4",
        "--image",
        &image,
        "--replace",
    ]);
    println!(
        "finality throughput, 4 validators in containers, load generator on the same cores, {secs} s per rate"
    );
    println!(
        "{:>8} {:>9} {:>9} {:>10} {:>6} {:>8} {:>8} {:>9} {:>8}",
        "offered",
        "accepted",
        "refused",
        "final/s",
        "ratio",
        "p50 ms",
        "p99 ms",
        "p99/base",
        "busy"
    );
    let mut base_p99 = None;
    for rate in rates {
        let (b0, t0) = cpu_jiffies();
        let duration = format!("{secs}s");
        let tps = rate.to_string();
        let out = testnet(&[
            "load",
            "--name",
            &name,
            "--tps",
            &tps,
            "--duration",
            &duration,
            "--settle",
            "30s",
            "--json",
        ]);
        let (b1, t1) = cpu_jiffies();
        let report: serde_json::Value = match serde_json::from_slice(&out.stdout) {
            Ok(r) => r,
            Err(e) => panic!(
                "testnet load at {rate}/s printed no report ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        };
        let f = |k: &str| report[k].as_f64().unwrap_or(f64::NAN);
        let refused: u64 = report["refused"]
            .as_object()
            .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
            .unwrap_or(0);
        let p99 = f("latency_p99_ms");
        let base = *base_p99.get_or_insert(p99);
        let busy = (b1 - b0) as f64 / (t1 - t0).max(1) as f64;
        println!(
            "{:>8.0} {:>9.0} {:>9} {:>10.0} {:>6.2} {:>8.1} {:>8.1} {:>9.1} {:>7.0}%",
            rate,
            f("accepted") / secs as f64,
            refused,
            f("throughput_tps"),
            f("throughput_tps") / rate,
            f("latency_p50_ms"),
            p99,
            p99 / base,
            busy * 100.0
        );
        if report["not_finalized"].as_u64().unwrap_or(0) > 0 {
            println!(
                "         {} accepted payments were not final everywhere within 30 s",
                report["not_finalized"]
            );
        }
        std::thread::sleep(Duration::from_secs(2)); // let the last votes settle between rates
    }
}
