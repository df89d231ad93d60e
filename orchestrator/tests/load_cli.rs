//! `testnet load` end to end: the real binary against 4 in-process nodes on
//! 127.0.0.1, and its errors.

use std::process::Command;

use testnet_node::genesis::{Addressing, Genesis};
use testnet_node::{Node, NodeSetup};
use tokio::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_testnet");

/// Starts `n` validators in this process; returns them with the directory holding
/// genesis.json and faucet.key.
async fn nodes(n: usize) -> (Vec<Node>, tempfile::TempDir) {
    nodes_with(n, |_| {}).await
}

/// [`nodes`], each set up through `tweak` first.
async fn nodes_with(n: usize, tweak: impl Fn(&mut NodeSetup)) -> (Vec<Node>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut p2p = Vec::new();
    for _ in 0..n {
        p2p.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let host = Addressing::Host {
        ip: "127.0.0.1".parse().unwrap(),
        first_port: 1,
    };
    let mut generated = Genesis::generate(n, &host, None).unwrap();
    for (v, l) in generated.genesis.validators.iter_mut().zip(&p2p) {
        v.p2p_address = l.local_addr().unwrap();
    }
    generated.write(dir.path()).unwrap();
    let mut nodes = Vec::new();
    for (i, l) in p2p.into_iter().enumerate() {
        let mut setup = NodeSetup::new(
            generated.genesis.clone(),
            generated.validator_keys[i].clone(),
            dir.path().join(format!("data-n{i}")),
            l.local_addr().unwrap(),
        );
        tweak(&mut setup);
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        nodes.push(Node::start(setup, l, http).await.unwrap());
    }
    (nodes, dir)
}

fn load_cmd(nodes: &[Node], dir: &tempfile::TempDir) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("load");
    for n in nodes {
        cmd.args(["--endpoint", &format!("http://{}", n.http_addr())]);
    }
    cmd.arg("--genesis")
        .arg(dir.path().join("genesis.json"))
        .arg("--faucet-key")
        .arg(dir.path().join("faucet.key"));
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_against_healthy_nodes_reports_and_exits_0() {
    let (nodes, dir) = nodes(4).await;
    let mut cmd = load_cmd(&nodes, &dir);
    cmd.args([
        "--tps",
        "40",
        "--duration",
        "3s",
        "--double-spend",
        "0.1",
        "--json",
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["not_finalized"], 0, "{report}");
    assert_eq!(report["conflicting_pairs_finalized"], 0);
    assert_eq!(report["digests_agree"], true);
    assert!(
        report["finalized_everywhere"].as_u64().unwrap() > 50,
        "{report}"
    );
    assert_eq!(report["nodes"].as_array().unwrap().len(), 4);
    for n in nodes {
        n.shutdown().await;
    }
}

/// Nodes that refuse every payment (their minimum fee is beyond any value):
/// a finding about the network, exit 1, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_against_nodes_that_refuse_every_payment_exits_1_with_the_reason() {
    let (nodes, dir) = nodes_with(4, |s| s.limits.min_fee = u64::MAX / 4).await;
    let mut cmd = load_cmd(&nodes, &dir);
    cmd.args(["--tps", "20", "--duration", "1s"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("refused a valid payment") && stderr.contains("fee_too_low"),
        "{stderr}"
    );
    for n in nodes {
        n.shutdown().await;
    }
}

#[test]
fn load_errors_name_the_cause_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let g = Genesis::generate(
        1,
        &Addressing::Host {
            ip: "127.0.0.1".parse().unwrap(),
            first_port: 7000,
        },
        None,
    )
    .unwrap();
    g.write(dir.path()).unwrap();
    // A port nobody listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(BIN)
            .arg("load")
            .args(extra)
            .arg("--genesis")
            .arg(dir.path().join("genesis.json"))
            .arg("--faucet-key")
            .arg(dir.path().join("faucet.key"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run(&["--endpoint", &format!("http://{free}"), "--duration", "1s"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&free.to_string()) && err.contains("running node"),
        "{err}"
    );
    let (code, err) = run(&["--endpoint", "http://127.0.0.1:1", "--double-spend", "2"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--double-spend"), "{err}");
    let out = Command::new(BIN)
        .args(["load", "--endpoint", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("--genesis"), "{err}");
    let (code, err) = run(&["--endpoint", "http://127.0.0.1:1", "--double-spend", "2"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--double-spend"), "{err}");
    let out = Command::new(BIN)
        .args([
            "load",
            "--endpoint",
            "http://127.0.0.1:1",
            "--faucet-key",
            "x",
            "--genesis",
        ])
        .arg(dir.path().join("missing.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.json"));
}

/// SIGTERM stops the load: it reports what there is, marked interrupted, and
/// exits 143 at once (not after `--duration`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_load_with_a_report_marked_interrupted() {
    use std::io::{BufRead, BufReader};
    let (nodes, dir) = nodes(4).await;
    let mut cmd = load_cmd(&nodes, &dir);
    cmd.args(["--tps", "20", "--duration", "120s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the load starts within a minute");
        if line.starts_with("load:") {
            break std::time::Instant::now();
        }
    };
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    // SAFETY: kill(2) on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(143), "{stdout}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "stopped early, not after --duration: {:?}",
        started.elapsed()
    );
    assert!(stdout.contains("(INTERRUPTED)"), "{stdout}");
    drop(nodes);
}
