//! Custom metric assertions: `metric{labels} op value`, summed over the nodes
//! or on each node, at the end or at some point `within` the start. Counters
//! (`_total`) are summed across restarts; a metric no scrape ever showed is a
//! failure unless the assertion allows it to be absent.

use super::{counter_series, Verdict};
use crate::observe::{split_series, Observations, Sample};
use crate::scenario::MetricAssertion;

/// The matching series summed in one scrape: `None` when the scrape failed,
/// `Some(None)` when it worked but showed no matching series.
fn scraped(s: &Sample, m: &MetricAssertion) -> Option<Option<f64>> {
    if s.metrics.is_empty() {
        return None;
    }
    let matching: Vec<f64> = s
        .metrics
        .iter()
        .filter(|(k, _)| {
            let (name, labels) = split_series(k);
            name == m.metric
                && m.labels
                    .iter()
                    .all(|(lk, lv)| labels.get(lk.as_str()) == Some(&lv.as_str()))
        })
        .map(|(_, v)| *v)
        .collect();
    Some((!matching.is_empty()).then(|| matching.iter().sum()))
}

/// A node's values over time, or why it has none.
fn node_values(
    obs: &Observations,
    node: &str,
    m: &MetricAssertion,
) -> Result<Vec<(f64, f64)>, String> {
    let samples: Vec<&Sample> = obs.of(node).collect();
    let scrapes: Vec<(f64, Option<f64>)> = samples
        .iter()
        .filter_map(|s| Some((s.t, scraped(s, m)?)))
        .collect();
    if scrapes.is_empty() {
        return Err(format!("{node}: never scraped"));
    }
    if scrapes.iter().all(|(_, v)| v.is_none()) {
        if m.allow_absent {
            return Ok(scrapes.iter().map(|(t, _)| (*t, 0.0)).collect());
        }
        return Err(format!(
            "{node}: no scrape showed {} (say `allow_absent: true` if that is fine)",
            m.metric
        ));
    }
    if m.metric.ends_with("_total") {
        return Ok(counter_series(&samples, |s| {
            scraped(s, m).map(|v| v.unwrap_or(0.0))
        }));
    }
    Ok(scrapes
        .iter()
        .map(|(t, v)| (*t, v.unwrap_or(0.0)))
        .collect())
}

/// The latest value at or before `t`.
fn at(values: &[(f64, f64)], t: f64) -> Option<f64> {
    values.iter().rev().find(|(vt, _)| *vt <= t).map(|v| v.1)
}

pub fn metric(obs: &Observations, m: &MetricAssertion) -> Verdict {
    let name = format!(
        "metric {}{} {} {}",
        m.metric,
        if m.labels.is_empty() {
            String::new()
        } else {
            format!("{:?}", m.labels)
        },
        m.op.symbol(),
        m.value
    );
    let mut problems = Vec::new();
    let mut per_node = Vec::new();
    for node in &obs.nodes {
        match node_values(obs, node, m) {
            Ok(v) => per_node.push((node, v)),
            Err(why) => problems.push(why),
        }
    }
    let deadline = m.within.map(|w| obs.started + w.as_secs_f64());
    // Does the assertion hold on these values (at the end, or at some
    // time before the deadline)?
    let holds = |value_at: &dyn Fn(f64) -> Option<f64>, times: &[f64]| match deadline {
        Some(d) => times
            .iter()
            .filter(|t| **t <= d)
            .any(|t| value_at(*t).is_some_and(|v| m.op.holds(v, m.value))),
        None => times
            .last()
            .and_then(|t| value_at(*t))
            .is_some_and(|v| m.op.holds(v, m.value)),
    };
    if m.per_node {
        for (node, values) in &per_node {
            let times: Vec<f64> = values.iter().map(|v| v.0).collect();
            if !holds(&|t| at(values, t), &times) {
                let last = values.last().map_or(0.0, |v| v.1);
                problems.push(format!("{node}: {} = {last}", m.metric));
            }
        }
    } else if problems.is_empty() {
        let mut times: Vec<f64> = per_node
            .iter()
            .flat_map(|(_, v)| v.iter().map(|x| x.0))
            .collect();
        times.sort_by(|a, b| a.total_cmp(b));
        times.dedup();
        let sum = |t: f64| per_node.iter().map(|(_, v)| at(v, t)).sum::<Option<f64>>();
        if !holds(&sum, &times) {
            let total = times.last().and_then(|t| sum(*t)).unwrap_or(0.0);
            problems.push(format!("{} summed over nodes = {total}", m.metric));
        }
    }
    Verdict::new(&name, problems, "holds".into())
}
