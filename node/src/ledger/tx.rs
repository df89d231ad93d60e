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
    inputs: Prevs<'a>,
    outputs: &'a [TxOut],
    memo: u64,
}

/// The inputs' outpoints, encoded as a `Vec` of them is, without collecting
/// them (ids are computed several times per message: no allocation).
struct Prevs<'a>(&'a [TxIn]);

impl Serialize for Prevs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|i| &i.prev))
    }
}

/// Room on the stack for the unsigned part of any transaction the limits
/// let through (a larger one is encoded on the heap).
const UNSIGNED_ON_STACK: usize = 1024;

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
            inputs: Prevs(&self.inputs),
            outputs: &self.outputs,
            memo: self.memo,
        };
        let mut hash = Sha256::new().chain_update(b"testnet-tx-v1\0");
        let mut buf = [0u8; UNSIGNED_ON_STACK];
        match postcard::to_slice(&unsigned, &mut buf) {
            Ok(body) => hash.update(&*body),
            Err(_) => hash.update(postcard::to_stdvec(&unsigned).expect("transactions serialize")),
        }
        TxId(hash.finalize().into())
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
        postcard::experimental::serialized_size(self).unwrap_or(usize::MAX)
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
    fn ids_and_sizes_are_those_of_the_collected_encoding() {
        // What the id hashed before it was computed without allocating: the
        // unsigned part with its outpoints collected in a Vec.
        #[derive(Serialize)]
        struct Collected<'a> {
            inputs: Vec<&'a OutPoint>,
            outputs: &'a [TxOut],
            memo: u64,
        }
        let key = Keypair::from_seed([3; 32]);
        // 0, 1 and 3 inputs fit on the stack; 40 do not (the heap path).
        for (n, memo) in [(0u32, 0u64), (1, 7), (3, u64::MAX), (40, 1 << 40)] {
            let tx = Transaction {
                inputs: (0..n)
                    .map(|vout| TxIn {
                        prev: OutPoint {
                            txid: TxId([vout as u8; 32]),
                            vout: vout * 1000,
                        },
                        signature: Signature([9; 64]),
                    })
                    .collect(),
                outputs: vec![
                    TxOut {
                        owner: key.id(),
                        value: 1,
                    },
                    TxOut {
                        owner: key.id(),
                        value: u64::MAX,
                    },
                ],
                memo,
            };
            let collected = Collected {
                inputs: tx.inputs.iter().map(|i| &i.prev).collect(),
                outputs: &tx.outputs,
                memo,
            };
            let body = postcard::to_stdvec(&collected).unwrap();
            assert_eq!(body.len() > UNSIGNED_ON_STACK, n == 40);
            let id = Sha256::new()
                .chain_update(b"testnet-tx-v1\0")
                .chain_update(&body)
                .finalize();
            assert_eq!(tx.id().0, <[u8; 32]>::from(id), "{n} inputs");
            assert_eq!(tx.size(), postcard::to_stdvec(&tx).unwrap().len());
        }
    }

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
