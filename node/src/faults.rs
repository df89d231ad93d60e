//! Network faults as a declarative state, rendered to rules in chains we own.
//!
//! Pure: no I/O. The in-container agent applies [`render`]'s output with one
//! `iptables-restore --noflush` (one batch, atomic per table) and reads it back with
//! `iptables -S`. Only the chains [`CHAIN_IN`] and [`CHAIN_OUT`] and the two jumps to
//! them are ever written or removed: rules of anyone else are never touched.

pub mod counters;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

pub const CHAIN_IN: &str = "TESTNET-IN";
pub const CHAIN_OUT: &str = "TESTNET-OUT";
/// The NFQUEUE the agent's delay worker reads.
pub const DELAY_QUEUE: u16 = 7;

/// Added latency on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delay {
    pub ms: u32,
    #[serde(default)]
    pub jitter_ms: u32,
    /// Per mille of packets that skip the wait (sent at once, overtaking the held
    /// packets of their flow), netem's `reorder`. Zero keeps every flow in order.
    #[serde(default)]
    pub reorder_per_mille: u32,
}

impl Delay {
    pub fn fixed(ms: u32) -> Delay {
        Delay {
            ms,
            jitter_ms: 0,
            reorder_per_mille: 0,
        }
    }
}

/// The faults a node should have. An empty state means healed: no rule of ours.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultState {
    /// Drop packets from these peers (inbound half of a partition).
    #[serde(default)]
    pub drop_from: BTreeSet<Ipv4Addr>,
    /// Drop packets to these peers (outbound half of a partition).
    #[serde(default)]
    pub drop_to: BTreeSet<Ipv4Addr>,
    /// Drop this share of packets to each peer, in per mille (1000 = all).
    #[serde(default)]
    pub loss_per_mille: BTreeMap<Ipv4Addr, u32>,
    /// Hold packets *from* each peer this long on arrival (the agent's NFQUEUE
    /// worker). Equivalent on the wire to the peer delaying its egress, but the
    /// held packet belongs to no local socket: held on the sender's egress, it
    /// would throttle the sender's TCP stack and add the delay twice to a
    /// request/response exchange (measured: 200 ms RTT for 100 ms).
    #[serde(default)]
    pub delay_from: BTreeMap<Ipv4Addr, Delay>,
    /// Send a copy of this share of packets to each peer, in per mille (iptables
    /// TEE: the clone goes straight to the peer, netem's `duplicate`).
    #[serde(default)]
    pub duplicate_per_mille: BTreeMap<Ipv4Addr, u32>,
    /// Cap this node's egress (tc tbf on eth0), in kbit/s.
    #[serde(default)]
    pub bandwidth_kbit: Option<u32>,
}

impl FaultState {
    pub fn is_healed(&self) -> bool {
        self == &FaultState::default()
    }
}

/// Which of our filter-table objects exist (read back from `iptables -S`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Installed {
    pub chain_in: bool,
    pub chain_out: bool,
    pub jump_in: bool,
    pub jump_out: bool,
}

impl Installed {
    pub fn any(&self) -> bool {
        self.chain_in || self.chain_out || self.jump_in || self.jump_out
    }
}

