//! Many nodes on one plot: past [`MANY_NODES`] a line per node is a blur, so
//! the plot shows the mean, the minimum and the maximum over the nodes each
//! second, plus the few worst nodes by name (whoever a reader should look at).

use super::series::Segment;
use super::svg::{Series, Style, PALETTE};

/// Above this many nodes, plots aggregate.
pub(super) const MANY_NODES: usize = 16;
/// Worst nodes drawn by name beside the aggregate.
pub(super) const WORST_SHOWN: usize = 3;

/// What a caption adds when a plot aggregates.
pub(super) fn caption_note(nodes: usize) -> String {
    if nodes > MANY_NODES {
        format!(
            " With {nodes} nodes: the mean, minimum and maximum over the nodes each second, \
             and the {WORST_SHOWN} worst nodes by name."
        )
    } else {
        String::new()
    }
}

/// One series per node, or, past [`MANY_NODES`], the envelope and the worst
/// nodes: those with the lowest `score` (given the node's name and points).
pub(super) fn lines(
    per_node: Vec<(String, Vec<Segment>)>,
    score: impl Fn(&str, &[Segment]) -> f64,
    each: impl Fn(usize, usize, String, Vec<Segment>) -> Series,
) -> Vec<Series> {
    let n = per_node.len();
    if n <= MANY_NODES {
        return per_node
            .into_iter()
            .enumerate()
            .map(|(i, (node, segs))| each(i, n, node, segs))
            .collect();
    }
    let all: Vec<&[Segment]> = per_node.iter().map(|(_, s)| s.as_slice()).collect();
    let [mean, low, high] = envelope(&all);
    let mut out = vec![
        line("max over nodes", PALETTE[6], 1.2, high),
        line("mean over nodes", PALETTE[0], 2.2, mean),
        line("min over nodes", PALETTE[6], 1.2, low),
    ];
    let mut ranked: Vec<(f64, usize)> = per_node
        .iter()
        .enumerate()
        .map(|(i, (node, segs))| (score(node, segs), i))
        .filter(|(s, _)| s.is_finite())
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let colours = [PALETTE[5], PALETTE[3], PALETTE[1]];
    for (k, (_, i)) in ranked.into_iter().take(WORST_SHOWN).enumerate() {
        let (node, segs) = &per_node[i];
        out.push(line(
            &format!("worst: {node}"),
            colours[k % 3],
            1.5,
            segs.clone(),
        ));
    }
    out
}

fn line(label: &str, colour: &'static str, width: f64, segments: Vec<Segment>) -> Series {
    Series {
        label: label.to_owned(),
        colour,
        style: Style::Line,
        width,
        segments,
    }
}

/// The mean of a node's points (NaN without any).
pub(super) fn mean_y(segments: &[Segment]) -> f64 {
    let ys: Vec<f64> = segments.iter().flatten().map(|p| p.1).collect();
    ys.iter().sum::<f64>() / ys.len() as f64
}

/// Per 1-second bucket of x: the mean, minimum and maximum over the nodes with
/// a point in it (a node's points in one bucket averaged first), at the middle
/// of the bucket; a bucket no node has breaks the lines.
fn envelope(per_node: &[&[Segment]]) -> [Vec<Segment>; 3] {
    let mut buckets: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    for segs in per_node {
        let mut mine: std::collections::BTreeMap<i64, (f64, usize)> = Default::default();
        for &(x, y) in segs
            .iter()
            .flatten()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
        {
            let e = mine.entry(x.floor() as i64).or_default();
            *e = (e.0 + y, e.1 + 1);
        }
        for (b, (sum, k)) in mine {
            buckets.entry(b).or_default().push(sum / k as f64);
        }
    }
    let mut out: [Vec<Segment>; 3] = Default::default();
    let mut prev: Option<i64> = None;
    for (b, ys) in buckets {
        let mean = ys.iter().sum::<f64>() / ys.len() as f64;
        let low = ys.iter().copied().fold(f64::INFINITY, f64::min);
        let high = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let x = b as f64 + 0.5;
        for (series, y) in out.iter_mut().zip([mean, low, high]) {
            match series.last_mut() {
                Some(seg) if prev == Some(b - 1) => seg.push((x, y)),
                _ => series.push(vec![(x, y)]),
            }
        }
        prev = Some(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn each(_: usize, _: usize, label: String, segments: Vec<Segment>) -> Series {
        line(&label, PALETTE[0], 1.0, segments)
    }

    #[test]
    fn few_nodes_keep_a_line_each_and_many_are_aggregated_with_the_worst_named() {
        let node = |i: usize| {
            (
                format!("n{i}"),
                vec![vec![(0.2, i as f64), (1.4, i as f64 + 1.0)]],
            )
        };
        let few: Vec<_> = (0..4).map(node).collect();
        let out = lines(few, |_, s| mean_y(s), each);
        assert_eq!(out.len(), 4);
        let many: Vec<_> = (0..40).map(node).collect();
        let out = lines(many, |_, s| mean_y(s), each);
        let labels: Vec<&str> = out.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "max over nodes",
                "mean over nodes",
                "min over nodes",
                "worst: n0",
                "worst: n1",
                "worst: n2"
            ]
        );
        assert_eq!(out[0].segments, vec![vec![(0.5, 39.0), (1.5, 40.0)]]);
        assert_eq!(out[1].segments, vec![vec![(0.5, 19.5), (1.5, 20.5)]]);
        assert_eq!(out[2].segments, vec![vec![(0.5, 0.0), (1.5, 1.0)]]);
    }

    #[test]
    fn a_second_no_node_has_breaks_the_envelope() {
        let a = vec![vec![(0.1, 1.0)], vec![(3.2, 2.0), (3.7, 4.0)]];
        let b = vec![vec![(0.9, 3.0)]];
        let [mean, low, high] = envelope(&[&a, &b]);
        assert_eq!(mean, vec![vec![(0.5, 2.0)], vec![(3.5, 3.0)]]);
        assert_eq!(low[0], vec![(0.5, 1.0)]);
        assert_eq!(high[0], vec![(0.5, 3.0)]);
    }
}
