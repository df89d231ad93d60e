//! Test doubles around the handle: a scripted `/status` probe and a rig of
//! fake engine, fake agent and an `up` testnet, for tests without Docker.

use std::sync::Mutex;
use std::time::Duration;

use testnet_node::api::Status;
use tokio_util::sync::CancellationToken;

use super::{up, UpRequest};
use crate::agent::fake::FakeAgent;
use crate::config::TestnetFile;
use crate::engine::fake::FakeEngine;
use crate::engine::LABEL_NODE;
use crate::testnet::{NodeProbe, Testnet};

pub const IMAGE: &str = "testnet-node:test";

/// Points the state dirs of this test process at a temporary directory.
pub fn state_dir_for_tests() {
    let dir = std::env::temp_dir().join(format!("testnet-state-tests-{}", std::process::id()));
    std::env::set_var("TESTNET_STATE_DIR", dir);
}

/// Answers `/status` as if every node had `n - 1` peers, except `lagging`
/// nodes (found by their URL's port among `engine`'s containers), which
/// report `lag_peers`.
pub struct ScriptedProbe {
    pub n: usize,
    /// Peers of a healthy node when not `n - 1` (a sparse topology).
    pub degree: Option<usize>,
    pub lagging: Vec<String>,
    pub lag_peers: usize,
    pub engine: Option<FakeEngine>,
    pub asked: Mutex<usize>,
    /// URL -> (status code, body) for [`NodeProbe::get`] (a foreign node).
    pub pages: Mutex<std::collections::BTreeMap<String, (u16, String)>>,
}

impl ScriptedProbe {
    pub fn healthy(n: usize) -> Self {
        ScriptedProbe {
            n,
            degree: None,
            lagging: vec![],
            lag_peers: 0,
            engine: None,
            asked: Mutex::new(0),
            pages: Mutex::default(),
        }
    }

    /// `nodes` of `engine`'s testnets report `lag_peers` peers.
    pub fn lagging(n: usize, engine: &FakeEngine, nodes: &[&str], lag_peers: usize) -> Self {
        ScriptedProbe {
            lagging: nodes.iter().map(|s| s.to_string()).collect(),
            lag_peers,
            engine: Some(engine.clone()),
            ..ScriptedProbe::healthy(n)
        }
    }

    /// The node whose container publishes host `port`.
    fn node_at(&self, port: u16) -> Option<String> {
        let engine = self.engine.as_ref()?;
        let s = engine.state();
        s.containers
            .values()
            .find(|(_, c)| c.ports.iter().any(|(_, h)| *h == port))
            .and_then(|(_, c)| c.labels.get(LABEL_NODE).cloned())
    }
}

pub fn fake_status(peers: usize, expected: usize) -> Status {
    serde_json::from_value(serde_json::json!({
        "id": "00".repeat(32), "name": "x", "network_id": "net", "p2p_address": "10.77.0.10:7000",
        "peers": peers, "peers_inbound": 0, "peers_outbound": peers, "expected_peers": expected,
        "handshake_attempts": peers, "handshakes_completed": peers, "handshake_failures": 0,
        "duplicate_connections_resolved": 0, "simulated_bugs": [], "utxo_count": 16,
        "utxo_digest": "ab", "total_value": 1, "fees": 0, "genesis_supply": 1,
        "finalized_transactions": 0, "mempool": 0, "conflicting_certificates": 0,
        "uptime_secs": 1.0, "version": "0"
    }))
    .unwrap()
}

impl NodeProbe for ScriptedProbe {
    async fn status(&self, url: &str) -> Option<Status> {
        *self.asked.lock().unwrap() += 1;
        let port: u16 = url.rsplit(':').next()?.parse().ok()?;
        let lags = self
            .node_at(port)
            .is_some_and(|node| self.lagging.contains(&node));
        let want = self.degree.unwrap_or(self.n - 1);
        let peers = if lags { self.lag_peers } else { want };
        Some(fake_status(peers, want))
    }

    async fn get(&self, url: &str) -> Option<(u16, String)> {
        self.pages.lock().unwrap().get(url).cloned()
    }
}

/// A testnet that is up on the fake engine, with fake agents.
pub struct Rig {
    pub name: String,
    pub engine: FakeEngine,
    pub probe: ScriptedProbe,
    pub agent: FakeAgent,
}

impl Rig {
    /// Brings up testnet `name` from `file` on a fresh fake engine.
    pub async fn up(name: &str, file: TestnetFile) -> Rig {
        state_dir_for_tests();
        let engine = FakeEngine::new();
        engine.state().images.insert(IMAGE.into());
        let rig = Rig {
            name: name.to_owned(),
            probe: ScriptedProbe::healthy(file.nodes),
            agent: FakeAgent::new(&engine),
            engine,
        };
        let req = UpRequest {
            file: &file,
            image: IMAGE,
            node_image: None,
            readiness: Duration::from_secs(1),
            replace: false,
            monitor: None,
            agent: &rig.agent,
            owner: crate::state::Owner::me("test", true),
        };
        up(&rig.tn(), req, &|_| {}, &CancellationToken::new())
            .await
            .expect("the fake testnet comes up");
        rig
    }

    pub fn tn(&self) -> Testnet<'_, FakeEngine, ScriptedProbe> {
        Testnet::new(&self.name, &self.engine, &self.probe)
    }

    /// What node `node`'s agent holds now (`None`: its container is down).
    pub fn faults_of(&self, node: &str) -> Option<testnet_node::faults::FaultState> {
        let container = crate::plan::container_name(&self.name, node);
        self.agent.side(&container).map(|s| s.faults)
    }
}
