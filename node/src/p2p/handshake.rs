//! The VERSION/VERACK handshake as pure functions, and why a handshake can fail.
//!
//! Both sides send VERSION at once, check the peer's, then send VERACK: an ed25519
//! signature over a challenge binding the network id, the signer's key and *both*
//! nonces. The verifier's nonce is fresh, so a recorded VERACK cannot be replayed.
//! The I/O that drives these steps lives in `connection.rs`.

use std::net::SocketAddr;

use sha2::{Digest, Sha256};

use super::message::{Verack, Version};
use crate::identity::{Keypair, NodeId};

/// Why a connection failed before it became a peer. `label()` is the `reason` label
/// of `testnet_handshake_failures_total`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeFailure {
    #[error("bad magic bytes: not a testnet peer")]
    BadMagic,
    #[error("frame of {len} bytes exceeds the handshake limit of {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("connection closed in the middle of a frame")]
    TruncatedFrame,
    #[error("undecodable message: {0}")]
    MalformedMessage(String),
    #[error("expected {expected}, got {got}")]
    UnexpectedMessage {
        expected: &'static str,
        got: &'static str,
    },
    #[error("peer is on network {theirs:?}, we are on {ours:?}")]
    WrongNetwork { ours: String, theirs: String },
    #[error("peer speaks protocol version {theirs}; we speak {ours} and accept {min} or later")]
    ProtocolVersion { ours: u32, min: u32, theirs: u32 },
    #[error("peer's public key is not a valid ed25519 key")]
    BadPublicKey,
    #[error("VERACK signature does not verify for the key claimed in VERSION")]
    BadSignature,
    #[error("connected to ourselves")]
    SelfConnection,
    #[error("no complete handshake within {0:?}")]
    Timeout(std::time::Duration),
    #[error("peer closed the connection during the handshake")]
    ConnectionClosed,
    #[error("peer refused the connection: {0:?}")]
    Refused(super::message::DisconnectReason),
    #[error("i/o error: {0}")]
    Io(String),
    #[error("already connected or connecting to this peer (simulated handshake race)")]
    DuplicateConnection,
    #[error("inbound connection limit reached")]
    InboundLimit,
    #[error("peer's key is not a genesis node's (validators and full nodes only)")]
    UnknownPeer,
    #[error("peer claims listen address {claimed}, but genesis places its key at {genesis:?} (a key claiming another node's address could keep that node's dialer waiting for ever)")]
    AddressClaim {
        claimed: SocketAddr,
        genesis: Option<SocketAddr>,
    },
    #[error("too many connections from {0} at once")]
    SourceLimit(std::net::IpAddr),
}

impl HandshakeFailure {
    pub fn label(&self) -> &'static str {
        match self {
            HandshakeFailure::BadMagic => "bad_magic",
            HandshakeFailure::FrameTooLarge { .. } => "frame_too_large",
            HandshakeFailure::TruncatedFrame => "truncated_frame",
            HandshakeFailure::MalformedMessage(_) => "malformed_message",
            HandshakeFailure::UnexpectedMessage { .. } => "unexpected_message",
            HandshakeFailure::WrongNetwork { .. } => "wrong_network",
            HandshakeFailure::ProtocolVersion { .. } => "protocol_version",
            HandshakeFailure::BadPublicKey => "bad_public_key",
            HandshakeFailure::BadSignature => "bad_signature",
            HandshakeFailure::SelfConnection => "self_connection",
            HandshakeFailure::Timeout(_) => "timeout",
            HandshakeFailure::ConnectionClosed => "connection_closed",
            HandshakeFailure::Refused(_) => "refused",
            HandshakeFailure::Io(_) => "io_error",
            HandshakeFailure::DuplicateConnection => "duplicate_connection",
            HandshakeFailure::InboundLimit => "inbound_limit",
            HandshakeFailure::UnknownPeer => "unknown_peer",
            HandshakeFailure::AddressClaim { .. } => "address_claim",
            HandshakeFailure::SourceLimit(_) => "source_limit",
        }
    }

    /// Failures a well-behaved peer never causes: worth a warning. The rest (silence,
    /// closed sockets, self-connections, limits) are the weather of a network.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            HandshakeFailure::BadMagic
                | HandshakeFailure::FrameTooLarge { .. }
                | HandshakeFailure::TruncatedFrame
                | HandshakeFailure::MalformedMessage(_)
                | HandshakeFailure::UnexpectedMessage { .. }
                | HandshakeFailure::WrongNetwork { .. }
                | HandshakeFailure::ProtocolVersion { .. }
                | HandshakeFailure::BadPublicKey
                | HandshakeFailure::BadSignature
                | HandshakeFailure::UnknownPeer
                | HandshakeFailure::AddressClaim { .. }
        )
    }
}

