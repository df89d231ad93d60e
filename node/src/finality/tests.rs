//! Engines wired through a simulated network: arbitrary delivery orders, links cut
//! and healed, nodes restarted from their persisted records, seeded bugs.

use std::collections::HashSet;

use prometheus::Registry;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::genesis::{Addressing, Genesis, GENESIS_SUPPLY};
use crate::ledger::tx::TxOut;
use crate::ledger::Limits;

/// The most a message may take: the P2P layer's frame limit.
const FRAME: usize = CATCHUP_REPLY_BYTES + 4096;

struct Sim {
    genesis: Genesis,
    keys: Vec<Keypair>,
    faucet: Keypair,
    bugs: Vec<Bugs>,
    engines: Vec<Engine>,
    persisted: Vec<Vec<Record>>,
    /// Every record each node persisted (never compacted).
    full: Vec<Vec<Record>>,
    queue: Vec<(usize, usize, LedgerMessage)>,
    cut: HashSet<usize>,
    rng: StdRng,
    now: u64,
    /// Each node's neighbours; engines relay when the graph is not a full mesh.
    adj: Vec<Vec<usize>>,
    validators: usize,
    relay: bool,
    /// Each engine's finality window (0: none).
    window: usize,
    /// Messages delivered by `run`, by kind.
    delivered: std::collections::BTreeMap<&'static str, usize>,
    /// Snapshots each node installed.
    installed: Vec<usize>,
    /// `run` delivers up to 16 messages to a node at once, their signatures
    /// checked together first (as the replica does).
    batched: bool,
}

impl Sim {
    fn new(n: usize, bugs: impl Fn(usize) -> Bugs, seed: u64) -> Sim {
        Sim::with_topology(n, n, None, bugs, seed)
    }

    /// `validators` voting nodes then full nodes up to `n`, linked by `edges`
    /// (`None`: a full mesh without relay).
    fn with_topology(
        validators: usize,
        n: usize,
        edges: Option<&[(usize, usize)]>,
        bugs: impl Fn(usize) -> Bugs,
        seed: u64,
    ) -> Sim {
        let g = Genesis::generate_with_full_nodes(
            validators,
            n - validators,
            &Addressing::Host {
                ip: "127.0.0.1".parse().unwrap(),
                first_port: 7000,
            },
            Some("finality-sim"),
        )
        .unwrap();
        let mut adj = vec![Vec::new(); n];
        match edges {
            Some(edges) => {
                for &(a, b) in edges {
                    adj[a].push(b);
                    adj[b].push(a);
                }
            }
            None => {
                for (i, a) in adj.iter_mut().enumerate() {
                    a.extend((0..n).filter(|j| *j != i));
                }
            }
        }
        let bugs: Vec<Bugs> = (0..n).map(bugs).collect();
        let mut sim = Sim {
            genesis: g.genesis,
            keys: g
                .validator_keys
                .into_iter()
                .chain(g.full_node_keys)
                .collect(),
            faucet: g.faucet_key,
            adj,
            validators,
            relay: edges.is_some(),
            window: 0,
            delivered: Default::default(),
            bugs,
            engines: Vec::new(),
            persisted: vec![Vec::new(); n],
            full: vec![Vec::new(); n],
            installed: vec![0; n],
            batched: false,
            queue: Vec::new(),
            cut: HashSet::new(),
            rng: StdRng::seed_from_u64(seed),
            now: 1_000,
        };
        sim.engines = (0..n).map(|i| sim.fresh_engine(i)).collect();
        sim
    }

    /// The same, with engines that keep `window` finalizations.
    fn windowed(mut self, window: usize) -> Sim {
        self.window = window;
        self.engines = (0..self.engines.len())
            .map(|i| self.fresh_engine(i))
            .collect();
        self
    }

    fn fresh_engine(&self, i: usize) -> Engine {
        Engine::new(
            EngineConfig {
                network_id: self.genesis.network_id.clone(),
                validators: Validators::from_genesis(&self.genesis),
                key: (i < self.validators).then(|| self.keys[i].clone()),
                bugs: self.bugs[i],
                relay: self.relay,
                window: self.window,
            },
            Ledger::from_genesis(&self.genesis, Limits::default()),
            FinalityMetrics::register(&Registry::new()),
        )
    }

