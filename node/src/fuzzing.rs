//! What the fuzz targets (`fuzz/`, cargo-fuzz) run on arbitrary bytes, and
//! what `cargo test` runs again on every input kept under
//! `fuzz/regressions/` (crashes found, once fixed, and seeds). Each entry point
//! must return for any input: no panic, no hang, no allocation beyond the
//! limits the real code enforces. Properties are asserted where the input
//! allows one (what decodes encodes back the same).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::genesis::{Addressing, GeneratedGenesis, Genesis, PROTOCOL_VERSION};
use crate::ledger::tx::Transaction;
use crate::ledger::{Ledger, Limits};
use crate::p2p::frame::{FrameCodec, HANDSHAKE_MAX_FRAME, MAX_FRAME};
use crate::p2p::handshake::{self, LocalHello};
use crate::p2p::message::Message;

/// A fixed genesis of four validators (keys from a seed), built once.
fn genesis() -> &'static GeneratedGenesis {
    static G: OnceLock<GeneratedGenesis> = OnceLock::new();
    G.get_or_init(|| {
        let at = Addressing::Host {
            ip: "127.0.0.1".parse().expect("an address"),
            first_port: 7000,
        };
        Genesis::generate(4, &at, Some("fuzz")).expect("a genesis of four")
    })
}

/// What validator `i` of [`genesis`] says of itself in a handshake.
fn hello_of(i: usize) -> LocalHello {
    let g = genesis();
    LocalHello {
        network_id: g.genesis.network_id.clone(),
        protocol_version: PROTOCOL_VERSION,
        min_peer_version: PROTOCOL_VERSION,
        node_id: g.validator_keys[i].id(),
        listen_addr: g.genesis.validators[i].p2p_address,
    }
}

