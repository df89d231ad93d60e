//! The generator itself: wallets funded from the faucet, payments at a rate with a
//! share of double spends, each followed to finality on every node.
//!
//! Wallets are keys derived from a seed. Their coins are discovered with
//! `GET /utxos`; if they hold too few, the faucet's outputs are fanned out to them
//! first. Each payment spends one coin whole (minus the fee) to another wallet; its
//! output becomes a coin again once every node has finalized it. A double spend
//! signs two payments of one coin and submits them to two nodes at once. Finality
//! is followed by polling the nodes' `GET /finalized` (one request per node, not
//! one per transaction; 16 nodes a poll, in turns, so hundreds of nodes cost the
//! host no more per poll than 16). The report says what a safety and liveness check needs:
//! what finalized where and how fast, conflicting pairs, digests and value.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use sha2::{Digest, Sha256};
use testnet_node::api::FinalizedPage;
use testnet_node::genesis::Genesis;
use testnet_node::identity::Keypair;
use testnet_node::ledger::tx::{OutPoint, Transaction, TxId, TxOut};
use testnet_node::ledger::Limits;
use testnet_node::replica::now_ms;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{LoadError, LoadReport, NodeClient, NodeSummary, Payment};

/// Coins the wallets want before the load starts.
const TARGET_COINS: usize = 1024;

mod cursor;
mod send;

use cursor::{Cursor, Skips};

/// Most payments awaiting an answer; past it, payments due are skipped (and
/// counted so). They go in a request per node and pass, so this bounds the
/// payments, not the requests.
const MAX_INFLIGHT: usize = 1024;
/// Nodes asked for their new finalized transactions per poll: a testnet of
/// hundreds is polled in turns (finality times are the nodes' own stamps, so
/// a later look does not change them).
const POLL_AT_ONCE: usize = 16;

#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Base URLs of node HTTP APIs, e.g. `http://127.0.0.1:8000`.
    pub endpoints: Vec<String>,
    pub genesis: Genesis,
    pub faucet: Keypair,
    /// Payments per second (a double spend counts as one).
    pub tps: f64,
    pub duration: Duration,
    /// Share of payments sent as double spends (0.0..=1.0).
    pub double_spend: f64,
    pub wallets: usize,
    pub seed: u64,
    /// How long to wait after the load for every payment to be decided.
    pub settle: Duration,
    /// Cancelled by a signal: stop sending, report what there is.
    pub stop: CancellationToken,
}

impl LoadConfig {
    pub fn new(endpoints: Vec<String>, genesis: Genesis, faucet: Keypair) -> Self {
        LoadConfig {
            endpoints,
            genesis,
            faucet,
            tps: 50.0,
            duration: Duration::from_secs(10),
            double_spend: 0.0,
            wallets: 64,
            seed: 1,
            settle: Duration::from_secs(30),
            stop: CancellationToken::new(),
        }
    }
}

/// Runs the load and reports. `progress` receives one line per phase.
pub async fn run(cfg: LoadConfig, progress: impl Fn(&str)) -> Result<LoadReport, LoadError> {
    let mut run = Run::connect(cfg).await?;
    run.fund(&progress).await?;
    let mut tally = Tally::default();
    let load_secs = run.send(&mut tally, &progress).await;
    run.settle(&tally.plain, &progress).await;
    run.report(tally, load_secs).await
}

#[derive(Debug, Clone, Copy)]
struct Coin {
    outpoint: OutPoint,
    value: u64,
    owner: usize,
}

struct Tracked {
    submitted_ms: u64,
    /// The endpoint (by index) that accepted it, for plain payments.
    endpoint: Option<usize>,
    /// The coin it creates (for plain payments; twins' outputs are not reused).
    creates: Option<Coin>,
}

