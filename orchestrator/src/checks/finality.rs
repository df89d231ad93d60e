//! Every accepted payment final on every node within a bound, and nothing
//! final while no validator could gather a quorum.
//!
//! A payment's bound at a node starts when it was sent, and is pushed only by
//! what keeps it from finalizing there: a span with no quorum anywhere, a
//! cut that leaves that node (or the node that accepted the payment) hearing
//! no validator able to certify, or that node (or the accepting one) being
//! down, Byzantine or under a disk fault. Each pushes the bound to its end (a fault still open
//! when the timeline ended counts as ending then); a delay or a loss that
//! leaves a quorum pushes nothing. A payment a mute (or garbage-sending)
//! Byzantine node accepted is its client's loss, not the network's: it is not
//! judged (safety still is); other misbehaviours still pass payments on.

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
        if matches!(
            f.kind,
            FaultKind::Process | FaultKind::Byzantine | FaultKind::Disk
        ) {
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

/// Was `node` Byzantine at `t` (a window of that kind on it, open then)?
fn byzantine_at(obs: &Observations, node: &str, t: f64) -> bool {
    use testnet_node::byzantine::Behaviour;
    let open_end = obs.timeline_end.unwrap_or(obs.ended);
    // Only a node that sends nothing whole swallows what its clients gave it:
    // the other behaviours still pass transactions on.
    let swallows = |f: &crate::observe::FaultEvent| {
        matches!(
            f.fault,
            Some(crate::fault::Fault::Byzantine {
                behaviour: Behaviour::Mute | Behaviour::GarbageFrames,
                ..
            })
        )
    };
    obs.faults.iter().any(|f| {
        f.kind == FaultKind::Byzantine
            && swallows(f)
            && f.nodes.iter().any(|n| n == node)
            && f.start <= t
            && t <= f.end.unwrap_or(open_end)
    })
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
    let mut lost_to_byzantine = 0;
    for p in &load.payments {
        let sent = p.sent_ms as f64 / 1000.0;
        let accepted_by = p
            .submitted_to
            .and_then(|i| names.get(i))
            .map(String::as_str);
        if accepted_by.is_some_and(|n| byzantine_at(obs, n, sent)) {
            lost_to_byzantine += 1;
            continue;
        }
        for (i, at) in p.final_ms.iter().enumerate() {
            let node = names.get(i).map(String::as_str).unwrap_or("?");
            // Final there without a time (its list skipped it; its ledger
            // agreed at the end): nothing to bound.
            if at.is_none() && p.held.contains(&i) {
                continue;
            }
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
    let judged = load.payments.len() - lost_to_byzantine;
    if judged == 0 && lost_to_byzantine > 0 {
        problems.push(format!(
            "all {lost_to_byzantine} accepted payments went through a node while it was Byzantine: nothing to judge"
        ));
    }
    let byzantine = match lost_to_byzantine {
        0 => String::new(),
        n => format!("; {n} accepted by a node while it was Byzantine, not judged"),
    };
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
            "{judged} payments final on all {} nodes; slowest {:.2}s; p99 at a node {:.0} ms{byzantine}{short}",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{LoadReport, NodeSummary, Payment};
    use crate::observe::FaultEvent;

    const T0: f64 = 1_000.0;

    fn obs(
        payments: Vec<(f64, usize, [f64; 2])>,
        byzantine: Option<(f64, Option<f64>)>,
    ) -> Observations {
        let nodes = ["n0", "n1"];
        let payments = payments
            .into_iter()
            .map(|(sent, to, at)| Payment {
                held: Vec::new(),
                sent_ms: ((T0 + sent) * 1000.0) as u64,
                submitted_to: Some(to),
                final_ms: at
                    .iter()
                    .map(|a| (*a >= 0.0).then(|| ((T0 + a) * 1000.0) as u64))
                    .collect(),
            })
            .collect();
        let summary = |n: &str| NodeSummary {
            endpoint: String::new(),
            answered: true,
            name: n.into(),
            finalized: 0,
            utxo_digest: String::new(),
            total_value: 0,
            fees: 0,
            conflicting_certificates: 0,
        };
        Observations {
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            started: T0,
            ended: T0 + 30.0,
            faults: byzantine
                .map(|(start, end)| FaultEvent {
                    start: T0 + start,
                    end: end.map(|e| T0 + e),
                    kind: FaultKind::Byzantine,
                    label: "byzantine n1 mute".into(),
                    nodes: vec!["n1".into()],
                    no_quorum: false,
                    cut_off: vec![],
                    fault: Some(crate::fault::Fault::Byzantine {
                        nodes: vec!["n1".into()],
                        behaviour: testnet_node::byzantine::Behaviour::Mute,
                        delay_ms: 0,
                    }),
                    applied: None,
                    step: Some(0),
                })
                .into_iter()
                .collect(),
            load: Some(LoadReport {
                interrupted: false,
                duration_secs: 10.0,
                planned: 0,
                submitted: 0,
                skipped: 0,
                accepted: 0,
                refused: Default::default(),
                double_spend_pairs: 0,
                conflicting_pairs_finalized: 0,
                finalized_everywhere: 0,
                not_finalized: 0,
                not_finalized_examples: vec![],
                unread_forgotten: 0,
                vouched: 0,
                latency_p50_ms: 0.0,
                latency_p99_ms: 0.0,
                latency_max_ms: 0.0,
                throughput_tps: 0.0,
                nodes: nodes.iter().map(|n| summary(n)).collect(),
                payments,
                digests_agree: true,
                value_conserved: true,
            }),
            ..Observations::default()
        }
    }

    #[test]
    fn a_payment_a_byzantine_node_swallowed_is_not_judged_but_the_rest_are() {
        // n1 is mute from +5 s to the end: what it accepted then never leaves it.
        let swallowed = (6.0, 1, [-1.0, 6.1]);
        let honest = (7.0, 0, [7.1, 7.2]);
        let v = finality(&obs(vec![swallowed, honest], Some((5.0, None))), 3.0);
        assert!(v.passed, "{v:?}");
        assert!(
            v.summary
                .contains("1 accepted by a node while it was Byzantine, not judged"),
            "{v:?}"
        );
        // Delaying its votes, n1 still passes payments on: judged, and failed.
        let mut delaying = obs(vec![swallowed, honest], Some((5.0, None)));
        if let Some(crate::fault::Fault::Byzantine { behaviour, .. }) =
            &mut delaying.faults[0].fault
        {
            *behaviour = testnet_node::byzantine::Behaviour::DelayVotes;
        }
        assert!(!finality(&delaying, 3.0).passed);
        // The red twin: no Byzantine window, the same payment fails.
        let v = finality(&obs(vec![swallowed, honest], None), 3.0);
        assert!(
            !v.passed && v.summary.contains("never final on n0"),
            "{v:?}"
        );
        // Accepted by n1 before it misbehaved: judged.
        let before = (2.0, 1, [-1.0, 2.1]);
        let v = finality(&obs(vec![before], Some((5.0, None))), 3.0);
        assert!(!v.passed, "{v:?}");
        // Every payment through the Byzantine node: nothing judged is a failure.
        let v = finality(&obs(vec![swallowed], Some((5.0, None))), 3.0);
        assert!(!v.passed && v.summary.contains("nothing to judge"), "{v:?}");
        // The Byzantine node itself may lag while it misbehaves, not after.
        let late_on_n1 = (7.0, 0, [7.1, 12.0]);
        assert!(finality(&obs(vec![late_on_n1], Some((5.0, Some(11.0)))), 3.0).passed);
        let too_late = (7.0, 0, [7.1, 15.0]);
        assert!(!finality(&obs(vec![too_late], Some((5.0, Some(11.0)))), 3.0).passed);
    }
}
