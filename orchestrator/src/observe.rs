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
    /// A foreign node's peers: the nodes it has an established TCP connection
    /// with on its p2p port, as its holder's agent sees them (`None`: not
    /// asked, or the agent did not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<String>>,
}

/// Everything a run observed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observations {
    pub testnet: String,
    pub nodes: Vec<String>,
    /// The nodes are not ours: they answer no `/status` and export none of
    /// our metrics; liveness and peers come from their holders' agents.
    #[serde(default)]
    pub foreign: bool,
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
    /// What a `workload: { command }` did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<crate::load::command::CommandReport>,
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

    /// Whether the node was up in this sample: ours answered `/status`; a
    /// foreign one had a running process by its agent.
    pub fn up(&self, s: &Sample) -> bool {
        match self.foreign {
            false => s.status.is_some(),
            true => s
                .process
                .as_ref()
                .is_some_and(|p| p.state == testnet_node::api::agent::ProcessState::Running),
        }
    }

    /// The peers this sample shows by name, and how many: `None` when it
    /// shows none (no answer).
    pub fn peer_view(&self, s: &Sample) -> Option<(Vec<String>, usize)> {
        match self.foreign {
            false => s
                .status
                .as_ref()
                .map(|st| (st.peer_names.clone(), st.peers)),
            true => s.peers.clone().map(|p| {
                let n = p.len();
                (p, n)
            }),
        }
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

/// Parses the text exposition, keeping the series whose name `keep` accepts,
/// each under its [`series_key`]. A trailing timestamp is ignored; lines it
/// cannot read are skipped.
pub fn parse_exposition(text: &str, keep: impl Fn(&str) -> bool) -> BTreeMap<String, f64> {
    text.lines()
        .filter_map(|line| exposition_sample(line, &keep))
        .map(|(name, labels, value)| (series_key(name, &labels), value))
        .collect()
}

/// A series' key in the observations: `name{label="value",...}` as in the
/// text format, the labels sorted by name and their values escaped (`\\`,
/// `\"`, `\n`); just `name` without labels. [`split_series`] reads it back.
pub fn series_key(name: &str, labels: &BTreeMap<String, String>) -> String {
    let mut key = name.to_owned();
    for (i, (k, v)) in labels.iter().enumerate() {
        key.push(if i == 0 { '{' } else { ',' });
        key.push_str(k);
        key.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => key.push_str(r"\\"),
                '"' => key.push_str("\\\""),
                '\n' => key.push_str(r"\n"),
                c => key.push(c),
            }
        }
        key.push('"');
    }
    if !labels.is_empty() {
        key.push('}');
    }
    key
}

/// Splits a series key (`name{a="x",b="y"}`, see [`series_key`]) into its name
/// and labels, the values unescaped.
pub fn split_series(series: &str) -> (&str, BTreeMap<String, String>) {
    match series.split_once('{') {
        Some((name, set)) => (name, label_set(set).map(|(l, _)| l).unwrap_or_default()),
        None => (series, BTreeMap::new()),
    }
}

/// One sample line of the exposition: its name, labels and value (`None`:
/// a comment, a series `keep` refuses, or a line it cannot read).
///
/// Read by hand, as the text format says: a name (colons allowed, as
/// recording rules make them), an optional label set ([`label_set`]: values
/// may hold commas, `=`, `}` and escapes), then the value and an optional
/// integer timestamp, separated by blanks. (prometheus-parse, used before,
/// took a label set up to the first `}`, split values at every `,` and `=`,
/// read no colon in a name, and pulled a regex engine into the build.)
fn exposition_sample<'a>(
    line: &'a str,
    keep: &dyn Fn(&str) -> bool,
) -> Option<(&'a str, BTreeMap<String, String>, f64)> {
    let line = line.trim();
    // Comments carry no sample; `# TYPE` is not needed: every sample,
    // histogram buckets included, is a series of its own.
    if line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !valid || !keep(name) {
        return None;
    }
    let (labels, rest) = match line[name_end..].strip_prefix('{') {
        Some(set) => label_set(set)?,
        None => (BTreeMap::new(), &line[name_end..]),
    };
    Some((name, labels, sample_value(rest)?))
}