/// The `iptables-restore --noflush` input that makes the filter table's rules of
/// ours equal `state` (creating or flushing our chains; other chains untouched).
/// With a healed state it removes our chains and jumps altogether. Only objects
/// that exist are deleted and missing jumps are added, so the batch applies over
/// whatever half-state an earlier failure left.
pub fn render(state: &FaultState, installed: &Installed) -> String {
    let mut r = String::from("*filter\n");
    if state.is_healed() {
        if installed.jump_in {
            r.push_str(&format!("-D INPUT -j {CHAIN_IN}\n"));
        }
        if installed.jump_out {
            r.push_str(&format!("-D OUTPUT -j {CHAIN_OUT}\n"));
        }
        for (exists, chain) in [
            (installed.chain_in, CHAIN_IN),
            (installed.chain_out, CHAIN_OUT),
        ] {
            if exists {
                r.push_str(&format!("-F {chain}\n-X {chain}\n"));
            }
        }
        r.push_str("COMMIT\n");
        return r;
    }
    // Declaring a chain in restore format creates it, or flushes it if it exists.
    r.push_str(&format!(":{CHAIN_IN} - [0:0]\n:{CHAIN_OUT} - [0:0]\n"));
    if !installed.jump_in {
        r.push_str(&format!("-I INPUT 1 -j {CHAIN_IN}\n"));
    }
    if !installed.jump_out {
        r.push_str(&format!("-I OUTPUT 1 -j {CHAIN_OUT}\n"));
    }
    for ip in &state.drop_from {
        r.push_str(&format!("-A {CHAIN_IN} -s {ip}/32 -j DROP\n"));
    }
    for ip in &state.drop_to {
        r.push_str(&format!("-A {CHAIN_OUT} -d {ip}/32 -j DROP\n"));
    }
    for (ip, per_mille) in &state.loss_per_mille {
        let p = (*per_mille).min(1000) as f64 / 1000.0;
        r.push_str(&format!(
            "-A {CHAIN_OUT} -d {ip}/32 -m statistic --mode random --probability {p:.3} -j DROP\n"
        ));
    }
    // After the drops: a dropped packet is not duplicated. TEE's clone skips
    // the chains, so it is neither dropped nor duplicated again.
    for (ip, per_mille) in &state.duplicate_per_mille {
        let p = (*per_mille).min(1000) as f64 / 1000.0;
        r.push_str(&format!(
            "-A {CHAIN_OUT} -d {ip}/32 -m statistic --mode random --probability {p:.3} -j TEE --gateway {ip}\n"
        ));
    }
    // Fail open: with the agent gone, queued traffic passes undelayed.
    for ip in state.delay_from.keys() {
        r.push_str(&format!(
            "-A {CHAIN_IN} -s {ip}/32 -j NFQUEUE --queue-num {DELAY_QUEUE} --queue-bypass\n"
        ));
    }
    // A one-way cut's other direction: what still arrives is counted (a
    // rule that only returns), so a run can show it flowed.
    for ip in state.drop_to.difference(&state.drop_from) {
        r.push_str(&format!("-A {CHAIN_IN} -s {ip}/32 -j RETURN\n"));
    }
    r.push_str("COMMIT\n");
    r
}

/// Reads our fault state back from `iptables -S` output (all chains); rules in
/// our chains this module would never write are returned as foreign. Delays come
/// back with their parameters from `delays` (iptables only knows a queue).
pub fn read_back(iptables_s: &str) -> (FaultState, Installed, Vec<String>) {
    read_back_with(iptables_s, &BTreeMap::new())
}

pub fn read_back_with(
    iptables_s: &str,
    delays: &BTreeMap<Ipv4Addr, Delay>,
) -> (FaultState, Installed, Vec<String>) {
    let mut state = FaultState::default();
    let mut installed = Installed::default();
    let mut foreign = Vec::new();
    for line in iptables_s.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["-N", c] if *c == CHAIN_IN => installed.chain_in = true,
            ["-N", c] if *c == CHAIN_OUT => installed.chain_out = true,
            ["-A", "INPUT", "-j", c] if *c == CHAIN_IN => installed.jump_in = true,
            ["-A", "OUTPUT", "-j", c] if *c == CHAIN_OUT => installed.jump_out = true,
            ["-A", c, "-s", ip, "-j", "DROP"] if *c == CHAIN_IN => {
                match ip.trim_end_matches("/32").parse() {
                    Ok(ip) => {
                        state.drop_from.insert(ip);
                    }
                    Err(_) => foreign.push(line.to_owned()),
                }
            }
            ["-A", c, "-d", ip, "-j", "DROP"] if *c == CHAIN_OUT => {
                match ip.trim_end_matches("/32").parse() {
                    Ok(ip) => {
                        state.drop_to.insert(ip);
                    }
                    Err(_) => foreign.push(line.to_owned()),
                }
            }
            ["-A", c, "-d", ip, "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP"]
                if *c == CHAIN_OUT =>
            {
                match (
                    ip.trim_end_matches("/32").parse::<Ipv4Addr>(),
                    p.parse::<f64>(),
                ) {
                    (Ok(ip), Ok(p)) => {
                        state.loss_per_mille.insert(ip, (p * 1000.0).round() as u32);
                    }
                    _ => foreign.push(line.to_owned()),
                }
            }
            ["-A", c, "-d", ip, "-m", "statistic", "--mode", "random", "--probability", p, "-j", "TEE", "--gateway", gw]
                if *c == CHAIN_OUT && ip.trim_end_matches("/32") == *gw =>
            {
                match (gw.parse::<Ipv4Addr>(), p.parse::<f64>()) {
                    (Ok(ip), Ok(p)) => {
                        state
                            .duplicate_per_mille
                            .insert(ip, (p * 1000.0).round() as u32);
                    }
                    _ => foreign.push(line.to_owned()),
                }
            }
            ["-A", c, "-s", ip, "-j", "NFQUEUE", "--queue-num", q, "--queue-bypass"]
                if *c == CHAIN_IN && q.parse() == Ok(DELAY_QUEUE) =>
            {
                match ip.trim_end_matches("/32").parse::<Ipv4Addr>() {
                    Ok(ip) => {
                        let d = delays.get(&ip).copied().unwrap_or(Delay::fixed(0));
                        state.delay_from.insert(ip, d);
                    }
                    Err(_) => foreign.push(line.to_owned()),
                }
            }
            // The counter of a one-way cut's other direction (derived from the drops).
            ["-A", c, "-s", ip, "-j", "RETURN"]
                if *c == CHAIN_IN && ip.trim_end_matches("/32").parse::<Ipv4Addr>().is_ok() => {}
            ["-A", c, ..] if *c == CHAIN_IN || *c == CHAIN_OUT => foreign.push(line.to_owned()),
            _ => {}
        }
    }
    (state, installed, foreign)
}

