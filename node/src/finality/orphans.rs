//! Orphans: transactions whose inputs are unknown here, held until their
//! parents are final. They cannot be checked, so the pool is bounded in count
//! and bytes, and when full the oldest go first: orphans whose parents never
//! come (a peer's flood) make room for new ones instead of holding the pool.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::ledger::tx::{Transaction, TxId};

#[derive(Debug, Default)]
pub(super) struct OrphanPool {
    txs: HashMap<TxId, Transaction>,
    /// Which orphans wait on each parent.
    by_parent: HashMap<TxId, HashSet<TxId>>,
    /// Arrival order; entries already gone are skipped (and swept).
    order: VecDeque<TxId>,
    bytes: usize,
}

impl OrphanPool {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// The encoded size of what is held.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn contains(&self, txid: &TxId) -> bool {
        self.txs.contains_key(txid)
    }

    /// Holds `tx` (waiting on `parents`), evicting the oldest orphans while
    /// it would pass `max_count` or `max_bytes`; returns how many went. One
    /// larger than `max_bytes` on its own is not held (and counts as one).
    pub fn insert(
        &mut self,
        tx: Transaction,
        parents: impl IntoIterator<Item = TxId>,
        max_count: usize,
        max_bytes: usize,
    ) -> usize {
        let (txid, size) = (tx.id(), tx.size());
        if size > max_bytes {
            return 1;
        }
        let mut evicted = 0;
        while self.txs.len() >= max_count || self.bytes + size > max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if self.remove(&oldest).is_some() {
                evicted += 1;
            }
        }
        for parent in parents {
            self.by_parent.entry(parent).or_default().insert(txid);
        }
        self.bytes += size;
        self.txs.insert(txid, tx);
        self.order.push_back(txid);
        // Resolved orphans leave their place in `order` behind: sweep them
        // once they are most of it.
        if self.order.len() > 2 * self.txs.len() + 64 {
            let txs = &self.txs;
            self.order.retain(|t| txs.contains_key(t));
        }
        evicted
    }

    /// The orphans that waited on `parent`, no longer held.
    pub fn take_children(&mut self, parent: &TxId) -> Vec<Transaction> {
        let children = self.by_parent.remove(parent).unwrap_or_default();
        children.iter().filter_map(|c| self.remove(c)).collect()
    }

    fn remove(&mut self, txid: &TxId) -> Option<Transaction> {
        let tx = self.txs.remove(txid)?;
        self.bytes = self.bytes.saturating_sub(tx.size());
        for i in &tx.inputs {
            if let Some(set) = self.by_parent.get_mut(&i.prev.txid) {
                set.remove(txid);
                if set.is_empty() {
                    self.by_parent.remove(&i.prev.txid);
                }
            }
        }
        Some(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;
    use crate::ledger::tx::{OutPoint, TxOut};

    fn orphan(parent: u8, memo: u64) -> Transaction {
        let prev = OutPoint {
            txid: TxId([parent; 32]),
            vout: 0,
        };
        let out = TxOut {
            owner: Keypair::from_seed([1; 32]).id(),
            value: 1_000,
        };
        Transaction::signed("net", &[prev], vec![out], memo, &[])
    }

    #[test]
    fn the_oldest_make_room_and_children_come_back_with_their_parent() {
        let mut pool = OrphanPool::default();
        let size = orphan(1, 0).size();
        for memo in 0..3 {
            assert_eq!(
                pool.insert(orphan(1, memo), [TxId([1; 32])], 3, usize::MAX),
                0
            );
        }
        // A fourth evicts the first, by count; by bytes likewise.
        assert_eq!(pool.insert(orphan(2, 9), [TxId([2; 32])], 3, usize::MAX), 1);
        assert!(!pool.contains(&orphan(1, 0).id()));
        assert_eq!(pool.insert(orphan(2, 10), [TxId([2; 32])], 10, 3 * size), 1);
        assert_eq!((pool.len(), pool.bytes()), (3, 3 * size));
        let back = pool.take_children(&TxId([1; 32]));
        assert_eq!(back.len(), 1, "one of parent 1's children is still held");
        assert_eq!(back[0].memo, 2);
        assert_eq!(pool.take_children(&TxId([2; 32])).len(), 2);
        assert_eq!((pool.len(), pool.bytes()), (0, 0));
        assert!(pool.by_parent.is_empty());
        assert_eq!(
            pool.insert(orphan(3, 1), [], 10, size - 1),
            1,
            "too big alone"
        );
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn resolved_places_are_swept_from_the_order() {
        let mut pool = OrphanPool::default();
        for memo in 0..1000 {
            pool.insert(orphan(7, memo), [TxId([7; 32])], 10_000, usize::MAX);
            pool.take_children(&TxId([7; 32]));
        }
        assert!(pool.order.len() <= 64 + 2, "{}", pool.order.len());
    }
}
