//! `up` and `down` against the engine's floor, on the real Docker engine.
//! `cargo bench -p testnet --bench updown` prints, for each size of
//! `UPDOWN_BENCH_NODES` (default 4,16,32,64; full mesh, all validators), the
//! median of `UPDOWN_BENCH_REPEAT` (default 3) runs, alternating:
//! - `testnet up --nodes N --image IMG` to a full mesh, with where its time
//!   went (read from its progress lines: planning and the network, creating
//!   and starting the containers, the mesh), against bare parallel
//!   `docker run -d` of the same image and count with the same two published
//!   ports (16 at a time, as `up` creates them), and the ratio;
//! - `testnet down` against `docker rm -f` of the same containers (a second
//!   `up`'s; 16 at a time, as `down` removes them) and `docker network rm`,
//!   and the ratio. Each repeat brings the testnet up twice: `up` is the
//!   median of both.
//!
//! The image is built (or found) first; the kernel's neighbour table is
//! raised for the run where a full mesh needs it, and restored after.

use std::time::Instant;

use testnet::config::TestnetFile;

#[path = "support/floor.rs"]
mod floor;
use floor::{bare_up_down, testnet, NeighbourTable, BIN};

/// One `up`: wall time, and the seconds of its milestones.
struct Up {
    wall: f64,
    network: f64,
    created: f64,
    mesh: f64,
}

/// The seconds on the first progress line containing `what` (`[  1.2s] ...`).
fn at(stderr: &str, what: &str) -> f64 {
    stderr
        .lines()
        .find(|l| l.contains(what))
        .and_then(|l| l.trim_start_matches('[').split(']').next())
        .and_then(|s| s.trim().trim_end_matches('s').parse().ok())
        .unwrap_or(f64::NAN)
}

fn up(image: &str, n: usize, name: &str) -> Up {
    let nodes = n.to_string();
    let start = Instant::now();
    let out = testnet(&["up", "--nodes", &nodes, "--name", name, "--image", image]);
    let wall = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    Up {
        wall,
        network: at(&stderr, "created"),
        created: at(&stderr, "containers created and started"),
        mesh: at(&stderr, "have a full mesh"),
    }
}

/// Two `up`s: one taken down by `testnet down`, one by `docker rm -f` of its
/// containers (16 at a time, as `down` removes them) and `docker network rm`
/// (again while the daemon still counts their endpoints): `down`'s floor.
fn ours(image: &str, n: usize) -> ([Up; 2], f64, f64) {
    let name = "bench-updown";
    let first = up(image, n, name);
    let start = Instant::now();
    testnet(&["down", "--name", name]);
    let down = start.elapsed().as_secs_f64();
    let second = up(image, n, name);
    let start = Instant::now();
    let rm = format!(
        "docker ps -aq --filter label=io.testnet.name={name} | xargs -r -P 16 -n 1 docker rm -f >/dev/null; \
         until docker network rm testnet-{name} >/dev/null 2>&1; do sleep 0.25; done"
    );
    let ok = std::process::Command::new("sh")
        .args(["-c", &rm])
        .status()
        .unwrap();
    let floor = start.elapsed().as_secs_f64();
    assert!(ok.success(), "docker rm -f of {name}");
    // The state dir (nothing is left in Docker).
    testnet(&["down", "--name", name]);
    ([first, second], down, floor)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn size(image: &str, n: usize, repeat: usize) {
    let text = format!("nodes: {n}\n");
    let edges = TestnetFile::parse(&text, "bench")
        .unwrap()
        .graph()
        .unwrap()
        .edges() as u64;
    let need = 2 * edges + 2 * n as u64 + 64;
    let _table = NeighbourTable::raise_to((need * 2).next_power_of_two().max(1024));
    let (mut bare, mut runs, mut downs, mut floors) = (vec![], vec![], vec![], vec![]);
    for _ in 0..repeat {
        bare.push(bare_up_down(image, n, true).0.as_secs_f64());
        let (ups, down, floor) = ours(image, n);
        runs.extend(ups);
        downs.push(down);
        floors.push(floor);
    }
    let up = median(runs.iter().map(|r| r.wall).collect());
    let (bu, down, floor) = (median(bare), median(downs), median(floors));
    let phase = |f: fn(&Up) -> f64| median(runs.iter().map(f).collect());
    println!(
        "{n:>3} nodes  up {up:>5.2}s  bare docker run {bu:>5.2}s  ratio {:.2} (+{:.2}s)  \
         [network at {:.2}s, containers started at {:.2}s, full mesh at {:.2}s]  |  \
         down {down:>5.2}s  docker rm -f of the same {floor:>5.2}s  ratio {:.2}",
        up / bu,
        up - bu,
        phase(|r| r.network),
        phase(|r| r.created),
        phase(|r| r.mesh),
        down / floor
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("UPDOWN_BENCH_NODES")
        .unwrap_or_else(|_| "4,16,32,64".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let repeat: usize = std::env::var("UPDOWN_BENCH_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let image = String::from_utf8(testnet(&["image", "build"]).stdout)
        .unwrap()
        .trim()
        .to_owned();
    println!("image {image}; {BIN}; median of {repeat}, alternating with the bare baseline");
    for n in sizes {
        size(&image, n, repeat);
    }
}
