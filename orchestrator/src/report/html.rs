//! `report.html`: one self-contained page (inline CSS and inline SVG; no
//! scripts, fonts, style sheets or images from elsewhere). Three plots share the
//! time axis (seconds since `observations.started`) with the fault windows
//! shaded: finality latency, throughput and peers per node.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use testnet_node::load::LoadReport;

use super::{iso_utc, run_secs, RunReport};
use crate::observe::{FaultEvent, FaultKind, Observations, Sample};

/// Points per series above which a series is downsampled (min and max kept).
const MAX_POINTS: usize = 2000;

/// Line colours for nodes and series (colour-blind friendly, Okabe-Ito first).
const PALETTE: [&str; 12] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#7f7f7f", "#000000",
    "#bcbd22", "#8c564b", "#17becf", "#9467bd",
];

const CSS: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  margin: 0; background: #f4f5f7; color: #1d2330; font-size: 14px; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 24px 40px; }
header { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; padding: 16px 20px; margin-bottom: 18px; }
h1 { font-size: 22px; margin: 0 0 6px; display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
h2 { font-size: 17px; margin: 26px 0 10px; }
h3 { font-size: 15px; margin: 0 0 4px; }
.badge { font-size: 13px; font-weight: 700; letter-spacing: .04em; padding: 3px 10px; border-radius: 12px; color: #fff; }
.pass { background: #1a7f37; } .fail { background: #cf222e; }
.ok { color: #1a7f37; font-weight: 600; } .bad { color: #cf222e; font-weight: 600; }
.desc { margin: 4px 0 10px; color: #3b4252; }
.meta { display: flex; gap: 24px; flex-wrap: wrap; color: #57606a; }
.meta b { color: #1d2330; font-weight: 600; }
.error { margin-top: 12px; background: #ffebe9; border: 1px solid #ff8182; border-radius: 6px; padding: 8px 12px; }
.error pre { margin: 4px 0 0; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #dde1e7; }
th, td { text-align: left; vertical-align: top; padding: 6px 10px; border-bottom: 1px solid #eaedf1; }
th { background: #f0f2f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv { width: auto; min-width: 420px; }
table.kv th { background: #fff; font-weight: 500; color: #57606a; }
pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px;
  white-space: pre-wrap; word-break: break-word; margin: 6px 0 0; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
details summary { cursor: pointer; color: #0b57d0; }
.muted { color: #6e7781; }
.plot { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; padding: 12px 14px 4px; margin-bottom: 14px; }
.plot p { margin: 0; color: #57606a; font-size: 12.5px; }
.plot svg { display: block; width: 100%; height: auto; }
.kinds span { display: inline-block; width: 12px; height: 12px; border-radius: 2px; vertical-align: -1px; margin-right: 4px; }
"#;

pub(super) fn render(r: &RunReport) -> String {
    let obs = &r.observations;
    let mut h = String::with_capacity(64 * 1024);
    let verdict = if r.passed { "PASSED" } else { "FAILED" };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} – {verdict} – testnet report</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&r.scenario)
    );
    header(&mut h, r);
    verdicts(&mut h, r);
    faults(&mut h, obs);
    plots(&mut h, obs);
    if let Some(load) = &obs.load {
        workload(&mut h, load);
    }
    if !r.resolved_scenario.trim().is_empty() {
        let _ = write!(
            h,
            "<h2>Scenario</h2>\n<details><summary>Resolved scenario (YAML)</summary><pre>{}</pre></details>\n",
            esc(&r.resolved_scenario)
        );
    }
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

fn header(h: &mut String, r: &RunReport) {
    let obs = &r.observations;
    let (class, word) = if r.passed {
        ("pass", "PASSED")
    } else {
        ("fail", "FAILED")
    };
    let _ = write!(
        h,
        "<header>\n<h1>{} <span class=\"badge {class}\">{word}</span></h1>\n",
        esc(&r.scenario)
    );
    if let Some(d) = r.description.as_deref().filter(|d| !d.trim().is_empty()) {
        let _ = writeln!(h, "<div class=\"desc\">{}</div>", esc(d));
    }
    let failed = r.verdicts.iter().filter(|v| !v.passed).count();
    let _ = write!(
        h,
        "<div class=\"meta\"><span>seed <b>{}</b></span><span>duration <b>{}</b></span>\
         <span>invariants <b>{} passed, {failed} failed</b></span>",
        r.seed,
        secs_text(run_secs(obs)),
        r.verdicts.len() - failed,
    );
    if let Some(t) = iso_utc(obs.started) {
        let _ = write!(h, "<span>started <b>{t} UTC</b></span>");
    }
    if !obs.testnet.is_empty() {
        let _ = write!(h, "<span>testnet <b>{}</b></span>", esc(&obs.testnet));
    }
    let _ = writeln!(
        h,
        "<span>nodes <b>{}</b></span><span>samples <b>{}</b></span></div>",
        node_order(obs).len(),
        obs.samples.len()
    );
    if let Some(e) = &r.error {
        let _ = writeln!(
            h,
            "<div class=\"error\"><b>Tool error</b> (the run was cut short)<pre>{}</pre></div>",
            esc(e)
        );
    }
    h.push_str("</header>\n");
}

fn verdicts(h: &mut String, r: &RunReport) {
    h.push_str("<h2>Invariants</h2>\n");
    if r.verdicts.is_empty() {
        h.push_str("<p class=\"muted\">No invariant was checked.</p>\n");
        return;
    }
    h.push_str(
        "<table>\n<thead><tr><th>Invariant</th><th>Result</th><th>Summary</th><th>Details</th></tr></thead>\n<tbody>\n",
    );
    for v in &r.verdicts {
        let result = if v.passed {
            "<span class=\"ok\">pass</span>"
        } else {
            "<span class=\"bad\">FAIL</span>"
        };
        let details = if v.details.is_empty() {
            "<span class=\"muted\">–</span>".to_owned()
        } else {
            let n = v.details.len();
            format!(
                "<details{}><summary>{n} line{}</summary><pre>{}</pre></details>",
                if v.passed { "" } else { " open" },
                if n == 1 { "" } else { "s" },
                esc(&v.details.join("\n"))
            )
        };
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td>{result}</td><td>{}</td><td>{details}</td></tr>",
            esc(&v.invariant),
            esc(&v.summary)
        );
    }
    h.push_str("</tbody>\n</table>\n");
}

fn faults(h: &mut String, obs: &Observations) {
    h.push_str("<h2>Fault timeline</h2>\n");
    if obs.faults.is_empty() {
        h.push_str("<p class=\"muted\">No fault was injected.</p>\n");
        return;
    }
    h.push_str(
        "<table>\n<thead><tr><th class=\"num\">Start</th><th class=\"num\">End</th><th>Kind</th>\
         <th>Fault</th><th>Nodes</th><th>Quorum</th></tr></thead>\n<tbody>\n",
    );
    for f in &obs.faults {
        let end = match f.end {
            Some(e) => rel(e - obs.started),
            None => "until the end".to_owned(),
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{end}</td>\
             <td class=\"kinds\"><span style=\"background:{};opacity:.6\"></span>{}</td>\
             <td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            rel(f.start - obs.started),
            kind_colour(f.kind),
            kind_name(f.kind),
            esc(&f.label),
            esc(&f.nodes.join(", ")),
            if f.no_quorum {
                "<span class=\"bad\">none</span>"
            } else {
                "kept"
            }
        );
    }
    h.push_str("</tbody>\n</table>\n");
}

fn plots(h: &mut String, obs: &Observations) {
    h.push_str("<h2>Over time</h2>\n");
    let span = run_secs(obs);
    let nodes = node_order(obs);
    let by_node = samples_by_node(obs, &nodes);

    // a. Finality latency.
    let mut series = Vec::new();
    let mut note = None;
    let mut caption = "No workload ran: no finality latency to show.".to_owned();
    if let Some(load) = &obs.load {
        let (points, never) = latencies(load, obs.started);
        caption = format!(
            "Each dot is one accepted payment: x = when it was sent, y = the slowest node's \
             time to finality (ms). {} payment(s) plotted.",
            points.len()
        );
        if never > 0 {
            note = Some(format!("{never} never final (not shown)"));
        }
        let p50 = p50_per_second(&points);
        series.push(Series {
            label: "max over nodes".into(),
            colour: PALETTE[0],
            style: Style::Dots,
            width: 4.0,
            segments: vec![points],
        });
        series.push(Series {
            label: "p50 per 1 s".into(),
            colour: PALETTE[5],
            style: Style::Line,
            width: 1.8,
            segments: p50,
        });
    }
    plot(
        h,
        &Plot {
            id: "latency",
            title: "Finality latency over time",
            caption: &caption,
            y_label: "latency (ms)",
            obs,
            span,
            series,
            integer_y: false,
            note,
        },
    );

    // b. Throughput.
    let series = by_node
        .iter()
        .enumerate()
        .map(|(i, (node, samples))| Series {
            label: node.clone(),
            colour: PALETTE[i % PALETTE.len()],
            style: Style::Line,
            width: node_width(i, by_node.len()),
            segments: throughput(samples, obs.started),
        })
        .collect();
    plot(
        h,
        &Plot {
            id: "throughput",
            title: "Throughput over time",
            caption: "Transactions finalized per second, one line per node (the increase of its \
                      finalized_transactions counter between consecutive answered samples; \
                      restarts and unanswered samples leave gaps).",
            y_label: "finalized tx/s",
            obs,
            span,
            series,
            integer_y: false,
            note: None,
        },
    );

    // c. Peers.
    let mut series: Vec<Series> = by_node
        .iter()
        .enumerate()
        .map(|(i, (node, samples))| Series {
            label: node.clone(),
            colour: PALETTE[i % PALETTE.len()],
            style: Style::Line,
            width: node_width(i, by_node.len()),
            segments: peers(samples, obs.started),
        })
        .collect();
    let expected = obs
        .samples
        .iter()
        .filter_map(|s| s.status.as_ref())
        .map(|st| st.expected_peers)
        .max();
    if let Some(e) = expected.filter(|e| *e > 0) {
        series.push(Series {
            label: format!("full mesh ({e})"),
            colour: "#8c959f",
            style: Style::Dashed,
            width: 1.5,
            segments: vec![vec![(0.0, e as f64), (span.max(1.0), e as f64)]],
        });
    }
    plot(
        h,
        &Plot {
            id: "peers",
            title: "Peers per node over time",
            caption: "Established peers reported by each node's /status; gaps where the node \
                      did not answer.",
            y_label: "peers",
            obs,
            span,
            series,
            integer_y: true,
            note: None,
        },
    );
}

fn workload(h: &mut String, l: &LoadReport) {
    h.push_str("<h2>Workload</h2>\n<table class=\"kv\">\n<tbody>\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(h, "<tr><th>{}</th><td class=\"num\">{v}</td></tr>", esc(k));
    };
    let yes_no = |good: bool, yes: &str, no: &str| {
        if good {
            format!("<span class=\"ok\">{yes}</span>")
        } else {
            format!("<span class=\"bad\">{no}</span>")
        }
    };
    row("duration", secs_text(l.duration_secs));
    row("submitted", l.submitted.to_string());
    row("accepted", l.accepted.to_string());
    let refused: u64 = l.refused.values().sum();
    row("refused", refused.to_string());
    for (reason, n) in &l.refused {
        row(&format!("  refused: {reason}"), n.to_string());
    }
    row("final on every node", l.finalized_everywhere.to_string());
    row(
        "not final on every node",
        if l.not_finalized == 0 {
            "0".to_owned()
        } else {
            format!("<span class=\"bad\">{}</span>", l.not_finalized)
        },
    );
    if !l.not_finalized_examples.is_empty() {
        let ids: Vec<String> = l
            .not_finalized_examples
            .iter()
            .take(5)
            .map(|t| format!("<code>{}</code>", esc(&t.to_string())))
            .collect();
        row("  e.g.", ids.join("<br>"));
    }
    row("latency p50", format!("{} ms", num(l.latency_p50_ms, 1)));
    row("latency p99", format!("{} ms", num(l.latency_p99_ms, 1)));
    row("latency max", format!("{} ms", num(l.latency_max_ms, 1)));
    row("throughput", format!("{} tx/s", num(l.throughput_tps, 1)));
    row("double-spend pairs", l.double_spend_pairs.to_string());
    row(
        "conflicting pairs finalized",
        if l.conflicting_pairs_finalized == 0 {
            "<span class=\"ok\">0</span>".to_owned()
        } else {
            format!(
                "<span class=\"bad\">{}</span>",
                l.conflicting_pairs_finalized
            )
        },
    );
    row(
        "ledgers (digests)",
        yes_no(l.digests_agree, "agree", "DISAGREE"),
    );
    row(
        "value",
        yes_no(l.value_conserved, "conserved", "NOT conserved"),
    );
    h.push_str("</tbody>\n</table>\n");

    if !l.nodes.is_empty() {
        h.push_str(
            "<h3 style=\"margin-top:16px\">Ledger per node at the end</h3>\n<table>\n<thead><tr><th>Node</th>\
             <th class=\"num\">Finalized</th><th>UTXO digest</th><th class=\"num\">Value</th>\
             <th class=\"num\">Fees</th><th class=\"num\">Conflicting certificates</th></tr></thead>\n<tbody>\n",
        );
        for n in &l.nodes {
            let digest: String = n.utxo_digest.chars().take(16).collect();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td><code title=\"{}\">{}</code></td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&n.name),
                n.finalized,
                esc(&n.utxo_digest),
                esc(&digest),
                n.total_value,
                n.fees,
                if n.conflicting_certificates == 0 {
                    "0".to_owned()
                } else {
                    format!("<span class=\"bad\">{}</span>", n.conflicting_certificates)
                }
            );
        }
        h.push_str("</tbody>\n</table>\n");
    }
}

// ---------------------------------------------------------------- data

/// The nodes in `obs.nodes` order, then any other node seen in the samples.
fn node_order(obs: &Observations) -> Vec<String> {
    let mut nodes = obs.nodes.clone();
    for s in &obs.samples {
        if !nodes.contains(&s.node) {
            nodes.push(s.node.clone());
        }
    }
    nodes
}

/// Each node's samples in time order.
fn samples_by_node<'a>(obs: &'a Observations, nodes: &[String]) -> Vec<(String, Vec<&'a Sample>)> {
    nodes
        .iter()
        .map(|n| {
            let mut v: Vec<&Sample> = obs
                .samples
                .iter()
                .filter(|s| &s.node == n && s.t.is_finite())
                .collect();
            v.sort_by(|a, b| a.t.total_cmp(&b.t));
            (n.clone(), v)
        })
        .collect()
}

/// Per payment final somewhere: (sent, slowest node's latency in ms), in send
/// order; and how many payments were final nowhere.
fn latencies(load: &LoadReport, started: f64) -> (Vec<(f64, f64)>, usize) {
    let mut never = 0;
    let mut points: Vec<(f64, f64)> = load
        .payments
        .iter()
        .filter_map(|p| {
            let worst = p.final_ms.iter().flatten().max();
            if worst.is_none() {
                never += 1;
            }
            let worst = worst?;
            let x = p.sent_ms as f64 / 1000.0 - started;
            Some((x, worst.saturating_sub(p.sent_ms) as f64))
        })
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    (points, never)
}

/// The median of the y values of the points in each 1-second bucket of x,
/// plotted at the middle of the bucket; a second without payments breaks the
/// line.
fn p50_per_second(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for &(x, y) in points {
        buckets.entry(x.floor() as i64).or_default().push(y);
    }
    buckets
        .into_iter()
        .map(|(b, mut ys)| {
            ys.sort_by(f64::total_cmp);
            let m = ys.len() / 2;
            let median = if ys.len() % 2 == 1 {
                ys[m]
            } else {
                (ys[m - 1] + ys[m]) / 2.0
            };
            (b, median)
        })
        .fold(
            Vec::new(),
            |mut segments: Vec<Vec<(f64, f64)>>, (b, median)| {
                let point = (b as f64 + 0.5, median);
                match segments.last_mut() {
                    Some(seg) if seg.last().is_some_and(|p| p.0 + 1.0 == point.0) => {
                        seg.push(point)
                    }
                    _ => segments.push(vec![point]),
                }
                segments
            },
        )
}

/// Finalized transactions per second between consecutive answered samples,
/// at the middle of the interval; a restart or an unanswered sample breaks the
/// line.
fn throughput(samples: &[&Sample], started: f64) -> Vec<Vec<(f64, f64)>> {
    let mut segments = Vec::new();
    let mut current = Vec::new();
    let mut prev: Option<(f64, u64, f64)> = None;
    for s in samples {
        let Some(st) = &s.status else {
            flush(&mut segments, &mut current);
            prev = None;
            continue;
        };
        if let Some((t0, fin0, up0)) = prev {
            let dt = s.t - t0;
            let restarted = st.finalized_transactions < fin0 || st.uptime_secs + 0.5 < up0;
            if restarted {
                flush(&mut segments, &mut current);
            } else if dt > 1e-3 {
                let rate = (st.finalized_transactions - fin0) as f64 / dt;
                if rate.is_finite() {
                    current.push(((t0 + s.t) / 2.0 - started, rate));
                }
            }
        }
        prev = Some((s.t, st.finalized_transactions, st.uptime_secs));
    }
    flush(&mut segments, &mut current);
    segments
}

/// Peers per answered sample; an unanswered sample breaks the line.
fn peers(samples: &[&Sample], started: f64) -> Vec<Vec<(f64, f64)>> {
    let mut segments = Vec::new();
    let mut current = Vec::new();
    for s in samples {
        match &s.status {
            Some(st) => current.push((s.t - started, st.peers as f64)),
            None => flush(&mut segments, &mut current),
        }
    }
    flush(&mut segments, &mut current);
    segments
}

fn flush(segments: &mut Vec<Vec<(f64, f64)>>, current: &mut Vec<(f64, f64)>) {
    if !current.is_empty() {
        segments.push(std::mem::take(current));
    }
}

/// At most about `max` points: per bucket of consecutive points, the lowest and
/// the highest (in x order), so spikes survive.
pub(super) fn downsample(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max < 4 {
        return points.to_vec();
    }
    let size = points.len().div_ceil(max / 2);
    let mut out = Vec::with_capacity(max);
    for chunk in points.chunks(size) {
        let (mut lo, mut hi) = (0, 0);
        for (i, p) in chunk.iter().enumerate() {
            if p.1 < chunk[lo].1 {
                lo = i;
            }
            if p.1 > chunk[hi].1 {
                hi = i;
            }
        }
        out.push(chunk[lo.min(hi)]);
        if lo != hi {
            out.push(chunk[lo.max(hi)]);
        }
    }
    out
}

// ---------------------------------------------------------------- SVG

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Line,
    Dashed,
    Dots,
}

struct Series {
    label: String,
    colour: &'static str,
    style: Style,
    /// Stroke width of lines.
    width: f64,
    segments: Vec<Vec<(f64, f64)>>,
}

struct Plot<'a> {
    id: &'a str,
    title: &'a str,
    caption: &'a str,
    y_label: &'a str,
    obs: &'a Observations,
    /// Seconds from `started` to `ended` (the x axis).
    span: f64,
    series: Vec<Series>,
    integer_y: bool,
    /// An extra legend line.
    note: Option<String>,
}

const WIDTH: f64 = 1120.0;
const LEFT: f64 = 66.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 14.0;
const PLOT_H: f64 = 230.0;
const BOTTOM: f64 = 46.0;
const ROW: f64 = 18.0;

fn plot(h: &mut String, p: &Plot) {
    let pw = WIDTH - LEFT - RIGHT;
    let x_max = if p.span > 0.0 { p.span } else { 1.0 };

    // Only what lies on the time axis counts for the y range.
    let series: Vec<Series> = p
        .series
        .iter()
        .map(|s| {
            let total: usize = s.segments.iter().map(Vec::len).sum();
            let segments = s
                .segments
                .iter()
                .map(|seg| {
                    let seg: Vec<(f64, f64)> = seg
                        .iter()
                        .copied()
                        .filter(|(x, y)| {
                            // Just outside the axis: kept, the clip cuts the
                            // line at the border.
                            x.is_finite() && y.is_finite() && *x >= -x_max && *x <= 2.0 * x_max
                        })
                        .collect();
                    let budget = (MAX_POINTS * seg.len()).div_ceil(total.max(1)).max(4);
                    downsample(&seg, budget)
                })
                .filter(|seg| !seg.is_empty())
                .collect();
            Series {
                label: s.label.clone(),
                colour: s.colour,
                style: s.style,
                width: s.width,
                segments,
            }
        })
        .collect();
    let on_axis = |p: &&(f64, f64)| p.0 >= 0.0 && p.0 <= x_max;
    let has_data = series
        .iter()
        .any(|s| s.style != Style::Dashed && s.segments.iter().flatten().any(|p| on_axis(&p)));
    let y_data = series
        .iter()
        .flat_map(|s| s.segments.iter().flatten())
        .filter(on_axis)
        .map(|p| p.1)
        .fold(0.0_f64, f64::max);
    let y_data = if y_data > 0.0 { y_data } else { 1.0 };
    let mut y_step = nice_step(y_data / 5.0);
    if p.integer_y {
        y_step = y_step.max(1.0);
    }
    let y_max = ((y_data * 1.05 / y_step).ceil() * y_step).max(y_step);
    let x_step = nice_step(x_max / 10.0);

    let sx = |x: f64| LEFT + x / x_max * pw;
    let sy = |y: f64| TOP + PLOT_H - y / y_max * PLOT_H;

    // Legend rows: series, fault kinds present, the note.
    let mut kinds: Vec<FaultKind> = Vec::new();
    for f in &p.obs.faults {
        if !kinds.contains(&f.kind) {
            kinds.push(f.kind);
        }
    }
    let rows = series.len() + kinds.len() + usize::from(p.note.is_some()) + 1;
    let height = (TOP + PLOT_H + BOTTOM).max(TOP + rows as f64 * ROW + 10.0);

    let _ = write!(
        h,
        "<section class=\"plot\" id=\"plot-{id}\">\n<h3>{}</h3>\n<p>{}</p>\n\
         <svg viewBox=\"0 0 {WIDTH} {}\" role=\"img\" \
         aria-label=\"{}\" font-size=\"12\" font-family=\"system-ui, sans-serif\">\n\
         <title>{}</title>\n<defs><clipPath id=\"clip-{id}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/></clipPath></defs>\n",
        esc(p.title),
        esc(p.caption),
        f(height),
        esc(p.title),
        esc(p.title),
        f(LEFT),
        f(TOP),
        f(pw),
        f(PLOT_H),
        id = p.id,
    );
    // Plot area background.
    let _ = writeln!(
        h,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#ffffff\" stroke=\"#c9ced6\"/>",
        f(LEFT),
        f(TOP),
        f(pw),
        f(PLOT_H)
    );

    // Fault windows.
    h.push_str("<g class=\"faults\">\n");
    for fe in &p.obs.faults {
        fault_rect(h, fe, p.obs, x_max, &sx);
    }
    h.push_str("</g>\n");

    // Grid and ticks.
    h.push_str("<g class=\"axes\" stroke=\"#e6e9ee\">\n");
    let y_ticks = (y_max / y_step).round() as usize;
    for i in 0..=y_ticks {
        let v = i as f64 * y_step;
        let y = sy(v);
        let _ = writeln!(
            h,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#57606a\" stroke=\"none\">{}</text>",
            f(LEFT),
            f(y),
            f(LEFT + pw),
            f(y),
            f(LEFT - 6.0),
            f(y + 4.0),
            tick_label(v, y_step)
        );
    }
    let x_ticks = (x_max / x_step + 1e-9).floor() as usize;
    for i in 0..=x_ticks {
        let v = i as f64 * x_step;
        let x = sx(v);
        let _ = writeln!(
            h,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#57606a\" stroke=\"none\">{}</text>",
            f(x),
            f(TOP),
            f(x),
            f(TOP + PLOT_H),
            f(x),
            f(TOP + PLOT_H + 16.0),
            tick_label(v, x_step)
        );
    }
    h.push_str("</g>\n");
    let _ = writeln!(
        h,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#8c959f\"/>",
        f(LEFT),
        f(TOP),
        f(pw),
        f(PLOT_H)
    );
    let _ = writeln!(
        h,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#3b4252\">seconds since start</text>",
        f(LEFT + pw / 2.0),
        f(TOP + PLOT_H + 36.0)
    );
    let _ = writeln!(
        h,
        "<text transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\" fill=\"#3b4252\">{}</text>",
        f(16.0),
        f(TOP + PLOT_H / 2.0),
        esc(p.y_label)
    );

    // Series.
    let _ = writeln!(h, "<g clip-path=\"url(#clip-{})\" fill=\"none\">", p.id);
    // Reference lines (dashed) first, under the data.
    let (dashed, data): (Vec<&Series>, Vec<&Series>) =
        series.iter().partition(|s| s.style == Style::Dashed);
    for s in dashed.into_iter().chain(data) {
        let d = path(&s.segments, s.style, &sx, &sy);
        if d.is_empty() {
            continue;
        }
        let _ = writeln!(
            h,
            "<path d=\"{d}\" {}><title>{}</title></path>",
            stroke(s),
            esc(&s.label)
        );
    }
    h.push_str("</g>\n");
    if !has_data {
        let _ = writeln!(
            h,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#8c959f\" font-size=\"15\">no data</text>",
            f(LEFT + pw / 2.0),
            f(TOP + PLOT_H / 2.0)
        );
    }

    // Legend.
    let lx = LEFT + pw + 18.0;
    let mut ly = TOP + 8.0;
    h.push_str("<g class=\"legend\">\n");
    for s in &series {
        let swatch = match s.style {
            Style::Dots => format!(
                "<path d=\"M{},{}h0M{},{}h0M{},{}h0\" {}/>",
                f(lx + 2.0),
                f(ly + 2.0),
                f(lx + 9.0),
                f(ly - 2.0),
                f(lx + 16.0),
                f(ly + 1.0),
                stroke(s)
            ),
            _ => format!("<path d=\"M{},{}h20\" {}/>", f(lx), f(ly), stroke(s)),
        };
        let _ = writeln!(
            h,
            "{swatch}<text x=\"{}\" y=\"{}\" fill=\"#1d2330\">{}</text>",
            f(lx + 28.0),
            f(ly + 4.0),
            esc(&truncate(&s.label, 22))
        );
        ly += ROW;
    }
    for k in &kinds {
        let _ = writeln!(
            h,
            "<rect x=\"{}\" y=\"{}\" width=\"20\" height=\"12\" fill=\"{}\" fill-opacity=\"0.18\" stroke=\"{}\" stroke-opacity=\"0.5\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"#1d2330\">{} (fault)</text>",
            f(lx),
            f(ly - 6.0),
            kind_colour(*k),
            kind_colour(*k),
            f(lx + 28.0),
            f(ly + 4.0),
            kind_name(*k)
        );
        ly += ROW;
    }
    if let Some(n) = &p.note {
        let _ = writeln!(
            h,
            "<text x=\"{}\" y=\"{}\" fill=\"#6e7781\">{}</text>",
            f(lx),
            f(ly + 4.0),
            esc(&truncate(n, 30))
        );
    }
    h.push_str("</g>\n</svg>\n</section>\n");
}

fn fault_rect(
    h: &mut String,
    fe: &FaultEvent,
    obs: &Observations,
    x_max: f64,
    sx: &dyn Fn(f64) -> f64,
) {
    let a = fe.start - obs.started;
    let b = fe.end.unwrap_or(obs.ended) - obs.started;
    if !a.is_finite() || !b.is_finite() || b < 0.0 || a > x_max {
        return;
    }
    let (from, to) = (
        rel(a),
        fe.end.map_or_else(|| "the end".to_owned(), |_| rel(b)),
    );
    let (a, b) = (
        a.clamp(0.0, x_max),
        b.clamp(0.0, x_max).max(a.clamp(0.0, x_max)),
    );
    // At least 2 px wide, inside the plot area.
    let width = (sx(b) - sx(a)).max(2.0);
    let x0 = sx(a).min(sx(x_max) - width);
    let _ = writeln!(
        h,
        "<rect class=\"fault\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{c}\" fill-opacity=\"0.13\" \
         stroke=\"{c}\" stroke-opacity=\"0.35\"><title>{} ({}, {from} to {to}{})</title></rect>",
        f(x0),
        f(TOP),
        f(width),
        f(PLOT_H),
        esc(&fe.label),
        kind_name(fe.kind),
        if fe.no_quorum { ", no quorum" } else { "" },
        c = kind_colour(fe.kind),
    );
}

fn path(
    segments: &[Vec<(f64, f64)>],
    style: Style,
    sx: &dyn Fn(f64) -> f64,
    sy: &dyn Fn(f64) -> f64,
) -> String {
    let mut d = String::new();
    for seg in segments {
        if style == Style::Dots || seg.len() == 1 {
            for &(x, y) in seg {
                let _ = write!(d, "M{},{}h0", f(sx(x)), f(sy(y)));
            }
        } else {
            for (i, &(x, y)) in seg.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{},{}",
                    if i == 0 { "M" } else { "L" },
                    f(sx(x)),
                    f(sy(y))
                );
            }
        }
    }
    d
}

fn stroke(s: &Series) -> String {
    match s.style {
        Style::Line => format!(
            "stroke=\"{}\" stroke-width=\"{}\" stroke-linejoin=\"round\" stroke-linecap=\"round\" fill=\"none\"",
            s.colour,
            num(s.width, 1)
        ),
        Style::Dashed => format!(
            "stroke=\"{}\" stroke-width=\"{}\" stroke-dasharray=\"6 4\" fill=\"none\"",
            s.colour,
            num(s.width, 1)
        ),
        Style::Dots => format!(
            "stroke=\"{}\" stroke-width=\"{}\" stroke-linecap=\"round\" stroke-opacity=\"0.55\" fill=\"none\"",
            s.colour,
            num(s.width, 1)
        ),
    }
}

/// Node lines get thinner in node order, so lines that coincide (nodes that
/// agree) stay visible as nested strokes.
fn node_width(i: usize, nodes: usize) -> f64 {
    if nodes <= 1 {
        return 1.8;
    }
    let step = (4.5 / (nodes - 1) as f64).min(1.2);
    1.5 + step * (nodes - 1 - i) as f64
}

fn kind_colour(k: FaultKind) -> &'static str {
    match k {
        FaultKind::Partition => "#d1242f",
        FaultKind::Link => "#bf8700",
        FaultKind::Process => "#8250df",
    }
}

fn kind_name(k: FaultKind) -> &'static str {
    match k {
        FaultKind::Partition => "partition",
        FaultKind::Link => "link",
        FaultKind::Process => "process",
    }
}

// ---------------------------------------------------------------- text

/// 1, 2 or 5 times a power of ten, at least `raw` (1 for nonsense).
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let exp = 10f64.powf(raw.log10().floor());
    let m = raw / exp;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * exp
}

fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        ((-step.log10()).ceil() as usize).min(4)
    };
    num(v, decimals)
}

/// A number with `decimals` decimals; "0" when it is not finite.
fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        let s = format!("{v:.decimals$}");
        // No "-0".
        if s.trim_start_matches('-')
            .chars()
            .all(|c| c == '0' || c == '.')
        {
            s.trim_start_matches('-').to_owned()
        } else {
            s
        }
    } else {
        "0".to_owned()
    }
}

/// An SVG coordinate.
fn f(v: f64) -> String {
    num(v, 1)
}

/// Seconds since the start, as `+12.3s`.
fn rel(secs: f64) -> String {
    if secs.is_finite() && secs < 0.0 {
        format!("-{}s", num(-secs, 1))
    } else {
        format!("+{}s", num(secs, 1))
    }
}

fn secs_text(secs: f64) -> String {
    let secs = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
    if secs >= 120.0 {
        let whole = secs.round() as u64;
        format!("{}m {}s", whole / 60, whole % 60)
    } else {
        format!("{} s", num(secs, 1))
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// Escapes text for HTML content and quoted attributes.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
