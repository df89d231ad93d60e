//! Helpers shared by the integration tests: an in-process cluster of nodes on
//! 127.0.0.1, a raw protocol peer that can misbehave, and waits with deadlines.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use testnet_node::genesis::{Addressing, Genesis};
use testnet_node::p2p::frame::{FrameCodec, MAX_FRAME};
use testnet_node::p2p::handshake::{make_verack, LocalHello};
use testnet_node::p2p::message::{DisconnectReason, Message, Version};
use testnet_node::p2p::peers::Direction;
use testnet_node::{Keypair, Node, NodeSetup};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{FramedRead, FramedWrite};

pub fn init_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = testnet_node::cli::log_targets(tracing_subscriber::filter::LevelFilter::WARN);
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_test_writer()
        .finish()
        .with(filter)
        .try_init();
}

/// Polls `check` until it returns `Some`, or fails with `what` after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Nodes of one genesis, all in this process, on 127.0.0.1 with OS-chosen ports.
pub struct Cluster {
    pub genesis: Genesis,
    pub keys: Vec<Keypair>,
    pub faucet: Keypair,
    pub nodes: Vec<Option<Node>>,
    pub dir: tempfile::TempDir,
}

/// Binds `n` P2P listeners and returns a genesis whose validators listen on them.
pub async fn bound_genesis(n: usize) -> (Genesis, Vec<Keypair>, Keypair, Vec<TcpListener>) {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    // Generated with placeholder addresses, then pointed at the bound ports.
    let host = Addressing::Host {
        ip: "127.0.0.1".parse().unwrap(),
        first_port: 1,
    };
    let mut generated = Genesis::generate(n, &host, None).unwrap();
    for (v, l) in generated.genesis.validators.iter_mut().zip(&listeners) {
        v.p2p_address = l.local_addr().unwrap();
    }
    generated.genesis.validate().unwrap();
    (
        generated.genesis,
        generated.validator_keys,
        generated.faucet_key,
        listeners,
    )
}

