//! What a scenario run observes: per-node samples over time (the `/status`,
//! the agent's view of the process, selected metrics), the fault timeline and
//! the workload's per-payment results. The checkers are pure functions of this
//! (see `checks`), so they are tested on recorded observations.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::load::LoadReport;
use serde::{Deserialize, Serialize};
use testnet_node::api::agent::ProcessReport;
use testnet_node::api::Status;

pub use crate::fault::{FaultEvent, FaultKind, QuorumGap};
use crate::testnet::NodeSummary;

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One look at one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Unix seconds.
    pub t: f64,
    pub node: String,
    /// `None`: the node's HTTP API did not answer.
    pub status: Option<Status>,
    /// `None`: the agent did not answer (container down).
    pub process: Option<ProcessReport>,
    /// Metric series (`name{label="v",...}` as in the exposition) -> value, for
    /// the `testnet_` series; empty when the scrape failed.
    pub metrics: BTreeMap<String, f64>,
    /// The agent's metrics (what the fault rules in place did); empty when
    /// its scrape failed.
    #[serde(default)]
    pub agent_metrics: BTreeMap<String, f64>,
}

/// Everything a run observed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observations {
    pub testnet: String,
    pub nodes: Vec<String>,
    /// Each node's topology neighbours (a node absent here: every other node,
    /// a full mesh).
    #[serde(default)]
    pub neighbours: BTreeMap<String, Vec<String>>,
    /// Unix seconds the testnet was up (all nodes meshed) and the run ended.
    pub started: f64,
    pub ended: f64,
    pub samples: Vec<Sample>,
    pub faults: Vec<FaultEvent>,
    /// Spans with no quorum anywhere (cuts and down validators together).
    #[serde(default)]
    pub quorum_gaps: Vec<QuorumGap>,
    /// Unix seconds the timeline's last event happened: a fault still open
    /// then counts as ending there when finality deadlines are pushed.
    #[serde(default)]
    pub timeline_end: Option<f64>,
    /// Whether the testnet settled after the run (`None`: not waited for).
    #[serde(default)]
    pub quiescence: Option<Quiescence>,
    /// Each node's finalized transactions (hex txids, in its order), fetched
    /// at the end when the nodes' finalized-set digests differ.
    #[serde(default)]
    pub finalized: BTreeMap<String, Vec<String>>,
    pub load: Option<LoadReport>,
}

/// The wait for a quiet testnet at the end of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quiescence {
    /// Every node answered with the same finalized set and an empty mempool,
    /// twice in a row.
    pub reached: bool,
    pub waited_secs: f64,
    /// What the nodes said last (when not reached: why).
    pub detail: String,
}

impl Observations {
    /// The peers `node` should have: its topology neighbours.
    pub fn neighbours_of(&self, node: &str) -> Vec<String> {
        match self.neighbours.get(node) {
            Some(n) => n.clone(),
            None => self.nodes.iter().filter(|n| *n != node).cloned().collect(),
        }
    }

    /// Whether every node's neighbours are every other node.
    pub fn is_mesh(&self) -> bool {
        self.nodes
            .iter()
            .all(|n| self.neighbours_of(n).len() + 1 >= self.nodes.len())
    }

    /// Samples of `node`, in time order.
    pub fn of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.node == node)
    }

    /// The last sample of `node` whose API answered.
    pub fn last_status<'a>(&'a self, node: &'a str) -> Option<&'a Status> {
        self.of(node).filter_map(|s| s.status.as_ref()).last()
    }

    /// `node`'s status at the end of the run: its last sample must have
    /// answered, else the reason (never answered, or silent since when).
    pub fn status_at_end<'a>(&'a self, node: &'a str) -> Result<&'a Status, String> {
        let last = self.of(node).last();
        if let Some(st) = last.and_then(|s| s.status.as_ref()) {
            return Ok(st);
        }
        match self.of(node).filter(|s| s.status.is_some()).last() {
            Some(s) => Err(format!(
                "{node} did not answer after +{:.1}s",
                s.t - self.started
            )),
            None => Err(format!("{node} never answered /status during the run")),
        }
    }
}

/// Parses the Prometheus text exposition into `series -> value`, keeping the
/// `testnet_` series (histogram buckets too). Lines it cannot read are skipped.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    parse_exposition(text, |name| name.starts_with("testnet_"))
}

