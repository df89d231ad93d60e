//! The ledgers at the end: equal UTXO digests with value conserved, and
//! safety: no conflicting pair final, the same finalized set everywhere.
//! Judged on each node's status at the end (a node silent by then fails),
//! once the testnet settled.

use std::collections::BTreeSet;

use super::{unsettled, Verdict};
use crate::observe::Observations;

/// At the end (quiescence): equal UTXO digests, and on every node
/// `total_value + fees == genesis_supply`.
pub fn utxo_agreement(obs: &Observations) -> Verdict {
    let mut problems = Vec::new();
    let mut digests: Vec<(String, String)> = Vec::new();
    for node in &obs.nodes {
        let st = match obs.status_at_end(node) {
            Ok(st) => st,
            Err(why) => {
                problems.push(format!("{why}: its ledger at the end is unknown"));
                continue;
            }
        };
        digests.push((node.clone(), st.utxo_digest.clone()));
        if st.total_value.checked_add(st.fees) != Some(st.genesis_supply) {
            let created = st.total_value.saturating_add(st.fees) > st.genesis_supply;
            problems.push(format!(
                "{node}: total value {} + fees {} != genesis supply {} (value {} out of nothing)",
                st.total_value,
                st.fees,
                st.genesis_supply,
                if created { "created" } else { "lost" }
            ));
        }
    }
    let groups = group_by(&digests);
    if groups.len() > 1 {
        problems.push(format!("UTXO digests disagree: {}", shown(&groups)));
    }
    problems.extend(unsettled(obs));
    Verdict::new(
        "utxo_agreement",
        problems,
        format!(
            "{} nodes agree on the UTXO digest; value conserved",
            digests.len()
        ),
    )
}

/// No conflicting pair finalized anywhere (by the workload's twins and by each
/// node's own count of conflicting certificates); every node finalized the same
/// set of transactions (compared by each node's finalized-set digest).
pub fn safety(obs: &Observations) -> Verdict {
    let mut problems = Vec::new();
    if let Some(load) = &obs.load {
        if load.conflicting_pairs_finalized > 0 {
            problems.push(format!(
                "{} of {} double-spend pairs had both twins finalized",
                load.conflicting_pairs_finalized, load.double_spend_pairs
            ));
        }
    }
    let mut sets = Vec::new();
    for node in &obs.nodes {
        let conflicting = obs
            .of(node)
            .filter_map(|s| s.status.as_ref())
            .map(|s| s.conflicting_certificates)
            .max()
            .unwrap_or(0);
        if conflicting > 0 {
            problems.push(format!(
                "{node} saw {conflicting} conflicting certificate(s)"
            ));
        }
        match obs.status_at_end(node) {
            Err(why) => problems.push(format!("{why}: its finalized set is unknown")),
            Ok(st) if st.finalized_digest.is_empty() => problems.push(format!(
                "{node} reports no finalized_digest: its finalized set cannot be compared"
            )),
            Ok(st) => sets.push((
                node.clone(),
                format!("{} ({})", st.finalized_transactions, st.finalized_digest),
            )),
        }
    }
    let groups = group_by(&sets);
    if groups.len() > 1 {
        problems.push(format!(
            "nodes finalized different sets: {}{}",
            shown(&groups),
            first_difference(obs)
                .map(|d| format!("; {d}"))
                .unwrap_or_default()
        ));
    }
    problems.extend(unsettled(obs));
    Verdict::new(
        "safety",
        problems,
        "no conflicting pair finalized; every node finalized the same transactions".into(),
    )
}

/// Nodes grouped by value, in the order first seen.
fn group_by(values: &[(String, String)]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (node, v) in values {
        match groups.iter_mut().find(|(g, _)| g == v) {
            Some((_, nodes)) => nodes.push(node.clone()),
            None => groups.push((v.clone(), vec![node.clone()])),
        }
    }
    groups
}

fn shown(groups: &[(String, Vec<String>)]) -> String {
    groups
        .iter()
        .map(|(v, nodes)| {
            let v: String = v.chars().take(24).collect();
            format!("{v} on {}", nodes.join(","))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The first transaction (in some node's order) that another node did not
/// finalize, from the finalized lists fetched at the end.
fn first_difference(obs: &Observations) -> Option<String> {
    let lists = &obs.finalized;
    for (node, ids) in lists {
        for (other, theirs) in lists.iter().filter(|(o, _)| *o != node) {
            let theirs: BTreeSet<&String> = theirs.iter().collect();
            if let Some(missing) = ids.iter().find(|id| !theirs.contains(id)) {
                return Some(format!(
                    "first difference: {missing} final on {node}, not on {other}"
                ));
            }
        }
    }
    None
}
