//! The point series the report plots, computed from observations: finality
//! latency per payment and its median per second, throughput and peers per
//! node, the fault windows to shade, and the thinning that keeps long series
//! small. Pure data: x is seconds since `observations.started`, and a series is
//! a list of segments, split where the data has a gap (a line is not drawn
//! across a gap).

use std::collections::BTreeMap;

use crate::load::LoadReport;
use crate::observe::{FaultEvent, FaultKind, Observations, Sample};

/// `(x, y)` points drawn as one line.
pub(super) type Segment = Vec<(f64, f64)>;

/// The nodes in `obs.nodes` order, then any other node seen in the samples.
pub(super) fn node_order(obs: &Observations) -> Vec<String> {
    let mut nodes = obs.nodes.clone();
    for s in &obs.samples {
        if !nodes.contains(&s.node) {
            nodes.push(s.node.clone());
        }
    }
    nodes
}

/// Each node's samples in time order.
pub(super) fn samples_by_node<'a>(
    obs: &'a Observations,
    nodes: &[String],
) -> Vec<(String, Vec<&'a Sample>)> {
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
pub(super) fn latencies(load: &LoadReport, started: f64) -> (Segment, usize) {
    let mut never = 0;
    let mut points: Segment = load
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
pub(super) fn p50_per_second(points: &[(f64, f64)]) -> Vec<Segment> {
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
        .fold(Vec::new(), |mut segments: Vec<Segment>, (b, median)| {
            let point = (b as f64 + 0.5, median);
            match segments.last_mut() {
                Some(seg) if seg.last().is_some_and(|p| p.0 + 1.0 == point.0) => seg.push(point),
                _ => segments.push(vec![point]),
            }
            segments
        })
}

/// Finalized transactions per second between consecutive answered samples,
/// at the middle of the interval; a restart or an unanswered sample breaks the
/// line.
pub(super) fn throughput(samples: &[&Sample], started: f64) -> Vec<Segment> {
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
            // A counter that went down or an uptime that did: the node started
            // afresh, and the difference would be meaningless.
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

/// Peers per answered sample (ours by `/status`, a foreign node's by its
/// holder's view of its connections); an unanswered sample breaks the line.
pub(super) fn peers(samples: &[&Sample], started: f64) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut current = Vec::new();
    for s in samples {
        let seen = match (&s.status, &s.peers) {
            (Some(st), _) => Some(st.peers),
            (None, Some(p)) => Some(p.len()),
            (None, None) => None,
        };
        match seen {
            Some(n) => current.push((s.t - started, n as f64)),
            None => flush(&mut segments, &mut current),
        }
    }
    flush(&mut segments, &mut current);
    segments
}

/// The peers a full mesh gives a node (the most any node expected), if known.
pub(super) fn full_mesh(obs: &Observations) -> Option<usize> {
    if obs.foreign {
        return obs.nodes.iter().map(|n| obs.neighbours_of(n).len()).max();
    }
    obs.samples
        .iter()
        .filter_map(|s| s.status.as_ref())
        .map(|st| st.expected_peers)
        .max()
        .filter(|e| *e > 0)
}

/// Ends the current segment at a gap.
fn flush(segments: &mut Vec<Segment>, current: &mut Segment) {
    if !current.is_empty() {
        segments.push(std::mem::take(current));
    }
}

/// A fault on the time axis: seconds since the start it was applied and
/// undone (the end of the run when it never was). Either may be outside the
/// run or not finite; the plot decides what to draw.
pub(super) struct FaultWindow<'a> {
    pub(super) fault: &'a FaultEvent,
    pub(super) from: f64,
    pub(super) to: f64,
}

/// Every fault, in `obs.faults` order.
pub(super) fn fault_windows(obs: &Observations) -> Vec<FaultWindow<'_>> {
    obs.faults
        .iter()
        .map(|fault| FaultWindow {
            fault,
            from: fault.start - obs.started,
            to: fault.end.unwrap_or(obs.ended) - obs.started,
        })
        .collect()
}

/// The kinds of fault that occur, in order of first occurrence (one legend
/// entry each).
pub(super) fn fault_kinds(faults: &[FaultEvent]) -> Vec<FaultKind> {
    let mut kinds: Vec<FaultKind> = Vec::new();
    for f in faults {
        if !kinds.contains(&f.kind) {
            kinds.push(f.kind);
        }
    }
    kinds
}

/// At most about `max` points: per bucket of consecutive points, the lowest and
/// the highest (in x order), so spikes survive.
pub(super) fn downsample(points: &[(f64, f64)], max: usize) -> Segment {
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

#[cfg(test)]
mod tests;
