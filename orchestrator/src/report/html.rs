//! `report.html`: one self-contained page (inline CSS and inline SVG; no
//! scripts, fonts, style sheets or images from elsewhere). Three plots share the
//! time axis (seconds since `observations.started`) with the fault windows
//! shaded: finality latency, throughput and peers per node.

use std::fmt::Write as _;

use super::aggregate;
use super::series::{self, Segment};
use super::svg::{self, esc, num, Band, BandKey, Plot, Series, Style, PALETTE};
use super::{iso_utc, run_secs, RunReport};
use crate::load::LoadReport;
use crate::observe::{FaultKind, Observations, Sample};

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
        let _ = write!(h, "<span>started <b>{t}</b></span>");
    }
    if !obs.testnet.is_empty() {
        let _ = write!(h, "<span>testnet <b>{}</b></span>", esc(&obs.testnet));
    }
    let _ = writeln!(
        h,
        "<span>nodes <b>{}</b></span><span>samples <b>{}</b></span></div>",
        series::node_order(obs).len(),
        obs.samples.len()
    );
    if let Some(e) = &r.error {
        let _ = writeln!(
            h,
            "<div class=\"error\"><b>{}</b> (the run was cut short)<pre>{}</pre></div>",
            if r.interrupted {
                "Interrupted"
            } else {
                "Tool error"
            },
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
         <th>Fault</th><th>Nodes</th><th>Quorum</th><th>Observed effect</th></tr></thead>\n<tbody>\n",
    );
    for f in &obs.faults {
        let end = match f.end {
            Some(e) => rel(e - obs.started),
            None => "until the end".to_owned(),
        };
        let effect = match crate::checks::effect::effect(obs, f) {
            Ok(seen) => esc(&seen),
            Err(why) => format!("<span class=\"bad\">none: {}</span>", esc(&why)),
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{end}</td>\
             <td class=\"kinds\"><span style=\"background:{};opacity:.6\"></span>{}</td>\
             <td><code>{}</code></td><td>{}</td><td>{}</td><td>{effect}</td></tr>",
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
    // The same fault windows shade all three plots.
    let bands = fault_bands(obs);
    let band_keys: Vec<BandKey> = series::fault_kinds(&obs.faults)
        .into_iter()
        .map(|k| BandKey {
            colour: kind_colour(k),
            label: format!("{} (fault)", kind_name(k)),
        })
        .collect();
    let by_node = series::samples_by_node(obs, &series::node_order(obs));

    let (caption, latency, note) = latency(obs);
    svg::plot(
        h,
        &Plot {
            id: "latency",
            title: "Finality latency over time",
            caption: &caption,
            y_label: "latency (ms)",
            span,
            series: latency,
            integer_y: false,
            bands: &bands,
            band_keys: &band_keys,
            note,
        },
    );
    svg::plot(
        h,
        &Plot {
            id: "throughput",
            title: "Throughput over time",
            caption: &format!(
                "Transactions finalized per second, one line per node (the increase of its \
                 finalized_transactions counter between consecutive answered samples; \
                 restarts and unanswered samples leave gaps).{}",
                aggregate::caption_note(by_node.len())
            ),
            y_label: "finalized tx/s",
            span,
            series: per_node(
                &by_node,
                |s| series::throughput(s, obs.started),
                |_, segs| aggregate::mean_y(segs),
            ),
            integer_y: false,
            bands: &bands,
            band_keys: &band_keys,
            note: None,
        },
    );
    // The worst nodes for peers: the largest mean shortfall from their neighbours.
    let mut peers = per_node(
        &by_node,
        |s| series::peers(s, obs.started),
        |node, segs| aggregate::mean_y(segs) - obs.neighbours_of(node).len() as f64,
    );
    if let Some(e) = series::full_mesh(obs) {
        peers.push(Series {
            label: if obs.is_mesh() {
                format!("full mesh ({e})")
            } else {
                format!("most neighbours ({e})")
            },
            colour: "#8c959f",
            style: Style::Dashed,
            width: 1.5,
            segments: vec![vec![(0.0, e as f64), (span.max(1.0), e as f64)]],
        });
    }
    svg::plot(
        h,
        &Plot {
            id: "peers",
            title: "Peers per node over time",
            caption: &format!(
                "Established peers reported by each node's /status; gaps where the node \
                 did not answer.{}",
                aggregate::caption_note(by_node.len())
            ),
            y_label: "peers",
            span,
            series: peers,
            integer_y: true,
            bands: &bands,
            band_keys: &band_keys,
            note: None,
        },
    );
}

/// The latency plot's caption, series (each payment's slowest latency as dots,
/// the median per second as a line) and legend note.
fn latency(obs: &Observations) -> (String, Vec<Series>, Option<String>) {
    let Some(load) = &obs.load else {
        let caption = "No workload ran: no finality latency to show.".to_owned();
        return (caption, Vec::new(), None);
    };
    let (points, never) = series::latencies(load, obs.started);
    let caption = format!(
        "Each dot is one accepted payment: x = when it was sent, y = the slowest node's \
         time to finality (ms). {} payment(s) plotted.",
        points.len()
    );
    let note = (never > 0).then(|| format!("{never} never final (not shown)"));
    let p50 = series::p50_per_second(&points);
    let series = vec![
        Series {
            label: "max over nodes".into(),
            colour: PALETTE[0],
            style: Style::Dots,
            width: 4.0,
            segments: vec![points],
        },
        Series {
            label: "p50 per 1 s".into(),
            colour: PALETTE[5],
            style: Style::Line,
            width: 1.8,
            segments: p50,
        },
    ];
    (caption, series, note)
}

/// One line per node, coloured and sized by its place in the node order; past
/// [`aggregate::MANY_NODES`], the envelope and the worst nodes by `score`
/// (lowest first).
fn per_node(
    by_node: &[(String, Vec<&Sample>)],
    segments: impl Fn(&[&Sample]) -> Vec<Segment>,
    score: impl Fn(&str, &[Segment]) -> f64,
) -> Vec<Series> {
    let lines = by_node
        .iter()
        .map(|(node, samples)| (node.clone(), segments(samples)))
        .collect();
    aggregate::lines(lines, score, |i, n, label, segments| Series {
        label,
        colour: PALETTE[i % PALETTE.len()],
        style: Style::Line,
        width: node_width(i, n),
        segments,
    })
}

/// A band per fault, its tooltip saying what, when and whether quorum was lost.
fn fault_bands(obs: &Observations) -> Vec<Band> {
    series::fault_windows(obs)
        .into_iter()
        .map(|w| {
            let fe = w.fault;
            let to = fe.end.map_or_else(|| "the end".to_owned(), |_| rel(w.to));
            Band {
                from: w.from,
                to: w.to,
                colour: kind_colour(fe.kind),
                title: format!(
                    "{} ({}, {} to {to}{})",
                    fe.label,
                    kind_name(fe.kind),
                    rel(w.from),
                    if fe.no_quorum { ", no quorum" } else { "" },
                ),
            }
        })
        .collect()
}

/// The workload's totals, latencies and ledger checks, then the ledgers.
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

    ledger(h, l);
}

/// The ledger each node ended with, as the workload saw it.
fn ledger(h: &mut String, l: &LoadReport) {
    if l.nodes.is_empty() {
        return;
    }
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
        FaultKind::Resource => "#0969da",
        FaultKind::Clock => "#1a7f37",
        FaultKind::Byzantine => "#cf222e",
        FaultKind::Disk => "#6e7781",
    }
}

fn kind_name(k: FaultKind) -> &'static str {
    match k {
        FaultKind::Partition => "partition",
        FaultKind::Link => "link",
        FaultKind::Process => "process",
        FaultKind::Resource => "resource",
        FaultKind::Clock => "clock",
        FaultKind::Byzantine => "byzantine",
        FaultKind::Disk => "disk",
    }
}

/// Seconds since the start, as `+12.3s`.
fn rel(secs: f64) -> String {
    if secs.is_finite() && secs < 0.0 {
        format!("-{}s", num(-secs, 1))
    } else {
        format!("+{}s", num(secs, 1))
    }
}

/// A duration: `12.3 s`, or `4m 5s` from two minutes on.
fn secs_text(secs: f64) -> String {
    let secs = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
    if secs >= 120.0 {
        let whole = secs.round() as u64;
        format!("{}m {}s", whole / 60, whole % 60)
    } else {
        format!("{} s", num(secs, 1))
    }
}
