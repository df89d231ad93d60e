//! A thin JSON client of one node's HTTP API, as the load generator uses it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use testnet_node::api::{
    FinalizedPage, Refused, Status, Submitted, TxAnswer, Utxo, MAX_TXS_PER_REQUEST,
};
use testnet_node::identity::Keypair;
use testnet_node::ledger::tx::{Transaction, TxId};

use super::LoadError;

/// A thin JSON client of one node.
#[derive(Clone)]
pub struct NodeClient {
    http: reqwest::Client,
    base: String,
    /// Cleared once the node answered that it has no `POST /txs` (an older
    /// image): its transactions then go one request each.
    batches: Arc<AtomicBool>,
}

/// How long a page of a node's finalized list may take (a healthy node
/// answers in milliseconds).
const PAGE_TIMEOUT: Duration = Duration::from_secs(2);

/// Requests at once to a node without `POST /txs` (one per payment).
const ONE_BY_ONE_AT_ONCE: usize = 64;

/// A submission's outcome: `Ok(Ok(txid))` accepted, `Ok(Err(refusal))` refused.
pub type Answer = Result<Result<TxId, Refused>, LoadError>;

impl NodeClient {
    pub fn new(base: &str) -> Self {
        NodeClient {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("HTTP client builds"),
            base: base.trim_end_matches('/').to_owned(),
            batches: Arc::new(AtomicBool::new(true)),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, LoadError> {
        self.get_within(path, None).await
    }

    async fn get_within<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        timeout: Option<Duration>,
    ) -> Result<T, LoadError> {
        let url = format!("{}{}", self.base, path);
        let mut request = self.http.get(&url);
        if let Some(t) = timeout {
            request = request.timeout(t);
        }
        let res = request.send().await.map_err(|source| LoadError::Http {
            url: url.clone(),
            source,
        })?;
        if !res.status().is_success() {
            let status = res.status().as_u16();
            let body = res.text().await.unwrap_or_default();
            return Err(LoadError::Status { url, status, body });
        }
        res.json()
            .await
            .map_err(|source| LoadError::Http { url, source })
    }

    pub async fn status(&self) -> Result<Status, LoadError> {
        self.get("/status").await
    }

    /// A page of the node's finalized list, within [`PAGE_TIMEOUT`]: the
    /// generator reads the nodes a turn at a time, so a node that does not
    /// answer would hold the others' reads for the client's 5 s, as long as
    /// a small finality window lasts at a modest rate (200 at 40 tx/s).
    pub async fn finalized(&self, after: usize) -> Result<FinalizedPage, LoadError> {
        self.get_within(&format!("/finalized?after={after}"), Some(PAGE_TIMEOUT))
            .await
    }

    pub async fn utxos(&self, owner: &Keypair) -> Result<Vec<Utxo>, LoadError> {
        self.get(&format!("/utxos?owner={}", owner.id().to_hex()))
            .await
    }

    /// Submits transactions together (`POST /txs`, in requests of at most
    /// [`MAX_TXS_PER_REQUEST`]); one answer each, in order. A node without
    /// `POST /txs` gets them one request each, [`ONE_BY_ONE_AT_ONCE`] at once.
    pub async fn submit_many(&self, txs: &[Transaction]) -> Vec<Answer> {
        let mut answers = Vec::with_capacity(txs.len());
        for chunk in txs.chunks(MAX_TXS_PER_REQUEST) {
            if self.batches.load(Ordering::Relaxed) {
                match self.post_batch(chunk).await {
                    Ok(Some(a)) => {
                        answers.extend(a);
                        continue;
                    }
                    Ok(None) => self.batches.store(false, Ordering::Relaxed),
                    Err(e) => {
                        let error = e.to_string();
                        answers.extend(chunk.iter().map(|_| {
                            Err(LoadError::Unanswered {
                                url: format!("{}/txs", self.base),
                                error: error.clone(),
                            })
                        }));
                        continue;
                    }
                }
            }
            let each: Vec<_> = chunk.iter().map(|tx| self.submit(tx)).collect();
            let each = futures::stream::iter(each);
            answers.extend(each.buffered(ONE_BY_ONE_AT_ONCE).collect::<Vec<_>>().await);
        }
        answers
    }

    /// One `POST /txs`; `Ok(None)` when the node has no such endpoint.
    async fn post_batch(&self, txs: &[Transaction]) -> Result<Option<Vec<Answer>>, LoadError> {
        let url = format!("{}/txs", self.base);
        let http = |source| LoadError::Http {
            url: url.clone(),
            source,
        };
        let res = self.http.post(&url).json(txs).send().await.map_err(http)?;
        let status = res.status().as_u16();
        if status == 404 || status == 405 {
            return Ok(None);
        }
        if status != 200 {
            let body = res.text().await.unwrap_or_default();
            return Err(LoadError::Status { url, status, body });
        }
        let answers: Vec<TxAnswer> = res.json().await.map_err(http)?;
        if answers.len() != txs.len() {
            return Err(LoadError::Status {
                url,
                status,
                body: format!("{} answers to {} transactions", answers.len(), txs.len()),
            });
        }
        Ok(Some(
            answers
                .into_iter()
                .map(|a| match a {
                    TxAnswer::Accepted(s) => Ok(Ok(s.txid)),
                    TxAnswer::Refused(r) if r.reason == "unavailable" => {
                        Err(LoadError::Unanswered {
                            url: url.clone(),
                            error: r.error,
                        })
                    }
                    TxAnswer::Refused(r) => Ok(Err(r)),
                })
                .collect(),
        ))
    }

    /// Submits a transaction: `Ok(Ok(txid))` accepted, `Ok(Err(refusal))` refused.
    pub async fn submit(&self, tx: &Transaction) -> Answer {
        let url = format!("{}/tx", self.base);
        let res = self
            .http
            .post(&url)
            .json(tx)
            .send()
            .await
            .map_err(|source| LoadError::Http {
                url: url.clone(),
                source,
            })?;
        let status = res.status();
        if status.as_u16() == 202 {
            let s: Submitted = res
                .json()
                .await
                .map_err(|source| LoadError::Http { url, source })?;
            return Ok(Ok(s.txid));
        }
        let body = res.text().await.unwrap_or_default();
        match serde_json::from_str::<Refused>(&body) {
            Ok(r) => Ok(Err(r)),
            Err(_) => Err(LoadError::Status {
                url,
                status: status.as_u16(),
                body,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use testnet_node::ledger::tx::{OutPoint, Transaction, TxOut};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;

    /// Requests a fake node saw: path and transactions in the body.
    type Seen = Arc<Mutex<Vec<(String, usize)>>>;

    /// A fake node that accepts every transaction: `POST /tx` with 202, and
    /// `POST /txs` with one answer each, or with `txs_status` when it is not
    /// 200 (404: a node without batches).
    async fn fake_node(txs_status: u16) -> (String, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Seen::default();
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    while let Some((path, body)) = read_request(&mut stream).await {
                        let (status, answer) = match path.as_str() {
                            "/txs" if txs_status == 200 => {
                                let txs: Vec<Transaction> = serde_json::from_slice(&body).unwrap();
                                log.lock().unwrap().push((path, txs.len()));
                                let a: Vec<_> =
                                    txs.iter().map(|t| Submitted { txid: t.id() }).collect();
                                (200, serde_json::to_string(&a).unwrap())
                            }
                            "/tx" => {
                                let tx: Transaction = serde_json::from_slice(&body).unwrap();
                                log.lock().unwrap().push((path, 1));
                                (
                                    202,
                                    serde_json::to_string(&Submitted { txid: tx.id() }).unwrap(),
                                )
                            }
                            _ => {
                                log.lock().unwrap().push((path, 0));
                                (txs_status, r#"{"error":"no such endpoint"}"#.to_owned())
                            }
                        };
                        let head = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            answer.len()
                        );
                        let out = stream.get_mut();
                        if out.write_all(head.as_bytes()).await.is_err()
                            || out.write_all(answer.as_bytes()).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        (base, seen)
    }

    /// One HTTP/1.1 request: its path and body (by content-length).
    async fn read_request(
        stream: &mut BufReader<tokio::net::TcpStream>,
    ) -> Option<(String, Vec<u8>)> {
        let mut line = String::new();
        stream.read_line(&mut line).await.ok().filter(|n| *n > 0)?;
        let path = line.split_whitespace().nth(1)?.to_owned();
        let mut length = 0;
        loop {
            let mut header = String::new();
            stream.read_line(&mut header).await.ok()?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().ok()?;
                }
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.ok()?;
        Some((path, body))
    }

    fn payments(n: u64) -> Vec<Transaction> {
        let key = Keypair::from_seed([7; 32]);
        (0..n)
            .map(|memo| {
                let coin = OutPoint {
                    txid: TxId([1; 32]),
                    vout: 0,
                };
                let out = TxOut {
                    owner: key.id(),
                    value: 10,
                };
                Transaction::signed("net", &[coin], vec![out], memo, &[&key])
            })
            .collect()
    }

    fn accepted(answers: &[Answer]) -> Vec<TxId> {
        answers
            .iter()
            .map(|a| *a.as_ref().unwrap().as_ref().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn many_go_in_requests_of_at_most_the_node_limit() {
        let (base, seen) = fake_node(200).await;
        let txs = payments(MAX_TXS_PER_REQUEST as u64 + 44);
        let answers = NodeClient::new(&base).submit_many(&txs).await;
        let ids: Vec<TxId> = txs.iter().map(Transaction::id).collect();
        assert_eq!(accepted(&answers), ids, "one answer each, in order");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                ("/txs".to_owned(), MAX_TXS_PER_REQUEST),
                ("/txs".to_owned(), 44)
            ]
        );
    }

    #[tokio::test]
    async fn a_node_without_batches_gets_one_request_each_from_then_on() {
        let (base, seen) = fake_node(404).await;
        let client = NodeClient::new(&base);
        let txs = payments(3);
        let ids: Vec<TxId> = txs.iter().map(Transaction::id).collect();
        assert_eq!(accepted(&client.submit_many(&txs).await), ids);
        assert_eq!(accepted(&client.submit_many(&txs[..1]).await), ids[..1]);
        let paths: Vec<String> = seen.lock().unwrap().iter().map(|s| s.0.clone()).collect();
        assert_eq!(
            paths,
            ["/txs", "/tx", "/tx", "/tx", "/tx"],
            "asked for /txs once"
        );
    }

    #[tokio::test]
    async fn a_request_that_fails_whole_fails_each_of_its_transactions() {
        let (base, _) = fake_node(500).await;
        let answers = NodeClient::new(&base).submit_many(&payments(2)).await;
        assert_eq!(answers.len(), 2);
        for a in answers {
            let e = a.unwrap_err().to_string();
            assert!(e.contains("/txs") && e.contains("500"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_node_that_takes_connections_but_never_answers_gives_up_its_page_first() {
        // Bound, never accepting: the kernel completes the handshakes.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = NodeClient::new(&format!("http://{}", silent.local_addr().unwrap()));
        let page = tokio::time::timeout(PAGE_TIMEOUT * 2, client.finalized(0))
            .await
            .expect("the page gives up within its own timeout, not the client's 5 s");
        assert!(matches!(page, Err(LoadError::Http { .. })), "{page:?}");
    }
}
