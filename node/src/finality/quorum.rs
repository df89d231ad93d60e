//! Votes, certificates and the quorum arithmetic of vote finality.
//!
//! n validators tolerate f = (n-1)/3 faulty ones. A transaction is final with more
//! than 2n/3 approvals (any two such quorums share an honest validator, who
//! approves at most one of two conflicting transactions) and can never be final
//! with more than n/3 rejections.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::votes::{self, Proof};
use crate::genesis::Genesis;
use crate::identity::{Keypair, NodeId, Verified};
use crate::ledger::tx::{Signature, Transaction, TxId};

/// The fixed validator set of a genesis.
#[derive(Debug, Clone)]
pub struct Validators {
    ids: Vec<NodeId>,
    index: HashMap<NodeId, usize>,
}

impl Validators {
    pub fn new(ids: Vec<NodeId>) -> Self {
        let index = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        Validators { ids, index }
    }

    pub fn from_genesis(genesis: &Genesis) -> Self {
        Validators::new(genesis.validators.iter().map(|v| v.public_key).collect())
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn contains(&self, id: &NodeId) -> bool {
        self.index.contains_key(id)
    }

    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// Faulty validators tolerated: n = 3f + 1.
    pub fn max_faulty(&self) -> usize {
        self.len().saturating_sub(1) / 3
    }

    /// Approvals that make a certificate: more than 2/3 of n.
    pub fn approve_quorum(&self) -> usize {
        2 * self.len() / 3 + 1
    }

    /// Rejections after which a transaction can never be final: more than 1/3 of n.
    pub fn reject_quorum(&self) -> usize {
        self.len() / 3 + 1
    }
}

/// A validator's signed decision on a transaction: the signature covers the
/// root of its batch ([`super::votes`]), reached from this decision by `proof`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub txid: TxId,
    pub voter: NodeId,
    pub approve: bool,
    pub signature: Signature,
    pub proof: Proof,
}

/// The message a vote's signature must cover: `None` if its path leads nowhere.
pub(super) fn vote_message(
    network_id: &str,
    txid: &TxId,
    approve: bool,
    proof: &Proof,
) -> Option<[u8; 32]> {
    let root = proof.root(votes::leaf(txid, approve))?;
    Some(votes::signed_message(network_id, &root))
}

impl Vote {
    /// A vote signed alone (a batch of one).
    pub fn new(key: &Keypair, network_id: &str, txid: TxId, approve: bool) -> Vote {
        let msg = votes::signed_message(network_id, &votes::leaf(&txid, approve));
        Vote {
            txid,
            voter: key.id(),
            approve,
            signature: Signature(key.sign(&msg)),
            proof: Proof::default(),
        }
    }

    pub fn verify(&self, network_id: &str) -> bool {
        self.verify_with(network_id, &Verified::default())
    }

    /// The message its signature must cover.
    pub fn message(&self, network_id: &str) -> Option<[u8; 32]> {
        vote_message(network_id, &self.txid, self.approve, &self.proof)
    }

    /// [`Vote::verify`], taking a signature `verified` holds for valid.
    pub fn verify_with(&self, network_id: &str, verified: &Verified) -> bool {
        self.message(network_id)
            .is_some_and(|msg| verified.verify(&self.voter, &msg, &self.signature.0))
    }
}

/// One approval inside a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub voter: NodeId,
    pub signature: Signature,
    pub proof: Proof,
}

/// A transaction with a quorum of approvals: final everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub tx: Transaction,
    pub approvals: Vec<Approval>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("{got} distinct validator approvals, {need} needed")]
    TooFewApprovals { got: usize, need: usize },
    #[error("approval by {0:?}, who is not a validator")]
    NotAValidator(NodeId),
    #[error("approval by {0:?} does not verify")]
    BadSignature(NodeId),
}

impl Certificate {
    /// Checks a quorum of distinct validators approved this transaction.
    /// `already_verified(approval, message)` skips signatures checked before
    /// (the message is what the approval's signature covers).
    pub fn verify(
        &self,
        network_id: &str,
        validators: &Validators,
        already_verified: impl Fn(&Approval, &[u8; 32]) -> bool,
    ) -> Result<(), CertificateError> {
        let txid = self.tx.id();
        let mut voters = std::collections::BTreeSet::new();
        for a in &self.approvals {
            if !validators.contains(&a.voter) {
                return Err(CertificateError::NotAValidator(a.voter));
            }
            let Some(msg) = vote_message(network_id, &txid, true, &a.proof) else {
                return Err(CertificateError::BadSignature(a.voter));
            };
            if !already_verified(a, &msg) && !a.voter.verify(&msg, &a.signature.0) {
                return Err(CertificateError::BadSignature(a.voter));
            }
            voters.insert(a.voter);
        }
        let need = validators.approve_quorum();
        if voters.len() < need {
            return Err(CertificateError::TooFewApprovals {
                got: voters.len(),
                need,
            });
        }
        Ok(())
    }
}

impl Certificate {
    /// Each approval's signature with the message it covers (those whose
    /// paths lead somewhere).
    pub fn signed(&self, network_id: &str) -> Vec<crate::identity::Signed> {
        let txid = self.tx.id();
        self.approvals
            .iter()
            .filter_map(|a| {
                let msg = vote_message(network_id, &txid, true, &a.proof)?;
                Some((a.voter, msg, a.signature.0))
            })
            .collect()
    }
}

