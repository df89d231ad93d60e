use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

use super::*;
use crate::identity::Keypair;

fn signed(key: &Keypair, i: u8) -> Signed {
    let msg = [i; 32];
    (key.id(), msg, key.sign(&msg))
}

fn good(n: usize) -> Vec<Signed> {
    let keys: Vec<Keypair> = (0..3).map(|_| Keypair::generate()).collect();
    (0..n).map(|i| signed(&keys[i % 3], i as u8)).collect()
}

#[test]
fn a_batch_of_good_signatures_is_one_check_and_each_is_held() {
    let all = good(10);
    let mut v = Verified::default();
    let checked = v.check(all.clone());
    assert_eq!(
        checked,
        Checked {
            signatures: 10,
            valid: 10,
            batches: 1,
            singles: 0
        }
    );
    for (key, msg, sig) in &all {
        assert!(v.contains(key, msg, sig));
    }
    // A good signature on another message is not held (and fails alone).
    let (key, _, sig) = all[0];
    assert!(!v.contains(&key, &[0xee; 32], &sig));
    assert!(!v.verify(&key, &[0xee; 32], &sig));
    // The next batch replaces this one.
    v.check(good(4));
    assert!(!v.contains(&all[0].0, &all[0].1, &all[0].2));
    assert_eq!(v.len(), 4);
}

#[test]
fn a_forgery_is_found_by_halving_and_every_good_one_is_kept() {
    let mut all = good(64);
    all[37].2[5] ^= 1;
    let mut v = Verified::default();
    let checked = v.check(all.clone());
    assert_eq!(checked.valid, 63);
    assert!(!v.contains(&all[37].0, &all[37].1, &all[37].2));
    assert!(!v.verify(&all[37].0, &all[37].1, &all[37].2));
    // One bad among 64: one failed check per level (6), each with a good
    // twin, then one single.
    assert!(checked.batches <= 2 * 6 + 1, "{checked:?}");
    assert!(checked.singles <= 2, "{checked:?}");
    // Garbage (an R that is no point) is refused too, the rest kept.
    let mut junk = good(8);
    junk[2].2[..32].copy_from_slice(&[0xff; 32]);
    assert_eq!(v.check(junk).valid, 7);
}

#[test]
fn too_few_to_batch_are_left_to_single_checks() {
    let few = good(MIN_BATCH - 1);
    let mut v = Verified::default();
    assert_eq!(v.check(few.clone()).batches, 0);
    assert!(v.is_empty());
    for (key, msg, sig) in &few {
        assert!(v.verify(key, msg, sig), "a good signature refused alone");
    }
}

#[test]
fn few_but_repeated_are_each_checked_once_and_held() {
    // The votes of one signed batch, sent one by one: one signature, many times.
    let one = good(1)[0];
    let mut forged = good(1)[0];
    forged.2[3] ^= 1;
    let mut v = Verified::default();
    let checked = v.check([one, one, one, forged, forged]);
    assert_eq!(
        (checked.signatures, checked.singles, checked.valid),
        (2, 2, 1)
    );
    assert!(v.contains(&one.0, &one.1, &one.2));
    assert!(!v.contains(&forged.0, &forged.1, &forged.2));
}

/// A signature made by hand: secret scalar `a`, nonce `r`, the nonce point
/// moved by `torsion` (a small-order point) before hashing.
fn crafted(a: Scalar, r: Scalar, torsion: EdwardsPoint, msg: &[u8; 32]) -> Signed {
    let big_a = (a * B).compress();
    let big_r = (r * B + torsion).compress();
    let hash = Sha512::new()
        .chain_update(big_r.as_bytes())
        .chain_update(big_a.as_bytes())
        .chain_update(msg)
        .finalize();
    let k = Scalar::from_bytes_mod_order_wide(&hash.into());
    let s = r + k * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(big_r.as_bytes());
    sig[32..].copy_from_slice(s.as_bytes());
    (NodeId::from_bytes(big_a.to_bytes()), *msg, sig)
}

#[test]
fn batch_and_single_checks_agree_on_signatures_crafted_with_small_order_points() {
    let a = Scalar::from_bytes_mod_order([9; 32]);
    let r = Scalar::from_bytes_mod_order([4; 32]);
    let msg = [1; 32];
    // R moved by a point of order 8: the cofactored equation holds, the
    // cofactorless one (ed25519-dalek's `verify`) does not.
    let moved = crafted(a, r, EIGHT_TORSION[1], &msg);
    // A key of small order with R the identity and s = 0: valid under the
    // cofactored equation for any message.
    let mut small = [0u8; 64];
    small[..32].copy_from_slice(EdwardsPoint::default().compress().as_bytes());
    let small_key = NodeId::from_bytes(EIGHT_TORSION[2].compress().to_bytes());
    let small = (small_key, msg, small);
    // s not reduced (s + l): refused by both.
    let mut unreduced = crafted(a, r, EdwardsPoint::default(), &msg);
    let s = Scalar::from_canonical_bytes(unreduced.2[32..].try_into().unwrap()).unwrap();
    let l_plus_s = add_l(s.as_bytes());
    unreduced.2[32..].copy_from_slice(&l_plus_s);
    let dalek = |(key, msg, sig): &Signed| {
        ed25519_dalek::VerifyingKey::from_bytes(key.as_bytes()).is_ok_and(|k| {
            k.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig))
                .is_ok()
        })
    };
    assert!(
        !dalek(&moved),
        "the crafted signature passes dalek: the test shows nothing"
    );
    for (case, expect) in [(moved, true), (small, true), (unreduced, false)] {
        let single = case.0.verify(&case.1, &case.2);
        let mut v = Verified::default();
        let mut batch = good(MIN_BATCH);
        batch.push(case);
        v.check(batch);
        let batched = v.contains(&case.0, &case.1, &case.2);
        assert_eq!(single, expect, "single check of {case:?}");
        assert_eq!(batched, single, "batch and single disagree on {case:?}");
    }
}

/// `s + l` as 32 little-endian bytes (fits: s < l < 2^253).
fn add_l(s: &[u8; 32]) -> [u8; 32] {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = s[i] as u16 + L[i] as u16 + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    out
}
