//! `testnet chaos`: one fault, now. The arguments map one to one onto the
//! [`Fault`] vocabulary that scenario files use; what a fault does is decided
//! in one place ([`crate::fault`], [`crate::chaos`]).

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use super::chaos_show::Shown;
use super::{testnet, Ctx, Fail};
use crate::agent::HttpAgent;
use crate::fault::{Fault, ProcessAction};
use crate::testnet::HttpProbe;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    testnet chaos partition n0,n1 n2,n3\n  \
    testnet chaos partition --shape isolate:n2 --lease 30s\n  \
    testnet chaos delay --nodes n2 --ms 150 --jitter-ms 20\n  \
    testnet chaos loss --nodes n1 --percent 5 --to n3\n  \
    testnet chaos clock --nodes n1 --offset 30s\n  \
    testnet chaos kill n3\n  \
    testnet chaos show\n  \
    testnet chaos heal")]
pub struct Args {
    /// Network faults heal by themselves after this long unless applied again
    /// (what a scenario runner does; a killed one stops renewing).
    #[arg(long, value_parser = humantime::parse_duration, global = true)]
    lease: Option<Duration>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Split into groups that only talk within themselves: `partition n0,n1 n2,n3`
    /// (nodes in no group are isolated), or a Jepsen shape: `partition --shape
    /// halves|bridge|majorities-ring|isolate:n2`. It replaces the cut in place.
    /// `--one-way n0 n1,n2`: n0's packets to n1 and n2 are dropped, theirs to
    /// n0 still arrive.
    Partition {
        /// Groups of comma-separated nodes (n0,n1 n2,n3); a node in no group is isolated.
        #[arg(required_unless_present = "shape")]
        groups: Vec<String>,
        /// A Jepsen shape instead of groups: halves, bridge, majorities-ring, isolate:NODE.
        #[arg(long, conflicts_with = "groups")]
        shape: Option<String>,
        /// Only the first group's packets to the others are dropped (theirs still arrive).
        #[arg(long, conflicts_with = "shape")]
        one_way: bool,
    },
    /// Remove every network fault (back to the latency zones, if any), or only
    /// those of the named nodes and of the links to them.
    Heal {
        /// Heal only these nodes and the links to them (default: every node).
        nodes: Vec<String>,
    },
    /// Hold every packet leaving --nodes (towards --to, default all) this long
    /// (0 removes the delay).
    Delay {
        /// Nodes to act on, comma-separated (n0,n2).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// Milliseconds each packet is held (0 removes the delay).
        #[arg(long)]
        ms: u32,
        /// Random extra hold, up to this many milliseconds either way.
        #[arg(long, default_value_t = 0)]
        jitter_ms: u32,
        /// Share of packets sent at once, overtaking the held ones (netem's reorder).
        #[arg(long, default_value_t = 0.0)]
        reorder_percent: f64,
        /// Only packets towards these nodes (default: all).
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
    },
    /// Send a copy of this share of packets leaving --nodes (towards --to).
    Duplicate(Rate),
    /// Change the latency between two zones of the testnet file while it runs
    /// (both ways unless --one-way); a heal keeps it.
    Latency {
        /// A zone of the testnet file's `zones:`.
        from_zone: String,
        /// The other zone.
        to_zone: String,
        /// One-way latency in milliseconds.
        #[arg(long)]
        ms: u32,
        /// Change from_zone to to_zone only, not the way back.
        #[arg(long)]
        one_way: bool,
    },
    /// Cap the egress bandwidth of --nodes (0 removes the cap).
    Bandwidth {
        /// Nodes to act on, comma-separated (n0,n2).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// Egress cap in kbit/s (0 removes it).
        #[arg(long)]
        kbit: u32,
    },
    /// Limit the CPU of --nodes' containers to --cores, live (0 lifts it).
    Cpu {
        /// Nodes to act on, comma-separated (n0,n2).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// CPU in cores, fractions allowed (0.2); 0 lifts the limit.
        #[arg(long)]
        cores: f64,
    },
    /// Limit the memory of --nodes' containers to --mib, live (0 lifts it and
    /// starts again a node the limit OOM-killed).
    Memory {
        /// Nodes to act on, comma-separated (n0,n2).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// Memory in MiB; 0 lifts the limit.
        #[arg(long)]
        mib: u64,
    },
    /// Skew the clock of --nodes by --offset (`30s`, `-2m`) drifting
    /// --drift-ppm on top (0 and 0: real time again).
    Clock {
        /// Nodes to act on, comma-separated (n0,n2).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// Clock offset from real time: 30s, -2m, 0s.
        #[arg(long, allow_hyphen_values = true, value_parser = crate::fault::parse_signed_ms)]
        offset: i64,
        /// Drift in parts per million on top of the offset (500: 0.5 ms fast per second).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        drift_ppm: i64,
    },
    /// Switch a Byzantine --behaviour on in --nodes while they run (our node
    /// only): mute, equivocate, delay-votes, bad-signatures, garbage-frames,
    /// withhold-certificates; --off switches it off again.
    Byzantine {
        /// Nodes to act on, comma-separated (n0,n2).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// What the nodes do wrong.
        #[arg(long)]
        behaviour: testnet_node::byzantine::Behaviour,
        /// How long delay-votes holds each vote.
        #[arg(long, default_value_t = testnet_node::byzantine::DEFAULT_DELAY_MS)]
        delay_ms: u64,
        /// Switch the behaviour off again.
        #[arg(long)]
        off: bool,
    },
    /// Fill the data dir of --nodes (a tmpfs: `disk_mib` in the testnet
    /// file) until no byte is free; --off frees it and restarts a node whose
    /// store failed.
    DiskFull {
        /// Nodes to act on, comma-separated (n0,n2).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// Free the disk again (and restart a node whose store failed).
        #[arg(long)]
        off: bool,
    },
    /// Slow each fsync of --nodes' stores by --fsync-ms and fail
    /// --error-percent of their writes; --off clears it and restarts a node
    /// whose store failed.
    Disk {
        /// Nodes to act on, comma-separated (n0,n2).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// Milliseconds added to each fsync of the store.
        #[arg(long, default_value_t = 0)]
        fsync_ms: u64,
        /// Share of the store's writes that fail with an I/O error, in percent.
        #[arg(long, default_value_t = 0.0)]
        error_percent: f64,
        /// Clear the store faults (and restart a node whose store failed).
        #[arg(long)]
        off: bool,
    },
    /// Replace --nodes' containers with ones from --image (ours), or from
    /// the testnet's image speaking --protocol-version (accepting
    /// --min-peer-version or later), keeping data, IP, ports and faults.
    Upgrade {
        /// Nodes to act on, comma-separated (n0,n2).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// An image of ours to run the nodes from (testnet image build makes one).
        #[arg(
            long,
            required_unless_present = "protocol_version",
            conflicts_with = "protocol_version"
        )]
        image: Option<String>,
        /// The testnet's image, speaking this P2P protocol version.
        #[arg(long)]
        protocol_version: Option<u32>,
        /// The oldest protocol version the upgraded nodes accept (default: --protocol-version).
        #[arg(long, requires = "protocol_version")]
        min_peer_version: Option<u32>,
    },
    /// Drop this share of packets leaving --nodes (towards --to, default all).
    Loss(Rate),
    /// Read back every node's fault rules, as a table (peers by node name).
    Show {
        /// JSON (an array, a record per node) and nothing else on stdout.
        #[arg(long)]
        json: bool,
    },
    /// SIGKILL the node process (the container and its network stay), or with
    /// --container the whole container.
    Kill(Target),
    /// Start a killed or stopped node process (or container: its faults are
    /// applied again once it is back).
    Start(Target),
    /// Kill and start the node process (or container, faults re-applied).
    Restart(Target),
    /// SIGTERM the node process, graceful (or stop the container).
    Stop(Target),
    /// SIGSTOP the node process (or freeze the container).
    Pause(Target),
    /// SIGCONT a paused node process (or thaw the container).
    Resume(Target),
}

