//! The engine's vocabulary: what it exchanges with peers, persists, returns
//! as effects, and reports about a transaction.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::inventory::Inventory;
use super::quorum::{Certificate, Vote};
use super::votes::VoteBatch;
use crate::identity::NodeId;
use crate::ledger::tx::{OutPoint, Transaction, TxId, TxOut};
use crate::ledger::UtxoDigest;

/// Messages of the ledger, carried by the P2P layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerMessage {
    Tx(Transaction),
    Vote(Vote),
    Certificate(Arc<Certificate>),
    Inventory(Inventory),
    /// Our finalized txids in the buckets where an inventory differed from ours.
    Have(Vec<TxId>),
    GetCertificates(Vec<TxId>),
    Certificates(Vec<Certificate>),
    /// A checkpoint's state, for validators to attest from their windows.
    Claim(Box<Claim>),
    /// A validator's attestation of a claim (by the claim's hash).
    ClaimVote(ClaimVote),
    /// A node far behind asks for a snapshot (state sync).
    GetSnapshot,
    /// A certified claim whose checkpoint can be fetched, in parts.
    SnapshotOffer(Box<CertifiedClaim>),
    GetSnapshotPart {
        seq: u64,
        index: u32,
    },
    /// Part `index` of the checkpoint at `seq` (its state, not its locks).
    SnapshotPart {
        seq: u64,
        index: u32,
        records: Vec<Record>,
        last: bool,
    },
    /// A validator's votes of one batch under one signature.
    Votes(VoteBatch),
}

impl LedgerMessage {
    pub fn kind(&self) -> &'static str {
        match self {
            LedgerMessage::Tx(_) => "tx",
            LedgerMessage::Vote(_) => "vote",
            LedgerMessage::Certificate(_) => "certificate",
            LedgerMessage::Inventory(_) => "inventory",
            LedgerMessage::Have(_) => "have",
            LedgerMessage::GetCertificates(_) => "get_certificates",
            LedgerMessage::Certificates(_) => "certificates",
            LedgerMessage::Claim(_) => "claim",
            LedgerMessage::ClaimVote(_) => "claim_vote",
            LedgerMessage::GetSnapshot => "get_snapshot",
            LedgerMessage::SnapshotOffer(_) => "snapshot_offer",
            LedgerMessage::GetSnapshotPart { .. } => "get_snapshot_part",
            LedgerMessage::SnapshotPart { .. } => "snapshot_part",
            LedgerMessage::Votes(_) => "votes",
        }
    }
}

/// What the engine persists; replayed in order on start. New variants go at
/// the end (postcard numbers them): logs written before still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// We approved `tx` and locked its inputs.
    Lock(Transaction),
    /// `Certificate` was applied to the ledger (older logs: no time kept).
    Finalized(Certificate),
    /// A transaction we had locked was rejected by these votes (a quorum of
    /// rejections): replayed, it is decided again instead of pending for
    /// ever, and its votes can be offered to peers that missed them.
    Rejected { txid: TxId, votes: Vec<Vote> },
    /// `cert` was applied to the ledger at `at_ms` (the node's clock).
    FinalizedAt { cert: Arc<Certificate>, at_ms: u64 },
    /// The first record of a checkpoint: the state after `seq` finalizations,
    /// restored by the records after it up to `End` (a checkpoint file only).
    Checkpoint(Box<CheckpointHeader>),
    /// Unspent outputs at the checkpoint (in chunks).
    Utxos(Vec<(OutPoint, TxOut)>),
    /// A finalization of the checkpoint's window, in the order applied:
    /// restored as it was kept, not applied again.
    Recent(Box<Recent>),
    /// Locks held at the checkpoint (by pending and rejected transactions).
    Locks(Vec<(OutPoint, TxId)>),
    /// The last record of a whole checkpoint: how many came before it.
    End { records: u64 },
    /// What each finalization of the window (in order) changed in the
    /// ledger, where known (after `Recent`; older checkpoints have none).
    Deltas(Vec<Option<Delta>>),
}

