//! A testnet over two Docker engines of one Swarm (end to end): the host's
//! engine and a second `dockerd` of the test's own in a network namespace,
//! linked by a veth pair; the host's engine inits a Swarm, the second joins
//! it. `testnet run` brings up 8 nodes placed by zones (n0-n3 on host a,
//! n4-n7 on host b), copies the image to b, cuts host a from host b, heals,
//! restarts a container on b (it comes back on the overlay with its IP and
//! its zone's delays) and checks every invariant; `status`, `logs` and `chaos show` work across
//! the hosts; `down` leaves nothing on either engine. Both engines leave the
//! Swarm, and what the Swarm made on the host's engine goes, pass or fail.

#[path = "support/dockerd.rs"]
mod dockerd;
#[path = "support/e2e.rs"]
mod e2e;

use std::net::Ipv4Addr;
use std::time::Instant;

use bollard::models::{LocalNodeState, SwarmInitRequest, SwarmJoinRequest};
use bollard::query_parameters::LeaveSwarmOptions;
use bollard::Docker;
use dockerd::{storage_driver, Daemon, Link};
use e2e::*;
use serde_json::Value;

/// The Swarm of the two engines; both leave it when dropped, and the host's
/// engine loses the `docker_gwbridge` network the Swarm made (if it made it).
struct Swarm {
    host: Docker,
    b: Docker,
    gwbridge_was_there: bool,
    /// The kernel's neighbour-table limits before the Swarm: joining one,
    /// dockerd raises them (gc_thresh1..3 to 8192, 49152, 65536); restored.
    neighbour_table: Vec<(String, String)>,
}

const GC: [&str; 3] = ["gc_thresh1", "gc_thresh2", "gc_thresh3"];

fn gc_path(k: &str) -> String {
    format!("/proc/sys/net/ipv4/neigh/default/{k}")
}

impl Swarm {
    async fn form(host: Docker, b: Docker, link: &Link) -> Swarm {
        let gwbridge_was_there = host.inspect_network("docker_gwbridge", None).await.is_ok();
        let neighbour_table = GC
            .iter()
            .map(|k| (gc_path(k), std::fs::read_to_string(gc_path(k)).unwrap()))
            .collect();
        let swarm = Swarm {
            host,
            b,
            gwbridge_was_there,
            neighbour_table,
        };
        let a = link.host_ip.to_string();
        swarm
            .host
            .init_swarm(SwarmInitRequest {
                listen_addr: Some(format!("{a}:2377")),
                advertise_addr: Some(a.clone()),
                // Its ingress network off the testnets' 10.77.0.0/16.
                default_addr_pool: Some(vec!["10.215.0.0/16".into()]),
                subnet_size: Some(24),
                ..Default::default()
            })
            .await
            .expect("swarm init on the host's engine");
        let token = swarm
            .host
            .inspect_swarm()
            .await
            .unwrap()
            .join_tokens
            .and_then(|t| t.worker)
            .expect("a worker join token");
        let ns = link.ns_ip.to_string();
        swarm
            .b
            .join_swarm(SwarmJoinRequest {
                listen_addr: Some(format!("{ns}:2377")),
                advertise_addr: Some(ns),
                remote_addrs: Some(vec![format!("{a}:2377")]),
                join_token: Some(token),
                ..Default::default()
            })
            .await
            .expect("the second engine joins the swarm");
        swarm
    }

    async fn leave(&self) {
        let force = Some(LeaveSwarmOptions { force: true });
        let _ = self.b.leave_swarm(force.clone()).await;
        let _ = self.host.leave_swarm(force).await;
        if !self.gwbridge_was_there {
            // Containers of the Swarm's bridge go first with their networks.
            let _ = self.host.remove_network("docker_gwbridge").await;
        }
        for (path, value) in &self.neighbour_table {
            let _ = std::fs::write(path, value.trim());
        }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(self.leave());
            });
        });
    }
}

/// Why a second `dockerd` cannot run here, if it cannot: it needs root (a
/// network namespace, a veth pair, its own cgroups) and the binaries.
fn cannot_start_a_second_daemon() -> Option<String> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("a second dockerd needs root (network namespace, veth, cgroups)".into());
    }
    for bin in ["dockerd", "nsenter", "ip"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()));
        if !found {
            return Some(format!("{bin} is not installed"));
        }
    }
    None
}

