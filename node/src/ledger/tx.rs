//! Transactions: outpoints, outputs, signed inputs, ids and signing.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fixed_bytes::fixed_bytes;
use crate::identity::{Keypair, NodeId};

fixed_bytes!(
    /// A transaction id: SHA-256 of the transaction without its signatures.
    TxId,
    32
);
fixed_bytes!(
    /// An ed25519 signature.
    Signature,
    64
);

/// An output of an earlier transaction (or of genesis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OutPoint {
    pub txid: TxId,
    pub vout: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TxOut {
    pub owner: NodeId,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TxIn {
    pub prev: OutPoint,
    /// The owner of `prev` signing [`Transaction::signing_message`].
    pub signature: Signature,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    pub inputs: Vec<TxIn>,
    pub outputs: Vec<TxOut>,
    /// Free field that makes otherwise identical transactions distinct.
    pub memo: u64,
}

/// The part of a transaction its id and signatures cover.
#[derive(Serialize)]
struct Unsigned<'a> {
    inputs: Vec<&'a OutPoint>,
    outputs: &'a [TxOut],
    memo: u64,
}

/// The pseudo-transaction id that genesis outputs hang off.
pub fn genesis_txid(network_id: &str) -> TxId {
    TxId(
        Sha256::new()
            .chain_update(b"testnet-genesis-outputs-v1\0")
            .chain_update(network_id.as_bytes())
            .finalize()
            .into(),
    )
}

impl Transaction {
    /// Builds and signs a transaction: `keys[i]` signs input `i`.
    pub fn signed(
        network_id: &str,
        prevs: &[OutPoint],
        outputs: Vec<TxOut>,
        memo: u64,
        keys: &[&Keypair],
    ) -> Transaction {
        let mut tx = Transaction {
            inputs: prevs
                .iter()
                .map(|p| TxIn {
                    prev: *p,
                    signature: Signature([0; 64]),
                })
                .collect(),
            outputs,
            memo,
        };
        let msg = tx.signing_message(network_id);
        for (input, key) in tx.inputs.iter_mut().zip(keys) {
            input.signature = Signature(key.sign(&msg));
        }
        tx
    }

    pub fn id(&self) -> TxId {
        let unsigned = Unsigned {
            inputs: self.inputs.iter().map(|i| &i.prev).collect(),
            outputs: &self.outputs,
            memo: self.memo,
        };
        let body = postcard::to_stdvec(&unsigned).expect("transactions serialize");
        TxId(
            Sha256::new()
                .chain_update(b"testnet-tx-v1\0")
                .chain_update(&body)
                .finalize()
                .into(),
        )
    }

    /// What every input's owner signs: the id, bound to one network.
    pub fn signing_message(&self, network_id: &str) -> [u8; 32] {
        Sha256::new()
            .chain_update(b"testnet-tx-sig-v1\0")
            .chain_update(network_id.as_bytes())
            .chain_update(b"\0")
            .chain_update(self.id().0)
            .finalize()
            .into()
    }

    /// Encoded size on the wire, the size limits apply to.
    pub fn size(&self) -> usize {
        postcard::to_stdvec(self)
            .map(|v| v.len())
            .unwrap_or(usize::MAX)
    }

    pub fn output_value(&self) -> Option<u64> {
        self.outputs
            .iter()
            .try_fold(0u64, |sum, o| sum.checked_add(o.value))
    }

    /// The outpoints this transaction creates.
    pub fn outpoints(&self) -> impl Iterator<Item = (OutPoint, TxOut)> + '_ {
        let txid = self.id();
        self.outputs.iter().enumerate().map(move |(i, o)| {
            (
                OutPoint {
                    txid,
                    vout: i as u32,
                },
                *o,
            )
        })
    }

    /// Whether the two spend a common outpoint.
    pub fn conflicts_with(&self, other: &Transaction) -> bool {
        self.inputs
            .iter()
            .any(|a| other.inputs.iter().any(|b| a.prev == b.prev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_ignores_signatures_and_signing_binds_the_network() {
        let key = Keypair::from_seed([1; 32]);
        let prev = OutPoint {
            txid: TxId([9; 32]),
            vout: 0,
        };
        let out = vec![TxOut {
            owner: key.id(),
            value: 5,
        }];
        let a = Transaction::signed("net-a", &[prev], out.clone(), 0, &[&key]);
        let b = Transaction::signed("net-b", &[prev], out.clone(), 0, &[&key]);
        assert_eq!(a.id(), b.id());
        assert_ne!(a.inputs[0].signature, b.inputs[0].signature);
        assert_ne!(a.signing_message("net-a"), a.signing_message("net-b"));
        let c = Transaction::signed("net-a", &[prev], out, 1, &[&key]);
        assert_ne!(a.id(), c.id());
        assert!(a.conflicts_with(&c));
    }

    #[test]
    fn transaction_json_round_trips() {
        let key = Keypair::from_seed([2; 32]);
        let tx = Transaction::signed(
            "n",
            &[OutPoint {
                txid: TxId([3; 32]),
                vout: 7,
            }],
            vec![TxOut {
                owner: key.id(),
                value: 10_000,
            }],
            42,
            &[&key],
        );
        let json = serde_json::to_string(&tx).unwrap();
        assert_eq!(serde_json::from_str::<Transaction>(&json).unwrap(), tx);
        let wire = postcard::to_stdvec(&tx).unwrap();
        assert_eq!(postcard::from_bytes::<Transaction>(&wire).unwrap(), tx);
    }
}
