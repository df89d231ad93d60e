//! What the Docker end-to-end tests share: the real `testnet` binary with a
//! state dir of the test process, the node image built once, leftovers by
//! label, scenario runs with their reports.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::{Command, Output};

use serde_json::Value;
use testnet::engine::docker::DockerEngine;
use testnet::engine::{Engine, Label};
use tokio::sync::OnceCell;

pub const BIN: &str = env!("CARGO_BIN_EXE_testnet");

/// The node image, built once for all tests (concurrent builds would each run
/// cargo and mmdebstrap).
pub static IMAGE: OnceCell<String> = OnceCell::const_new();

pub fn state_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("testnet-e2e-state-{}", std::process::id()))
}

pub fn testnet(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("TESTNET_STATE_DIR", state_dir());
    cmd
}

pub async fn run(args: &[&str]) -> Output {
    let mut cmd = testnet(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// `testnet run FILE --name NAME --image IMAGE --keep --report REPORT`: the
/// testnet stays up for the test to look at (then `down` it).
pub async fn run_kept(
    file: &std::path::Path,
    name: &str,
    image: &str,
    report: &std::path::Path,
) -> Output {
    run(&[
        "run",
        file.to_str().unwrap(),
        "--name",
        name,
        "--image",
        image,
        "--keep",
        "--report",
        report.to_str().unwrap(),
    ])
    .await
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub async fn image() -> String {
    IMAGE
        .get_or_init(|| async {
            let out = run(&["image", "build"]).await;
            assert!(out.status.success(), "image build failed: {}", text(&out));
            let tag = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            assert_made_in_one_commit(&tag).await;
            tag
        })
        .await
        .clone()
}

/// The node image made by one commit keeps the base's config, has its role
/// label, and its temporary container is gone.
async fn assert_made_in_one_commit(tag: &str) {
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let config = docker.inspect_image(tag).await.unwrap().config.unwrap();
    assert_eq!(
        config.entrypoint,
        Some(vec!["/usr/local/bin/testnet-node".to_owned()])
    );
    let ports: Vec<_> = config
        .exposed_ports
        .unwrap_or_default()
        .into_iter()
        .collect();
    assert!(
        ports.iter().any(|p| p == "7000/tcp") && ports.iter().any(|p| p == "8000/tcp"),
        "{ports:?}"
    );
    let labels = config.labels.unwrap_or_default();
    assert_eq!(
        labels.get("io.testnet.role").map(String::as_str),
        Some("node-image"),
        "{labels:?}"
    );
    let scratch = HashMap::from([(
        "label".to_owned(),
        vec!["io.testnet.role=derive-scratch".to_owned()],
    )]);
    let all = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&scratch)
        .build();
    let left: Vec<_> = docker
        .list_containers(Some(all))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .collect();
    assert!(left.is_empty(), "temporary containers left: {left:?}");
}

/// Containers, networks and volumes still labelled with testnet `name`.
pub async fn leftovers(name: &str) -> Vec<String> {
    let engine = DockerEngine::connect().await.unwrap();
    let label = Label::testnet(Some(name));
    let mut left: Vec<String> = engine
        .list_containers(label)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    left.extend(
        engine
            .list_networks(Some(label))
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.name),
    );
    left.extend(engine.list_volumes(label).await.unwrap());
    left
}

/// Every node's fault rules as its agent reads them back (`chaos show
/// --json`: JSON and nothing else on stdout).
pub async fn chaos_show(name: &str) -> Vec<Value> {
    let out = run(&["chaos", "show", "--json", "--name", name]).await;
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`chaos show --json` printed more than JSON ({e}): {}",
            text(&out)
        )
    })
}

/// `node`'s entry of [`chaos_show`].
pub fn shown_of<'a>(shown: &'a [Value], node: &str) -> &'a Value {
    shown
        .iter()
        .find(|s| s["node"] == node)
        .unwrap_or_else(|| panic!("no {node} in {shown:?}"))
}

/// Every agent reads back no rule, chain or qdisc of ours.
pub async fn assert_no_rules(name: &str) {
    let shown = chaos_show(name).await;
    assert_eq!(shown.len(), 4, "{shown:?}");
    for s in &shown {
        assert_eq!(s["installed"], false, "rules left: {s}");
        assert!(
            s["state"]["bandwidth_kbit"].is_null(),
            "bandwidth cap left: {s}"
        );
    }
}

/// `down`, then nothing labelled with the testnet is left in Docker.
pub async fn down_leaves_nothing(name: &str) {
    run(&["down", "--name", name]).await;
    assert_eq!(leftovers(name).await, Vec::<String>::new());
}

/// Removes the testnet whatever happened (a failing test must not leak it).
pub struct Guard(pub &'static str);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = testnet(&["down", "--name", self.0]).output();
    }
}

/// Runs one shipped scenario; returns its exit code and report.json.
pub async fn run_scenario(image: &str, file: &str) -> (Option<i32>, Value, std::path::PathBuf) {
    let path = format!("{}/../testnets/{file}", env!("CARGO_MANIFEST_DIR"));
    run_scenario_at(image, std::path::Path::new(&path)).await
}

/// Runs the scenario file at `path` (named after its file).
pub async fn run_scenario_at(
    image: &str,
    path: &std::path::Path,
) -> (Option<i32>, Value, std::path::PathBuf) {
    let file = path.file_name().unwrap().to_string_lossy().to_string();
    let stem = file.trim_end_matches(".scenario.yaml");
    let name = format!("e2e-{stem}");
    let report = std::env::temp_dir().join(format!("testnet-e2e-report-{stem}"));
    let _ = std::fs::remove_dir_all(&report);
    let started = std::time::Instant::now();
    let out = run(&[
        "run",
        path.to_str().unwrap(),
        "--name",
        &name,
        "--image",
        image,
        "--report",
        report.to_str().unwrap(),
    ])
    .await;
    eprintln!(
        "scenario {stem}: exit {:?} after {:.0}s\n{}",
        out.status.code(),
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        leftovers(&name).await.is_empty(),
        "scenario {stem} left resources behind"
    );
    let json: Value = std::fs::read(report.join("report.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("no report.json for {stem}: {}", text(&out)));
    for f in ["report.json", "junit.xml", "report.html"] {
        assert!(report.join(f).exists(), "{stem}: no {f}");
    }
    (out.status.code(), json, report)
}

/// The scenario of `file` without its seeded bugs, written to a temporary file.
pub fn twin_of(file: &str) -> (tempfile::TempDir, std::path::PathBuf, Vec<String>) {
    let path = format!("{}/../testnets/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut s = testnet::scenario::Scenario::load(std::path::Path::new(&path)).unwrap();
    let buggy: Vec<String> = s.testnet.node_options.keys().cloned().collect();
    s.testnet.node_options.clear();
    s.name = format!("{}-twin", s.name);
    let dir = tempfile::tempdir().unwrap();
    let twin = dir.path().join(format!("{}.scenario.yaml", s.name));
    std::fs::write(&twin, serde_norway::to_string(&s).unwrap()).unwrap();
    (dir, twin, buggy)
}

/// The Prometheus URL `up --monitor` printed in its summary.
pub fn prometheus_url(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("prometheus  "))
        .unwrap_or_else(|| panic!("no prometheus URL in the summary: {stdout}"))
        .trim()
        .to_owned()
}
