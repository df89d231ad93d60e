//! Bad input on the P2P port: each case is refused with a counted reason, the node
//! does not panic, and its real peers never notice.

mod support;

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use support::{init_logs, metric_sum, wait_for, Cluster, RawPeer};
use testnet_node::p2p::frame::MAGIC;
use testnet_node::p2p::handshake::{make_verack, LocalHello};
use testnet_node::p2p::message::{DisconnectReason, Message};
use testnet_node::Keypair;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(500);

fn hello(network_id: &str, key: &Keypair) -> LocalHello {
    LocalHello {
        network_id: network_id.to_owned(),
        protocol_version: testnet_node::genesis::PROTOCOL_VERSION,
        min_peer_version: testnet_node::genesis::PROTOCOL_VERSION,
        node_id: key.id(),
        listen_addr: "127.0.0.1:9".parse().unwrap(),
    }
}

/// What an attack knows of its target: the network id, and a genesis
/// node's key and address (public: anyone holding the genesis file knows them).
struct Target {
    net: String,
    member: (testnet_node::identity::NodeId, std::net::SocketAddr),
    /// Another genesis node's address.
    other: std::net::SocketAddr,
    /// A VERACK the member signed in another handshake (for another nonce),
    /// as recorded off the wire.
    recorded: testnet_node::p2p::message::Verack,
}

/// One misbehaving client; returns what it does to a fresh connection.
type Attack = for<'a> fn(&'a mut RawPeer, &'a Target) -> futures::future::BoxFuture<'a, ()>;

fn garbage<'a>(p: &'a mut RawPeer, _: &'a Target) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(async move { p.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await })
}

fn oversize_length<'a>(p: &'a mut RawPeer, _: &'a Target) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(async move {
        let mut b = BytesMut::new();
        b.put_slice(&MAGIC);
        b.put_u32(u32::MAX);
        p.send_raw(&b).await
    })
}

fn truncated_frame<'a>(p: &'a mut RawPeer, _: &'a Target) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(async move {
        let mut b = BytesMut::new();
        b.put_slice(&MAGIC);
        b.put_u32(100);
        b.put_slice(&[1; 10]);
        p.send_raw(&b).await;
        use tokio::io::AsyncWriteExt;
        p.writer.get_mut().shutdown().await.unwrap();
    })
}

fn malformed_message<'a>(p: &'a mut RawPeer, _: &'a Target) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(async move {
        p.send_payload(bytes::Bytes::from_static(&[0xff, 0xff, 0xff]))
            .await
    })
}

fn wrong_network<'a>(p: &'a mut RawPeer, _: &'a Target) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(async move {
        let v = hello("some-other-net", &p.key).version(1);
        p.send(&Message::Version(v)).await
    })
}

fn wrong_protocol_version<'a>(
    p: &'a mut RawPeer,
    t: &'a Target,
) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(async move {
        // Older than the oldest version the node accepts (a newer one is
        // accepted: old nodes speak to upgraded ones).
        let mut v = hello(&t.net, &p.key).version(1);
        v.protocol_version = 0;
        p.send(&Message::Version(v)).await
    })
}

/// Claims a genesis node's key and address in VERSION and signs VERACK with
/// another key.
fn bad_signature<'a>(p: &'a mut RawPeer, t: &'a Target) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(async move {
        let mut v = hello(&t.net, &p.key).version(5);
        (v.node_id, v.listen_addr) = t.member;
        p.send(&Message::Version(v)).await;
        let theirs = match p.recv().await {
            Some(Message::Version(v)) => v,
            other => panic!("expected VERSION, got {other:?}"),
        };
        let forged = make_verack(&p.key, &t.net, theirs.nonce, 5);
        p.send(&Message::Verack(forged)).await;
    })
}

/// An honest handshake with a key genesis does not list.
fn unknown_key<'a>(p: &'a mut RawPeer, t: &'a Target) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(async move {
        p.send(&Message::Version(hello(&t.net, &p.key).version(6)))
            .await
    })
}

/// A genesis node's key claiming another genesis node's address (VERSION's
/// address is not signed): let in, it would keep the dialer of that address
/// waiting for ever, and the two honest nodes apart.
fn address_claim<'a>(p: &'a mut RawPeer, t: &'a Target) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(async move {
        let mut v = hello(&t.net, &p.key).version(8);
        (v.node_id, v.listen_addr) = (t.member.0, t.other);
        p.send(&Message::Version(v)).await
    })
}

