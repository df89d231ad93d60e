//! JSON types of the agent's control API (the `agent` module serves it), shared with the
//! orchestrator. `GET /health` answers [`super::Health`], errors [`super::ApiError`].

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::faults::FaultState;

/// The supervised node process, as the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    Running,
    Paused,
    Stopped,
}

/// `GET /process` and every `POST /process/{action}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessReport {
    pub state: ProcessState,
    pub pid: Option<u32>,
    /// Starts after the first (restarts and start-after-kill).
    pub restarts: u64,
}

/// `GET /faults`, and `PUT /faults` once applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultReport {
    pub state: FaultState,
    pub installed: bool,
    pub foreign_rules: Vec<String>,
    /// Seconds until the agent heals by itself, when the state was applied with
    /// a lease that was not renewed.
    #[serde(default)]
    pub lease_remaining_secs: Option<f64>,
}

/// `PUT /faults?lease_secs=N`: heal by itself unless renewed (re-PUT) within N s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeaseQuery {
    pub lease_secs: Option<f64>,
}

/// `PUT /sink`: how much of the body was read, and in how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkReport {
    pub bytes: u64,
    pub secs: f64,
}

/// `POST /probe/throughput`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThroughputProbe {
    /// Another node's agent, `IP:PORT`.
    pub to: String,
    pub bytes: u64,
}

/// What `POST /probe/throughput` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThroughputReport {
    pub bytes: u64,
    pub secs: f64,
    pub kbit_per_s: f64,
}

/// `POST /probe/connect`: `count` TCP connects to `to`, one after the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectProbe {
    pub to: SocketAddr,
    pub count: u32,
    pub timeout_ms: u64,
}

/// What `POST /probe/connect` measured: each successful connect's time, in ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectReport {
    pub connect_ms: Vec<f64>,
    pub failed: u32,
}

/// `DELETE /delay-worker`: whether a running worker was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelayWorkerStopped {
    pub stopped: bool,
}

/// One established TCP connection of the node's network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub local: std::net::SocketAddrV4,
    pub remote: std::net::SocketAddrV4,
}

/// `GET /connections`: the namespace's established TCP connections (IPv4, and
/// IPv4-mapped IPv6) and the ports something listens on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connections {
    pub established: Vec<Connection>,
    pub listening: Vec<u16>,
}

impl Connections {
    /// The remote addresses linked to `port` on either end, each once.
    pub fn peers_on(&self, port: u16) -> Vec<std::net::Ipv4Addr> {
        let mut out: Vec<std::net::Ipv4Addr> = self
            .established
            .iter()
            .filter(|c| c.local.port() == port || c.remote.port() == port)
            .map(|c| *c.remote.ip())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// `PUT /disk` on the agent: fill the data dir's tmpfs (`full`) or free it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskRequest {
    pub full: bool,
}

/// What the data dir's filesystem looks like after a `PUT /disk` (or `GET`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskReport {
    pub path: std::path::PathBuf,
    /// Bytes the agent's fill file holds.
    pub filled_bytes: u64,
    pub free_bytes: u64,
    pub total_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, to_value};

    /// The probes' answers were ad-hoc JSON before they had types; the keys stay.
    #[test]
    fn probe_answers_keep_their_keys() {
        let connect = ConnectReport {
            connect_ms: vec![1.5],
            failed: 2,
        };
        let throughput = ThroughputReport {
            bytes: 8,
            secs: 0.5,
            kbit_per_s: 0.128,
        };
        let sink = SinkReport {
            bytes: 8,
            secs: 0.5,
        };
        let stopped = DelayWorkerStopped { stopped: true };
        assert_eq!(
            to_value(connect).unwrap(),
            json!({"connect_ms": [1.5], "failed": 2})
        );
        assert_eq!(
            to_value(throughput).unwrap(),
            json!({"bytes": 8, "secs": 0.5, "kbit_per_s": 0.128})
        );
        assert_eq!(to_value(sink).unwrap(), json!({"bytes": 8, "secs": 0.5}));
        assert_eq!(to_value(stopped).unwrap(), json!({"stopped": true}));
    }
}