/// What follows a sample's name and labels: its value (a float; `NaN`,
/// `+Inf` and `-Inf` as the format writes them) and an optional integer
/// timestamp in milliseconds, which is not kept. Anything else: `None`.
fn sample_value(rest: &str) -> Option<f64> {
    let mut words = rest.split_whitespace();
    let value: f64 = words.next()?.parse().ok()?;
    if let Some(timestamp) = words.next() {
        timestamp.parse::<i64>().ok()?;
    }
    words.next().is_none().then_some(value)
}

/// Reads a label set after its `{`: `name="value"` pairs separated by commas
/// (a trailing one allowed), the values unescaped as the text format says
/// (`\\`, `\"`, `\n`; another escape is kept as written, as Prometheus does),
/// up to the closing `}`. Returns the labels and what follows the set;
/// `None` if it is not one (a label named twice included).
fn label_set(set: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let mut rest = set.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (name, after) = rest.split_once('=')?;
        let name = name.trim();
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let (value, after) = quoted(after.trim_start())?;
        if !valid || labels.insert(name.to_owned(), value).is_some() {
            return None;
        }
        rest = after.trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start();
        } else if !rest.starts_with('}') {
            return None;
        }
    }
}

/// The quoted label value at the start of `s`, unescaped, and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &body[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                c @ ('\\' | '"') => value.push(c),
                other => value.extend(['\\', other]),
            },
            c => value.push(c),
        }
    }
    None
}

/// Nodes sampled at once: hundreds of nodes are looked at in waves, so a
/// round costs the host a bounded number of requests in flight.
const SAMPLE_AT_ONCE: usize = 24;

/// What to sample besides the agent: ours (the default) answers `/status`
/// and `testnet_` metrics; a foreign node has the series named in `keep` and
/// its peers read from its agent's connections on `p2p`.
#[derive(Debug, Clone, Default)]
pub struct Sampling {
    pub foreign: Option<ForeignSampling>,
}

#[derive(Debug, Clone, Default)]
pub struct ForeignSampling {
    pub p2p: u16,
    /// Node names by IP (to name a connection's far end).
    pub names: BTreeMap<std::net::Ipv4Addr, String>,
    /// Metric names to keep from each scrape.
    pub keep: std::collections::BTreeSet<String>,
    /// The node's names of our contract's metrics -> ours (its `metrics:`
    /// map): kept and renamed, so checks of our metrics read them.
    pub renames: BTreeMap<String, String>,
}

impl ForeignSampling {
    /// The series of a scrape this run keeps, under our names where mapped.
    pub fn series(&self, text: &str) -> BTreeMap<String, f64> {
        parse_exposition(text, |name| {
            self.keep.contains(name) || self.renames.contains_key(name)
        })
        .into_iter()
        .map(|(series, v)| {
            let (name, _) = split_series(&series);
            match self.renames.get(name) {
                Some(ours) => (format!("{ours}{}", &series[name.len()..]), v),
                None => (series, v),
            }
        })
        .collect()
    }
}

impl Sampling {
    /// How to sample the nodes of `plan`; a foreign node's scrapes keep the
    /// series named in `metrics` (its readiness metric and its `metrics:`
    /// map are added).
    pub fn of(plan: &crate::plan::Plan, metrics: impl IntoIterator<Item = String>) -> Sampling {
        let Some(spec) = &plan.node else {
            return Sampling::default();
        };
        let mut keep: std::collections::BTreeSet<String> = metrics.into_iter().collect();
        keep.extend(spec.ready.as_ref().and_then(|r| r.metric.clone()));
        Sampling {
            foreign: Some(ForeignSampling {
                p2p: spec.ports.p2p,
                names: plan.nodes.iter().map(|n| (n.ip, n.name.clone())).collect(),
                keep,
                renames: spec
                    .metrics
                    .iter()
                    .map(|(ours, theirs)| (theirs.clone(), ours.clone()))
                    .collect(),
            }),
        }
    }
}

