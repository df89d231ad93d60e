//! What the Docker benchmarks share: the `testnet` binary, the kernel's
//! neighbour table raised for a run (and restored), and the engine's floor:
//! bare containers of the same image started and removed by the Docker CLI.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_testnet");
const GC: [&str; 3] = ["gc_thresh1", "gc_thresh2", "gc_thresh3"];

pub fn gc_path(k: &str) -> String {
    format!("/proc/sys/net/ipv4/neigh/default/{k}")
}

/// The neighbour-table limits as they were; restored on drop.
pub struct NeighbourTable(Vec<String>);

impl NeighbourTable {
    pub fn raise_to(t3: u64) -> NeighbourTable {
        let saved: Vec<String> = GC
            .iter()
            .map(|k| std::fs::read_to_string(gc_path(k)).unwrap_or_default())
            .collect();
        let now: u64 = saved[2].trim().parse().unwrap_or(0);
        if now < t3 {
            for (k, v) in GC.iter().zip([t3 / 4, t3 / 2, t3]) {
                std::fs::write(gc_path(k), v.to_string())
                    .unwrap_or_else(|e| panic!("cannot raise {k} (run as root): {e}"));
            }
            eprintln!("neighbour table raised to gc_thresh3={t3} for the run (was {now})");
        }
        NeighbourTable(saved)
    }
}

impl Drop for NeighbourTable {
    fn drop(&mut self) {
        for (k, v) in GC.iter().zip(&self.0) {
            let _ = std::fs::write(gc_path(k), v.trim());
        }
    }
}

pub fn testnet(args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the testnet binary runs");
    assert!(
        out.status.success(),
        "testnet {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `n` containers of `image` started by `docker run -d`, 16 at a time, on a
/// network of their own (with `ports`, each publishing the two ports `up`
/// publishes): the engine's floor for `up`.
pub fn bare_parallel_run(image: &str, n: usize, ports: bool) -> Duration {
    bare_up_down(image, n, ports).0
}

/// [`bare_parallel_run`], and how long removing them took (`docker rm -f`,
/// 16 at a time, then the network): the floor for `up` and for `down`.
pub fn bare_up_down(image: &str, n: usize, ports: bool) -> (Duration, Duration) {
    let net = "testnet-bench-bare";
    docker(&[
        "network",
        "create",
        "--label",
        "io.testnet.name=bench-bare",
        net,
    ]);
    let publish = if ports {
        "-p 127.0.0.1::8000 -p 127.0.0.1::9000"
    } else {
        ""
    };
    let start = Instant::now();
    let script = format!(
        "seq {n} | xargs -P 16 -I{{}} docker run -d --name bench-bare-{{}} --network {net} \
         --cap-add NET_ADMIN --label io.testnet.name=bench-bare {publish} {image} sleep 600 >/dev/null"
    );
    let ok = Command::new("sh").args(["-c", &script]).status().unwrap();
    let took = start.elapsed();
    let started = docker(&["ps", "-aq", "--filter", "label=io.testnet.name=bench-bare"])
        .split_whitespace()
        .count();
    // Removed 16 at a time: one `docker rm -f` of hundreds can leave the daemon
    // counting endpoints on the network for good (seen with 256).
    let rm = "docker ps -aq --filter label=io.testnet.name=bench-bare \
              | xargs -r -P 16 -n 1 docker rm -f >/dev/null";
    let removing = Instant::now();
    Command::new("sh").args(["-c", rm]).status().unwrap();
    // The daemon may still count the endpoints of containers just removed.
    let gone = (0..40).any(|_| {
        let out = Command::new("docker")
            .args(["network", "rm", net])
            .output()
            .unwrap();
        out.status.success() || {
            std::thread::sleep(Duration::from_millis(250));
            false
        }
    });
    assert!(
        gone,
        "network {net} could not be removed: the daemon still counts endpoints on it (restart it)"
    );
    let removed = removing.elapsed();
    assert!(
        ok.success() && started == n,
        "bare docker run: {started} of {n}"
    );
    (took, removed)
}
