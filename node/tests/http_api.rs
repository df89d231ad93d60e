//! The ledger's HTTP API on an in-process node: submission, lookups, pages, and a
//! JSON error with the right status for every kind of bad request.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{init_logs, wait_for, Cluster};
use testnet_node::ledger::tx::{genesis_txid, OutPoint, Transaction, TxOut};
use testnet_node::Keypair;

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, Value) {
    let res = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let res = client.get(url).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_over_http() {
    init_logs();
    let cluster = Cluster::start(4, |_, _| {}).await;
    cluster.wait_for_peers(3, Duration::from_secs(10)).await;
    let base = format!("http://{}", cluster.node(0).http_addr());
    let client = reqwest::Client::new();
    let net = &cluster.genesis.network_id;
    let coin = OutPoint {
        txid: genesis_txid(net),
        vout: 0,
    };
    let value = cluster.genesis.initial_outputs[0].value;
    let to = Keypair::generate();
    let pay = |memo: u64, fee: u64, signer: &Keypair| {
        Transaction::signed(
            net,
            &[coin],
            vec![TxOut {
                owner: to.id(),
                value: value - fee,
            }],
            memo,
            &[signer],
        )
    };

    // Refused before anything happens, each with a status and a reason.
    let (s, v) = post(&client, &format!("{base}/tx"), b"{not json".to_vec()).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("not a transaction"),
        "{v}"
    );
    let (s, v) = post(&client, &format!("{base}/tx"), vec![b' '; 300 * 1024]).await;
    assert_eq!(s, 413, "{v}");
    assert!(v["error"].is_string(), "{v}");
    let (s, v) = post(
        &client,
        &format!("{base}/tx"),
        serde_json::to_vec(&pay(1, 100_000_000, &Keypair::generate())).unwrap(),
    )
    .await;
    assert_eq!(
        (s, v["reason"].as_str()),
        (422, Some("bad_signature")),
        "{v}"
    );
    let (s, v) = post(
        &client,
        &format!("{base}/tx"),
        serde_json::to_vec(&pay(1, 10, &cluster.faucet)).unwrap(),
    )
    .await;
    assert_eq!((s, v["reason"].as_str()), (422, Some("fee_too_low")), "{v}");

    // Accepted, then final on every node.
    let tx = pay(1, 100_000_000, &cluster.faucet);
    let (s, v) = post(
        &client,
        &format!("{base}/tx"),
        serde_json::to_vec(&tx).unwrap(),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let txid = v["txid"].as_str().unwrap().to_owned();
    assert_eq!(txid, tx.id().to_hex());
    for n in cluster.running() {
        let url = format!("http://{}/tx/{txid}", n.http_addr());
        wait_for("finality on every node", Duration::from_secs(5), || async {
            let (s, v) = get(&client, &url).await;
            (s == 200 && v["state"] == "finalized").then_some(())
        })
        .await;
    }
    let (_, v) = get(&client, &format!("{base}/tx/{txid}")).await;
    assert!(v["approvals"].as_u64().unwrap() >= 3, "{v}");

    // The same coin again: a double spend of a final output.
    let (s, v) = post(
        &client,
        &format!("{base}/tx"),
        serde_json::to_vec(&pay(2, 100_000_000, &cluster.faucet)).unwrap(),
    )
    .await;
    assert_eq!((s, v["reason"].as_str()), (409, Some("input_spent")), "{v}");

    let (s, _) = get(&client, &format!("{base}/tx/{}", "ab".repeat(32))).await;
    assert_eq!(s, 404);
    let (s, v) = get(&client, &format!("{base}/tx/xyz")).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = get(&client, &format!("{base}/utxos?owner=nope")).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = get(&client, &format!("{base}/utxos?owner={}", to.id().to_hex())).await;
    assert_eq!(s, 200);
    assert_eq!(v[0]["value"].as_u64(), Some(value - 100_000_000));

    let (_, page) = get(&client, &format!("{base}/finalized?after=0&limit=10")).await;
    assert_eq!(page["entries"][0]["txid"].as_str(), Some(txid.as_str()));
    assert_eq!(page["next"], 1);
    let (_, page) = get(&client, &format!("{base}/finalized?after=99")).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 0);

    let (_, status) = get(&client, &format!("{base}/status")).await;
    assert_eq!(status["finalized_transactions"], 1);
    assert_eq!(
        status["total_value"].as_u64().unwrap() + status["fees"].as_u64().unwrap(),
        status["genesis_supply"].as_u64().unwrap()
    );
    assert_eq!(status["utxo_count"], 16);
    assert_eq!(status["mempool"], 0);
    let digests: Vec<String> = cluster.running().map(|n| n.status().utxo_digest).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_in_a_batch() {
    init_logs();
    let cluster = Cluster::start(4, |_, _| {}).await;
    cluster.wait_for_peers(3, Duration::from_secs(10)).await;
    let base = format!("http://{}", cluster.node(0).http_addr());
    let url = format!("{base}/txs");
    let client = reqwest::Client::new();
    let net = &cluster.genesis.network_id;
    let to = Keypair::generate();
    let pay = |vout: u32, memo: u64, fee: u64, signer: &Keypair| {
        let value = cluster.genesis.initial_outputs[vout as usize].value;
        let coin = OutPoint {
            txid: genesis_txid(net),
            vout,
        };
        let out = TxOut {
            owner: to.id(),
            value: value - fee,
        };
        Transaction::signed(net, &[coin], vec![out], memo, &[signer])
    };

    // Refused whole: not an array of transactions, or too many.
    let (s, v) = post(&client, &url, b"[{\"inputs\": 1}]".to_vec()).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("JSON array"), "{v}");
    let many = vec![pay(0, 1, 10, &cluster.faucet); 257];
    let (s, v) = post(&client, &url, serde_json::to_vec(&many).unwrap()).await;
    assert_eq!(s, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("at most 256"), "{v}");
    let (s, v) = post(&client, &url, vec![b' '; 300 * 1024]).await;
    assert_eq!(s, 413, "the body cap holds here too: {v}");
    let (s, v) = post(&client, &url, b"[]".to_vec()).await;
    assert_eq!((s, v), (200, serde_json::json!([])));

    // One answer per transaction, in order: accepted, refused for a reason,
    // and the second spend of a coin locked by the first of the same batch.
    let good = pay(0, 1, 100_000_000, &cluster.faucet);
    let other = pay(1, 2, 100_000_000, &cluster.faucet);
    let batch = vec![
        good.clone(),
        pay(2, 3, 100_000_000, &Keypair::generate()),
        pay(2, 4, 10, &cluster.faucet),
        pay(0, 5, 100_000_000, &cluster.faucet),
        other.clone(),
    ];
    let (s, v) = post(&client, &url, serde_json::to_vec(&batch).unwrap()).await;
    assert_eq!(s, 200, "{v}");
    let answers = v.as_array().unwrap();
    assert_eq!(answers.len(), 5, "{v}");
    assert_eq!(
        answers[0]["txid"].as_str(),
        Some(good.id().to_hex().as_str())
    );
    assert_eq!(answers[1]["reason"].as_str(), Some("bad_signature"), "{v}");
    assert_eq!(answers[2]["reason"].as_str(), Some("fee_too_low"), "{v}");
    assert_eq!(answers[3]["reason"].as_str(), Some("conflict"), "{v}");
    assert_eq!(
        answers[4]["txid"].as_str(),
        Some(other.id().to_hex().as_str())
    );
    let typed: Vec<testnet_node::api::TxAnswer> = serde_json::from_value(v.clone()).unwrap();
    assert!(matches!(typed[0], testnet_node::api::TxAnswer::Accepted(_)));
    assert!(matches!(typed[3], testnet_node::api::TxAnswer::Refused(_)));

    // Both accepted payments are final on every node.
    for n in cluster.running() {
        for tx in [&good, &other] {
            let url = format!("http://{}/tx/{}", n.http_addr(), tx.id());
            wait_for("finality on every node", Duration::from_secs(5), || async {
                let (s, v) = get(&client, &url).await;
                (s == 200 && v["state"] == "finalized").then_some(())
            })
            .await;
        }
    }
    cluster.shutdown().await;
}
