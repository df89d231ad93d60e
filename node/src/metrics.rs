//! The node's Prometheus metrics: one struct per component, registered once on a
//! registry owned by the node (no global state), served by `GET /metrics`.
//!
//! Names follow the metrics contract in DESIGN.md; the orchestrator's checkers and
//! the dashboards read them. Every labelled series a dashboard may query is created
//! at zero on start, so `rate()` has data before the first event.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every `reason` of `testnet_handshake_failures_total`, pre-created at zero.
pub const HANDSHAKE_FAILURE_REASONS: &[&str] = &[
    "bad_magic",
    "frame_too_large",
    "truncated_frame",
    "malformed_message",
    "unexpected_message",
    "wrong_network",
    "protocol_version",
    "bad_public_key",
    "bad_signature",
    "self_connection",
    "timeout",
    "connection_closed",
    "refused",
    "io_error",
    "duplicate_connection",
    "inbound_limit",
    "unknown_peer",
    "address_claim",
    "source_limit",
];

/// Every `reason` of `testnet_peer_disconnects_total`.
pub const DISCONNECT_REASONS: &[&str] = &[
    "ping_timeout",
    "peer_closed",
    "peer_shutdown",
    "peer_protocol_violation",
    "peer_slow",
    "peer_too_many",
    "duplicate",
    "redialed",
    "shutdown",
    "send_queue_full",
    "write_timeout",
    "bad_frame",
    "malformed_message",
    "unexpected_message",
    "io_error",
];

pub const MESSAGE_TYPES: &[&str] = &[
    "version",
    "verack",
    "ping",
    "pong",
    "disconnect",
    "tx",
    "vote",
    "votes",
    "certificate",
    "inventory",
    "have",
    "get_certificates",
    "certificates",
];

