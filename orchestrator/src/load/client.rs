//! A thin JSON client of one node's HTTP API, as the load generator uses it.

use std::time::Duration;

use testnet_node::api::{FinalizedPage, Refused, Status, Submitted, Utxo};
use testnet_node::identity::Keypair;
use testnet_node::ledger::tx::{Transaction, TxId};

use super::LoadError;

/// A thin JSON client of one node.
#[derive(Clone)]
pub struct NodeClient {
    http: reqwest::Client,
    base: String,
}

impl NodeClient {
    pub fn new(base: &str) -> Self {
        NodeClient {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("HTTP client builds"),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, LoadError> {
        let url = format!("{}{}", self.base, path);
        let res = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|source| LoadError::Http {
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

    pub async fn finalized(&self, after: usize) -> Result<FinalizedPage, LoadError> {
        self.get(&format!("/finalized?after={after}")).await
    }

    pub async fn utxos(&self, owner: &Keypair) -> Result<Vec<Utxo>, LoadError> {
        self.get(&format!("/utxos?owner={}", owner.id().to_hex()))
            .await
    }

    /// Submits a transaction: `Ok(Ok(txid))` accepted, `Ok(Err(refusal))` refused.
    pub async fn submit(&self, tx: &Transaction) -> Result<Result<TxId, Refused>, LoadError> {
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