fn wallet_keys(seed: u64, n: usize) -> Vec<Keypair> {
    (0..n)
        .map(|i| {
            let d = Sha256::new()
                .chain_update(b"testnet-load-wallet-v1\0")
                .chain_update(seed.to_le_bytes())
                .chain_update((i as u64).to_le_bytes())
                .finalize();
            Keypair::from_seed(d.into())
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// What the load phase sent and how the nodes answered.
#[derive(Default)]
struct Tally {
    /// Payments sent (a double spend counts as one).
    submitted: u64,
    /// Transactions accepted (each twin counts).
    accepted: u64,
    double_spend_pairs: u64,
    /// Payments due that were not sent: no coin was free, or too many
    /// submissions were awaiting an answer.
    skipped: u64,
    refused: BTreeMap<String, u64>,
    /// Accepted plain payments, in the order their acceptance came back.
    plain: Vec<TxId>,
    twins: Vec<(TxId, TxId)>,
}

use super::client::Answer;

/// One node's answer to a poll, by endpoint index.
type Page = (usize, Result<FinalizedPage, LoadError>);

/// A submission's outcome, from its task back to the generator.
enum Submission {
    Plain {
        txid: TxId,
        coin: Coin,
        created: Coin,
        result: Answer,
        sent_ms: u64,
        endpoint: usize,
    },
    Twins {
        a: (TxId, Answer),
        b: (TxId, Answer),
        sent_ms: u64,
    },
}

/// The generator's state across phases.
struct Run {
    cfg: LoadConfig,
    limits: Limits,
    clients: Vec<NodeClient>,
    wallets: Vec<Keypair>,
    coins: Vec<Coin>,
    tracked: HashMap<TxId, Tracked>,
    /// When each node finalized each transaction seen in `/finalized`. Kept apart
    /// from `tracked`: a node may report a payment before its submission returns.
    observed: HashMap<TxId, Vec<Option<u64>>>,
    cursors: Vec<Cursor>,
    /// Finalizations a node forgot before they were read (its window).
    unread_forgotten: u64,
    /// When each node's list last skipped finalizations (see [`Skips`]).
    skips: Skips,
    /// Where the next poll starts (polls take turns over the nodes).
    poll_next: usize,
    /// The first node that answered: wallets and the faucet are read there.
    home: usize,
    rng: StdRng,
    memo: u64,
}

impl Run {
    /// A client per endpoint, each polled from where its node is now: earlier
    /// transactions are not ours.
    async fn connect(cfg: LoadConfig) -> Result<Run, LoadError> {
        if cfg.endpoints.is_empty() {
            return Err(LoadError::NoEndpoints);
        }
        let clients: Vec<NodeClient> = cfg.endpoints.iter().map(|e| NodeClient::new(e)).collect();
        let mut cursors = Vec::new();
        let (mut home, mut first_error) = (None, None);
        for (i, c) in clients.iter().enumerate() {
            // A node that is down (restarting) is read from the start of its
            // list: earlier transactions are not tracked, so they are ignored.
            match c.status().await {
                Ok(s) => {
                    home.get_or_insert(i);
                    cursors.push(Cursor::at(s.finalized_transactions as usize));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                    cursors.push(Cursor::unknown());
                }
            }
        }
        let Some(home) = home else {
            return Err(first_error.unwrap_or(LoadError::NoEndpoints));
        };
        Ok(Run {
            limits: Limits::default(),
            wallets: wallet_keys(cfg.seed, cfg.wallets.max(2)),
            rng: StdRng::seed_from_u64(cfg.seed),
            clients,
            coins: Vec::new(),
            tracked: HashMap::new(),
            observed: HashMap::new(),
            unread_forgotten: 0,
            skips: Skips::default(),
            cursors,
            poll_next: 0,
            home,
            memo: cfg.seed.wrapping_mul(1_000_000_007),
            cfg,
        })
    }

    fn pay(&mut self, coin: Coin, to: usize) -> (Transaction, Coin) {
        let fee = self.limits.min_fee_for(coin.value) + 1_000;
        let value = coin.value - fee;
        self.memo += 1;
        let key = &self.wallets[coin.owner];
        let tx = Transaction::signed(
            &self.cfg.genesis.network_id,
            &[coin.outpoint],
            vec![TxOut {
                owner: self.wallets[to].id(),
                value,
            }],
            self.memo,
            &[key],
        );
        let created = Coin {
            outpoint: OutPoint {
                txid: tx.id(),
                vout: 0,
            },
            value,
            owner: to,
        };
        (tx, created)
    }

    fn track(
        &mut self,
        txid: TxId,
        creates: Option<Coin>,
        submitted_ms: u64,
        endpoint: Option<usize>,
    ) {
        let mut t = Tracked {
            submitted_ms,
            endpoint,
            creates,
        };
        if self.final_everywhere(&txid) {
            if let Some(c) = t.creates.take() {
                self.coins.push(c);
            }
        }
        self.tracked.insert(txid, t);
    }

    /// Reads the newly finalized transactions of the next few nodes (in
    /// turns); frees the coins final everywhere. A node that does not answer
    /// (restarting) is asked on its next turn.
    async fn poll(&mut self) {
        let mut pages = JoinSet::new();
        self.poll_spawn(&mut pages);
        while let Some(joined) = pages.join_next().await {
            self.merge(joined.expect("poll task does not panic"));
        }
    }

    /// Asks the next few nodes (in turns) for their newly finalized
    /// transactions; the answers come back through `pages`.
    fn poll_spawn(&mut self, pages: &mut JoinSet<Page>) {
        let n = self.clients.len();
        let turn = n.min(POLL_AT_ONCE);
        for i in (self.poll_next..self.poll_next + turn).map(|i| i % n) {
            let (c, after) = (self.clients[i].clone(), self.cursors[i].at);
            pages.spawn(async move { (i, c.finalized(after).await) });
        }
        self.poll_next = (self.poll_next + turn) % n.max(1);
    }

    /// Takes in one node's page of finalized transactions; frees the coins
    /// that are now final everywhere.
    fn merge(&mut self, (i, page): Page) {
        let n = self.clients.len();
        let Ok(page) = page else { return };
        let advance = self.cursors[i].advance(&page);
        self.unread_forgotten += advance.unread;
        let seen = now_ms();
        let mut everywhere = Vec::new();
        for e in page.entries {
            let sent = self.tracked.get(&e.txid).map(|t| t.submitted_ms);
            let at = self.observed.entry(e.txid).or_insert_with(|| vec![None; n]);
            if at[i].is_some() {
                continue;
            }
            at[i] = Some(believable(e.at_ms, sent, seen));
            if at.iter().all(|a| a.is_some()) {
                everywhere.push(e.txid);
            }
        }
        if advance.skipped() {
            self.skips.record(i, seen);
            let held = |(t, at): (&TxId, &Vec<Option<u64>>)| {
                (at[i].is_none() && !self.skips.unlisted(at).is_empty()).then_some(*t)
            };
            everywhere.extend(self.observed.iter().filter_map(held));
        }
        for t in everywhere {
            if let Some(c) = self.tracked.get_mut(&t).and_then(|t| t.creates.take()) {
                self.coins.push(c);
            }
        }
    }

    /// Listed final by every node, or held unlisted by one that skipped it
    /// (see [`Skips`]: its ledger's agreement at the end decides).
    fn final_everywhere(&self, txid: &TxId) -> bool {
        self.observed
            .get(txid)
            .is_some_and(|at| at.iter().all(|a| a.is_some()) || !self.skips.unlisted(at).is_empty())
    }

    fn final_somewhere(&self, txid: &TxId) -> bool {
        self.observed
            .get(txid)
            .is_some_and(|at| at.iter().any(|a| a.is_some()))
    }

    /// Discovers the wallets' coins; fans the faucet out to them if they are few.
    async fn fund(&mut self, progress: &impl Fn(&str)) -> Result<(), LoadError> {
        let c0 = self.clients[self.home].clone();
        for (owner, key) in self.wallets.iter().enumerate() {
            for u in c0.utxos(key).await? {
                self.coins.push(Coin {
                    outpoint: u.outpoint,
                    value: u.value,
                    owner,
                });
            }
        }
        if self.coins.len() >= TARGET_COINS / 2 {
            progress(&format!("wallets hold {} coins", self.coins.len()));
            return Ok(());
        }
        let faucet_coins = c0.utxos(&self.cfg.faucet).await?;
        if faucet_coins.is_empty() {
            return Err(LoadError::NoFunds {
                have: self.coins.len(),
            });
        }
        let per = (TARGET_COINS / faucet_coins.len()).clamp(1, self.limits.max_outputs);
        progress(&format!(
            "fanning {} faucet outputs out to {} wallets ({} coins)",
            faucet_coins.len(),
            self.wallets.len(),
            per * faucet_coins.len()
        ));
        let mut fan_ids = Vec::new();
        for (k, u) in faucet_coins.iter().enumerate() {
            let fee = self.limits.min_fee_for(u.value) + 1_000;
            let each = (u.value - fee) / per as u64;
            let outputs: Vec<TxOut> = (0..per)
                .map(|j| TxOut {
                    owner: self.wallets[(k * per + j) % self.wallets.len()].id(),
                    value: each,
                })
                .collect();
            self.memo += 1;
            let tx = Transaction::signed(
                &self.cfg.genesis.network_id,
                &[u.outpoint],
                outputs,
                self.memo,
                &[&self.cfg.faucet],
            );
            let client = &self.clients[k % self.clients.len()];
            let txid = match client.submit(&tx).await? {
                Ok(id) => id,
                Err(r) => {
                    return Err(LoadError::Refused {
                        url: client.base().to_owned(),
                        reason: format!("{} ({})", r.reason, r.error),
                    })
                }
            };
            for j in 0..per {
                self.coins.push(Coin {
                    outpoint: OutPoint {
                        txid,
                        vout: j as u32,
                    },
                    value: each,
                    owner: (k * per + j) % self.wallets.len(),
                });
            }
            self.track(txid, None, now_ms(), None);
            fan_ids.push(txid);
        }
        let deadline = Instant::now() + self.cfg.settle;
        while !fan_ids.iter().all(|t| self.final_everywhere(t)) {
            if Instant::now() > deadline {
                return Err(LoadError::FanOutStalled(self.cfg.settle));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.poll().await;
        }
        for t in fan_ids {
            self.tracked.remove(&t);
            self.observed.remove(&t);
        }
        Ok(())
    }

    /// Waits up to `settle` for every plain payment to be final everywhere.
    async fn settle(&mut self, plain: &[TxId], progress: &impl Fn(&str)) {
        progress(&format!(
            "settling: waiting up to {:?} for every payment to be final everywhere",
            self.cfg.settle
        ));
        let deadline = Instant::now() + self.cfg.settle;
        loop {
            self.poll().await;
            let pending = plain.iter().filter(|t| !self.final_everywhere(t)).count();
            if pending == 0 || Instant::now() > deadline || self.cfg.stop.is_cancelled() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Twins are decided within the same time; give a last poll for late ones.
        self.poll().await;
    }

    /// Submission to finality at a node, in ms, over all (payment, node) pairs,
    /// sorted.
    fn latencies(&self, plain: &[TxId]) -> Vec<f64> {
        let mut latencies: Vec<f64> = plain
            .iter()
            .filter_map(|t| Some((self.tracked.get(t)?.submitted_ms, self.observed.get(t)?)))
            .flat_map(|(sent, at)| {
                at.iter()
                    .flatten()
                    .map(move |a| a.saturating_sub(sent) as f64)
            })
            .collect();
        latencies.sort_by(|a, b| a.partial_cmp(b).expect("latencies are finite"));
        latencies
    }

    /// Every node's end state, read from `/status`; a node that does not
    /// answer within 5 s (down, restarting) is recorded so.
    async fn node_summaries(&self) -> Vec<NodeSummary> {
        let one = |c: &NodeClient| {
            let (c, stop) = (c.clone(), self.cfg.stop.clone());
            async move {
                let deadline = Instant::now() + Duration::from_secs(5);
                let status = loop {
                    match c.status().await {
                        Ok(s) => break Some(s),
                        Err(_) if Instant::now() < deadline && !stop.is_cancelled() => {
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Err(_) => break None,
                    }
                };
                let endpoint = c.base().to_owned();
                match status {
                    Some(s) => NodeSummary {
                        endpoint,
                        answered: true,
                        name: s.name,
                        finalized: s.finalized_transactions,
                        utxo_digest: s.utxo_digest,
                        total_value: s.total_value,
                        fees: s.fees,
                        conflicting_certificates: s.conflicting_certificates,
                    },
                    None => NodeSummary {
                        name: endpoint.clone(),
                        endpoint,
                        answered: false,
                        finalized: 0,
                        utxo_digest: String::new(),
                        total_value: 0,
                        fees: 0,
                        conflicting_certificates: 0,
                    },
                }
            }
        };
        // All at once: nodes that are down cost one wait, not one each.
        futures::future::join_all(self.clients.iter().map(one)).await
    }

    /// The nodes that hold `txid` unlisted (see [`Skips`]), if each of them
    /// ended with the ledger most nodes have (else it is not final there).
    fn held(&self, txid: &TxId, agree: &[bool]) -> Option<Vec<usize>> {
        let at = self.observed.get(txid)?;
        let unlisted = self.skips.unlisted(at);
        unlisted.iter().all(|i| agree[*i]).then_some(unlisted)
    }

    /// Listed final by every node, or held unlisted by nodes that agree.
    fn final_at_end(&self, txid: &TxId, agree: &[bool]) -> bool {
        let listed = |at: &Vec<Option<u64>>| at.iter().all(|a| a.is_some());
        self.observed.get(txid).is_some_and(listed)
            || self.held(txid, agree).is_some_and(|h| !h.is_empty())
    }

    async fn report(&self, tally: Tally, load_secs: f64) -> Result<LoadReport, LoadError> {
        let plain = &tally.plain;
        let nodes = self.node_summaries().await;
        let agree = agreeing(&nodes);
        let final_at_end = |t: &TxId| self.final_at_end(t, &agree);
        let finalized_everywhere = plain.iter().filter(|t| final_at_end(t)).count() as u64;
        let vouched = (plain.iter())
            .filter_map(|t| self.held(t, &agree))
            .map(|h| h.len() as u64)
            .sum();
        let conflicting = tally
            .twins
            .iter()
            .filter(|(a, b)| self.final_somewhere(a) && self.final_somewhere(b))
            .count() as u64;
        let latencies = self.latencies(plain);
        let answered: Vec<&NodeSummary> = nodes.iter().filter(|n| n.answered).collect();
        let supply = self.cfg.genesis.total_supply();
        let n = self.clients.len();
        Ok(LoadReport {
            duration_secs: load_secs,
            planned: send::planned(self.cfg.tps.max(0.1), self.cfg.duration),
            submitted: tally.submitted,
            skipped: tally.skipped,
            accepted: tally.accepted,
            refused: tally.refused,
            double_spend_pairs: tally.double_spend_pairs,
            conflicting_pairs_finalized: conflicting,
            finalized_everywhere,
            not_finalized: plain.len() as u64 - finalized_everywhere,
            unread_forgotten: self.unread_forgotten,
            vouched,
            not_finalized_examples: plain
                .iter()
                .filter(|t| !final_at_end(t))
                .take(10)
                .copied()
                .collect(),
            latency_p50_ms: percentile(&latencies, 0.5),
            latency_p99_ms: percentile(&latencies, 0.99),
            latency_max_ms: latencies.last().copied().unwrap_or(0.0),
            throughput_tps: finalized_everywhere as f64 / load_secs,
            digests_agree: answered
                .windows(2)
                .all(|w| w[0].utxo_digest == w[1].utxo_digest),
            value_conserved: answered
                .iter()
                .all(|n| n.total_value.checked_add(n.fees) == Some(supply)),
            interrupted: self.cfg.stop.is_cancelled(),
            nodes,
            payments: plain
                .iter()
                .filter_map(|t| {
                    Some(Payment {
                        sent_ms: self.tracked.get(t)?.submitted_ms,
                        submitted_to: self.tracked.get(t)?.endpoint,
                        final_ms: self
                            .observed
                            .get(t)
                            .cloned()
                            .unwrap_or_else(|| vec![None; n]),
                        held: self.held(t, &agree).unwrap_or_default(),
                    })
                })
                .collect(),
        })
    }
}

/// Which nodes ended with the UTXO digest most answering nodes have.
fn agreeing(nodes: &[NodeSummary]) -> Vec<bool> {
    let mut votes: HashMap<&str, usize> = HashMap::new();
    for n in nodes.iter().filter(|n| n.answered) {
        *votes.entry(n.utxo_digest.as_str()).or_default() += 1;
    }
    let most = votes
        .into_iter()
        .max_by_key(|(d, k)| (*k, *d))
        .map(|(d, _)| d);
    (nodes.iter())
        .map(|n| n.answered && Some(n.utxo_digest.as_str()) == most)
        .collect()
}

/// When a payment became final at a node: the node's own stamp when it lies
/// between the submission and this look (the node's clock may be skewed by a
/// fault, and a stamp outside that window cannot be true), else this look.
fn believable(node_ms: u64, sent_ms: Option<u64>, seen_ms: u64) -> u64 {
    match sent_ms {
        Some(sent) if (sent..=seen_ms).contains(&node_ms) => node_ms,
        None if node_ms <= seen_ms => node_ms,
        _ => seen_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::believable;

    #[test]
    fn a_skewed_node_stamp_is_replaced_by_the_look() {
        assert_eq!(
            believable(1_005, Some(1_000), 1_050),
            1_005,
            "in the window"
        );
        assert_eq!(believable(31_005, Some(1_000), 1_050), 1_050, "30 s ahead");
        assert_eq!(
            believable(5, Some(1_000), 1_050),
            1_050,
            "behind the submission"
        );
        assert_eq!(believable(900, None, 1_050), 900);
    }
}
