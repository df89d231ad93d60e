//! Every accepted payment final on every node within a bound, and nothing
//! final while no validator could gather a quorum.
//!
//! A payment's bound at a node starts when it was sent, and is pushed only by
//! what keeps it from finalizing there: a span with no quorum anywhere, a
//! cut that leaves that node (or the node that accepted the payment) hearing
//! no validator able to certify, or that node (or the accepting one) being
//! down. Each pushes the bound to its end (a fault still open when the
//! timeline ended counts as ending then); a delay or a loss that leaves a
//! quorum pushes nothing.

use super::Verdict;
use crate::observe::{FaultKind, Observations};

/// Certificates formed just before a cut may land this long after it.
const PARTITION_GRACE_SECS: f64 = 1.0;

/// A span that keeps some nodes (or all) from finalizing.
struct Hold<'a> {
    start: f64,
    end: f64,
    /// `None`: every node.
    nodes: Option<&'a [String]>,
}

fn holds(obs: &Observations) -> Vec<Hold<'_>> {
    let open_end = obs.timeline_end.unwrap_or(obs.ended);
    let mut out = Vec::new();
    for g in &obs.quorum_gaps {
        out.push(Hold {
            start: g.start,
            end: g.end.unwrap_or(open_end),
            nodes: None,
        });
    }
    // A record with quorum gaps has them exact; a window's flag only says the
    // quorum was gone when it began (older records have nothing else).
    let legacy = obs.quorum_gaps.is_empty();
    for f in &obs.faults {
        let end = f.end.unwrap_or(open_end);
        if legacy && f.no_quorum {
            out.push(Hold {
                start: f.start,
                end,
                nodes: None,
            });
        }
        if f.kind == FaultKind::Process {
            out.push(Hold {
                start: f.start,
                end,
                nodes: Some(&f.nodes),
            });
        }
        if !f.cut_off.is_empty() {
            out.push(Hold {
                start: f.start,
                end,
                nodes: Some(&f.cut_off),
            });
        }
    }
    out
}

/// When the payment sent at `sent` must be final at `node` (accepted by
/// `accepted_by`, if known).
fn deadline(
    holds: &[Hold<'_>],
    sent: f64,
    within: f64,
    node: &str,
    accepted_by: Option<&str>,
) -> f64 {
    let mut from = sent;
    loop {
        let blocks = |h: &&Hold<'_>| match h.nodes {
            None => true,
            Some(nodes) => nodes
                .iter()
                .any(|n| n == node || Some(n.as_str()) == accepted_by),
        };
        let pushed = holds
            .iter()
            .filter(blocks)
            .filter(|h| h.start <= from + within && h.end > from)
            .map(|h| h.end)
            .fold(from, f64::max);
        if pushed <= from {
            return from + within;
        }
        from = pushed;
    }
}

pub fn finality(obs: &Observations, within: f64) -> Verdict {
    let Some(load) = &obs.load else {
        return Verdict::new(
            "finality",
            vec!["no workload ran: nothing to check".into()],
            String::new(),
        );
    };
    let mut problems = Vec::new();
    if load.payments.is_empty() {
        problems.push(format!(
            "no payment was accepted (refused: {:?})",
            load.refused
        ));
    }
    let names: Vec<String> = load.nodes.iter().map(|n| n.name.clone()).collect();
    let holds = holds(obs);
    let mut worst = 0.0f64;
    for p in &load.payments {
        let sent = p.sent_ms as f64 / 1000.0;
        let accepted_by = p
            .submitted_to
            .and_then(|i| names.get(i))
            .map(String::as_str);
        for (i, at) in p.final_ms.iter().enumerate() {
            let node = names.get(i).map(String::as_str).unwrap_or("?");
            let Some(ms) = at else {
                problems.push(format!(
                    "payment sent at +{:.1}s never final on {node}",
                    sent - obs.started
                ));
                continue;
            };
            let t = *ms as f64 / 1000.0;
            worst = worst.max(t - sent);
            let due = deadline(&holds, sent, within, node, accepted_by);
            if t > due {
                problems.push(format!(
                    "payment sent at +{:.1}s final on {node} only at +{:.1}s (bound {within}s, due by +{:.1}s)",
                    sent - obs.started,
                    t - obs.started,
                    due - obs.started
                ));
            }
            if let Some(why) = no_quorum_at(obs, t) {
                problems.push(format!(
                    "payment final on {node} at +{:.1}s while {why} (false finality)",
                    t - obs.started
                ));
            }
        }
    }
    let short = match load.skipped {
        0 => String::new(),
        n => format!(
            "; {n} of {} planned payments not sent (no free coin, or too many awaiting an answer)",
            load.planned
        ),
    };
    Verdict::new(
        "finality",
        problems,
        format!(
            "{} payments final on all {} nodes; slowest {:.2}s; p99 at a node {:.0} ms{short}",
            load.payments.len(),
            names.len(),
            worst,
            load.latency_p99_ms
        ),
    )
}

/// What left no quorum anywhere at `t` (past the grace at its start), if anything.
fn no_quorum_at(obs: &Observations, t: f64) -> Option<String> {
    let inside = |start: f64, end: Option<f64>| {
        t > start + PARTITION_GRACE_SECS && t < end.unwrap_or(obs.ended)
    };
    if let Some(g) = obs.quorum_gaps.iter().find(|g| inside(g.start, g.end)) {
        return Some(format!("no validator could gather a quorum ({})", g.why));
    }
    if !obs.quorum_gaps.is_empty() {
        return None;
    }
    obs.faults
        .iter()
        .find(|f| f.no_quorum && inside(f.start, f.end))
        .map(|f| format!("`{}` left no quorum", f.label))
}
