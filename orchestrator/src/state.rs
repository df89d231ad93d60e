//! A testnet's state directory on the host: `plan.json`, the desired faults
//! (`faults.json`), `genesis.json`, the node keys and the faucet key, and its
//! owner ([`owner`]). Under `$TESTNET_STATE_DIR/NAME`, else
//! `~/.local/state/testnet/NAME`.

pub mod owner;

use std::path::{Path, PathBuf};

pub use owner::{Lock, LockError, Owner};

use crate::fault::Desired;
use crate::plan::Plan;

#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct StateError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Where one testnet's files are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state dir of testnet `name`.
    pub fn of(name: &str) -> StateDir {
        StateDir::at(&Self::base(), name)
    }

    /// Where every testnet's state dir is.
    pub fn base() -> PathBuf {
        std::env::var_os("TESTNET_STATE_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/testnet"))
            })
            .unwrap_or_else(|| std::env::temp_dir().join("testnet-state"))
    }

    /// The state dir of testnet `name` under `base`.
    pub fn at(base: &Path, name: &str) -> StateDir {
        StateDir {
            root: base.join(name),
        }
    }

    /// Every testnet with a state dir under `base`, by name.
    pub fn all(base: &Path) -> Vec<StateDir> {
        let mut dirs: Vec<StateDir> = std::fs::read_dir(base)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| StateDir { root: e.path() })
            .collect();
        dirs.sort_by(|a, b| a.root.cmp(&b.root));
        dirs
    }

    /// The testnet's name (the directory's).
    pub fn name(&self) -> String {
        self.root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn genesis(&self) -> PathBuf {
        self.root.join("genesis.json")
    }

    pub fn faucet_key(&self) -> PathBuf {
        self.root.join("faucet.key")
    }

    pub fn node_key(&self, node: &str) -> PathBuf {
        self.root.join(format!("{node}.key"))
    }

    fn plan_path(&self) -> PathBuf {
        self.root.join("plan.json")
    }

    fn faults_path(&self) -> PathBuf {
        self.root.join("faults.json")
    }

    /// The plan `up` saved, if this host brought the testnet up.
    pub fn plan(&self) -> Option<Plan> {
        let text = std::fs::read_to_string(self.plan_path()).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn save_plan(&self, plan: &Plan) -> Result<(), StateError> {
        self.write(
            &self.plan_path(),
            &serde_json::to_vec_pretty(plan).expect("plan serializes"),
        )
    }

    /// The desired network faults (none when never recorded).
    pub fn desired(&self) -> Desired {
        std::fs::read(self.faults_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save_desired(&self, desired: &Desired) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(desired).expect("faults serialize");
        self.write(&self.faults_path(), &bytes)
    }

    /// Forgets the desired faults (a fresh `up` starts healed).
    pub fn forget_faults(&self) {
        let _ = std::fs::remove_file(self.faults_path());
    }

    /// Removes the whole directory (after `down`).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }

    /// Writes through a temporary file and a rename: a reader never sees half.
    fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), StateError> {
        let tmp = path.with_extension("tmp");
        std::fs::create_dir_all(&self.root)
            .and_then(|()| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| StateError {
                path: path.to_owned(),
                source,
            })
    }
}