/// The host engine's place in a swarm (`inactive` outside one).
async fn swarm_state(docker: &Docker) -> Option<LocalNodeState> {
    docker.info().await.ok()?.swarm?.local_node_state
}

/// The testnet: 8 nodes, n0-n3 on host a, n4-n7 on host b, 5 ms between.
fn testnet_file(host_engine: &str, b: &Daemon, link: &Link) -> String {
    format!(
        r#"nodes: 8
hosts:
  - {{ name: a, engine: "{host_engine}" }}
  - {{ name: b, engine: "{}", address: "{}" }}
placement: zones
zones:
  west: {{ host: a, nodes: [n0, n1, n2, n3] }}
  east: {{ host: b, nodes: [n4, n5, n6, n7] }}
latency: {{ west: {{ east: 5 }} }}
"#,
        b.host(),
        link.ns_ip
    )
}

fn scenario(testnet: &str) -> String {
    let indented: String = testnet.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        r#"name: multihost
description: 8 nodes over two engines of one Swarm; host a cut from host b, then healed
seed: 8
testnet:
{indented}workload: {{ tps: 12, duration: 30s, double_spend: 0.05 }}
timeline:
  - at: 6s
    for: 10s
    fault: {{ partition: [[n0, n1, n2, n3], [n4, n5, n6, n7]] }}
  - at: 20s
    fault: {{ restart_container: n6 }}
invariants:
  handshake_success: {{ min_rate: 0.95 }}
  connectivity: {{ within: 20s }}
  utxo_agreement: {{}}
  finality: {{ within: 15s }}
  safety: {{}}
  processes: {{}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_testnet_spans_two_engines_of_one_swarm_survives_a_cut_between_them_and_leaves_nothing() {
    if let Some(why) = cannot_start_a_second_daemon() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test: {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let host_docker = Docker::connect_with_local_defaults().unwrap();
    match swarm_state(&host_docker).await {
        Some(LocalNodeState::INACTIVE) | None => {}
        Some(state) => {
            // Never take over a swarm of the user's.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI's Docker engine is in a swarm already ({state})"
            );
            eprintln!("skipped: this host's Docker engine is in a swarm already ({state}); the test makes its own");
            return;
        }
    }
    let image = image().await;
    let pid = std::process::id();
    let octet = (pid % 250) as u8;
    let link = Link {
        host_if: format!("tnmh{}", pid % 100_000),
        host_ip: Ipv4Addr::new(10, 213, octet, 1),
        ns_ip: Ipv4Addr::new(10, 213, octet, 2),
    };
    let dir = tempfile::Builder::new()
        .prefix("tn-d2-")
        .tempdir_in("/tmp")
        .unwrap();
    let started = Instant::now();
    let b = Daemon::start_linked(dir.path(), &storage_driver().await, Some(link)).await;
    let link = b.link.as_ref().unwrap();
    let host_engine =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let testnet_yaml = testnet_file(&host_engine, &b, link);
    let tfile = dir.path().join("multihost.yaml");
    std::fs::write(&tfile, &testnet_yaml).unwrap();
    // Not yet one Swarm: `up` refuses, says why and how, creates nothing.
    let refused = run(&[
        "up",
        tfile.to_str().unwrap(),
        "--name",
        "e2e-mh-no-swarm",
        "--image",
        &image,
    ])
    .await;
    let why = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{why}");
    assert!(
        why.contains("do not form one Docker Swarm: host a is not in a swarm (state inactive)")
            && why.contains("swarm init")
            && why.contains("swarm join"),
        "{why}"
    );
    assert_eq!(leftovers("e2e-mh-no-swarm").await, Vec::<String>::new());
    let swarm = Swarm::form(host_docker.clone(), b.client(), link).await;
    eprintln!(
        "second engine up and in the swarm after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let file = dir.path().join("multihost.scenario.yaml");
    std::fs::write(&file, scenario(&testnet_yaml)).unwrap();
    let name = "e2e-multihost";
    let _guard = Guard(name);
    let report = dir.path().join("report");
    let out = run_kept(&file, name, &image, &report).await;
    eprintln!("run: exit {:?}\n{}", out.status.code(), text(&out));
    let said = text(&out);
    let verdicts = std::fs::read(report.join("report.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let checked = check_the_running_testnet(name, &b).await;
    down_on_both_hosts_leaves_nothing(name, &b).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "the run failed:\n{said}\n{verdicts:?}"
    );
    assert!(
        said.contains(&format!("image {image} copied to host b")),
        "the image was not copied to host b:\n{said}"
    );
    checked.unwrap_or_else(|e| panic!("{e}"));
    monitored_across_hosts(&image, &tfile, &b).await;
    swarm.leave().await;
    assert_eq!(
        swarm_state(&host_docker).await,
        Some(LocalNodeState::INACTIVE),
        "the host's engine is still in the swarm"
    );
    for (path, value) in &swarm.neighbour_table {
        let now = std::fs::read_to_string(path).unwrap();
        assert_eq!(now.trim(), value.trim(), "{path} was not restored");
    }
    drop(swarm);
    drop(b);
}

/// What the kept testnet shows across hosts: each node on its zone's host,
/// running, with a full mesh; a node on b has logs; the cut is gone.
async fn check_the_running_testnet(name: &str, b: &Daemon) -> Result<(), String> {
    let st = run(&["status", "--name", name, "--json"]).await;
    let nodes: Vec<Value> = serde_json::from_slice(&st.stdout)
        .map_err(|e| format!("status --json: {e}: {}", text(&st)))?;
    if nodes.len() != 8 {
        return Err(format!("status shows {} nodes: {}", nodes.len(), text(&st)));
    }
    for n in &nodes {
        let i: usize = n["node"].as_str().unwrap_or("n?")[1..]
            .parse()
            .unwrap_or(99);
        let want = if i < 4 { "a" } else { "b" };
        let url = n["http_url"].as_str().unwrap_or_default();
        let ok = n["host"] == want
            && n["state"] == "running"
            && n["peers"] == 7
            && (i >= 4) == url.contains(&b.link.as_ref().unwrap().ns_ip.to_string());
        if !ok {
            return Err(format!(
                "node {i} should be on host {want}, running with 7 peers: {n}"
            ));
        }
    }
    let table = run(&["status", "--name", name]).await;
    let rows = String::from_utf8_lossy(&table.stdout).into_owned();
    if !rows.lines().next().is_some_and(|h| h.contains("HOST")) {
        return Err(format!("the status table has no HOST column:\n{rows}"));
    }
    let logs = run(&["logs", "--name", name, "n6", "--tail", "5"]).await;
    if !logs.status.success() || logs.stdout.is_empty() {
        return Err(format!("logs of n6 (on host b): {}", text(&logs)));
    }
    // The heal took the cut away and kept the zones' latency baseline.
    for n in chaos_show(name).await {
        let len = |k: &str| n["state"][k].as_array().map_or(0, Vec::len);
        let delayed = n["state"]["delay_from"].as_object().map_or(0, |m| m.len());
        if len("drop_from") + len("drop_to") != 0 || delayed != 4 {
            return Err(format!(
                "after the heal, no cut and a 5 ms delay from the 4 nodes of the other host: {n}"
            ));
        }
    }
    Ok(())
}

/// `up --monitor` of the same testnet: Prometheus (on host a) scrapes every
/// node and agent of both hosts over the overlay; `check` passes; `down`
/// leaves nothing on either engine.
async fn monitored_across_hosts(image: &str, file: &std::path::Path, b: &Daemon) {
    let name = "e2e-multihost-mon";
    let _guard = Guard(name);
    let up = run(&[
        "up",
        file.to_str().unwrap(),
        "--name",
        name,
        "--image",
        image,
        "--monitor",
    ])
    .await;
    assert!(up.status.success(), "up --monitor: {}", text(&up));
    let prom = prometheus_url(&String::from_utf8_lossy(&up.stdout));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let v: Value = http
            .get(format!("{prom}/api/v1/query"))
            .query(&[("query", "count(up == 1)")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["data"]["result"][0]["value"][1] == "16" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "16 targets (8 nodes, 8 agents) up: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let check = run(&["check", "--name", name]).await;
    assert!(check.status.success(), "check: {}", text(&check));
    down_on_both_hosts_leaves_nothing(name, b).await;
}

/// `down` succeeds and leaves nothing of testnet `name` on host a or host b.
async fn down_on_both_hosts_leaves_nothing(name: &str, b: &Daemon) {
    let down = run(&["down", "--name", name]).await;
    assert!(down.status.success(), "down: {}", text(&down));
    assert_eq!(
        leftovers(name).await,
        Vec::<String>::new(),
        "left on host a"
    );
    assert_eq!(
        b.leftovers(name).await,
        Vec::<String>::new(),
        "left on host b"
    );
}
