//! The `testnet-node` binary for native tests of the orchestrator.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `testnet-node` binary, built by cargo on first use (it is another package's
/// binary, so `CARGO_BIN_EXE_*` does not name it). Cargo says where it put it, so
/// `CARGO_TARGET_DIR` and the workspace's target dir are both honoured.
pub fn node_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "-p", "testnet-node", "--bin", "testnet-node"])
            .arg("--message-format=json-render-diagnostics")
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        let out = cargo.output().expect("run cargo build for testnet-node");
        assert!(
            out.status.success(),
            "cargo build -p testnet-node failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "testnet-node")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no testnet-node executable")
    })
}
