//! Votes signed in batches: a validator signs the root of a Merkle tree whose
//! leaves are its decisions of one replica batch, once, instead of each
//! decision. Each vote carries its path to that root ([`Proof`]), so a vote
//! (and a certificate's approval) still stands alone: whoever holds it
//! checks the path and the one signature, and the signatures of one batch
//! are checked once ([`crate::identity::Verified`] dedups them).
//!
//! Leaves and inner nodes are hashed with different prefixes, so no inner
//! node passes for a leaf; an odd node at the end of a level is paired with
//! itself. A single vote's path is empty: its root is its leaf.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::quorum::Vote;
use crate::identity::{Keypair, NodeId};
use crate::ledger::tx::{Signature, TxId};

/// Decisions in one signed batch, at most (a path of at most 8 hashes).
pub const MAX_VOTES_PER_BATCH: usize = 256;
/// Hashes in a path, at most (a tree of [`MAX_VOTES_PER_BATCH`] leaves).
const MAX_DEPTH: usize = 8;

type Hash = [u8; 32];

/// A vote's path to the root its batch's signature covers: the sibling at
/// each level, from the leaf up; `index`'s bits say on which side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Proof {
    pub index: u32,
    #[serde(with = "crate::fixed_bytes::raw32_seq")]
    pub siblings: Vec<Hash>,
}

impl Proof {
    /// The root this path leads to from `leaf`; `None` for a path longer
    /// than any batch's or an index past its end (one path per leaf).
    pub fn root(&self, leaf: Hash) -> Option<Hash> {
        let depth = self.siblings.len();
        if depth > MAX_DEPTH || (self.index as u64) >> depth != 0 {
            return None;
        }
        Some(
            self.siblings
                .iter()
                .enumerate()
                .fold(leaf, |h, (level, s)| match (self.index >> level) & 1 {
                    0 => inner(&h, s),
                    _ => inner(s, &h),
                }),
        )
    }
}

/// The leaf of a decision on `txid`.
pub fn leaf(txid: &TxId, approve: bool) -> Hash {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(txid.0)
        .chain_update([approve as u8])
        .finalize()
        .into()
}

fn inner(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// What a validator signs for a batch whose root is `root`.
pub fn signed_message(network_id: &str, root: &Hash) -> Hash {
    Sha256::new()
        .chain_update(b"testnet-votes-v2\0")
        .chain_update(network_id.as_bytes())
        .chain_update(b"\0")
        .chain_update(root)
        .finalize()
        .into()
}

/// The root of `leaves` (not empty), without the paths: what a peer checks
/// a batch's signature against.
pub fn root(leaves: Vec<Hash>) -> Hash {
    let mut level = leaves;
    while level.len() > 1 {
        for i in 0..level.len().div_ceil(2) {
            // Reads 2i and 2i + 1, at or past i: each pair before it is written.
            let h = inner(&level[2 * i], level.get(2 * i + 1).unwrap_or(&level[2 * i]));
            level[i] = h;
        }
        level.truncate(level.len().div_ceil(2));
    }
    level[0]
}

/// The root of `leaves` and each leaf's path to it (`leaves` not empty).
pub fn tree(leaves: &[Hash]) -> (Hash, Vec<Proof>) {
    let depth = leaves.len().next_power_of_two().trailing_zeros() as usize;
    let mut proofs: Vec<Proof> = (0..leaves.len())
        .map(|i| Proof {
            index: i as u32,
            siblings: Vec::with_capacity(depth),
        })
        .collect();
    let mut level = leaves.to_vec();
    // Which node of the current level each leaf sits under.
    let mut at: Vec<usize> = (0..leaves.len()).collect();
    while level.len() > 1 {
        for (proof, pos) in proofs.iter_mut().zip(&mut at) {
            let sibling = (*pos ^ 1).min(level.len() - 1);
            proof.siblings.push(level[sibling]);
            *pos /= 2;
        }
        level = level
            .chunks(2)
            .map(|pair| inner(&pair[0], pair.get(1).unwrap_or(&pair[0])))
            .collect();
    }
    (level[0], proofs)
}

/// A validator's decisions of one batch under one signature: what goes on
/// the wire (each peer rebuilds the paths).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteBatch {
    pub voter: NodeId,
    pub decisions: Vec<(TxId, bool)>,
    pub signature: Signature,
}

impl VoteBatch {
    /// Signs `decisions` as one batch (peers take 1 to
    /// [`MAX_VOTES_PER_BATCH`]; at least one).
    pub fn sign(key: &Keypair, network_id: &str, decisions: Vec<(TxId, bool)>) -> VoteBatch {
        Self::sign_open(key, network_id, decisions).0
    }

