//! Ed25519 signatures checked together. A batch of n signatures costs about
//! half of n single checks (one multiscalar multiplication; the terms of one
//! signer are merged), so the replica checks each batch of inputs' signatures
//! at once, and the engine then takes a signature found here for verified.
//!
//! Batch and single checks follow one rule, ZIP 215 (cofactored equation,
//! non-canonical point encodings accepted, `s` canonical), as
//! `ed25519-zebra` implements it: a signature valid in a batch is valid
//! alone, at every node, however its signer crafted it (with small-order
//! components included). A batch that fails is split in halves, each checked
//! again, down to single checks: k bad signatures among n cost about
//! 2k·log2(n/k) batch checks more, and every good one is still found.

use std::collections::HashSet;

use ed25519_zebra::batch::{Item, Verifier};
use ed25519_zebra::{Signature, VerificationKeyBytes};

use super::NodeId;

/// A signature to check: the signer, the 32-byte message (a hash) it signs,
/// and the signature.
pub type Signed = (NodeId, [u8; 32], [u8; 64]);

/// Fewer signatures than this are left to single checks.
const MIN_BATCH: usize = 4;

/// The signatures of the current batch found valid; the others (and any not
/// in the batch) are checked alone when they are used.
#[derive(Debug, Default)]
pub struct Verified {
    valid: HashSet<Signed>,
}

/// What a [`Verified::check`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Distinct signatures checked together.
    pub signatures: usize,
    /// Found valid.
    pub valid: usize,
    /// Batch checks made (1 when every signature was valid).
    pub batches: usize,
    /// Signatures checked one by one (a failed batch split down to one).
    pub singles: usize,
}

impl Verified {
    /// Checks `signed` together and keeps those valid, in place of what an
    /// earlier batch left. Fewer than [`MIN_BATCH`] distinct are not checked
    /// here, unless some come more than once (the votes of one signed batch
    /// sent one by one): then each is checked alone, once.
    pub fn check(&mut self, signed: impl IntoIterator<Item = Signed>) -> Checked {
        self.valid.clear();
        let mut seen = HashSet::new();
        let mut total = 0;
        let items: Vec<(Signed, Item)> = signed
            .into_iter()
            .inspect(|_| total += 1)
            .filter(|s| seen.insert(*s))
            .map(|s| {
                let (key, msg, sig) = s;
                let key = VerificationKeyBytes::from(*key.as_bytes());
                (s, Item::from((key, Signature::from_bytes(&sig), &msg[..])))
            })
            .collect();
        let mut checked = Checked {
            signatures: items.len(),
            ..Checked::default()
        };
        if items.len() >= MIN_BATCH {
            sift(&items, &mut self.valid, &mut checked);
        } else if total > items.len() {
            for ((key, msg, sig), _) in &items {
                checked.singles += 1;
                if key.verify(msg, sig) {
                    self.valid.insert((*key, *msg, *sig));
                }
            }
        }
        checked.valid = self.valid.len();
        checked
    }

    /// Whether `signature` by `key` over `message` is valid: found so in the
    /// batch, or checked now.
    pub fn verify(&self, key: &NodeId, message: &[u8; 32], signature: &[u8]) -> bool {
        self.contains(key, message, signature) || key.verify(message, signature)
    }

    /// Whether the batch found this signature valid (no check made here).
    pub fn contains(&self, key: &NodeId, message: &[u8; 32], signature: &[u8]) -> bool {
        <[u8; 64]>::try_from(signature).is_ok_and(|sig| self.valid.contains(&(*key, *message, sig)))
    }

    /// The signatures held as valid.
    pub fn len(&self) -> usize {
        self.valid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.valid.is_empty()
    }
}

/// Checks `items` together; if that fails, each half again, down to one.
fn sift(items: &[(Signed, Item)], valid: &mut HashSet<Signed>, checked: &mut Checked) {
    match items {
        [] => {}
        [(signed, item)] => {
            checked.singles += 1;
            if item.clone().verify_single().is_ok() {
                valid.insert(*signed);
            }
        }
        _ => {
            checked.batches += 1;
            let mut batch = Verifier::new();
            items.iter().for_each(|(_, item)| batch.queue(item.clone()));
            if batch.verify(rand::thread_rng()).is_ok() {
                valid.extend(items.iter().map(|(s, _)| *s));
            } else {
                let (a, b) = items.split_at(items.len() / 2);
                sift(a, valid, checked);
                sift(b, valid, checked);
            }
        }
    }
}

#[cfg(test)]
mod tests;
