//! The node's misbehaviour seam: Byzantine behaviours switched on and off
//! while the node runs (a fault, through the agent's loopback `PUT
//! /byzantine`), unlike seeded bugs, which are fixed at start. Each bends
//! what the node sends, never what it stores: it keeps every record an
//! honest node would, so switching it off again leaves an honest node.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::finality::{Effect, LedgerMessage};

/// Default hold of `delay-votes`, in milliseconds.
pub const DEFAULT_DELAY_MS: u64 = 2_000;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Send nothing of the ledger (no transactions, votes, certificates,
    /// catch-up); the connections stay up and answer pings.
    Mute,
    /// Approve every valid transaction, conflicting ones too.
    Equivocate,
    /// Hold each vote `delay_ms` before it leaves.
    DelayVotes,
    /// Send votes whose signatures do not verify.
    BadSignatures,
    /// Send an undecodable frame to every peer after each message it sends
    /// (each peer drops the connection, counted as a malformed message).
    GarbageFrames,
    /// Never send a certificate, nor answer a catch-up request.
    WithholdCertificates,
}

impl Behaviour {
    pub const ALL: [Behaviour; 6] = [
        Behaviour::Mute,
        Behaviour::Equivocate,
        Behaviour::DelayVotes,
        Behaviour::BadSignatures,
        Behaviour::GarbageFrames,
        Behaviour::WithholdCertificates,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Behaviour::Mute => "mute",
            Behaviour::Equivocate => "equivocate",
            Behaviour::DelayVotes => "delay-votes",
            Behaviour::BadSignatures => "bad-signatures",
            Behaviour::GarbageFrames => "garbage-frames",
            Behaviour::WithholdCertificates => "withhold-certificates",
        }
    }
}

impl std::str::FromStr for Behaviour {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Behaviour::ALL
            .into_iter()
            .find(|b| b.label() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Behaviour::ALL.iter().map(|b| b.label()).collect();
                format!("no behaviour {s:?}: use one of {}", all.join(", "))
            })
    }
}

/// What `PUT /byzantine` sets and `GET /byzantine` (and `/status`) reports:
/// the behaviours on now (empty: honest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Misbehaviour {
    #[serde(default)]
    pub behaviours: BTreeSet<Behaviour>,
    /// How long `delay-votes` holds a vote (default 2000 ms).
    #[serde(default = "default_delay")]
    pub delay_ms: u64,
}

fn default_delay() -> u64 {
    DEFAULT_DELAY_MS
}

impl Misbehaviour {
    pub fn honest() -> Self {
        Misbehaviour {
            behaviours: BTreeSet::new(),
            delay_ms: DEFAULT_DELAY_MS,
        }
    }

    pub fn is(&self, b: Behaviour) -> bool {
        self.behaviours.contains(&b)
    }
}

/// What leaves the replica after the behaviours bent it.
#[derive(Debug, Default, PartialEq)]
pub struct Outgoing {
    /// Sent now.
    pub now: Vec<Effect>,
    /// Sent after `delay_ms`.
    pub held: Vec<Effect>,
    /// Send a garbage frame to every peer after these.
    pub garbage: bool,
}

/// The live seam the replica reads on every batch.
#[derive(Debug)]
pub struct Byzantine {
    state: Mutex<Misbehaviour>,
}

impl Default for Byzantine {
    fn default() -> Self {
        Byzantine {
            state: Mutex::new(Misbehaviour::honest()),
        }
    }
}

impl Byzantine {
    pub fn get(&self) -> Misbehaviour {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, m: Misbehaviour) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = m;
    }

    pub fn is(&self, b: Behaviour) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).is(b)
    }
}

/// Bends the network effects of one batch (an effect that sends nothing is
/// kept as it is); an honest node's pass untouched.
pub fn bend(m: &Misbehaviour, effects: Vec<Effect>) -> Outgoing {
    if m.behaviours.is_empty() {
        return Outgoing {
            now: effects,
            ..Outgoing::default()
        };
    }
    let mut out = Outgoing::default();
    for e in effects {
        let Some(message) = sent(&e) else {
            out.now.push(e);
            continue;
        };
        if m.is(Behaviour::Mute) {
            continue;
        }
        let certificates = matches!(
            message,
            LedgerMessage::Certificate(_) | LedgerMessage::Certificates(_)
        );
        if certificates && m.is(Behaviour::WithholdCertificates) {
            continue;
        }
        let vote = matches!(message, LedgerMessage::Vote(_) | LedgerMessage::Votes(_));
        let e = match (vote, m.is(Behaviour::BadSignatures)) {
            (true, true) => corrupt(e),
            _ => e,
        };
        out.garbage |= m.is(Behaviour::GarbageFrames);
        match vote && m.is(Behaviour::DelayVotes) {
            true => out.held.push(e),
            false => out.now.push(e),
        }
    }
    out
}

fn sent(e: &Effect) -> Option<&LedgerMessage> {
    match e {
        Effect::Persist(_) | Effect::ServeSnapshot { .. } | Effect::Installed { .. } => None,
        Effect::Broadcast(m) | Effect::Send(_, m) | Effect::Relay(_, m) => Some(m),
    }
}

/// The same vote with its signature's first byte flipped: it no longer verifies.
fn corrupt(e: Effect) -> Effect {
    let flip = |m: LedgerMessage| match m {
        LedgerMessage::Vote(mut v) => {
            v.signature.0[0] ^= 0xff;
            LedgerMessage::Vote(v)
        }
        LedgerMessage::Votes(mut b) => {
            b.signature.0[0] ^= 0xff;
            LedgerMessage::Votes(b)
        }
        other => other,
    };
    match e {
        Effect::Broadcast(m) => Effect::Broadcast(flip(m)),
        Effect::Send(to, m) => Effect::Send(to, flip(m)),
        Effect::Relay(from, m) => Effect::Relay(from, flip(m)),
        other => other,
    }
}

/// An undecodable message: a variant tag no message has.
pub fn garbage() -> bytes::Bytes {
    bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0x0f, 0xde, 0xad, 0xbe, 0xef])
}

#[cfg(test)]
mod tests;