/// Metrics of the P2P layer.
#[derive(Clone)]
pub struct P2pMetrics {
    /// Connections that reached the handshake (TCP established), by direction.
    pub handshake_attempts: IntCounterVec,
    /// Handshakes that authenticated the peer, by direction.
    pub handshakes_completed: IntCounterVec,
    /// Connections that failed before becoming a peer, by reason.
    pub handshake_failures: IntCounterVec,
    /// Established peers, by direction.
    pub peers: IntGaugeVec,
    /// Authenticated connections closed because another one to the same peer won.
    pub duplicates_resolved: IntCounter,
    /// Inbound connections closed because their peer dialed again (the old one
    /// was dead on its side): no duplicate, counted apart so it is not taken for one.
    pub stale_replaced: IntCounter,
    /// Frames sent and received after framing, by direction and message type.
    pub messages: IntCounterVec,
    /// Bytes of those frames (header included).
    pub bytes: IntCounterVec,
    /// Round trip of ping/pong.
    pub ping_rtt: Histogram,
    /// Established peers lost, by reason.
    pub disconnects: IntCounterVec,
    /// Outbound TCP connects that failed (refused, timed out), by reason.
    pub dial_failures: IntCounterVec,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

impl P2pMetrics {
    pub fn register(registry: &Registry) -> Self {
        let m = P2pMetrics {
            handshake_attempts: counter_vec(
                registry,
                "testnet_handshake_attempts_total",
                "Connections that reached the VERSION/VERACK handshake, by direction.",
                &["direction"],
            ),
            handshakes_completed: counter_vec(
                registry,
                "testnet_handshakes_completed_total",
                "Handshakes that authenticated the peer, by direction.",
                &["direction"],
            ),
            handshake_failures: counter_vec(
                registry,
                "testnet_handshake_failures_total",
                "Connections that failed before becoming a peer, by reason.",
                &["reason"],
            ),
            peers: {
                let g = IntGaugeVec::new(
                    Opts::new("testnet_peers", "Established peers, by direction."),
                    &["direction"],
                )
                .expect("valid metric definition");
                registry
                    .register(Box::new(g.clone()))
                    .expect("metric registered once");
                g
            },
            duplicates_resolved: {
                let c = IntCounter::new(
                    "testnet_duplicate_connections_resolved_total",
                    "Authenticated connections closed because another connection to the same peer won the duplicate rule.",
                )
                .expect("valid metric definition");
                registry
                    .register(Box::new(c.clone()))
                    .expect("metric registered once");
                c
            },
            stale_replaced: {
                let c = IntCounter::new(
                    "testnet_stale_connections_replaced_total",
                    "Inbound connections replaced by a newer one from the same peer, which redialed because the old one had ended on its side (a restart, a timeout while this node was paused or cut off). Not duplicates.",
                )
                .expect("valid metric definition");
                registry
                    .register(Box::new(c.clone()))
                    .expect("metric registered once");
                c
            },
            messages: counter_vec(
                registry,
                "testnet_messages_total",
                "P2P messages, by direction (sent/received) and type.",
                &["direction", "type"],
            ),
            bytes: counter_vec(
                registry,
                "testnet_bytes_total",
                "P2P bytes including frame headers, by direction (sent/received) and type.",
                &["direction", "type"],
            ),
            ping_rtt: {
                let h = Histogram::with_opts(
                    HistogramOpts::new(
                        "testnet_ping_rtt_seconds",
                        "Round-trip time of P2P ping/pong.",
                    )
                    .buckets(vec![
                        0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25,
                        0.5, 1.0, 2.5, 5.0,
                    ]),
                )
                .expect("valid metric definition");
                registry
                    .register(Box::new(h.clone()))
                    .expect("metric registered once");
                h
            },
            disconnects: counter_vec(
                registry,
                "testnet_peer_disconnects_total",
                "Established peers lost, by reason.",
                &["reason"],
            ),
            dial_failures: counter_vec(
                registry,
                "testnet_dial_failures_total",
                "Outbound TCP connects that failed before any handshake, by reason.",
                &["reason"],
            ),
        };
        for d in ["inbound", "outbound"] {
            m.handshake_attempts.with_label_values(&[d]);
            m.handshakes_completed.with_label_values(&[d]);
            m.peers.with_label_values(&[d]).set(0);
        }
        for r in HANDSHAKE_FAILURE_REASONS {
            m.handshake_failures.with_label_values(&[r]);
        }
        for r in DISCONNECT_REASONS {
            m.disconnects.with_label_values(&[r]);
        }
        for d in ["sent", "received"] {
            for t in MESSAGE_TYPES {
                m.messages.with_label_values(&[d, t]);
                m.bytes.with_label_values(&[d, t]);
            }
        }
        m
    }
}

/// Metrics of the ledger and vote finality.
#[derive(Clone)]
pub struct FinalityMetrics {
    /// Votes sent and received, by direction and vote (approve/reject).
    pub votes: IntCounterVec,
    /// Certificates this node assembled from a quorum of votes.
    pub certificates: IntCounter,
    /// Transactions applied to the ledger (certificate verified, parents present).
    pub finalized: IntCounter,
    /// From first sight of a transaction at this node to its certificate.
    pub finality_latency: Histogram,
    /// Transactions refused, by reason.
    pub rejected: IntCounterVec,
    pub utxo_set_size: IntGauge,
    /// The first 48 bits of the UTXO digest as a number: equal on nodes whose
    /// ledgers agree, so Prometheus can count distinct ledgers.
    pub utxo_digest_prefix: IntGauge,
    /// The first 48 bits of the finalized-set digest: equal on nodes that
    /// finalized the same transactions.
    pub finalized_digest_prefix: IntGauge,
    pub mempool: IntGauge,
    /// Certificates obtained through catch-up (inventory reconciliation).
    pub caught_up: IntCounter,
    /// Certificates whose inputs were already spent by another finalized
    /// transaction: a safety violation, never seen on an honest network.
    pub conflicting_certificates: IntCounter,
    /// State syncs from a peer's snapshot, by result (ok/refused/timeout).
    pub state_syncs: IntCounterVec,
    /// Checkpoint claims: ours certified, and peers' we attested.
    pub claims: IntCounterVec,
}

impl FinalityMetrics {
    pub fn register(registry: &Registry) -> Self {
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric definition");
            registry
                .register(Box::new(g.clone()))
                .expect("metric registered once");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric definition");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        let m = FinalityMetrics {
            votes: counter_vec(
                registry,
                "testnet_votes_total",
                "Finality votes, by direction (sent/received/dropped) and vote (approve/reject/invalid).",
                &["direction", "vote"],
            ),
            certificates: counter(
                "testnet_certificates_total",
                "Certificates this node assembled from more than 2/3 approvals.",
            ),
            finalized: counter(
                "testnet_finalized_transactions_total",
                "Transactions finalized and applied to this node's ledger.",
            ),
            finality_latency: {
                let h = Histogram::with_opts(
                    HistogramOpts::new(
                        "testnet_finality_latency_seconds",
                        "Time from first seeing a transaction to its certificate, at this node.",
                    )
                    .buckets(vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0, 30.0,
                    ]),
                )
                .expect("valid metric definition");
                registry.register(Box::new(h.clone())).expect("metric registered once");
                h
            },
            rejected: counter_vec(
                registry,
                "testnet_transactions_rejected_total",
                "Transactions refused, by reason.",
                &["reason"],
            ),
            utxo_set_size: gauge("testnet_utxo_set_size", "Unspent outputs in this node's ledger."),
            utxo_digest_prefix: gauge(
                "testnet_utxo_digest_prefix",
                "First 48 bits of the UTXO digest: equal on nodes that agree.",
            ),
            finalized_digest_prefix: gauge(
                "testnet_finalized_digest_prefix",
                "First 48 bits of the finalized-set digest: equal on nodes that finalized the same transactions.",
            ),
            mempool: gauge(
                "testnet_mempool_transactions",
                "Transactions seen but neither finalized nor rejected.",
            ),
            caught_up: counter(
                "testnet_catchup_certificates_total",
                "Certificates fetched from peers by catch-up.",
            ),
            conflicting_certificates: counter(
                "testnet_conflicting_certificates_total",
                "Certificates spending outputs another finalized transaction spent (safety violation).",
            ),
            state_syncs: counter_vec(
                registry,
                "testnet_state_syncs_total",
                "State syncs from a peer's certified snapshot, by result (ok/refused/timeout).",
                &["result"],
            ),
            claims: counter_vec(
                registry,
                "testnet_checkpoint_claims_total",
                "Checkpoint claims: this node's certified, and peers' it attested.",
                &["result"],
            ),
        };
        for r in ["ok", "refused", "timeout"] {
            m.state_syncs.with_label_values(&[r]);
        }
        for r in ["certified", "attested"] {
            m.claims.with_label_values(&[r]);
        }
        for d in ["sent", "received"] {
            for v in ["approve", "reject"] {
                m.votes.with_label_values(&[d, v]);
            }
        }
        // Votes from peers whose signature does not verify (a Byzantine sender).
        m.votes.with_label_values(&["dropped", "invalid"]);
        for r in crate::ledger::REJECTION_REASONS {
            m.rejected.with_label_values(&[r]);
        }
        m
    }
}

