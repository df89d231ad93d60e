//! How a fault is written in progress lines, the report and the timeline.

use super::{signed, towards, Fault};
use testnet_node::byzantine::Behaviour;

impl Fault {
    pub fn label(&self) -> String {
        match self {
            Fault::Partition(p) => p.label(),
            Fault::Shape(s) => format!("partition {s}"),
            Fault::Delay {
                nodes,
                to,
                ms,
                jitter_ms,
                ..
            } => format!(
                "delay {} -> {} {ms} ms +/- {jitter_ms}",
                nodes.join(","),
                towards(to)
            ),
            Fault::Loss { nodes, to, percent } => {
                format!("loss {} -> {} {percent}%", nodes.join(","), towards(to))
            }
            Fault::Duplicate { nodes, to, percent } => {
                format!(
                    "duplicate {} -> {} {percent}%",
                    nodes.join(","),
                    towards(to)
                )
            }
            Fault::Bandwidth { nodes, kbit } => {
                format!("bandwidth {} {kbit} kbit/s", nodes.join(","))
            }
            Fault::Cpu { nodes, cores: 0.0 } => format!("cpu {} unlimited", nodes.join(",")),
            Fault::Cpu { nodes, cores } => format!("cpu {} {cores} cores", nodes.join(",")),
            Fault::Memory { nodes, mib: 0 } => format!("memory {} unlimited", nodes.join(",")),
            Fault::Memory { nodes, mib } => format!("memory {} {mib} MiB", nodes.join(",")),
            Fault::Clock {
                nodes,
                offset,
                drift_ppm,
            } => format!(
                "clock {} {}{} {drift_ppm} ppm",
                nodes.join(","),
                if *offset >= 0 { "+" } else { "" },
                signed(*offset)
            ),
            Fault::Byzantine {
                nodes,
                behaviour: Behaviour::DelayVotes,
                delay_ms,
            } => format!("byzantine {} delay-votes {delay_ms} ms", nodes.join(",")),
            Fault::Byzantine {
                nodes, behaviour, ..
            } => format!("byzantine {} {}", nodes.join(","), behaviour.label()),
            Fault::DiskFull { nodes } => format!("disk_full {}", nodes.join(",")),
            Fault::Disk {
                nodes,
                fsync_ms,
                error_percent,
            } => format!(
                "disk {} fsync {fsync_ms} ms, {error_percent}% errors",
                nodes.join(",")
            ),
            Fault::Upgrade {
                nodes,
                image: Some(tag),
                ..
            } => format!("upgrade {} to {tag}", nodes.join(",")),
            Fault::Upgrade {
                nodes,
                protocol: Some(p),
                ..
            } => format!(
                "upgrade {} to protocol {} (accepting {}+)",
                nodes.join(","),
                p.version,
                p.min_peer
            ),
            Fault::Latency {
                from,
                to,
                ms,
                one_way,
            } => format!(
                "latency {from} {} {to} {ms} ms",
                if *one_way { "->" } else { "<->" }
            ),
            Fault::Heal => "heal".into(),
            Fault::HealNodes(nodes) => format!("heal {}", nodes.join(",")),
            other => match other.process() {
                Some((n, a, false)) => format!("{} {n}", a.name()),
                Some((n, a, true)) => format!("{} container {n}", a.name()),
                None => format!("{other:?}"),
            },
        }
    }
}
