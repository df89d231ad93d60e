//! Host ports for the nodes' APIs, fixed when a testnet comes up so that a
//! container restart keeps its URLs: the workload, the sampler and every probe
//! follow a node through restarts.
//!
//! Ports are drawn from below the kernel's ephemeral range (outgoing
//! connections never take them), skipping every port another testnet's
//! container holds (running or not: its pins are in a label) and every port
//! something on the host listens on. Another process can still take one
//! between the pick and the container's start; `up` then picks again.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::Range;

use crate::engine::{ContainerInfo, LABEL_PORTS};

/// Where pins are drawn from: under Linux's default ephemeral range (32768..61000).
pub const RANGE: Range<u16> = 20_000..32_768;

#[derive(Debug, thiserror::Error)]
#[error("no {want} free host ports in 127.0.0.1:{}-{} outside the ephemeral range {}-{} ({found} found); stop what listens there or remove old testnets (`testnet down --all`)", RANGE.start, RANGE.end - 1, .ephemeral.start, .ephemeral.end - 1)]
pub struct NoPorts {
    pub want: usize,
    pub found: usize,
    pub ephemeral: Range<u16>,
}

/// `io.testnet.ports` label value: `8000:23456,9000:23457`.
pub fn label(pins: &[(u16, u16)]) -> String {
    pins.iter()
        .map(|(c, h)| format!("{c}:{h}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The pins a label records (garbage entries are skipped).
pub fn parse_label(value: &str) -> Vec<(u16, u16)> {
    value
        .split(',')
        .filter_map(|pair| {
            let (c, h) = pair.split_once(':')?;
            Some((c.trim().parse().ok()?, h.trim().parse().ok()?))
        })
        .collect()
}

/// Host ports the engine's containers hold or have pinned.
pub fn held(containers: &[ContainerInfo]) -> BTreeSet<u16> {
    containers
        .iter()
        .flat_map(|c| {
            let pinned = c
                .labels
                .get(LABEL_PORTS)
                .map(|v| parse_label(v))
                .unwrap_or_default();
            c.ports
                .iter()
                .chain(pinned.iter())
                .map(|(_, h)| *h)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The kernel's ephemeral port range (Linux's default when unreadable).
pub fn ephemeral_range() -> Range<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            let (lo, hi) = (it.next()??, it.next()??);
            Some(lo..hi.saturating_add(1))
        })
        .unwrap_or(32_768..61_000)
}

/// Whether something on the host listens on 127.0.0.1:`port` (or it cannot be bound).
pub fn bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// `want` distinct ports of [`RANGE`], none in `taken`, none in `ephemeral`,
/// each passing `free`, searched from `start` (wrapping): callers start at
/// different places so concurrent `up`s rarely pick the same ports.
pub fn pick(
    want: usize,
    taken: &BTreeSet<u16>,
    ephemeral: Range<u16>,
    start: u16,
    free: impl Fn(u16) -> bool,
) -> Result<Vec<u16>, NoPorts> {
    let len = RANGE.end - RANGE.start;
    let picked: Vec<u16> = (0..len)
        .map(|i| RANGE.start + (start % len + i) % len)
        .filter(|p| !taken.contains(p) && !ephemeral.contains(p))
        .filter(|p| free(*p))
        .take(want)
        .collect();
    if picked.len() < want {
        return Err(NoPorts {
            want,
            found: picked.len(),
            ephemeral,
        });
    }
    Ok(picked)
}

/// A start for [`pick`] that differs between processes and calls.
pub fn spread() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (std::process::id().wrapping_mul(7919) ^ nanos) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ContainerState;
    use std::collections::BTreeMap;

    #[test]
    fn labels_round_trip_and_skip_garbage() {
        let pins = vec![(8000, 23456), (9000, 23457)];
        assert_eq!(parse_label(&label(&pins)), pins);
        assert_eq!(parse_label("8000:1,x:2,9000:,7000:70000,"), vec![(8000, 1)]);
    }

    #[test]
    fn held_ports_include_pins_of_stopped_containers() {
        let c = |ports: Vec<(u16, u16)>, label: Option<&str>| ContainerInfo {
            name: "c".into(),
            state: ContainerState::Exited(0),
            labels: label
                .map(|l| BTreeMap::from([(LABEL_PORTS.to_owned(), l.to_owned())]))
                .unwrap_or_default(),
            ip: None,
            ports,
            published_on: "127.0.0.1".into(),
        };
        let held = held(&[
            c(vec![(3000, 41000)], None),
            c(vec![], Some("8000:21000,9000:21001")),
        ]);
        assert_eq!(held, BTreeSet::from([41000, 21000, 21001]));
    }

    #[test]
    fn pick_skips_taken_ephemeral_and_busy_ports_and_wraps() {
        let taken = BTreeSet::from([20_001]);
        let got = pick(3, &taken, 20_003..20_004, 0, |p| p != 20_002).unwrap();
        assert_eq!(got, vec![20_000, 20_004, 20_005]);
        // Starting near the top wraps to the bottom of the range.
        let got = pick(2, &BTreeSet::new(), 40_000..40_001, 12_767, |_| true).unwrap();
        assert_eq!(got, vec![32_767, 20_000]);
    }

    #[test]
    fn pick_fails_with_the_count_when_the_range_is_full() {
        let e = pick(2, &BTreeSet::new(), 0..65_535, 0, |_| true).unwrap_err();
        assert_eq!((e.want, e.found), (2, 0));
        assert!(e.to_string().contains("no 2 free host ports"), "{e}");
    }

    #[test]
    fn a_port_something_listens_on_is_not_bindable() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(!bindable(port));
        drop(l);
        assert!(bindable(port));
    }
}
