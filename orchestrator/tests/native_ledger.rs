//! The ledger on real `testnet-node` processes under the load generator: load
//! with double spends, and a node SIGKILLed and restarted mid-run. Observed only
//! through HTTP.

mod support {
    // The node's own native-process harness, shared rather than copied.
    #[path = "../../../node/tests/support/native.rs"]
    pub mod native;
    pub mod node_bin;
}

use std::collections::HashSet;
use std::time::{Duration, Instant};

use support::native::NativeNet;
use support::node_bin::node_bin;
use testnet::load::{generator, LoadConfig, LoadReport};
use testnet_node::api::FinalizedPage;
use testnet_node::genesis::Genesis;
use testnet_node::ledger::tx::TxId;
use testnet_node::Keypair;

/// These tests saturate a 2-core machine; run them one at a time.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Each node's view of the payments that did not finalize, for the failure message.
async fn explain(net: &NativeNet, report: &LoadReport) -> String {
    let mut out = String::new();
    for txid in &report.not_finalized_examples {
        for i in 0..net.n {
            let v: Option<serde_json::Value> = net.get_json(i, &format!("/tx/{txid}")).await;
            out.push_str(&format!(
                "\n{txid} at n{i}: {}",
                v.map(|v| v.to_string()).unwrap_or("unknown".into())
            ));
        }
    }
    out
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_config(net: &NativeNet) -> LoadConfig {
    let d = net.dir.path();
    let genesis = Genesis::load(&d.join("genesis.json")).unwrap();
    let faucet = Keypair::load(&d.join("faucet.key")).unwrap();
    let endpoints = (0..net.n)
        .map(|i| format!("http://{}", net.http(i)))
        .collect();
    LoadConfig::new(endpoints, genesis, faucet)
}

async fn started(n: usize) -> NativeNet {
    let mut net = NativeNet::genesis(node_bin().to_str().expect("a UTF-8 path"), n);
    let start = Instant::now();
    net.spawn_all(|_| vec![]);
    net.wait_full_mesh(start, Duration::from_secs(10)).await;
    net
}

async fn finalized_ids(net: &NativeNet, i: usize) -> Vec<TxId> {
    let mut ids = Vec::new();
    loop {
        let page: FinalizedPage = net
            .get_json(i, &format!("/finalized?after={}", ids.len()))
            .await
            .unwrap();
        if page.entries.is_empty() {
            return ids;
        }
        ids.extend(page.entries.iter().map(|e| e.txid));
    }
}

/// 4 nodes under load with 5% double spends: every valid payment is final on every
/// node, ledgers are equal, value is conserved, no conflicting pair is final.
/// LOAD_TPS / LOAD_SECS override the rate and duration (defaults 200 tx/s, 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_under_load_with_double_spends() {
    let _heavy = HEAVY.lock().await;
    let mut net = started(4).await;
    let mut cfg = load_config(&net);
    cfg.tps = env_or("LOAD_TPS", 200.0);
    cfg.duration = Duration::from_secs(env_or("LOAD_SECS", 30));
    cfg.double_spend = 0.05;
    let report = generator::run(cfg, |line| eprintln!("{line}"))
        .await
        .unwrap();
    eprintln!("{report}");
    assert!(
        report.double_spend_pairs > 0,
        "the load must include double spends"
    );
    assert_eq!(
        report.not_finalized,
        0,
        "{report}{}",
        explain(&net, &report).await
    );
    assert_eq!(report.conflicting_pairs_finalized, 0, "{report}");
    assert!(report.digests_agree && report.value_conserved, "{report}");
    assert!(report.healthy(), "{report}");
    assert!(
        report.finalized_everywhere as f64 >= 0.8 * report.submitted as f64 * (1.0 - 0.05),
        "most payments must go through: {report}"
    );
    net.stop_all().await;
}

/// What a node serves about its ledger: finalized set (count and digest, and
/// the txids) and UTXO digest.
async fn ledger_view(net: &NativeNet, i: usize) -> (u64, String, String, HashSet<TxId>) {
    let s = net.status(i).await.expect("the node answers");
    let ids = finalized_ids(net, i).await.into_iter().collect();
    (
        s.finalized_transactions,
        s.finalized_digest,
        s.utxo_digest,
        ids,
    )
}

fn signal_all(net: &NativeNet, nodes: &[usize], sig: i32) {
    for &i in nodes {
        // SAFETY: a signal to a child process this test spawned.
        unsafe {
            libc::kill(net.pid(i) as i32, sig);
        }
    }
}