#[derive(clap::Args)]
struct Rate {
    /// Nodes to act on, comma-separated (n0,n2).
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Share of packets, in percent (0 removes it).
    #[arg(long)]
    percent: f64,
    /// Only packets towards these nodes (default: all).
    #[arg(long, value_delimiter = ',')]
    to: Vec<String>,
}

#[derive(clap::Args)]
struct Target {
    /// The node (n2).
    node: String,
    /// Act on the container instead of the node process: its network namespace
    /// is recreated, and the orchestrator re-applies the node's faults on start.
    #[arg(long)]
    container: bool,
}

/// The fault the command names (`None`: `show`).
fn fault(command: Command) -> Option<Fault> {
    let process = |t: Target, action| Fault::of_process(t.node, action, t.container);
    Some(match command {
        Command::Partition {
            shape: Some(shape), ..
        } => Fault::Shape(shape),
        Command::Partition {
            groups, one_way, ..
        } => Fault::Partition(crate::fault::Partition {
            groups: groups
                .iter()
                .map(|g| {
                    g.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .collect(),
            one_way,
        }),
        Command::Heal { nodes } if nodes.is_empty() => Fault::Heal,
        Command::Heal { nodes } => Fault::HealNodes(nodes),
        Command::Delay {
            nodes,
            ms,
            jitter_ms,
            reorder_percent,
            to,
        } => Fault::Delay {
            nodes,
            to,
            ms,
            jitter_ms,
            reorder_percent,
        },
        Command::Duplicate(Rate { nodes, percent, to }) => Fault::Duplicate { nodes, to, percent },
        Command::Loss(Rate { nodes, percent, to }) => Fault::Loss { nodes, to, percent },
        Command::Latency {
            from_zone,
            to_zone,
            ms,
            one_way,
        } => Fault::Latency {
            from: from_zone,
            to: to_zone,
            ms,
            one_way,
        },
        Command::Bandwidth { nodes, kbit } => Fault::Bandwidth { nodes, kbit },
        Command::Cpu { nodes, cores } => Fault::Cpu { nodes, cores },
        Command::Memory { nodes, mib } => Fault::Memory { nodes, mib },
        Command::Clock {
            nodes,
            offset,
            drift_ppm,
        } => Fault::Clock {
            nodes,
            offset,
            drift_ppm,
        },
        Command::Byzantine {
            nodes,
            behaviour,
            delay_ms,
            ..
        } => Fault::Byzantine {
            nodes,
            behaviour,
            delay_ms,
        },
        Command::DiskFull { nodes, .. } => Fault::DiskFull { nodes },
        Command::Disk {
            nodes,
            fsync_ms,
            error_percent,
            ..
        } => Fault::Disk {
            nodes,
            fsync_ms,
            error_percent,
        },
        Command::Upgrade {
            nodes,
            image,
            protocol_version,
            min_peer_version,
        } => Fault::Upgrade {
            nodes,
            image,
            protocol: protocol_version.map(|version| crate::image::Protocol {
                version,
                min_peer: min_peer_version.unwrap_or(version),
            }),
        },
        Command::Show { .. } => return None,
        Command::Kill(t) => process(t, ProcessAction::Kill),
        Command::Start(t) => process(t, ProcessAction::Start),
        Command::Restart(t) => process(t, ProcessAction::Restart),
        Command::Stop(t) => process(t, ProcessAction::Stop),
        Command::Pause(t) => process(t, ProcessAction::Pause),
        Command::Resume(t) => process(t, ProcessAction::Resume),
    })
}

pub async fn exec(ctx: &Ctx, a: Args) -> Result<ExitCode, Fail> {
    let engine = super::engine_of(&ctx.name()).await?;
    let (probe, agent) = (HttpProbe::default(), HttpAgent::default());
    let tn = testnet(&ctx.name(), &engine, &probe);
    if let Command::Byzantine {
        nodes,
        behaviour,
        off: true,
        ..
    } = a.command
    {
        let _lock = super::lock(&tn.name, "chaos")?;
        let off = crate::fault::Undo::Byzantine { nodes, behaviour };
        crate::chaos::undo(&tn, &agent, &off, a.lease).await?;
        println!("{} off", behaviour.label());
        return Ok(ExitCode::SUCCESS);
    }
    let off = match &a.command {
        Command::DiskFull { nodes, off: true } => Some((
            crate::fault::Undo::DiskFull(nodes.clone()),
            format!("{}: disk freed", nodes.join(",")),
        )),
        Command::Disk {
            nodes, off: true, ..
        } => Some((
            crate::fault::Undo::Disk(nodes.clone()),
            format!("{}: store faults cleared", nodes.join(",")),
        )),
        _ => None,
    };
    if let Some((off, said)) = off {
        let _lock = super::lock(&tn.name, "chaos")?;
        crate::chaos::undo(&tn, &agent, &off, a.lease).await?;
        println!("{said} (a node whose store failed was restarted)");
        return Ok(ExitCode::SUCCESS);
    }
    let json = matches!(a.command, Command::Show { json: true });
    let Some(fault) = fault(a.command) else {
        let names = tn
            .endpoints()
            .await?
            .into_iter()
            .filter_map(|n| Some((n.ip?, n.node)))
            .collect();
        let rows: Vec<Shown> = crate::chaos::read(&tn, &agent)
            .await?
            .into_iter()
            .map(|(node, report)| Shown { node, report })
            .collect();
        if json {
            super::print_json(&rows);
        } else {
            print!("{}", super::chaos_show::table(&rows, &names));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let _lock = super::lock(&tn.name, "chaos")?;
    let applied = crate::chaos::apply(&tn, &agent, &fault, a.lease).await?;
    if let Some((node, _, container)) = fault.process() {
        let what = if container { "container " } else { "" };
        println!("{node}: {what}{}", applied.detail);
    } else if applied.detail != "applied" {
        println!("{}", applied.detail);
    }
    Ok(ExitCode::SUCCESS)
}
