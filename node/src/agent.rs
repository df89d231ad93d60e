//! The in-container agent: supervises the node process and applies faults.
//!
//! It is the container's main process, so killing, stopping or pausing the node
//! keeps the network namespace, its IP and its rules. In holder mode it runs
//! no node itself: the node's own container joins the agent's network and PID
//! namespaces ([`holder`]), so any image can be faulted. It needs NET_ADMIN (for
//! iptables), the node needs nothing. HTTP control API (its JSON types are in
//! [`crate::api::agent`]):
//! - `GET /faults`: the fault state read back from the kernel, whether our chains
//!   are installed, and any rule in them we did not write;
//! - `PUT /faults` (a [`FaultState`]): applied as one `iptables-restore --noflush`
//!   batch, read back and compared; an empty state heals (removes our chains);
//! - `GET /process`, `POST /process/{kill,start,restart,stop,pause,resume}`;
//! - `GET /connections`: the namespace's established TCP connections;
//! - `GET`/`PUT /clock`: the node's clock skew, through its own seam;
//! - `GET /metrics`: `testnet_fault_rules{kind}`, the faults in place now (for
//!   Prometheus: dashboards shade fault windows with it).
//!
//! A node that exits on its own ends the agent with the node's exit code (the
//! container stops, and the orchestrator sees it); one stopped by the agent does not.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::Mutex;
use tracing::{info, warn};

// The agent serves the wire types of `api::agent`; a glob, so that the
// re-export below can go without touching this line.
use crate::api::agent::*;
use crate::api::{ApiError, Health};
use crate::faults::{
    counters, parse_tbf_rate, read_back_with, render, tbf_args, FaultState, Installed,
};

/// The interface of the testnet's network inside a node's container.
const DEV: &str = "eth0";

mod connections;
mod delay;
mod disk;
pub mod faketime;
pub mod holder;
mod keeper;
mod process;
mod seams;

/// What the agent runs alongside its control API.
pub enum Mode {
    /// Start `command` (the node) as a child and supervise it.
    Supervise(Vec<String>),
    /// Hold the namespaces a node's own container joins ([`holder`]).
    Holder,
}

struct Agent {
    node: Mutex<process::Node>,
    faults: Mutex<()>,
    /// Delay per destination, read by the delay worker (started on first use).
    delays: delay::Delays,
    worker: std::sync::Mutex<Option<delay::Worker>>,
    /// The current lease: its deadline and a generation that each PUT bumps, so
    /// an older lease's timer knows it was superseded.
    lease: std::sync::Mutex<(Option<tokio::time::Instant>, u64)>,
    /// The node's own API, where its live seams are (`/clock`, `/byzantine`):
    /// `http://127.0.0.1:8000` for ours.
    node_api: Option<String>,
    /// The node's data dir (a capped tmpfs when disk faults are wanted).
    data_dir: Option<std::path::PathBuf>,
    /// Holder mode: the node's container preloads libfaketime ([`faketime`]).
    faketime: bool,
    /// What was set through the node's seams, set again on a node process
    /// that restarted without it.
    kept: seams::Kept,
}

