//! JSON types of the node's HTTP API, shared with the orchestrator so the two can
//! never drift apart; [`agent`] holds those of the agent's control API.

pub mod agent;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::identity::NodeId;
pub use crate::p2p::PeerInfo;

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub id: NodeId,
    /// Genesis name (`n0`...) for genesis nodes, else a short id.
    pub name: String,
    pub network_id: String,
    /// The P2P address this node is known by.
    pub p2p_address: SocketAddr,
    /// Established peers, both directions.
    pub peers: usize,
    pub peers_inbound: usize,
    pub peers_outbound: usize,
    /// The peers this node should have: its topology neighbours, or every
    /// other genesis node in a full mesh.
    pub expected_peers: usize,
    /// Names of the established peers, sorted (a short id for a peer outside
    /// genesis).
    #[serde(default)]
    pub peer_names: Vec<String>,
    /// Whether this node votes (a genesis validator); full nodes follow
    /// certificates.
    #[serde(default = "yes")]
    pub validator: bool,
    pub handshake_attempts: u64,
    pub handshakes_completed: u64,
    pub handshake_failures: u64,
    pub duplicate_connections_resolved: u64,
    /// Inbound connections replaced by their peer's redial (not duplicates:
    /// the old one had ended on the peer's side). Absent from older nodes.
    #[serde(default)]
    pub stale_connections_replaced: u64,
    /// Names of the `--simulate-bug` flags this node runs with.
    pub simulated_bugs: Vec<String>,
    /// Unspent outputs in the ledger.
    pub utxo_count: usize,
    /// Order-independent digest of the UTXO set: equal on nodes that agree.
    pub utxo_digest: String,
    /// Value held by unspent outputs; `total_value + fees == genesis_supply`.
    pub total_value: u64,
    pub fees: u64,
    pub genesis_supply: u64,
    pub finalized_transactions: u64,
    /// Order-independent digest of the finalized set (hex): equal on nodes
    /// that finalized the same transactions.
    #[serde(default)]
    pub finalized_digest: String,
    /// The finalizations whose certificates this node keeps
    /// (`--finality-window`; 0: all of them).
    #[serde(default)]
    pub finality_window: usize,
    /// Transactions seen but neither finalized nor rejected.
    pub mempool: usize,
    /// Certificates that spent outputs already spent (a safety violation seen here).
    pub conflicting_certificates: u64,
    pub uptime_secs: f64,
    /// The node's clock: its skew (a clock fault) and its time now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<crate::clock::ClockReport>,
    /// Byzantine behaviours switched on live (a fault); absent when honest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byzantine: Option<crate::byzantine::Misbehaviour>,
    pub version: String,
    /// The P2P protocol version the node speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u32>,
    /// Set when the node's store failed (I/O error, disk full): it has
    /// stopped voting, and `/health` answers 503 with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
    /// The ledger's checkpoints (with a finality window): the one this node
    /// started from, and the newest it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<crate::datadir::CheckpointReport>,
}

fn yes() -> bool {
    true
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
}

/// Every error response: a status code and this body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// `POST /tx` accepted it (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub txid: crate::ledger::tx::TxId,
}

/// A refused transaction (4xx): `reason` is the label of
/// `testnet_transactions_rejected_total`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub error: String,
    pub reason: String,
}

/// Most transactions in one `POST /txs`.
pub const MAX_TXS_PER_REQUEST: usize = 256;

/// One transaction's answer in `POST /txs` (in the order sent): accepted, or
/// refused as `POST /tx` would refuse it (`reason` `unavailable`: the node is
/// shutting down or its store failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TxAnswer {
    Accepted(Submitted),
    Refused(Refused),
}

/// One entry of `GET /finalized`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizedEntry {
    pub txid: crate::ledger::tx::TxId,
    /// Unix milliseconds when this node applied it.
    pub at_ms: u64,
}

/// `GET /finalized?after=N&limit=M`: this node's finalized transactions in the
/// order it applied them, from position `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizedPage {
    pub entries: Vec<FinalizedEntry>,
    /// Pass as `after` to get the next page.
    pub next: usize,
    /// The position of the first entry: more than `after` when the node
    /// forgot the ones before (its `--finality-window`).
    #[serde(default)]
    pub first: usize,
    pub total: usize,
    /// When this node process started (real Unix ms): another value means
    /// it restarted and its list was rebuilt (read it again from the start).
    #[serde(default)]
    pub boot_ms: u64,
    /// Snapshots the node installed since it started (state sync): another
    /// value means its list was replaced by a peer's (read it again from the
    /// start; what came before its first entry came with the snapshot).
    #[serde(default)]
    pub snapshots: u64,
}

/// `GET /utxos?owner=KEY`: the unspent outputs a key owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utxo {
    pub outpoint: crate::ledger::tx::OutPoint,
    pub value: u64,
}
