//! `testnet chaos show`: every node's fault rules read back from its agent, as
//! a table with node names (or, with `--json`, JSON and nothing else on stdout).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use serde::Serialize;
use testnet_node::api::agent::FaultReport;

/// One node's rules, for `--json`.
#[derive(Debug, Serialize)]
pub struct Shown {
    pub node: String,
    #[serde(flatten)]
    pub report: FaultReport,
}

/// The table: a row per node, peers named by node where the IP is one of ours.
pub fn table(rows: &[Shown], names: &BTreeMap<Ipv4Addr, String>) -> String {
    let name = |ip: &Ipv4Addr| names.get(ip).cloned().unwrap_or_else(|| ip.to_string());
    let set = |ips: &mut dyn Iterator<Item = &Ipv4Addr>| {
        let v: Vec<String> = ips.map(name).collect();
        if v.is_empty() {
            "-".into()
        } else {
            v.join(",")
        }
    };
    let per_mille = |m: &BTreeMap<Ipv4Addr, u32>| {
        let v: Vec<String> = m
            .iter()
            .map(|(ip, pm)| format!("{}:{}%", name(ip), f64::from(*pm) / 10.0))
            .collect();
        if v.is_empty() {
            "-".into()
        } else {
            v.join(",")
        }
    };
    let header = [
        "NODE",
        "CUT FROM",
        "CUT TO",
        "DELAY FROM",
        "LOSS TO",
        "DUPLICATE TO",
        "BANDWIDTH",
        "LEASE",
        "RULES",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let s = &r.report.state;
        let delays: Vec<String> = s
            .delay_from
            .iter()
            .map(|(ip, d)| {
                let mut t = format!("{}:{}ms", name(ip), d.ms);
                if d.jitter_ms > 0 {
                    let _ = write!(t, "±{}", d.jitter_ms);
                }
                if d.reorder_per_mille > 0 {
                    let _ = write!(t, " reorder {}%", f64::from(d.reorder_per_mille) / 10.0);
                }
                t
            })
            .collect();
        cells.push(vec![
            r.node.clone(),
            set(&mut s.drop_from.iter()),
            set(&mut s.drop_to.iter()),
            if delays.is_empty() {
                "-".into()
            } else {
                delays.join(",")
            },
            per_mille(&s.loss_per_mille),
            per_mille(&s.duplicate_per_mille),
            s.bandwidth_kbit
                .map_or("-".into(), |k| format!("{k} kbit/s")),
            r.report
                .lease_remaining_secs
                .map_or("-".into(), |l| format!("{l:.0}s left")),
            match (r.report.installed, r.report.foreign_rules.len()) {
                (false, _) => "not installed".into(),
                (true, 0) => "installed".into(),
                (true, n) => format!("installed, {n} foreign"),
            },
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            cells
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use testnet_node::faults::{Delay, FaultState};

    #[test]
    fn the_table_names_peers_and_says_dash_for_nothing() {
        let (a, b) = (Ipv4Addr::new(10, 77, 0, 2), Ipv4Addr::new(10, 77, 0, 3));
        let names = BTreeMap::from([(a, "n0".to_string()), (b, "n1".to_string())]);
        let mut state = FaultState::default();
        state.drop_to.insert(b);
        state.delay_from.insert(
            b,
            Delay {
                ms: 150,
                jitter_ms: 20,
                reorder_per_mille: 0,
            },
        );
        state.loss_per_mille.insert(Ipv4Addr::new(10, 77, 0, 9), 50);
        let rows = [
            Shown {
                node: "n0".into(),
                report: FaultReport {
                    state,
                    installed: true,
                    foreign_rules: vec![],
                    lease_remaining_secs: Some(12.4),
                },
            },
            Shown {
                node: "n1".into(),
                report: FaultReport {
                    state: FaultState::default(),
                    installed: true,
                    foreign_rules: vec![],
                    lease_remaining_secs: None,
                },
            },
        ];
        let t = table(&rows, &names);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NODE  CUT FROM  CUT TO"), "{t}");
        assert!(lines[1].contains("n1:150ms±20"), "{t}");
        assert!(
            lines[1].contains("10.77.0.9:5%"),
            "an unknown IP stays an IP: {t}"
        );
        assert!(lines[1].contains("12s left"), "{t}");
        let cols: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(cols[..6], ["n1", "-", "-", "-", "-", "-"], "{t}");
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["node"], "n0");
        assert_eq!(json["state"]["drop_to"][0], "10.77.0.3");
    }
}
