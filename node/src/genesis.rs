//! Genesis: the fixed starting point every node of a testnet shares.
//!
//! It names the network (nodes of another network are refused at handshake), lists
//! the validators (who vote) and the full nodes (who follow certificates and serve
//! the API) with their public keys and P2P addresses, and gives the initial UTXOs
//! to a faucet key that load generators spend from.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::{IdentityError, Keypair, NodeId};

/// Version of the wire protocol spoken by this build; carried in VERSION.
pub const PROTOCOL_VERSION: u32 = 1;

/// Total value created at genesis, split over [`GENESIS_OUTPUTS`] faucet outputs so a
/// load generator can fan out from several coins at once.
pub const GENESIS_SUPPLY: u64 = 1_000_000_000_000;
pub const GENESIS_OUTPUTS: u64 = 16;

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read genesis file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("genesis file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("genesis is inconsistent: {0}")]
    Invalid(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validator {
    /// Short human name, `n0`, `n1`, ...; also the container's node name.
    pub name: String,
    pub public_key: NodeId,
    pub p2p_address: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisOutput {
    pub owner: NodeId,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub network_id: String,
    pub protocol_version: u32,
    pub validators: Vec<Validator>,
    /// Nodes that never vote: `n{V}`, `n{V+1}`, ... after the V validators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub full_nodes: Vec<Validator>,
    pub faucet: NodeId,
    pub initial_outputs: Vec<GenesisOutput>,
}

/// Where the validators listen: all on one host with consecutive ports (native
/// runs), or one IP each on the same port (containers).
#[derive(Debug, Clone)]
pub enum Addressing {
    Host { ip: IpAddr, first_port: u16 },
    Ips { ips: Vec<IpAddr>, port: u16 },
}

/// A generated genesis with the secret keys that belong to it.
pub struct GeneratedGenesis {
    pub genesis: Genesis,
    pub validator_keys: Vec<Keypair>,
    /// Keys of the full nodes, in order (`n{V}`, ...).
    pub full_node_keys: Vec<Keypair>,
    pub faucet_key: Keypair,
}

impl Genesis {
    /// Generates a genesis for `validators` nodes. With a seed, keys and network id are
    /// a pure function of it, so a testnet can be rebuilt identically.
    pub fn generate(
        validators: usize,
        addressing: &Addressing,
        seed: Option<&str>,
    ) -> Result<GeneratedGenesis, GenesisError> {
        Self::generate_with_full_nodes(validators, 0, addressing, seed)
    }

    /// Like [`Genesis::generate`], with `full_nodes` non-voting nodes after the
    /// validators; `addressing` places all `validators + full_nodes` of them.
    pub fn generate_with_full_nodes(
        validators: usize,
        full_nodes: usize,
        addressing: &Addressing,
        seed: Option<&str>,
    ) -> Result<GeneratedGenesis, GenesisError> {
        let total = validators + full_nodes;
        if validators == 0 {
            return Err(GenesisError::Invalid(
                "at least one validator is needed".into(),
            ));
        }
        let derive = |label: &str| -> Keypair {
            match seed {
                Some(seed) => {
                    let digest = Sha256::new()
                        .chain_update(b"testnet-genesis-v1\0")
                        .chain_update(seed.as_bytes())
                        .chain_update(b"\0")
                        .chain_update(label.as_bytes())
                        .finalize();
                    Keypair::from_seed(digest.into())
                }
                None => Keypair::generate(),
            }
        };
        let addresses: Vec<SocketAddr> = match addressing {
            Addressing::Host { ip, first_port } => (0..total)
                .map(|i| {
                    u16::try_from(i)
                        .ok()
                        .and_then(|i| first_port.checked_add(i))
                        .map(|port| SocketAddr::new(*ip, port))
                        .ok_or_else(|| {
                            GenesisError::Invalid(format!(
                                "port {first_port} + {i} is past 65535; choose a lower --p2p-port"
                            ))
                        })
                })
                .collect::<Result<_, _>>()?,
            Addressing::Ips { ips, port } => {
                if ips.len() != total {
                    return Err(GenesisError::Invalid(format!(
                        "--ips lists {} addresses but there are {total} nodes \
                         (--validators {validators} + --full-nodes {full_nodes})",
                        ips.len()
                    )));
                }
                ips.iter().map(|ip| SocketAddr::new(*ip, *port)).collect()
            }
        };
        let mut validator_keys: Vec<Keypair> =
            (0..total).map(|i| derive(&format!("n{i}"))).collect();
        let full_node_keys = validator_keys.split_off(validators);
        let faucet_key = derive("faucet");
        let network_id = match seed {
            Some(seed) => {
                let digest = Sha256::digest(format!("testnet-network-v1\0{seed}").as_bytes());
                format!("testnet-{}", hex::encode(&digest[..4]))
            }
            None => format!("testnet-{}", hex::encode(rand::random::<[u8; 4]>())),
        };
        let per_output = GENESIS_SUPPLY / GENESIS_OUTPUTS;
        let mut members: Vec<Validator> = validator_keys
            .iter()
            .chain(&full_node_keys)
            .zip(addresses)
            .enumerate()
            .map(|(i, (key, p2p_address))| Validator {
                name: format!("n{i}"),
                public_key: key.id(),
                p2p_address,
            })
            .collect();
        let full = members.split_off(validators);
        let genesis = Genesis {
            network_id,
            protocol_version: PROTOCOL_VERSION,
            validators: members,
            full_nodes: full,
            faucet: faucet_key.id(),
            initial_outputs: (0..GENESIS_OUTPUTS)
                .map(|_| GenesisOutput {
                    owner: faucet_key.id(),
                    value: per_output,
                })
                .collect(),
        };
        genesis.validate()?;
        Ok(GeneratedGenesis {
            genesis,
            validator_keys,
            full_node_keys,
            faucet_key,
        })
    }

    pub fn load(path: &Path) -> Result<Self, GenesisError> {
        let text = std::fs::read_to_string(path).map_err(|source| GenesisError::Read {
            path: path.to_owned(),
            source,
        })?;
        let genesis: Genesis =
            serde_json::from_str(&text).map_err(|source| GenesisError::Parse {
                path: path.to_owned(),
                source,
            })?;
        genesis.validate()?;
        Ok(genesis)
    }

    /// Checks what serde cannot: unique names, keys and addresses, valid keys, a
    /// protocol version this build speaks.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let mut problems = Vec::new();
        if self.network_id.is_empty() || self.network_id.len() > 64 {
            problems.push("network_id must be 1..=64 characters".to_owned());
        }
        if self.protocol_version != PROTOCOL_VERSION {
            problems.push(format!(
                "protocol_version is {} but this node speaks {PROTOCOL_VERSION}",
                self.protocol_version
            ));
        }
        if self.validators.is_empty() {
            problems.push("validators is empty".to_owned());
        }
        let (mut names, mut keys, mut addrs) = (HashSet::new(), HashSet::new(), HashSet::new());
        let listed = self
            .validators
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("validators[{i}]"), v))
            .chain(
                self.full_nodes
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("full_nodes[{i}]"), v)),
            );
        for (at, v) in listed {
            if !names.insert(&v.name) {
                problems.push(format!("{at}.name {:?} is repeated", v.name));
            }
            if !keys.insert(v.public_key) {
                problems.push(format!("{at}.public_key is repeated"));
            }
            if v.public_key.verifying_key().is_none() {
                problems.push(format!("{at}.public_key is not an ed25519 key"));
            }
            if !addrs.insert(v.p2p_address) {
                problems.push(format!("{at}.p2p_address {} is repeated", v.p2p_address));
            }
        }
        if self.initial_outputs.iter().any(|o| o.value == 0) {
            problems.push("initial_outputs holds a zero-value output".to_owned());
        }
        if self
            .initial_outputs
            .iter()
            .try_fold(0u64, |sum, o| sum.checked_add(o.value))
            .is_none()
        {
            problems.push("initial_outputs overflow u64".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(GenesisError::Invalid(problems.join("; ")))
        }
    }

    pub fn validator(&self, id: &NodeId) -> Option<&Validator> {
        self.validators.iter().find(|v| &v.public_key == id)
    }

    /// Every node of genesis: the validators, then the full nodes.
    pub fn members(&self) -> impl Iterator<Item = &Validator> {
        self.validators.iter().chain(&self.full_nodes)
    }

    /// A validator or full node of genesis.
    pub fn member(&self, id: &NodeId) -> Option<&Validator> {
        self.members().find(|v| &v.public_key == id)
    }

    pub fn total_supply(&self) -> u64 {
        self.initial_outputs.iter().map(|o| o.value).sum()
    }
}