    fn id(&self, i: usize) -> NodeId {
        self.keys[i].id()
    }

    fn index(&self, id: &NodeId) -> usize {
        self.keys.iter().position(|k| &k.id() == id).unwrap()
    }

    fn effects(&mut self, from: usize, fx: Vec<Effect>) {
        for e in fx {
            match e {
                Effect::Persist(r) => {
                    self.full[from].push(r.clone());
                    self.persisted[from].push(r);
                }
                Effect::Broadcast(m) => {
                    for &to in &self.adj[from] {
                        self.queue.push((from, to, m.clone()));
                    }
                }
                Effect::Relay(except, m) => {
                    let except = self.index(&except);
                    for &to in self.adj[from].iter().filter(|t| **t != except) {
                        self.queue.push((from, to, m.clone()));
                    }
                }
                Effect::Send(to, m) => {
                    let to = self.index(&to);
                    assert!(
                        self.adj[from].contains(&to),
                        "n{from} sent to n{to}, not a neighbour"
                    );
                    self.queue.push((from, to, m));
                }
                // As the replica does: a part read from the checkpoint held.
                Effect::ServeSnapshot { to, seq, index } => {
                    let to = self.index(&to);
                    let held = self.persisted[from].iter().cloned();
                    if let Some(m) = snapshot_part(held, seq, index, CATCHUP_REPLY_BYTES) {
                        self.queue.push((from, to, m));
                    }
                }
                Effect::Installed { .. } => {
                    self.installed[from] += 1;
                    self.compact(from);
                }
            }
        }
    }

    fn submit(&mut self, at: usize, tx: Transaction) -> Result<TxId, Rejection> {
        self.now += 1;
        let (r, fx) = self.engines[at].submit(tx, self.now);
        self.effects(at, fx);
        r
    }

    /// Delivers queued messages in random order until none is left; messages over
    /// a cut link are lost.
    fn run(&mut self) {
        let mut steps = 0;
        while !self.queue.is_empty() {
            steps += 1;
            assert!(steps < 200_000, "no quiescence");
            let k = self.rng.gen_range(0..self.queue.len());
            let mut batch = vec![self.queue.swap_remove(k)];
            while self.batched && batch.len() < 16 {
                let to = batch[0].1;
                match self.queue.iter().position(|q| q.1 == to) {
                    Some(j) => batch.push(self.queue.remove(j)),
                    None => break,
                }
            }
            batch.retain(|(from, to, _)| self.cut.contains(from) == self.cut.contains(to));
            // As the replica does: signatures checked together, our votes
            // held and signed together at the end.
            let held = batch.first().filter(|_| self.batched).map(|b| b.1);
            if let Some(to) = held {
                self.engines[to].preverify(batch.iter().map(|b| &b.2), []);
                self.engines[to].hold_votes();
            }
            for (from, to, m) in batch {
                self.now += 1;
                *self.delivered.entry(m.kind()).or_default() += 1;
                // What a frame (2 MiB) cannot hold would drop the link instead.
                let size = postcard::to_stdvec(&m).map_or(usize::MAX, |v| v.len());
                assert!(size <= FRAME, "a {} message of {size} bytes", m.kind());
                let from_id = self.id(from);
                let fx = self.engines[to].on_message(from_id, m, self.now);
                self.effects(to, fx);
            }
            if let Some(to) = held {
                let fx = self.engines[to].release_votes(self.now);
                self.effects(to, fx);
            }
        }
        assert!(self.engines.iter().all(|e| e.vote_only_is_counted()));
    }

    /// Delivers, in queue order, the messages `pick` selects (and what they cause,
    /// if it selects that too).
    fn deliver_where(&mut self, pick: impl Fn(usize, usize, &LedgerMessage) -> bool) {
        while let Some(k) = self.queue.iter().position(|(f, t, m)| pick(*f, *t, m)) {
            let (from, to, m) = self.queue.remove(k);
            let from_id = self.id(from);
            let fx = self.engines[to].on_message(from_id, m, self.now);
            self.effects(to, fx);
        }
    }

