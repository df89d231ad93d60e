//! A ledger rebuilt from a checkpoint's entries instead of its history.

use super::*;

/// Entries made room for at once, at most, whatever a header says.
const RESERVE_AT_MOST: usize = 1 << 20;

impl Ledger {
    /// Empties the set (to be filled from a checkpoint), keeping the network
    /// and limits; `fees` are those the checkpoint's history paid. Returns
    /// the value the ledger held before (the genesis supply, when fresh).
    /// The checkpoint holds `utxos` unspent outputs and a window spending
    /// about `spent`: room is made for them at once.
    pub fn restore_begin(&mut self, fees: u64, utxos: u64, spent: u64) -> u64 {
        let supply = self.total.saturating_add(self.fees);
        self.utxos.clear();
        self.spent.clear();
        // Room for what the header says comes (bounded: a header may lie).
        self.utxos.reserve((utxos as usize).min(RESERVE_AT_MOST));
        self.spent.reserve((spent as usize).min(RESERVE_AT_MOST));
        self.digest = UtxoDigest::default();
        self.total = 0;
        self.fees = fees;
        supply
    }

    /// Adds an unspent output of a checkpoint (its digest is recomputed);
    /// false if the total value would overflow (a corrupt checkpoint).
    pub fn restore_utxo(&mut self, op: OutPoint, out: TxOut) -> bool {
        if self.total.checked_add(out.value).is_none() {
            return false;
        }
        self.insert(op, out);
        true
    }

    /// Records that a finalized transaction of the window spent `op`.
    pub fn restore_spent(&mut self, op: OutPoint, by: TxId) {
        self.spent.insert(op, by);
    }

    /// The unspent outputs, in no order.
    pub fn entries(&self) -> impl Iterator<Item = (&OutPoint, &TxOut)> {
        self.utxos.iter()
    }
}
