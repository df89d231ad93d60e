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
            name == m.metric && m.labels.iter().all(|(lk, lv)| labels.get(lk) == Some(lv))
        })
        .map(|(_, v)| *v)
        .collect();
    if matching.is_empty() && s.metrics.is_empty() {
        // Nothing scraped at all: a failed scrape, not an absent series.
        return None;
    }
    Some((!matching.is_empty()).then(|| matching.iter().sum()))
}

/// A node at one instant: its value, a scrape without the series, or the
/// node down (its process stopped: it claims nothing, and holds nothing).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reading {
    Value(f64),
    Absent,
    Down,
}

/// A node's readings over time.
type Values = Vec<(f64, Reading)>;

/// A node's readings over time, or why it has none at all. A failed scrape
/// of a node that is up carries its last reading forward; a node down reads
/// as down (not as its last value: a killed leader is no leader).
fn node_values(obs: &Observations, node: &str, m: &MetricAssertion) -> Result<Values, String> {
    let samples: Vec<&Sample> = obs.of(node).collect();
    let scrapes: Vec<(f64, Option<f64>)> = samples
        .iter()
        .filter_map(|s| Some((s.t, scraped(s, m)?)))
        .collect();
    if scrapes.is_empty() {
        return Err(format!("{node}: never scraped"));
    }
    let counting = m.agg == Some(Agg::Count);
    if scrapes.iter().all(|(_, v)| v.is_none()) && !counting && !m.allow_absent {
        return Err(format!(
            "{node}: no scrape showed {} (say `allow_absent: true` if that is fine)",
            m.metric
        ));
    }
    let counter: Vec<(f64, f64)> = match m.metric.ends_with("_total") && !counting {
        true => counter_series(&samples, |s| scraped(s, m).map(|v| v.unwrap_or(0.0))),
        false => Vec::new(),
    };
    let absent = match m.allow_absent {
        true => Reading::Value(0.0),
        false => Reading::Absent,
    };
    Ok(samples
        .iter()
        .filter_map(|s| {
            if !obs.up(s) {
                return Some((s.t, Reading::Down));
            }
            let v = scraped(s, m)?;
            let total = counter.iter().find(|(t, _)| *t == s.t).map(|(_, v)| *v);
            Some((
                s.t,
                match (total, v) {
                    (Some(total), _) => Reading::Value(total),
                    (None, Some(v)) => Reading::Value(v),
                    (None, None) => absent,
                },
            ))
        })
        .collect())
}

/// The latest reading at or before `t` (`None` before the first).
fn at(values: &[(f64, Reading)], t: f64) -> Option<Reading> {
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
    Ok((
        w.start,
        w.end.unwrap_or(obs.ended),
        format!("{d} ({})", w.label),
    ))
}

/// One judgement at `t`: whether it holds, and what was seen.
fn judge(
    per_node: &[(&String, Values)],
    m: &MetricAssertion,
    select: Option<&NodeSelect>,
    t: f64,
) -> (bool, String) {
    let now: Vec<(&String, Reading)> = per_node
        .iter()
        .map(|(n, v)| (*n, at(v, t).unwrap_or(Reading::Absent)))
        .collect();
    let value = |r: &Reading| match r {
        Reading::Value(v) => Some(*v),
        _ => None,
    };
    if let Some(agg) = m.agg.or(select.is_none().then_some(Agg::Sum)) {
        // Nodes down claim nothing; a node up without the series fails closed.
        let up: Vec<&(&String, Reading)> =
            now.iter().filter(|(_, r)| *r != Reading::Down).collect();
        let present: Vec<f64> = up.iter().filter_map(|(_, r)| value(r)).collect();
        let figure = match agg {
            Agg::Count => Some(present.len() as f64),
            // Over no live node there is nothing to add up: no figure.
            _ if up.is_empty() || present.len() < up.len() => None,
            Agg::Sum => Some(present.iter().sum()),
            Agg::Max => present.iter().copied().reduce(f64::max),
            Agg::Min => present.iter().copied().reduce(f64::min),
        };
        return match figure {
            Some(v) => (
                m.op.holds(v, m.value),
                format!("{:?} = {v}", agg).to_lowercase(),
            ),
            None => {
                let missing: Vec<&str> = up
                    .iter()
                    .filter(|(_, r)| value(r).is_none())
                    .map(|(n, _)| n.as_str())
                    .collect();
                match missing.is_empty() {
                    true => (false, "no node up to read".to_owned()),
                    false => (false, format!("no value from {}", missing.join(", "))),
                }
            }
        };
    }
    let all: Vec<String> = per_node.iter().map(|(n, _)| (*n).clone()).collect();
    let (_, need) = select
        .cloned()
        .unwrap_or(NodeSelect::Quantifier(Quantifier::All))
        .resolve(&all);
    let holding = now
        .iter()
        .filter(|(_, r)| value(r).is_some_and(|v| m.op.holds(v, m.value)))
        .count();
    let seen: Vec<String> = now
        .iter()
        .map(|(n, r)| match r {
            Reading::Value(v) => format!("{n}={v}"),
            Reading::Absent => format!("{n}=-"),
            Reading::Down => format!("{n} down"),
        })
        .collect();
    (
        holding >= need,
        format!("{holding} of {} hold ({})", now.len(), seen.join(", ")),
    )
}

