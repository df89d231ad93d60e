//! The UTXO ledger: a pure, synchronous core.
//!
//! `Ledger` holds the unspent outputs, which finalized transaction spent each spent
//! output, the fees collected, and an order-independent digest of the UTXO set so
//! two nodes can be compared with one string. `check` validates a transaction
//! against seed 004's limits and the current set; `apply` applies a finalized one:
//! its inputs leave the set, its outputs join it (seed 004's bug was to skip the
//! first half, reproduced here by `spend_inputs = false`).

mod snapshot;
pub mod tx;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::genesis::Genesis;
use crate::identity::Verified;
use tx::{genesis_txid, OutPoint, Transaction, TxId, TxOut};

/// Transaction and mempool limits, defaulting to seed 004's constants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_tx_size: usize,
    pub max_inputs: usize,
    pub max_outputs: usize,
    /// Flat part of the minimum fee.
    pub min_fee: u64,
    /// Proportional part of the minimum fee, per mille of the value sent to others
    /// (change back to an input's owner is not counted).
    pub fee_per_mille: u64,
    /// Smallest output value.
    pub dust: u64,
    pub mempool_max_transactions: usize,
    pub mempool_max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tx_size: 1_000_000,
            max_inputs: 256,
            max_outputs: 256,
            min_fee: 1_000,
            fee_per_mille: 1,
            dust: 546,
            mempool_max_transactions: 10_000,
            mempool_max_bytes: 300_000_000,
        }
    }
}

impl Limits {
    /// The smallest fee a transaction sending `value` must pay.
    pub fn min_fee_for(&self, value: u64) -> u64 {
        self.min_fee
            .saturating_add(value / 1000 * self.fee_per_mille)
    }
}

/// Why a transaction is refused. `label()` is the `reason` of
/// `testnet_transactions_rejected_total`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("transaction of {size} bytes exceeds {max}")]
    TooLarge { size: usize, max: usize },
    #[error("transaction has no inputs")]
    NoInputs,
    #[error("transaction has no outputs")]
    NoOutputs,
    #[error("{count} {what} exceed the limit of {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("input {0:?} is spent twice in the same transaction")]
    DuplicateInput(OutPoint),
    #[error("output of {value} is below the dust limit {dust}")]
    Dust { value: u64, dust: u64 },
    #[error("values overflow")]
    Overflow,
    #[error("input {0:?} is unknown (not yet finalized here, or never existed)")]
    UnknownInput(OutPoint),
    #[error("input {outpoint:?} was already spent by finalized transaction {by}")]
    InputSpent { outpoint: OutPoint, by: TxId },
    #[error("signature of input {0} does not verify for the output's owner")]
    BadSignature(usize),
    #[error("outputs ({outputs}) exceed inputs ({inputs})")]
    OutputsExceedInputs { inputs: u64, outputs: u64 },
    #[error("fee {fee} is below the minimum {min}")]
    FeeTooLow { fee: u64, min: u64 },
    #[error("input {outpoint:?} is locked by transaction {by}")]
    Conflict { outpoint: OutPoint, by: TxId },
    #[error("mempool is full ({0})")]
    MempoolFull(&'static str),
}

impl Rejection {
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::TooLarge { .. } | Rejection::TooMany { .. } => "too_large",
            Rejection::NoInputs => "no_inputs",
            Rejection::NoOutputs => "no_outputs",
            Rejection::DuplicateInput(_) => "duplicate_input",
            Rejection::Dust { .. } => "dust",
            Rejection::Overflow => "overflow",
            Rejection::UnknownInput(_) => "unknown_input",
            Rejection::InputSpent { .. } => "input_spent",
            Rejection::BadSignature(_) => "bad_signature",
            Rejection::OutputsExceedInputs { .. } => "insufficient_funds",
            Rejection::FeeTooLow { .. } => "fee_too_low",
            Rejection::Conflict { .. } => "conflict",
            Rejection::MempoolFull(_) => "mempool_full",
        }
    }
}

