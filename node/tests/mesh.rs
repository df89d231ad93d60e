//! In-process multi-node tests of the P2P layer: full mesh, simultaneous starts,
//! duplicates, self-connections, ping/pong, slow peers, limits, backoff, shutdown,
//! and the simulated handshake race.

mod support;

use std::time::{Duration, Instant};

use support::{init_logs, wait_for, Cluster, RawPeer};
use testnet_node::p2p::message::{DisconnectReason, Message};
use testnet_node::{NodeSetup, SimulatedBug};
use tokio::net::TcpListener;

const MESH_DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_nodes_reach_a_clean_full_mesh() {
    init_logs();
    let cluster = Cluster::start(8, |_, _| {}).await;
    let took = cluster.wait_for_peers(7, MESH_DEADLINE).await;
    eprintln!("8 in-process nodes: full mesh in {took:?}");
    cluster.assert_clean_full_mesh();
    cluster.shutdown().await;
}

/// Seed 002's network had ~10% handshake success when nodes started together; here
/// all 8 start at the same instant, 20 times, and every run is a clean mesh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_start_twenty_times_in_a_row() {
    init_logs();
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let cluster = Cluster::start(8, |_, _| {}).await;
        worst = worst.max(cluster.wait_for_peers(7, MESH_DEADLINE).await);
        cluster.assert_clean_full_mesh();
        cluster.shutdown().await;
    }
    eprintln!("20 simultaneous starts of 8 nodes: slowest full mesh {worst:?}");
}

/// With `--simulate-bug handshake-race` on half the nodes, the same start shows the
/// seed's failure: handshakes refused as duplicates before completing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_handshake_race_fails_measurably() {
    init_logs();
    let cluster = Cluster::start(8, |i, s| {
        if i % 2 == 0 {
            s.bugs.insert(SimulatedBug::HandshakeRace);
        }
    })
    .await;
    let failures = wait_for(
        "handshake failures from the simulated race",
        MESH_DEADLINE,
        || async {
            let f: u64 = cluster
                .running()
                .map(|n| n.status().handshake_failures)
                .sum();
            (f > 0).then_some(f)
        },
    )
    .await;
    let dup: f64 = cluster
        .running()
        .map(|n| {
            support::metric_sum(
                &n.metrics().render(),
                "testnet_handshake_failures_total",
                "reason=\"duplicate_connection\"",
            )
        })
        .sum();
    assert!(dup > 0.0, "the race must refuse connections as duplicates");
    let attempts: u64 = cluster
        .running()
        .map(|n| n.status().handshake_attempts)
        .sum();
    let completed: u64 = cluster
        .running()
        .map(|n| n.status().handshakes_completed)
        .sum();
    eprintln!("handshake race: {failures} failures, {completed}/{attempts} handshakes completed");
    assert!(completed < attempts);
    assert!(
        cluster
            .running()
            .any(|n| n.status().simulated_bugs == ["handshake-race"]),
        "status names the bug"
    );
    cluster.shutdown().await;
}

