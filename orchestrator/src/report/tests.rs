//! Reports written from synthetic observations: the files exist, `junit.xml` is
//! well-formed with the right counts, `report.html` is self-contained and has
//! its plots, and degenerate runs render too.

use std::collections::BTreeMap;
use std::path::Path;

use testnet_node::api::agent::{ProcessReport, ProcessState};
use testnet_node::api::Status;

use super::*;
use crate::load::{LoadReport, NodeSummary, Payment};
use crate::observe::{FaultEvent, FaultKind, Sample};

const T0: f64 = 1_700_000_000.0;
const NODES: [&str; 4] = ["n0", "n1", "n2", "n3"];
const PLOT_TITLES: [&str; 3] = [
    "Finality latency over time",
    "Throughput over time",
    "Peers per node over time",
];

fn status(node: &str, peers: usize, finalized: u64, uptime: f64) -> Status {
    serde_json::from_value(serde_json::json!({
        "id": "00".repeat(32), "name": node, "network_id": "x", "p2p_address": "10.77.0.10:7000",
        "peers": peers, "peers_inbound": 0, "peers_outbound": peers, "expected_peers": 3,
        "handshake_attempts": 3, "handshakes_completed": 3,
        "handshake_failures": 0, "duplicate_connections_resolved": 0,
        "simulated_bugs": [], "utxo_count": 5, "utxo_digest": "aa", "total_value": 1000,
        "fees": 0, "genesis_supply": 1000, "finalized_transactions": finalized, "mempool": 0,
        "conflicting_certificates": 0, "uptime_secs": uptime, "version": "t"
    }))
    .unwrap()
}

/// 30 s of a 4-node testnet sampled every second: a partition n0,n1 | n2,n3
/// from +10 s to +18 s (nothing finalizes, one peer each), n3 not answering at
/// +12..+14 s, n2 restarted at +22 s (counters and uptime reset).
fn observations(with_load: bool) -> Observations {
    let mut samples = Vec::new();
    for (i, node) in NODES.iter().enumerate() {
        let mut finalized = 0u64;
        let mut restarted_at = None;
        for t in 0..=30 {
            let t = t as f64;
            let partitioned = (10.0..18.0).contains(&t);
            let mut peers = if partitioned { 1 } else { 3 };
            if partitioned {
                // Nothing finalizes.
            } else if (18.0..20.0).contains(&t) {
                finalized += 60 + i as u64; // catching up
            } else {
                finalized += 20 + i as u64;
            }
            if *node == "n2" && t == 22.0 {
                restarted_at = Some(t);
                finalized = 0;
                peers = 0;
            }
            let uptime = restarted_at.map_or(100.0 + t, |r| t - r);
            let answered = !(*node == "n3" && (12.0..=14.0).contains(&t));
            samples.push(Sample {
                t: T0 + t + 0.01 * i as f64,
                node: (*node).to_owned(),
                status: answered.then(|| status(node, peers, finalized, uptime)),
                process: Some(ProcessReport {
                    state: ProcessState::Running,
                    pid: Some(7),
                    restarts: u64::from(restarted_at.is_some()),
                }),
                metrics: BTreeMap::new(),
                agent_metrics: BTreeMap::new(),
                peers: None,
            });
        }
    }
    samples.sort_by(|a, b| a.t.total_cmp(&b.t));
    let faults = vec![
        FaultEvent {
            start: T0 + 10.0,
            end: Some(T0 + 18.0),
            kind: FaultKind::Partition,
            label: "partition n0,n1 | n2,n3".into(),
            nodes: NODES.iter().map(|n| (*n).to_owned()).collect(),
            no_quorum: true,
            cut_off: vec![],
            fault: None,
            applied: None,
            step: None,
        },
        FaultEvent {
            start: T0 + 22.0,
            end: None,
            kind: FaultKind::Process,
            label: "restart n2 <&>".into(),
            nodes: vec!["n2".into()],
            no_quorum: false,
            cut_off: vec![],
            fault: None,
            applied: None,
            step: None,
        },
    ];
    Observations {
        testnet: "tn".into(),
        nodes: NODES.iter().map(|n| (*n).to_owned()).collect(),
        started: T0,
        ended: T0 + 30.0,
        samples,
        faults,
        load: with_load.then(load),
        ..Observations::default()
    }
}