/// Parses the text exposition, keeping the series whose name `keep` accepts.
/// A trailing timestamp is ignored.
pub fn parse_exposition(text: &str, keep: impl Fn(&str) -> bool) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        if !keep(&line[..name_end]) {
            continue;
        }
        // The series ends at the closing brace, or at the first space.
        let series_end = match line[name_end..].starts_with('{') {
            true => match line.rfind('}') {
                Some(close) => close + 1,
                None => continue,
            },
            false => name_end,
        };
        let mut fields = line[series_end..].split_whitespace();
        let value = match fields.next() {
            Some("+Inf") => f64::INFINITY,
            Some("-Inf") => f64::NEG_INFINITY,
            Some(v) => match v.parse() {
                Ok(v) => v,
                Err(_) => continue,
            },
            None => continue,
        };
        out.insert(line[..series_end].trim().to_owned(), value);
    }
    out
}

/// Splits `name{a="x",b="y"}` into its name and labels.
pub fn split_series(series: &str) -> (&str, BTreeMap<&str, &str>) {
    let Some((name, rest)) = series.split_once('{') else {
        return (series, BTreeMap::new());
    };
    let labels = rest
        .trim_end_matches('}')
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim(), v.trim().trim_matches('"')))
        })
        .collect();
    (name, labels)
}

/// Nodes sampled at once: hundreds of nodes are looked at in waves, so a
/// round costs the host a bounded number of requests in flight.
const SAMPLE_AT_ONCE: usize = 24;

/// Samples every node once, concurrently (at most [`SAMPLE_AT_ONCE`] nodes at a
/// time): `/status`, `/metrics`, the agent's `/process` and `/metrics`. Never
/// fails: what does not answer is recorded as missing.
pub async fn sample_all(http: &reqwest::Client, nodes: &[NodeSummary]) -> Vec<Sample> {
    use futures::StreamExt;
    let one = |n: &NodeSummary| {
        let (http, n) = (http.clone(), n.clone());
        async move {
            let get = |url: Option<String>, path: &'static str| {
                let http = http.clone();
                async move {
                    let url = url?;
                    let r = http
                        .get(format!("{url}{path}"))
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await
                        .ok()?;
                    if !r.status().is_success() {
                        return None;
                    }
                    r.bytes().await.ok()
                }
            };
            let (status, metrics, process, agent_metrics) = tokio::join!(
                get(n.http_url.clone(), "/status"),
                get(n.http_url.clone(), "/metrics"),
                get(n.agent_url.clone(), "/process"),
                get(n.agent_url.clone(), "/metrics"),
            );
            Sample {
                t: unix_now(),
                node: n.node.clone(),
                status: status.and_then(|b| serde_json::from_slice(&b).ok()),
                process: process.and_then(|b| serde_json::from_slice(&b).ok()),
                metrics: metrics
                    .map(|b| parse_metrics(&String::from_utf8_lossy(&b)))
                    .unwrap_or_default(),
                agent_metrics: agent_metrics
                    .map(|b| parse_metrics(&String::from_utf8_lossy(&b)))
                    .unwrap_or_default(),
            }
        }
    };
    futures::stream::iter(nodes.iter().map(one))
        .buffered(SAMPLE_AT_ONCE)
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_is_parsed_and_split() {
        let text = "# HELP testnet_peers peers\n# TYPE testnet_peers gauge\n\
                    testnet_peers{direction=\"inbound\"} 2\n\
                    testnet_ping_rtt_seconds_bucket{le=\"+Inf\"} 14\n\
                    testnet_certificates_total 7\n\
                    process_cpu_seconds_total 1.5\n\
                    testnet_broken{x=\"y\"} notanumber\n";
        let m = parse_metrics(text);
        assert_eq!(m["testnet_peers{direction=\"inbound\"}"], 2.0);
        assert_eq!(m["testnet_certificates_total"], 7.0);
        assert_eq!(m["testnet_ping_rtt_seconds_bucket{le=\"+Inf\"}"], 14.0);
        assert_eq!(m.len(), 3, "{m:?}");
        let all = parse_exposition(
            "etcd_server_has_leader 1\netcd_x{a=\"b c\"} 2 1700000000000\nbad\n",
            |_| true,
        );
        assert_eq!(all["etcd_server_has_leader"], 1.0);
        assert_eq!(all["etcd_x{a=\"b c\"}"], 2.0, "labels with spaces, a timestamp");
        assert_eq!(all.len(), 2);
        let (name, labels) =
            split_series("testnet_handshake_failures_total{reason=\"bad_magic\",x=\"1\"}");
        assert_eq!(name, "testnet_handshake_failures_total");
        assert_eq!(labels["reason"], "bad_magic");
        assert_eq!(labels["x"], "1");
    }
}
