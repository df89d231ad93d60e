//! The set of finalized transactions in a form two nodes can compare cheaply.
//!
//! Txids are split into 256 buckets by their first byte; each bucket has a digest
//! (XOR of its txids, order-independent). An `Inventory` message carries the 256
//! digests (8 KiB); the receiver answers with its txids of the buckets that differ,
//! and the first side fetches the certificates it lacks (catch-up, seed 004).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::ledger::tx::TxId;

pub const BUCKETS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub count: u64,
    pub buckets: Vec<TxId>,
}

#[derive(Debug, Clone)]
pub struct FinalizedSet {
    digests: Vec<[u8; 32]>,
    /// The txids of each bucket in the order inserted (the window's, when
    /// the oldest are forgotten; the digests and count stay global).
    members: Vec<VecDeque<TxId>>,
    count: u64,
    /// XOR of every txid: equal on two nodes with the same finalized set.
    whole: [u8; 32],
}

impl Default for FinalizedSet {
    fn default() -> Self {
        FinalizedSet {
            digests: vec![[0; 32]; BUCKETS],
            members: vec![VecDeque::new(); BUCKETS],
            count: 0,
            whole: [0; 32],
        }
    }
}

impl FinalizedSet {
    pub fn insert(&mut self, txid: TxId) {
        let b = txid.0[0] as usize;
        for (d, x) in self.digests[b].iter_mut().zip(txid.0) {
            *d ^= x;
        }
        for (d, x) in self.whole.iter_mut().zip(txid.0) {
            *d ^= x;
        }
        self.members[b].push_back(txid);
        self.count += 1;
    }

    /// The set as a checkpoint states it: `count` finalizations with these
    /// digests, and no members yet (see [`Self::restore_member`]).
    pub fn restore(count: u64, whole: TxId, buckets: &[TxId]) -> Option<Self> {
        if buckets.len() != BUCKETS {
            return None;
        }
        Some(FinalizedSet {
            digests: buckets.iter().map(|b| b.0).collect(),
            members: vec![VecDeque::new(); BUCKETS],
            count,
            whole: whole.0,
        })
    }

    /// Offers `txid` again (a restored member of the window; already in the
    /// digests and the count).
    pub fn restore_member(&mut self, txid: TxId) {
        self.members[txid.0[0] as usize].push_back(txid);
    }

    /// Whether the bucket digests add up to the whole digest.
    pub fn is_consistent(&self) -> bool {
        let mut x = [0u8; 32];
        for d in &self.digests {
            for (a, b) in x.iter_mut().zip(d) {
                *a ^= b;
            }
        }
        x == self.whole
    }

    /// Stops offering `txid` (it left the window); it stays in the digests.
    pub fn forget(&mut self, txid: &TxId) {
        let m = &mut self.members[txid.0[0] as usize];
        if m.front() == Some(txid) {
            m.pop_front();
        } else if let Some(k) = m.iter().position(|t| t == txid) {
            m.remove(k);
        }
    }

    #[cfg(test)]
    pub fn members(&self) -> usize {
        self.members.iter().map(VecDeque::len).sum()
    }

    /// An order-independent digest of the whole set (XOR of the txids, each
    /// a SHA-256: a set, finalized once each, never a multiset).
    pub fn digest(&self) -> TxId {
        TxId(self.whole)
    }

    pub fn inventory(&self) -> Inventory {
        Inventory {
            count: self.count,
            buckets: self.digests.iter().map(|d| TxId(*d)).collect(),
        }
    }

    /// Our txids in every bucket whose digest differs from `theirs`, at most `max`.
    pub fn differing(&self, theirs: &Inventory, max: usize) -> Vec<TxId> {
        if theirs.buckets.len() != BUCKETS {
            return Vec::new();
        }
        self.digests
            .iter()
            .zip(&theirs.buckets)
            .enumerate()
            .filter(|(_, (ours, theirs))| **ours != theirs.0)
            .flat_map(|(b, _)| self.members[b].iter().copied())
            .take(max)
            .collect()
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sets_have_equal_inventories_and_differences_are_found() {
        let ids: Vec<TxId> = (0..600u32)
            .map(|i| TxId(sha2::Sha256::digest(i.to_le_bytes()).into()))
            .collect();
        use sha2::Digest;
        let (mut a, mut b) = (FinalizedSet::default(), FinalizedSet::default());
        for id in &ids {
            a.insert(*id);
        }
        for id in ids.iter().rev().skip(3) {
            b.insert(*id);
        }
        assert!(b.differing(&b.inventory(), 10_000).is_empty());
        let theirs = b.inventory();
        let offered = a.differing(&theirs, 10_000);
        for missing in &ids[597..] {
            assert!(offered.contains(missing));
        }
        // Only the differing buckets are sent, not the whole set.
        assert!(offered.len() < 30, "{}", offered.len());
        assert_ne!(a.digest(), b.digest());
        for id in &ids[597..] {
            b.insert(*id);
        }
        assert_eq!(a.inventory(), b.inventory());
        assert_eq!(a.digest(), b.digest(), "the same set in another order");
        assert_ne!(a.digest(), FinalizedSet::default().digest());
    }
}