/// Payments every 50 ms from +2 s to +28 s; those sent during the partition
/// become final after the heal, the last few never.
fn load() -> LoadReport {
    let mut payments = Vec::new();
    let mut k = 0u64;
    let mut sent = (T0 * 1000.0) as u64 + 2_000;
    let end = (T0 * 1000.0) as u64 + 28_000;
    let heal = (T0 * 1000.0) as u64 + 18_300;
    let partition = (T0 * 1000.0) as u64 + 10_000;
    while sent < end {
        k += 1;
        let final_ms = (0..4u64)
            .map(|n| {
                if sent + 300 > end {
                    None
                } else if sent >= partition && sent < heal {
                    Some(heal + 40 * n + k % 90)
                } else {
                    Some(sent + 120 + 15 * n + (k * 37) % 80)
                }
            })
            .collect();
        payments.push(Payment {
            held: Vec::new(),
            submitted_to: None,
            sent_ms: sent,
            final_ms,
        });
        sent += 50;
    }
    LoadReport {
        interrupted: false,
        duration_secs: 26.0,
        planned: 0,
        skipped: 0,
        submitted: payments.len() as u64 + 12,
        accepted: payments.len() as u64,
        refused: BTreeMap::from([
            ("double_spend".to_owned(), 10),
            ("mempool_full".to_owned(), 2),
        ]),
        double_spend_pairs: 10,
        conflicting_pairs_finalized: 0,
        finalized_everywhere: payments.len() as u64 - 6,
        not_finalized: 6,
        not_finalized_examples: vec![],
        unread_forgotten: 0,
        vouched: 0,
        latency_p50_ms: 180.0,
        latency_p99_ms: 8100.0,
        latency_max_ms: 8350.0,
        throughput_tps: 19.5,
        nodes: NODES
            .iter()
            .map(|n| NodeSummary {
                answered: true,
                endpoint: format!("http://{n}:8080"),
                name: (*n).to_owned(),
                finalized: 500,
                utxo_digest: "ab".repeat(32),
                total_value: 990,
                fees: 10,
                conflicting_certificates: 0,
            })
            .collect(),
        payments,
        digests_agree: true,
        value_conserved: true,
    }
}

