//! The load phase: payments paced by the clock (a generator that falls behind
//! catches up rather than sending fewer), answers counted as they come, and
//! finality polled alongside without holding the sending up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::Rng;
use testnet_node::ledger::tx::Transaction;
use testnet_node::replica::now_ms;
use tokio::task::JoinSet;

use super::{Answer, Coin, Run, Submission, Tally, MAX_INFLIGHT};

/// How often the pacer wakes: the payments due meanwhile go out together,
/// one request per node (at 1000 tx/s, 10 payments a pass). Waking for each
/// payment cost the nodes and Docker's port proxy a request each.
const PACE: Duration = Duration::from_millis(10);
/// How often finality is polled during the load.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// How often a progress line is printed during the load.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Payments the load sends: the rate times the duration, at least one.
pub(super) fn planned(tps: f64, duration: Duration) -> u64 {
    ((tps.max(0.0) * duration.as_secs_f64()).round() as u64).max(1)
}

/// Payments due `elapsed` into the load: the first at once, then one per
/// `1/tps`, never more than `total`.
pub(super) fn due(tps: f64, elapsed: Duration, total: u64) -> u64 {
    ((elapsed.as_secs_f64() * tps.max(0.0)) as u64 + 1).min(total)
}

impl Run {
    /// The load phase: `planned` payments, each sent when the clock says it is
    /// due (a pass that ran late sends the ones it owes at once), answers
    /// counted as they come, finality polled meanwhile. Returns its length in
    /// seconds; every submission has been answered when it returns.
    pub(super) async fn send(&mut self, tally: &mut Tally, progress: &impl Fn(&str)) -> f64 {
        let tps = self.cfg.tps.max(0.1);
        let total = planned(tps, self.cfg.duration);
        let mut pace = tokio::time::interval(PACE);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut poll = tokio::time::interval(POLL_EVERY);
        let mut report =
            tokio::time::interval_at(tokio::time::Instant::now() + REPORT_EVERY, REPORT_EVERY);
        let mut inflight: JoinSet<Vec<Submission>> = JoinSet::new();
        let mut in_flight = 0;
        let mut pages = JoinSet::new();
        progress(&format!(
            "load: {total} payments at {} tx/s for {:?} against {} nodes, {:.0}% double spends",
            self.cfg.tps,
            self.cfg.duration,
            self.clients.len(),
            self.cfg.double_spend * 100.0
        ));
        let start = Instant::now();
        let (mut sent, mut ticked) = (0, true);
        loop {
            let owed = due(tps, start.elapsed(), total);
            // Payments go out on the pacer's ticks only, not on each answer.
            if std::mem::take(&mut ticked) && sent < owed {
                // Answers already in make room for what a late pass owes.
                while let Some(done) = inflight.try_join_next() {
                    in_flight -= self.record_all(done, tally);
                }
                let mut pass = Pass::default();
                while sent < owed {
                    self.plan_next(&mut pass, in_flight, tally);
                    sent += 1;
                }
                in_flight += pass.len();
                self.dispatch(pass, &mut inflight);
            }
            if sent >= total || self.cfg.stop.is_cancelled() {
                break;
            }
            tokio::select! {
                _ = self.cfg.stop.cancelled() => break,
                _ = pace.tick() => ticked = true,
                Some(done) = inflight.join_next() => in_flight -= self.record_all(done, tally),
                Some(page) = pages.join_next() => self.merge(page.expect("poll task does not panic")),
                _ = poll.tick(), if pages.is_empty() => self.poll_spawn(&mut pages),
                _ = report.tick() => {
                    let done = tally.plain.iter().filter(|t| self.final_everywhere(t)).count();
                    progress(&format!(
                        "  {:>4.0}s: {} submitted, {done} final everywhere, {} coins free",
                        start.elapsed().as_secs_f64(), tally.submitted, self.coins.len()
                    ));
                }
            }
        }
        let load_secs = start.elapsed().as_secs_f64().max(1.0 / tps);
        while let Some(done) = inflight.join_next().await {
            self.record_all(done, tally);
        }
        while let Some(page) = pages.join_next().await {
            self.merge(page.expect("poll task does not panic"));
        }
        load_secs
    }

    /// Plans a payment: spends a random free coin to a random wallet through
    /// a random node, or, with the double-spend share, twice through two nodes
    /// at once. Counts a skip when no coin is free or too many payments are
    /// awaiting an answer.
    fn plan_next(&mut self, pass: &mut Pass, in_flight: usize, tally: &mut Tally) {
        if self.coins.is_empty() || in_flight + pass.len() >= MAX_INFLIGHT {
            tally.skipped += 1;
            return;
        }
        let n = self.clients.len();
        let k = self.rng.gen_range(0..self.coins.len());
        let coin = self.coins.swap_remove(k);
        let to = self.rng.gen_range(0..self.wallets.len());
        let e1 = self.rng.gen_range(0..n);
        tally.submitted += 1;
        if n >= 2 && self.rng.gen_bool(self.cfg.double_spend.clamp(0.0, 1.0)) {
            let (a, _) = self.pay(coin, to);
            let (b, _) = self.pay(coin, (to + 1) % self.wallets.len());
            let e2 = (e1 + 1 + self.rng.gen_range(0..n - 1)) % n;
            tally.double_spend_pairs += 1;
            pass.twins.push(((a, e1), (b, e2)));
        } else {
            let (tx, created) = self.pay(coin, to);
            pass.plain.entry(e1).or_default().push((tx, coin, created));
        }
    }

