//! The node for the image out of the orchestrator's own release build: its
//! `testnet-image-node` binary (the node's command line) relinked statically
//! with `cargo rustc`, which passes `-C target-feature=+crt-static` to that
//! binary alone and reuses every dependency the build compiled. A cold start
//! (`cargo run --release -p testnet -- up`) then compiles the node once.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::ImageError;

/// The statically relinked node beside this `testnet`, if it is a release
/// build of a cargo target dir and that dir is free; `None` to build the
/// node separately (a debug build, an installed binary, a target dir held
/// by a running `cargo test` or `cargo bench`).
pub(super) async fn from_own_build(
    root: &Path,
    progress: &impl Fn(&str),
) -> Result<Option<PathBuf>, ImageError> {
    if cfg!(debug_assertions) {
        return Ok(None);
    }
    let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    else {
        return Ok(None);
    };
    let (Some(target_dir), true) = (dir.parent(), dir.ends_with("release")) else {
        return Ok(None);
    };
    if !target_dir.join("CACHEDIR.TAG").exists() {
        return Ok(None);
    }
    if held(&dir.join(".cargo-lock")) {
        // A `cargo test` or `cargo bench` holds the target dir while it runs us.
        progress("this build's target dir is busy (a cargo command holds it); building the node in its own");
        return Ok(None);
    }
    let start = Instant::now();
    progress("linking testnet-node statically from this build's artefacts (release)...");
    let mut child =
        tokio::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args([
                "rustc",
                "--release",
                "-p",
                "testnet",
                "--bin",
                "testnet-image-node",
            ])
            .arg("--target-dir")
            .arg(target_dir)
            .args([
                "--",
                "-C",
                "target-feature=+crt-static",
                "-C",
                "strip=debuginfo",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(ImageError::NoCargo)?;
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let mut said = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("Blocking waiting for file lock") {
            // A `cargo test` or `cargo bench` holds the target dir while it runs us.
            let _ = child.kill().await;
            progress("this build's target dir is busy; building the node in its own");
            return Ok(None);
        }
        said.push(line);
    }
    let status = child.wait().await.map_err(ImageError::NoCargo)?;
    if !status.success() {
        let tail = said.len().saturating_sub(30);
        return Err(ImageError::Cargo(said[tail..].join("\n")));
    }
    let binary = dir.join("testnet-image-node");
    if !is_static(&binary) {
        return Err(ImageError::Cargo(format!(
            "{} is not statically linked (it has a program interpreter); pass a static node with --node-binary",
            binary.display()
        )));
    }
    progress(&format!(
        "testnet-node ready ({:.1}s, from this build)",
        start.elapsed().as_secs_f64()
    ));
    Ok(Some(binary))
}

/// Whether another process holds cargo's lock on a profile's build dir (an
/// advisory `flock`, taken and released at once if free).
fn held(lock: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(lock) else {
        return false;
    };
    // SAFETY: flock(2) on a descriptor this function owns.
    let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if taken {
        // SAFETY: as above; closing the file would release it too.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
    }
    !taken
}

/// Whether an ELF64 file has no program interpreter (`PT_INTERP`): linked
/// statically, it runs in any image.
fn is_static(path: &Path) -> bool {
    let Ok(elf) = std::fs::read(path) else {
        return false;
    };
    let word = |at: usize, n: usize| -> Option<u64> {
        let b = elf.get(at..at + n)?;
        Some(b.iter().rev().fold(0u64, |v, x| (v << 8) | u64::from(*x)))
    };
    if elf.get(..5) != Some(b"\x7fELF\x02".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(size), Some(count)) = (word(0x20, 8), word(0x36, 2), word(0x38, 2))
    else {
        return false;
    };
    (0..count).all(|i| word((phoff + i * size) as usize, 4).is_some_and(|t| t != 3))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_lock_another_holder_has_is_seen_and_a_free_one_is_left_free() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".cargo-lock");
        let holder = std::fs::File::create(&path).unwrap();
        assert!(!super::held(&path));
        // SAFETY: flock(2) on a file this test owns (a second open file
        // description conflicts with it like another process would).
        assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) }, 0);
        assert!(super::held(&path));
        drop(holder);
        assert!(!super::held(&path));
        assert!(!super::held(&dir.path().join("missing")));
    }

    #[test]
    fn a_dynamic_executable_is_told_from_a_static_one() {
        // This test binary is linked dynamically (a debug build without crt-static).
        let me = std::env::current_exe().unwrap();
        assert!(!super::is_static(&me));
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("text");
        std::fs::write(&text, "not an ELF file").unwrap();
        assert!(!super::is_static(&text));
        assert!(!super::is_static(&dir.path().join("missing")));
    }
}