/// A second authenticated connection between two nodes is resolved after the
/// handshake by the duplicate rule (the property test in `peers.rs` shows both
/// sides compute the same survivor); here each branch of the rule on a live node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_resolved_after_the_handshake() {
    init_logs();
    let cluster = Cluster::start(2, |_, s| s.p2p.backoff_base = Duration::from_millis(20)).await;
    cluster.wait_for_peers(1, MESH_DEADLINE).await;
    let net = &cluster.genesis.network_id;
    let mut order = [0usize, 1];
    order.sort_by_key(|i| cluster.genesis.validators[*i].p2p_address);
    let [low, high] = order;
    let (l, h) = (cluster.node(low), cluster.node(high));
    let resolved = |n: &testnet_node::Node| n.status().duplicate_connections_resolved;
    let stale = |n: &testnet_node::Node| n.status().stale_connections_replaced;

    // 1. "high" dials "low" although low already dialed it: different dialers, the
    //    lower address's connection wins; the new one gets a Duplicate goodbye.
    let high_addr = cluster.genesis.validators[high].p2p_address;
    let mut fake_high =
        RawPeer::authenticated_as(l.p2p_addr(), net, cluster.keys[high].clone(), high_addr).await;
    assert_eq!(
        fake_high.closed_by_node(Duration::from_secs(5)).await,
        Some(DisconnectReason::Duplicate)
    );
    assert_eq!(resolved(l), 1);
    assert_eq!((l.network().peer_count(), h.network().peer_count()), (1, 1));

    // 2. "low" connects to "high" a second time (as after a restart whose old
    //    connection is not yet timed out on high's side): same dialer, the newer
    //    wins and the older is closed gracefully. The real low then redials and
    //    replaces the impostor the same way: the mesh heals with no failure, and
    //    high counts both as stale connections replaced, not as duplicates.
    let low_addr = cluster.genesis.validators[low].p2p_address;
    let mut fake_low =
        RawPeer::authenticated_as(h.p2p_addr(), net, cluster.keys[low].clone(), low_addr).await;
    assert_eq!(
        fake_low.closed_by_node(Duration::from_secs(5)).await,
        Some(DisconnectReason::Duplicate)
    );
    wait_for("the real connection to be back", MESH_DEADLINE, || async {
        (l.network().peer_count() == 1 && h.network().peer_count() == 1).then_some(())
    })
    .await;
    assert_eq!(stale(h), 2, "the old real one, then the impostor");
    assert_eq!(resolved(h), 0, "a redial is no duplicate");
    assert_eq!((resolved(l), stale(l)), (1, 0));
    let peer_of_h = &h.network().peers()[0];
    assert_eq!(
        peer_of_h.direction,
        testnet_node::p2p::peers::Direction::Inbound
    );
    for n in cluster.running() {
        assert_eq!(n.status().handshake_failures, 0, "{:?}", n.status());
    }
    cluster.shutdown().await;
}

/// Two nodes that both dial each other (the higher has the lower as `--peer`)
/// settle on one connection whatever the timing, with no failed handshake, and
/// stay settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_dialing_settles_on_one_connection() {
    init_logs();
    for _ in 0..5 {
        let cluster = Cluster::start(2, |i, s: &mut NodeSetup| {
            let (me, other) = (
                s.genesis.validators[i].p2p_address,
                s.genesis.validators[1 - i].p2p_address,
            );
            if me > other {
                s.p2p.extra_peers.push(other);
            }
            s.p2p.backoff_base = Duration::from_millis(20);
        })
        .await;
        // Settled: both ends see the same single connection (whichever dialer got
        // there first when only one was made; the lower's when both were).
        wait_for(
            "one connection seen the same from both ends",
            MESH_DEADLINE,
            || async {
                let (a, b) = (
                    cluster.node(0).network().peers(),
                    cluster.node(1).network().peers(),
                );
                (a.len() == 1 && b.len() == 1 && a[0].direction != b[0].direction).then_some(())
            },
        )
        .await;
        // Handshakes already in flight finish within milliseconds; after that,
        // nothing may change any more: no redial loop, no flapping.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let settled: u64 = cluster
            .running()
            .map(|n| n.status().duplicate_connections_resolved)
            .sum();
        let completed: u64 = cluster
            .running()
            .map(|n| n.status().handshakes_completed)
            .sum();
        tokio::time::sleep(Duration::from_millis(500)).await;
        for n in cluster.running() {
            assert_eq!(n.network().peer_count(), 1);
            assert_eq!(n.status().handshake_failures, 0, "{:?}", n.status());
        }
        let later: u64 = cluster
            .running()
            .map(|n| n.status().handshakes_completed)
            .sum();
        assert_eq!(
            later, completed,
            "the dialer must wait while connected, not redial ({settled} duplicates)"
        );
        cluster.shutdown().await;
    }
}

/// A node that dials its own listening socket under another address (port mapping,
/// a stale --peer) detects itself by nonce and stops dialing that address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_connection_is_detected_by_nonce() {
    init_logs();
    let (mut genesis, keys, _, listeners) = support::bound_genesis(1).await;
    let listener = listeners.into_iter().next().unwrap();
    let actual = listener.local_addr().unwrap();
    // Genesis says n0 is elsewhere; it will dial `actual` as an extra peer.
    genesis.validators[0].p2p_address = "127.0.0.1:1".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut setup = NodeSetup::new(genesis, keys[0].clone(), dir.path().into(), actual);
    setup.p2p.extra_peers.push(actual);
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = testnet_node::Node::start(setup, listener, http)
        .await
        .unwrap();
    let text = wait_for("self-connection to be detected", MESH_DEADLINE, || async {
        let t = node.metrics().render();
        (support::metric_sum(
            &t,
            "testnet_handshake_failures_total",
            "reason=\"self_connection\"",
        ) >= 1.0)
            .then_some(t)
    })
    .await;
    assert_eq!(node.network().peer_count(), 0);
    let attempts = support::metric_sum(&text, "testnet_handshake_attempts_total", "outbound");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = support::metric_sum(
        &node.metrics().render(),
        "testnet_handshake_attempts_total",
        "outbound",
    );
    assert_eq!(attempts, later, "must stop dialing itself");
    node.shutdown().await;
}