impl Agent {
    fn delays(&self) -> std::collections::BTreeMap<std::net::Ipv4Addr, crate::faults::Delay> {
        self.delays
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn ensure_worker(&self) -> Result<(), String> {
        let mut w = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        if w.as_ref().is_none_or(|w| w.is_finished()) {
            *w =
                Some(delay::spawn(self.delays.clone()).map_err(|e| {
                    format!("cannot bind NFQUEUE {}: {e}", crate::faults::DELAY_QUEUE)
                })?);
        }
        Ok(())
    }

    fn lease_remaining(&self) -> Option<f64> {
        let (deadline, _) = *self.lease.lock().unwrap_or_else(|e| e.into_inner());
        deadline.map(|d| {
            d.saturating_duration_since(tokio::time::Instant::now())
                .as_secs_f64()
        })
    }
}

fn error(status: StatusCode, e: impl std::fmt::Display) -> Response {
    (
        status,
        Json(ApiError {
            error: e.to_string(),
        }),
    )
        .into_response()
}

async fn run_iptables_save() -> Result<String, String> {
    run_iptables(&["-S"]).await
}

async fn run_iptables(args: &[&str]) -> Result<String, String> {
    let out = Command::new("iptables")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run iptables: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "iptables {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn tc(args: &[String]) -> Result<String, String> {
    let out = Command::new("tc")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run tc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tc {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn current_bandwidth() -> Result<Option<u32>, String> {
    let show = tc(&["qdisc".into(), "show".into(), "dev".into(), DEV.into()]).await?;
    Ok(parse_tbf_rate(&show))
}

async fn current_faults(agent: &Agent) -> Result<FaultReport, String> {
    Ok(read_kernel(agent).await?.0)
}

/// The fault state in the kernel, and which of our chains and jumps exist.
async fn read_kernel(agent: &Agent) -> Result<(FaultReport, Installed), String> {
    let (mut state, objects, foreign_rules) =
        read_back_with(&run_iptables_save().await?, &agent.delays());
    state.bandwidth_kbit = current_bandwidth().await?;
    let report = FaultReport {
        state,
        installed: objects.any(),
        foreign_rules,
        lease_remaining_secs: agent.lease_remaining(),
    };
    Ok((report, objects))
}

async fn apply(agent: &Agent, state: &FaultState) -> Result<FaultReport, String> {
    if !state.delay_from.is_empty() {
        agent.ensure_worker()?;
    }
    // The worker must know a link's delay before packets of it are queued, and
    // keep knowing the old ones until the rules are replaced.
    let old_delays = agent.delays();
    {
        let mut d = agent.delays.write().unwrap_or_else(|e| e.into_inner());
        d.extend(state.delay_from.clone());
    }
    let result = apply_rules(agent, state).await;
    let delays = if result.is_ok() {
        state.delay_from.clone()
    } else {
        old_delays
    };
    *agent.delays.write().unwrap_or_else(|e| e.into_inner()) = delays;
    result
}

async fn apply_rules(agent: &Agent, state: &FaultState) -> Result<FaultReport, String> {
    let (before, objects) = read_kernel(agent).await?;
    let batch = render(state, &objects);
    let mut child = Command::new("iptables-restore")
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run iptables-restore: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(batch.as_bytes())
            .await
            .map_err(|e| format!("cannot feed iptables-restore: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("iptables-restore: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "iptables-restore refused the batch: {}\n{batch}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if state.bandwidth_kbit != before.state.bandwidth_kbit {
        tc(&tbf_args(DEV, state.bandwidth_kbit)).await?;
    }
    let after = current_faults(agent).await?;
    if &after.state != state {
        return Err(format!("read back {:?}, wanted {:?}", after.state, state));
    }
    Ok(after)
}

async fn get_faults(State(agent): State<Arc<Agent>>) -> Response {
    match current_faults(&agent).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// `GET /metrics`: the faults this node carries now, read back from the kernel,
/// as `testnet_fault_rules{kind}` (Prometheus marks fault windows with it).
async fn fault_metrics(State(agent): State<Arc<Agent>>) -> Response {
    let read = async {
        let state = current_faults(&agent).await?.state;
        let rules = run_iptables(&["-S", "-v"]).await?;
        let tc_stats = tc(&[
            "-s".into(),
            "qdisc".into(),
            "show".into(),
            "dev".into(),
            DEV.into(),
        ])
        .await?;
        Ok::<_, String>((state, rules, tc_stats))
    };
    match read.await {
        Ok((state, rules, tc_stats)) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            render_fault_metrics(&state, &rules, &tc_stats),
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The text of `GET /metrics`, through a registry of its own made for each
/// scrape (every figure is read back from the kernel then, so nothing is kept
/// between scrapes): the faults in place by kind, and what the rules in place
/// have done, so a run can tell that a fault bit.
fn render_fault_metrics(state: &FaultState, iptables_s_v: &str, tc_s_show: &str) -> String {
    use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
    let registry = Registry::new();
    let register = |m: Box<dyn prometheus::core::Collector>| {
        registry.register(m).expect("metric registered once");
    };
    let by_kind = |name: &str, help: &str| {
        let g =
            IntGaugeVec::new(Opts::new(name, help), &["kind"]).expect("valid metric definition");
        register(Box::new(g.clone()));
        g
    };
    fn count(n: impl TryInto<i64>) -> i64 {
        n.try_into().unwrap_or(i64::MAX)
    }
    let rules = by_kind(
        "testnet_fault_rules",
        "Fault rules this node carries now, by kind.",
    );
    for (kind, n) in [
        ("drop", state.drop_from.len() + state.drop_to.len()),
        ("loss", state.loss_per_mille.len()),
        ("delay", state.delay_from.len()),
        ("duplicate", state.duplicate_per_mille.len()),
        ("bandwidth", usize::from(state.bandwidth_kbit.is_some())),
    ] {
        rules.with_label_values(&[kind]).set(count(n));
    }
    let matched = by_kind(
        "testnet_fault_matched_packets",
        "Packets matched by the fault rules in place, by kind (restarts when the rules are replaced).",
    );
    for (kind, n) in counters::rule_packets(iptables_s_v) {
        matched.with_label_values(&[kind]).set(count(n));
    }
    let held = IntGauge::new(
        "testnet_fault_bandwidth_overlimits",
        "Packets the bandwidth cap in place had to hold back.",
    )
    .expect("valid metric definition");
    register(Box::new(held.clone()));
    held.set(count(counters::tbf_overlimits(tc_s_show).unwrap_or(0)));
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("the text encoding of gathered metrics");
    String::from_utf8(buf).expect("the text encoding is UTF-8")
}

async fn put_faults(
    State(agent): State<Arc<Agent>>,
    axum::extract::Query(q): axum::extract::Query<LeaseQuery>,
    Json(state): Json<FaultState>,
) -> Response {
    let _one_at_a_time = agent.faults.lock().await;
    // Validate before touching the running lease: a bad value must not cancel it.
    let deadline = match q.lease_secs {
        Some(secs) => match Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| tokio::time::Instant::now().checked_add(d))
        {
            Some(d) if secs > 0.0 => Some(d),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("lease_secs={secs} is not a positive duration"),
                )
            }
        },
        None => None,
    };
    {
        let mut lease = agent.lease.lock().unwrap_or_else(|e| e.into_inner());
        // A new lease replaces the old one; healing ends it; a PUT without a lease
        // (a partial change read back and re-applied) keeps the running one, so
        // leased faults still expire if their owner is gone.
        if deadline.is_some() || state.is_healed() {
            lease.1 += 1;
            lease.0 = deadline.filter(|_| !state.is_healed());
            if let Some(deadline) = lease.0 {
                let (agent, generation) = (agent.clone(), lease.1);
                tokio::spawn(async move {
                    tokio::time::sleep_until(deadline).await;
                    expire(&agent, generation).await;
                });
            }
        }
    }
    match apply(&agent, &state).await {
        Ok(mut r) => {
            r.lease_remaining_secs = agent.lease_remaining();
            info!(drop_from = ?state.drop_from, drop_to = ?state.drop_to, loss = ?state.loss_per_mille, delay_from = ?state.delay_from, healed = state.is_healed(), "fault state applied");
            Json(r).into_response()
        }
        Err(e) => {
            warn!(error = %e, "fault state not applied");
            error(StatusCode::INTERNAL_SERVER_ERROR, e)
        }
    }
}

/// `PUT /sink`: reads and discards the body; says how much and how fast.
async fn sink(body: axum::body::Body) -> Json<SinkReport> {
    use futures::StreamExt;
    let start = std::time::Instant::now();
    let mut stream = body.into_data_stream();
    let mut bytes = 0u64;
    while let Some(Ok(chunk)) = stream.next().await {
        bytes += chunk.len() as u64;
    }
    Json(SinkReport {
        bytes,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// `POST /probe/throughput`: sends `bytes` to another agent's `/sink` over the
/// testnet's network and reports the rate, for measuring bandwidth faults.
async fn probe_throughput(Json(p): Json<ThroughputProbe>) -> Response {
    let chunk = bytes::Bytes::from(vec![0u8; 64 * 1024]);
    let n = p.bytes.div_ceil(chunk.len() as u64);
    let body = futures::stream::iter((0..n).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let start = std::time::Instant::now();
    let sent = reqwest::Client::new()
        .put(format!("http://{}/sink", p.to))
        .body(reqwest::Body::wrap_stream(body))
        .timeout(Duration::from_secs(300))
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {
            let secs = start.elapsed().as_secs_f64();
            let bytes = n * 64 * 1024;
            Json(ThroughputReport {
                bytes,
                secs,
                kbit_per_s: bytes as f64 * 8.0 / 1000.0 / secs,
            })
            .into_response()
        }
        Ok(r) => error(
            StatusCode::BAD_GATEWAY,
            format!("sink answered {}", r.status()),
        ),
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

/// `POST /probe/connect`: `count` TCP connects to `to`, one after the other;
/// reports each connect time (ms) and how many failed, for delay and loss.
async fn probe_connect(Json(p): Json<ConnectProbe>) -> Json<ConnectReport> {
    let mut ms = Vec::new();
    let mut failed = 0u32;
    for _ in 0..p.count.min(10_000) {
        let start = std::time::Instant::now();
        match tokio::time::timeout(
            Duration::from_millis(p.timeout_ms),
            tokio::net::TcpStream::connect(p.to),
        )
        .await
        {
            Ok(Ok(_)) => ms.push(start.elapsed().as_secs_f64() * 1000.0),
            _ => failed += 1,
        }
    }
    Json(ConnectReport {
        connect_ms: ms,
        failed,
    })
}

/// A lease ran out without renewal: the orchestrator that set the faults is gone.
async fn expire(agent: &Agent, generation: u64) {
    let _one_at_a_time = agent.faults.lock().await;
    {
        let mut lease = agent.lease.lock().unwrap_or_else(|e| e.into_inner());
        if lease.1 != generation {
            return;
        }
        lease.0 = None;
    }
    match apply(agent, &FaultState::default()).await {
        Ok(_) => warn!("fault lease expired without renewal: healed"),
        Err(e) => warn!(error = %e, "fault lease expired but healing failed"),
    }
}

/// `DELETE /delay-worker`: stops the delay worker as if it had died. The queue
/// rules stay; with `--queue-bypass` the kernel lets their traffic through.
async fn stop_delay_worker(State(agent): State<Arc<Agent>>) -> Response {
    let worker = agent
        .worker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    match worker {
        Some(w) => {
            w.stop();
            warn!("delay worker stopped on request (fail-open check)");
            Json(DelayWorkerStopped { stopped: true }).into_response()
        }
        None => Json(DelayWorkerStopped { stopped: false }).into_response(),
    }
}

/// Where the agent reaches the node's live seams.
#[derive(Debug, Clone, Default)]
pub struct Seams {
    /// The node's own API (`/clock`, `/byzantine`, `/storage`): ours only.
    pub node_api: Option<String>,
    /// The node's data dir, for disk faults.
    pub data_dir: Option<std::path::PathBuf>,
    /// Holder mode: the node's container preloads libfaketime.
    pub faketime: bool,
}

/// Runs the agent: starts the node (supervised mode), serves the control API
/// on `control`, and returns the exit code the container should end with.
pub async fn run(control: TcpListener, mode: Mode, seams: Seams) -> std::io::Result<i32> {
    let node = match mode {
        Mode::Supervise(command) => process::Node::supervise(command)?,
        Mode::Holder => process::Node::Holder(holder::Watch::default()),
    };
    let agent = Arc::new(Agent {
        node: Mutex::new(node),
        faults: Mutex::new(()),
        delays: Default::default(),
        worker: std::sync::Mutex::new(None),
        lease: std::sync::Mutex::new((None, 0)),
        node_api: seams.node_api,
        data_dir: seams.data_dir,
        faketime: seams.faketime,
        kept: Default::default(),
    });
    tokio::spawn(keeper::keep(agent.clone()));
    let app = Router::new()
        .route(
            "/health",
            get(|| async {
                Json(Health {
                    status: "ok".into(),
                })
            }),
        )
        .route("/faults", get(get_faults).put(put_faults))
        .route("/metrics", get(fault_metrics))
        .route("/delay-worker", axum::routing::delete(stop_delay_worker))
        .route("/sink", axum::routing::put(sink))
        .route("/probe/throughput", post(probe_throughput))
        .route("/probe/connect", post(probe_connect))
        .route("/process", get(process::get_process))
        .route("/process/{action}", post(process::process_action))
        .route("/connections", get(|| async { Json(connections::read()) }))
        .route("/clock", get(seams::get_clock).put(seams::put_clock))
        .route(
            "/byzantine",
            get(seams::get_byzantine).put(seams::put_byzantine),
        )
        .route("/storage", get(seams::get_storage).put(seams::put_storage))
        .route("/disk", get(disk::get_disk).put(disk::put_disk))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(agent.clone());
    let server = tokio::spawn(async move { axum::serve(control, app).await });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let code = loop {
        tokio::select! {
            _ = term.recv() => break process::forward_and_wait(&agent).await,
            _ = int.recv() => break process::forward_and_wait(&agent).await,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                let mut node = agent.node.lock().await;
                let process::Node::Supervised(s) = &mut *node else {
                    continue;
                };
                let exited = match s.child.as_mut() {
                    Some(child) => child.try_wait()?,
                    None => None,
                };
                if let Some(status) = exited {
                    // The node died without the agent asking: the container ends too.
                    warn!(%status, "the node exited on its own");
                    s.child = None;
                    break status.code().unwrap_or(1);
                }
            }
        }
    };
    server.abort();
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Delay;

    const IPTABLES_S_V: &str = "-A TESTNET-OUT -d 10.77.0.11/32 -c 5 300 -j DROP\n";
    const TC_S_SHOW: &str = "qdisc tbf 8001: root refcnt 2 rate 512Kbit burst 32Kb lat 50ms\n Sent 1 bytes 1 pkt (dropped 0, overlimits 4 requeues 0)\n";

    #[test]
    fn fault_effects_are_rendered_as_metrics() {
        let text = render_fault_metrics(&FaultState::default(), IPTABLES_S_V, TC_S_SHOW);
        for line in [
            "# TYPE testnet_fault_matched_packets gauge",
            "testnet_fault_matched_packets{kind=\"drop\"} 5",
            "testnet_fault_matched_packets{kind=\"loss\"} 0",
            "# TYPE testnet_fault_bandwidth_overlimits gauge",
            "testnet_fault_bandwidth_overlimits 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn fault_metrics_count_rules_by_kind() {
        let ip = |i| std::net::Ipv4Addr::new(10, 77, 0, i);
        let state = FaultState {
            drop_from: [ip(11), ip(12)].into(),
            drop_to: [ip(11)].into(),
            delay_from: [(ip(13), Delay::fixed(5))].into(),
            bandwidth_kbit: Some(512),
            ..FaultState::default()
        };
        let text = render_fault_metrics(&state, "", "");
        for line in [
            "# TYPE testnet_fault_rules gauge",
            "testnet_fault_rules{kind=\"drop\"} 3",
            "testnet_fault_rules{kind=\"loss\"} 0",
            "testnet_fault_rules{kind=\"delay\"} 1",
            "testnet_fault_rules{kind=\"duplicate\"} 0",
            "testnet_fault_rules{kind=\"bandwidth\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
        assert!(render_fault_metrics(&FaultState::default(), "", "")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.ends_with(" 0")));
    }

    /// What the agent serves passes Prometheus' own reading and lint.
    #[test]
    fn the_metrics_pass_promtool_check_metrics() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let state = FaultState {
            loss_per_mille: [(std::net::Ipv4Addr::new(10, 77, 0, 12), 100)].into(),
            ..FaultState::default()
        };
        let text = render_fault_metrics(&state, IPTABLES_S_V, TC_S_SHOW);
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool is installed (`apt-get install prometheus`; .ci/run does it)");
        let mut stdin = child.stdin.take().expect("promtool's stdin");
        stdin
            .write_all(text.as_bytes())
            .expect("promtool reads the text");
        drop(stdin);
        let out = child.wait_with_output().expect("promtool ran");
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}\non:\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
