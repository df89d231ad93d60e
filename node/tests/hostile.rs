//! Hostile peers against honest nodes speaking the real protocol, in process:
//! each attack leaves the honest mesh whole, and the attacker is dropped with a
//! counted reason. (Single bad inputs on a fresh connection are in
//! `bad_input.rs`; slow readers and silence in `mesh.rs`.)

mod support;

use std::time::{Duration, Instant};

use support::{init_logs, wait_for, wait_for_count, Cluster, RawPeer};
use tokio::net::TcpStream;

/// The resident set of this process (every node of the cluster is in it).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// How long `GET /status` takes on `addr`.
async fn status_latency(http: &reqwest::Client, addr: std::net::SocketAddr) -> Duration {
    let start = Instant::now();
    let res = http
        .get(format!("http://{addr}/status"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    res.bytes().await.unwrap();
    start.elapsed()
}

/// 1,000 idle TCP connections on a node's P2P port, all from one address: it
/// gives that source a few handshake slots (8, plus one per genesis node
/// sharing the address: 3 here, on 127.0.0.1) and refuses the rest at once
/// (`source_limit`), keeps its peers, answers HTTP quickly, and its memory
/// barely moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_take_nothing_from_the_peers() {
    init_logs();
    let cluster = Cluster::start(3, |_, _| {}).await;
    cluster.wait_for_peers(2, Duration::from_secs(10)).await;
    let n0 = cluster.node(0);
    let http = reqwest::Client::new();
    status_latency(&http, n0.http_addr()).await; // the client's first connection
    let before = rss_kib();
    let mut held = Vec::new();
    for _ in 0..1000 {
        match TcpStream::connect(n0.p2p_addr()).await {
            Ok(s) => held.push(s),
            Err(e) => panic!("connect {}: {e}", held.len()),
        }
    }
    let refused = wait_for_count(
        n0,
        "testnet_handshake_failures_total",
        "reason=\"source_limit\"",
        900.0,
        Duration::from_secs(10),
    )
    .await;
    let mut latencies = Vec::new();
    for _ in 0..10 {
        latencies.push(status_latency(&http, n0.http_addr()).await);
    }
    latencies.sort();
    let grown = rss_kib().saturating_sub(before);
    println!(
        "1000 idle connections: {refused} refused at once, /status p50 {:?} max {:?}, RSS +{} KiB",
        latencies[5], latencies[9], grown
    );
    for n in cluster.running() {
        assert_eq!(n.network().peer_count(), 2, "a real peer was lost");
    }
    assert!(
        latencies[5] < Duration::from_millis(50),
        "/status took {latencies:?}"
    );
    assert!(grown < 20 * 1024, "RSS grew by {grown} KiB");
    cluster.assert_payment_finalizes().await;
    drop(held);
    cluster.shutdown().await;
}

/// HTTP shows only what is on disk: with n0's fsyncs slowed to 1.5 s, n0's
/// engine holds a payment's finalization well before `/tx` on n0 reports it
/// final, and `/tx` reports it once the record is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_shows_a_finalization_only_once_it_is_durable() {
    use testnet_node::finality::TxState;
    use testnet_node::ledger::tx::{genesis_txid, OutPoint, Transaction, TxOut};
    use testnet_node::store::DiskFaults;
    init_logs();
    let cluster = Cluster::start(4, |_, _| {}).await;
    cluster.wait_for_peers(3, Duration::from_secs(10)).await;
    let n0 = cluster.node(0);
    let fsync = Duration::from_millis(1500);
    n0.state().replica.storage.set(DiskFaults {
        fsync_ms: fsync.as_millis() as u64,
        error_percent: 0.0,
    });
    let net = &cluster.genesis.network_id;
    let value = cluster.genesis.initial_outputs[0].value;
    let coin = OutPoint {
        txid: genesis_txid(net),
        vout: 0,
    };
    let to = testnet_node::Keypair::generate().id();
    let out = TxOut {
        owner: to,
        value: value - 100_000_000,
    };
    let tx = Transaction::signed(net, &[coin], vec![out], 1, &[&cluster.faucet]);
    let txid = tx.id();
    cluster.node(1).state().replica.submit(tx).await.unwrap();
    let final_in_engine = |n: &testnet_node::Node| {
        let engine = n.state().replica.engine();
        engine
            .report(&txid)
            .is_some_and(|r| r.state == TxState::Finalized)
    };
    let engine_at = wait_for(
        "n0's engine to finalize",
        Duration::from_secs(20),
        || async { final_in_engine(n0).then(Instant::now) },
    )
    .await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/tx/{}", n0.http_addr(), txid.to_hex());
    let http_at = wait_for("n0's /tx to say final", Duration::from_secs(20), || async {
        let v: serde_json::Value = http.get(&url).send().await.ok()?.json().await.ok()?;
        (v["state"] == "finalized").then(Instant::now)
    })
    .await;
    let lag = http_at - engine_at;
    println!("n0: final in its engine, then on HTTP {lag:?} later (fsync {fsync:?})");
    assert!(
        lag >= fsync / 2,
        "HTTP showed the finalization {lag:?} after the engine, before its record could be durable"
    );
    cluster.shutdown().await;
}