/// The `tc` arguments that make `dev`'s egress match `kbit` (None: remove ours).
pub fn tbf_args(dev: &str, kbit: Option<u32>) -> Vec<String> {
    match kbit {
        Some(k) => {
            // Burst of 20 ms at the rate, and at least 10 full-size packets: a
            // smaller bucket drops TCP's bursts and the link runs below its rate.
            let burst = (k as u64 * 1000 / 8 / 50).max(15_140);
            ["qdisc", "replace", "dev", dev, "root", "tbf", "rate"]
                .iter()
                .map(|s| s.to_string())
                .chain([
                    format!("{k}kbit"),
                    "burst".into(),
                    format!("{burst}"),
                    "latency".into(),
                    "400ms".into(),
                ])
                .collect()
        }
        None => ["qdisc", "del", "dev", dev, "root"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }
}

/// The tbf rate in kbit/s from `tc qdisc show dev DEV` output, if ours is there.
pub fn parse_tbf_rate(tc_show: &str) -> Option<u32> {
    let line = tc_show
        .lines()
        .find(|l| l.contains("qdisc tbf") && l.contains(" root "))?;
    let rate = line
        .split_whitespace()
        .skip_while(|w| *w != "rate")
        .nth(1)?;
    let (num, unit) = rate.split_at(rate.find(|c: char| c.is_ascii_alphabetic())?);
    let num: f64 = num.parse().ok()?;
    let kbit = match unit {
        "bit" => num / 1000.0,
        "Kbit" => num,
        "Mbit" => num * 1000.0,
        "Gbit" => num * 1_000_000.0,
        _ => return None,
    };
    Some(kbit.round() as u32)
}

/// Jepsen's partition shapes, over nodes in a fixed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Two halves (the first gets the extra node when odd).
    Halves,
    /// One node (by index) cut from all others.
    Isolate(usize),
    /// Two halves that cannot talk, and one node in the middle that talks to both.
    Bridge,
    /// Each node talks to its two ring neighbours on each side: every node sees a
    /// majority, no two nodes see the same one (n >= 5).
    MajoritiesRing,
}

