//! A Docker daemon that dies mid-run (end to end): a second `dockerd` of the
//! test's own, in a network namespace the test makes (so its bridges and
//! iptables rules never meet the host's), with its own data root, exec root
//! and socket; a testnet run on it (from inside the namespace, where its
//! ports are published), the daemon SIGKILLed under the run. The run names the
//! daemon and exits 2; once the daemon is back, `down` removes everything.
//! The daemon, what it left and the namespace are removed at the end.

#[path = "support/e2e.rs"]
mod e2e;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::Docker;
use e2e::*;

/// A private `dockerd`, stopped (SIGTERM, then waited for) when dropped.
struct Daemon {
    dir: PathBuf,
    netns: String,
    child: Option<Child>,
    driver: String,
}

impl Daemon {
    /// Starts one under `dir` with the main daemon's storage driver.
    async fn start(dir: &Path, driver: &str) -> Daemon {
        let netns = format!("tn-d2-{}", std::process::id());
        for args in [
            vec!["netns", "add", &netns],
            vec!["netns", "exec", &netns, "ip", "link", "set", "lo", "up"],
        ] {
            let ok = Command::new("ip").args(&args).status().unwrap().success();
            assert!(ok, "ip {args:?}");
        }
        let mut d = Daemon {
            dir: dir.to_owned(),
            netns,
            child: None,
            driver: driver.to_owned(),
        };
        d.spawn().await;
        d
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.join("sock").display())
    }

    async fn spawn(&mut self) {
        let answered = self.try_spawn().await;
        assert!(
            answered,
            "the second dockerd did not answer within 60 s: {}",
            std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
        );
    }

    /// Starts the daemon; whether it answered within 60 s.
    async fn try_spawn(&mut self) -> bool {
        std::fs::create_dir_all(&self.dir).unwrap();
        let config = self.dir.join("daemon.json");
        std::fs::write(&config, "{}").unwrap();
        let log = std::fs::File::create(self.dir.join("dockerd.log")).unwrap();
        // nsenter enters only the network namespace (the daemon needs the
        // host's cgroup mounts) and execs dockerd: the child is the daemon.
        let child = Command::new("nsenter")
            .arg(self.netns_arg())
            .arg("dockerd")
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(self.dir.join("root"))
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.dir.join("pid"))
            .args(["-H", &self.host()])
            .args(["--storage-driver", &self.driver])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd runs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.answers().await {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        true
    }

    async fn answers(&self) -> bool {
        match self.connect() {
            Ok(d) => d.ping().await.is_ok(),
            Err(_) => false,
        }
    }

    fn connect(&self) -> Result<Docker, bollard::errors::Error> {
        Docker::connect_with_unix(
            self.dir.join("sock").to_str().unwrap(),
            10,
            bollard::API_DEFAULT_VERSION,
        )
    }

    fn client(&self) -> Docker {
        self.connect().expect("the second daemon's socket")
    }

    fn signal(&mut self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Waits for the daemon to exit (up to `within`).
    fn reap(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while let Some(c) = self.child.as_mut() {
            if c.try_wait().unwrap().is_some() || Instant::now() > deadline {
                self.child = None;
            } else {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The daemon's last log lines and what listens in its namespace.
    fn diagnostics(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let tail: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("level=error") || l.contains("proxy"))
            .take(15)
            .collect();
        let listening = Command::new("ip")
            .args(["netns", "exec", &self.netns, "ss", "-ltnp"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        format!(
            "dockerd.log (errors and proxy lines):\n{}\nlistening in {}:\n{listening}",
            tail.join("\n"),
            self.netns
        )
    }

    fn netns_arg(&self) -> String {
        format!("--net=/var/run/netns/{}", self.netns)
    }

    /// `testnet ARGS` against this daemon, from the host's network namespace
    /// (`image build` fetches Debian packages from there).
    fn testnet(&self, args: &[&str]) -> Command {
        let mut cmd = testnet(args);
        cmd.env("DOCKER_HOST", self.host());
        cmd
    }

    /// `testnet ARGS` against this daemon, inside its network namespace
    /// (where the nodes' ports are published on 127.0.0.1).
    fn testnet_inside(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(self.netns_arg())
            .arg(BIN)
            .args(args)
            .env("TESTNET_STATE_DIR", state_dir())
            .env("DOCKER_HOST", self.host());
        cmd
    }

    /// Containers and networks of testnet `name` on this daemon.
    async fn leftovers(&self, name: &str) -> Vec<String> {
        let docker = self.client();
        let filter = std::collections::HashMap::from([(
            "label".to_owned(),
            vec![format!("io.testnet.name={name}")],
        )]);
        let containers = docker
            .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                all: true,
                filters: Some(filter.clone()),
                ..Default::default()
            }))
            .await
            .unwrap();
        let networks = docker
            .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
                filters: Some(filter),
            }))
            .await
            .unwrap();
        let mut left: Vec<String> = containers
            .into_iter()
            .flat_map(|c| c.names.unwrap_or_default())
            .collect();
        left.extend(networks.into_iter().filter_map(|n| n.name));
        left
    }
}

impl Drop for Daemon {
    /// Stops the daemon; if it was killed, starts it again first so `down`
    /// can remove what a failed test left. Then whatever it left behind (the
    /// shims and fuse mounts of a killed daemon's containers) goes too.
    fn drop(&mut self) {
        if self.child.is_none() {
            // Drop may run inside the test's runtime: start it on a thread of its own.
            std::thread::scope(|s| {
                s.spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    if let Ok(rt) = runtime {
                        rt.block_on(self.try_spawn());
                    }
                });
            });
        }
        let _ = self.testnet_inside(&["down", "--all"]).output();
        self.signal(libc::SIGTERM);
        self.reap(Duration::from_secs(30));
        let dir = self.dir.to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        for m in mounts.lines().filter_map(|l| l.split(' ').nth(1)) {
            if m.starts_with(&dir) {
                let _ = Command::new("umount").args(["-l", m]).status();
            }
        }
        for pid in processes_mentioning(&dir) {
            // SAFETY: kill(2) on processes this test's daemon started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

/// Processes whose command line mentions `needle` (this test's directory), or
/// whose root is under it (the containers of a daemon that could not come back).
fn processes_mentioning(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle));
            let root = std::fs::read_link(format!("/proc/{pid}/root"))
                .is_ok_and(|r| r.starts_with(needle));
            cmdline || root
        })
        .collect()
}

fn host_has_docker0() -> bool {
    Path::new("/sys/class/net/docker0").exists()
}

/// The main daemon's storage driver (a second daemon on this host must use one
/// that works here too).
async fn storage_driver() -> String {
    let docker = Docker::connect_with_local_defaults().unwrap();
    docker
        .info()
        .await
        .unwrap()
        .driver
        .unwrap_or_else(|| "vfs".into())
}

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
