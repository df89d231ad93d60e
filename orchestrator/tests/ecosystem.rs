//! What users of the ecosystem expect, checked with independent tools: the
//! shipped files against the JSON Schemas (check-jsonschema), the example CI
//! workflow against GitHub's workflow schema, shell completions, the
//! `TESTNET_NAME` variable, and a testnet started from `export compose` by
//! docker-compose that `testnet` then drives.

#[path = "support/e2e.rs"]
mod e2e;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::*;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `check-jsonschema ARGS`: (passed, what it printed).
fn check_jsonschema(args: &[&str]) -> (bool, String) {
    let fix = "install it with `python3 -m pip install check-jsonschema==0.39.0` (.ci/setup does)";
    let out = Command::new("python3")
        .args(["-m", "check_jsonschema"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 cannot run ({e}): {fix}"));
    let said = text(&out);
    assert!(
        !said.contains("No module named"),
        "no check-jsonschema: {fix}"
    );
    (out.status.success(), said)
}

fn schema_of(file: &str) -> &'static str {
    match file.ends_with(".scenario.yaml") {
        true => "schemas/scenario.schema.json",
        false => "schemas/testnet.schema.json",
    }
}

#[test]
fn every_shipped_file_follows_its_schema_and_names_it() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("testnets"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{files:?}");
    for f in &files {
        let path = root().join("testnets").join(f);
        let first = std::fs::read_to_string(&path).unwrap();
        let want = format!("# yaml-language-server: $schema=../{}", schema_of(f));
        assert_eq!(first.lines().next(), Some(want.as_str()), "{f}: first line");
    }
    for schema in [
        "schemas/scenario.schema.json",
        "schemas/testnet.schema.json",
    ] {
        let batch: Vec<String> = files
            .iter()
            .filter(|f| schema_of(f) == schema)
            .map(|f| root().join("testnets").join(f).display().to_string())
            .collect();
        let schemafile = root().join(schema).display().to_string();
        let mut args = vec!["--schemafile", schemafile.as_str()];
        args.extend(batch.iter().map(String::as_str));
        let (ok, said) = check_jsonschema(&args);
        assert!(ok, "{schema}: {said}");
    }
}

#[test]
fn the_schemas_refuse_what_the_loader_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let schema = root()
        .join("schemas/scenario.schema.json")
        .display()
        .to_string();
    let cases = [
        (
            "unknown key",
            "name: x\ntestnet: { nodes: 4 }\nworklaod: { tps: 1 }\n",
            "worklaod",
        ),
        (
            "a duration as a number",
            "name: x\ntestnet: { nodes: 4 }\nworkload: { tps: 1, duration: 30 }\n",
            "duration",
        ),
        (
            "an unknown fault",
            "name: x\ntestnet: { nodes: 4 }\ntimeline: [{ at: 1s, fault: { explode: [n0] } }]\n",
            "fault",
        ),
        ("no testnet", "name: x\n", "testnet"),
    ];
    for (what, yaml, named) in cases {
        let path = dir.path().join("bad.scenario.yaml");
        std::fs::write(&path, yaml).unwrap();
        let (ok, said) = check_jsonschema(&["--schemafile", &schema, path.to_str().unwrap()]);
        assert!(!ok, "{what}: the schema accepted it");
        assert!(said.contains(named), "{what}: {said}");
        let loaded = testnet::scenario::Scenario::load(&path);
        assert!(loaded.is_err(), "{what}: the loader accepted it");
    }
    // Green twin: plain scalars where strings go, as the loader reads them.
    let path = dir.path().join("good.scenario.yaml");
    let good = "name: 42\ntestnet: { nodes: 4, seed: 7 }\nworkload: { tps: 1, duration: 5s }\n";
    std::fs::write(&path, good).unwrap();
    let (ok, said) = check_jsonschema(&["--schemafile", &schema, path.to_str().unwrap()]);
    assert!(ok, "the schema refuses what the loader accepts: {said}");
    testnet::scenario::Scenario::load(&path).expect("the loader accepts it");
}

