//! What a load run reports: per-node end state, finality, latency, safety.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use testnet_node::ledger::tx::TxId;

/// What one node looked like at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub endpoint: String,
    /// Whether the node answered `/status` at the end (a node that is down
    /// is recorded so, with zeros, and fails `healthy`).
    #[serde(default = "yes")]
    pub answered: bool,
    pub name: String,
    pub finalized: u64,
    pub utxo_digest: String,
    pub total_value: u64,
    pub fees: u64,
    pub conflicting_certificates: u64,
}

/// One accepted payment (not a double spend): when it was sent and when each
/// node (in endpoint order) had it final, in Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub sent_ms: u64,
    /// The node (in endpoint order) that accepted it.
    #[serde(default)]
    pub submitted_to: Option<usize>,
    pub final_ms: Vec<Option<u64>>,
    /// Nodes that hold it final without having listed it (their list
    /// skipped it: a snapshot installed, a restart, or forgotten before it
    /// was read), their ledger agreeing with the others at the end: final
    /// there at an unknown time (no latency, no bound checked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// A signal stopped the load early; what there is was reported.
    #[serde(default)]
    pub interrupted: bool,
    pub duration_secs: f64,
    /// Payments the load meant to send: its rate times its duration.
    #[serde(default)]
    pub planned: u64,
    pub submitted: u64,
    /// Payments due that were not sent (no free coin, or too many awaiting
    /// an answer): the generator, not the network, fell short.
    #[serde(default)]
    pub skipped: u64,
    pub accepted: u64,
    /// Refusals at submission, by reason.
    pub refused: BTreeMap<String, u64>,
    pub double_spend_pairs: u64,
    /// Pairs where both twins were finalized somewhere: a safety violation.
    pub conflicting_pairs_finalized: u64,
    /// Accepted payments (not double spends) final on every node.
    pub finalized_everywhere: u64,
    /// Accepted payments (not double spends) not final on every node at the end.
    pub not_finalized: u64,
    /// Some of those, to look up with `GET /tx/{id}`.
    pub not_finalized_examples: Vec<TxId>,
    /// Finalizations nodes forgot (their `finality_window`) before the
    /// generator read them: the payments among them count as not final there.
    #[serde(default)]
    pub unread_forgotten: u64,
    /// (Payment, node) pairs final at a node that never listed them (see
    /// [`Payment::held`]).
    #[serde(default)]
    pub vouched: u64,
    /// Submission to finality at a node, over all (payment, node) pairs.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    /// Payments final everywhere per second of load.
    pub throughput_tps: f64,
    pub nodes: Vec<NodeSummary>,
    /// Every accepted payment, for finality over time.
    #[serde(default)]
    pub payments: Vec<Payment>,
    pub digests_agree: bool,
    /// Every node's `total_value + fees == genesis supply`.
    pub value_conserved: bool,
}

fn yes() -> bool {
    true
}

impl LoadReport {
    /// Some payment accepted, every valid payment final everywhere, no
    /// conflicting pair, equal ledgers.
    pub fn healthy(&self) -> bool {
        self.accepted > 0
            && !self.interrupted
            && self.nodes.iter().all(|n| n.answered)
            && self.not_finalized == 0
            && self.conflicting_pairs_finalized == 0
            && self.digests_agree
            && self.value_conserved
            && self.nodes.iter().all(|n| n.conflicting_certificates == 0)
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "load: {} of {} planned submitted in {:.1}s{}, {} accepted, refused {:?}",
            self.submitted,
            self.planned,
            self.duration_secs,
            if self.interrupted {
                " (INTERRUPTED)"
            } else {
                ""
            },
            self.accepted,
            self.refused
        )?;
        writeln!(
            f,
            "finality: {} final on every node, {} not; {:.1} tx/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.finalized_everywhere,
            self.not_finalized,
            self.throughput_tps,
            self.latency_p50_ms,
            self.latency_p99_ms,
            self.latency_max_ms
        )?;
        writeln!(
            f,
            "double spends: {} pairs, {} with both twins finalized",
            self.double_spend_pairs, self.conflicting_pairs_finalized
        )?;
        if self.unread_forgotten > 0 || self.vouched > 0 {
            writeln!(
                f,
                "  a node skipped finalizations in its list (forgot {} before the load generator \
                 read them: its finality_window; or installed a peer's snapshot): {} payments final \
                 on every other node by then count as final there, with no latency sample (its \
                 ledger agreeing at the end is the proof)",
                self.unread_forgotten, self.vouched
            )?;
        }
        if self.skipped > 0 {
            writeln!(
                f,
                "  {} payments due were not sent (no free coin, or too many awaiting an answer)",
                self.skipped
            )?;
        }
        for n in self.nodes.iter().filter(|n| !n.answered) {
            writeln!(f, "  {:<6} did not answer /status at the end", n.name)?;
        }
        for n in self.nodes.iter().filter(|n| n.answered) {
            writeln!(
                f,
                "  {:<6} finalized {:>6}  digest {}  value {} + fees {}  conflicts {}",
                n.name,
                n.finalized,
                &n.utxo_digest[..16.min(n.utxo_digest.len())],
                n.total_value,
                n.fees,
                n.conflicting_certificates
            )?;
        }
        write!(
            f,
            "ledgers {}; value {}",
            if self.digests_agree {
                "agree"
            } else {
                "DISAGREE"
            },
            if self.value_conserved {
                "conserved"
            } else {
                "NOT conserved"
            }
        )
    }
}
