//! Finality throughput on the real Docker engine. `cargo bench -p testnet
//! --bench throughput` brings up 4 validators (full mesh) and offers payments
//! with `testnet load` (on the same cores, as a user would run it) at each
//! rate of `THROUGHPUT_BENCH_RATES` (default `500,1000,1500,2000,3000`) for
//! `THROUGHPUT_BENCH_SECS` (default 15) each. For every rate it prints what
//! was offered and final on every node per second, the ratio of final to
//! offered (1.00: the network kept up), latency p50/p99 from submission to
//! finality, the nodes' CPU per final payment (all four nodes' processes, read
//! from the host's /proc: steadier than throughput on a shared machine), the
//! shares of the machine taken by the nodes, the load generator, the storage
//! driver (fuse-overlayfs, where Docker uses it), Docker's port proxies and
//! the rest ("other": dockerd, the kernel's work not charged to a process),
//! and how busy the machine was.
//!
//! `THROUGHPUT_BENCH_BASELINE=testnet-node:TAG` measures that image too, in
//! the same run, rate by rate alternating with this checkout's, and prints
//! the ratios (this checkout over the baseline).
//! `THROUGHPUT_BENCH_BASELINE_BIN=/path/to/testnet` runs the baseline with
//! that orchestrator (another commit's build; with or without a baseline
//! image, which defaults to this checkout's): what the orchestrator does to
//! the nodes (their containers, the load) is measured that way.
//! `THROUGHPUT_BENCH_WARM_SECS` (default 0) offers the rate that long to
//! each new testnet before measuring: 25 s at 1000 tx/s fills the nodes'
//! finality window (20,000), so what is measured is the steady state, each
//! checkpoint a whole window.
//! `THROUGHPUT_BENCH_REPEAT`
//! repeats each measurement (default once) and keeps the median. The
//! testnets are removed at the end, also on a failure.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_testnet");

fn testnet(bin: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the testnet binary runs")
}

fn must(bin: &str, args: &[&str]) -> String {
    let out = testnet(bin, args);
    assert!(
        out.status.success(),
        "testnet {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// CPU ticks of the node processes (not their agents), of the storage
/// driver's (fuse-overlayfs) and of Docker's port proxies, from the host's /proc.
fn ticks() -> BTreeMap<&'static str, u64> {
    let mut by = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let args = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args = String::from_utf8_lossy(&args).replace('\0', " ");
        let role = if args.contains("testnet-node agent") {
            continue;
        } else if args.contains("testnet-node run") {
            "nodes"
        } else if args.starts_with("fuse-overlayfs") {
            "storage"
        } else if args.contains("docker-proxy") {
            "proxy"
        } else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // After the `)` that ends the command name: state, ppid, ... with
        // utime and stime 12th and 13th (`tpgid` may be -1: read by position).
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |i: usize| rest.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        let t = field(11) + field(12);
        *by.entry(role).or_insert(0) += t;
    }
    by
}

/// CPU seconds of this process's children that ended (`testnet load` among them).
fn children_cpu() -> f64 {
    // SAFETY: getrusage writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// (busy, total) jiffies of all cores.
fn machine() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = f.iter().sum();
    (
        total - f.get(3).unwrap_or(&0) - f.get(4).unwrap_or(&0),
        total,
    )
}

/// Removes the testnet when dropped (a failed assertion included).
struct Down(String, String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = testnet(&self.1, &["down", "--name", &self.0]);
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    final_tps: f64,
    p50: f64,
    p99: f64,
    node_ms_per_tx: f64,
    node_share: f64,
    storage_share: f64,
    proxy_share: f64,
    load_share: f64,
    busy: f64,
}

/// One load at `rate` on testnet `name` for `secs`.
fn measure(bin: &str, name: &str, rate: f64, secs: u64) -> Figures {
    let hz = 100.0; // USER_HZ on Linux
    let (t0, m0, c0) = (ticks(), machine(), children_cpu());
    let out = testnet(
        bin,
        &[
            "load",
            "--name",
            name,
            "--tps",
            &rate.to_string(),
            "--duration",
            &format!("{secs}s"),
            "--settle",
            "30s",
            "--json",
        ],
    );
    let (t1, m1, c1) = (ticks(), machine(), children_cpu());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "testnet load at {rate}/s printed no report ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let f = |k: &str| report[k].as_f64().unwrap_or(f64::NAN);
    let spent = |role| (t1.get(role).unwrap_or(&0) - t0.get(role).unwrap_or(&0)) as f64 / hz;
    let finalized = f("finalized_everywhere").max(1.0);
    let (busy, total) = (m1.0 - m0.0, (m1.1 - m0.1).max(1));
    if report["not_finalized"].as_u64().unwrap_or(0) > 0 {
        println!(
            "    ({} payments not final everywhere within 30 s)",
            report["not_finalized"]
        );
    }
    Figures {
        final_tps: f("throughput_tps"),
        p50: f("latency_p50_ms"),
        p99: f("latency_p99_ms"),
        node_ms_per_tx: spent("nodes") * 1000.0 / finalized,
        node_share: spent("nodes") / (total as f64 / hz),
        storage_share: spent("storage") / (total as f64 / hz),
        proxy_share: spent("proxy") / (total as f64 / hz),
        load_share: (c1 - c0) / (total as f64 / hz),
        busy: busy as f64 / total as f64,
    }
}