/// Which pairs of nodes cannot talk under `shape`, as each node's fault state.
pub fn shape(shape: Shape, nodes: &[Ipv4Addr]) -> Vec<(Ipv4Addr, FaultState)> {
    let n = nodes.len();
    let can_talk = |i: usize, j: usize| -> bool {
        match shape {
            Shape::Halves => (i < n.div_ceil(2)) == (j < n.div_ceil(2)),
            Shape::Isolate(k) => i != k && j != k,
            Shape::Bridge => {
                let mid = n / 2;
                i == mid || j == mid || (i < mid) == (j < mid)
            }
            Shape::MajoritiesRing => {
                // Itself plus `radius` neighbours on each side: at least a majority.
                let radius = (n / 2).div_ceil(2);
                let d = (i + n - j) % n;
                d.min(n - d) <= radius
            }
        }
    };
    (0..n)
        .map(|i| {
            let cut: BTreeSet<Ipv4Addr> = (0..n)
                .filter(|j| *j != i && !can_talk(i, *j))
                .map(|j| nodes[j])
                .collect();
            (
                nodes[i],
                FaultState {
                    drop_from: cut.clone(),
                    drop_to: cut,
                    ..FaultState::default()
                },
            )
        })
        .collect()
}

/// Groups of nodes that can talk only within their group: for each node, the IPs
/// of every node in another group. Nodes in no group are isolated from all.
pub fn partition(groups: &[Vec<Ipv4Addr>], all: &[Ipv4Addr]) -> Vec<(Ipv4Addr, FaultState)> {
    all.iter()
        .map(|me| {
            let mine = groups.iter().find(|g| g.contains(me));
            let others: BTreeSet<Ipv4Addr> = all
                .iter()
                .filter(|o| *o != me && mine.is_none_or(|g| !g.contains(o)))
                .copied()
                .collect();
            (
                *me,
                FaultState {
                    drop_from: others.clone(),
                    drop_to: others,
                    ..FaultState::default()
                },
            )
        })
        .collect()
}