impl GeneratedGenesis {
    /// Writes `genesis.json`, `n{i}.key` and `faucet.key` into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> Result<(), GenesisError> {
        let write_err = |path: PathBuf| move |source| GenesisError::Write { path, source };
        std::fs::create_dir_all(dir).map_err(write_err(dir.to_owned()))?;
        let path = dir.join("genesis.json");
        let mut text = serde_json::to_string_pretty(&self.genesis).expect("genesis serializes");
        text.push('\n');
        std::fs::write(&path, text).map_err(write_err(path.clone()))?;
        for (i, key) in self
            .validator_keys
            .iter()
            .chain(&self.full_node_keys)
            .enumerate()
        {
            key.save(&dir.join(format!("n{i}.key")))?;
        }
        self.faucet_key.save(&dir.join("faucet.key"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Addressing {
        Addressing::Host {
            ip: "127.0.0.1".parse().unwrap(),
            first_port: 7000,
        }
    }

    #[test]
    fn seeded_genesis_is_deterministic_and_unseeded_is_not() {
        let a = Genesis::generate(4, &host(), Some("s")).unwrap();
        let b = Genesis::generate(4, &host(), Some("s")).unwrap();
        assert_eq!(a.genesis, b.genesis);
        let c = Genesis::generate(4, &host(), None).unwrap();
        assert_ne!(
            a.genesis.validators[0].public_key,
            c.genesis.validators[0].public_key
        );
        assert_eq!(a.genesis.validators[3].p2p_address.port(), 7003);
        assert_eq!(a.genesis.total_supply(), GENESIS_SUPPLY);
    }

    #[test]
    fn ips_addressing_needs_one_ip_per_validator() {
        let ips = Addressing::Ips {
            ips: vec!["10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap()],
            port: 7000,
        };
        let g = Genesis::generate(2, &ips, None).unwrap();
        assert_eq!(
            g.genesis.validators[1].p2p_address,
            "10.0.0.3:7000".parse().unwrap()
        );
        assert!(Genesis::generate(3, &ips, None).is_err());
    }

    #[test]
    fn full_nodes_follow_the_validators_and_share_the_checks() {
        let g = Genesis::generate_with_full_nodes(2, 3, &host(), Some("f")).unwrap();
        let names: Vec<&str> = g.genesis.members().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["n0", "n1", "n2", "n3", "n4"]);
        assert_eq!(g.genesis.validators.len(), 2);
        assert_eq!(g.full_node_keys[0].id(), g.genesis.full_nodes[0].public_key);
        assert_eq!(g.genesis.full_nodes[2].p2p_address.port(), 7004);
        assert!(g.genesis.validator(&g.full_node_keys[0].id()).is_none());
        assert!(g.genesis.member(&g.full_node_keys[0].id()).is_some());
        let same = Genesis::generate_with_full_nodes(2, 3, &host(), Some("f")).unwrap();
        assert_eq!(g.genesis, same.genesis);
        let text =
            serde_json::to_string(&Genesis::generate(2, &host(), None).unwrap().genesis).unwrap();
        assert!(!text.contains("full_nodes"), "absent when there are none");
        let mut bad = g.genesis.clone();
        bad.full_nodes[1].name = "n0".into();
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("full_nodes[1].name \"n0\" is repeated"),
            "{err}"
        );
    }

    #[test]
    fn validation_reports_every_problem() {
        let mut g = Genesis::generate(3, &host(), Some("x")).unwrap().genesis;
        g.validators[1].name = "n0".into();
        g.validators[2].p2p_address = g.validators[0].p2p_address;
        g.protocol_version = 99;
        let err = g.validate().unwrap_err().to_string();
        assert!(err.contains("name \"n0\" is repeated"), "{err}");
        assert!(err.contains("p2p_address"), "{err}");
        assert!(err.contains("protocol_version"), "{err}");
    }

    #[test]
    fn written_files_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let g = Genesis::generate(2, &host(), None).unwrap();
        g.write(dir.path()).unwrap();
        let loaded = Genesis::load(&dir.path().join("genesis.json")).unwrap();
        assert_eq!(loaded, g.genesis);
        let k1 = Keypair::load(&dir.path().join("n1.key")).unwrap();
        assert_eq!(k1.id(), loaded.validators[1].public_key);
        let faucet = Keypair::load(&dir.path().join("faucet.key")).unwrap();
        assert_eq!(faucet.id(), loaded.faucet);
    }
}