/// Ping/pong measures RTT; a peer that goes silent is dropped after ping_timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_measures_rtt_and_silence_disconnects() {
    init_logs();
    let cluster = Cluster::start(2, |_, s| {
        s.p2p.ping_interval = Duration::from_millis(100);
        s.p2p.ping_timeout = Duration::from_millis(800);
        s.p2p.open_admission = true; // the silent raw peer's key is not in genesis
    })
    .await;
    cluster.wait_for_peers(1, MESH_DEADLINE).await;
    let rtt = wait_for("an RTT measurement", MESH_DEADLINE, || async {
        cluster.node(0).network().peers()[0].rtt_ms
    })
    .await;
    assert!(rtt > 0.0 && rtt < 100.0, "loopback RTT {rtt} ms");
    let text = cluster.node(0).metrics().render();
    assert!(support::metric_sum(&text, "testnet_ping_rtt_seconds_count", "") >= 1.0);

    // An authenticated peer that then says nothing, not even pongs.
    let n0 = cluster.node(0);
    let mut silent = RawPeer::authenticated(n0.p2p_addr(), &cluster.genesis.network_id).await;
    wait_for("the raw peer to be established", MESH_DEADLINE, || async {
        (n0.network().peer_count() == 2).then_some(())
    })
    .await;
    let start = Instant::now();
    // Read (and ignore) its pings but never answer: only silence from our side.
    while next_frame_or_close(&mut silent).await {}
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(700),
        "dropped too early: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "dropped too late: {took:?}");
    let text = n0.metrics().render();
    assert_eq!(
        support::metric_sum(
            &text,
            "testnet_peer_disconnects_total",
            "reason=\"ping_timeout\""
        ),
        1.0
    );
    // The honest peer, which answers pings, is still there.
    assert_eq!(n0.network().peer_count(), 1);
    cluster.shutdown().await;
}

/// Reads one frame; false once the connection is closed.
async fn next_frame_or_close(peer: &mut RawPeer) -> bool {
    use futures::StreamExt;
    matches!(
        tokio::time::timeout(Duration::from_secs(10), peer.reader.next()).await,
        Ok(Some(Ok(_)))
    )
}

