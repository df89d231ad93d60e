//! Checkpoints in a running cluster (in process, real stores on disk): nodes
//! with a finality window write checkpoints and rotate their logs; a node
//! stopped and started again comes back from its checkpoint and the log
//! after it with the state it had, and goes on agreeing with the others.

mod support;

use std::time::Duration;

use support::{init_logs, wait_for, Cluster};
use testnet_node::ledger::tx::{genesis_txid, OutPoint, Transaction, TxId, TxOut};
use testnet_node::{Node, NodeSetup};
use tokio::net::TcpListener;

const WINDOW: usize = 40;
const EVERY: u64 = 25;

fn tweak(_: usize, s: &mut NodeSetup) {
    s.finality_window = WINDOW;
    s.checkpoint_every = EVERY;
    s.catchup_interval = Duration::from_millis(200);
}

/// Sixteen chains, one per faucet coin, each paying itself: `rounds` rounds
/// of one payment per chain, submitted at rotating nodes (those running),
/// each round final everywhere before the next.
async fn pay(cluster: &Cluster, tips: &mut [(OutPoint, u64)], rounds: usize) {
    let net = &cluster.genesis.network_id;
    let live: Vec<usize> = (0..cluster.nodes.len())
        .filter(|i| cluster.nodes[*i].is_some())
        .collect();
    for round in 0..rounds {
        let mut ids: Vec<TxId> = Vec::new();
        for (c, (tip, value)) in tips.iter_mut().enumerate() {
            *value -= 1_000_000;
            let out = TxOut {
                owner: cluster.faucet.id(),
                value: *value,
            };
            let tx = Transaction::signed(net, &[*tip], vec![out], 0, &[&cluster.faucet]);
            let at = cluster.node(live[(round + c) % live.len()]);
            let txid = at.state().replica.submit(tx).await.expect("accepted");
            *tip = OutPoint { txid, vout: 0 };
            ids.push(txid);
        }
        wait_for(
            "a round final everywhere",
            Duration::from_secs(20),
            || async {
                cluster
                    .running()
                    .all(|n| {
                        let e = n.state().replica.engine();
                        ids.iter().all(|t| e.is_final(t))
                    })
                    .then_some(())
            },
        )
        .await;
    }
}

/// The ledger and finalized set a node holds.
fn digests(node: &Node) -> (String, TxId, usize) {
    let e = node.state().replica.engine();
    (
        e.ledger().digest().to_hex(),
        e.finalized_digest(),
        e.finalized_count(),
    )
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Node `i` started again on its data dir and ports.
async fn start_again(cluster: &Cluster, i: usize) -> Node {
    let dir = cluster.dir.path().join(format!("n{i}"));
    let addr = cluster.genesis.validators[i].p2p_address;
    let l = TcpListener::bind(addr)
        .await
        .expect("rebind the node's port");
    let mut setup = NodeSetup::new(cluster.genesis.clone(), cluster.keys[i].clone(), dir, addr);
    tweak(i, &mut setup);
    let h = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Node::start(setup, l, h).await.unwrap()
}

/// Every faucet coin as the tip of a chain.
fn chains(cluster: &Cluster) -> Vec<(OutPoint, u64)> {
    let net = &cluster.genesis.network_id;
    (0..cluster.genesis.initial_outputs.len())
        .map(|c| {
            let op = OutPoint {
                txid: genesis_txid(net),
                vout: c as u32,
            };
            (op, cluster.genesis.initial_outputs[c].value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_away_longer_than_the_window_syncs_from_a_certified_snapshot() {
    init_logs();
    let mut cluster = Cluster::start(4, tweak).await;
    cluster.wait_for_peers(3, Duration::from_secs(20)).await;
    let mut tips = chains(&cluster);
    pay(&cluster, &mut tips, 2).await;
    cluster.stop(3).await;
    // Three windows go by without n3.
    pay(&cluster, &mut tips, 8).await;
    let ahead = digests(cluster.node(0));
    assert_eq!(ahead.2, 10 * tips.len());
    let node = start_again(&cluster, 3).await;
    assert_eq!(
        digests(&node).2,
        2 * tips.len(),
        "n3 restarted where it was"
    );
    cluster.nodes[3] = Some(node);
    // The snapshot's checkpoint written is the last step of a sync.
    let synced = wait_for("n3 synced", Duration::from_secs(60), || async {
        let n3 = cluster.node(3);
        let synced = n3.state().replica.checkpoints.report().synced?;
        (digests(n3) == ahead).then_some(synced)
    })
    .await;
    assert!(synced > 2 * tips.len() as u64, "{synced}");
    // n3 takes part again (payments submitted there too), and restarts
    // from the snapshot written as its checkpoint.
    pay(&cluster, &mut tips, 4).await;
    let now = digests(cluster.node(0));
    assert_eq!(now.2, 14 * tips.len());
    cluster.stop(3).await;
    let node = start_again(&cluster, 3).await;
    assert_eq!(digests(&node), now, "n3 restarted after the sync");
    cluster.nodes[3] = Some(node);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarts_from_its_checkpoint_and_keeps_agreeing() {
    init_logs();
    let mut cluster = Cluster::start(4, tweak).await;
    cluster.wait_for_peers(3, Duration::from_secs(20)).await;
    let mut tips = chains(&cluster);
    pay(&cluster, &mut tips, 8).await;
    let before = digests(cluster.node(2));
    assert_eq!(before.2, 8 * tips.len());
    cluster.stop(2).await;
    let dir = cluster.dir.path().join("n2");
    let on_disk = files(&dir);
    let checkpoints: Vec<_> = on_disk.iter().filter(|n| n.ends_with(".ckpt")).collect();
    assert_eq!(checkpoints.len(), 1, "{on_disk:?}");
    assert!(!on_disk.contains(&"ledger.log".to_owned()), "{on_disk:?}");
    // Started again: the state is back before any peer is heard.
    let node = start_again(&cluster, 2).await;
    assert_eq!(
        digests(&node),
        before,
        "restored from the checkpoint and its log"
    );
    cluster.nodes[2] = Some(node);
    cluster.wait_for_peers(3, Duration::from_secs(20)).await;
    pay(&cluster, &mut tips, 4).await;
    let now = digests(cluster.node(0));
    assert_eq!(now.2, 12 * tips.len());
    for i in 1..4 {
        assert_eq!(digests(cluster.node(i)), now, "n{i}");
    }
    cluster.shutdown().await;
}
