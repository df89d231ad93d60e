//! A seeded nemesis: a random fault schedule drawn from the scenario's seed
//! and written into its timeline as plain steps, so the report shows it and
//! the resolved scenario (`scenario.yaml` beside the report) replays it
//! exactly.
//!
//! ```yaml
//! nemesis: { faults: [partition, pause, delay, clock, kill], every: 5s, for: 3s, quiet: 10s, until: 60s }
//! ```
//! From `quiet` (fault-free warm-up, default `every`) to `until`, a fault
//! starts every `every` and is undone after `for` (a restart is instant).
//! With `for` longer than `every` faults overlap; a node that some fault
//! already holds is not chosen again until it is undone.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{dur, opt_dur, ser_dur, ser_opt_dur, Step};
use crate::fault::Fault;

/// Mixed into the seed, so the schedule and the timeline's `random` picks
/// are independent draws.
const SALT: u64 = 0x6e65_6d65_7369_7321;
/// Most faults one nemesis may draw.
const MAX_FAULTS: u64 = 1_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nemesis {
    pub faults: Vec<NemesisFault>,
    #[schemars(schema_with = "crate::spelling::duration")]
    #[serde(deserialize_with = "dur", serialize_with = "ser_dur")]
    pub every: Duration,
    #[schemars(schema_with = "crate::spelling::duration")]
    #[serde(rename = "for", deserialize_with = "dur", serialize_with = "ser_dur")]
    pub duration: Duration,
    /// Fault-free warm-up before the first fault (default: `every`).
    #[schemars(schema_with = "crate::spelling::duration")]
    #[serde(
        default,
        deserialize_with = "opt_dur",
        serialize_with = "ser_opt_dur",
        skip_serializing_if = "Option::is_none"
    )]
    pub quiet: Option<Duration>,
    /// No fault starts after this (each still runs its `for`).
    #[schemars(schema_with = "crate::spelling::duration")]
    #[serde(deserialize_with = "dur", serialize_with = "ser_dur")]
    pub until: Duration,
}

/// The fault classes a nemesis draws from; each picks its node(s) and
/// strength with the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NemesisFault {
    /// The nodes split in two halves.
    Partition,
    /// One node cut off from all others.
    Isolate,
    Pause,
    Kill,
    Stop,
    /// A kill and a start at once (no `for`).
    Restart,
    /// 50-250 ms on one node's packets, with jitter.
    Delay,
    /// 5-30% of one node's packets dropped.
    Loss,
    /// 5-20% of one node's packets sent twice.
    Duplicate,
    /// One node's clock 1-60 s ahead or behind (a foreign node: through
    /// libfaketime).
    Clock,
    /// One node's container held to 0.1-0.5 cores.
    Cpu,
}

impl Nemesis {
    /// Everything wrong with it, for a testnet of `nodes` (`no_clock`: a
    /// foreign node image without libfaketime).
    pub fn problems(&self, nodes: usize, no_clock: bool) -> Vec<String> {
        let mut p = Vec::new();
        if self.faults.is_empty() {
            p.push("faults: empty; name the classes to draw from (partition, isolate, pause, kill, stop, restart, delay, loss, duplicate, clock, cpu)".into());
        }
        if self.every.is_zero() || self.duration.is_zero() {
            p.push("`every` and `for` must be longer than 0".into());
        }
        if self.until <= self.start() {
            p.push(format!(
                "until: {:?} leaves no time after the quiet start of {:?}",
                self.until,
                self.start()
            ));
        }
        if !self.every.is_zero()
            && (self.until.saturating_sub(self.start())).as_nanos() / self.every.as_nanos()
                > MAX_FAULTS as u128
        {
            p.push(format!(
                "more than {MAX_FAULTS} faults: make `every` longer or `until` shorter"
            ));
        }
        let cuts = [NemesisFault::Partition, NemesisFault::Isolate];
        if nodes < 2 && self.faults.iter().any(|f| cuts.contains(f)) {
            p.push("partition and isolate need two nodes or more".into());
        }
        if no_clock && self.faults.contains(&NemesisFault::Clock) {
            p.push(
                "clock: a foreign node's clock moves through libfaketime: set `node: { \
                 faketime: true }` in the testnet file"
                    .into(),
            );
        }
        p
    }

    fn start(&self) -> Duration {
        self.quiet.unwrap_or(self.every)
    }

    /// The schedule as timeline steps: the same seed and nodes give the same
    /// steps.
    pub fn schedule(&self, seed: u64, names: &[String]) -> Vec<Step> {
        let mut rng = StdRng::seed_from_u64(seed ^ SALT);
        let mut held: BTreeMap<&String, Duration> = BTreeMap::new();
        let mut steps = Vec::new();
        let mut at = self.start();
        while at <= self.until
            && !self.faults.is_empty()
            && !self.every.is_zero()
            && !names.is_empty()
        {
            let kind = self.faults[rng.gen_range(0..self.faults.len())];
            let free: Vec<&String> = names
                .iter()
                .filter(|n| held.get(n).is_none_or(|until| *until <= at))
                .collect();
            if !free.is_empty() {
                let node = free[rng.gen_range(0..free.len())];
                let fault = draw(kind, node, names, &mut rng);
                let lasting = matches!(fault, Fault::Restart(_));
                held.insert(node, at + self.duration);
                steps.push(Step {
                    at,
                    duration: (!lasting).then_some(self.duration),
                    every: None,
                    count: None,
                    fault,
                });
            }
            at += self.every;
        }
        steps
    }
}

/// One fault of class `kind` on `node`.
fn draw(kind: NemesisFault, node: &str, names: &[String], rng: &mut StdRng) -> Fault {
    let one = vec![node.to_owned()];
    match kind {
        NemesisFault::Partition => {
            // A random half (rounded down) against the rest.
            let mut order: Vec<&String> = names.iter().collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.gen_range(0..=i));
            }
            let (a, b) = order.split_at(order.len() / 2);
            let group = |g: &[&String]| g.iter().map(|n| n.to_string()).collect();
            Fault::Partition(crate::fault::Partition::groups(vec![group(a), group(b)]))
        }
        NemesisFault::Isolate => Fault::Shape(format!("isolate:{node}")),
        NemesisFault::Pause => Fault::Pause(node.to_owned()),
        NemesisFault::Kill => Fault::Kill(node.to_owned()),
        NemesisFault::Stop => Fault::Stop(node.to_owned()),
        NemesisFault::Restart => Fault::Restart(node.to_owned()),
        NemesisFault::Delay => {
            let ms = rng.gen_range(50..=250);
            Fault::Delay {
                nodes: one,
                to: vec![],
                ms,
                jitter_ms: ms / 5,
                reorder_percent: 0.0,
            }
        }
        NemesisFault::Loss => Fault::Loss {
            nodes: one,
            to: vec![],
            percent: f64::from(rng.gen_range(5..=30u8)),
        },
        NemesisFault::Duplicate => Fault::Duplicate {
            nodes: one,
            to: vec![],
            percent: f64::from(rng.gen_range(5..=20u8)),
        },
        NemesisFault::Clock => {
            let secs: i64 = rng.gen_range(1..=60);
            let sign = if rng.gen_bool(0.5) { 1 } else { -1 };
            Fault::Clock {
                nodes: one,
                offset: sign * secs * 1000,
                drift_ppm: 0,
            }
        }
        NemesisFault::Cpu => Fault::Cpu {
            nodes: one,
            cores: f64::from(rng.gen_range(1..=5u8)) / 10.0,
        },
    }
}

#[cfg(test)]
mod tests;
