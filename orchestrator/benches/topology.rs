//! Topologies at scale, on the real Docker engine. `cargo bench -p testnet
//! --bench topology` prints, each against a baseline measured in the same run:
//! - `up` to ready (every node holding its neighbours) for 64, 128 and 256
//!   nodes on a random graph of degree 4 with 7 validators, against bare
//!   `docker run -d` of the same image and count, 16 at a time (the same
//!   parallelism `up` uses), without and with the two published ports `up`
//!   asks for, and the ratios;
//! - idle CPU (share of one core) and RSS per node (agent and node processes,
//!   read from the host's /proc) over `TOPOLOGY_BENCH_IDLE_SECS` (default 20);
//! - finality p50/p99 of `testnet load --tps 20 --duration 10s` on 32 nodes
//!   against the graph's diameter (star, random degree 4, ring, line).
//!
//! - our node direct against through holder containers (the path any image
//!   takes) at `TOPOLOGY_BENCH_HOLDER_NODES` (default 64): `up` time, idle CPU
//!   and RSS of the node processes, and the host memory each node costs
//!   (`MemAvailable` before and after `up`, so the second container's shim
//!   counts), with the ratios.
//!
//! `TOPOLOGY_BENCH_NODES=64,128` picks the sizes (empty: none);
//! `TOPOLOGY_BENCH_LATENCY=0` skips the finality part. Where the kernel's
//! neighbour table is too small it is raised for the run and restored after.

use std::process::Command;
use std::time::{Duration, Instant};

use testnet::config::TestnetFile;

