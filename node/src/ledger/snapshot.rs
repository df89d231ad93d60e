//! A ledger rebuilt from a checkpoint's entries instead of its history.

use super::*;

impl Ledger {
    /// Empties the set (to be filled from a checkpoint), keeping the network
    /// and limits; `fees` are those the checkpoint's history paid. Returns
    /// the value the ledger held before (the genesis supply, when fresh).
    pub fn restore_begin(&mut self, fees: u64) -> u64 {
        let supply = self.total.saturating_add(self.fees);
        self.utxos.clear();
        self.spent.clear();
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