fn report(obs: Observations) -> RunReport {
    RunReport {
        interrupted: false,
        scenario: "partition-heal".into(),
        description: Some("Split the testnet in two halves, then heal; \"all\" must agree".into()),
        seed: 42,
        passed: false,
        error: None,
        verdicts: vec![
            Verdict {
                invariant: "connectivity".into(),
                passed: true,
                summary: "every node back to 3 peers within 2.0 s".into(),
                details: vec![],
            },
            Verdict {
                invariant: "finality".into(),
                passed: false,
                summary: "2 problem(s): payment <a&b> not final on \"n3\"".into(),
                details: vec![
                    "n3: payment <&> not final after 5 s".into(),
                    "n2: 'quoted' & \"double\" at +12.0s".into(),
                ],
            },
            Verdict {
                invariant: "safety".into(),
                passed: true,
                summary: "no conflicting certificate".into(),
                details: vec![],
            },
        ],
        observations: obs,
        resolved_scenario:
            "name: partition-heal\ntimeline:\n  - at: 10s\n    partition: [[n0, n1], [n2, n3]]\n"
                .into(),
    }
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A small well-formedness check: tags nest and close, attributes are quoted,
/// no raw `<` or stray `&` in text or attribute values, one root element.
fn assert_well_formed(xml: &str) {
    fn check_text(t: &str) {
        assert!(!t.contains('<'), "raw < in {t:?}");
        let mut rest = t;
        while let Some(i) = rest.find('&') {
            rest = &rest[i + 1..];
            let end = rest.find(';').unwrap_or_else(|| panic!("stray & in {t:?}"));
            let entity = &rest[..end];
            let ok = matches!(entity, "amp" | "lt" | "gt" | "quot" | "apos")
                || entity
                    .strip_prefix('#')
                    .is_some_and(|n| n.parse::<u32>().is_ok());
            assert!(ok, "bad entity &{entity}; in {t:?}");
        }
    }
    let body = xml.trim_start();
    let body = match body.strip_prefix("<?xml") {
        Some(b) => &b[b.find("?>").expect("declaration closes") + 2..],
        None => body,
    };
    let mut stack: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        check_text(&rest[..open]);
        rest = &rest[open + 1..];
        // The tag ends at the first '>' outside quotes.
        let mut quote = None;
        let mut end = None;
        for (i, c) in rest.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '>') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.expect("tag closes");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().expect("close without open");
            assert_eq!(open, name.trim(), "mismatched close tag");
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
        let name = &tag[..name_end];
        assert!(!name.is_empty(), "empty tag name");
        // Attributes: name="value" or name='value'.
        let mut attrs = tag[name_end..].trim();
        while !attrs.is_empty() {
            let eq = attrs.find('=').expect("attribute has =");
            let q = attrs[eq + 1..].chars().next().expect("attribute value");
            assert!(q == '"' || q == '\'', "unquoted attribute in <{tag}>");
            let value_end = attrs[eq + 2..].find(q).expect("attribute value closes");
            check_text(&attrs[eq + 2..eq + 2 + value_end]);
            attrs = attrs[eq + 2 + value_end + 1..].trim_start();
        }
        if stack.is_empty() {
            roots += 1;
        }
        if !self_closing {
            stack.push(name.to_owned());
        }
    }
    check_text(rest);
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    assert_eq!(roots, 1, "one root element");
}

fn assert_self_contained_and_sane(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    for bad in [
        "http://", "https://", "<script", "<link", "@import", "src=", "NaN", ">inf", "\"inf",
        "-inf", "Infinity",
    ] {
        assert!(!html.contains(bad), "report.html contains {bad:?}");
    }
    for title in PLOT_TITLES {
        assert!(html.contains(title), "missing plot {title:?}");
    }
    assert_eq!(html.matches("<svg").count(), 3);
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
}

#[test]
fn write_produces_json_junit_and_html() {
    let dir = tempfile::tempdir().unwrap();
    let r = report(observations(true));
    write(dir.path(), &r).unwrap();
    for f in ["report.json", "junit.xml", "report.html"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let back: RunReport = serde_json::from_str(&read(dir.path(), "report.json")).unwrap();
    assert_eq!(back, r);
}

#[test]
fn junit_has_one_case_per_verdict_and_escapes() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &report(observations(true))).unwrap();
    let xml = read(dir.path(), "junit.xml");
    assert_well_formed(&xml);
    assert_eq!(xml.matches("<testcase ").count(), 3);
    assert_eq!(xml.matches("<testsuite ").count(), 1);
    for attr in [
        "name=\"partition-heal\"",
        "tests=\"3\"",
        "failures=\"1\"",
        "errors=\"0\"",
        "time=\"30.000\"",
        "timestamp=\"2023-11-14T22:13:20.000+00:00\"",
    ] {
        assert!(xml.contains(attr), "no {attr} in {xml}");
    }
    assert!(xml.contains("<testcase name=\"finality\" classname=\"testnet.partition-heal\">"));
    assert!(xml.contains("<property name=\"seed\" value=\"42\"/>"));
    assert!(!xml.contains("<&>") && !xml.contains("<a&b>"));
    assert_eq!(xml.matches("<failure").count(), 1);
    assert!(!xml.contains("<error"));
}

