//! What the fault rules in place have done: packets matched by each kind of
//! our rules (from `iptables -S -v`) and the packets the bandwidth cap held
//! back (from `tc -s qdisc show`). Pure parsers; the agent exports the
//! figures as metrics, so a run can tell a fault that bit from one that did
//! nothing.

use std::collections::BTreeMap;

use super::{CHAIN_IN, CHAIN_OUT};

/// The kinds of our rules, as the metrics label them.
/// `arrived`: packets still arriving from a node this one cuts one way.
pub const KINDS: [&str; 5] = ["drop", "loss", "duplicate", "delay", "arrived"];

/// Packets matched by our rules in place, by kind (every kind present, 0
/// when none). Counters restart when the rules are replaced.
pub fn rule_packets(iptables_s_v: &str) -> BTreeMap<&'static str, u64> {
    let mut out: BTreeMap<&'static str, u64> = KINDS.iter().map(|k| (*k, 0)).collect();
    for line in iptables_s_v.lines() {
        let ours = [CHAIN_IN, CHAIN_OUT]
            .iter()
            .any(|c| line.starts_with(&format!("-A {c} ")));
        if !ours {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(packets) = words
            .windows(2)
            .find(|w| w[0] == "-c")
            .and_then(|w| w[1].parse::<u64>().ok())
        else {
            continue;
        };
        let target = words
            .windows(2)
            .find(|w| w[0] == "-j")
            .map(|w| w[1])
            .unwrap_or("");
        let kind = match target {
            "DROP" if line.contains("-m statistic") => "loss",
            "DROP" => "drop",
            "TEE" => "duplicate",
            "NFQUEUE" => "delay",
            "RETURN" => "arrived",
            _ => continue,
        };
        *out.entry(kind).or_default() += packets;
    }
    out
}

/// Packets our tbf (the bandwidth cap) had to hold back: its `overlimits`.
pub fn tbf_overlimits(tc_s_show: &str) -> Option<u64> {
    let mut lines = tc_s_show.lines();
    lines.find(|l| l.contains("qdisc tbf") && l.contains(" root "))?;
    let stats = lines.next()?;
    let words: Vec<&str> = stats.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "overlimits")
        .and_then(|w| w[1].trim_end_matches([',', ')']).parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_rules_are_counted_by_kind_and_others_ignored() {
        let text = "-P INPUT ACCEPT -c 9 9\n\
            -N TESTNET-IN\n\
            -A INPUT -c 500 60000 -j TESTNET-IN\n\
            -A TESTNET-IN -s 10.77.0.11/32 -c 7 420 -j DROP\n\
            -A TESTNET-IN -s 10.77.0.12/32 -c 30 1800 -j NFQUEUE --queue-num 7 --queue-bypass\n\
            -A TESTNET-OUT -d 10.77.0.11/32 -c 5 300 -j DROP\n\
            -A TESTNET-OUT -d 10.77.0.13/32 -m statistic --mode random --probability 0.05000000000 -c 3 180 -j DROP\n\
            -A TESTNET-OUT -d 10.77.0.13/32 -m statistic --mode random --probability 0.02000000000 -c 2 120 -j TEE --gateway 10.77.0.13\n\
            -A TESTNET-IN -s 10.77.0.14/32 -c 11 660 -j RETURN\n\
            -A FORWARD -c 99 99 -j DROP\n";
        let c = rule_packets(text);
        assert_eq!(c["drop"], 12);
        assert_eq!(c["loss"], 3);
        assert_eq!(c["duplicate"], 2);
        assert_eq!(c["delay"], 30);
        assert_eq!(c["arrived"], 11);
        assert_eq!(rule_packets("")["drop"], 0, "every kind is there");
    }

    #[test]
    fn the_caps_overlimits_are_read_from_tc_stats() {
        let text = "qdisc tbf 8001: root refcnt 2 rate 512Kbit burst 32Kb lat 50ms \n \
            Sent 123456 bytes 987 pkt (dropped 3, overlimits 41 requeues 0) \n \
            backlog 0b 0p requeues 0\n";
        assert_eq!(tbf_overlimits(text), Some(41));
        let none = "qdisc noqueue 0: root refcnt 2 \n Sent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0)\n";
        assert_eq!(tbf_overlimits(none), None);
    }
}
