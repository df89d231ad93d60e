//! The node's process as the agent sees and faults it, in either mode:
//! - supervised: the agent started the node as its own child (our image, the
//!   agent the container's main process);
//! - holder: the node runs in a container of its own that joined the agent's
//!   network and PID namespaces ([`super::holder`]); the agent signals its
//!   processes, and starting it again is the engine's job.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tokio::process::{Child, Command};
use tracing::info;

use super::{error, holder, Agent};
use crate::api::agent::{ProcessReport, ProcessState};

/// How long a stopped node may take to exit on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub(super) enum Node {
    Supervised(Box<Supervised>),
    Holder(holder::Watch),
}

pub(super) struct Supervised {
    pub command: Vec<String>,
    pub child: Option<Child>,
    pub state: ProcessState,
    pub restarts: u64,
}

impl Node {
    pub fn supervise(command: Vec<String>) -> std::io::Result<Node> {
        let child = spawn_node(&command)?;
        Ok(Node::Supervised(Box::new(Supervised {
            command,
            child: Some(child),
            state: ProcessState::Running,
            restarts: 0,
        })))
    }

    pub fn report(&mut self) -> ProcessReport {
        match self {
            Node::Supervised(s) => ProcessReport {
                state: s.state,
                pid: s.child.as_ref().and_then(|c| c.id()),
                restarts: s.restarts,
            },
            Node::Holder(watch) => {
                let procs = holder::node_processes();
                let main = holder::main_pid(&procs);
                watch.see(main);
                let state = if procs.is_empty() {
                    ProcessState::Stopped
                } else if holder::all_stopped(&procs) {
                    ProcessState::Paused
                } else {
                    ProcessState::Running
                };
                ProcessReport {
                    state,
                    pid: main,
                    restarts: watch.restarts,
                }
            }
        }
    }
}

fn spawn_node(command: &[String]) -> std::io::Result<Child> {
    Command::new(&command[0])
        .args(&command[1..])
        .kill_on_drop(true)
        .spawn()
}

fn signal(child: &Child, sig: i32) {
    if let Some(pid) = child.id() {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(pid as i32, sig);
        }
    }
}

pub(super) async fn get_process(State(agent): State<Arc<Agent>>) -> Json<ProcessReport> {
    Json(agent.node.lock().await.report())
}

pub(super) async fn process_action(
    State(agent): State<Arc<Agent>>,
    Path(action): Path<String>,
) -> Response {
    const ACTIONS: [&str; 6] = ["kill", "start", "restart", "stop", "pause", "resume"];
    if !ACTIONS.contains(&action.as_str()) {
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown action {action:?}; use kill, start, restart, stop, pause or resume"),
        );
    }
    let mut node = agent.node.lock().await;
    // A held node's main process is noted before the fault, so the start
    // after it counts as a restart even if nobody looked in between.
    let _ = node.report();
    let result = match &mut *node {
        Node::Supervised(s) => supervised_action(s, &action).await,
        Node::Holder(_) => holder_action(&action).await,
    };
    match result {
        Ok(()) => {
            info!(action, "process fault applied");
            Json(node.report()).into_response()
        }
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

async fn supervised_action(s: &mut Supervised, action: &str) -> Result<(), String> {
    match action {
        "kill" | "stop" => {
            if let Some(mut child) = s.child.take() {
                if action == "stop" {
                    signal(&child, libc::SIGTERM);
                    // A paused process would hold the SIGTERM pending forever.
                    signal(&child, libc::SIGCONT);
                    if tokio::time::timeout(STOP_GRACE, child.wait())
                        .await
                        .is_err()
                    {
                        let _ = child.kill().await;
                    }
                } else {
                    let _ = child.kill().await;
                }
            }
            s.state = ProcessState::Stopped;
            Ok(())
        }
        "start" | "restart" => {
            if let Some(mut child) = s.child.take() {
                let _ = child.kill().await;
            }
            let child =
                spawn_node(&s.command).map_err(|e| format!("cannot start the node: {e}"))?;
            s.child = Some(child);
            s.state = ProcessState::Running;
            s.restarts += 1;
            Ok(())
        }
        _ => match &s.child {
            Some(child) => {
                let pause = action == "pause";
                signal(child, if pause { libc::SIGSTOP } else { libc::SIGCONT });
                s.state = if pause {
                    ProcessState::Paused
                } else {
                    ProcessState::Running
                };
                Ok(())
            }
            None => Err("the node is not running".into()),
        },
    }
}

/// Waits until the node has no live process, up to `limit`.
async fn gone_within(limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if holder::node_processes().is_empty() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn holder_action(action: &str) -> Result<(), String> {
    let procs = holder::node_processes();
    match action {
        "kill" | "stop" => {
            if action == "stop" {
                holder::signal_all(&procs, libc::SIGCONT);
                if let Some(main) = holder::main_pid(&procs) {
                    // SAFETY: kill(2) on the node's main process.
                    unsafe {
                        libc::kill(main as i32, libc::SIGTERM);
                    }
                }
                if gone_within(STOP_GRACE).await {
                    return Ok(());
                }
            }
            holder::signal_all(&holder::node_processes(), libc::SIGKILL);
            match gone_within(STOP_GRACE).await {
                true => Ok(()),
                false => Err("the node's processes survived SIGKILL for 5 s".into()),
            }
        }
        "pause" | "resume" if procs.is_empty() => Err("the node is not running".into()),
        "pause" => settle(libc::SIGSTOP, true).await,
        "resume" => settle(libc::SIGCONT, false).await,
        _ => Err(format!(
            "{action}: the node runs in a container of its own (holder mode); the \
             orchestrator starts it through the engine (`testnet chaos start NODE`)"
        )),
    }
}

/// Signals the node's processes until they are all stopped (`stop`) or none
/// is (resume), asking again those not there yet, for up to 2 s: a report
/// says what is true, not what was asked.
async fn settle(sig: i32, stop: bool) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let procs = holder::node_processes();
        let stopped = |p: &holder::Proc| matches!(p.state, 'T' | 't');
        let behind: Vec<holder::Proc> = procs
            .iter()
            .filter(|p| stopped(p) != stop)
            .cloned()
            .collect();
        if procs.is_empty() {
            return Err("the node is not running".into());
        }
        if behind.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let pids: Vec<String> = behind
                .iter()
                .map(|p| format!("{} ({})", p.pid, p.state))
                .collect();
            return Err(format!(
                "the node's processes {} did not {} within 2 s",
                pids.join(", "),
                if stop { "stop" } else { "resume" }
            ));
        }
        holder::signal_all(&behind, sig);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// On SIGTERM to the agent: a supervised node is stopped (its exit code is the
/// container's); a held node's container is the engine's to stop.
pub(super) async fn forward_and_wait(agent: &Agent) -> i32 {
    let mut node = agent.node.lock().await;
    let Node::Supervised(s) = &mut *node else {
        return 0;
    };
    if let Some(mut child) = s.child.take() {
        signal(&child, libc::SIGCONT);
        signal(&child, libc::SIGTERM);
        match tokio::time::timeout(STOP_GRACE, child.wait()).await {
            Ok(Ok(status)) => status.code().unwrap_or(0),
            _ => {
                let _ = child.kill().await;
                0
            }
        }
    } else {
        0
    }
}