#[test]
fn junit_reports_a_tool_error_as_a_run_case() {
    let mut r = report(observations(false));
    r.error = Some("testnet did not come up: n2 <timeout> & \"gone\"\nsecond line".into());
    let xml = junit::render(&r).unwrap();
    assert_well_formed(&xml);
    assert!(xml.contains("tests=\"4\""));
    assert!(xml.contains("failures=\"1\""));
    assert!(xml.contains("errors=\"1\""));
    assert!(xml.contains("<testcase name=\"run\" classname=\"testnet.partition-heal\">"));
    let run = parse_junit(&xml).suites.remove(0).cases.pop().unwrap();
    assert_eq!(run.original_name, "run");
    let e = run.status.error_as_ref();
    assert_eq!(
        e.message,
        "testnet did not come up: n2 <timeout> & \"gone\""
    );
    assert_eq!(e.error_type, "tool");
    assert!(
        xml.contains("&quot;gone&quot;\nsecond line</error>"),
        "{xml}"
    );
}

fn parse_junit(xml: &str) -> junit_parser::TestSuites {
    junit_parser::from_reader(std::io::Cursor::new(xml))
        .unwrap_or_else(|e| panic!("junit.xml does not parse: {e}\n{xml}"))
}

/// `junit.xml` read back by an independent parser: the suite, one case per
/// verdict by name, the failure count and a failure's message and text, with
/// markup, quotes and a control character in the reason.
#[test]
fn junit_reads_back_with_an_independent_parser() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = report(observations(true));
    r.verdicts[2].passed = false;
    r.verdicts[2].summary = "conflict <tx a&b> at \"n1\" & 'n2'\u{1}!".into();
    write(dir.path(), &r).unwrap();
    let xml = read(dir.path(), "junit.xml");
    assert_well_formed(&xml);
    let suites = parse_junit(&xml);

    assert_eq!(suites.name, "testnet");
    assert_eq!((suites.tests, suites.failures, suites.errors), (3, 2, 0));
    assert_eq!(suites.suites.len(), 1);
    let suite = &suites.suites[0];
    assert_eq!(suite.name, "partition-heal");
    assert_eq!((suite.tests, suite.failures, suite.errors), (3, 2, 0));
    assert!((suite.time - 30.0).abs() < 1e-9, "{}", suite.time);
    assert_eq!(
        suite.properties.hashmap.get("seed").map(String::as_str),
        Some("42")
    );
    assert_eq!(
        suite
            .properties
            .hashmap
            .get("description")
            .map(String::as_str),
        r.description.as_deref()
    );
    let names: Vec<&str> = suite
        .cases
        .iter()
        .map(|c| c.original_name.as_str())
        .collect();
    assert_eq!(names, ["connectivity", "finality", "safety"]);
    let failed: Vec<&str> = suite
        .cases
        .iter()
        .filter(|c| c.status.is_failure())
        .map(|c| c.original_name.as_str())
        .collect();
    assert_eq!(failed, ["finality", "safety"]);
    assert!(suite.cases[0].status.is_success());
    assert_eq!(
        suite.cases[0].classname.as_deref(),
        Some("testnet.partition-heal")
    );
    assert_eq!(
        suite.cases[0].system_out.as_deref(),
        Some("every node back to 3 peers within 2.0 s")
    );

    let finality = suite.cases[1].status.failure_as_ref();
    assert_eq!(
        finality.message,
        "2 problem(s): payment <a&b> not final on \"n3\""
    );
    assert_eq!(finality.failure_type, "invariant");
    // junit-parser 1.7 drops entity references from element text (quick-xml
    // >= 0.38 hands them over as separate events it ignores), so the text is
    // checked escaped in the XML itself.
    assert!(
        finality.text.starts_with("n3: payment"),
        "{:?}",
        finality.text
    );
    assert!(xml.contains(
        "n3: payment &lt;&amp;&gt; not final after 5 s\nn2: &apos;quoted&apos; &amp; &quot;double&quot; at +12.0s</failure>"
    ));
    // The control character XML 1.0 cannot carry is dropped, the rest kept.
    let safety = suite.cases[2].status.failure_as_ref();
    assert_eq!(safety.message, "conflict <tx a&b> at \"n1\" & 'n2'!");
    assert!(xml
        .contains("conflict &lt;tx a&amp;b&gt; at &quot;n1&quot; &amp; &apos;n2&apos;!</failure>"));
}

