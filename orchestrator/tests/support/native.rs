//! Real `testnet-node` processes on 127.0.0.1: genesis through the node's CLI, one
//! process per validator, observed only through their HTTP APIs. Every child is
//! killed when the `NativeNet` is dropped, so a failing test leaves no process
//! behind. The node binary is built once per test process ([`node_bin`]).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use testnet_node::api::Status;

/// The `testnet-node` binary, built by cargo on first use (it is another package's
/// binary, so `CARGO_BIN_EXE_*` does not name it). Cargo says where it put it, so
/// `CARGO_TARGET_DIR` and the workspace's target dir are both honoured.
pub fn node_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "-p", "testnet-node", "--bin", "testnet-node"])
            .arg("--message-format=json-render-diagnostics")
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        let out = cargo.output().expect("run cargo build for testnet-node");
        assert!(
            out.status.success(),
            "cargo build -p testnet-node failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "testnet-node")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no testnet-node executable")
    })
}

pub struct NativeNet {
    pub bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub n: usize,
    pub p2p_base: u16,
    pub http_base: u16,
    pub children: Vec<Option<Child>>,
    client: reqwest::Client,
}

/// A base port with `count` consecutive free ports on 127.0.0.1, below the
/// kernel's ephemeral range: a port in that range that is free when probed can
/// be taken by any outgoing connection before the node binds it (seen in CI:
/// "Address already in use" on one of eight nodes).
fn free_port_block(count: u16) -> u16 {
    let ephemeral_start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768);
    let span = ephemeral_start.saturating_sub(10_000 + count).max(1);
    for _ in 0..200 {
        let base = 10_000 + (rand::random::<u16>() % span);
        let all_free = (base..base + count).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no block of {count} free ports found on 127.0.0.1");
}

impl NativeNet {
    /// Writes a genesis for `n` validators on consecutive free ports.
    pub fn genesis(bin: &Path, n: usize) -> NativeNet {
        let base = free_port_block(2 * n as u16);
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(bin)
            .args([
                "genesis",
                "--validators",
                &n.to_string(),
                "--host",
                "127.0.0.1",
            ])
            .args(["--p2p-port", &base.to_string(), "--out"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "genesis failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        NativeNet {
            bin: bin.into(),
            dir,
            n,
            p2p_base: base,
            http_base: base + n as u16,
            children: (0..n).map(|_| None).collect(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        }
    }

    pub fn http(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http_base + i as u16))
    }

    /// The command line that runs validator `i`.
    pub fn command(&self, i: usize) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run")
            .arg("--genesis")
            .arg(d.join("genesis.json"))
            .arg("--key")
            .arg(d.join(format!("n{i}.key")))
            .arg("--data-dir")
            .arg(d.join(format!("data-n{i}")))
            .args([
                "--listen",
                &format!("127.0.0.1:{}", self.p2p_base + i as u16),
            ])
            .args(["--http", &self.http(i).to_string()])
            .env(
                "RUST_LOG",
                std::env::var("NODE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join(format!("n{i}.log"))).unwrap());
        cmd
    }

    /// Starts every validator back to back (no wait between them).
    pub fn spawn_all(&mut self) {
        let cmds: Vec<Command> = (0..self.n).map(|i| self.command(i)).collect();
        for (i, mut cmd) in cmds.into_iter().enumerate() {
            self.children[i] = Some(cmd.spawn().expect("spawn testnet-node"));
        }
    }

    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        i: usize,
        path: &str,
    ) -> Option<T> {
        let url = format!("http://{}{}", self.http(i), path);
        self.client.get(url).send().await.ok()?.json().await.ok()
    }

    pub async fn status(&self, i: usize) -> Option<Status> {
        self.get_json(i, "/status").await
    }

    /// Waits until every node reports n-1 peers; returns the time since `since`.
    pub async fn wait_full_mesh(&self, since: Instant, deadline: Duration) -> Duration {
        loop {
            let mut done = 0;
            for i in 0..self.n {
                if self.status(i).await.is_some_and(|s| s.peers == self.n - 1) {
                    done += 1;
                }
            }
            if done == self.n {
                return since.elapsed();
            }
            if since.elapsed() > deadline {
                panic!(
                    "{done}/{} nodes reached a full mesh within {deadline:?}; logs in {}",
                    self.n,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for i in 0..self.n {
            let log = std::fs::read_to_string(self.dir.path().join(format!("n{i}.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            out.push_str(&format!(
                "\n--- n{i}:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        out
    }

    pub fn pid(&self, i: usize) -> u32 {
        self.children[i].as_ref().unwrap().id()
    }

    /// Sends SIGTERM to node `i`.
    pub fn terminate(&self, i: usize) {
        if let Some(c) = &self.children[i] {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
        }
    }

    /// Waits for node `i` to exit; `None` if it is still running after `deadline`.
    pub async fn wait_exit(&mut self, i: usize, deadline: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            let child = self.children[i].as_mut()?;
            if let Some(status) = child.try_wait().unwrap() {
                self.children[i] = None;
                return Some(status);
            }
            if start.elapsed() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM to all, then waits for each; returns the slowest exit time.
    pub async fn stop_all(&mut self) -> Duration {
        let start = Instant::now();
        for i in 0..self.n {
            self.terminate(i);
        }
        for i in 0..self.n {
            let status = self.wait_exit(i, Duration::from_secs(10)).await;
            let status =
                status.unwrap_or_else(|| panic!("n{i} did not exit within 10 s of SIGTERM"));
            assert!(
                status.success(),
                "n{i} exited with {status}; logs: {}",
                self.logs()
            );
        }
        start.elapsed()
    }
}

impl Drop for NativeNet {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