/// Samples every node once, concurrently (at most [`SAMPLE_AT_ONCE`] nodes at a
/// time): `/status`, `/metrics`, the agent's `/process` and `/metrics`. Never
/// fails: what does not answer is recorded as missing.
pub async fn sample_all(
    http: &reqwest::Client,
    nodes: &[NodeSummary],
    how: &Sampling,
) -> Vec<Sample> {
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
            let foreign = how.foreign.as_ref();
            let (status_url, metrics_url) = match foreign {
                Some(_) => (None, n.metrics_url.clone()),
                None => (
                    n.http_url.clone(),
                    n.http_url.clone().map(|u| u + "/metrics"),
                ),
            };
            let conns_url = foreign.and(n.agent_url.clone());
            let (status, metrics, process, agent_metrics, conns) = tokio::join!(
                get(status_url, "/status"),
                get(metrics_url, ""),
                get(n.agent_url.clone(), "/process"),
                get(n.agent_url.clone(), "/metrics"),
                get(conns_url, "/connections"),
            );
            let text = |b: bytes::Bytes| String::from_utf8_lossy(&b).into_owned();
            let metrics = match (metrics, foreign) {
                (Some(b), Some(f)) => f.series(&text(b)),
                (Some(b), None) => parse_metrics(&text(b)),
                (None, _) => BTreeMap::new(),
            };
            let peers = foreign.zip(conns).and_then(|(f, b)| {
                let c: testnet_node::api::agent::Connections = serde_json::from_slice(&b).ok()?;
                Some(
                    c.peers_on(f.p2p)
                        .iter()
                        .filter_map(|ip| f.names.get(ip).cloned())
                        .filter(|name| *name != n.node)
                        .collect(),
                )
            });
            Sample {
                t: unix_now(),
                node: n.node.clone(),
                status: status.and_then(|b| serde_json::from_slice(&b).ok()),
                process: process.and_then(|b| serde_json::from_slice(&b).ok()),
                metrics,
                agent_metrics: agent_metrics
                    .map(|b| parse_metrics(&text(b)))
                    .unwrap_or_default(),
                peers,
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
        assert_eq!(
            all["etcd_x{a=\"b c\"}"], 2.0,
            "labels with spaces, a timestamp"
        );
        assert_eq!(all.len(), 2);
        let f = ForeignSampling {
            keep: ["etcd_server_has_leader".to_owned()].into(),
            renames: [(
                "etcd_network_active_peers".to_owned(),
                "testnet_peers".to_owned(),
            )]
            .into(),
            ..ForeignSampling::default()
        };
        let kept = f.series(
            "etcd_server_has_leader 1\netcd_network_active_peers{local=\"a\"} 2\nother 5\n",
        );
        assert_eq!(kept["etcd_server_has_leader"], 1.0);
        assert_eq!(
            kept["testnet_peers{local=\"a\"}"], 2.0,
            "renamed to ours: {kept:?}"
        );
        assert_eq!(kept.len(), 2);
        let (name, labels) =
            split_series("testnet_handshake_failures_total{reason=\"bad_magic\",x=\"1\"}");
        assert_eq!(name, "testnet_handshake_failures_total");
        assert_eq!(labels["reason"], "bad_magic");
        assert_eq!(labels["x"], "1");
    }

    /// The labels of every kept series, read back from its key.
    fn labels_by_name(m: &BTreeMap<String, f64>) -> BTreeMap<String, BTreeMap<String, String>> {
        m.keys()
            .map(|k| {
                let (name, labels) = split_series(k);
                let labels = labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (name.to_owned(), labels)
            })
            .collect()
    }

    #[test]
    fn label_values_with_commas_equals_braces_and_escapes_are_read() {
        let text = concat!(
            "testnet_comma{reason=\"a,b\",path=\"x=y\"} 1\n",
            "testnet_both{a=\"x,y=z\",b=\"w\"} 2\n",
            "testnet_brace{brace=\"}{\",b=\"2\"} 3\n",
            "testnet_quote{msg=\"say \\\"hi\\\"\",dir=\"C:\\\\tmp\",nl=\"a\\nb\"} 4 1700000000000\n",
        );
        let m = parse_metrics(text);
        assert_eq!(m.len(), 4, "{m:?}");
        let expect = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let read = labels_by_name(&m);
        assert_eq!(
            read["testnet_comma"],
            expect(&[("reason", "a,b"), ("path", "x=y")])
        );
        assert_eq!(read["testnet_both"], expect(&[("a", "x,y=z"), ("b", "w")]));
        assert_eq!(
            read["testnet_brace"],
            expect(&[("brace", "}{"), ("b", "2")])
        );
        assert_eq!(
            read["testnet_quote"],
            expect(&[("msg", "say \"hi\""), ("dir", "C:\\tmp"), ("nl", "a\nb")])
        );
        let values: Vec<f64> = m.values().copied().collect();
        assert_eq!(values, [2.0, 3.0, 1.0, 4.0], "{m:?}");
    }

    #[test]
    fn series_keys_are_canonical_and_read_back() {
        let m = parse_exposition(
            "m{b=\"2\", a=\"1\",} 1\nm{a=\"1\",b=\"2\"} 5\njob:up:sum{x=\"y\"} 3\nm{a=\"1\",a=\"2\"} 9\n\
             m{a=\"unterminated} 9\nm{a=1} 9\nm{} 4\n",
            |_| true,
        );
        // The same series in another order or spacing is the same key; the
        // last line of it wins.
        assert_eq!(m["m{a=\"1\",b=\"2\"}"], 5.0, "{m:?}");
        assert_eq!(m["job:up:sum{x=\"y\"}"], 3.0, "a recording rule's colons");
        assert_eq!(m["m"], 4.0, "an empty label set");
        assert_eq!(
            m.len(),
            3,
            "a label named twice, an open quote, a bare value: skipped"
        );
        let tricky = [
            "a,b",
            "x=y",
            "}{",
            "say \"hi\"",
            "C:\\tmp",
            "a\nb",
            "\\n",
            "é ü",
            "",
        ];
        for v in tricky {
            let labels: BTreeMap<String, String> = [
                ("le".to_owned(), "+Inf".to_owned()),
                ("v".to_owned(), v.to_owned()),
            ]
            .into();
            let key = series_key("testnet_x", &labels);
            assert_eq!(split_series(&key), ("testnet_x", labels.clone()), "{key}");
            let parsed = parse_metrics(&format!("# HELP testnet_x x\n{key} 1.5e3\n"));
            assert_eq!(
                parsed.get(&key),
                Some(&1500.0),
                "{key} as exposed: {parsed:?}"
            );
        }
        assert_eq!(split_series("up"), ("up", BTreeMap::new()));
        let special = parse_exposition("a NaN\nb -Inf\nc +Inf 17\n", |_| true);
        assert!(special["a"].is_nan() && special["b"] == f64::NEG_INFINITY);
        assert_eq!(special["c"], f64::INFINITY);
    }

    /// The lines prometheus-parse 0.2.5 misread (a comma or `=` in a value
    /// cut it, a `}` in one lost the line, escapes were kept as written, a
    /// name with a colon was no sample), and values with and without a
    /// timestamp, or with something after it.
    #[test]
    fn samples_are_read_as_the_text_format_writes_them() {
        let ours = parse_exposition(
            "m{a=\"x,y\"} 1\nn{a=\"k=v\"} 1\no{a=\"}\"} 1\np{a=\"say \\\"hi\\\"\"} 1\njob:up:sum 1\n",
            |_| true,
        );
        let read_back: Vec<(&str, BTreeMap<String, String>)> =
            ours.keys().map(|k| split_series(k)).collect();
        assert_eq!(
            read_back,
            [
                ("job:up:sum", BTreeMap::new()),
                ("m", [("a".into(), "x,y".into())].into()),
                ("n", [("a".into(), "k=v".into())].into()),
                ("o", [("a".into(), "}".into())].into()),
                ("p", [("a".into(), "say \"hi\"".into())].into()),
            ]
        );
        let values = parse_exposition(
            "a 1.5 1700000000000\nb 2e3\nc 3 17 extra\nd 4 noon\ne four\nf\n9g 1\nh-i 1\n",
            |_| true,
        );
        let expected = BTreeMap::from([("a".to_owned(), 1.5), ("b".to_owned(), 2000.0)]);
        assert_eq!(
            values, expected,
            "a timestamp is dropped; a word after it, a timestamp or value that is no \
             number, no value, a name that is none: skipped"
        );
    }
}
