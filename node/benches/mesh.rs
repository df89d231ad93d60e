//! Full-mesh time and idle memory of real `testnet-node` processes on 127.0.0.1.
//!
//! `cargo bench -p testnet-node --bench mesh` prints, for 8 and 32 nodes:
//! - the time from spawn until every node serves `/health` (the baseline: process
//!   start-up) and until every node reports a full mesh, and their ratio;
//! - each node's RSS right after the mesh formed and after `MESH_BENCH_IDLE_SECS`
//!   (default 60) idle, and the growth ratio.

#[path = "../tests/support/native.rs"]
mod native;

use std::time::{Duration, Instant};

use native::NativeNet;

const BIN: &str = env!("CARGO_BIN_EXE_testnet-node");

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn wait_healthy(net: &NativeNet, since: Instant) -> Duration {
    for i in 0..net.n {
        while net
            .get_json::<serde_json::Value>(i, "/health")
            .await
            .is_none()
        {
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "n{i} never served /health"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    since.elapsed()
}

async fn run(n: usize, rounds: usize, idle: Duration) {
    let (mut up, mut mesh) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut net = NativeNet::genesis(BIN, n);
        let start = Instant::now();
        net.spawn_all(|_| vec![]);
        up.push(wait_healthy(&net, start).await.as_secs_f64() * 1000.0);
        mesh.push(
            net.wait_full_mesh(start, Duration::from_secs(60))
                .await
                .as_secs_f64()
                * 1000.0,
        );
        if round + 1 == rounds {
            let rss0: Vec<f64> = (0..n)
                .filter_map(|i| net.rss_kib(i))
                .map(|k| k as f64 / 1024.0)
                .collect();
            eprintln!("{n} nodes: idling {idle:?} for the memory figure...");
            tokio::time::sleep(idle).await;
            for i in 0..n {
                let s = net.status(i).await.expect("node alive after idling");
                assert_eq!(s.peers, n - 1, "n{i} lost peers while idle");
            }
            let rss1: Vec<f64> = (0..n)
                .filter_map(|i| net.rss_kib(i))
                .map(|k| k as f64 / 1024.0)
                .collect();
            let max1 = rss1.iter().cloned().fold(0.0, f64::max);
            println!(
                "{n:>3} nodes  RSS MiB after mesh: median {:.1} | after {}s idle: median {:.1}, max {:.1} | growth x{:.2} | target < 20 MiB: {}",
                median(rss0.clone()),
                idle.as_secs(),
                median(rss1.clone()),
                max1,
                median(rss1) / median(rss0),
                if max1 < 20.0 { "met" } else { "MISSED" }
            );
        }
        net.stop_all().await;
    }
    let (u, m) = (median(up), median(mesh));
    println!(
        "{n:>3} nodes  over {rounds} rounds: all serving /health {u:.0} ms (baseline), full mesh {m:.0} ms after spawn, mesh/baseline x{:.2}",
        m / u
    );
}

fn main() {
    let idle = Duration::from_secs(
        std::env::var("MESH_BENCH_IDLE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run(8, 5, idle).await;
        run(32, 3, idle).await;
    });
}