/// A peer that stops reading fills its own queue and is dropped as slow; the
/// broadcaster never waits for it and a healthy peer keeps receiving everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_peer_cannot_stall_the_others() {
    init_logs();
    // Only the broadcaster's queues are small: n1 answers each of the flood
    // of pings with a pong, and on a busy machine n0 reads them late; with
    // a small queue of its own n1 would drop n0 as slow (seen in CI).
    let cluster = Cluster::start(2, |i, s| {
        s.p2p.open_admission = true; // the raw peer's key is not in genesis
        if i == 0 {
            s.p2p.peer_queue_messages = 1024;
            s.p2p.peer_queue_bytes = 64 * 1024;
        }
    })
    .await;
    cluster.wait_for_peers(1, MESH_DEADLINE).await;
    let (n0, n1) = (cluster.node(0), cluster.node(1));
    // Authenticated, then never reads again; a small receive buffer makes its
    // socket fill after a few thousand frames instead of a few hundred thousand.
    let slow =
        RawPeer::authenticated_with(n0.p2p_addr(), &cluster.genesis.network_id, Some(4096)).await;
    wait_for("the slow peer to be established", MESH_DEADLINE, || async {
        (n0.network().peer_count() == 2).then_some(())
    })
    .await;
    // It keeps sending pings, so it is not dropped for silence: only for not reading.
    let RawPeer {
        reader: slow_reader,
        writer: mut slow_writer,
        ..
    } = slow;
    let talker = tokio::spawn(async move {
        use futures::SinkExt;
        while slow_writer
            .send(Message::Ping { nonce: 7 }.encode())
            .await
            .is_ok()
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let received = |text: &str| {
        support::metric_sum(
            text,
            "testnet_messages_total",
            "direction=\"received\",type=\"ping\"",
        )
    };
    let before = received(&n1.metrics().render());
    let mut sent_to_n1 = 0u64;
    let mut longest_broadcast = Duration::ZERO;
    let start = Instant::now();
    while n0.network().peer_count() == 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the slow peer was never dropped"
        );
        for _ in 0..128 {
            let t = Instant::now();
            n0.network().broadcast(&Message::Ping { nonce: 0 });
            longest_broadcast = longest_broadcast.max(t.elapsed());
            sent_to_n1 += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let text = n0.metrics().render();
    assert_eq!(
        support::metric_sum(
            &text,
            "testnet_peer_disconnects_total",
            "reason=\"send_queue_full\""
        ),
        1.0
    );
    // Every broadcast reached n1, which was never disconnected.
    wait_for("n1 to receive every broadcast", MESH_DEADLINE, || async {
        (received(&n1.metrics().render()) - before >= sent_to_n1 as f64).then_some(())
    })
    .await;
    assert_eq!(n1.network().peer_count(), 1);
    assert_eq!(
        support::metric_sum(&n1.metrics().render(), "testnet_peer_disconnects_total", ""),
        0.0
    );
    eprintln!("slow peer dropped after {sent_to_n1} broadcasts; longest broadcast call {longest_broadcast:?}");
    drop(slow_reader);
    talker.abort();
    cluster.shutdown().await;
}

/// Connections past max_inbound are refused with a TooManyPeers goodbye and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_limit_refuses_extra_connections() {
    init_logs();
    let cluster = Cluster::start(1, |_, s| {
        s.p2p.max_inbound = 2;
        s.p2p.open_admission = true; // raw peers' keys are not in genesis
    })
    .await;
    let n0 = cluster.node(0);
    let id = &cluster.genesis.network_id;
    let _a = RawPeer::authenticated(n0.p2p_addr(), id).await;
    let _b = RawPeer::authenticated(n0.p2p_addr(), id).await;
    wait_for("2 peers", MESH_DEADLINE, || async {
        (n0.network().peer_count() == 2).then_some(())
    })
    .await;
    let mut c = RawPeer::connect(n0.p2p_addr()).await;
    assert_eq!(
        c.closed_by_node(Duration::from_secs(5)).await,
        Some(DisconnectReason::TooManyPeers)
    );
    let text = n0.metrics().render();
    assert_eq!(
        support::metric_sum(
            &text,
            "testnet_handshake_failures_total",
            "reason=\"inbound_limit\""
        ),
        1.0
    );
    assert_eq!(n0.network().peer_count(), 2);
    cluster.shutdown().await;
}

