//! `testnet`, the orchestrator: brings up testnets, breaks them, checks them.
//!
//! Map (each module depends only on those above it, never back):
//! - [`engine`]: the container engine seam (Docker on bollard, a fake for tests).
//! - [`image`]: the node image, built from a pulled or an mmdebstrap'd base.
//! - [`topology`]: the shapes of a testnet (mesh, ring, star, line, random,
//!   explicit links) as graphs.
//! - [`placement`]: which host of a multi-host testnet each node runs on.
//! - [`config`], [`zones`]: testnet files; latency zones as baseline delays.
//! - [`plan`]: what a testnet is made of (names, static IPs, zones), fixed at
//!   up; [`ports`]: the nodes' host ports, pinned at up.
//! - [`fault`]: the one fault vocabulary of the CLI and scenario files, what
//!   each fault plans to (layers over a baseline, with an undo), the window
//!   book and quorum under a cut. Pure.
//! - [`state`]: a testnet's state dir (plan, desired faults, genesis, keys,
//!   owner and lock).
//! - [`testnet`]: the testnet handle (name, state dir, engine, probe) and node
//!   status.
//! - [`agent`]: the agent seam (HTTP to the in-container agents, a fake).
//! - [`chaos`]: applying and undoing faults through the agents and the engine;
//!   re-applying them to a container that comes back.
//! - [`monitor`]: `up --monitor`, Prometheus and Grafana with our dashboards.
//! - [`lifecycle`]: `up` and `down`; [`compose`]: `export compose`.
//! - [`load`]: the load generator (payments, double spends, finality at every
//!   node) behind `testnet load` and a scenario's workload.
//! - [`scenario`], [`observe`], [`checks`], [`run`], [`report`]: `testnet run`
//!   and `testnet check`.
//! - [`cli`]: the command line, one module per command; `main.rs` only parses
//!   and dispatches.

pub mod agent;
pub mod chaos;
pub mod checks;
pub mod cli;
pub mod compose;
pub mod config;
pub mod engine;
pub mod fault;
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
pub mod lifecycle;
pub mod load;
pub mod monitor;
pub mod nodespec;
pub mod observe;
pub mod op;
pub mod placement;
pub mod plan;
pub mod ports;
pub mod process;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schema;
pub mod spec;
pub mod spelling;
pub mod state;
pub mod testnet;
pub mod topology;
pub mod zones;
