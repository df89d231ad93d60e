//! A soak: `cargo bench -p testnet --bench soak` runs a scenario of 4
//! validators taking `SOAK_BENCH_TPS` payments a second (default 500) for
//! `SOAK_BENCH_MINUTES` (default 30), with n3 cut off from the others for
//! `SOAK_BENCH_CUT_SECS` (default 20) every `SOAK_BENCH_CUT_EVERY_MINUTES`
//! (default 5), and prints each node process's RSS every
//! `SOAK_BENCH_SAMPLE_SECS` (default 60), read from the host's /proc, with
//! the growth per minute of each node against its first sample (the
//! baseline of the same run), then the run's verdicts: every payment final
//! on every node, the ledgers in agreement, no node crashed. The nodes keep
//! `SOAK_BENCH_WINDOW` finalizations (default 20,000; 0: all of them, the
//! node's default, whose memory grows with history).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/floor.rs"]
mod floor;
use floor::{docker, testnet, BIN};

fn env(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn scenario(tps: u64, minutes: u64, every: u64, cut: u64, window: u64) -> String {
    let mut timeline = String::new();
    let mut at = every * 60;
    while at + cut < minutes * 60 {
        timeline.push_str(&format!(
            "  - at: {at}s\n    for: {cut}s\n    fault: {{ partition: [[n0, n1, n2], [n3]] }}\n"
        ));
        at += every * 60;
    }
    if timeline.is_empty() {
        timeline.push_str("  []\n");
    }
    format!(
        "name: soak\ndescription: {tps} tx/s for {minutes} min, n3 cut off for {cut}s every {every} min\n\
         seed: 15\ntestnet: {{ nodes: 4, finality_window: {window} }}\nworkload: {{ tps: {tps}, duration: {minutes}m }}\n\
         timeline:\n{timeline}invariants:\n  connectivity: {{ within: 30s }}\n  utxo_agreement: {{}}\n  \
         finality: {{ within: 60s }}\n  safety: {{}}\n  processes: {{}}\n"
    )
}

/// RSS (MiB) of each node process of testnet `name` (not its agent), by node.
fn node_rss(name: &str) -> BTreeMap<String, f64> {
    let ids = docker(&[
        "ps",
        "--no-trunc",
        "--filter",
        &format!("label=io.testnet.name={name}"),
        "--format",
        "{{.ID}} {{.Label \"io.testnet.node\"}}",
    ]);
    let containers: Vec<(String, String)> = ids
        .lines()
        .filter_map(|l| {
            let (id, node) = l.split_once(' ')?;
            Some((id.to_owned(), node.to_owned()))
        })
        .collect();
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = entry.path();
        let cmdline = std::fs::read(p.join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_node = args.first().is_some_and(|a| a.ends_with(b"testnet-node"))
            && args.get(1).is_some_and(|a| *a == b"run");
        if !is_node {
            continue;
        }
        let cgroup = std::fs::read_to_string(p.join("cgroup")).unwrap_or_default();
        let Some((_, node)) = containers
            .iter()
            .find(|(id, _)| cgroup.contains(id.as_str()))
        else {
            continue;
        };
        let rss_kib: f64 = std::fs::read_to_string(p.join("status"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0.0);
        out.insert(node.clone(), rss_kib / 1024.0);
    }
    out
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (tps, minutes) = (env("SOAK_BENCH_TPS", 500), env("SOAK_BENCH_MINUTES", 30));
    let every = env("SOAK_BENCH_CUT_EVERY_MINUTES", 5).max(1);
    let (cut, sample) = (
        env("SOAK_BENCH_CUT_SECS", 20),
        env("SOAK_BENCH_SAMPLE_SECS", 60),
    );
    let window = env("SOAK_BENCH_WINDOW", 20_000);
    let image = String::from_utf8(testnet(&["image", "build"]).stdout)
        .unwrap()
        .trim()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("soak.scenario.yaml");
    std::fs::write(&file, scenario(tps, minutes, every, cut, window)).unwrap();
    let report = dir.path().join("report");
    println!(
        "image {image}; {tps} tx/s for {minutes} min, n3 cut off for {cut}s every {every} min; \
         finality window {window}; node RSS every {sample}s"
    );
    let mut run = Command::new(BIN)
        .args([
            "run",
            file.to_str().unwrap(),
            "--name",
            "soak",
            "--image",
            &image,
        ])
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("testnet run starts");
    let stdout = run.stdout.take().unwrap();
    let verdicts = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let start = Instant::now();
    // Each node's first sample: (minute, MiB), the baseline of its growth.
    let mut first: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut samples: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut next = Duration::from_secs(sample.max(1));
    while run.try_wait().unwrap().is_none() {
        if start.elapsed() < next {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        next += Duration::from_secs(sample.max(1));
        let rss = node_rss("soak");
        if rss.is_empty() {
            println!("no node process of testnet soak found in /proc (yet)");
            continue;
        }
        let minute = start.elapsed().as_secs_f64() / 60.0;
        let line: Vec<String> = rss
            .iter()
            .map(|(node, mib)| {
                let (at, base) = *first.entry(node.clone()).or_insert((minute, *mib));
                samples
                    .entry(node.clone())
                    .or_default()
                    .push((minute, *mib));
                let slope = match minute - at {
                    d if d > 0.0 => (mib - base) / d,
                    _ => 0.0,
                };
                format!("{node} {mib:>6.1} MiB ({slope:+.2}/min)")
            })
            .collect();
        println!("{minute:>5.1} min  {}", line.join("  "));
    }
    let code = run.wait().unwrap().code();
    // A window fills first, then stays: the second half says whether it is flat.
    for (node, s) in &samples {
        if let (Some((m0, a)), Some((m1, b))) = (s.get(s.len() / 2), s.last()) {
            let slope = if m1 > m0 { (b - a) / (m1 - m0) } else { 0.0 };
            println!(
                "{node}: second half, minute {m0:.1} to {m1:.1}: {a:.1} to {b:.1} MiB ({slope:+.2} MiB/min)"
            );
        }
    }
    for line in verdicts.join().unwrap() {
        println!("{line}");
    }
    println!("testnet run exit {code:?} (0: every invariant held)");
    if first.is_empty() {
        eprintln!("no node's RSS was ever sampled: this bench measured nothing");
        std::process::exit(1);
    }
}
