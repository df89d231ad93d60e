//! Custom metric assertions (see `scenario::assertion`): a metric's value on
//! each selected node, or one figure across them (`agg`), judged at the end
//! of a span, at some instant `within` its start, or at every instant
//! (`always`); the span is the run or a timeline step's fault window
//! (`during`). Counters (`_total`) are summed across restarts. A node never
//! scraped, or a metric no scrape showed, is a failure unless the assertion
//! allows it to be absent; a span with no sample is a failure too.

use super::{counter_series, Verdict};
use crate::observe::{split_series, Observations, Sample};
use crate::scenario::assertion::{step_index, Quantifier};
use crate::scenario::{Agg, MetricAssertion, NodeSelect};

/// The matching series summed in one scrape: `None` when the scrape failed,
/// `Some(None)` when it worked but showed no matching series.
fn scraped(s: &Sample, m: &MetricAssertion) -> Option<Option<f64>> {
    if s.metrics.is_empty() && s.status.is_none() && s.process.is_none() {
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
    if matching.is_empty() && s.metrics.is_empty() {
        // Nothing scraped at all: a failed scrape, not an absent series.
        return None;
    }
    Some((!matching.is_empty()).then(|| matching.iter().sum()))
}

/// A node's values over time (`None`: no matching series then), or why it
/// has none at all.
fn node_values(
    obs: &Observations,
    node: &str,
    m: &MetricAssertion,
) -> Result<Vec<(f64, Option<f64>)>, String> {
    let samples: Vec<&Sample> = obs.of(node).collect();
    let scrapes: Vec<(f64, Option<f64>)> = samples
        .iter()
        .filter_map(|s| Some((s.t, scraped(s, m)?)))
        .collect();
    if scrapes.is_empty() {
        return Err(format!("{node}: never scraped"));
    }
    let counting = m.agg == Some(Agg::Count);
    if scrapes.iter().all(|(_, v)| v.is_none()) && !counting {
        if m.allow_absent {
            return Ok(scrapes.iter().map(|(t, _)| (*t, Some(0.0))).collect());
        }
        return Err(format!(
            "{node}: no scrape showed {} (say `allow_absent: true` if that is fine)",
            m.metric
        ));
    }
    if m.metric.ends_with("_total") && !counting {
        return Ok(counter_series(&samples, |s| {
            scraped(s, m).map(|v| v.unwrap_or(0.0))
        })
        .into_iter()
        .map(|(t, v)| (t, Some(v)))
        .collect());
    }
    let absent = if m.allow_absent { Some(0.0) } else { None };
    Ok(scrapes
        .into_iter()
        .map(|(t, v)| (t, v.or(absent)))
        .collect())
}

/// The latest scrape at or before `t`: its value, `Some(None)` when that
/// scrape lacked the series, `None` before the first scrape.
fn at(values: &[(f64, Option<f64>)], t: f64) -> Option<Option<f64>> {
    values.iter().rev().find(|(vt, _)| *vt <= t).map(|v| v.1)
}

/// The span judged: the run, or a step's first fault window.
fn span(obs: &Observations, m: &MetricAssertion) -> Result<(f64, f64, String), String> {
    let Some(d) = &m.during else {
        return Ok((obs.started, obs.ended, "the run".into()));
    };
    let step = step_index(d).ok_or_else(|| format!("{d:?} is not timeline[N]"))?;
    let w = obs
        .faults
        .iter()
        .filter(|f| f.step == Some(step))
        .min_by(|a, b| a.start.total_cmp(&b.start))
        .ok_or_else(|| format!("{d} never happened in this run"))?;
    Ok((w.start, w.end.unwrap_or(obs.ended), format!("{d} ({})", w.label)))
}

/// One judgement at `t`: whether it holds, and what was seen.
fn judge(
    per_node: &[(&String, Vec<(f64, Option<f64>)>)],
    m: &MetricAssertion,
    select: Option<&NodeSelect>,
    t: f64,
) -> (bool, String) {
    let now: Vec<(&String, Option<f64>)> = per_node
        .iter()
        .map(|(n, v)| (*n, at(v, t).flatten()))
        .collect();
    if let Some(agg) = m.agg.or(select.is_none().then_some(Agg::Sum)) {
        let present: Vec<f64> = now.iter().filter_map(|(_, v)| *v).collect();
        let figure = match agg {
            Agg::Count => Some(present.len() as f64),
            _ if present.len() < now.len() => None,
            Agg::Sum => Some(present.iter().sum()),
            Agg::Max => present.iter().copied().reduce(f64::max),
            Agg::Min => present.iter().copied().reduce(f64::min),
        };
        return match figure {
            Some(v) => (m.op.holds(v, m.value), format!("{:?} = {v}", agg).to_lowercase()),
            None => {
                let missing: Vec<&str> = now.iter().filter(|(_, v)| v.is_none()).map(|(n, _)| n.as_str()).collect();
                (false, format!("no value from {}", missing.join(", ")))
            }
        };
    }
    let all: Vec<String> = per_node.iter().map(|(n, _)| (*n).clone()).collect();
    let (_, need) = select
        .cloned()
        .unwrap_or(NodeSelect::Quantifier(Quantifier::All))
        .resolve(&all);
    let holding = now.iter().filter(|(_, v)| v.is_some_and(|v| m.op.holds(v, m.value))).count();
    let seen: Vec<String> = now
        .iter()
        .map(|(n, v)| format!("{n}={}", v.map_or("-".into(), |v| v.to_string())))
        .collect();
    (holding >= need, format!("{holding} of {} hold ({})", now.len(), seen.join(", ")))
}

/// The selection judged: explicit, or `all` for `per_node`.
fn selection(m: &MetricAssertion) -> Option<NodeSelect> {
    m.nodes
        .clone()
        .or(m.per_node.then_some(NodeSelect::Quantifier(Quantifier::All)))
}

pub fn metric(obs: &Observations, m: &MetricAssertion) -> Verdict {
    let name = m.describe();
    let select = selection(m);
    let selected: Vec<String> = match &select {
        Some(NodeSelect::List(list)) => list.clone(),
        _ => obs.nodes.clone(),
    };
    // A node with no data fails an aggregate or a list outright; in a
    // quantified selection it counts as not holding (and is named).
    let strict = !matches!(select, Some(NodeSelect::Quantifier(q)) if q != Quantifier::All) ;
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    let mut per_node = Vec::new();
    for node in &selected {
        match node_values(obs, node, m) {
            Ok(v) => per_node.push((node, v)),
            Err(why) if strict => problems.push(why),
            Err(why) => {
                notes.push(why);
                per_node.push((node, Vec::new()));
            }
        }
    }
    if !problems.is_empty() {
        return Verdict::new(&name, problems, String::new());
    }
    let (from, to, what) = match span(obs, m) {
        Ok(s) => s,
        Err(why) => return Verdict::new(&name, vec![why], String::new()),
    };
    let mut times: Vec<f64> = per_node
        .iter()
        .flat_map(|(_, v)| v.iter().map(|x| x.0))
        .filter(|t| *t >= from && *t <= to)
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times.dedup();
    if times.is_empty() {
        return Verdict::new(&name, vec![format!("no scrape during {what}")], String::new());
    }
    let verdicts: Vec<(f64, bool, String)> = times
        .iter()
        .map(|t| {
            let (ok, seen) = judge(&per_node, m, select.as_ref(), *t);
            (*t, ok, seen)
        })
        .collect();
    let at_s = |t: f64| format!("+{:.1}s", t - obs.started);
    if m.always {
        if let Some((t, _, seen)) = verdicts.iter().find(|v| !v.1) {
            problems.push(format!("not at {}: {seen}", at_s(*t)));
        }
    } else if let Some(w) = m.within {
        let deadline = from + w.as_secs_f64();
        if !verdicts.iter().any(|v| v.0 <= deadline && v.1) {
            let last = verdicts
                .iter()
                .rev()
                .find(|v| v.0 <= deadline)
                .or(verdicts.first());
            let seen = last.map_or(String::new(), |v| v.2.clone());
            problems.push(format!(
                "not within {} of the start of {what}; last seen: {seen}",
                humantime::format_duration(w)
            ));
        }
    } else if let Some((t, ok, seen)) = verdicts.last() {
        if !ok {
            problems.push(format!("not at the end of {what} ({}): {seen}", at_s(*t)));
        }
    }
    if !problems.is_empty() {
        problems.extend(notes);
    }
    let when = if m.always { "at every instant of" } else { "in" };
    Verdict::new(
        &name,
        problems,
        format!("holds {when} {what} ({} instants judged)", verdicts.len()),
    )
}
