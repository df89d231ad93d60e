//! The ledger on real `testnet-node` processes under the load generator: load
//! with double spends, and a node SIGKILLed and restarted mid-run. Observed only
//! through HTTP.

mod support {
    pub mod native;
}

use std::collections::HashSet;
use std::time::{Duration, Instant};

use support::native::{node_bin, NativeNet};
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
    let mut net = NativeNet::genesis(node_bin(), n);
    let start = Instant::now();
    net.spawn_all();
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

/// A node SIGKILLed mid-run and restarted from its data dir catches up: nothing it
/// had finalized is lost, and at the end all ledgers agree.
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
    let before: Vec<TxId> = finalized_ids(&net, 3).await;
    assert!(!before.is_empty(), "n3 finalized nothing before the kill");
    unsafe {
        libc::kill(net.pid(3) as i32, libc::SIGKILL);
    }
    net.wait_exit(3, Duration::from_secs(5))
        .await
        .expect("n3 died");
    eprintln!("n3 SIGKILLed with {} finalized transactions", before.len());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut cmd = net.command(3);
    net.children[3] = Some(cmd.spawn().unwrap());
    let restarted = Instant::now();

    let report = load.await.unwrap().unwrap();
    eprintln!("{report}");
    let after: HashSet<TxId> = finalized_ids(&net, 3).await.into_iter().collect();
    let lost = before.iter().filter(|t| !after.contains(t)).count();
    assert_eq!(
        lost, 0,
        "n3 lost {lost} finalized transactions across kill -9"
    );
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
