//! The wait for a quiet testnet at the end of a run: every node with the
//! same finalized set and an empty mempool.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::observe::{sample_all, Quiescence, Sampling};
use crate::testnet::{NodeProbe, Testnet};

/// Waits (up to `limit`) until every node answers with the same finalized
/// set and an empty mempool, twice in a row; stops early once nothing has
/// changed for [`STILL`] (a node that will not catch up, a transaction no
/// node can decide any more). Says what it saw.
pub(super) async fn quiescence<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    limit: Duration,
) -> Quiescence {
    let start = Instant::now();
    let http = reqwest::Client::new();
    let (mut calm, mut still_since, mut last) = (0, Instant::now(), None);
    let mut seen = Settled::default();
    while start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(nodes) = tn.endpoints().await else {
            continue;
        };
        seen = settled(&sample_all(&http, &nodes, &Sampling::default()).await);
        if last.as_ref() != Some(&seen.key) {
            still_since = Instant::now();
            last = Some(seen.key.clone());
        }
        calm = if seen.quiet { calm + 1 } else { 0 };
        if calm >= 2 {
            break;
        }
        if still_since.elapsed() >= STILL {
            seen.detail
                .push_str(&format!(" (no change for {}s)", STILL.as_secs()));
            break;
        }
    }
    Quiescence {
        reached: seen.agree,
        waited_secs: start.elapsed().as_secs_f64(),
        detail: seen.detail,
    }
}

/// How long nothing may change before quiescence stops waiting.
const STILL: Duration = Duration::from_secs(8);

/// One look at every node at the end.
#[derive(Debug, Default)]
pub(super) struct Settled {
    /// Every node answered, with the same finalized set.
    pub(super) agree: bool,
    /// And every mempool is empty.
    pub(super) quiet: bool,
    pub(super) detail: String,
    /// What changes while the testnet is still settling.
    key: Vec<(String, Option<NodeLedger>)>,
}

/// A node's finalized set (digest, count) and mempool size.
type NodeLedger = (String, u64, usize);

pub(super) fn settled(looks: &[crate::observe::Sample]) -> Settled {
    let mut silent = Vec::new();
    let mut busy = Vec::new();
    let mut sets = BTreeMap::<(&str, u64), Vec<&str>>::new();
    for l in looks {
        match &l.status {
            None => silent.push(l.node.as_str()),
            Some(st) => {
                if st.mempool > 0 {
                    busy.push(format!("{} mempool {}", l.node, st.mempool));
                }
                let key = (st.finalized_digest.as_str(), st.finalized_transactions);
                sets.entry(key).or_default().push(&l.node);
            }
        }
    }
    let mut what = Vec::new();
    if !silent.is_empty() {
        what.push(format!("not answering: {}", silent.join(",")));
    }
    if sets.len() > 1 {
        let shown: Vec<String> = sets
            .iter()
            .map(|((_, count), nodes)| format!("{count} final on {}", nodes.join(",")))
            .collect();
        what.push(format!("finalized sets differ: {}", shown.join("; ")));
    }
    let agree = what.is_empty() && !looks.is_empty();
    if agree {
        let count = sets.keys().next().map(|k| k.1).unwrap_or(0);
        what.push(format!("{} nodes agree on {count} finalized", looks.len()));
    }
    let quiet = agree && busy.is_empty();
    what.extend(busy);
    let key = looks
        .iter()
        .map(|l| {
            let st = l.status.as_ref();
            let v = st.map(|s| {
                (
                    s.finalized_digest.clone(),
                    s.finalized_transactions,
                    s.mempool,
                )
            });
            (l.node.clone(), v)
        })
        .collect();
    Settled {
        agree,
        quiet,
        detail: what.join("; "),
        key,
    }
}
