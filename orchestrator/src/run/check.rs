//! `testnet check`: the invariants that need no workload or timeline, on a
//! running testnet.

use std::time::Duration;

use super::{sparse_neighbours, RunError, SAMPLE_EVERY};
use crate::checks::{check_all, Verdict};
use crate::engine::Engine;
use crate::observe::{sample_all, unix_now, Observations, Sampling};
use crate::scenario::{Invariants, Within};
use crate::testnet::{NodeProbe, Testnet};

/// `testnet check`: samples the running testnet a few times and runs the
/// checkers that need no workload or timeline.
pub async fn check<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
) -> Result<Vec<Verdict>, RunError> {
    let http = reqwest::Client::new();
    let first = tn.endpoints().await?;
    let plan = tn.plan()?;
    let how = Sampling::of(&plan, []);
    let mut obs = Observations {
        testnet: tn.name.clone(),
        foreign: plan.node.is_some(),
        nodes: first.iter().map(|n| n.node.clone()).collect(),
        neighbours: sparse_neighbours(tn),
        started: unix_now(),
        ..Observations::default()
    };
    for i in 0..3 {
        if i > 0 {
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        let nodes = tn.status().await?;
        obs.samples.extend(sample_all(&http, &nodes, &how).await);
    }
    obs.ended = unix_now();
    let inv = match obs.foreign {
        true => Invariants::foreign(false),
        false => check_invariants(&obs),
    };
    Ok(check_all(&inv, &obs))
}

/// What `testnet check` judges: every invariant that needs no workload, with
/// the mesh wanted within the span it sampled (on a running testnet "within"
/// is now: the mesh must be there already).
pub fn check_invariants(obs: &Observations) -> Invariants {
    Invariants {
        finality: None,
        connectivity: Some(Within {
            within: Duration::from_secs_f64((obs.ended - obs.started).max(0.0)),
        }),
        ..Invariants::default()
    }
}
