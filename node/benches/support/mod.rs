//! What the node's benches share: a genesis, engines over it, and a
//! history of payments as records (16 chains from the genesis outputs, each
//! spending its chain's last output whole into one new one, as the load
//! generator does).

use prometheus::Registry;
use testnet_node::finality::quorum::{Approval, Certificate, Validators};
use testnet_node::finality::votes::Proof;
use testnet_node::finality::{Bugs, Engine, EngineConfig, Record};
use testnet_node::genesis::{Addressing, GeneratedGenesis, Genesis};
use testnet_node::identity::{Keypair, NodeId};
use testnet_node::ledger::tx::{genesis_txid, OutPoint, Signature, Transaction, TxIn, TxOut};
use testnet_node::ledger::{Ledger, Limits};
use testnet_node::metrics::FinalityMetrics;

/// Hashes in each approval's path: votes signed in batches of 8 (about
/// what a node holds for 4 ms at 2,000 tx/s).
pub const PROOF_DEPTH: usize = 3;

pub fn env(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// A history of payments, made a chunk at a time.
pub struct Payments {
    pub genesis: Genesis,
    validator: Keypair,
    faucet: Keypair,
    voters: Vec<NodeId>,
    tips: Vec<(OutPoint, u64)>,
    made: usize,
}

impl Payments {
    pub fn new() -> Payments {
        let GeneratedGenesis {
            genesis,
            validator_keys,
            faucet_key,
            ..
        } = Genesis::generate_with_full_nodes(
            4,
            0,
            &Addressing::Host {
                ip: "127.0.0.1".parse().unwrap(),
                first_port: 7000,
            },
            Some("memory-bench"),
        )
        .unwrap();
        let voters = Validators::from_genesis(&genesis).ids()[..3].to_vec();
        let tips = (genesis.initial_outputs.iter().enumerate())
            .map(|(i, o)| {
                let txid = genesis_txid(&genesis.network_id);
                (
                    OutPoint {
                        txid,
                        vout: i as u32,
                    },
                    o.value,
                )
            })
            .collect();
        Payments {
            genesis,
            validator: validator_keys[0].clone(),
            faucet: faucet_key,
            voters,
            tips,
            made: 0,
        }
    }

    /// An engine over the genesis keeping `window` (a validator's, with
    /// `validator`).
    pub fn engine(&self, window: usize, validator: bool) -> Engine {
        Engine::new(
            EngineConfig {
                network_id: self.genesis.network_id.clone(),
                validators: Validators::from_genesis(&self.genesis),
                key: validator.then(|| self.validator.clone()),
                bugs: Bugs::default(),
                relay: false,
                window,
            },
            Ledger::from_genesis(&self.genesis, Limits::default()),
            FinalityMetrics::register(&Registry::new()),
        )
    }

    pub fn made(&self) -> usize {
        self.made
    }

    /// The next `n` payments' records: each one's finalization (its
    /// certificate with dummy signatures, each approval with a path of
    /// [`PROOF_DEPTH`] as of a batch of 8 votes: a replay checks none), after its
    /// `Lock` with real signatures with `locks`, as a validator writes them.
    pub fn next(&mut self, n: usize, locks: bool) -> Vec<Record> {
        let mut records = Vec::with_capacity(n * (1 + locks as usize));
        for _ in 0..n {
            let i = self.made;
            self.made += 1;
            let c = i % self.tips.len();
            let (prev, value) = self.tips[c];
            let outputs = vec![TxOut {
                owner: self.faucet.id(),
                value: value - 1,
            }];
            let net = &self.genesis.network_id;
            let tx = match locks {
                true => Transaction::signed(net, &[prev], outputs, i as u64, &[&self.faucet]),
                false => Transaction {
                    inputs: vec![TxIn {
                        prev,
                        signature: Signature([7; 64]),
                    }],
                    outputs,
                    memo: i as u64,
                },
            };
            if locks {
                records.push(Record::Lock(tx.clone()));
            }
            let txid = tx.id();
            self.tips[c] = (OutPoint { txid, vout: 0 }, value - 1);
            let approvals = (self.voters.iter())
                .map(|v| Approval {
                    voter: *v,
                    signature: Signature([9; 64]),
                    proof: Proof {
                        index: (i % (1 << PROOF_DEPTH)) as u32,
                        siblings: vec![[5; 32]; PROOF_DEPTH],
                    },
                })
                .collect();
            records.push(Record::FinalizedAt {
                cert: Certificate { tx, approvals }.into(),
                at_ms: i as u64,
            });
        }
        records
    }
}
