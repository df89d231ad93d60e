//! What a running node shares with its HTTP handlers: identity, the network, the
//! replica's handle and the metrics, behind one `Arc`. `node` builds it, `http`
//! reads it; it knows neither of them.

use std::net::SocketAddr;
use std::time::Instant;

use crate::api::Status;
use crate::identity::NodeId;
use crate::metrics::{counter_sum, Metrics, HANDSHAKE_FAILURE_REASONS};
use crate::p2p::{self, Network};
use crate::replica::ReplicaHandle;

/// What the HTTP handlers read.
pub struct NodeState {
    pub id: NodeId,
    pub name: String,
    pub network_id: String,
    pub p2p_address: SocketAddr,
    pub expected_peers: usize,
    pub validator: bool,
    /// Names of the simulated bugs this node runs with, in `SimulatedBug` order.
    pub simulated_bugs: Vec<String>,
    pub network: Network,
    pub replica: ReplicaHandle,
    pub metrics: Metrics,
    pub started: Instant,
    pub genesis_supply: u64,
    /// The P2P protocol version it speaks.
    pub protocol_version: u32,
    /// When the process started (real Unix ms).
    pub boot_ms: u64,
}

impl NodeState {
    pub fn status(&self) -> Status {
        let p2p = &self.metrics.p2p;
        let dirs: &[&[&str]] = &[&["inbound"], &["outbound"]];
        let reasons: Vec<[&str; 1]> = HANDSHAKE_FAILURE_REASONS.iter().map(|r| [*r]).collect();
        let reasons: Vec<&[&str]> = reasons.iter().map(|r| r.as_slice()).collect();
        let peers = self.network.peers();
        let inbound = peers
            .iter()
            .filter(|p| p.direction == p2p::peers::Direction::Inbound)
            .count();
        let engine = self.replica.engine();
        let ledger = engine.ledger();
        Status {
            id: self.id,
            name: self.name.clone(),
            network_id: self.network_id.clone(),
            p2p_address: self.p2p_address,
            peers: peers.len(),
            peers_inbound: inbound,
            peers_outbound: peers.len() - inbound,
            expected_peers: self.expected_peers,
            peer_names: {
                let mut names: Vec<String> = peers.iter().map(|p| p.name.clone()).collect();
                names.sort_by_key(|n| node_order(n));
                names
            },
            validator: self.validator,
            handshake_attempts: counter_sum(&p2p.handshake_attempts, dirs),
            handshakes_completed: counter_sum(&p2p.handshakes_completed, dirs),
            handshake_failures: counter_sum(&p2p.handshake_failures, &reasons),
            duplicate_connections_resolved: p2p.duplicates_resolved.get(),
            stale_connections_replaced: p2p.stale_replaced.get(),
            simulated_bugs: self.simulated_bugs.clone(),
            utxo_count: ledger.len(),
            utxo_digest: ledger.digest().to_hex(),
            total_value: ledger.total_value(),
            fees: ledger.fees(),
            genesis_supply: self.genesis_supply,
            finalized_transactions: engine.finalized_count() as u64,
            finalized_digest: hex::encode(engine.finalized_digest().0),
            finality_window: engine.window(),
            mempool: engine.mempool_len(),
            conflicting_certificates: engine.conflicts().len() as u64,
            uptime_secs: self.started.elapsed().as_secs_f64(),
            clock: Some(self.replica.clock.report()),
            byzantine: Some(self.replica.byzantine.get()).filter(|m| !m.behaviours.is_empty()),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol_version: Some(self.protocol_version),
            store_error: self.replica.failure(),
            checkpoints: Some(self.replica.checkpoints.report()).filter(|_| engine.window() > 0),
        }
    }
}

/// `n10` after `n9`: genesis names by their number, any other name after them.
pub fn node_order(name: &str) -> (u64, String) {
    let number = name
        .strip_prefix('n')
        .and_then(|i| i.parse().ok())
        .unwrap_or(u64::MAX);
    (number, name.to_owned())
}