/// A node SIGKILLed mid-run and restarted from its data dir while its peers
/// are stopped (so nothing can refill it) serves exactly the finalized set and
/// UTXO digest it had before the kill: persistence alone. Then, with its peers
/// back, it catches up, and at the end all ledgers agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_restart_mid_run_loses_nothing() {
    let _heavy = HEAVY.lock().await;
    let mut net = started(4).await;
    let mut cfg = load_config(&net);
    cfg.tps = 100.0;
    cfg.duration = Duration::from_secs(14);
    cfg.double_spend = 0.05;
    let load = tokio::spawn(generator::run(cfg, |line| eprintln!("{line}")));

    tokio::time::sleep(Duration::from_secs(4)).await;
    // Peers stopped: n3 can learn nothing more. Wait until it is still.
    let peers = [0, 1, 2];
    signal_all(&net, &peers, libc::SIGSTOP);
    let mut before = ledger_view(&net, 3).await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = ledger_view(&net, 3).await;
        if now == before {
            break;
        }
        before = now;
    }
    assert!(before.0 > 0, "n3 finalized nothing before the kill");
    // SAFETY: a signal to a child process this test spawned.
    unsafe {
        libc::kill(net.pid(3) as i32, libc::SIGKILL);
    }
    net.wait_exit(3, Duration::from_secs(5))
        .await
        .expect("n3 died");
    eprintln!("n3 SIGKILLed with {} finalized transactions", before.0);
    let mut cmd = net.command(3, &[]);
    net.children[3] = Some(cmd.spawn().unwrap());
    let restarted = Instant::now();
    while net.status(3).await.is_none() {
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "n3 did not come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = ledger_view(&net, 3).await;
    signal_all(&net, &peers, libc::SIGCONT);
    assert_eq!(after.0, before.0, "finalized count across kill -9");
    assert_eq!(after.1, before.1, "finalized-set digest across kill -9");
    assert_eq!(after.2, before.2, "UTXO digest across kill -9");
    assert!(after.3 == before.3, "the same finalized transactions");

    let report = load.await.unwrap().unwrap();
    eprintln!("{report}");
    assert_eq!(
        report.not_finalized,
        0,
        "{report}{}",
        explain(&net, &report).await
    );
    assert!(report.digests_agree && report.value_conserved, "{report}");
    assert!(report.healthy(), "{report}");
    let s = net.status(3).await.unwrap();
    eprintln!(
        "n3 back for {:?}: {} finalized, digest {}",
        restarted.elapsed(),
        s.finalized_transactions,
        &s.utxo_digest[..16]
    );
    net.stop_all().await;
}

/// Finality votes `node` has sent (approve and reject).
async fn votes_sent(net: &NativeNet, node: usize) -> f64 {
    let text = net.metrics(node).await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("testnet_votes_total{") && l.contains("direction=\"sent\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A node whose disk fills (a real EFBIG from the kernel: its file size limit
/// is 64 KiB) says so on `/health` (503) and `/status`, and votes no more;
/// the other three keep finalizing every payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_store_fails_reports_unhealthy_and_stops_voting() {
    use std::os::unix::process::CommandExt;
    let _heavy = HEAVY.lock().await;
    let mut net = NativeNet::genesis(node_bin().to_str().expect("a UTF-8 path"), 4);
    let start = Instant::now();
    for i in 0..3 {
        net.children[i] = Some(net.command(i, &[]).spawn().unwrap());
    }
    let mut n3 = net.command(3, &[]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        n3.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 64 * 1024,
                rlim_max: 64 * 1024,
            };
            match libc::setrlimit(libc::RLIMIT_FSIZE, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    net.children[3] = Some(n3.spawn().unwrap());
    net.wait_full_mesh(start, Duration::from_secs(10)).await;
    // The load talks to n0..n2 only: n3 cannot finalize once its store is gone.
    let mut cfg = load_config(&net);
    cfg.endpoints.truncate(3);
    cfg.tps = 50.0;
    cfg.duration = Duration::from_secs(15);
    let load = tokio::spawn(generator::run(cfg, |line| eprintln!("{line}")));
    let http = reqwest::Client::new();
    let url = format!("http://{}/health", net.http(3));
    let deadline = Instant::now() + Duration::from_secs(25);
    let (code, body) = loop {
        let res = http.get(&url).send().await.unwrap();
        let code = res.status().as_u16();
        let body = res.text().await.unwrap();
        if code != 200 || Instant::now() > deadline {
            break (code, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        code,
        503,
        "n3 never reported its store failing: {body}{}",
        net.logs()
    );
    assert!(
        body.contains("the store failed, the node stopped voting")
            && body.contains("File too large"),
        "{body}"
    );
    let status = net.status(3).await.unwrap();
    let why = status.store_error.unwrap_or_default();
    assert!(
        why.contains("cannot write to") && why.contains("File too large"),
        "{why}"
    );
    let (sent, finalized) = (votes_sent(&net, 3).await, net.status(0).await.unwrap());
    let report = load.await.unwrap().unwrap();
    eprintln!("{report}");
    assert_eq!(
        votes_sent(&net, 3).await,
        sent,
        "n3 voted after its store failed"
    );
    let after = net.status(0).await.unwrap();
    assert!(
        after.finalized_transactions > finalized.finalized_transactions,
        "the other three kept finalizing: {} then {}",
        finalized.finalized_transactions,
        after.finalized_transactions
    );
    assert_eq!(report.not_finalized, 0, "{report}");
    net.stop_all().await;
}
