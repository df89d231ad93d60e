//! A Docker daemon that dies mid-run (end to end): a second `dockerd` of the
//! test's own, in a network namespace the test makes (so its bridges and
//! iptables rules never meet the host's), with its own data root, exec root
//! and socket; a testnet run on it (from inside the namespace, where its
//! ports are published), the daemon SIGKILLed under the run. The run names the
//! daemon and exits 2; once the daemon is back, `down` removes everything.
//! The daemon, what it left and the namespace are removed at the end.

#[path = "support/dockerd.rs"]
mod dockerd;
#[path = "support/e2e.rs"]
mod e2e;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use dockerd::{host_has_docker0, storage_driver, Daemon};
use e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_dies_mid_run_is_named_and_down_cleans_up_after() {
    // A daemon on the host's links could take the host's docker0 (one started
    // with `--bridge=none` deletes it); this one sees only its namespace's.
    let host_bridge = host_has_docker0();
    let dir = tempfile::Builder::new()
        .prefix("tn-d2-")
        .tempdir_in("/tmp")
        .unwrap();
    let mut daemon = Daemon::start(dir.path(), &storage_driver().await).await;
    let built = daemon.testnet(&["image", "build"]).output().unwrap();
    assert!(
        built.status.success(),
        "image build on the second daemon: {}",
        text(&built)
    );
    let image = String::from_utf8_lossy(&built.stdout).trim().to_owned();
    let name = "e2e-daemon-dies";
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testnets/baseline.scenario.yaml");
    let report = std::env::temp_dir().join("testnet-e2e-report-daemon-dies");
    let mut run = daemon
        .testnet_inside(&[
            "run",
            file.to_str().unwrap(),
            "--name",
            name,
            "--image",
            &image,
        ])
        .args(["--report", report.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the workload runs, kill the daemon.
    let mut stderr = BufReader::new(run.stderr.take().unwrap()).lines();
    let mut said = String::new();
    for line in stderr.by_ref().map_while(Result::ok) {
        said.push_str(&line);
        said.push('\n');
        if line.contains("] load:") {
            break;
        }
    }
    assert!(
        said.contains("load:"),
        "the run never started its workload:\n{said}\n{}",
        daemon.diagnostics()
    );
    daemon.signal(libc::SIGKILL);
    daemon.reap(Duration::from_secs(10));
    let killed = Instant::now();
    assert!(
        !daemon.answers().await,
        "the daemon still answers after SIGKILL"
    );
    let out = tokio::task::spawn_blocking(move || {
        let rest: Vec<String> = stderr.map_while(Result::ok).collect();
        (run.wait_with_output().unwrap(), rest.join("\n"))
    })
    .await
    .unwrap();
    let (out, rest) = out;
    said.push_str(&rest);
    eprintln!(
        "run ended {:.1}s after the daemon died:\n{said}",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("cannot reach the Docker daemon"), "{said}");
    assert!(
        killed.elapsed() < Duration::from_secs(30),
        "the run noticed late"
    );
    // The daemon comes back: `down` removes whatever the run could not.
    daemon.spawn().await;
    let down = daemon
        .testnet_inside(&["down", "--name", name])
        .output()
        .unwrap();
    assert!(down.status.success(), "{}", text(&down));
    assert_eq!(daemon.leftovers(name).await, Vec::<String>::new());
    drop(daemon);
    assert_eq!(
        host_has_docker0(),
        host_bridge,
        "the host's docker0 was touched"
    );
}