/// Frames cut from a byte stream, before and after the handshake's limit:
/// every frame is within the limit, and the decoder either waits for more,
/// yields a frame, or fails; it never loops or over-allocates.
pub fn frames(data: &[u8]) {
    for max in [HANDSHAKE_MAX_FRAME, MAX_FRAME] {
        let mut codec = FrameCodec::new(max);
        // Fed in uneven pieces, as a socket delivers them.
        let mut src = BytesMut::new();
        for piece in data.chunks(7) {
            src.extend_from_slice(piece);
            loop {
                match codec.decode(&mut src) {
                    Ok(Some(frame)) => assert!(frame.len() <= max),
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
        let _ = codec.decode_eof(&mut src);
    }
}

/// A message payload: what decodes encodes back to something that decodes
/// to the same message.
pub fn message(data: &[u8]) {
    if let Ok(m) = Message::decode(data) {
        let again = Message::decode(&m.encode()).expect("what encodes decodes");
        assert_eq!(format!("{m:?}"), format!("{again:?}"));
    }
}

/// The handshake's checks in the order a connection runs them, on messages
/// decoded from `data` (a VERSION then a VERACK, each length-prefixed by one
/// byte): a peer is let in only with a genesis key at its genesis address
/// and a signature by that key.
pub fn handshake(data: &[u8]) {
    let g = genesis();
    let local = hello_of(0);
    let roster: HashMap<_, SocketAddr> = g
        .genesis
        .members()
        .map(|v| (v.public_key, v.p2p_address))
        .collect();
    let (first, rest) = split(data);
    let Ok(Message::Version(theirs)) = Message::decode(first) else {
        return;
    };
    let our_nonce = 42;
    if handshake::check_version(&local, &theirs, |n| n == our_nonce).is_err() {
        return;
    }
    let admitted = handshake::check_admission(&roster, false, &theirs);
    if admitted.is_ok() {
        assert_eq!(roster.get(&theirs.node_id), Some(&theirs.listen_addr));
    }
    let (second, _) = split(rest);
    if let Ok(Message::Verack(v)) = Message::decode(second) {
        let signed = handshake::check_verack(&local.network_id, &theirs, our_nonce, &v);
        // A VERACK is bound to our nonce: it proves nothing to another one.
        if signed.is_ok() {
            let replayed = handshake::check_verack(&local.network_id, &theirs, our_nonce + 1, &v);
            assert!(replayed.is_err(), "a VERACK verified for two nonces");
        }
    }
}

/// `data` split after a one-byte length prefix.
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.split_first() {
        Some((len, rest)) => rest.split_at((*len as usize).min(rest.len())),
        None => (&[], &[]),
    }
}

/// A transaction as the node takes one: postcard (from a peer) and JSON (from
/// a client), then checked against a genesis ledger. A check that passes
/// means the transaction is well formed, within the limits, and signed.
pub fn transaction(data: &[u8]) {
    let g = genesis();
    let ledger = Ledger::from_genesis(&g.genesis, Limits::default());
    let decoded = [
        postcard::from_bytes::<Transaction>(data).ok(),
        serde_json::from_slice::<Transaction>(data).ok(),
    ];
    for tx in decoded.into_iter().flatten() {
        let shaped = ledger.check_shape(&tx);
        if ledger.check(&tx).is_ok() {
            assert!(shaped.is_ok());
            assert!(tx.size() <= Limits::default().max_tx_size);
        }
    }
}

/// Runs `target` on each input kept in `dir` (`fuzz/regressions/NAME/`: the
/// seeds, and each crash a fuzzer found, once fixed); there must be some.
/// Both crates' tests call it.
pub fn replay(dir: &str, target: fn(&[u8])) {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let path = entry.expect("a directory entry").path();
        let bytes = std::fs::read(&path).expect("a kept input");
        println!("{}", path.display());
        target(&bytes);
        count += 1;
    }
    assert!(count > 0, "no inputs kept in {dir}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(name: &str) -> String {
        format!("{}/../fuzz/regressions/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    /// What cargo-fuzz found stays found without cargo-fuzz.
    #[test]
    fn kept_inputs_pass_again() {
        replay(&kept("frames"), frames);
        replay(&kept("message"), message);
        replay(&kept("handshake"), handshake);
        replay(&kept("transaction"), transaction);
    }

    /// Honest input passes through each entry point (the fuzz targets start
    /// from such seeds).
    #[test]
    fn honest_seeds_pass() {
        let frame = FrameCodec::encode_frame(b"hello");
        frames(&frame);
        let ping = Message::Ping { nonce: 7 }.encode();
        message(&ping);
        let v = hello_of(1).version(9);
        let bytes = Message::Version(v).encode();
        let mut input = vec![bytes.len() as u8];
        input.extend_from_slice(&bytes);
        handshake(&input);
        transaction(b"{\"inputs\":[],\"outputs\":[],\"memo\":1}");
    }

    /// The honest seeds kept for the fuzzers, as this code encodes them: a
    /// validator's VERSION, the handshake a validator completes, and a
    /// signed payment from the faucet (postcard and JSON).
    fn honest_seeds() -> Vec<(&'static str, Vec<u8>)> {
        use crate::genesis::GENESIS_OUTPUTS;
        use crate::ledger::tx::{genesis_txid, OutPoint, TxOut};
        let g = genesis();
        let (net, key) = (&g.genesis.network_id, &g.validator_keys[1]);
        let version = Message::Version(hello_of(1).version(9)).encode();
        // The local side's nonce is 42 (see `handshake`).
        let verack = Message::Verack(handshake::make_verack(key, net, 42, 9)).encode();
        let mut hello = vec![version.len() as u8];
        hello.extend_from_slice(&version);
        hello.push(verack.len() as u8);
        hello.extend_from_slice(&verack);
        // A fee above the minimum (0.1 % of what is moved, plus a base).
        let output = crate::genesis::GENESIS_SUPPLY / GENESIS_OUTPUTS;
        let value = output - output / 500 - 1000;
        let payment = Transaction::signed(
            net,
            &[OutPoint {
                txid: genesis_txid(net),
                vout: 0,
            }],
            vec![TxOut {
                owner: key.id(),
                value,
            }],
            1,
            &[&g.faucet_key],
        );
        vec![
            ("message/seed-version", version.to_vec()),
            ("handshake/seed-honest-validator", hello),
            (
                "transaction/seed-payment.postcard",
                postcard::to_stdvec(&payment).unwrap(),
            ),
            (
                "transaction/seed-payment.json",
                serde_json::to_vec(&payment).unwrap(),
            ),
        ]
    }

    /// The kept seeds are in the current encoding, and pass every check of
    /// their entry point: a change of encoding would otherwise leave them
    /// exercising only the decode errors. `TESTNET_WRITE_SEEDS=1 cargo test
    /// -p testnet-node --lib kept_seeds` writes them again.
    #[test]
    fn kept_seeds_are_current_and_honest() {
        let g = genesis();
        for (name, bytes) in honest_seeds() {
            let file = kept(name);
            if std::env::var_os("TESTNET_WRITE_SEEDS").is_some() {
                std::fs::write(&file, &bytes).unwrap();
            }
            let on_disk = std::fs::read(&file).unwrap_or_default();
            assert!(
                on_disk == bytes,
                "{file} is not what this code encodes: run TESTNET_WRITE_SEEDS=1 cargo test -p testnet-node --lib kept_seeds"
            );
        }
        let seeds: HashMap<_, _> = honest_seeds().into_iter().collect();
        let ledger = Ledger::from_genesis(&g.genesis, Limits::default());
        for name in [
            "transaction/seed-payment.postcard",
            "transaction/seed-payment.json",
        ] {
            let bytes = &seeds[name];
            let tx = postcard::from_bytes::<Transaction>(bytes)
                .or_else(|_| serde_json::from_slice::<Transaction>(bytes))
                .unwrap();
            assert!(ledger.check(&tx).is_ok(), "{name}: {:?}", ledger.check(&tx));
        }
        let hello = &seeds["handshake/seed-honest-validator"];
        let (first, rest) = split(hello);
        let Ok(Message::Version(theirs)) = Message::decode(first) else {
            panic!("the seed's VERSION does not decode");
        };
        let roster: HashMap<_, SocketAddr> = g
            .genesis
            .members()
            .map(|v| (v.public_key, v.p2p_address))
            .collect();
        let local = hello_of(0);
        assert!(handshake::check_version(&local, &theirs, |n| n == 42).is_ok());
        assert!(handshake::check_admission(&roster, false, &theirs).is_ok());
        let Ok(Message::Verack(v)) = Message::decode(split(rest).0) else {
            panic!("the seed's VERACK does not decode");
        };
        assert!(handshake::check_verack(&local.network_id, &theirs, 42, &v).is_ok());
    }
}