    /// Reconnects everyone (as the P2P layer reports after a heal) and lets
    /// catch-up run a few rounds.
    fn heal(&mut self) {
        self.cut.clear();
        let n = self.engines.len();
        for i in 0..n {
            for j in self.adj[i].clone() {
                let peer = self.id(j);
                let fx = self.engines[i].on_peer_connected(peer);
                self.effects(i, fx);
            }
        }
        self.run();
        for _ in 0..3 {
            for i in 0..n {
                let peers: Vec<NodeId> = self.adj[i].iter().map(|j| self.id(*j)).collect();
                let fx = self.engines[i].on_tick(&peers, self.now);
                self.effects(i, fx);
            }
            self.run();
        }
    }

    /// Kills node `i` and starts it again from its persisted records.
    fn restart(&mut self, i: usize) {
        self.queue.retain(|(from, to, _)| *from != i && *to != i);
        let mut e = self.fresh_engine(i);
        e.replay(self.persisted[i].clone(), self.now).unwrap();
        self.engines[i] = e;
    }

    /// Replaces node `i`'s records with a checkpoint of its state (later
    /// records are its tail).
    fn compact(&mut self, i: usize) {
        self.persisted[i] = self.engines[i].checkpoint_image();
        if let Some(claim) = self.engines[i].claim() {
            self.engines[i].propose(claim);
        }
    }

    /// A payment from faucet output `coin` to a fresh key; `memo` tells twins apart.
    fn payment(&self, coin: usize, memo: u64) -> Transaction {
        let prev = OutPoint {
            txid: crate::ledger::tx::genesis_txid(&self.genesis.network_id),
            vout: coin as u32,
        };
        let value = self.genesis.initial_outputs[coin].value;
        Transaction::signed(
            &self.genesis.network_id,
            &[prev],
            vec![TxOut {
                owner: Keypair::from_seed([memo as u8; 32]).id(),
                value: value - 1_000_000_000,
            }],
            memo,
            &[&self.faucet],
        )
    }

    fn finalized(&self, i: usize, txid: &TxId) -> bool {
        self.engines[i].certificate(txid).is_some()
    }