/// A node whose direction rule says to dial 4 peers dials only max_outbound of
/// them at once; the others wait for a slot (and connect once one frees up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_limit_caps_concurrent_dials() {
    init_logs();
    // The lowest address dials everyone else: give it the limit.
    let cluster = Cluster::start(5, |i, s| {
        let lowest = s
            .genesis
            .validators
            .iter()
            .map(|v| v.p2p_address)
            .min()
            .unwrap();
        if s.genesis.validators[i].p2p_address == lowest {
            s.p2p.max_outbound = 2;
        }
    })
    .await;
    let lowest = (0..5)
        .min_by_key(|i| cluster.genesis.validators[*i].p2p_address)
        .unwrap();
    let n = cluster.node(lowest);
    wait_for("2 outbound peers", MESH_DEADLINE, || async {
        (n.network().peer_count() == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let peers = n.network().peers();
    assert_eq!(peers.len(), 2, "{peers:?}");
    assert!(peers
        .iter()
        .all(|p| p.direction == testnet_node::p2p::peers::Direction::Outbound));
    assert_eq!(n.status().handshake_failures, 0);
    cluster.shutdown().await;
}

/// A dialer retries a dead address with exponential backoff (one task, one
/// connection at a time), and connects soon after the peer appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redial_backs_off_then_connects() {
    init_logs();
    let (genesis, keys, _, listeners) = support::bound_genesis(2).await;
    // The lower address dials: it is the one that stays up, the other starts later.
    let mut order = [0usize, 1];
    order.sort_by_key(|i| genesis.validators[*i].p2p_address);
    let [low, high] = order;
    let mut listeners: Vec<Option<TcpListener>> = listeners.into_iter().map(Some).collect();
    let l_low = listeners[low].take().unwrap();
    let high_addr = genesis.validators[high].p2p_address;
    drop(listeners); // the higher node is down: its port refuses.
    let dir = tempfile::tempdir().unwrap();
    let mut setup = NodeSetup::new(
        genesis.clone(),
        keys[low].clone(),
        dir.path().join("low"),
        l_low.local_addr().unwrap(),
    );
    setup.p2p.backoff_base = Duration::from_millis(100);
    setup.p2p.backoff_max = Duration::from_secs(10);
    let n0 = testnet_node::Node::start(
        setup,
        l_low,
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let refused = support::metric_sum(
        &n0.metrics().render(),
        "testnet_dial_failures_total",
        "reason=\"refused\"",
    );
    // Delays 50-100, 100-200, 200-400, 400-800, 800-1600 ms: 4 to 6 attempts in 2 s,
    // where a fixed 100 ms retry would make 20.
    assert!((3.0..=7.0).contains(&refused), "{refused} dials in 2 s");

    let l1 = TcpListener::bind(high_addr).await.expect("rebind the port");
    let setup = NodeSetup::new(
        genesis,
        keys[high].clone(),
        dir.path().join("high"),
        high_addr,
    );
    let n1 = testnet_node::Node::start(setup, l1, TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let start = Instant::now();
    wait_for("n0 to reconnect", Duration::from_secs(15), || async {
        (n0.network().peer_count() == 1).then_some(())
    })
    .await;
    eprintln!(
        "reconnected {:?} after the peer appeared ({refused} refused dials before)",
        start.elapsed()
    );
    n0.shutdown().await;
    n1.shutdown().await;
}

/// Two-phase shutdown: the node stops accepting, says goodbye to every peer,
/// flushes and returns within its bound; peers see a graceful close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_graceful_and_bounded() {
    init_logs();
    let mut cluster = Cluster::start(4, |_, s| {
        s.p2p.shutdown_grace = Duration::from_secs(2);
        s.p2p.open_admission = true; // the stuck raw peer's key is not in genesis
    })
    .await;
    cluster.wait_for_peers(3, MESH_DEADLINE).await;
    let addr = cluster.node(0).p2p_addr();
    // A peer that never reads must not hold shutdown past its bound.
    let _stuck = RawPeer::authenticated(addr, &cluster.genesis.network_id).await;
    let start = Instant::now();
    assert!(
        cluster.stop(0).await,
        "shutdown did not finish within its grace period"
    );
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
    for i in 1..4 {
        let n = cluster.node(i);
        wait_for("peers to notice the shutdown", MESH_DEADLINE, || async {
            (n.network().peer_count() == 2).then_some(())
        })
        .await;
        let text = n.metrics().render();
        assert_eq!(
            support::metric_sum(
                &text,
                "testnet_peer_disconnects_total",
                "reason=\"peer_shutdown\""
            ),
            1.0,
            "n{i}"
        );
        assert_eq!(
            support::metric_sum(&text, "testnet_handshake_failures_total", ""),
            0.0,
            "n{i}"
        );
    }
    eprintln!("shutdown of a node with 4 peers took {took:?}");
    cluster.shutdown().await;
}

/// A peer that restarts (new process, same key) is reconnected; the stale
/// connection does not leave a duplicate behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_peer_rejoins_the_mesh() {
    init_logs();
    let mut cluster =
        Cluster::start(4, |_, s| s.p2p.backoff_base = Duration::from_millis(50)).await;
    cluster.wait_for_peers(3, MESH_DEADLINE).await;
    cluster.stop(1).await;
    let addr = cluster.genesis.validators[1].p2p_address;
    let l = TcpListener::bind(addr).await.expect("rebind n1's port");
    let setup = NodeSetup::new(
        cluster.genesis.clone(),
        cluster.keys[1].clone(),
        cluster.dir.path().join("n1"),
        addr,
    );
    let h = TcpListener::bind("127.0.0.1:0").await.unwrap();
    cluster.nodes[1] = Some(testnet_node::Node::start(setup, l, h).await.unwrap());
    let took = cluster.wait_for_peers(3, MESH_DEADLINE).await;
    eprintln!("restarted node back in the mesh after {took:?}");
    for n in cluster.running() {
        let peers = n.network().peers();
        let mut ids: Vec<_> = peers.iter().map(|p| p.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), 3);
    }
    cluster.shutdown().await;
}
