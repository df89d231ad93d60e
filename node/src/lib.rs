//! `testnet-node`: a small blockchain node built to be tested by the `testnet`
//! orchestrator, and the types the orchestrator shares with it.
//!
//! Map:
//! - [`identity`]: ed25519 keys, `NodeId`, key files.
//! - [`genesis`]: the network id, validators and initial UTXOs every node shares.
//! - [`p2p`]: authenticated TCP networking. Pure parts: [`p2p::frame`] (framing),
//!   [`p2p::message`] (the message set), [`p2p::handshake`] (VERSION/VERACK checks),
//!   [`p2p::peers`] (connection table and duplicate rule), [`p2p::backoff`].
//!   The I/O shell is `p2p.rs` (acceptor, dialers, shutdown) and its `connection`
//!   module (one connection's handshake and session).
//! - [`ledger`]: the UTXO set, transactions and their limits (pure).
//! - [`finality`]: vote finality as a sans-I/O engine: votes, certificates,
//!   catch-up; `finality::quorum` holds the quorum arithmetic.
//! - [`store`]: the crash-safe, checksummed append-only log.
//! - [`agent`]: the in-container supervisor of the node and applier of faults.
//! - [`faults`]: network faults as a declarative state rendered to our own
//!   iptables chains (pure; the agent applies it).
//! - [`metrics`]: the Prometheus metrics of the contract in DESIGN.md.
//! - [`api`], [`http`]: the HTTP API's JSON types (the agent's too, in
//!   [`api::agent`]) and its axum router;
//!   [`state`]: what the router reads of a running node.
//! - [`replica`]: drives the finality engine: batches, group commit, sends.
//! - [`node`]: a whole node (network + HTTP) and the seeded bugs it can simulate.

pub mod agent;
pub mod api;
pub mod byzantine;
pub mod cli;
pub mod clock;
pub mod datadir;
pub mod faults;
pub mod finality;
mod fixed_bytes;
pub mod fsstat;
#[doc(hidden)]
pub mod fuzzing;
pub mod genesis;
pub mod http;
pub mod identity;
pub mod ledger;
pub mod metrics;
pub mod node;
pub mod p2p;
pub mod replica;
pub mod state;
pub mod store;

pub use genesis::Genesis;
pub use identity::{Keypair, NodeId};
pub use node::{Node, NodeSetup, SimulatedBug};