    fn assert_agreement(&self, nodes: impl Iterator<Item = usize> + Clone) {
        let first = nodes.clone().next().unwrap();
        let digest = self.engines[first].ledger().digest();
        for i in nodes {
            let l = self.engines[i].ledger();
            assert_eq!(l.digest(), digest, "n{i} disagrees");
            assert_eq!(
                l.total_value() + l.fees(),
                GENESIS_SUPPLY,
                "n{i} lost or made value"
            );
            assert!(self.engines[i].conflicts().is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// With at most f equivocating validators of n = 3f+1, no two conflicting
    /// transactions are ever both final, whatever the delivery order; honest nodes
    /// end with equal ledgers and conserved value.
    #[test]
    fn no_conflicting_pair_is_certified_with_at_most_f_equivocators(
        f in 1usize..=2, pairs in 1usize..5, seed: u64, liars in proptest::collection::vec(any::<usize>(), 2),
    ) {
        let n = 3 * f + 1;
        let equivocators: HashSet<usize> = liars.iter().take(f).map(|x| x % n).collect();
        let mut sim = Sim::new(n, |i| Bugs { equivocate: equivocators.contains(&i), ..Bugs::default() }, seed);
        let mut twins = Vec::new();
        for p in 0..pairs {
            let (a, b) = (sim.payment(p, 2 * p as u64 + 1), sim.payment(p, 2 * p as u64 + 2));
            let (x, y) = (sim.rng.gen_range(0..n), sim.rng.gen_range(0..n));
            let _ = sim.submit(x, a.clone());
            let _ = sim.submit(y, b.clone());
            twins.push((a.id(), b.id()));
        }
        sim.run();
        for (a, b) in &twins {
            for i in 0..n {
                prop_assert!(!(sim.finalized(i, a) && sim.finalized(i, b)), "pair finalized at n{}", i);
            }
            let somewhere_a = (0..n).any(|i| sim.finalized(i, a));
            let somewhere_b = (0..n).any(|i| sim.finalized(i, b));
            prop_assert!(!(somewhere_a && somewhere_b), "a conflicting pair was certified");
        }
        let honest = (0..n).filter(|i| !equivocators.contains(i));
        sim.assert_agreement(honest);
    }

    /// Valid, non-conflicting transactions are final everywhere in any order.
    #[test]
    fn independent_payments_finalize_everywhere(count in 1usize..8, seed: u64) {
        let mut sim = Sim::new(4, |_| Bugs::default(), seed);
        let mut ids = Vec::new();
        for c in 0..count {
            let at = sim.rng.gen_range(0..4);
            ids.push(sim.submit(at, sim.payment(c, c as u64)).unwrap());
        }
        sim.run();
        for id in &ids {
            for i in 0..4 {
                prop_assert!(sim.finalized(i, id));
            }
        }
        sim.assert_agreement(0..4);
    }
}

/// The bound is tight: with f+1 equivocators a conflicting pair can be certified
/// (here: they see both twins before either is final, and each twin's votes reach
/// a different honest node first), so the safety checker has something to catch.
#[test]
fn f_plus_one_equivocators_certify_a_conflicting_pair() {
    for seed in 0..5 {
        let mut sim = Sim::new(
            4,
            |i| Bugs {
                equivocate: i >= 2,
                ..Bugs::default()
            },
            seed,
        );
        let (a, b) = (sim.payment(0, 1), sim.payment(0, 2));
        sim.submit(0, a.clone()).unwrap();
        sim.submit(1, b.clone()).unwrap();
        // Every validator sees both twins; A's votes reach n0 and B's reach n1
        // first, so each assembles a certificate; then everything is delivered.
        sim.deliver_where(|_, _, m| matches!(m, LedgerMessage::Tx(_)));
        let (ida, idb) = (a.id(), b.id());
        sim.deliver_where(|_, to, m| match m {
            LedgerMessage::Vote(v) => (v.txid == ida && to == 0) || (v.txid == idb && to == 1),
            _ => false,
        });
        sim.run();
        // Both twins got a certificate: each node applied whichever came first and
        // reports the other as a safety violation.
        for i in 0..4 {
            let applied_a = sim.finalized(i, &a.id());
            let applied_b = sim.finalized(i, &b.id());
            assert!(
                applied_a != applied_b,
                "seed {seed}: n{i} applied exactly one twin"
            );
            let expected = if applied_a {
                (a.id(), b.id())
            } else {
                (b.id(), a.id())
            };
            assert_eq!(sim.engines[i].conflicts(), &[expected], "seed {seed}: n{i}");
        }
        assert!(
            (0..4).any(|i| sim.finalized(i, &a.id())) || (0..4).any(|i| sim.finalized(i, &b.id()))
        );
    }
}

/// A node cut off while others finalize catches up after the heal; with
/// `passive-catchup` it never does.
#[test]
fn a_partitioned_node_catches_up_unless_passive() {
    for passive in [false, true] {
        let mut sim = Sim::new(
            4,
            |i| Bugs {
                passive_catchup: passive && i == 3,
                ..Bugs::default()
            },
            7,
        );
        sim.cut.insert(3);
        let mut ids = Vec::new();
        for c in 0..6 {
            ids.push(sim.submit(c % 3, sim.payment(c, c as u64)).unwrap());
        }
        sim.run();
        assert!(ids
            .iter()
            .all(|id| sim.finalized(0, id) && !sim.finalized(3, id)));
        // A payment that spends an output created while n3 was away: n3 needs the
        // parent before it can apply the child.
        let parent = sim.engines[0].certificate(&ids[0]).unwrap().tx.clone();
        let owner = Keypair::from_seed([0; 32]);
        let child = Transaction::signed(
            &sim.genesis.network_id,
            &[OutPoint {
                txid: parent.id(),
                vout: 0,
            }],
            vec![TxOut {
                owner: owner.id(),
                value: parent.outputs[0].value - 2_000_000,
            }],
            99,
            &[&owner],
        );
        sim.heal();
        let child_id = sim.submit(1, child).unwrap();
        sim.run();
        if passive {
            assert!(!sim.finalized(3, &ids[1]), "passive node must stay behind");
            assert_ne!(
                sim.engines[3].ledger().digest(),
                sim.engines[0].ledger().digest()
            );
        } else {
            for id in ids.iter().chain([&child_id]) {
                assert!(sim.finalized(3, id));
            }
            sim.assert_agreement(0..4);
        }
    }
}

/// Seed 004's UTXO bug: a node that never spends inputs disagrees with the rest
/// and holds more value than exists.
#[test]
fn utxo_no_spend_shows_as_disagreement() {
    let mut sim = Sim::new(
        4,
        |i| Bugs {
            utxo_no_spend: i == 2,
            ..Bugs::default()
        },
        1,
    );
    for c in 0..3 {
        sim.submit(0, sim.payment(c, c as u64)).unwrap();
    }
    sim.run();
    sim.assert_agreement([0, 1, 3].into_iter());
    let bad = sim.engines[2].ledger();
    assert_ne!(bad.digest(), sim.engines[0].ledger().digest());
    assert!(bad.total_value() + bad.fees() > GENESIS_SUPPLY);
}

/// Locks survive a restart; with `no-lock-persist` they do not. One forgetful
/// validator of 4 cannot break safety: the twin still needs 3 approvals and only
/// the forgetful one and the twin's own submitter give them (the others hold the
/// lock). Two forgetful validators (f+1) can, and the violation is caught.
#[test]
fn forgotten_locks_break_safety_only_beyond_f() {
    for forgetful in [0usize, 1, 2] {
        let mut sim = Sim::new(
            4,
            |i| Bugs {
                no_lock_persist: i < forgetful,
                ..Bugs::default()
            },
            3,
        );
        let (a, b) = (sim.payment(0, 1), sim.payment(0, 2));
        // A, submitted at n2, reaches n0 and n1 (n3 is away); their approvals reach
        // n2 only, which certifies A. Then n0 and n1 crash before learning it.
        sim.cut.insert(3);
        sim.submit(2, a.clone()).unwrap();
        while let Some(k) = sim.queue.iter().position(|(_, to, m)| {
            matches!(m, LedgerMessage::Tx(_)) || (matches!(m, LedgerMessage::Vote(_)) && *to == 2)
        }) {
            let (from, to, m) = sim.queue.swap_remove(k);
            if sim.cut.contains(&to) {
                continue;
            }
            let from_id = sim.id(from);
            let fx = sim.engines[to].on_message(from_id, m, 5);
            sim.effects(to, fx);
        }
        sim.queue.clear();
        assert!(sim.finalized(2, &a.id()) && !sim.finalized(0, &a.id()));
        sim.restart(0);
        sim.restart(1);
        // B, the twin, is submitted at n3 while n2 is away.
        sim.cut = [2].into();
        let _ = sim.submit(3, b.clone());
        sim.run();
        sim.heal();
        let b_final = (0..4).any(|i| sim.finalized(i, &b.id()));
        let violations: usize = (0..4).map(|i| sim.engines[i].conflicts().len()).sum();
        if forgetful < 2 {
            assert!(
                !b_final,
                "{forgetful} forgetful: the twin must not be certified"
            );
            assert_eq!(violations, 0);
            assert!(
                (0..4).all(|i| sim.finalized(i, &a.id())),
                "A reaches everyone by catch-up"
            );
            sim.assert_agreement(0..4);
        } else {
            assert!(b_final, "two forgetful validators re-approve the twin");
            assert!(violations > 0, "the conflicting certificates are detected");
        }
    }
}

mod batch;
mod checkpoint;
mod hostile;
mod relay;
mod sync;
mod votes;
mod window;