#[test]
fn the_example_workflow_is_a_valid_github_workflow() {
    let file = root().join("docs/ci/github-actions.yml");
    let (ok, said) = check_jsonschema(&[
        "--builtin-schema",
        "vendor.github-workflows",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{said}");
    let text = std::fs::read_to_string(&file).unwrap();
    for step in [
        "testnet run",
        "upload-artifact",
        "junit.xml",
        "testnet down --all",
        "if: always()",
    ] {
        assert!(text.contains(step), "the workflow has no `{step}`");
    }
    // Red twin: a job without `runs-on` is refused by the same schema.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, text.replace("    runs-on: ubuntu-latest\n", "")).unwrap();
    let (ok, said) = check_jsonschema(&[
        "--builtin-schema",
        "vendor.github-workflows",
        bad.to_str().unwrap(),
    ]);
    assert!(!ok && said.contains("runs-on"), "{said}");
}

#[test]
fn completions_are_scripts_the_shells_read() {
    for (shell, check) in [("bash", "bash"), ("zsh", "zsh"), ("fish", "fish")] {
        let out = testnet(&["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", text(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["partition", "jitter-ms", "completions"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
        if shell != "bash" && Command::new(check).arg("--version").output().is_err() {
            continue; // only bash is always installed; the others are checked when present
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("testnet.completion");
        std::fs::write(&path, &script).unwrap();
        let syntax = Command::new(check).arg("-n").arg(&path).output().unwrap();
        assert!(syntax.status.success(), "{shell} -n: {}", text(&syntax));
    }
}

#[test]
fn testnet_name_names_the_testnet() {
    let out = testnet(&["status"])
        .env("TESTNET_NAME", "Not A Name")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("\"Not A Name\" must be"),
        "{}",
        text(&out)
    );
}

/// `testnet ARGS` with the state dir `state`.
async fn run_at(state: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = testnet(args);
    cmd.env("TESTNET_STATE_DIR", state);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Polls `testnet status --json` until every node has `peers` peers.
async fn wait_for_mesh(state: &Path, name: &str, nodes: usize, peers: u64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = run_at(state, &["status", "--name", name, "--json"]).await;
        let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let meshed = listed.len() == nodes && listed.iter().all(|n| n["peers"] == peers);
        if meshed {
            return listed;
        }
        assert!(
            Instant::now() < deadline,
            "no mesh of {nodes}: {}",
            text(&out)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `docker-compose -f FILE ARGS` (Debian's), else `docker compose`.
fn compose(file: &Path, args: &[&str]) -> std::process::Output {
    let v1 = Command::new("docker-compose").arg("version").output();
    let mut cmd = match v1.is_ok_and(|o| o.status.success()) {
        true => Command::new("docker-compose"),
        false => {
            let mut c = Command::new("docker");
            c.arg("compose");
            c
        }
    };
    cmd.arg("-f").arg(file).args(args).output().expect(
        "docker-compose or the compose plugin is installed (Debian's docker-compose; .ci/setup does)",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_compose_file_runs_and_testnet_drives_it() {
    let image = image().await;
    let name = "e2e-compose";
    let _guard = Guard(name);
    let out = run(&["up", "--name", name, "--nodes", "4", "--image", &image]).await;
    assert!(out.status.success(), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    let out = run(&["export", "compose", "--name", name, file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out));
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(
        !written.contains("\nversion:"),
        "obsolete version key: {written}"
    );
    down_leaves_nothing(name).await;

    let config = compose(&file, &["config"]);
    assert!(
        config.status.success(),
        "docker-compose config: {}",
        text(&config)
    );
    let up = compose(&file, &["up", "-d"]);
    assert!(up.status.success(), "docker-compose up: {}", text(&up));
    // `testnet` drives it from the state the export wrote beside the file.
    let state = dir.path().join("testnet-state");
    let nodes = wait_for_mesh(&state, name, 4, 3).await;
    let ip_of = |node: &str| {
        nodes.iter().find(|n| n["node"] == node).unwrap()["ip"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // The agents came with it: chaos works, and `show --json` prints JSON only.
    let out = run_at(
        &state,
        &["chaos", "--name", name, "partition", "n0,n1", "n2,n3"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let out = run_at(&state, &["chaos", "--name", name, "show", "--json"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let shown: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON only ({e}): {}", text(&out)));
    let n0 = shown.iter().find(|s| s["node"] == "n0").unwrap();
    assert!(
        n0["state"]["drop_to"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ip| *ip == ip_of("n2")),
        "{n0}"
    );
    let table = run_at(&state, &["chaos", "--name", name, "show"]).await;
    let rows = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(rows.starts_with("NODE") && rows.contains("n2,n3"), "{rows}");
    let out = run_at(&state, &["chaos", "--name", name, "heal"]).await;
    assert!(out.status.success(), "{}", text(&out));
    wait_for_mesh(&state, name, 4, 3).await;

    // The checkers read it like a testnet `up` made.
    let out = run_at(&state, &["check", "--name", name, "--json"]).await;
    let verdicts: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON only ({e}): {}", text(&out)));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(verdicts.len() >= 4, "{verdicts:?}");

    // Labelled as ours: `testnet down` removes what docker-compose made.
    let out = run_at(&state, &["down", "--name", name]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(leftovers(name).await, Vec::<String>::new());
    let _ = compose(&file, &["down", "-v"]);
}
