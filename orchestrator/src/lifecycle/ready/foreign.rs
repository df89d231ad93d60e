//! Readiness of a node image not ours: what its `node.ready` says (a 2xx on
//! an API path, or a metric's value), else something listening on its p2p
//! port as the holder's agent sees it.

use testnet_node::api::agent::Connections;

use crate::engine::Engine;
use crate::nodespec::NodeSpec;
use crate::observe::parse_exposition;
use crate::testnet::{NodeProbe, NodeSummary, Testnet};

/// What `up` waits for, in words.
pub(super) fn describe(spec: &NodeSpec) -> String {
    match &spec.ready {
        Some(r) => match (&r.http, &r.metric) {
            (Some(path), _) => format!("GET {path} answering 2xx"),
            (_, Some(m)) => format!(
                "{m} {} {}",
                r.op.map_or("?", |o| o.symbol()),
                r.value.unwrap_or(0.0)
            ),
            _ => "readiness".into(),
        },
        None => format!("something listening on port {}", spec.ports.p2p),
    }
}

/// Whether `node` is ready, or why not.
pub(super) async fn check<P: NodeProbe>(
    probe: &P,
    spec: &NodeSpec,
    node: &NodeSummary,
) -> Result<(), String> {
    if node.state != "running" {
        return Err(format!("container {}", node.state));
    }
    let ready = spec.ready.as_ref();
    if let Some(path) = ready.and_then(|r| r.http.as_ref()) {
        let url = node.http_url.as_ref().ok_or("no API port published")?;
        return match probe.get(&format!("{url}{path}")).await {
            Some((code, _)) if (200..300).contains(&code) => Ok(()),
            Some((code, body)) => Err(format!("GET {path}: {code} {}", body.trim())),
            None => Err(format!("GET {path}: no answer")),
        };
    }
    if let Some(r) = ready.filter(|r| r.metric.is_some()) {
        let metric = r.metric.as_deref().unwrap_or_default();
        let url = node
            .metrics_url
            .as_ref()
            .ok_or("no metrics port published")?;
        let (_, text) = probe.get(url).await.ok_or("metrics: no answer")?;
        let series = parse_exposition(&text, |n| n == metric);
        let sum: f64 = series.values().sum();
        let (op, want) = (r.op.unwrap_or(crate::op::Op::Eq), r.value.unwrap_or(0.0));
        return match series.is_empty() {
            true => Err(format!("{metric}: not exported yet")),
            false if op.holds(sum, want) => Ok(()),
            false => Err(format!("{metric} = {sum}, want {} {want}", op.symbol())),
        };
    }
    let url = node.agent_url.as_ref().ok_or("no agent port published")?;
    let (_, body) = probe
        .get(&format!("{url}/connections"))
        .await
        .ok_or("the holder's agent does not answer")?;
    let conns: Connections =
        serde_json::from_str(&body).map_err(|e| format!("agent /connections: {e}"))?;
    match conns.listening.contains(&spec.ports.p2p) {
        true => Ok(()),
        false => Err(format!("nothing listens on port {}", spec.ports.p2p)),
    }
}

/// How many of `nodes` are ready.
pub(super) async fn count_ready<P: NodeProbe>(
    probe: &P,
    spec: &NodeSpec,
    nodes: &[NodeSummary],
) -> usize {
    let checks = nodes.iter().map(|n| check(probe, spec, n));
    futures::future::join_all(checks)
        .await
        .iter()
        .filter(|r| r.is_ok())
        .count()
}

/// The nodes not ready, each with why and its last log lines.
pub(super) async fn not_ready_report<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    spec: &NodeSpec,
    nodes: &[NodeSummary],
) -> String {
    let mut report = String::new();
    for n in nodes {
        if let Err(why) = check(tn.probe, spec, n).await {
            report.push_str(&format!("  {} ({}): {why}\n", n.node, n.state));
            let logs = tn.engine.logs(&n.container, 5).await.unwrap_or_default();
            for line in logs.lines() {
                report.push_str(&format!("    | {line}\n"));
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::rig::ScriptedProbe;

    fn node() -> NodeSummary {
        NodeSummary {
            node: "n0".into(),
            container: "t-n0".into(),
            host: None,
            state: "running".into(),
            ip: None,
            http_url: Some("http://api".into()),
            agent_url: Some("http://agent".into()),
            metrics_url: Some("http://api/metrics".into()),
            holder: Some("t-n0-holder".into()),
            p2p_port: Some(2380),
            peers: None,
            expected_peers: None,
            validator: None,
            handshake_failures: None,
            finalized_transactions: None,
            utxo_digest: None,
        }
    }

    fn spec(ready: &str) -> NodeSpec {
        serde_norway::from_str(&format!(
            "image: x\ncommand: [x]\nports: {{ p2p: 2380, api: 2379, metrics: 2379 }}\n{ready}"
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn each_readiness_form_fails_with_its_reason_until_it_holds() {
        let probe = ScriptedProbe::healthy(1);
        let page = |url: &str, code: u16, body: &str| {
            probe
                .pages
                .lock()
                .unwrap()
                .insert(url.into(), (code, body.into()));
        };
        let http = spec("ready: { http: /health }\n");
        let why = check(&probe, &http, &node()).await.unwrap_err();
        assert!(why.contains("no answer"), "{why}");
        page("http://api/health", 503, "{\"health\":\"false\"}\n");
        let why = check(&probe, &http, &node()).await.unwrap_err();
        assert!(why.contains("503") && why.contains("false"), "{why}");
        page("http://api/health", 200, "ok");
        assert_eq!(check(&probe, &http, &node()).await, Ok(()));

        let metric = spec("ready: { metric: has_leader, op: \"==\", value: 1 }\n");
        page("http://api/metrics", 200, "other 1\n");
        let why = check(&probe, &metric, &node()).await.unwrap_err();
        assert!(why.contains("not exported"), "{why}");
        page("http://api/metrics", 200, "has_leader 0\n");
        let why = check(&probe, &metric, &node()).await.unwrap_err();
        assert!(why.contains("has_leader = 0, want == 1"), "{why}");
        page("http://api/metrics", 200, "has_leader 1\n");
        assert_eq!(check(&probe, &metric, &node()).await, Ok(()));

        let listening = spec("");
        page(
            "http://agent/connections",
            200,
            "{\"established\":[],\"listening\":[2379]}",
        );
        let why = check(&probe, &listening, &node()).await.unwrap_err();
        assert!(why.contains("nothing listens on port 2380"), "{why}");
        page(
            "http://agent/connections",
            200,
            "{\"established\":[],\"listening\":[2380]}",
        );
        assert_eq!(check(&probe, &listening, &node()).await, Ok(()));
        let mut down = node();
        down.state = "exited 1".into();
        assert_eq!(
            check(&probe, &listening, &down).await,
            Err("container exited 1".into())
        );
    }
}
