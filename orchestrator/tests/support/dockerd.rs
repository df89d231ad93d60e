//! A private `dockerd` of a test's own, in a network namespace the test makes
//! (so its bridges and iptables rules never meet the host's), with its own
//! data root, exec root, socket and cgroup parent; optionally linked to the
//! host's namespace by a veth pair (a second host of a Swarm).
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::Docker;

use super::e2e::{state_dir, testnet, BIN};

/// The veth pair between the host's namespace and the daemon's: host side,
/// its address, the daemon's side address (a /30).
pub struct Link {
    pub host_if: String,
    pub host_ip: Ipv4Addr,
    pub ns_ip: Ipv4Addr,
}

/// A private `dockerd`, stopped (SIGTERM, then waited for) when dropped.
pub struct Daemon {
    pub dir: PathBuf,
    pub netns: String,
    child: Option<Child>,
    driver: String,
    pub link: Option<Link>,
}

impl Daemon {
    /// Starts one under `dir` with the main daemon's storage driver.
    pub async fn start(dir: &Path, driver: &str) -> Daemon {
        Daemon::start_linked(dir, driver, None).await
    }

    /// Starts one, its namespace linked to the host's by `link` if given.
    pub async fn start_linked(dir: &Path, driver: &str, link: Option<Link>) -> Daemon {
        let netns = format!("tn-d2-{}", std::process::id());
        let mut d = Daemon {
            dir: dir.to_owned(),
            netns: netns.clone(),
            child: None,
            driver: driver.to_owned(),
            link,
        };
        let mut steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), netns.clone()],
            vec![
                "-n".into(),
                netns.clone(),
                "link".into(),
                "set".into(),
                "lo".into(),
                "up".into(),
            ],
        ];
        if let Some(l) = &d.link {
            let peer = format!("{}p", l.host_if);
            let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
            steps.extend([
                s(&[
                    "link", "add", &l.host_if, "type", "veth", "peer", "name", &peer,
                ]),
                s(&["link", "set", &peer, "netns", &netns]),
                s(&[
                    "addr",
                    "add",
                    &format!("{}/30", l.host_ip),
                    "dev",
                    &l.host_if,
                ]),
                s(&["link", "set", &l.host_if, "up"]),
                s(&[
                    "-n",
                    &netns,
                    "addr",
                    "add",
                    &format!("{}/30", l.ns_ip),
                    "dev",
                    &peer,
                ]),
                s(&["-n", &netns, "link", "set", &peer, "up"]),
            ]);
        }
        for args in steps {
            let ok = Command::new("ip").args(&args).status().unwrap().success();
            assert!(ok, "ip {args:?}");
        }
        d.spawn().await;
        d
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("sock").display())
    }

    pub async fn spawn(&mut self) {
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
        // Its own engine key (else both daemons read /etc/docker/key.json and
        // share an engine ID).
        let key = self.dir.join("key.json");
        let json = serde_json::json!({ "deprecated-key-path": key });
        std::fs::write(&config, json.to_string()).unwrap();
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
            .args(["--cgroup-parent", &format!("/{}", self.netns)])
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

    pub async fn answers(&self) -> bool {
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

    pub fn client(&self) -> Docker {
        self.connect().expect("the second daemon's socket")
    }

    pub fn signal(&mut self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Waits for the daemon to exit (up to `within`).
    pub fn reap(&mut self, within: Duration) {
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
    pub fn diagnostics(&self) -> String {
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
    pub fn testnet(&self, args: &[&str]) -> Command {
        let mut cmd = testnet(args);
        cmd.env("DOCKER_HOST", self.host());
        cmd
    }

    /// `testnet ARGS` against this daemon, inside its network namespace
    /// (where the nodes' ports are published on 127.0.0.1).
    pub fn testnet_inside(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(self.netns_arg())
            .arg(BIN)
            .args(args)
            .env("TESTNET_STATE_DIR", state_dir())
            .env("DOCKER_HOST", self.host());
        cmd
    }

    /// Containers and networks of testnet `name` on this daemon.
    pub async fn leftovers(&self, name: &str) -> Vec<String> {
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
        if let Some(l) = &self.link {
            let _ = Command::new("ip")
                .args(["link", "del", &l.host_if])
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        // The cgroup parent's directories, empty once the daemon is gone.
        for controller in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(controller.path().join(&self.netns));
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&self.netns));
    }
}

/// Processes whose command line mentions `needle` (this test's directory), or
/// whose root is under it (the containers of a daemon that could not come back).
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
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

pub fn host_has_docker0() -> bool {
    Path::new("/sys/class/net/docker0").exists()
}

/// The main daemon's storage driver (a second daemon on this host must use one
/// that works here too).
pub async fn storage_driver() -> String {
    let docker = Docker::connect_with_local_defaults().unwrap();
    docker
        .info()
        .await
        .unwrap()
        .driver
        .unwrap_or_else(|| "vfs".into())
}
