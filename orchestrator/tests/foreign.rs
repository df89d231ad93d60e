//! Docker end to end for node images that are not ours: a real etcd cluster
//! (Debian's etcd-server, assembled offline where no registry answers) run
//! through holder containers, every fault class on it, its green scenario and
//! its red twin; and our own node through the same holder path.

#[path = "support/e2e.rs"]
mod e2e;

use e2e::*;
use serde_json::Value;

fn verdict<'a>(report: &'a Value, prefix: &str) -> &'a Value {
    report["verdicts"]
        .as_array()
        .and_then(|v| {
            v.iter()
                .find(|x| x["invariant"].as_str().unwrap_or("").starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no verdict {prefix}: {report}"))
}

/// Asks Prometheus at `prom` until `query` returns `want` series (30 s).
async fn series(prom: &str, query: &str, want: usize) -> Vec<Value> {
    let start = std::time::Instant::now();
    loop {
        let v: Value = reqwest::Client::new()
            .get(format!("{prom}/api/v1/query"))
            .query(&[("query", query)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
        if result.len() == want || start.elapsed().as_secs() > 30 {
            return result;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// `testnets/etcd.yaml` comes up through holders with monitoring, answers on
/// its published API, is scraped by Prometheus under our labels (renamed by
/// its `metrics:` map), takes a kill and a start, and goes leaving nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_comes_up_through_holders_and_takes_process_faults() {
    let image = image().await;
    let name = "e2e-etcd";
    let _guard = Guard(name);
    let file = format!("{}/../testnets/etcd.yaml", env!("CARGO_MANIFEST_DIR"));
    let out = run(&["up", &file, "--name", name, "--image", &image, "--monitor"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let prom = prometheus_url(&stdout);
    let leaders = series(
        &prom,
        "etcd_server_has_leader{testnet=\"e2e-etcd\"} == 1",
        3,
    )
    .await;
    assert_eq!(
        leaders.len(),
        3,
        "every member scraped with a leader: {leaders:?}"
    );
    assert_eq!(leaders[0]["metric"]["job"], "node");
    let peers = series(&prom, "sum by (node) (testnet_peers)", 3).await;
    assert_eq!(peers.len(), 3, "etcd's peers under our name: {peers:?}");
    for p in &peers {
        assert_eq!(p["value"][1], "2", "{p}");
    }
    let status: Vec<Value> =
        serde_json::from_slice(&run(&["status", "--name", name, "--json"]).await.stdout).unwrap();
    assert_eq!(status.len(), 3, "{status:?}");
    for n in &status {
        assert_eq!(n["state"], "running", "{n}");
        let holder = n["holder"].as_str().unwrap_or_default();
        assert!(holder.ends_with("-holder"), "{n}");
        let url = n["http_url"].as_str().unwrap();
        let health = reqwest::get(format!("{url}/health")).await.unwrap();
        assert!(health.status().is_success(), "{n}");
    }
    let kill = run(&["chaos", "kill", "n1", "--name", name]).await;
    assert!(
        text(&kill).contains("\"state\":\"stopped\""),
        "{}",
        text(&kill)
    );
    let start = run(&["chaos", "start", "n1", "--name", name]).await;
    let said = text(&start);
    assert!(
        said.contains("\"state\":\"running\"") && said.contains("\"restarts\":1"),
        "the agent saw a new main process: {said}"
    );
    down_leaves_nothing(name).await;
}

/// The etcd scenarios: the leader cut off (green, exit 0), every member cut
/// off with "a leader on every node" asserted (red, exit 1, that assertion
/// named), and delay, loss, kill, pause, restart and container restart under
/// a put/get workload (green, each fault seen to bite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_scenarios_green_and_red() {
    let image = image().await;
    let _g = [
        Guard("e2e-etcd-partition"),
        Guard("e2e-etcd-minority"),
        Guard("e2e-etcd-faults"),
    ];
    let (code, report, _) = run_scenario(&image, "etcd-partition.scenario.yaml").await;
    assert_eq!(code, Some(0), "{}", report["verdicts"]);
    let elected = verdict(&report, "metric etcd_server_leader_changes_seen_total");
    assert!(
        elected["summary"].as_str().unwrap().contains("isolate:n"),
        "{elected}"
    );
    assert_eq!(verdict(&report, "workload_ok")["passed"], true);

    let (code, report, dir) = run_scenario(&image, "etcd-minority.scenario.yaml").await;
    assert_eq!(
        code,
        Some(1),
        "the red twin must fail: {}",
        report["verdicts"]
    );
    let leader = verdict(&report, "metric etcd_server_has_leader");
    assert_eq!(leader["passed"], false, "{leader}");
    let why = leader["summary"].as_str().unwrap();
    assert!(
        why.contains("of 3 hold") && why.contains("timeline[0]"),
        "{why}"
    );
    assert!(
        dir.join("debug/n0.log").exists(),
        "a debug bundle for the red run"
    );

    let (code, report, _) = run_scenario(&image, "etcd-faults.scenario.yaml").await;
    assert_eq!(code, Some(0), "{}", report["verdicts"]);
    let bit = verdict(&report, "faults_took_effect");
    assert!(bit["summary"].as_str().unwrap().contains("(6)"), "{bit}");
    let labels: Vec<String> = report["observations"]["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["label"].as_str().unwrap_or("").to_owned())
        .collect();
    for what in [
        "delay",
        "loss",
        "kill",
        "pause",
        "restart n2",
        "restart container",
    ] {
        assert!(
            labels.iter().any(|l| l.contains(what)),
            "{what} missing: {labels:?}"
        );
    }
}

/// Our own node through the holder path (`holder: true`): the baseline and
/// the partition-heal scenarios pass with every built-in invariant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_node_passes_through_the_holder_path() {
    let image = image().await;
    for file in ["baseline.scenario.yaml", "partition-heal.scenario.yaml"] {
        let path = format!("{}/../testnets/{file}", env!("CARGO_MANIFEST_DIR"));
        let mut s = testnet::scenario::Scenario::load(std::path::Path::new(&path)).unwrap();
        s.testnet.holder = true;
        s.name = format!("{}-held", s.name);
        let dir = tempfile::tempdir().unwrap();
        let held = dir.path().join(format!("{}.scenario.yaml", s.name));
        std::fs::write(&held, serde_norway::to_string(&s).unwrap()).unwrap();
        let _guard = Guard(Box::leak(format!("e2e-{}", s.name).into_boxed_str()));
        let (code, report, _) = run_scenario_at(&image, &held).await;
        assert_eq!(code, Some(0), "{file} held: {}", report["verdicts"]);
        let checked = report["verdicts"].as_array().unwrap().len();
        assert!(
            checked >= 7,
            "every built-in invariant ran: {}",
            report["verdicts"]
        );
    }
}

/// How many seconds the clock of the server at `url` is ahead of this
/// machine's, from its `Date` header (1 s resolution).
async fn ahead(url: &str) -> i64 {
    let res = reqwest::get(url).await.unwrap();
    let date = res.headers()["date"].to_str().unwrap().to_owned();
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let theirs = secs(httpdate::parse_http_date(&date).unwrap());
    // The header drops the fraction: the server's time was in [theirs, theirs + 1).
    (theirs + 0.5 - secs(std::time::SystemTime::now())).round() as i64
}

/// Waits up to 10 s for the server at `url` to be `want` seconds ahead
/// (give or take `slack`); returns the last reading.
async fn until_ahead(url: &str, want: i64, slack: i64) -> i64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = ahead(url).await;
        if (got - want).abs() <= slack || std::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// A foreign testnet file of `nodes` nodes, with `faketime: true`.
fn faketime_testnet(dir: &std::path::Path, name: &str, node: &str) -> String {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!("name: {name}\nnodes: 2\nnode:\n{node}  faketime: true\n"),
    )
    .unwrap();
    path.display().to_string()
}

/// `node: { faketime: true }`: Python's http.server (dynamically linked
/// against glibc) tells the time libfaketime gives it in its Date header:
/// 30 s ahead on the skewed node only, drifting at 500,000 ppm, and real
/// time again after; etcd (a Go binary) is refused with that reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_clock_moves_through_libfaketime_where_it_can() {
    let image = image().await;
    let dir = tempfile::tempdir().unwrap();
    let name = "e2e-faketime";
    let _guard = Guard(name);
    let node = "  packages: [python3]\n  command: [python3, -m, http.server, \"8000\"]\n  \
                ports: { p2p: 8000, api: 8000 }\n";
    let file = faketime_testnet(dir.path(), name, node);
    let out = run(&["up", &file, "--name", name, "--image", &image]).await;
    assert!(out.status.success(), "{}", text(&out));
    let up = std::time::Instant::now();
    let status: Vec<Value> =
        serde_json::from_slice(&run(&["status", "--name", name, "--json"]).await.stdout).unwrap();
    let url = |node: &str| {
        let n = status.iter().find(|n| n["node"] == node).unwrap();
        format!("{}/", n["http_url"].as_str().unwrap())
    };
    let (n0, n1) = (url("n0"), url("n1"));
    let start = until_ahead(&n1, 0, 0).await;
    assert!(
        start.abs() <= 1,
        "{start} s ahead at the start, not real time"
    );
    let skew = run(&[
        "chaos", "clock", "--nodes", "n1", "--offset", "30s", "--name", name,
    ])
    .await;
    assert!(skew.status.success(), "{}", text(&skew));
    assert!(
        text(&skew).contains("in place (read back)"),
        "{}",
        text(&skew)
    );
    let got = until_ahead(&n1, 30, 1).await;
    assert!((29..=31).contains(&got), "n1 is {got} s ahead, not 30");
    assert!(ahead(&n0).await.abs() <= 1, "n0 keeps real time");
    // At 1.5x real time from when it is set: libfaketime applies a rate from
    // the process's start, so without the spec taking that back the clock
    // would jump by half the process's age (3 s or more at 6 s).
    let age = std::time::Duration::from_secs(6);
    tokio::time::sleep(age.saturating_sub(up.elapsed())).await;
    let drift = [
        "chaos",
        "clock",
        "--nodes",
        "n1",
        "--offset",
        "0s",
        "--drift-ppm",
        "500000",
    ];
    let set = run(&[&drift[..], &["--name", name]].concat()).await;
    let at = std::time::Instant::now();
    assert!(set.status.success(), "{}", text(&set));
    let got = until_ahead(&n1, 0, 1).await;
    assert!(got.abs() <= 1, "n1 jumped {got} s when the drift was set");
    let four = std::time::Duration::from_secs(4);
    tokio::time::sleep(four.saturating_sub(at.elapsed())).await;
    let got = ahead(&n1).await;
    assert!(
        (1..=3).contains(&got),
        "n1 is {got} s ahead after 4 s at 1.5x"
    );
    let real = [
        "chaos", "clock", "--nodes", "n1", "--offset", "0s", "--name", name,
    ];
    let back = run(&real).await;
    assert!(back.status.success(), "{}", text(&back));
    let again = until_ahead(&n1, 0, 0).await;
    assert!(
        again.abs() <= 1,
        "{again} s ahead after the undo, not real time"
    );
    down_leaves_nothing(name).await;

    // etcd is linked dynamically (libfaketime loads) but is a Go binary.
    let name = "e2e-faketime-go";
    let _guard = Guard(name);
    let node = r#"  packages: [etcd-server, etcd-client]
  command: [etcd, "--name={name}", --data-dir=/tmp/etcd,
    "--listen-peer-urls=http://{ip}:2380", "--initial-advertise-peer-urls=http://{ip}:2380",
    --listen-client-urls=http://0.0.0.0:2379, "--advertise-client-urls=http://{ip}:2379",
    "--initial-cluster={peers}", --initial-cluster-state=new]
  peer_format: "{name}=http://{ip}:2380"
  ports: { p2p: 2380, api: 2379 }
"#;
    let file = faketime_testnet(dir.path(), name, node);
    let out = run(&["up", &file, "--name", name, "--image", &image]).await;
    assert!(out.status.success(), "{}", text(&out));
    let refused = run(&[
        "chaos", "clock", "--nodes", "n0", "--offset", "30s", "--name", name,
    ])
    .await;
    assert!(!refused.status.success());
    let why = text(&refused);
    assert!(why.contains("a Go binary") && why.contains("etcd"), "{why}");
    down_leaves_nothing(name).await;
}
