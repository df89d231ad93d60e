//! Node identity: ed25519 keys, the `NodeId` derived from them, and key files.
//!
//! A key file is JSON `{"public_key": hex, "secret_key": hex}`. The public key is
//! stored for humans and scripts; on load it must match the secret key, so a file
//! edited by hand cannot silently give a node another identity.

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey};
use ed25519_zebra::{Signature, VerificationKey, VerificationKeyBytes};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};

mod batch;
pub use batch::{Checked, Signed, Verified};

/// How many decompressed keys each thread keeps (cleared when full: a flood of
/// new keys costs what it did without the cache, no more).
const KEY_CACHE: usize = 4096;

thread_local! {
    static KEYS: std::cell::RefCell<std::collections::HashMap<[u8; 32], Option<VerificationKey>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Errors of loading or parsing identities.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is not valid JSON of the form {{\"public_key\": hex, \"secret_key\": hex}}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{what} is not {len} bytes of hex: {value:?}")]
    BadHex {
        what: &'static str,
        len: usize,
        value: String,
    },
    #[error("{0} is not a valid ed25519 public key")]
    BadPublicKey(String),
    #[error("key file {path}: public_key does not belong to secret_key (regenerate the file with `testnet-node genesis`)")]
    Mismatch { path: PathBuf },
}

/// A node's public identity: its ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; 32]);

impl NodeId {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        NodeId(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits, enough to tell nodes apart in logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    pub fn from_hex(s: &str) -> Result<Self, IdentityError> {
        let bytes = decode_fixed::<32>("public key", s)?;
        Ok(NodeId(bytes))
    }

    /// The verifying key, if the bytes are a valid curve point. Decompressing
    /// the point is a field exponentiation, and the same few keys (validators,
    /// the load's owners) sign most of what a node checks, so each thread
    /// keeps the last [`KEY_CACHE`] keys it decompressed. Non-canonical
    /// encodings of a point are keys (ZIP 215).
    pub fn verifying_key(&self) -> Option<VerificationKey> {
        KEYS.with(|cell| {
            let mut keys = cell.borrow_mut();
            if let Some(k) = keys.get(&self.0) {
                return *k;
            }
            let k = VerificationKey::try_from(VerificationKeyBytes::from(self.0)).ok();
            if keys.len() >= KEY_CACHE {
                keys.clear();
            }
            keys.insert(self.0, k);
            k
        })
    }

    /// Verifies `signature` over `message` by this identity, under the
    /// rules of ZIP 215: the same rules as a batch check ([`Verified`]), so
    /// a signature valid in one is valid in the other, at every node.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        match self.verifying_key() {
            Some(key) => key.verify(&Signature::from_bytes(&sig), message).is_ok(),
            None => false,
        }
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::fixed_bytes::raw32::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            NodeId::from_hex(&s).map_err(serde::de::Error::custom)
        } else {
            crate::fixed_bytes::raw32::deserialize(d).map(NodeId)
        }
    }
}

/// A node's signing key.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.id().short())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    public_key: String,
    secret_key: String,
}

impl Keypair {
    pub fn generate() -> Self {
        Keypair {
            signing: SigningKey::generate(&mut OsRng),
        }
    }

    /// A key derived from a 32-byte seed (deterministic genesis with `--seed`).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Keypair {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    pub fn id(&self) -> NodeId {
        NodeId(self.signing.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let text = std::fs::read_to_string(path).map_err(|source| IdentityError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|source| IdentityError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let secret = decode_fixed::<32>("secret key", &file.secret_key)?;
        let keypair = Keypair::from_seed(secret);
        if keypair.id() != NodeId::from_hex(&file.public_key)? {
            return Err(IdentityError::Mismatch {
                path: path.to_owned(),
            });
        }
        Ok(keypair)
    }

    /// Writes the key file readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), IdentityError> {
        let file = KeyFile {
            public_key: self.id().to_hex(),
            secret_key: hex::encode(self.signing.to_bytes()),
        };
        let mut text = serde_json::to_string_pretty(&file).expect("key file serializes");
        text.push('\n');
        let write_err = |source| IdentityError::Write {
            path: path.to_owned(),
            source,
        };
        std::fs::write(path, text).map_err(write_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(write_err)?;
        }
        Ok(())
    }
}

fn decode_fixed<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], IdentityError> {
    let bad = || IdentityError::BadHex {
        what,
        len: N,
        value: s.chars().take(80).collect(),
    };
    let bytes = hex::decode(s.trim()).map_err(|_| bad())?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_and_detects_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n0.key");
        let key = Keypair::generate();
        key.save(&path).unwrap();
        assert_eq!(Keypair::load(&path).unwrap().id(), key.id());

        let other = Keypair::generate();
        let tampered = format!(
            "{{\"public_key\":\"{}\",\"secret_key\":\"{}\"}}",
            other.id().to_hex(),
            hex::encode(key.signing.to_bytes())
        );
        std::fs::write(&path, tampered).unwrap();
        assert!(matches!(
            Keypair::load(&path),
            Err(IdentityError::Mismatch { .. })
        ));
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(
            Keypair::load(&path),
            Err(IdentityError::Parse { .. })
        ));
    }

    #[test]
    fn signatures_verify_only_for_the_signer_and_message() {
        let key = Keypair::generate();
        let sig = key.sign(b"hello");
        assert!(key.id().verify(b"hello", &sig));
        assert!(!key.id().verify(b"hellO", &sig));
        assert!(!Keypair::generate().id().verify(b"hello", &sig));
        assert!(!key.id().verify(b"hello", &sig[..63]));
    }

    #[test]
    fn node_id_serializes_as_hex_in_json() {
        let id = Keypair::from_seed([7; 32]).id();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.to_hex()));
        assert_eq!(serde_json::from_str::<NodeId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<NodeId>("\"abcd\"").is_err());
    }
}