/// What a node says about itself in VERSION.
#[derive(Debug, Clone)]
pub struct LocalHello {
    pub network_id: String,
    pub protocol_version: u32,
    /// A peer speaking an older version than this is refused.
    pub min_peer_version: u32,
    pub node_id: NodeId,
    pub listen_addr: SocketAddr,
}

impl LocalHello {
    pub fn version(&self, nonce: u64) -> Version {
        Version {
            network_id: self.network_id.clone(),
            protocol_version: self.protocol_version,
            node_id: self.node_id,
            nonce,
            listen_addr: self.listen_addr,
        }
    }
}

/// The bytes a VERACK signs: domain, network, signer key, verifier nonce, signer nonce.
pub fn challenge(
    network_id: &str,
    signer: &NodeId,
    verifier_nonce: u64,
    signer_nonce: u64,
) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"testnet-handshake-v1\0")
        .chain_update((network_id.len() as u32).to_be_bytes())
        .chain_update(network_id.as_bytes())
        .chain_update(signer.as_bytes())
        .chain_update(verifier_nonce.to_be_bytes())
        .chain_update(signer_nonce.to_be_bytes())
        .finalize()
        .into()
}

/// Checks a peer's VERSION. `is_own_nonce` answers whether a nonce belongs to one of
/// our own handshakes in flight: if so we dialed ourselves.
pub fn check_version(
    local: &LocalHello,
    theirs: &Version,
    is_own_nonce: impl Fn(u64) -> bool,
) -> Result<(), HandshakeFailure> {
    if theirs.network_id != local.network_id {
        return Err(HandshakeFailure::WrongNetwork {
            ours: local.network_id.clone(),
            theirs: theirs.network_id.chars().take(64).collect(),
        });
    }
    if theirs.protocol_version < local.min_peer_version {
        return Err(HandshakeFailure::ProtocolVersion {
            ours: local.protocol_version,
            min: local.min_peer_version,
            theirs: theirs.protocol_version,
        });
    }
    if is_own_nonce(theirs.nonce) || theirs.node_id == local.node_id {
        return Err(HandshakeFailure::SelfConnection);
    }
    if theirs.node_id.verifying_key().is_none() {
        return Err(HandshakeFailure::BadPublicKey);
    }
    Ok(())
}

/// Who may become a peer. `roster` holds each genesis node's key and P2P
/// address: such a key must claim its own address (VERSION's address is not
/// signed, and a dialer waits while "its" address is connected). Another key
/// is refused unless admission is `open`, and even then may not claim a
/// genesis node's address.
pub fn check_admission(
    roster: &std::collections::HashMap<NodeId, SocketAddr>,
    open: bool,
    theirs: &Version,
) -> Result<(), HandshakeFailure> {
    let claim = |genesis| HandshakeFailure::AddressClaim {
        claimed: theirs.listen_addr,
        genesis,
    };
    match roster.get(&theirs.node_id) {
        Some(addr) if *addr == theirs.listen_addr => Ok(()),
        Some(addr) => Err(claim(Some(*addr))),
        None if !open => Err(HandshakeFailure::UnknownPeer),
        None if roster.values().any(|a| *a == theirs.listen_addr) => Err(claim(None)),
        None => Ok(()),
    }
}

/// Our VERACK for a peer whose VERSION carried `their_nonce`.
pub fn make_verack(
    keypair: &Keypair,
    network_id: &str,
    their_nonce: u64,
    our_nonce: u64,
) -> Verack {
    let msg = challenge(network_id, &keypair.id(), their_nonce, our_nonce);
    Verack {
        signature: keypair.sign(&msg).to_vec(),
    }
}

