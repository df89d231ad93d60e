//! A workload for any node: a command run in a helper container on the
//! testnet's network. It is handed the nodes' addresses in its environment:
//! `TESTNET_NODES` (`n0=10.77.0.10,...`), `TESTNET_IPS` (`10.77.0.10,...`),
//! `TESTNET_ENDPOINTS` (`http://IP:API_PORT,...`, where the nodes have an
//! API port) and `TESTNET_DURATION_SECS`. Every line it prints that is a JSON
//! object with an `ok` field is one operation
//! (`{"op": "put", "ok": true, "latency_ms": 3}`); its exit status and those
//! operations are the report, judged by the `workload_ok` invariant.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::engine::{ContainerSpec, ContainerState, Engine, EngineError, Label};
use crate::engine::{LABEL_ROLE, LABEL_TESTNET};
use crate::plan::Plan;

/// Failed operations kept verbatim in the report, at most.
const KEPT_FAILURES: usize = 10;
/// Output lines kept for the report (its end).
const KEPT_TAIL: usize = 20;

/// What a workload command did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandReport {
    pub command: Vec<String>,
    /// `None`: it did not finish in time (stopped).
    pub exit_code: Option<i64>,
    pub secs: f64,
    /// Operations per `op` name: (succeeded, failed).
    pub ops: BTreeMap<String, (u64, u64)>,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    /// The first failed operations' lines.
    pub failures: Vec<String>,
    /// The last lines of its output.
    pub tail: Vec<String>,
}

impl CommandReport {
    pub fn succeeded(&self) -> u64 {
        self.ops.values().map(|v| v.0).sum()
    }

    pub fn failed(&self) -> u64 {
        self.ops.values().map(|v| v.1).sum()
    }
}

#[derive(Deserialize)]
struct OpLine {
    #[serde(default)]
    op: Option<String>,
    ok: bool,
    #[serde(default)]
    latency_ms: Option<f64>,
}

/// Reads the operations out of the command's output.
pub fn parse_output(output: &str, report: &mut CommandReport) {
    let mut latencies = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        let Ok(op) = serde_json::from_str::<OpLine>(line) else {
            continue;
        };
        let entry = report
            .ops
            .entry(op.op.unwrap_or_else(|| "op".into()))
            .or_default();
        if op.ok {
            entry.0 += 1;
        } else {
            entry.1 += 1;
            if report.failures.len() < KEPT_FAILURES {
                report.failures.push(line.to_owned());
            }
        }
        latencies.extend(op.latency_ms.filter(|l| l.is_finite()));
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        (!latencies.is_empty()).then(|| latencies[((latencies.len() - 1) as f64 * p) as usize])
    };
    (report.latency_ms_p50, report.latency_ms_p99) = (q(0.5), q(0.99));
    let lines: Vec<&str> = output.lines().collect();
    report.tail = lines[lines.len().saturating_sub(KEPT_TAIL)..]
        .iter()
        .map(|l| l.to_string())
        .collect();
}

/// The helper's environment: where the nodes are.
pub fn environment(plan: &Plan, duration: Duration) -> Vec<String> {
    let join = |f: &dyn Fn(&crate::plan::NodePlan) -> String| {
        plan.nodes.iter().map(f).collect::<Vec<_>>().join(",")
    };
    let mut env = vec![
        format!(
            "TESTNET_NODES={}",
            join(&|n| format!("{}={}", n.name, n.ip))
        ),
        format!("TESTNET_IPS={}", join(&|n| n.ip.to_string())),
        format!("TESTNET_DURATION_SECS={}", duration.as_secs()),
    ];
    if let Some(api) = plan.api_port() {
        env.push(format!(
            "TESTNET_ENDPOINTS={}",
            join(&|n| format!("http://{}:{api}", n.ip))
        ));
    }
    env
}

/// Runs `command` to its end (at most `limit`), then removes its container.
pub async fn run<E: Engine>(
    engine: &E,
    plan: &Plan,
    command: &[String],
    image: Option<&str>,
    duration: Duration,
    limit: Duration,
) -> Result<CommandReport, EngineError> {
    let name = format!("{}-workload", plan.name);
    let spec = ContainerSpec {
        name: name.clone(),
        image: image
            .map(str::to_owned)
            .or_else(|| plan.node_image.clone())
            .unwrap_or_else(|| plan.image.clone()),
        cmd: command.to_vec(),
        labels: BTreeMap::from([
            (LABEL_TESTNET.to_owned(), plan.name.clone()),
            (LABEL_ROLE.to_owned(), "workload".to_owned()),
        ]),
        network: plan.network.clone(),
        ip: plan.monitor_ip(3),
        publish: Vec::new(),
        cap_add: Vec::new(),
        env: environment(plan, duration),
        aliases: Vec::new(),
        join: None,
        tmpfs: Vec::new(),
        volumes: Vec::new(),
    };
    let _ = engine.remove_container(&name).await;
    engine.create_container(&spec).await?;
    let start = Instant::now();
    engine.start_container(&name).await?;
    let exit_code = loop {
        let state = engine
            .list_containers(Label::testnet(Some(&plan.name)))
            .await?
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.state);
        match state {
            Some(ContainerState::Exited(code)) => break Some(code),
            None => break None,
            _ if start.elapsed() > limit => break None,
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    let output = engine.logs(&name, 1_000_000).await.unwrap_or_default();
    let _ = engine.remove_container(&name).await;
    let mut report = CommandReport {
        command: command.to_vec(),
        exit_code,
        secs: start.elapsed().as_secs_f64(),
        ..CommandReport::default()
    };
    parse_output(&output, &mut report);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_counted_from_json_lines_only() {
        let out = "starting\n\
                   {\"op\":\"put\",\"ok\":true,\"latency_ms\":3}\n\
                   {\"op\":\"put\",\"ok\":false,\"error\":\"timeout\"}\n\
                   {\"op\":\"get\",\"ok\":true,\"latency_ms\":1}\n\
                   {\"no_ok_field\":1}\n{garbage\n";
        let mut r = CommandReport::default();
        parse_output(out, &mut r);
        assert_eq!(r.ops["put"], (1, 1));
        assert_eq!(r.ops["get"], (1, 0));
        assert_eq!((r.succeeded(), r.failed()), (2, 1));
        assert_eq!(
            r.failures,
            ["{\"op\":\"put\",\"ok\":false,\"error\":\"timeout\"}"]
        );
        assert_eq!(r.latency_ms_p50, Some(1.0));
        assert_eq!(r.tail.len(), 6);
    }
}
