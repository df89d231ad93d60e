//! The P2P message set and its encoding.
//!
//! Messages are a serde enum encoded with postcard inside a frame. New variants are
//! appended at the end so older peers fail to decode only the variants they do not
//! know; the protocol version in VERSION says which set a peer speaks.

use std::net::SocketAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::finality::LedgerMessage;
use crate::identity::NodeId;

/// First message on every connection, in both directions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub network_id: String,
    pub protocol_version: u32,
    pub node_id: NodeId,
    /// Fresh per connection: detects self-connections and is the challenge the peer
    /// must sign in its VERACK.
    pub nonce: u64,
    /// Where this node accepts connections (its genesis address when a validator).
    pub listen_addr: SocketAddr,
}

/// Second message: proves the sender holds the key it claimed in VERSION by signing
/// the receiver's nonce (see [`super::handshake::challenge`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verack {
    pub signature: Vec<u8>,
}

/// Why a peer closes a connection on purpose. Sent in [`Message::Disconnect`] so the
/// other side can tell a graceful close from a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DisconnectReason {
    /// The sender is shutting down.
    Shutdown,
    /// Another connection between the same two nodes won the duplicate rule.
    Duplicate,
    /// The receiver broke the protocol (bad frame, bad message, failed handshake).
    ProtocolViolation,
    /// The sender is at its connection limit.
    TooManyPeers,
    /// The receiver did not read fast enough; its send queue overflowed.
    SlowPeer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Version(Version),
    Verack(Verack),
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    Disconnect {
        reason: DisconnectReason,
    },
    /// Transactions, votes, certificates and catch-up, for the ledger.
    Ledger(LedgerMessage),
}

impl Message {
    /// The `type` label of `testnet_messages_total` and `testnet_bytes_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Version(_) => "version",
            Message::Verack(_) => "verack",
            Message::Ping { .. } => "ping",
            Message::Pong { .. } => "pong",
            Message::Disconnect { .. } => "disconnect",
            Message::Ledger(m) => m.kind(),
        }
    }

    pub fn encode(&self) -> Bytes {
        // Sized first: one allocation, never grown.
        let size =
            postcard::experimental::serialized_size(self).expect("messages always serialize");
        let buf = postcard::to_extend(self, Vec::with_capacity(size));
        Bytes::from(buf.expect("messages always serialize"))
    }

    pub fn decode(payload: &[u8]) -> Result<Message, postcard::Error> {
        postcard::from_bytes(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    #[test]
    fn every_message_round_trips() {
        let messages = [
            Message::Version(Version {
                network_id: "testnet-abcd".into(),
                protocol_version: 1,
                node_id: Keypair::generate().id(),
                nonce: u64::MAX,
                listen_addr: "[::1]:7000".parse().unwrap(),
            }),
            Message::Verack(Verack {
                signature: vec![9; 64],
            }),
            Message::Ping { nonce: 1 },
            Message::Pong { nonce: 2 },
            Message::Disconnect {
                reason: DisconnectReason::Duplicate,
            },
        ];
        for m in messages {
            assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn unknown_variant_and_trailing_garbage_are_errors_not_panics() {
        assert!(Message::decode(&[200, 1, 2]).is_err());
        assert!(Message::decode(&[]).is_err());
        // A Vec length prefix claiming far more bytes than the frame holds.
        assert!(Message::decode(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }
}