/// What applying one finalized transaction changed in the ledger: the
/// difference of the UTXO digest (mod 2^256), of the count of unspent
/// outputs and of their total value. Independent of the order applied, so a
/// node can compute another's state from its own (claims).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub digest: UtxoDigest,
    pub count: i64,
    pub value: i128,
}

/// A node's state after `seq` finalizations (a checkpoint it holds), with
/// the last finalizations before it in its order (`tail`): a validator whose
/// window covers them attests it by rebuilding the same state from its own
/// history (the set before the tail is the same on honest nodes; the tail
/// absorbs the order in which each applied the last ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub network_id: String,
    pub seq: u64,
    pub whole: TxId,
    pub buckets: Vec<TxId>,
    pub utxo_digest: UtxoDigest,
    pub utxo_count: u64,
    pub total_value: u64,
    pub tail: Vec<TxId>,
}

/// A validator's signature on a claim's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimVote {
    #[serde(with = "crate::fixed_bytes::raw32")]
    pub claim: [u8; 32],
    pub voter: NodeId,
    pub signature: crate::ledger::tx::Signature,
}

/// A claim with attestations of more than a third of the validators (so at
/// least one honest one checked it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertifiedClaim {
    pub claim: Claim,
    pub votes: Vec<ClaimVote>,
}

/// What a checkpoint's state must add up to, checked once it is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// [`CheckpointHeader::VERSION`] when written.
    pub version: u32,
    pub network_id: String,
    /// Finalizations ever applied (the finalized set's count).
    pub seq: u64,
    /// The finalized set's digests: the whole set, and each bucket's.
    pub whole: TxId,
    pub buckets: Vec<TxId>,
    pub utxo_digest: UtxoDigest,
    pub utxo_count: u64,
    pub total_value: u64,
    pub fees: u64,
    /// `Recent` records that follow (the window).
    pub recent: u64,
    /// Pairs of conflicting certificates seen (a safety violation).
    pub conflicts: Vec<(TxId, TxId)>,
}

impl CheckpointHeader {
    /// The layout of the records after the header.
    pub const VERSION: u32 = 1;
}

/// A finalization kept in the window, as a checkpoint holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recent {
    pub cert: Arc<Certificate>,
    pub at_ms: u64,
    pub first_seen_ms: u64,
    pub fee: u64,
    pub approvals: u32,
    pub rejections: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Persist(Record),
    Broadcast(LedgerMessage),
    Send(NodeId, LedgerMessage),
    /// Pass on what peer `.0` sent us and was new here, to every other peer.
    Relay(NodeId, LedgerMessage),
    /// Send peer `to` part `index` of our checkpoint at `seq` (read from
    /// disk by the driver: [`super::snapshot_part`]).
    ServeSnapshot {
        to: NodeId,
        seq: u64,
        index: u32,
    },
    /// A snapshot was installed: the driver writes the engine's state as a
    /// checkpoint (and starts a new log) before anything else leaves.
    Installed {
        seq: u64,
    },
}

/// Seeded bugs of the ledger (see `SimulatedBug`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Finalized transactions never remove their inputs from the UTXO set.
    pub utxo_no_spend: bool,
    /// Approve every valid transaction, ignoring locks held by conflicting ones.
    pub equivocate: bool,
    /// Never fetch missing certificates (no inventories, no requests).
    pub passive_catchup: bool,
    /// Do not persist locks: after a restart, forget what we approved.
    pub no_lock_persist: bool,
}

/// Where a transaction stands at this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TxState {
    Pending,
    Finalized,
    Rejected,
}

/// What `GET /tx/{id}` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxReport {
    pub txid: TxId,
    pub state: TxState,
    /// Unix milliseconds when this node first saw it.
    pub first_seen_ms: u64,
    /// Unix milliseconds when it was finalized or rejected here.
    pub decided_ms: Option<u64>,
    pub approvals: usize,
    pub rejections: usize,
    /// Why it was rejected, when it was.
    pub reason: Option<String>,
    pub fee: Option<u64>,
}