impl Cluster {
    /// Starts `n` validators back to back, with no await between the starts, after
    /// `tweak` adjusted each setup.
    pub async fn start(n: usize, tweak: impl Fn(usize, &mut NodeSetup)) -> Cluster {
        let (genesis, keys, faucet, listeners) = bound_genesis(n).await;
        let dir = tempfile::tempdir().unwrap();
        let mut setups = Vec::new();
        for (i, (key, l)) in keys.iter().zip(&listeners).enumerate() {
            let mut setup = NodeSetup::new(
                genesis.clone(),
                key.clone(),
                dir.path().join(format!("n{i}")),
                l.local_addr().unwrap(),
            );
            tweak(i, &mut setup);
            setups.push(setup);
        }
        let mut https = Vec::new();
        for _ in 0..n {
            https.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let mut nodes = Vec::new();
        for ((setup, l), h) in setups.into_iter().zip(listeners).zip(https) {
            nodes.push(Some(Node::start(setup, l, h).await.unwrap()));
        }
        Cluster {
            genesis,
            keys,
            faucet,
            nodes,
            dir,
        }
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node is running")
    }

    pub fn running(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().flatten()
    }

    /// Waits until every running node has exactly `peers` peers; returns the time taken.
    pub async fn wait_for_peers(&self, peers: usize, deadline: Duration) -> Duration {
        let start = Instant::now();
        wait_for(
            &format!("every node to have {peers} peers"),
            deadline,
            || async {
                self.running()
                    .all(|n| n.network().peer_count() == peers)
                    .then_some(())
            },
        )
        .await;
        start.elapsed()
    }

    /// Asserts a clean full mesh: n-1 peers each, every pair connected exactly
    /// once with consistent directions (lower address dialed), every handshake
    /// attempt completed, no failure.
    pub fn assert_clean_full_mesh(&self) {
        let n = self.nodes.len();
        for (i, node) in self.running().enumerate() {
            let peers = node.network().peers();
            assert_eq!(peers.len(), n - 1, "n{i} peers: {peers:?}");
            let mut ids: Vec<_> = peers.iter().map(|p| p.id).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), n - 1, "n{i} holds two connections to one peer");
            let me = self.genesis.validators[i].p2p_address;
            for p in &peers {
                let j = self
                    .genesis
                    .validators
                    .iter()
                    .position(|v| v.public_key == p.id)
                    .unwrap();
                let expected = if me < p.address {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                };
                assert_eq!(p.direction, expected, "n{i} -> n{j}: wrong direction");
                let back = self.node(j).network().peers();
                let mine = back.iter().find(|q| q.id == self.keys[i].id()).unwrap();
                assert_ne!(
                    mine.direction, p.direction,
                    "n{i}<->n{j} directions disagree"
                );
            }
            let s = node.status();
            assert_eq!(s.handshake_failures, 0, "n{i}: {s:?}");
            assert_eq!(
                s.handshakes_completed, s.handshake_attempts,
                "n{i}: every attempt must complete: {s:?}"
            );
            assert_eq!(s.duplicate_connections_resolved, 0, "n{i}: {s:?}");
        }
        let total: u64 = self
            .running()
            .map(|n| n.status().handshakes_completed)
            .sum();
        assert_eq!(
            total as usize,
            n * (n - 1),
            "each of the n(n-1)/2 links completes once per side"
        );
    }

    /// Submits a payment from faucet coin `coin` at node `at` and waits (20 s)
    /// until every running node holds it final.
    pub async fn assert_payment_finalizes_from(&self, at: usize, coin: u32) {
        use testnet_node::finality::TxState;
        use testnet_node::ledger::tx::{genesis_txid, OutPoint, Transaction, TxOut};
        let net = &self.genesis.network_id;
        let value = self.genesis.initial_outputs[coin as usize].value;
        let prev = OutPoint {
            txid: genesis_txid(net),
            vout: coin,
        };
        // A fee above the floor: 1000 plus 0.1% of what is sent.
        let out = TxOut {
            owner: Keypair::generate().id(),
            value: value - 1000 - value / 500,
        };
        let tx = Transaction::signed(net, &[prev], vec![out], coin as u64, &[&self.faucet]);
        let node = self.node(at);
        let txid = node.state().replica.submit(tx).await.expect("accepted");
        wait_for(
            "the payment final everywhere",
            Duration::from_secs(20),
            || async {
                self.running()
                    .all(|n| {
                        let engine = n.state().replica.engine();
                        engine
                            .report(&txid)
                            .is_some_and(|r| r.state == TxState::Finalized)
                    })
                    .then_some(())
            },
        )
        .await;
    }

    /// [`Cluster::assert_payment_finalizes_from`] node 1, coin 1.
    pub async fn assert_payment_finalizes(&self) {
        self.assert_payment_finalizes_from(1, 1).await
    }

    pub async fn stop(&mut self, i: usize) -> bool {
        self.nodes[i]
            .take()
            .expect("node is running")
            .shutdown()
            .await
    }

    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_some() {
                self.stop(i).await;
            }
        }
    }
}

/// A hand-driven protocol peer: speaks frames directly, well or badly.
pub struct RawPeer {
    pub reader: FramedRead<OwnedReadHalf, FrameCodec>,
    pub writer: FramedWrite<OwnedWriteHalf, FrameCodec>,
    pub key: Keypair,
    /// The node's VERSION, once received.
    pub theirs: Option<Version>,
}

impl RawPeer {
    pub async fn connect(addr: SocketAddr) -> RawPeer {
        RawPeer::connect_with(addr, None).await
    }

    /// Connects with an optional SO_RCVBUF (a small one makes a non-reading peer's
    /// socket fill quickly).
    pub async fn connect_with(addr: SocketAddr, recv_buffer: Option<u32>) -> RawPeer {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let stream: TcpStream = socket.connect(addr).await.unwrap();
        let (r, w) = stream.into_split();
        RawPeer {
            reader: FramedRead::new(r, FrameCodec::new(MAX_FRAME)),
            writer: FramedWrite::new(w, FrameCodec::new(MAX_FRAME)),
            key: Keypair::generate(),
            theirs: None,
        }
    }

