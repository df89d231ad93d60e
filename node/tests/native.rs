//! Real `testnet-node` binaries on 127.0.0.1, observed through HTTP only: full mesh,
//! 20 simultaneous starts, the simulated handshake race, the HTTP API, the CLI's
//! errors, and shutdown on SIGTERM.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::metric_sum;
use support::native::NativeNet;
use testnet_node::api::{ApiError, Health};

const BIN: &str = env!("CARGO_BIN_EXE_testnet-node");
const MESH_DEADLINE: Duration = Duration::from_secs(10);

/// Checks, through HTTP only, that the 8 processes form a clean full mesh.
async fn assert_clean_mesh(net: &NativeNet) {
    let n = net.n;
    let mut statuses = Vec::new();
    for i in 0..n {
        let s = net.status(i).await.expect("status");
        assert_eq!(s.peers, n - 1, "n{i}: {s:?}");
        assert_eq!(s.expected_peers, n - 1);
        assert_eq!(s.handshake_failures, 0, "n{i}: {s:?}; logs: {}", net.logs());
        assert_eq!(s.handshakes_completed, s.handshake_attempts, "n{i}: {s:?}");
        assert_eq!(s.duplicate_connections_resolved, 0, "n{i}: {s:?}");
        statuses.push(s);
    }
    for i in 0..n {
        let peers = net.peers(i).await.expect("peers");
        let mut ids: Vec<_> = peers.iter().map(|p| p.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n - 1, "n{i} holds two connections to one peer");
        for p in &peers {
            let j = statuses
                .iter()
                .position(|s| s.id == p.id)
                .expect("peer is a validator");
            assert_eq!(p.name, format!("n{j}"));
            let back = net.peers(j).await.unwrap();
            let me = back
                .iter()
                .find(|q| q.id == statuses[i].id)
                .expect("link seen from both ends");
            assert_ne!(me.direction, p.direction, "n{i}<->n{j}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_reach_a_clean_full_mesh_and_stop_on_sigterm() {
    let mut net = NativeNet::genesis(BIN, 8);
    let start = Instant::now();
    net.spawn_all(|_| vec![]);
    let took = net.wait_full_mesh(start, MESH_DEADLINE).await;
    eprintln!("8 native nodes: full mesh {took:?} after spawn");
    assert_clean_mesh(&net).await;
    let stopped = net.stop_all().await;
    eprintln!("8 native nodes stopped {stopped:?} after SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_started_together_twenty_times() {
    let mut times = Vec::new();
    for round in 0..20 {
        let mut net = NativeNet::genesis(BIN, 8);
        let start = Instant::now();
        net.spawn_all(|_| vec![]);
        times.push(net.wait_full_mesh(start, MESH_DEADLINE).await);
        assert_clean_mesh(&net).await;
        net.stop_all().await;
        eprintln!("round {round}: full mesh in {:?}", times[round]);
    }
    times.sort();
    eprintln!(
        "20 rounds of 8 native nodes: median {:?}, worst {:?}",
        times[10], times[19]
    );
}

/// The seed-002 bug on half the nodes shows up in the metrics a checker reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_race_bug_shows_in_the_metrics() {
    let mut net = NativeNet::genesis(BIN, 8);
    net.spawn_all(|i| {
        if i % 2 == 0 {
            vec!["--simulate-bug", "handshake-race"]
        } else {
            vec![]
        }
    });
    let start = Instant::now();
    let (failures, dup) = loop {
        let mut failures = 0.0;
        let mut dup = 0.0;
        for i in 0..8 {
            if let Some(text) = net.metrics(i).await {
                failures += metric_sum(&text, "testnet_handshake_failures_total", "");
                dup += metric_sum(
                    &text,
                    "testnet_handshake_failures_total",
                    "reason=\"duplicate_connection\"",
                );
            }
        }
        if dup > 0.0 {
            break (failures, dup);
        }
        assert!(
            start.elapsed() < MESH_DEADLINE,
            "the simulated race produced no failure; logs: {}",
            net.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let s = net.status(0).await.unwrap();
    assert_eq!(s.simulated_bugs, vec!["handshake-race".to_owned()]);
    // Every process is serving before it is asked to stop.
    for i in 0..8 {
        support::wait_for("every node serving", MESH_DEADLINE, || async {
            net.status(i).await.map(|_| ())
        })
        .await;
    }
    eprintln!("handshake race on 4 of 8 nodes: {failures} handshake failures ({dup} refused as duplicates) after {:?}", start.elapsed());
    net.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_serves_the_contract() {
    let mut net = NativeNet::genesis(BIN, 2);
    let start = Instant::now();
    net.spawn_all(|_| vec![]);
    net.wait_full_mesh(start, MESH_DEADLINE).await;
    let health: Health = net.get_json(0, "/health").await.unwrap();
    assert_eq!(health.status, "ok");

    // /status carries the fields scripts rely on, as raw JSON.
    let raw: serde_json::Value = net.get_json(0, "/status").await.unwrap();
    for field in [
        "id",
        "name",
        "network_id",
        "peers",
        "expected_peers",
        "handshake_attempts",
        "handshake_failures",
    ] {
        assert!(raw.get(field).is_some(), "/status lacks {field}: {raw}");
    }
    assert_eq!(raw["name"], "n0");
    let peers: serde_json::Value = net.get_json(0, "/peers").await.unwrap();
    for field in ["id", "name", "address", "direction", "rtt_ms"] {
        assert!(
            peers[0].get(field).is_some(),
            "/peers lacks {field}: {peers}"
        );
    }

    let client = reqwest::Client::new();
    let res = client
        .get(format!("http://{}/metrics", net.http(0)))
        .send()
        .await
        .unwrap();
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = res.text().await.unwrap();
    for name in [
        "testnet_handshake_attempts_total",
        "testnet_handshakes_completed_total",
        "testnet_handshake_failures_total",
        "testnet_peers",
        "testnet_duplicate_connections_resolved_total",
        "testnet_messages_total",
        "testnet_bytes_total",
        "testnet_ping_rtt_seconds_bucket",
    ] {
        assert!(text.contains(&format!("\n{name}")), "/metrics lacks {name}");
    }
    assert_eq!(metric_sum(&text, "testnet_peers", ""), 1.0);

    let res = client
        .get(format!("http://{}/nope", net.http(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let err: ApiError = res.json().await.unwrap();
    assert!(err.error.contains("/nope"), "{err:?}");
    net.stop_all().await;
}

fn run_cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn cli_explains_bad_input_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();

    let (code, text) = run_cli(&[
        "genesis",
        "--validators",
        "3",
        "--ips",
        "10.0.0.2,10.0.0.3",
        "--out",
        d,
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains(
            "--ips lists 2 addresses but there are 3 nodes (--validators 3 + --full-nodes 0)"
        ),
        "{text}"
    );

    let (code, text) = run_cli(&[
        "genesis",
        "--validators",
        "2",
        "--ips",
        "10.0.0.2,10.0.0.3",
        "--out",
        d,
        "--seed",
        "x",
    ]);
    assert_eq!(code, 0, "{text}");
    let genesis = std::fs::read_to_string(dir.path().join("genesis.json")).unwrap();
    assert!(genesis.contains("10.0.0.3:7000"), "{genesis}");

    let missing = format!("{d}/missing.json");
    let key = format!("{d}/n0.key");
    let (code, text) = run_cli(&[
        "run",
        "--genesis",
        &missing,
        "--key",
        &key,
        "--data-dir",
        d,
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 2);
    assert!(
        text.contains("cannot read genesis file") && text.contains("missing.json"),
        "{text}"
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let genesis_path = format!("{d}/genesis.json");
    let (code, text) = run_cli(&[
        "run",
        "--genesis",
        &genesis_path,
        "--key",
        &key,
        "--data-dir",
        d,
        "--listen",
        &busy_addr,
        "--http",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 2);
    assert!(text.contains("choose another --listen"), "{text}");

    std::fs::write(&key, "{}").unwrap();
    let (code, text) = run_cli(&[
        "run",
        "--genesis",
        &genesis_path,
        "--key",
        &key,
        "--data-dir",
        d,
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 2);
    assert!(
        text.contains("key file") && text.contains("n0.key"),
        "{text}"
    );

    let (code, text) = run_cli(&["run", "--help"]);
    assert_eq!(code, 0);
    assert!(
        text.contains("handshake-race"),
        "--help must name the seeded bug: {text}"
    );
}