    /// [`VoteBatch::sign`], with each decision as a vote (one tree for both).
    pub fn sign_open(
        key: &Keypair,
        network_id: &str,
        decisions: Vec<(TxId, bool)>,
    ) -> (VoteBatch, Vec<Vote>) {
        assert!(!decisions.is_empty(), "a batch of no votes");
        let mut batch = VoteBatch {
            voter: key.id(),
            signature: Signature([0; 64]),
            decisions,
        };
        let (msg, mut votes) = batch.open(network_id);
        batch.signature = Signature(key.sign(&msg));
        for v in &mut votes {
            v.signature = batch.signature;
        }
        (batch, votes)
    }

    /// Whether the batch's size is one a validator signs.
    pub fn well_formed(&self) -> bool {
        (1..=MAX_VOTES_PER_BATCH).contains(&self.decisions.len())
    }

    /// The message the signature must cover (the batch well formed).
    pub fn message(&self, network_id: &str) -> Hash {
        signed_message(network_id, &root(leaves(&self.decisions)))
    }

    /// Each decision as a vote standing alone, with its path.
    pub fn votes(&self) -> Vec<Vote> {
        self.open("").1
    }

    /// The message the signature must cover, and each decision as a vote
    /// with its path (one tree for both).
    pub fn open(&self, network_id: &str) -> ([u8; 32], Vec<Vote>) {
        let (root, proofs) = tree(&leaves(&self.decisions));
        let votes = self
            .decisions
            .iter()
            .zip(proofs)
            .map(|(&(txid, approve), proof)| Vote {
                txid,
                voter: self.voter,
                approve,
                signature: self.signature,
                proof,
            })
            .collect();
        (signed_message(network_id, &root), votes)
    }
}

fn leaves(decisions: &[(TxId, bool)]) -> Vec<Hash> {
    decisions.iter().map(|(t, a)| leaf(t, *a)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txid(i: u32) -> TxId {
        TxId(Sha256::digest(i.to_le_bytes()).into())
    }

    #[test]
    fn every_leaf_proves_into_the_root_and_nothing_else_does() {
        for n in [1usize, 2, 3, 4, 5, 7, 8, 9, 31, 256] {
            let decisions: Vec<_> = (0..n as u32).map(|i| (txid(i), i % 3 != 0)).collect();
            let leaves = leaves(&decisions);
            let (root, proofs) = tree(&leaves);
            assert_eq!(
                super::root(leaves.clone()),
                root,
                "the root alone, {n} leaves"
            );
            assert_eq!(proofs.len(), n);
            for (i, p) in proofs.iter().enumerate() {
                assert_eq!(p.root(leaves[i]), Some(root), "n={n} leaf {i}");
                // The other side of the same transaction is not in the batch.
                let (t, a) = decisions[i];
                assert_ne!(p.root(leaf(&t, !a)), Some(root), "n={n} leaf {i} flipped");
                // (The odd leaf at the end is its own sibling: either side.)
                if n > 1 && p.siblings[0] != leaves[i] {
                    let mut moved = p.clone();
                    moved.index ^= 1;
                    assert_ne!(moved.root(leaves[i]), Some(root), "n={n} leaf {i} moved");
                }
            }
            // Another batch's root is not reached.
            let other = tree(&[leaf(&txid(1000), true), leaf(&txid(1001), true)]).0;
            assert_ne!(proofs[0].root(leaves[0]), Some(other));
        }
    }

    #[test]
    fn paths_past_a_batch_are_refused() {
        let deep = Proof {
            index: 0,
            siblings: vec![[0; 32]; MAX_DEPTH + 1],
        };
        assert_eq!(deep.root([1; 32]), None);
        let past = Proof {
            index: 4,
            siblings: vec![[0; 32]; 2],
        };
        assert_eq!(past.root([1; 32]), None);
    }

    #[test]
    fn a_batch_is_one_signature_and_each_vote_verifies_alone() {
        let key = Keypair::from_seed([7; 32]);
        let decisions: Vec<_> = (0..5).map(|i| (txid(i), i != 2)).collect();
        let batch = VoteBatch::sign(&key, "net", decisions.clone());
        assert!(batch.well_formed());
        assert!(key.id().verify(&batch.message("net"), &batch.signature.0));
        let votes = batch.votes();
        assert_eq!(votes.len(), 5);
        for (v, (t, a)) in votes.iter().zip(&decisions) {
            assert_eq!((v.txid, v.approve, v.signature), (*t, *a, batch.signature));
            assert!(v.verify("net"), "vote on {t:?}");
            assert!(!v.verify("other"));
            let mut flipped = v.clone();
            flipped.approve = !flipped.approve;
            assert!(!flipped.verify("net"));
        }
        // One decision of one batch is the single vote of old.
        let one = VoteBatch::sign(&key, "net", vec![(txid(9), true)]).votes();
        assert_eq!(one[0], Vote::new(&key, "net", txid(9), true));
    }
}