    /// Connects and completes an honest handshake as a non-validator.
    pub async fn authenticated(addr: SocketAddr, network_id: &str) -> RawPeer {
        RawPeer::authenticated_with(addr, network_id, None).await
    }

    pub async fn authenticated_with(
        addr: SocketAddr,
        network_id: &str,
        recv_buffer: Option<u32>,
    ) -> RawPeer {
        let peer = RawPeer::connect_with(addr, recv_buffer).await;
        let key = peer.key.clone();
        peer.handshake_as(network_id, key, "127.0.0.1:9".parse().unwrap())
            .await
    }

    /// Connects and handshakes with `key` (e.g. a real node's, to impersonate it).
    pub async fn authenticated_as(
        addr: SocketAddr,
        network_id: &str,
        key: Keypair,
        listen_addr: SocketAddr,
    ) -> RawPeer {
        RawPeer::connect(addr)
            .await
            .handshake_as(network_id, key, listen_addr)
            .await
    }

    async fn handshake_as(
        mut self,
        network_id: &str,
        key: Keypair,
        listen_addr: SocketAddr,
    ) -> RawPeer {
        let mut peer = {
            self.key = key;
            self
        };
        let hello = LocalHello {
            network_id: network_id.to_owned(),
            protocol_version: testnet_node::genesis::PROTOCOL_VERSION,
            min_peer_version: testnet_node::genesis::PROTOCOL_VERSION,
            node_id: peer.key.id(),
            listen_addr,
        };
        let nonce = rand::random();
        peer.send(&Message::Version(hello.version(nonce))).await;
        let theirs = match peer.recv().await {
            Some(Message::Version(v)) => v,
            other => panic!("expected VERSION, got {other:?}"),
        };
        let verack = make_verack(&peer.key, network_id, theirs.nonce, nonce);
        peer.send(&Message::Verack(verack)).await;
        match peer.recv().await {
            Some(Message::Verack(_)) => {}
            other => panic!("expected VERACK, got {other:?}"),
        }
        peer.theirs = Some(theirs);
        peer
    }

    pub async fn send(&mut self, m: &Message) {
        self.writer.send(m.encode()).await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.writer.get_mut().write_all(bytes).await.unwrap();
    }

    pub async fn send_payload(&mut self, payload: Bytes) {
        self.writer.send(payload).await.unwrap();
    }

    pub async fn recv(&mut self) -> Option<Message> {
        let frame = tokio::time::timeout(Duration::from_secs(5), self.reader.next())
            .await
            .expect("no frame within 5 s")?
            .ok()?;
        Message::decode(&frame).ok()
    }

    /// Reads until the node closes the connection; returns the reason it gave, if
    /// any. Panics if the connection stays open past `deadline`.
    pub async fn closed_by_node(&mut self, deadline: Duration) -> Option<DisconnectReason> {
        let start = Instant::now();
        let mut reason = None;
        loop {
            let left = deadline.saturating_sub(start.elapsed());
            match tokio::time::timeout(left, self.reader.next()).await {
                Err(_) => panic!("node did not close the connection within {deadline:?}"),
                Ok(None) | Ok(Some(Err(_))) => return reason,
                Ok(Some(Ok(frame))) => {
                    if let Ok(Message::Disconnect { reason: r }) = Message::decode(&frame) {
                        reason = Some(r);
                    }
                }
            }
        }
    }
}

/// Sum of every sample of `name` in a Prometheus text exposition whose labels
/// contain `label` (e.g. `reason="timeout"`; empty matches all).
pub fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits (up to `deadline`) until `node`'s metric `name`, summed over the
/// series whose labels contain `label`, reaches `at_least`; returns it.
pub async fn wait_for_count(
    node: &Node,
    name: &str,
    label: &str,
    at_least: f64,
    deadline: Duration,
) -> f64 {
    let what = format!("{name}{{{label}}} >= {at_least}");
    wait_for(&what, deadline, || async {
        let n = metric_sum(&node.metrics().render(), name, label);
        (n >= at_least).then_some(n)
    })
    .await
}

pub mod native;