/// Checks that the peer's VERACK is signed by the key its VERSION claimed.
pub fn check_verack(
    network_id: &str,
    theirs: &Version,
    our_nonce: u64,
    verack: &Verack,
) -> Result<(), HandshakeFailure> {
    let msg = challenge(network_id, &theirs.node_id, our_nonce, theirs.nonce);
    if theirs.node_id.verify(&msg, &verack.signature) {
        Ok(())
    } else {
        Err(HandshakeFailure::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::PROTOCOL_VERSION;

    fn hello(key: &Keypair) -> LocalHello {
        LocalHello {
            protocol_version: PROTOCOL_VERSION,
            min_peer_version: PROTOCOL_VERSION,
            network_id: "net-a".into(),
            node_id: key.id(),
            listen_addr: "127.0.0.1:7000".parse().unwrap(),
        }
    }

    #[test]
    fn honest_handshake_verifies_both_ways() {
        let (a, b) = (Keypair::generate(), Keypair::generate());
        let (va, vb) = (hello(&a).version(11), hello(&b).version(22));
        check_version(&hello(&a), &vb, |n| n == 11).unwrap();
        check_version(&hello(&b), &va, |n| n == 22).unwrap();
        let from_a = make_verack(&a, "net-a", vb.nonce, va.nonce);
        let from_b = make_verack(&b, "net-a", va.nonce, vb.nonce);
        check_verack("net-a", &va, vb.nonce, &from_a).unwrap();
        check_verack("net-a", &vb, va.nonce, &from_b).unwrap();
    }

    #[test]
    fn a_peer_claiming_someone_elses_key_fails() {
        let (a, b, mallory) = (
            Keypair::generate(),
            Keypair::generate(),
            Keypair::generate(),
        );
        // Mallory claims to be b but can only sign with her own key.
        let claimed = hello(&b).version(5);
        let forged = make_verack(&mallory, "net-a", 7, 5);
        assert_eq!(
            check_verack("net-a", &claimed, 7, &forged),
            Err(HandshakeFailure::BadSignature)
        );
        // A VERACK recorded for another nonce of ours cannot be replayed.
        let honest_for_old = make_verack(&b, "net-a", 6, 5);
        assert_eq!(
            check_verack("net-a", &claimed, 7, &honest_for_old),
            Err(HandshakeFailure::BadSignature)
        );
        let _ = a;
    }

    #[test]
    fn only_genesis_keys_at_their_own_addresses_are_admitted() {
        let (n0, n1, stranger) = (
            Keypair::generate(),
            Keypair::generate(),
            Keypair::generate(),
        );
        let at = |p: u16| SocketAddr::from(([10, 0, 0, 1], p));
        let roster = std::collections::HashMap::from([(n0.id(), at(1)), (n1.id(), at(2))]);
        let says = |key: &Keypair, addr| Version {
            listen_addr: addr,
            ..hello(key).version(1)
        };
        for open in [false, true] {
            assert_eq!(check_admission(&roster, open, &says(&n0, at(1))), Ok(()));
            assert_eq!(
                check_admission(&roster, open, &says(&n0, at(2))),
                Err(HandshakeFailure::AddressClaim {
                    claimed: at(2),
                    genesis: Some(at(1))
                }),
                "n0's key holder claiming n1's address (open: {open})"
            );
        }
        let unknown = check_admission(&roster, false, &says(&stranger, at(9)));
        assert_eq!(unknown, Err(HandshakeFailure::UnknownPeer));
        assert_eq!(
            check_admission(&roster, true, &says(&stranger, at(9))),
            Ok(())
        );
        let squatting = check_admission(&roster, true, &says(&stranger, at(2)));
        assert_eq!(squatting.unwrap_err().label(), "address_claim");
    }

    #[test]
    fn wrong_network_version_and_self_are_refused() {
        let a = Keypair::generate();
        let mut v = hello(&Keypair::generate()).version(1);
        v.network_id = "net-b".into();
        assert_eq!(
            check_version(&hello(&a), &v, |_| false)
                .unwrap_err()
                .label(),
            "wrong_network"
        );
        // A newer peer is accepted; an older one than our minimum is refused.
        let mut v = hello(&Keypair::generate()).version(1);
        v.protocol_version = 999;
        assert_eq!(check_version(&hello(&a), &v, |_| false), Ok(()));
        let mut upgraded = hello(&a);
        upgraded.protocol_version = 3;
        upgraded.min_peer_version = 2;
        let old = hello(&Keypair::generate()).version(1);
        let refused = check_version(&upgraded, &old, |_| false).unwrap_err();
        assert_eq!(refused.label(), "protocol_version");
        assert_eq!(
            refused.to_string(),
            "peer speaks protocol version 1; we speak 3 and accept 2 or later"
        );
        let v = hello(&Keypair::generate()).version(42);
        assert_eq!(
            check_version(&hello(&a), &v, |n| n == 42),
            Err(HandshakeFailure::SelfConnection)
        );
        let v = hello(&a).version(43);
        assert_eq!(
            check_version(&hello(&a), &v, |_| false),
            Err(HandshakeFailure::SelfConnection)
        );
    }
}