#[test]
fn timestamps_are_rfc3339_utc_or_none() {
    assert_eq!(iso_utc(T0).as_deref(), Some("2023-11-14T22:13:20Z"));
    assert_eq!(iso_utc(T0 + 0.999).as_deref(), Some("2023-11-14T22:13:20Z"));
    assert_eq!(
        iso_utc(951_782_400.0).as_deref(),
        Some("2000-02-29T00:00:00Z")
    );
    assert_eq!(
        iso_utc(253_402_300_799.0).as_deref(),
        Some("9999-12-31T23:59:59Z")
    );
    for nonsense in [0.0, -1.0, f64::NAN, f64::INFINITY, 253_402_300_800.0, 1e300] {
        assert_eq!(iso_utc(nonsense), None, "{nonsense}");
    }
}

#[test]
fn html_has_plots_shaded_faults_and_escaped_text() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &report(observations(true))).unwrap();
    let html = read(dir.path(), "report.html");
    assert_self_contained_and_sane(&html);
    assert!(html.contains("FAILED"));
    assert!(html.contains("partition-heal"));
    assert!(html.contains("seed <b>42</b>"));
    // The partition window (+10 s to +18 s) shaded in each of the three plots,
    // with its label as a tooltip; the open-ended restart too.
    assert_eq!(
        html.matches(
            "<title>partition n0,n1 | n2,n3 (partition, +10.0s to +18.0s, no quorum)</title>"
        )
        .count(),
        3
    );
    assert_eq!(
        html.matches("<title>restart n2 &lt;&amp;&gt; (process, +22.0s to the end)</title>")
            .count(),
        3
    );
    assert_eq!(html.matches("<rect class=\"fault\"").count(), 6);
    // Timeline table, relative times.
    assert!(html.contains("+10.0s") && html.contains("+18.0s") && html.contains("until the end"));
    // Verdict details escaped, in a <details>.
    assert!(html.contains("n3: payment &lt;&amp;&gt; not final after 5 s"));
    assert!(html.contains("payment &lt;a&amp;b&gt; not final on &quot;n3&quot;"));
    assert!(!html.contains("<&>") && !html.contains("<a&b>"));
    assert!(html.contains("<details open><summary>2 lines</summary>"));
    // Series: one line per node in throughput and peers, latency dots and p50.
    for n in NODES {
        assert!(html.contains(&format!("<title>{n}</title>")), "{n} line");
    }
    assert!(html.contains("<title>max over nodes</title>"));
    assert!(html.contains("<title>p50 per 1 s</title>"));
    assert!(html.contains("never final (not shown)"));
    assert!(!html.contains(">no data<"));
    // Workload.
    assert!(html.contains("<h2>Workload</h2>"));
    assert!(html.contains("refused: double_spend"));
    assert!(html.contains("8100.0 ms"));
    assert!(html.contains("conserved"));
}

#[test]
fn html_renders_an_empty_run() {
    let dir = tempfile::tempdir().unwrap();
    let r = RunReport {
        interrupted: false,
        scenario: "empty".into(),
        description: None,
        seed: 0,
        passed: true,
        error: None,
        verdicts: vec![],
        observations: Observations::default(),
        resolved_scenario: String::new(),
    };
    write(dir.path(), &r).unwrap();
    let html = read(dir.path(), "report.html");
    assert_self_contained_and_sane(&html);
    assert!(html.contains("PASSED"));
    assert_eq!(html.matches(">no data<").count(), 3);
    assert!(!html.contains("<h2>Workload</h2>"));
    let xml = read(dir.path(), "junit.xml");
    assert_well_formed(&xml);
    let suites = parse_junit(&xml);
    assert_eq!((suites.tests, suites.failures, suites.errors), (0, 0, 0));
    assert_eq!(suites.suites.len(), 1);
    assert!(suites.suites[0].cases.is_empty());
    assert!(
        suites.suites[0].timestamp.is_none(),
        "no start, no timestamp"
    );
}