#[path = "support/floor.rs"]
mod floor;
use floor::{bare_parallel_run, testnet, NeighbourTable, BIN};
fn file(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// (user+system ticks, RSS kB) of every `testnet-node` process on the host.
fn node_processes() -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = entry.path();
        let Ok(stat) = std::fs::read_to_string(p.join("stat")) else {
            continue;
        };
        if !stat.contains("(testnet-node)") {
            continue;
        }
        let after = stat.rsplit(") ").next().unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let rss = std::fs::read_to_string(p.join("status"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        // utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
        out.push((field(11) + field(12), rss));
    }
    out
}

/// Idle CPU (share of a core) and RSS (MiB) per node, over `window`.
fn idle(nodes: usize, window: Duration) -> (f64, f64) {
    let ticks_per_sec = 100.0; // USER_HZ
    let before: u64 = node_processes().iter().map(|p| p.0).sum();
    std::thread::sleep(window);
    let after = node_processes();
    let used = after
        .iter()
        .map(|p| p.0)
        .sum::<u64>()
        .saturating_sub(before) as f64;
    let rss: u64 = after.iter().map(|p| p.1).sum();
    (
        used / ticks_per_sec / window.as_secs_f64() / nodes as f64,
        rss as f64 / 1024.0 / nodes as f64,
    )
}

fn scale(image: &str, dir: &std::path::Path, n: usize, window: Duration) {
    let name = format!("bench-{n}");
    let text = format!("nodes: {n}\nvalidators: 7\ntopology: {{ random: {{ degree: 4 }} }}\n");
    let path = file(dir, &name, &text);
    let edges = TestnetFile::parse(&text, "bench")
        .unwrap()
        .graph()
        .unwrap()
        .edges() as u64;
    let need = 2 * edges + 2 * n as u64 + 64;
    // With twice the need as headroom (the bare baseline's containers too).
    let _table = NeighbourTable::raise_to((need * 2).next_power_of_two().max(1024));
    let bare = bare_parallel_run(image, n, false);
    let bare_ports = bare_parallel_run(image, n, true);
    let start = Instant::now();
    testnet(&["up", &path, "--name", &name, "--image", image]);
    let up = start.elapsed();
    let (cpu, rss) = idle(n, window);
    let start = Instant::now();
    testnet(&["down", "--name", &name]);
    let down = start.elapsed();
    println!(
        "{n:>4} nodes  up {:>6.1}s  bare docker run {:>6.1}s (ratio {:.2}), with the same 2 \
         published ports {:>6.1}s (ratio {:.2})  |  idle per node: CPU {:.2}% of a core, RSS \
         {:.1} MiB  |  down {:.1}s",
        up.as_secs_f64(),
        bare.as_secs_f64(),
        up.as_secs_f64() / bare.as_secs_f64(),
        bare_ports.as_secs_f64(),
        up.as_secs_f64() / bare_ports.as_secs_f64(),
        100.0 * cpu,
        rss,
        down.as_secs_f64()
    );
}

fn mem_available_mib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Our node direct, then through holders, at `n` nodes.
fn holder_cost(image: &str, dir: &std::path::Path, n: usize, window: Duration) {
    let text = format!("nodes: {n}\nvalidators: 7\ntopology: {{ random: {{ degree: 4 }} }}\n");
    let edges = TestnetFile::parse(&text, "bench")
        .unwrap()
        .graph()
        .unwrap()
        .edges() as u64;
    let _table = NeighbourTable::raise_to(
        ((2 * edges + 2 * n as u64 + 64) * 2)
            .next_power_of_two()
            .max(1024),
    );
    let mut seen = Vec::new();
    for holder in [false, true] {
        let name = format!("bench-holder-{holder}");
        let path = file(dir, &name, &format!("{text}holder: {holder}\n"));
        let before = mem_available_mib();
        let start = Instant::now();
        testnet(&["up", &path, "--name", &name, "--image", image]);
        let up = start.elapsed().as_secs_f64();
        let (cpu, rss) = idle(n, window);
        let host = (before - mem_available_mib()) / n as f64;
        println!(
            "{n:>4} nodes {:<8} up {up:>6.1}s  |  idle per node: CPU {:.2}% of a core, node \
             processes' RSS {rss:.1} MiB, host memory {host:.1} MiB",
            if holder { "holder" } else { "direct" },
            100.0 * cpu
        );
        seen.push((up, rss, host));
        let start = Instant::now();
        testnet(&["down", "--name", &name]);
        println!(
            "{n:>4} nodes {:<8} down {:.1}s",
            if holder { "holder" } else { "direct" },
            start.elapsed().as_secs_f64()
        );
    }
    let (d, h) = (seen[0], seen[1]);
    println!(
        "{n:>4} nodes holder/direct: up {:.2}, RSS {:.2}, host memory {:.2}",
        h.0 / d.0,
        h.1 / d.1,
        h.2 / d.2
    );
}

fn latency(image: &str, dir: &std::path::Path, topology: &str) {
    let name = "bench-latency";
    let text = format!("nodes: 32\nvalidators: 7\ntopology: {topology}\n");
    let path = file(dir, name, &text);
    let graph = TestnetFile::parse(&text, "bench").unwrap().graph().unwrap();
    testnet(&["up", &path, "--name", name, "--image", image]);
    let load = Command::new(BIN)
        .args([
            "load",
            "--name",
            name,
            "--tps",
            "20",
            "--duration",
            "10s",
            "--json",
        ])
        .output()
        .unwrap();
    testnet(&["down", "--name", name]);
    let r: serde_json::Value = serde_json::from_slice(&load.stdout).unwrap_or_default();
    println!(
        "32 nodes {topology:<26} diameter {:>2}  finality p50 {:>6.0} ms  p99 {:>6.0} ms  \
         ({} of {} final everywhere)",
        graph.diameter().unwrap_or(0),
        r["latency_p50_ms"].as_f64().unwrap_or(f64::NAN),
        r["latency_p99_ms"].as_f64().unwrap_or(f64::NAN),
        r["finalized_everywhere"],
        r["accepted"]
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("TOPOLOGY_BENCH_NODES")
        .unwrap_or_else(|_| "64,128,256".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let window = Duration::from_secs(
        std::env::var("TOPOLOGY_BENCH_IDLE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let image = String::from_utf8(testnet(&["image", "build"]).stdout)
        .unwrap()
        .trim()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    println!("image {image}; idle window {window:?}");
    for n in sizes {
        scale(&image, dir.path(), n, window);
    }
    let holder_sizes = std::env::var("TOPOLOGY_BENCH_HOLDER_NODES").unwrap_or_else(|_| "64".into());
    for n in holder_sizes
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
    {
        holder_cost(&image, dir.path(), n, window);
    }
    if std::env::var("TOPOLOGY_BENCH_LATENCY").as_deref() == Ok("0") {
        return;
    }
    for topology in ["star", "{ random: { degree: 4 } }", "ring", "line"] {
        latency(&image, dir.path(), topology);
    }
}