/// Every rejection label, pre-created at zero in the metrics.
pub const REJECTION_REASONS: &[&str] = &[
    "too_large",
    "no_inputs",
    "no_outputs",
    "duplicate_input",
    "dust",
    "overflow",
    "unknown_input",
    "input_spent",
    "bad_signature",
    "insufficient_funds",
    "fee_too_low",
    "conflict",
    "mempool_full",
    "vote_rejected",
    "orphans_full",
];

/// Order-independent digest of a set of outputs: the sum modulo 2^256 of each
/// entry's SHA-256. Adding and removing entries in any order gives the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UtxoDigest([u64; 4]);

impl UtxoDigest {
    /// The first 48 bits of [`Self::to_hex`] as a number (exact in an f64):
    /// the top of the most significant limb. Cheap: it is set on every change.
    pub fn prefix48(&self) -> u64 {
        self.0[3] >> 16
    }

    fn entry(outpoint: &OutPoint, out: &TxOut) -> [u64; 4] {
        let h: [u8; 32] = Sha256::new()
            .chain_update(b"testnet-utxo-v1\0")
            .chain_update(outpoint.txid.0)
            .chain_update(outpoint.vout.to_le_bytes())
            .chain_update(out.owner.as_bytes())
            .chain_update(out.value.to_le_bytes())
            .finalize()
            .into();
        std::array::from_fn(|i| {
            u64::from_le_bytes(h[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
        })
    }

    fn add(&mut self, x: [u64; 4]) {
        let mut carry = false;
        for (limb, v) in self.0.iter_mut().zip(x) {
            let (s1, c1) = limb.overflowing_add(v);
            let (s2, c2) = s1.overflowing_add(carry as u64);
            *limb = s2;
            carry = c1 || c2;
        }
    }

    fn sub(&mut self, x: [u64; 4]) {
        let mut borrow = false;
        for (limb, v) in self.0.iter_mut().zip(x) {
            let (d1, b1) = limb.overflowing_sub(v);
            let (d2, b2) = d1.overflowing_sub(borrow as u64);
            *limb = d2;
            borrow = b1 || b2;
        }
    }

    /// `self + other` (mod 2^256).
    pub fn plus(mut self, other: &UtxoDigest) -> UtxoDigest {
        self.add(other.0);
        self
    }

    /// `self - other` (mod 2^256).
    pub fn minus(mut self, other: &UtxoDigest) -> UtxoDigest {
        self.sub(other.0);
        self
    }

    pub fn to_hex(&self) -> String {
        let bytes: Vec<u8> = self.0.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
        hex::encode(bytes)
    }
}

/// The result of a successful `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub fee: u64,
    pub input_value: u64,
}

#[derive(Debug, Clone)]
pub struct Ledger {
    network_id: String,
    limits: Limits,
    utxos: HashMap<OutPoint, TxOut>,
    /// Which finalized transaction spent each spent outpoint.
    spent: HashMap<OutPoint, TxId>,
    digest: UtxoDigest,
    total: u64,
    fees: u64,
}

impl Ledger {
    pub fn from_genesis(genesis: &Genesis, limits: Limits) -> Self {
        let mut ledger = Ledger {
            network_id: genesis.network_id.clone(),
            limits,
            utxos: HashMap::new(),
            spent: HashMap::new(),
            digest: UtxoDigest::default(),
            total: 0,
            fees: 0,
        };
        let txid = genesis_txid(&genesis.network_id);
        for (i, o) in genesis.initial_outputs.iter().enumerate() {
            ledger.insert(
                OutPoint {
                    txid,
                    vout: i as u32,
                },
                TxOut {
                    owner: o.owner,
                    value: o.value,
                },
            );
        }
        ledger
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn insert(&mut self, op: OutPoint, out: TxOut) {
        if self.utxos.insert(op, out).is_none() {
            self.digest.add(UtxoDigest::entry(&op, &out));
            self.total += out.value;
        }
    }

    fn remove(&mut self, op: &OutPoint) -> Option<TxOut> {
        let out = self.utxos.remove(op)?;
        self.digest.sub(UtxoDigest::entry(op, &out));
        self.total -= out.value;
        Some(out)
    }

    /// Checks what needs no ledger: sizes, counts, duplicates, dust.
    pub fn check_shape(&self, tx: &Transaction) -> Result<(), Rejection> {
        let l = &self.limits;
        if tx.inputs.is_empty() {
            return Err(Rejection::NoInputs);
        }
        if tx.outputs.is_empty() {
            return Err(Rejection::NoOutputs);
        }
        if tx.inputs.len() > l.max_inputs {
            return Err(Rejection::TooMany {
                what: "inputs",
                count: tx.inputs.len(),
                max: l.max_inputs,
            });
        }
        if tx.outputs.len() > l.max_outputs {
            return Err(Rejection::TooMany {
                what: "outputs",
                count: tx.outputs.len(),
                max: l.max_outputs,
            });
        }
        let size = tx.size();
        if size > l.max_tx_size {
            return Err(Rejection::TooLarge {
                size,
                max: l.max_tx_size,
            });
        }
        let mut seen = HashSet::new();
        for i in &tx.inputs {
            if !seen.insert(i.prev) {
                return Err(Rejection::DuplicateInput(i.prev));
            }
        }
        if let Some(o) = tx.outputs.iter().find(|o| o.value < l.dust) {
            return Err(Rejection::Dust {
                value: o.value,
                dust: l.dust,
            });
        }
        Ok(())
    }

    /// Full validation against the current UTXO set: shape, inputs present and
    /// unspent, owners' signatures, value and fee.
    pub fn check(&self, tx: &Transaction) -> Result<Checked, Rejection> {
        self.check_with(tx, &Verified::default())
    }

    /// [`Ledger::check`], taking a signature `verified` holds for valid.
    pub fn check_with(&self, tx: &Transaction, verified: &Verified) -> Result<Checked, Rejection> {
        self.check_shape(tx)?;
        let msg = tx.signing_message(&self.network_id);
        let mut input_value = 0u64;
        let mut owners = Vec::with_capacity(tx.inputs.len());
        for (i, input) in tx.inputs.iter().enumerate() {
            let Some(out) = self.utxos.get(&input.prev) else {
                return Err(match self.spent.get(&input.prev) {
                    Some(by) => Rejection::InputSpent {
                        outpoint: input.prev,
                        by: *by,
                    },
                    None => Rejection::UnknownInput(input.prev),
                });
            };
            if !verified.verify(&out.owner, &msg, &input.signature.0) {
                return Err(Rejection::BadSignature(i));
            }
            owners.push(out.owner);
            input_value = input_value
                .checked_add(out.value)
                .ok_or(Rejection::Overflow)?;
        }
        let outputs = tx.output_value().ok_or(Rejection::Overflow)?;
        let fee = input_value
            .checked_sub(outputs)
            .ok_or(Rejection::OutputsExceedInputs {
                inputs: input_value,
                outputs,
            })?;
        let sent: u64 = tx
            .outputs
            .iter()
            .filter(|o| !owners.contains(&o.owner))
            .map(|o| o.value)
            .sum();
        let min = self.limits.min_fee_for(sent);
        if fee < min {
            return Err(Rejection::FeeTooLow { fee, min });
        }
        Ok(Checked { fee, input_value })
    }

    /// Applies a finalized transaction. Inputs missing from the set are skipped
    /// (with `spend_inputs` false they never leave it). Returns the fee.
    pub fn apply(&mut self, tx: &Transaction, spend_inputs: bool) -> u64 {
        let txid = tx.id();
        let mut input_value = 0u64;
        for input in &tx.inputs {
            let out = if spend_inputs {
                self.remove(&input.prev)
            } else {
                self.utxos.get(&input.prev).copied()
            };
            if let Some(out) = out {
                input_value = input_value.saturating_add(out.value);
            }
            self.spent.insert(input.prev, txid);
        }
        for (op, out) in tx.outpoints() {
            self.insert(op, out);
        }
        let fee = input_value.saturating_sub(tx.output_value().unwrap_or(u64::MAX));
        self.fees = self.fees.saturating_add(fee);
        fee
    }

    pub fn get(&self, op: &OutPoint) -> Option<&TxOut> {
        self.utxos.get(op)
    }

    pub fn spent_by(&self, op: &OutPoint) -> Option<TxId> {
        self.spent.get(op).copied()
    }

    /// Forgets that `by` spent `op` (it left the finality window): a late
    /// double spend of it is then an unknown input, held as an orphan.
    pub fn forget_spent(&mut self, op: &OutPoint, by: &TxId) {
        if self.spent.get(op) == Some(by) {
            self.spent.remove(op);
        }
    }

    #[cfg(test)]
    pub fn spent_len(&self) -> usize {
        self.spent.len()
    }

    pub fn contains(&self, op: &OutPoint) -> bool {
        self.utxos.contains_key(op)
    }

    /// Whether `tx` (as `txid`) was applied here: an output of it is
    /// unspent, or recorded as spent.
    pub fn applied(&self, txid: &TxId, tx: &Transaction) -> bool {
        (0..tx.outputs.len() as u32).any(|vout| {
            let op = OutPoint { txid: *txid, vout };
            self.contains(&op) || self.spent_by(&op).is_some()
        })
    }

    pub fn len(&self) -> usize {
        self.utxos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.utxos.is_empty()
    }

    pub fn digest(&self) -> UtxoDigest {
        self.digest
    }

    pub fn total_value(&self) -> u64 {
        self.total
    }

    /// Fees of every applied transaction: genesis supply == total value + fees.
    pub fn fees(&self) -> u64 {
        self.fees
    }

    /// The outputs owned by `owner` (for wallets and tests).
    pub fn outputs_of(&self, owner: &crate::identity::NodeId) -> Vec<(OutPoint, TxOut)> {
        let mut v: Vec<_> = self
            .utxos
            .iter()
            .filter(|(_, o)| &o.owner == owner)
            .map(|(p, o)| (*p, *o))
            .collect();
        v.sort_by_key(|(p, _)| *p);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::{Addressing, GENESIS_SUPPLY};
    use crate::identity::Keypair;
    use proptest::prelude::*;

    fn setup() -> (Ledger, Keypair) {
        let g = Genesis::generate(
            1,
            &Addressing::Host {
                ip: "127.0.0.1".parse().unwrap(),
                first_port: 7000,
            },
            Some("ledger-test"),
        )
        .unwrap();
        (
            Ledger::from_genesis(&g.genesis, Limits::default()),
            g.faucet_key,
        )
    }

    fn pay(
        l: &Ledger,
        key: &Keypair,
        prev: OutPoint,
        to: &Keypair,
        value: u64,
        fee: u64,
    ) -> Transaction {
        let have = l.get(&prev).unwrap().value;
        let mut outputs = vec![TxOut {
            owner: to.id(),
            value,
        }];
        if have - value - fee > 0 {
            outputs.push(TxOut {
                owner: key.id(),
                value: have - value - fee,
            });
        }
        Transaction::signed(&l.network_id, &[prev], outputs, 0, &[key])
    }

    #[test]
    fn apply_spends_inputs_and_conserves_value() {
        let (mut l, faucet) = setup();
        let to = Keypair::generate();
        let prev = l.outputs_of(&faucet.id())[0].0;
        let tx = pay(&l, &faucet, prev, &to, 10_000, 200_000);
        let checked = l.check(&tx).unwrap();
        assert_eq!(checked.fee, 200_000);
        let before = l.digest();
        assert_eq!(l.apply(&tx, true), 200_000);
        assert!(!l.contains(&prev));
        assert_eq!(l.total_value() + l.fees(), GENESIS_SUPPLY);
        assert_ne!(l.digest(), before);
        assert_eq!(
            l.check(&tx),
            Err(Rejection::InputSpent {
                outpoint: prev,
                by: tx.id()
            })
        );
    }

    #[test]
    fn the_seed_bug_leaves_spent_inputs_in_the_set() {
        let (mut l, faucet) = setup();
        let to = Keypair::generate();
        let prev = l.outputs_of(&faucet.id())[0].0;
        let tx = pay(&l, &faucet, prev, &to, 10_000, 200_000);
        l.apply(&tx, false);
        assert!(l.contains(&prev));
        assert!(
            l.total_value() + l.fees() > GENESIS_SUPPLY,
            "value created from nothing"
        );
    }

    #[test]
    fn limits_and_signatures_are_enforced_with_reasons() {
        let (l, faucet) = setup();
        let to = Keypair::generate();
        let prev = l.outputs_of(&faucet.id())[0].0;
        let label = |tx: &Transaction| l.check(tx).unwrap_err().label();
        assert_eq!(label(&pay(&l, &faucet, prev, &to, 100, 200_000)), "dust");
        assert_eq!(
            label(&pay(&l, &faucet, prev, &to, 10_000, 10)),
            "fee_too_low"
        );
        assert_eq!(
            label(&pay(&l, &to, prev, &to, 10_000, 200_000)),
            "bad_signature"
        );
        let missing = OutPoint {
            txid: TxId([7; 32]),
            vout: 0,
        };
        let tx = Transaction::signed(
            &l.network_id,
            &[missing],
            vec![TxOut {
                owner: to.id(),
                value: 1000,
            }],
            0,
            &[&faucet],
        );
        assert_eq!(label(&tx), "unknown_input");
        let tx = Transaction::signed(
            &l.network_id,
            &[prev, prev],
            vec![TxOut {
                owner: to.id(),
                value: 1000,
            }],
            0,
            &[&faucet, &faucet],
        );
        assert_eq!(label(&tx), "duplicate_input");
        let mut tx = pay(&l, &faucet, prev, &to, 10_000, 200_000);
        tx.outputs[0].value = u64::MAX;
        assert!(
            matches!(l.check(&tx), Err(Rejection::BadSignature(_))),
            "changing outputs breaks signatures"
        );
        let tx = Transaction {
            inputs: vec![],
            outputs: vec![],
            memo: 0,
        };
        assert_eq!(label(&tx), "no_inputs");
    }

    proptest! {
        /// Any sequence of valid payments conserves value (supply == UTXO total +
        /// fees), and the digest depends on the set, not the order of operations.
        #[test]
        fn value_is_conserved_and_digest_is_order_independent(
            steps in proptest::collection::vec((0usize..64, 600u64..50_000, 1_000u64..5_000), 1..40)
        ) {
            let (mut l, faucet) = setup();
            let keys: Vec<Keypair> = (0..4).map(|i| Keypair::from_seed([i + 10; 32])).collect();
            let mut all: Vec<&Keypair> = keys.iter().collect();
            all.push(&faucet);
            let mut applied = Vec::new();
            for (pick, value, fee) in steps {
                // Spend some coin of some key, if it can pay.
                let coins: Vec<(OutPoint, TxOut, &Keypair)> = all.iter()
                    .flat_map(|k| l.outputs_of(&k.id()).into_iter().map(move |(p, o)| (p, o, *k)))
                    .collect();
                let (prev, out, key) = coins[pick % coins.len()];
                let min_fee = l.limits.min_fee_for(value);
                let fee = fee.max(min_fee);
                if out.value < value + fee + l.limits.dust {
                    continue;
                }
                let to = all[pick % all.len()];
                let tx = Transaction::signed(&l.network_id, &[prev], vec![
                    TxOut { owner: to.id(), value },
                    TxOut { owner: key.id(), value: out.value - value - fee },
                ], pick as u64, &[key]);
                prop_assert!(l.check(&tx).is_ok(), "{:?}", l.check(&tx));
                l.apply(&tx, true);
                applied.push(tx);
                prop_assert_eq!(l.total_value() + l.fees(), GENESIS_SUPPLY);
            }
            // Rebuild the same final set by inserting its entries in reverse order.
            let mut rebuilt = UtxoDigest::default();
            let mut entries: Vec<_> = l.utxos.iter().collect();
            entries.sort_by_key(|(p, _)| std::cmp::Reverse(**p));
            for (p, o) in entries {
                rebuilt.add(UtxoDigest::entry(p, o));
            }
            prop_assert_eq!(rebuilt, l.digest());
            // The metric's prefix is the digest's first 12 hex digits.
            let hex = l.digest().to_hex();
            prop_assert_eq!(l.digest().prefix48(), u64::from_str_radix(&hex[..12], 16).unwrap());
        }

        /// Two ledgers given the same transactions in two different orders
        /// (any interleaving of independent chains of payments) end with the
        /// same UTXO digest, the same total value and the same fees.
        #[test]
        fn the_same_transactions_in_two_orders_give_the_same_digest(
            chains in proptest::collection::vec(1usize..4, 2..8),
            seed in any::<u64>(),
        ) {
            let (mut a, faucet) = setup();
            let mut b = a.clone();
            let keys: Vec<Keypair> = (0..chains.len()).map(|i| Keypair::from_seed([i as u8 + 40; 32])).collect();
            // One coin per chain, from the faucet.
            let (prev, out) = a.outputs_of(&faucet.id())[0];
            let each = 1_000_000u64;
            let fee = a.limits.min_fee_for(each * keys.len() as u64) + 1_000;
            let mut outputs: Vec<TxOut> = keys.iter().map(|k| TxOut { owner: k.id(), value: each }).collect();
            outputs.push(TxOut { owner: faucet.id(), value: out.value - each * keys.len() as u64 - fee });
            let fan = Transaction::signed(&a.network_id, &[prev], outputs, 0, &[&faucet]);
            prop_assert!(a.check(&fan).is_ok(), "{:?}", a.check(&fan));
            a.apply(&fan, true);
            b.apply(&fan, true);
            // Each chain passes its coin on, key to key, paying a fee each hop.
            let mut txs: Vec<Vec<Transaction>> = Vec::new();
            for (c, len) in chains.iter().enumerate() {
                let mut chain = Vec::new();
                let mut coin = (OutPoint { txid: fan.id(), vout: c as u32 }, each, &keys[c]);
                for hop in 0..*len {
                    let to = &keys[(c + hop + 1) % keys.len()];
                    let fee = a.limits.min_fee_for(coin.1) + 1_000;
                    let tx = Transaction::signed(&a.network_id, &[coin.0],
                        vec![TxOut { owner: to.id(), value: coin.1 - fee }], hop as u64, &[coin.2]);
                    coin = (OutPoint { txid: tx.id(), vout: 0 }, coin.1 - fee, to);
                    chain.push(tx);
                }
                txs.push(chain);
            }
            // Order 1: chain after chain. Order 2: a seeded interleaving that
            // keeps each chain's own order (parents before children).
            for chain in &txs {
                for tx in chain {
                    prop_assert!(a.check(tx).is_ok(), "{:?}", a.check(tx));
                    a.apply(tx, true);
                }
            }
            let mut slots: Vec<usize> = txs.iter().enumerate().flat_map(|(c, ch)| vec![c; ch.len()]).collect();
            let mut x = seed | 1;
            for i in (1..slots.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                slots.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut next = vec![0usize; txs.len()];
            for c in slots {
                let tx = &txs[c][next[c]];
                next[c] += 1;
                prop_assert!(b.check(tx).is_ok(), "{:?}", b.check(tx));
                b.apply(tx, true);
            }
            prop_assert_eq!(a.digest(), b.digest());
            prop_assert_eq!(a.total_value(), b.total_value());
            prop_assert_eq!(a.fees(), b.fees());
            prop_assert_ne!(a.digest(), setup().0.digest(), "the payments changed the set");
        }
    }
}