/// 40 nodes (the 4 of `observations` copied ten times, n3 short of peers in
/// its partition): the plots show the envelope and the worst nodes by name,
/// not 40 lines.
#[test]
fn html_aggregates_many_nodes_and_names_the_worst() {
    let mut obs = observations(true);
    let base = obs.samples.clone();
    obs.nodes.clear();
    obs.samples.clear();
    for k in 0..10 {
        for s in &base {
            let i: usize = s.node[1..].parse().unwrap();
            let mut s = s.clone();
            s.node = format!("n{}", 4 * k + i);
            obs.samples.push(s);
        }
        obs.nodes.extend((0..4).map(|i| format!("n{}", 4 * k + i)));
    }
    let html = html::render(&report(obs));
    assert_self_contained_and_sane(&html);
    for label in [
        "mean over nodes",
        "min over nodes",
        "max over nodes",
        "worst: n",
    ] {
        assert!(html.contains(label), "no {label:?}");
    }
    assert!(html.contains("With 40 nodes"));
    assert!(!html.contains(">n17<"), "no line per node");
}

#[test]
fn html_renders_degenerate_runs() {
    // Zero-length run with a single sample, an error, and a fault whose end
    // lies before its start and after the run.
    let mut obs = observations(true);
    obs.samples.truncate(1);
    obs.ended = obs.started;
    obs.faults[0].end = Some(obs.started - 5.0);
    obs.faults[1].start = obs.started + 1e9;
    if let Some(l) = obs.load.as_mut() {
        l.payments.truncate(1);
        l.latency_p50_ms = f64::NAN;
        l.throughput_tps = f64::INFINITY;
    }
    let mut r = report(obs);
    r.error = Some("cut short <here>".into());
    let html = html::render(&r);
    assert_self_contained_and_sane(&html);
    assert!(html.contains("cut short &lt;here&gt;"));

    // Ended before started, samples with no status at all.
    let mut obs = observations(false);
    obs.ended = obs.started - 10.0;
    for s in &mut obs.samples {
        s.status = None;
    }
    let html = html::render(&report(obs));
    assert_self_contained_and_sane(&html);
}

#[test]
fn long_series_are_downsampled_keeping_extremes() {
    let points: Vec<(f64, f64)> = (0..10_000)
        .map(|i| (i as f64, if i == 7_777 { 1e6 } else { (i % 10) as f64 }))
        .collect();
    let out = series::downsample(&points, 2000);
    assert!(out.len() <= 2000, "{}", out.len());
    assert!(out.contains(&(7_777.0, 1e6)), "the spike survives");
    assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "x order kept");

    // A run with 20 000 payments: the plot stays small.
    let mut obs = observations(true);
    let l = obs.load.as_mut().unwrap();
    let base = l.payments.clone();
    l.payments = (0..20_000)
        .map(|i| {
            let p = &base[i % base.len()];
            Payment {
                held: Vec::new(),
                submitted_to: None,
                sent_ms: p.sent_ms + (i / base.len()) as u64,
                final_ms: p.final_ms.clone(),
            }
        })
        .collect();
    let html = html::render(&report(obs));
    assert_self_contained_and_sane(&html);
    let dots = html.matches("h0").count();
    assert!(dots < 2_600, "{dots} dots");
    assert!(html.len() < 400_000, "{} bytes", html.len());
}

/// Writes the demo report to /tmp/report-demo/ for a look in a browser:
/// `cargo test -p testnet --lib report::tests::demo -- --ignored`.
#[test]
#[ignore]
fn demo() {
    let dir = Path::new("/tmp/report-demo");
    write(dir, &report(observations(true))).unwrap();
    let mut empty = report(Observations::default());
    empty.scenario = "empty".into();
    empty.verdicts.clear();
    write(&dir.join("empty"), &empty).unwrap();
}