/// A peer floods a node with orphans (the largest transactions there are,
/// about 34 KB, spending outputs nobody knows): the node holds at most 16 MiB
/// of them, the oldest making room (each counted as `orphans_full`), keeps
/// its mesh, and still finalizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_flood_is_bounded_in_bytes() {
    use testnet_node::finality::{LedgerMessage, MAX_ORPHAN_BYTES};
    use testnet_node::ledger::tx::{OutPoint, Transaction, TxId, TxOut};
    use testnet_node::p2p::message::Message;
    init_logs();
    // The attacker's key is not in genesis: open admission lets it in.
    let cluster = Cluster::start(3, |_, s| s.p2p.open_admission = true).await;
    cluster.wait_for_peers(2, Duration::from_secs(10)).await;
    let n0 = cluster.node(0);
    let net = cluster.genesis.network_id.clone();
    let mut attacker = RawPeer::authenticated(n0.p2p_addr(), &net).await;
    let key = testnet_node::Keypair::generate();
    let sent = 600u32;
    let orphan = |memo: u32| {
        let prevs: Vec<OutPoint> = (0..256u32)
            .map(|vout| OutPoint {
                txid: TxId([(memo % 256) as u8 ^ 0x5a; 32]),
                vout: vout + 1000 * memo,
            })
            .collect();
        let outputs = (0..256u32)
            .map(|i| TxOut {
                owner: testnet_node::Keypair::from_seed([i as u8; 32]).id(),
                value: 1_000_000,
            })
            .collect();
        Transaction::signed(&net, &prevs, outputs, memo as u64, &[&key])
    };
    // Sizes grow with the outpoints' numbers: the first is the smallest.
    let (smallest, largest) = (orphan(0).size(), orphan(sent - 1).size());
    for m in 0..sent {
        attacker
            .send(&Message::Ledger(LedgerMessage::Tx(orphan(m))))
            .await;
    }
    let (fewest, most) = (MAX_ORPHAN_BYTES / largest, MAX_ORPHAN_BYTES / smallest);
    let evicted = wait_for_count(
        n0,
        "testnet_transactions_rejected_total",
        "reason=\"orphans_full\"",
        (sent as usize - most) as f64,
        Duration::from_secs(30),
    )
    .await as usize;
    println!("{sent} orphans of {smallest}-{largest} bytes: {evicted} evicted");
    assert!(evicted <= sent as usize - fewest, "{evicted}");
    assert_eq!(n0.network().peer_count(), 3, "the mesh and the attacker");
    for i in 1..3 {
        assert_eq!(cluster.node(i).network().peer_count(), 2);
    }
    cluster.assert_payment_finalizes().await;
    cluster.shutdown().await;
}

/// A ledger that takes no peer arrival (its queue full, never read) holds no
/// connection for ever: shutdown ends every task within its grace (before,
/// the arrival's send waited with no bound and no way to cancel it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_ledger_does_not_hold_the_shutdown() {
    use testnet_node::metrics::P2pMetrics;
    use testnet_node::p2p::{Config, Network, NetworkEvent};
    init_logs();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::new("stuck-net".into(), testnet_node::Keypair::generate(), addr);
    config.open_admission = true; // the raw peer's key: there is no genesis here
    config.shutdown_grace = Duration::from_secs(2);
    // Long enough that only cancelling the wait can end it in time.
    config.ping_timeout = Duration::from_secs(60);
    let (events, _never_read) = tokio::sync::mpsc::channel(1);
    let someone = testnet_node::Keypair::generate().id();
    events
        .try_send(NetworkEvent::PeerConnected(someone))
        .unwrap();
    let metrics = P2pMetrics::register(&prometheus::Registry::new());
    let network = Network::start(config, listener, metrics, Some(events));
    let _peer = RawPeer::authenticated(addr, "stuck-net").await;
    wait_for(
        "the peer to be established",
        Duration::from_secs(5),
        || async { (network.peer_count() == 1).then_some(()) },
    )
    .await;
    let clean = network.shutdown().await;
    assert!(
        clean,
        "a connection stuck on the ledger's queue outlived the grace"
    );
}
