//! The agent seam: what the orchestrator asks of the agent in each node's
//! container (its fault state, its node process). [`HttpAgent`] talks to the
//! real agents' control API; [`fake::FakeAgent`] keeps the same state in memory
//! and follows the fake engine's containers, so fault logic, the runner's
//! timeline and the reconcile after a container restart are tested without
//! Docker.

pub mod fake;

use std::time::Duration;

use futures::future::BoxFuture;
use testnet_node::api::agent::{DiskReport, DiskRequest, FaultReport, ProcessReport};
use testnet_node::byzantine::Misbehaviour;
use testnet_node::clock::{ClockReport, Skew};
use testnet_node::faults::FaultState;
use testnet_node::store::DiskFaults;

use crate::fault::ProcessAction;
use crate::testnet::NodeSummary;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    #[error("node {0}'s agent is not reachable (is the container running?)")]
    Unreachable(String),
    #[error("agent of {node}: {message}")]
    Refused { node: String, message: String },
}

/// One node's agent, as the orchestrator uses it. Object-safe, so the runner
/// and the fault code take `&dyn AgentApi`.
pub trait AgentApi: Send + Sync {
    /// The fault state read back from the node's kernel.
    fn faults<'a>(
        &'a self,
        node: &'a NodeSummary,
    ) -> BoxFuture<'a, Result<FaultReport, AgentError>>;
    /// Replaces the node's whole fault state; with a lease the agent heals by
    /// itself unless the state is applied again within it.
    fn set_faults<'a>(
        &'a self,
        node: &'a NodeSummary,
        state: &'a FaultState,
        lease: Option<Duration>,
    ) -> BoxFuture<'a, Result<FaultReport, AgentError>>;
    /// Sets the node's clock skew through the agent (zero: real time).
    fn set_clock<'a>(
        &'a self,
        node: &'a NodeSummary,
        skew: Skew,
    ) -> BoxFuture<'a, Result<ClockReport, AgentError>>;
    /// The node's Byzantine behaviours now (`set` None) or after setting
    /// them to `set` (empty: honest), read back from the node.
    fn byzantine<'a>(
        &'a self,
        node: &'a NodeSummary,
        set: Option<&'a Misbehaviour>,
    ) -> BoxFuture<'a, Result<Misbehaviour, AgentError>>;
    /// Fills (`Some(true)`) or frees (`Some(false)`) the node's data dir, or
    /// reads it (`None`).
    fn disk<'a>(
        &'a self,
        node: &'a NodeSummary,
        full: Option<bool>,
    ) -> BoxFuture<'a, Result<DiskReport, AgentError>>;
    /// The node's store faults now (`set` None) or after setting them.
    fn storage<'a>(
        &'a self,
        node: &'a NodeSummary,
        set: Option<&'a DiskFaults>,
    ) -> BoxFuture<'a, Result<DiskFaults, AgentError>>;
    /// The node process as the agent sees it now.
    fn process_report<'a>(
        &'a self,
        node: &'a NodeSummary,
    ) -> BoxFuture<'a, Result<ProcessReport, AgentError>>;
    /// Kills, starts, restarts, stops, pauses or resumes the node process.
    fn process<'a>(
        &'a self,
        node: &'a NodeSummary,
        action: ProcessAction,
    ) -> BoxFuture<'a, Result<ProcessReport, AgentError>>;
}

/// The real agents' HTTP control API.
#[derive(Clone)]
pub struct HttpAgent {
    http: reqwest::Client,
}

impl Default for HttpAgent {
    fn default() -> Self {
        HttpAgent {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client builds"),
        }
    }
}

impl HttpAgent {
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        node: &NodeSummary,
        request: impl FnOnce(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<T, AgentError> {
        let url = node
            .agent_url
            .as_deref()
            .ok_or_else(|| AgentError::Unreachable(node.node.clone()))?;
        let res = request(&self.http, url)
            .send()
            .await
            .map_err(|_| AgentError::Unreachable(node.node.clone()))?;
        let refused = |message: String| AgentError::Refused {
            node: node.node.clone(),
            message,
        };
        if !res.status().is_success() {
            return Err(refused(res.text().await.unwrap_or_default()));
        }
        res.json().await.map_err(|e| refused(e.to_string()))
    }
}

impl AgentApi for HttpAgent {
    fn faults<'a>(
        &'a self,
        node: &'a NodeSummary,
    ) -> BoxFuture<'a, Result<FaultReport, AgentError>> {
        Box::pin(self.call(node, |http, url| http.get(format!("{url}/faults"))))
    }

    fn set_faults<'a>(
        &'a self,
        node: &'a NodeSummary,
        state: &'a FaultState,
        lease: Option<Duration>,
    ) -> BoxFuture<'a, Result<FaultReport, AgentError>> {
        let query = lease
            .map(|l| format!("?lease_secs={}", l.as_secs_f64()))
            .unwrap_or_default();
        Box::pin(self.call(node, move |http, url| {
            http.put(format!("{url}/faults{query}")).json(state)
        }))
    }

    fn process_report<'a>(
        &'a self,
        node: &'a NodeSummary,
    ) -> BoxFuture<'a, Result<ProcessReport, AgentError>> {
        Box::pin(self.call(node, |http, url| http.get(format!("{url}/process"))))
    }

    fn set_clock<'a>(
        &'a self,
        node: &'a NodeSummary,
        skew: Skew,
    ) -> BoxFuture<'a, Result<ClockReport, AgentError>> {
        Box::pin(self.call(node, move |http, url| {
            http.put(format!("{url}/clock")).json(&skew)
        }))
    }

    fn byzantine<'a>(
        &'a self,
        node: &'a NodeSummary,
        set: Option<&'a Misbehaviour>,
    ) -> BoxFuture<'a, Result<Misbehaviour, AgentError>> {
        Box::pin(self.call(node, move |http, url| match set {
            Some(m) => http.put(format!("{url}/byzantine")).json(m),
            None => http.get(format!("{url}/byzantine")),
        }))
    }

    fn disk<'a>(
        &'a self,
        node: &'a NodeSummary,
        full: Option<bool>,
    ) -> BoxFuture<'a, Result<DiskReport, AgentError>> {
        Box::pin(self.call(node, move |http, url| {
            match full {
                Some(full) => http
                    .put(format!("{url}/disk"))
                    .json(&DiskRequest { full })
                    // Filling a large tmpfs takes a while.
                    .timeout(Duration::from_secs(60)),
                None => http.get(format!("{url}/disk")),
            }
        }))
    }

    fn storage<'a>(
        &'a self,
        node: &'a NodeSummary,
        set: Option<&'a DiskFaults>,
    ) -> BoxFuture<'a, Result<DiskFaults, AgentError>> {
        Box::pin(self.call(node, move |http, url| match set {
            Some(f) => http.put(format!("{url}/storage")).json(f),
            None => http.get(format!("{url}/storage")),
        }))
    }

    fn process<'a>(
        &'a self,
        node: &'a NodeSummary,
        action: ProcessAction,
    ) -> BoxFuture<'a, Result<ProcessReport, AgentError>> {
        Box::pin(self.call(node, move |http, url| {
            http.post(format!("{url}/process/{}", action.name()))
        }))
    }
}