/// A one-way cut: the packets of `cut` to `to` are dropped, on the way out
/// of `cut` and on arrival at `to`; `to`'s packets to `cut` still arrive, and
/// nodes in neither are untouched.
pub fn one_way(cut: &[Ipv4Addr], to: &[Ipv4Addr], all: &[Ipv4Addr]) -> Vec<(Ipv4Addr, FaultState)> {
    let to: BTreeSet<Ipv4Addr> = to.iter().filter(|o| !cut.contains(o)).copied().collect();
    all.iter()
        .map(|me| {
            let mut state = FaultState::default();
            if cut.contains(me) {
                state.drop_to = to.clone();
            } else if to.contains(me) {
                state.drop_from = cut.iter().copied().collect();
            }
            (*me, state)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, last)
    }

    #[test]
    fn a_one_way_cut_drops_one_direction_only() {
        let all = [ip(10), ip(11), ip(12), ip(13)];
        let cut: BTreeMap<Ipv4Addr, FaultState> = one_way(&[ip(10)], &[ip(11), ip(12)], &all)
            .into_iter()
            .collect();
        assert_eq!(cut[&ip(10)].drop_to, [ip(11), ip(12)].into());
        assert!(
            cut[&ip(10)].drop_from.is_empty(),
            "their packets still arrive"
        );
        assert_eq!(cut[&ip(11)].drop_from, [ip(10)].into());
        assert!(cut[&ip(11)].drop_to.is_empty());
        assert!(cut[&ip(13)].is_healed(), "a node in no group is untouched");
        // The cut node counts what still arrives from the others; reading the
        // rules back takes that counter for ours, not a foreign rule.
        let rules = render(&cut[&ip(10)], &Installed::default());
        assert!(
            rules.contains("-A TESTNET-IN -s 10.77.0.11/32 -j RETURN"),
            "{rules}"
        );
        let listed: String = rules
            .lines()
            .filter(|l| l.starts_with("-A"))
            .map(|l| format!("{l}\n"))
            .collect();
        let (back, _, foreign) = read_back(&format!("-N TESTNET-IN\n-N TESTNET-OUT\n{listed}"));
        assert!(foreign.is_empty(), "{foreign:?}");
        assert_eq!(back, cut[&ip(10)]);
    }

    #[test]
    fn rendering_only_touches_our_chains() {
        let state = FaultState {
            drop_from: [ip(12)].into(),
            drop_to: [ip(12), ip(13)].into(),
            loss_per_mille: [(ip(11), 50)].into(),
            delay_from: [(ip(11), Delay::fixed(100))].into(),
            duplicate_per_mille: [(ip(13), 20)].into(),
            bandwidth_kbit: None,
        };
        let r = render(&state, &Installed::default());
        assert!(r.contains("-A TESTNET-OUT -d 10.77.0.13/32 -m statistic --mode random --probability 0.020 -j TEE --gateway 10.77.0.13"), "{r}");
        // A packet dropped by a partition is not duplicated.
        assert!(r.rfind("-j DROP").unwrap() < r.find("-j TEE").unwrap());
        assert!(r.contains("-A TESTNET-OUT -d 10.77.0.11/32 -m statistic --mode random --probability 0.050 -j DROP"), "{r}");
        assert!(
            r.contains("-A TESTNET-IN -s 10.77.0.11/32 -j NFQUEUE --queue-num 7 --queue-bypass"),
            "{r}"
        );
        // Drops come before the queue: a partitioned packet is never held.
        assert!(r.find("-j DROP").unwrap() < r.find("NFQUEUE").unwrap());
        assert!(r.contains(":TESTNET-IN - [0:0]") && r.contains("-I INPUT 1 -j TESTNET-IN"));
        assert!(r.contains("-A TESTNET-OUT -d 10.77.0.13/32 -j DROP"));
        for line in r.lines().filter(|l| l.starts_with('-')) {
            assert!(line.contains("TESTNET-"), "foreign rule touched: {line}");
        }
        assert!(
            !render(
                &state,
                &Installed {
                    chain_in: true,
                    chain_out: true,
                    jump_in: true,
                    jump_out: true
                }
            )
            .contains("-I INPUT"),
            "jumps are inserted once"
        );
        let all = Installed {
            chain_in: true,
            chain_out: true,
            jump_in: true,
            jump_out: true,
        };
        let healed = render(&FaultState::default(), &all);
        assert!(healed.contains("-X TESTNET-IN") && healed.contains("-D OUTPUT -j TESTNET-OUT"));
        assert_eq!(
            render(&FaultState::default(), &Installed::default()),
            "*filter\nCOMMIT\n"
        );
        // A half-state (chain without its jump) heals without deleting what is absent,
        // and is repaired by the next apply.
        let half = Installed {
            chain_in: true,
            ..Installed::default()
        };
        assert_eq!(
            render(&FaultState::default(), &half),
            "*filter\n-F TESTNET-IN\n-X TESTNET-IN\nCOMMIT\n"
        );
        assert!(render(&state, &half).contains("-I INPUT 1 -j TESTNET-IN"));
    }

    #[test]
    fn read_back_round_trips_and_spots_foreign_rules() {
        let delay = Delay {
            ms: 150,
            jitter_ms: 20,
            reorder_per_mille: 0,
        };
        let state = FaultState {
            drop_from: [ip(11), ip(12)].into(),
            drop_to: [ip(12)].into(),
            loss_per_mille: [(ip(13), 100)].into(),
            delay_from: [(ip(13), delay)].into(),
            duplicate_per_mille: [(ip(11), 50)].into(),
            bandwidth_kbit: None,
        };
        // What `iptables -S` prints after applying `render(&state, false)`.
        let listed = "-P INPUT ACCEPT\n-N TESTNET-IN\n-N TESTNET-OUT\n-A INPUT -j TESTNET-IN\n-A OUTPUT -j TESTNET-OUT\n\
                      -A TESTNET-IN -s 10.77.0.11/32 -j DROP\n-A TESTNET-IN -s 10.77.0.12/32 -j DROP\n\
                      -A TESTNET-OUT -d 10.77.0.12/32 -j DROP\n\
                      -A TESTNET-OUT -d 10.77.0.13/32 -m statistic --mode random --probability 0.10000000009 -j DROP\n\
                      -A TESTNET-OUT -d 10.77.0.11/32 -m statistic --mode random --probability 0.05000000075 -j TEE --gateway 10.77.0.11\n\
                      -A TESTNET-IN -s 10.77.0.13/32 -j NFQUEUE --queue-num 7 --queue-bypass\n-A DOCKER -j ACCEPT\n";
        let (back, installed, foreign) = read_back_with(listed, &[(ip(13), delay)].into());
        assert_eq!(back, state);
        assert!(
            installed.jump_in && installed.jump_out && installed.chain_in && foreign.is_empty()
        );
        let (_, _, foreign) = read_back("-N TESTNET-IN\n-A TESTNET-IN -p udp -j ACCEPT\n");
        assert_eq!(foreign.len(), 1);
        let (healed, installed, _) = read_back("-P INPUT ACCEPT\n");
        assert!(healed.is_healed() && !installed.any());
    }

    #[test]
    fn bandwidth_renders_to_tc_and_reads_back() {
        let args = tbf_args("eth0", Some(512)).join(" ");
        assert_eq!(
            args,
            "qdisc replace dev eth0 root tbf rate 512kbit burst 15140 latency 400ms"
        );
        assert_eq!(tbf_args("eth0", None).join(" "), "qdisc del dev eth0 root");
        assert_eq!(
            parse_tbf_rate("qdisc tbf 8001: root refcnt 3 rate 512Kbit burst 4Kb lat 400ms \n"),
            Some(512)
        );
        assert_eq!(
            parse_tbf_rate("qdisc tbf 8001: root refcnt 3 rate 2Mbit burst 25000b lat 400ms"),
            Some(2000)
        );
        assert_eq!(parse_tbf_rate("qdisc noqueue 0: root refcnt 2"), None);
    }

    fn reach(states: &[(Ipv4Addr, FaultState)], a: Ipv4Addr, b: Ipv4Addr) -> bool {
        let s = &states.iter().find(|(i, _)| *i == a).unwrap().1;
        !s.drop_to.contains(&b)
    }

    #[test]
    fn jepsen_shapes_cut_what_they_promise() {
        let five: Vec<Ipv4Addr> = (10..15).map(ip).collect();
        // Every shape is symmetric.
        for sh in [
            Shape::Halves,
            Shape::Isolate(2),
            Shape::Bridge,
            Shape::MajoritiesRing,
        ] {
            let st = shape(sh, &five);
            for a in &five {
                for b in &five {
                    assert_eq!(reach(&st, *a, *b), reach(&st, *b, *a), "{sh:?} {a} {b}");
                }
            }
        }
        let halves = shape(Shape::Halves, &five);
        assert!(reach(&halves, ip(10), ip(12)) && !reach(&halves, ip(12), ip(13)));
        let iso = shape(Shape::Isolate(2), &five);
        assert!(five
            .iter()
            .filter(|o| **o != ip(12))
            .all(|o| !reach(&iso, ip(12), *o)));
        assert!(reach(&iso, ip(10), ip(14)));
        // Bridge: n12 in the middle talks to everyone; the sides do not.
        let bridge = shape(Shape::Bridge, &five);
        assert!(five
            .iter()
            .all(|o| *o == ip(12) || reach(&bridge, ip(12), *o)));
        assert!(!reach(&bridge, ip(10), ip(13)) && reach(&bridge, ip(10), ip(11)));
        // Majorities ring: each node reaches a majority (itself + 2 of 4 others),
        // and no two nodes have the same view.
        let ring = shape(Shape::MajoritiesRing, &five);
        let views: BTreeSet<Vec<bool>> = five
            .iter()
            .map(|a| five.iter().map(|b| reach(&ring, *a, *b)).collect())
            .collect();
        assert_eq!(views.len(), 5);
        for a in &five {
            let seen = five.iter().filter(|b| reach(&ring, *a, **b)).count();
            assert_eq!(seen, 3, "{a} sees {seen} of 5 (itself included)");
        }
    }

    #[test]
    fn partitions_cut_exactly_across_groups() {
        let all = [ip(10), ip(11), ip(12), ip(13)];
        let cut = partition(&[vec![ip(10), ip(11)], vec![ip(12), ip(13)]], &all);
        let of = |a: Ipv4Addr| cut.iter().find(|(i, _)| *i == a).unwrap().1.clone();
        assert_eq!(of(ip(10)).drop_to, [ip(12), ip(13)].into());
        assert_eq!(of(ip(13)).drop_from, [ip(10), ip(11)].into());
        // Isolating one node: a group of one, the rest together.
        let iso = partition(&[vec![ip(10)], vec![ip(11), ip(12), ip(13)]], &all);
        let n0 = &iso.iter().find(|(i, _)| *i == ip(10)).unwrap().1;
        assert_eq!(n0.drop_to.len(), 3);
        let n1 = &iso.iter().find(|(i, _)| *i == ip(11)).unwrap().1;
        assert_eq!(n1.drop_to, [ip(10)].into());
    }
}