fn median(mut runs: Vec<Figures>) -> Figures {
    runs.sort_by(|a, b| a.node_ms_per_tx.total_cmp(&b.node_ms_per_tx));
    runs[runs.len() / 2]
}

fn row(label: &str, rate: f64, f: &Figures) {
    println!(
        "{label:>9} {rate:>8.0} {:>10.0} {:>6.2} {:>8.1} {:>8.1} {:>11.3} {:>6.0}% {:>7.0}% {:>7.0}% {:>6.0}% {:>6.0}% {:>6.0}%",
        f.final_tps,
        f.final_tps / rate,
        f.p50,
        f.p99,
        f.node_ms_per_tx,
        f.node_share * 100.0,
        f.load_share * 100.0,
        f.storage_share * 100.0,
        f.proxy_share * 100.0,
        (f.busy - f.node_share - f.load_share - f.storage_share - f.proxy_share) * 100.0,
        f.busy * 100.0
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks; there is nothing to list
    }
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.into());
    let rates: Vec<f64> = env("THROUGHPUT_BENCH_RATES", "500,1000,1500,2000,3000")
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let secs: u64 = env("THROUGHPUT_BENCH_SECS", "15").parse().unwrap_or(15);
    let warm: u64 = env("THROUGHPUT_BENCH_WARM_SECS", "0").parse().unwrap_or(0);
    let repeat: usize = env("THROUGHPUT_BENCH_REPEAT", "1")
        .parse()
        .unwrap_or(1)
        .max(1);
    let this = must(BIN, &["image", "build"]).trim().to_owned();
    let mut images = vec![("this", this.clone(), BIN.to_owned())];
    let base_image = std::env::var("THROUGHPUT_BENCH_BASELINE").ok();
    let base_bin = std::env::var("THROUGHPUT_BENCH_BASELINE_BIN").ok();
    if base_image.is_some() || base_bin.is_some() {
        let image = base_image.unwrap_or(this);
        images.insert(0, ("baseline", image, base_bin.unwrap_or(BIN.into())));
    }
    let names: Vec<String> = images
        .iter()
        .map(|(l, _, _)| format!("bench-tput-{l}"))
        .collect();
    let _down: Vec<Down> = names
        .iter()
        .zip(&images)
        .map(|(n, (_, _, bin))| Down(n.clone(), bin.clone()))
        .collect();
    println!("finality throughput: 4 validators in containers, the load generator on the same cores, {secs} s per load, median of {repeat}");
    println!(
        "{:>9} {:>8} {:>10} {:>6} {:>8} {:>8} {:>11} {:>7} {:>8} {:>8} {:>7} {:>7} {:>7}",
        "image",
        "offered",
        "final/s",
        "ratio",
        "p50 ms",
        "p99 ms",
        "node ms/tx",
        "nodes",
        "load",
        "storage",
        "proxy",
        "other",
        "busy"
    );
    for rate in rates {
        let mut got = Vec::new();
        for ((label, image, bin), name) in images.iter().zip(&names) {
            // One testnet at a time: the other's idle nodes would share the cores.
            must(
                bin,
                &[
                    "up",
                    "--name",
                    name,
                    "--nodes",
                    "4",
                    "--image",
                    image,
                    "--replace",
                ],
            );
            if warm > 0 {
                measure(bin, name, rate, warm);
            }
            let f = median(
                (0..repeat)
                    .map(|_| measure(bin, name, rate, secs))
                    .collect(),
            );
            must(bin, &["down", "--name", name]);
            row(label, rate, &f);
            got.push(f);
        }
        if let [base, this] = got[..] {
            println!(
                "{:>9} {:>8} {:>10.2} {:>6} {:>8.2} {:>8.2} {:>11.2}",
                "ratio",
                "",
                this.final_tps / base.final_tps,
                "",
                this.p50 / base.p50,
                this.p99 / base.p99,
                this.node_ms_per_tx / base.node_ms_per_tx
            );
        }
    }
}