/// Claims a genesis node's key and address, then replays a VERACK that node
/// signed in another handshake: it answers another nonce than ours.
fn replayed_verack<'a>(p: &'a mut RawPeer, t: &'a Target) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(async move {
        let mut v = hello(&t.net, &p.key).version(5);
        (v.node_id, v.listen_addr) = t.member;
        p.send(&Message::Version(v)).await;
        match p.recv().await {
            Some(Message::Version(_)) => {}
            other => panic!("expected VERSION, got {other:?}"),
        }
        p.send(&Message::Verack(t.recorded.clone())).await;
    })
}

fn message_before_handshake<'a>(
    p: &'a mut RawPeer,
    _: &'a Target,
) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(async move { p.send(&Message::Ping { nonce: 1 }).await })
}

fn silence<'a>(_: &'a mut RawPeer, _: &'a Target) -> futures::future::BoxFuture<'a, ()> {
    Box::pin(async {})
}

const CASES: &[(&str, Attack, &str, Option<DisconnectReason>)] = &[
    (
        "garbage bytes",
        garbage,
        "bad_magic",
        Some(DisconnectReason::ProtocolViolation),
    ),
    (
        "oversize length prefix",
        oversize_length,
        "frame_too_large",
        Some(DisconnectReason::ProtocolViolation),
    ),
    (
        "truncated frame",
        truncated_frame,
        "truncated_frame",
        Some(DisconnectReason::ProtocolViolation),
    ),
    (
        "undecodable message",
        malformed_message,
        "malformed_message",
        Some(DisconnectReason::ProtocolViolation),
    ),
    (
        "wrong network id",
        wrong_network,
        "wrong_network",
        Some(DisconnectReason::ProtocolViolation),
    ),
    (
        "wrong protocol version",
        wrong_protocol_version,
        "protocol_version",
        Some(DisconnectReason::ProtocolViolation),
    ),
    (
        "bad signature",
        bad_signature,
        "bad_signature",
        Some(DisconnectReason::ProtocolViolation),
    ),
    (
        "message before handshake",
        message_before_handshake,
        "unexpected_message",
        Some(DisconnectReason::ProtocolViolation),
    ),
    (
        "a VERACK recorded from another handshake",
        replayed_verack,
        "bad_signature",
        Some(DisconnectReason::ProtocolViolation),
    ),
    (
        "a key genesis does not list",
        unknown_key,
        "unknown_peer",
        Some(DisconnectReason::ProtocolViolation),
    ),
    (
        "a genesis key claiming another node's address",
        address_claim,
        "address_claim",
        Some(DisconnectReason::ProtocolViolation),
    ),
    ("connection that says nothing", silence, "timeout", None),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_is_refused_with_its_reason_and_peers_are_unaffected() {
    init_logs();
    let cluster = Cluster::start(3, |_, s| {
        s.p2p.handshake_timeout = HANDSHAKE_TIMEOUT;
        s.p2p.ping_interval = Duration::from_millis(100);
    })
    .await;
    cluster.wait_for_peers(2, Duration::from_secs(10)).await;
    let net = cluster.genesis.network_id.clone();
    let members = &cluster.genesis.validators;
    let context = Target {
        net: net.clone(),
        member: (members[2].public_key, members[2].p2p_address),
        other: members[1].p2p_address,
        // Signed by n2 for a handshake with nonces 777 and 5, not ours.
        recorded: make_verack(&cluster.keys[2], &net, 777, 5),
    };
    let target = cluster.node(0);
    let pings_from_target = |i: usize| {
        metric_sum(
            &cluster.node(i).metrics().render(),
            "testnet_messages_total",
            "direction=\"received\",type=\"ping\"",
        )
    };

    for (what, attack, reason, goodbye) in CASES {
        let label = format!("reason=\"{reason}\"");
        let before = metric_sum(
            &target.metrics().render(),
            "testnet_handshake_failures_total",
            &label,
        );
        let pings_before = pings_from_target(1);
        let mut peer = RawPeer::connect(target.p2p_addr()).await;
        attack(&mut peer, &context).await;
        let got = peer
            .closed_by_node(HANDSHAKE_TIMEOUT + Duration::from_secs(3))
            .await;
        assert_eq!(got, *goodbye, "{what}: goodbye");
        let after = metric_sum(
            &target.metrics().render(),
            "testnet_handshake_failures_total",
            &label,
        );
        assert_eq!(
            after - before,
            1.0,
            "{what}: failure not counted under {reason}"
        );
        // The node's real peers saw nothing and are still being served.
        for n in cluster.running() {
            assert_eq!(n.network().peer_count(), 2, "{what}: a real peer was lost");
        }
        wait_for(
            &format!("{what}: target still pings its peers"),
            Duration::from_secs(3),
            || async { (pings_from_target(1) > pings_before).then_some(()) },
        )
        .await;
    }
    let total = metric_sum(
        &target.metrics().render(),
        "testnet_handshake_failures_total",
        "",
    );
    assert_eq!(total as usize, CASES.len(), "no other failure was counted");
    for n in cluster.running() {
        assert_eq!(
            metric_sum(&n.metrics().render(), "testnet_peer_disconnects_total", ""),
            0.0
        );
    }
    // And the honest network kept finalizing.
    cluster.assert_payment_finalizes().await;
    cluster.shutdown().await;
}

/// After the handshake the frame limit is larger but still hard, and garbage still
/// gets the peer (not the node) dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_after_the_handshake_drop_only_that_peer() {
    init_logs();
    // The raw peer's key is not in genesis: open admission lets it in.
    let cluster = Cluster::start(2, |_, s| s.p2p.open_admission = true).await;
    cluster.wait_for_peers(1, Duration::from_secs(10)).await;
    let n0 = cluster.node(0);
    let net = &cluster.genesis.network_id;

    let mut p = RawPeer::authenticated(n0.p2p_addr(), net).await;
    let mut b = BytesMut::new();
    b.put_slice(&MAGIC);
    b.put_u32(64 * 1024 * 1024);
    p.send_raw(&b).await;
    assert_eq!(
        p.closed_by_node(Duration::from_secs(5)).await,
        Some(DisconnectReason::ProtocolViolation)
    );

    let mut p = RawPeer::authenticated(n0.p2p_addr(), net).await;
    p.send_payload(bytes::Bytes::from_static(&[0xee; 16])).await;
    assert_eq!(
        p.closed_by_node(Duration::from_secs(5)).await,
        Some(DisconnectReason::ProtocolViolation)
    );

    let mut p = RawPeer::authenticated(n0.p2p_addr(), net).await;
    p.send(&Message::Version(
        hello(net, &Keypair::generate()).version(3),
    ))
    .await;
    assert_eq!(
        p.closed_by_node(Duration::from_secs(5)).await,
        Some(DisconnectReason::ProtocolViolation)
    );

    let text = n0.metrics().render();
    assert_eq!(
        metric_sum(
            &text,
            "testnet_peer_disconnects_total",
            "reason=\"bad_frame\""
        ),
        1.0
    );
    assert_eq!(
        metric_sum(
            &text,
            "testnet_peer_disconnects_total",
            "reason=\"malformed_message\""
        ),
        1.0
    );
    assert_eq!(
        metric_sum(
            &text,
            "testnet_peer_disconnects_total",
            "reason=\"unexpected_message\""
        ),
        1.0
    );
    assert_eq!(n0.network().peer_count(), 1);
    assert_eq!(cluster.node(1).network().peer_count(), 1);
    cluster.assert_payment_finalizes().await;
    cluster.shutdown().await;
}

/// Many honest peers connecting at once, each sending VERSION the instant the socket
/// opens: every one is registered before its first byte is read and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_instant_handshakes_all_complete() {
    init_logs();
    // 40 raw peers (keys not in genesis) from one address at once: more than
    // one source may have in its handshake by default (see hostile.rs).
    let cluster = Cluster::start(1, |_, s| {
        s.p2p.open_admission = true;
        s.p2p.max_pending_per_source = 64;
    })
    .await;
    let n0 = cluster.node(0);
    let net = cluster.genesis.network_id.clone();
    let addr = n0.p2p_addr();
    let peers =
        futures::future::join_all((0..40).map(|_| RawPeer::authenticated(addr, &net))).await;
    wait_for("40 peers", Duration::from_secs(5), || async {
        (n0.network().peer_count() == 40).then_some(())
    })
    .await;
    let s = n0.status();
    assert_eq!(
        (
            s.handshake_attempts,
            s.handshakes_completed,
            s.handshake_failures
        ),
        (40, 40, 0)
    );
    drop(peers);
    cluster.shutdown().await;
}
