//! `testnet`, the orchestrator: brings up testnets, breaks them, checks them.
//!
//! Map:
//! - [`engine`]: the container engine seam (Docker on bollard, a fake for tests).
//! - [`image`]: the node image, built from a pulled or an mmdebstrap'd base.
//! - [`config`], [`zones`]: testnet files; latency zones as baseline delays.
//! - [`testnet`]: `up` / `status` / `down`; [`compose`]: `export compose`.
//! - [`chaos`]: faults through each node's agent, with the desired state kept
//!   on the host so a restarted container gets its faults back.
//! - [`monitor`]: `up --monitor`, Prometheus and Grafana with our dashboards.
//! - [`scenario`], [`observe`], [`checks`], [`run`], [`report`]: `testnet run`
//!   and `testnet check`.
//! - [`load`]: `testnet load`, the load generator of `testnet_node::load` run
//!   against any nodes' HTTP APIs, with a report and an exit code.

pub mod chaos;
pub mod checks;
pub mod compose;
pub mod config;
pub mod engine;
pub mod image;
pub mod load;
pub mod monitor;
pub mod observe;
pub mod report;
pub mod run;
pub mod scenario;
pub mod testnet;
pub mod zones;
