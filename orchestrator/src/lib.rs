//! `testnet`, the orchestrator: brings up testnets, breaks them, checks them.
//!
//! Map (grows with the issues that add Docker, faults and scenarios):
//! - [`load`]: `testnet load`, the load generator of `testnet_node::load` run
//!   against any nodes' HTTP APIs, with a report and an exit code.

pub mod chaos;
pub mod compose;
pub mod config;
pub mod engine;
pub mod image;
pub mod load;
pub mod testnet;