    /// Sends a pass: the plain payments in one request per node, each
    /// answered on its own (a node that hangs holds up only its own), and
    /// each double spend's twins to their two nodes at once.
    fn dispatch(&self, pass: Pass, inflight: &mut JoinSet<Vec<Submission>>) {
        let sent_ms = now_ms();
        for (endpoint, payments) in pass.plain {
            let client = self.clients[endpoint].clone();
            let (txs, coins): (Vec<Transaction>, Vec<(Coin, Coin)>) = (payments.into_iter())
                .map(|(tx, coin, created)| (tx, (coin, created)))
                .unzip();
            inflight.spawn(async move {
                let answers = client.submit_many(&txs).await;
                (txs.iter().zip(coins).zip(answers))
                    .map(|((tx, (coin, created)), result)| Submission::Plain {
                        txid: tx.id(),
                        coin,
                        created,
                        result,
                        sent_ms,
                        endpoint,
                    })
                    .collect()
            });
        }
        for ((a, e1), (b, e2)) in pass.twins {
            let (ca, cb) = (self.clients[e1].clone(), self.clients[e2].clone());
            inflight.spawn(async move {
                let (ra, rb) = tokio::join!(ca.submit(&a), cb.submit(&b));
                vec![Submission::Twins {
                    a: (a.id(), ra),
                    b: (b.id(), rb),
                    sent_ms,
                }]
            });
        }
    }

    /// Counts a finished request's submissions; returns how many.
    fn record_all(
        &mut self,
        done: Result<Vec<Submission>, tokio::task::JoinError>,
        tally: &mut Tally,
    ) -> usize {
        let done = done.expect("submission task does not panic");
        let n = done.len();
        done.into_iter().for_each(|s| self.record(s, tally));
        n
    }

    /// Counts a finished submission. A node that could not be reached (restarting)
    /// counts as a refusal `unreachable`, and a plain payment's coin is reused.
    fn record(&mut self, done: Submission, tally: &mut Tally) {
        let reason = |r: &Answer| match r {
            Ok(Ok(_)) => None,
            Ok(Err(refusal)) => Some(refusal.reason.clone()),
            Err(_) => Some("unreachable".to_owned()),
        };
        match done {
            Submission::Plain {
                txid,
                coin,
                created,
                result,
                sent_ms,
                endpoint,
            } => match reason(&result) {
                None => {
                    tally.accepted += 1;
                    self.track(txid, Some(created), sent_ms, Some(endpoint));
                    tally.plain.push(txid);
                }
                Some(r) => {
                    if r == "mempool_full" || r == "unreachable" {
                        self.coins.push(coin);
                    }
                    *tally.refused.entry(r).or_default() += 1;
                }
            },
            Submission::Twins { a, b, sent_ms } => {
                for (txid, r) in [&a, &b] {
                    match reason(r) {
                        None => tally.accepted += 1,
                        Some(r) => *tally.refused.entry(r).or_default() += 1,
                    }
                    self.track(*txid, None, sent_ms, None);
                }
                tally.twins.push((a.0, b.0));
            }
        }
    }
}

/// The payments a pacer pass sends: plain ones grouped by the node each goes
/// to (with the coin each spends and the coin it creates), and double spends.
#[derive(Default)]
struct Pass {
    plain: BTreeMap<usize, Vec<(Transaction, Coin, Coin)>>,
    twins: Vec<Twins>,
}

/// A double spend's two transactions, each with the node it goes to.
type Twins = ((Transaction, usize), (Transaction, usize));

impl Pass {
    /// Payments planned (a double spend counts as one).
    fn len(&self) -> usize {
        self.plain.values().map(Vec::len).sum::<usize>() + self.twins.len()
    }
}

#[cfg(test)]
mod tests {
    use super::{due, planned};
    use std::time::Duration;

    #[test]
    fn the_plan_is_rate_times_duration_and_the_clock_says_what_is_due() {
        assert_eq!(planned(20.0, Duration::from_secs(10)), 200);
        assert_eq!(planned(0.1, Duration::from_secs(1)), 1, "at least one");
        assert_eq!(due(20.0, Duration::ZERO, 200), 1, "the first at once");
        assert_eq!(due(20.0, Duration::from_millis(49), 200), 1);
        assert_eq!(due(20.0, Duration::from_millis(50), 200), 2);
        // A pass that ran 2.5 s late owes 50 payments at once.
        assert_eq!(due(20.0, Duration::from_millis(2_500), 200), 51);
        assert_eq!(
            due(20.0, Duration::from_secs(60), 200),
            200,
            "never more than planned"
        );
    }
}