/// All metrics of one node and the registry that serves them.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub p2p: P2pMetrics,
    pub finality: FinalityMetrics,
    /// Peers this node should have (its topology neighbours, or a full mesh).
    pub expected_peers: IntGauge,
    /// 1 once the store failed (disk full, I/O error): the node stopped voting.
    pub store_failed: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let p2p = P2pMetrics::register(&registry);
        let finality = FinalityMetrics::register(&registry);
        let expected_peers = IntGauge::new(
            "testnet_expected_peers",
            "Peers this node should have: its topology neighbours, or every other genesis node in a full mesh.",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(expected_peers.clone()))
            .expect("metric registered once");
        let store_failed = IntGauge::new(
            "testnet_store_failed",
            "1 once the node's store failed (disk full, I/O error): it stopped voting and /health answers 503.",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(store_failed.clone()))
            .expect("metric registered once");
        Metrics {
            registry,
            p2p,
            finality,
            expected_peers,
            store_failed,
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut buf = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("Prometheus text is UTF-8")
    }
}

/// Sum of a counter family over all its label values (tests and `/status`).
pub fn counter_sum(c: &IntCounterVec, label_sets: &[&[&str]]) -> u64 {
    label_sets
        .iter()
        .map(|l| c.with_label_values(l).get())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_names_are_exported_with_help_and_zero_series() {
        let text = Metrics::new().render();
        for name in [
            "testnet_handshake_attempts_total{direction=\"inbound\"} 0",
            "testnet_handshakes_completed_total{direction=\"outbound\"} 0",
            "testnet_handshake_failures_total{reason=\"bad_signature\"} 0",
            "testnet_peers{direction=\"inbound\"} 0",
            "testnet_duplicate_connections_resolved_total 0",
            "testnet_stale_connections_replaced_total 0",
            "testnet_messages_total{direction=\"sent\",type=\"ping\"} 0",
            "testnet_bytes_total{direction=\"received\",type=\"pong\"} 0",
            "testnet_ping_rtt_seconds_bucket{le=\"0.1\"} 0",
            "testnet_votes_total{direction=\"sent\",vote=\"approve\"} 0",
            "testnet_certificates_total 0",
            "testnet_finalized_transactions_total 0",
            "testnet_finality_latency_seconds_bucket{le=\"0.1\"} 0",
            "testnet_transactions_rejected_total{reason=\"fee_too_low\"} 0",
            "testnet_utxo_set_size 0",
            "testnet_utxo_digest_prefix 0",
            "testnet_finalized_digest_prefix 0",
            "testnet_expected_peers 0",
            "testnet_mempool_transactions 0",
        ] {
            assert!(text.contains(name), "missing {name}");
        }
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split_whitespace().nth(2).unwrap();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no help"
            );
        }
    }
}