/// Spans of consecutive failed instants: (start, how long until the next
/// instant that held, or `end`, what was seen at the start).
fn violations(verdicts: &[(f64, bool, String)], end: f64) -> Vec<(f64, f64, String)> {
    let mut out = Vec::new();
    let mut open: Option<(f64, &str)> = None;
    for (t, ok, seen) in verdicts {
        match (open, ok) {
            (None, false) => open = Some((*t, seen)),
            (Some((start, first)), true) => {
                out.push((start, t - start, first.to_owned()));
                open = None;
            }
            _ => {}
        }
    }
    if let Some((start, first)) = open {
        out.push((start, end - start, first.to_owned()));
    }
    out
}

/// The selection judged: explicit, or `all` for `per_node`.
fn selection(m: &MetricAssertion) -> Option<NodeSelect> {
    m.nodes.clone().or(m
        .per_node
        .then_some(NodeSelect::Quantifier(Quantifier::All)))
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
    let strict = !matches!(select, Some(NodeSelect::Quantifier(q)) if q != Quantifier::All);
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
    // Instants from when every node with data has been looked at once (the
    // first round of samples lands over a few milliseconds).
    let from = per_node
        .iter()
        .filter_map(|(_, v)| v.first().map(|x| x.0))
        .fold(from, f64::max);
    let mut times: Vec<f64> = per_node
        .iter()
        .flat_map(|(_, v)| v.iter().map(|x| x.0))
        .filter(|t| *t >= from && *t <= to)
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times.dedup();
    if times.is_empty() {
        let mut why = vec![format!("no scrape with {} during {what}", m.metric)];
        why.extend(notes);
        return Verdict::new(&name, why, String::new());
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
        let tolerated = m.tolerate.map_or(0.0, |d| d.as_secs_f64());
        if let Some((t, secs, seen)) = violations(&verdicts, to)
            .into_iter()
            .find(|(_, secs, _)| *secs > tolerated || m.tolerate.is_none())
        {
            problems.push(format!("not at {} (for {secs:.1}s): {seen}", at_s(t)));
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
    let when = if m.always {
        "at every instant of"
    } else {
        "in"
    };
    Verdict::new(
        &name,
        problems,
        format!("holds {when} {what} ({} instants judged)", verdicts.len()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::FaultEvent;
    use crate::scenario::assertion::Quantifier;
    use crate::scenario::Op;
    use std::time::Duration;
    use testnet_node::api::agent::{ProcessReport, ProcessState};

    const T0: f64 = 1000.0;

    /// Three foreign nodes sampled each second for 20 s; `value(node, s)`
    /// is the metric `m` then (`None`: not exported).
    fn run(value: impl Fn(usize, usize) -> Option<f64>) -> Observations {
        let mut obs = Observations {
            nodes: vec!["n0".into(), "n1".into(), "n2".into()],
            foreign: true,
            started: T0,
            ended: T0 + 20.0,
            ..Observations::default()
        };
        for sec in 0..=20 {
            for n in 0..3 {
                let mut metrics = std::collections::BTreeMap::from([("up".to_owned(), 1.0)]);
                if let Some(v) = value(n, sec) {
                    metrics.insert("m".into(), v);
                }
                obs.samples.push(Sample {
                    t: T0 + sec as f64 + 0.01 * n as f64,
                    node: format!("n{n}"),
                    status: None,
                    process: Some(ProcessReport {
                        state: ProcessState::Running,
                        pid: Some(7),
                        restarts: 0,
                    }),
                    metrics,
                    agent_metrics: Default::default(),
                    peers: None,
                });
            }
        }
        obs.faults.push(FaultEvent {
            start: T0 + 5.0,
            end: Some(T0 + 15.0),
            kind: crate::observe::FaultKind::Partition,
            label: "partition".into(),
            nodes: vec![],
            no_quorum: false,
            cut_off: vec![],
            fault: None,
            applied: None,
            step: Some(0),
        });
        obs
    }

    fn assertion(op: Op, value: f64) -> MetricAssertion {
        MetricAssertion {
            metric: "m".into(),
            labels: Default::default(),
            op,
            value,
            within: None,
            always: false,
            tolerate: None,
            during: None,
            nodes: None,
            agg: None,
            per_node: false,
            allow_absent: false,
        }
    }

    #[test]
    fn two_leaders_at_once_fail_always_unless_briefer_than_tolerated() {
        // n0 leads; n1 also believes it leads from +6 s to +9 s.
        let obs = run(|n, s| Some(f64::from(n == 0 || (n == 1 && (6..9).contains(&s)))));
        let mut at_most_one = assertion(Op::Le, 1.0);
        at_most_one.agg = Some(Agg::Sum);
        at_most_one.always = true;
        let v = metric(&obs, &at_most_one);
        assert!(
            !v.passed && v.summary.contains("not at +6.0s (for 3.0s): sum = 2"),
            "{v:?}"
        );
        at_most_one.tolerate = Some(Duration::from_secs(4));
        assert!(metric(&obs, &at_most_one).passed, "3 s tolerated");
        at_most_one.tolerate = Some(Duration::from_secs(2));
        assert!(!metric(&obs, &at_most_one).passed, "3 s > 2 s");
        // The green twin: one leader throughout.
        at_most_one.tolerate = None;
        assert!(metric(&run(|n, _| Some(f64::from(n == 0))), &at_most_one).passed);
    }

    #[test]
    fn a_sum_over_no_live_node_fails_closed_but_a_count_is_zero() {
        // Every node is down from +8 s on.
        let mut obs = run(|_, _| Some(0.0));
        for s in obs.samples.iter_mut().filter(|s| s.t >= T0 + 8.0) {
            s.metrics.clear();
            s.process.as_mut().unwrap().state = ProcessState::Stopped;
        }
        let mut at_most_one = assertion(Op::Le, 1.0);
        at_most_one.agg = Some(Agg::Sum);
        at_most_one.always = true;
        let v = metric(&obs, &at_most_one);
        assert!(!v.passed && v.summary.contains("no node up"), "{v:?}");
        let mut counted = assertion(Op::Le, 3.0);
        counted.agg = Some(Agg::Count);
        counted.always = true;
        assert!(metric(&obs, &counted).passed, "0 nodes report it: a count");
        // The green twin: the same sum with the nodes up.
        assert!(metric(&run(|_, _| Some(0.0)), &at_most_one).passed);
    }

    #[test]
    fn a_killed_leader_claims_nothing_but_a_silent_live_one_fails_closed() {
        // n0 leads until it is killed at +8 s; n1 leads from +9 s.
        let mut obs = run(|n, s| Some(f64::from((n == 0 && s < 8) || (n == 1 && s >= 9))));
        for s in obs
            .samples
            .iter_mut()
            .filter(|s| s.node == "n0" && s.t >= T0 + 8.0)
        {
            s.metrics.clear();
            s.process.as_mut().unwrap().state = ProcessState::Stopped;
        }
        let mut at_most_one = assertion(Op::Le, 1.0);
        at_most_one.agg = Some(Agg::Sum);
        at_most_one.always = true;
        assert!(
            metric(&obs, &at_most_one).passed,
            "{:?}",
            metric(&obs, &at_most_one)
        );
        let mut every = assertion(Op::Ge, 0.0);
        every.nodes = Some(NodeSelect::Quantifier(Quantifier::All));
        let v = metric(&obs, &every);
        assert!(
            !v.passed && v.summary.contains("n0 down"),
            "a node down holds nothing: {v:?}"
        );
        // Up but its scrape lacks the series: no figure, a failure.
        for s in obs
            .samples
            .iter_mut()
            .filter(|s| s.node == "n0" && s.t >= T0 + 8.0)
        {
            s.process.as_mut().unwrap().state = ProcessState::Running;
            s.metrics.insert("up".into(), 1.0);
        }
        let v = metric(&obs, &at_most_one);
        assert!(!v.passed && v.summary.contains("no value from n0"), "{v:?}");
    }

    #[test]
    fn a_majority_during_a_window_and_every_node_are_told_apart() {
        // During the window (+5..+15) n2 loses its leader (0) from +6 on.
        let obs = run(|n, s| {
            Some(if n == 2 && (6..15).contains(&s) {
                0.0
            } else {
                1.0
            })
        });
        let mut has_leader = assertion(Op::Eq, 1.0);
        has_leader.during = Some("timeline[0]".into());
        has_leader.nodes = Some(NodeSelect::Quantifier(Quantifier::Majority));
        let v = metric(&obs, &has_leader);
        assert!(v.passed && v.summary.contains("partition"), "{v:?}");
        has_leader.nodes = Some(NodeSelect::Quantifier(Quantifier::All));
        let v = metric(&obs, &has_leader);
        assert!(
            !v.passed
                && v.summary.contains("not at the end of timeline[0]")
                && v.summary.contains("n2=0"),
            "{v:?}"
        );
        // The whole run: n2 has its leader back at the end.
        has_leader.during = None;
        assert!(metric(&obs, &has_leader).passed);
        has_leader.nodes = Some(NodeSelect::List(vec!["n0".into(), "n1".into()]));
        has_leader.during = Some("timeline[0]".into());
        assert!(metric(&obs, &has_leader).passed, "n0 and n1 keep theirs");
        has_leader.during = Some("timeline[3]".into());
        let v = metric(&obs, &has_leader);
        assert!(!v.passed && v.summary.contains("never happened"), "{v:?}");
    }

    #[test]
    fn within_a_window_counts_from_its_start_and_silence_fails_closed() {
        // A counter reaching 2 on n0 and n1 at +12 s (7 s into the window).
        let obs = run(|n, s| Some(if n < 2 && s >= 12 { 2.0 } else { 1.0 }));
        let mut changes = assertion(Op::Ge, 2.0);
        changes.nodes = Some(NodeSelect::Quantifier(Quantifier::Majority));
        changes.during = Some("timeline[0]".into());
        changes.within = Some(Duration::from_secs(10));
        assert!(metric(&obs, &changes).passed);
        changes.within = Some(Duration::from_secs(5));
        let v = metric(&obs, &changes);
        assert!(!v.passed && v.summary.contains("not within 5s"), "{v:?}");
        // Count: how many nodes export it; a metric nobody exports fails.
        let none = run(|_, _| None);
        let mut count = assertion(Op::Ge, 1.0);
        count.agg = Some(Agg::Count);
        let v = metric(&none, &count);
        assert!(!v.passed && v.summary.contains("count = 0"), "{v:?}");
        let v = metric(&none, &assertion(Op::Ge, 1.0));
        assert!(
            !v.passed && v.summary.contains("no scrape showed m"),
            "{v:?}"
        );
        let mut majority = assertion(Op::Ge, 1.0);
        majority.nodes = Some(NodeSelect::Quantifier(Quantifier::Majority));
        let v = metric(&none, &majority);
        assert!(
            !v.passed && v.details.iter().any(|d| d.contains("no scrape showed")),
            "{v:?}"
        );
    }
}