/// Verified votes on one transaction; a validator's first vote counts.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    approvals: BTreeMap<NodeId, (Signature, Proof)>,
    rejections: BTreeMap<NodeId, (Signature, Proof)>,
}

impl Tally {
    /// Adds a verified vote; false if this voter had already voted.
    pub fn add(&mut self, vote: &Vote) -> bool {
        if self.approvals.contains_key(&vote.voter) || self.rejections.contains_key(&vote.voter) {
            return false;
        }
        let side = if vote.approve {
            &mut self.approvals
        } else {
            &mut self.rejections
        };
        side.insert(vote.voter, (vote.signature, vote.proof.clone()));
        true
    }

    pub fn approvals(&self) -> usize {
        self.approvals.len()
    }

    pub fn rejections(&self) -> usize {
        self.rejections.len()
    }

    /// Whether `voter` already voted here (either way).
    pub fn has_voted(&self, voter: &NodeId) -> bool {
        self.approvals.contains_key(voter) || self.rejections.contains_key(voter)
    }

    /// Every vote held on `txid`, approvals first.
    pub fn votes(&self, txid: TxId) -> impl Iterator<Item = Vote> + '_ {
        let side = |approve: bool, m: &'_ BTreeMap<NodeId, (Signature, Proof)>| {
            m.iter()
                .map(move |(voter, (signature, proof))| Vote {
                    txid,
                    voter: *voter,
                    approve,
                    signature: *signature,
                    proof: proof.clone(),
                })
                .collect::<Vec<_>>()
        };
        side(true, &self.approvals)
            .into_iter()
            .chain(side(false, &self.rejections))
    }

    /// Whether this very approval (signature and path) is counted here.
    pub fn has_approval(&self, a: &Approval) -> bool {
        self.approvals
            .get(&a.voter)
            .is_some_and(|(sig, proof)| *sig == a.signature && *proof == a.proof)
    }

    /// A certificate of `tx` from the approvals, once there are enough.
    pub fn certificate(&self, tx: &Transaction, validators: &Validators) -> Option<Certificate> {
        (self.approvals.len() >= validators.approve_quorum()).then(|| Certificate {
            tx: tx.clone(),
            approvals: self
                .approvals
                .iter()
                .map(|(voter, (signature, proof))| Approval {
                    voter: *voter,
                    signature: *signature,
                    proof: proof.clone(),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_sizes() {
        for (n, f, approve, reject) in [
            (1, 0, 1, 1),
            (4, 1, 3, 2),
            (5, 1, 4, 2),
            (7, 2, 5, 3),
            (10, 3, 7, 4),
        ] {
            let v = Validators::new(
                (0..n)
                    .map(|i| Keypair::from_seed([i as u8; 32]).id())
                    .collect(),
            );
            assert_eq!(
                (v.max_faulty(), v.approve_quorum(), v.reject_quorum()),
                (f, approve, reject),
                "n={n}"
            );
            // Two approval quorums overlap in more than f validators; an approval
            // quorum and a rejection quorum cannot both exist among n.
            assert!(2 * approve - n > f);
            assert!(approve + reject > n);
        }
    }

    #[test]
    fn certificates_need_a_quorum_of_distinct_valid_approvals() {
        let keys: Vec<Keypair> = (0..4).map(|i| Keypair::from_seed([i + 1; 32])).collect();
        let v = Validators::new(keys.iter().map(|k| k.id()).collect());
        let tx = Transaction {
            inputs: vec![],
            outputs: vec![],
            memo: 1,
        };
        let txid = tx.id();
        let mut tally = Tally::default();
        for k in &keys[..2] {
            assert!(tally.add(&Vote::new(k, "net", txid, true)));
        }
        assert!(
            !tally.add(&Vote::new(&keys[0], "net", txid, false)),
            "one vote per validator"
        );
        assert!(tally.certificate(&tx, &v).is_none());
        tally.add(&Vote::new(&keys[2], "net", txid, true));
        let cert = tally.certificate(&tx, &v).unwrap();
        assert_eq!(cert.verify("net", &v, |_, _| false), Ok(()));
        assert!(cert.verify("other-net", &v, |_, _| false).is_err());

        let mut dup = cert.clone();
        dup.approvals[2] = dup.approvals[0].clone();
        assert_eq!(
            dup.verify("net", &v, |_, _| false),
            Err(CertificateError::TooFewApprovals { got: 2, need: 3 })
        );
        let mut forged = cert.clone();
        forged.approvals[1].signature = Signature([0; 64]);
        assert!(matches!(
            forged.verify("net", &v, |_, _| false),
            Err(CertificateError::BadSignature(_))
        ));
        let outsider = Keypair::generate();
        let mut foreign = cert;
        foreign.approvals[0] = Approval {
            voter: outsider.id(),
            signature: Vote::new(&outsider, "net", txid, true).signature,
            proof: Proof::default(),
        };
        assert!(matches!(
            foreign.verify("net", &v, |_, _| false),
            Err(CertificateError::NotAValidator(_))
        ));
    }
}
