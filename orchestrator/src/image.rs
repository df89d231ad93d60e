//! The node image: a static `testnet-node` built on the host, on a Debian base
//! that is pulled where a registry answers and assembled offline with
//! `mmdebstrap` + `docker import` where none does. Every step is cached by a tag
//! derived from its inputs, so a second run rebuilds nothing that did not change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::engine::{Engine, EngineError, LABEL_ROLE};

mod foreign;
mod relink;
pub use foreign::{ensure_foreign, package_tag};

const BASE_DOCKERFILE: &str = include_str!("../../docker/base.Dockerfile");
const NODE_DOCKERFILE: &str = include_str!("../../docker/node.Dockerfile");
/// The base image the online path starts from.
pub const ONLINE_BASE: &str = "debian:bookworm-slim";
const MMDEBSTRAP_ARGS: &[&str] = &[
    // Our packages and what they depend on, unpacked, no maintainer script run
    // (the node image installs nothing and runs only the node, iptables and
    // tc), with a shell and coreutils for whoever `docker exec`s into a node:
    // 64 MB in 3-5 s, against 157 MB in 10-12 s for Debian's essential set.
    "--variant=extract",
    "--include=iproute2,iptables,libfaketime,dash,coreutils",
    // What iptables' maintainer script would have set up (the nf_tables
    // back end, as Debian's default alternatives), then what the online
    // base's last RUN does. An extract hook: this variant runs no customize
    // hook.
    "--extract-hook=ln -sf iptables-nft \"$1/usr/sbin/iptables\" \
     && ln -sf iptables-nft-restore \"$1/usr/sbin/iptables-restore\" \
     && ln -sf iptables-nft-save \"$1/usr/sbin/iptables-save\" \
     && mkdir -p \"$1/etc/testnet\" \"$1/var/lib/testnet\" \"$1/usr/local/lib/testnet\" \
     && cp \"$1\"/usr/lib/*/faketime/libfaketime.so.1 \"$1/usr/local/lib/testnet/libfaketime.so.1\"",
    "bookworm",
];
/// The node's config, set on the base (the online base's Dockerfile says the
/// same): a node image is then the base plus one `COPY`. Each config
/// instruction of a `docker build` runs and commits a container of its own,
/// which costs seconds with some storage drivers (2.5 s each with
/// fuse-overlayfs), on every new node binary.
const NODE_CONFIG: &[&str] = &[
    "EXPOSE 7000 8000",
    r#"ENTRYPOINT ["/usr/local/bin/testnet-node"]"#,
];
pub(crate) const PULL_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("building testnet-node failed (`cargo build --release -p testnet-node`):\n{0}")]
    Cargo(String),
    #[error("cannot run cargo to build testnet-node: {0}; pass --node-binary PATH (a statically linked testnet-node) instead")]
    NoCargo(std::io::Error),
    #[error("the node's source tree is not at {0}; run from a checkout of testnet, or pass --node-binary PATH")]
    NoSource(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no registry answered for {ONLINE_BASE} ({pull}) and mmdebstrap is not installed: install it (`sudo apt-get install mmdebstrap`) to build the base offline, or make the registry reachable")]
    NoMmdebstrap { pull: String },
    #[error("mmdebstrap failed (exit {code:?}):\n{stderr}")]
    Mmdebstrap { code: Option<i32>, stderr: String },
    #[error("node image {reference:?} is not here and cannot be pulled ({why}); load it (`docker save {reference}` where it exists, `docker load` here), or give `node.packages` to assemble one from Debian packages")]
    Foreign { reference: String, why: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// How the base image was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseSource {
    Cached,
    Pulled,
    Mmdebstrap,
}

#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub tag: String,
    pub base: String,
    pub base_source: BaseSource,
    pub node_cached: bool,
}

pub(crate) fn short_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(&h.finalize()[..6])
}

/// The source tree this orchestrator was built from.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A statically linked (release) `testnet-node`: relinked from this
/// orchestrator's own release build where it can be (one build on a cold
/// start), else built in its own target directory, so it never waits on the
/// lock of a `cargo test` that is running this code.
pub async fn build_static_node(progress: &impl Fn(&str)) -> Result<PathBuf, ImageError> {
    let root = workspace_root();
    if !root.join("node/Cargo.toml").exists() {
        return Err(ImageError::NoSource(root));
    }
    if let Some(binary) = relink::from_own_build(&root, progress).await? {
        return Ok(binary);
    }
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let target_dir = root.join("target/node-image");
    let start = Instant::now();
    progress(&format!(
        "building testnet-node (release, static, {triple})..."
    ));
    let out =
        tokio::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "-p",
                "testnet-node",
                "--bin",
                "testnet-node",
                "--target",
                &triple,
            ])
            .arg("--target-dir")
            .arg(&target_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            // The image wants a small binary; backtraces keep function names anyway.
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
            .output()
            .await
            .map_err(ImageError::NoCargo)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        return Err(ImageError::Cargo(
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        ));
    }
    progress(&format!(
        "testnet-node ready ({:.1}s)",
        start.elapsed().as_secs_f64()
    ));
    Ok(target_dir.join(&triple).join("release/testnet-node"))
}

/// An in-memory tar of `(name, contents, mode)` entries (build contexts, uploads).
pub(crate) fn tar_of(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        header.set_cksum();
        b.append_data(&mut header, name, *data)
            .expect("in-memory tar");
    }
    b.into_inner().expect("in-memory tar")
}

/// Makes sure the base image exists: cached, pulled and built, or assembled offline.
pub async fn ensure_base<E: Engine>(
    engine: &E,
    progress: &impl Fn(&str),
) -> Result<(String, BaseSource), ImageError> {
    let tag = format!(
        "testnet-base:bookworm-{}",
        short_hash(&[
            BASE_DOCKERFILE.as_bytes(),
            MMDEBSTRAP_ARGS.join(" ").as_bytes(),
            NODE_CONFIG.join("\n").as_bytes(),
        ])
    );
    if engine.image_exists(&tag).await? {
        progress(&format!("base image {tag}: cached"));
        return Ok((tag, BaseSource::Cached));
    }
    let labels = BTreeMap::from([(LABEL_ROLE.to_owned(), "base-image".to_owned())]);
    progress(&format!("base image {tag}: pulling {ONLINE_BASE}..."));
    let pulled = tokio::time::timeout(PULL_TIMEOUT, engine.pull_image(ONLINE_BASE)).await;
    match pulled {
        Ok(Ok(())) => {
            let context = tar_of(&[("Dockerfile", BASE_DOCKERFILE.as_bytes(), 0o644)]);
            engine.build_image(&tag, context, labels).await?;
            progress(&format!(
                "base image {tag}: built from {ONLINE_BASE} (online path)"
            ));
            Ok((tag, BaseSource::Pulled))
        }
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer within {PULL_TIMEOUT:?}"),
            };
            progress(&format!("base image {tag}: no registry ({why}); assembling it offline with mmdebstrap (5-10 s, once)..."));
            build_base_offline(engine, &tag, why).await?;
            progress(&format!("base image {tag}: imported (offline path)"));
            Ok((tag, BaseSource::Mmdebstrap))
        }
    }
}

async fn build_base_offline<E: Engine>(
    engine: &E,
    tag: &str,
    pull: String,
) -> Result<(), ImageError> {
    debootstrap_import(engine, tag, MMDEBSTRAP_ARGS, NODE_CONFIG, pull).await
}

/// The tmpfs mmdebstrap prefers to build in.
const SHM: &str = "/dev/shm";
/// Room mmdebstrap needs in its scratch dir: the chroot, the packages and the
/// tarball (about 450 MiB for the node's base when it was Debian's essential
/// set; the extract variant needs less, the foreign and monitor bases, which
/// install their packages, more).
const SCRATCH_NEED: u64 = 1 << 30;

/// Where mmdebstrap builds: the user's `TMPDIR` if one is set, else `/dev/shm`
/// when it is a tmpfs with room that runs programs (the maintainer scripts of
/// the bases that install packages; dpkg's many small files, and the chroot's removal, took twice as
/// long on this machine's disk: 23-24 s against 11-12 s for the node's
/// base), else the system's temp dir.
fn scratch_dir(tmpdir_set: bool, shm: Option<testnet_node::fsstat::FsStat>) -> PathBuf {
    match shm {
        Some(fs) if !tmpdir_set && fs.is_tmpfs() && !fs.noexec && fs.free >= SCRATCH_NEED => {
            PathBuf::from(SHM)
        }
        _ => std::env::temp_dir(),
    }
}

/// Removes the scratch dirs of runs that were killed mid-way (their process
/// is gone): in a tmpfs they would hold memory until a reboot.
fn sweep_scratch(scratch: &Path) {
    let Ok(entries) = std::fs::read_dir(scratch) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix(SCRATCH_PREFIX));
        if pid.is_some_and(|p| p.parse::<u32>().is_ok() && !Path::new("/proc").join(p).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

const SCRATCH_PREFIX: &str = "testnet-base-";

/// Assembles a Debian root filesystem with `mmdebstrap ARGS` and imports it as
/// `tag` with the config `changes` (no registry needed: packages come from
/// the host's apt sources).
pub(crate) async fn debootstrap_import<E: Engine>(
    engine: &E,
    tag: &str,
    args: &[&str],
    changes: &[&str],
    pull: String,
) -> Result<(), ImageError> {
    let found = tokio::process::Command::new("mmdebstrap")
        .arg("--version")
        .output()
        .await;
    if !found.is_ok_and(|o| o.status.success()) {
        return Err(ImageError::NoMmdebstrap { pull });
    }
    let scratch = scratch_dir(
        std::env::var_os("TMPDIR").is_some(),
        testnet_node::fsstat::statfs(Path::new(SHM)).ok(),
    );
    sweep_scratch(&scratch);
    let dir = scratch.join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| ImageError::Read {
        path: dir.clone(),
        source,
    })?;
    let rootfs = dir.join("rootfs.tar");
    let out = tokio::process::Command::new("mmdebstrap")
        .args(args)
        .arg(&rootfs)
        // Its chroot dir goes beside the tarball.
        .env("TMPDIR", &scratch)
        .output()
        .await
        .map_err(|source| ImageError::Read {
            path: rootfs.clone(),
            source,
        })?;
    let result = if out.status.success() {
        engine
            .import_image(tag, &rootfs, changes)
            .await
            .map_err(ImageError::from)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        Err(ImageError::Mmdebstrap {
            code: out.status.code(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        })
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Makes sure the node image for `binary` exists; returns its tag.
pub async fn ensure_node_image<E: Engine>(
    engine: &E,
    binary: &Path,
    progress: &impl Fn(&str),
) -> Result<BuiltImage, ImageError> {
    let (base, base_source) = ensure_base(engine, progress).await?;
    let bin = tokio::fs::read(binary)
        .await
        .map_err(|source| ImageError::Read {
            path: binary.to_owned(),
            source,
        })?;
    let dockerfile = NODE_DOCKERFILE.replace("FROM BASE", &format!("FROM {base}"));
    let tag = format!(
        "testnet-node:{}",
        short_hash(&[&bin, dockerfile.as_bytes()])
    );
    if engine.image_exists(&tag).await? {
        progress(&format!("node image {tag}: cached"));
        return Ok(BuiltImage {
            tag,
            base,
            base_source,
            node_cached: true,
        });
    }
    derive(
        engine,
        &tag,
        &dockerfile,
        &[("testnet-node", &bin, 0o755)],
        "node-image",
    )
    .await?;
    progress(&format!(
        "node image {tag}: built ({} MiB binary)",
        bin.len() / (1024 * 1024)
    ));
    Ok(BuiltImage {
        tag,
        base,
        base_source,
        node_cached: false,
    })
}

/// Config-only Dockerfile instructions (`docker commit --change`).
const CONFIG_INSTRUCTIONS: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Makes `tag` from `recipe`, a Dockerfile of one `FROM`, `COPY`s of `files`
/// (by name, each to a file's full path) and config instructions, labelled
/// with `role`, in one commit (`Engine::derive_image`), not a `docker build`'s
/// commit per instruction (the label was one more: the labelled build took
/// 3.6-4.1 s on fuse-overlayfs, this 1.9-2.3 s).
async fn derive<E: Engine>(
    engine: &E,
    tag: &str,
    recipe: &str,
    files: &[(&str, &[u8], u32)],
    role: &str,
) -> Result<(), ImageError> {
    let bad = |why: String| ImageError::Engine(EngineError::Build(tag.to_owned(), why));
    let (mut from, mut uploads, mut changes) = (None, Vec::new(), Vec::new());
    for line in recipe.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word.to_ascii_uppercase().as_str() {
            "FROM" if from.is_none() => from = Some(rest.trim()),
            "COPY" => {
                let (src, dest) = rest.trim().split_once(' ').unwrap_or((rest, ""));
                let path = dest.trim().trim_start_matches('/');
                let file = files.iter().find(|f| f.0 == src);
                let (Some((_, data, mode)), false) = (file, path.is_empty() || path.ends_with('/'))
                else {
                    return Err(bad(format!(
                        "`{line}`: no such file, or not to a file's path"
                    )));
                };
                // Extracted at the root with its whole path: its directories
                // are made as `docker build`'s COPY makes them.
                uploads.push(("/".to_owned(), tar_of(&[(path, data, *mode)])));
            }
            w if CONFIG_INSTRUCTIONS.contains(&w) => changes.push(line.to_owned()),
            _ => {
                return Err(bad(format!(
                    "`{line}` is not a config instruction or a COPY"
                )))
            }
        }
    }
    let from = from.ok_or_else(|| bad("no FROM".into()))?;
    changes.push(format!("LABEL {LABEL_ROLE}={role}"));
    engine.derive_image(tag, from, uploads, &changes).await?;
    Ok(())
}

/// A P2P protocol version to bake into a node image, and the oldest one its
/// nodes accept from a peer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Protocol {
    pub version: u32,
    pub min_peer: u32,
}

/// Makes sure the image `from` (ours) with `protocol` baked into its
/// environment exists; returns its tag. Nothing is pulled or compiled.
pub async fn ensure_protocol_image<E: Engine>(
    engine: &E,
    from: &str,
    protocol: Protocol,
    progress: &impl Fn(&str),
) -> Result<String, ImageError> {
    let dockerfile = format!(
        "FROM {from}\nENV TESTNET_PROTOCOL_VERSION={} TESTNET_MIN_PEER_VERSION={}\n",
        protocol.version, protocol.min_peer
    );
    let tag = format!("testnet-node:{}", short_hash(&[dockerfile.as_bytes()]));
    if engine.image_exists(&tag).await? {
        return Ok(tag);
    }
    derive(engine, &tag, &dockerfile, &[], "node-image").await?;
    progress(&format!(
        "node image {tag}: {from} speaking protocol {} (accepting {} or later)",
        protocol.version, protocol.min_peer
    ));
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;

    #[tokio::test]
    async fn offline_path_is_taken_when_pull_fails_and_cached_after() {
        let engine = FakeEngine::new();
        engine.state().pull_fails = true;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("testnet-node");
        std::fs::write(&bin, b"\x7fELF fake").unwrap();
        let has_mmdebstrap = std::process::Command::new("mmdebstrap")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        let first = ensure_node_image(&engine, &bin, &|_| {}).await;
        if !has_mmdebstrap {
            assert!(
                matches!(first, Err(ImageError::NoMmdebstrap { .. })),
                "{first:?}"
            );
            return;
        }
        // With mmdebstrap present the fake imports the rootfs it produced.
        let first = first.unwrap();
        assert_eq!(first.base_source, BaseSource::Mmdebstrap);
        let second = ensure_node_image(&engine, &bin, &|_| {}).await.unwrap();
        assert_eq!(second.base_source, BaseSource::Cached);
        assert!(second.node_cached);
        assert_eq!(first.tag, second.tag);
    }

    #[test]
    fn mmdebstrap_builds_in_a_tmpfs_with_room_unless_tmpdir_says_otherwise() {
        use testnet_node::fsstat::{FsStat, TMPFS_MAGIC};
        let shm = |kind, free| {
            Some(FsStat {
                kind,
                free,
                total: free,
                noexec: false,
            })
        };
        let roomy = shm(TMPFS_MAGIC, 8 << 30);
        assert_eq!(scratch_dir(false, roomy), PathBuf::from(SHM));
        assert_eq!(
            scratch_dir(true, roomy),
            std::env::temp_dir(),
            "TMPDIR wins"
        );
        // A container's default 64 MiB /dev/shm, a disk, no /dev/shm at all.
        for other in [shm(TMPFS_MAGIC, 64 << 20), shm(0xEF53, 8 << 30), None] {
            assert_eq!(scratch_dir(false, other), std::env::temp_dir());
        }
        // Mounted noexec (hardened hosts): the chroot's scripts could not run.
        let noexec = roomy.map(|fs| FsStat { noexec: true, ..fs });
        assert_eq!(scratch_dir(false, noexec), std::env::temp_dir());
    }

    #[test]
    fn a_killed_runs_scratch_dir_is_swept_a_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(format!("{SCRATCH_PREFIX}{}", u32::MAX - 1));
        let live = dir
            .path()
            .join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
        let other = dir.path().join("testnet-base-notes");
        for d in [&dead, &live, &other] {
            std::fs::create_dir_all(d.join("rootfs")).unwrap();
        }
        sweep_scratch(dir.path());
        assert!(!dead.exists());
        assert!(live.exists() && other.exists());
    }

    #[tokio::test]
    async fn node_and_protocol_images_are_one_commit_each_with_their_label() {
        let engine = FakeEngine::new();
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("testnet-node");
        std::fs::write(&bin, b"node").unwrap();
        let node = ensure_node_image(&engine, &bin, &|_| {}).await.unwrap();
        let protocol = Protocol {
            version: 2,
            min_peer: 1,
        };
        let newer = ensure_protocol_image(&engine, &node.tag, protocol, &|_| {})
            .await
            .unwrap();
        let calls = engine.state().calls.clone();
        let at = |c: &str| {
            calls
                .iter()
                .position(|x| x == c)
                .unwrap_or_else(|| panic!("{c} not in {calls:#?}"))
        };
        let n = at(&format!("derive {} from {}", node.tag, node.base));
        assert!(calls[n + 1].starts_with("upload ") && calls[n + 1].ends_with(" to /"));
        assert_eq!(calls[n + 2], "change LABEL io.testnet.role=node-image");
        let p = at(&format!("derive {newer} from {}", node.tag));
        assert_eq!(
            calls[p + 1],
            "change ENV TESTNET_PROTOCOL_VERSION=2 TESTNET_MIN_PEER_VERSION=1"
        );
        assert_eq!(calls[p + 2], "change LABEL io.testnet.role=node-image");
        assert!(!calls
            .iter()
            .any(|c| c.starts_with(&format!("build {}", node.tag))));
    }

    #[tokio::test]
    async fn a_recipe_that_needs_a_build_is_refused_not_committed() {
        let engine = FakeEngine::new();
        engine.state().images.insert("base".into());
        for (recipe, says) in [
            (
                "FROM base\nRUN true\n",
                "`RUN true` is not a config instruction",
            ),
            ("FROM base\nCOPY other /usr/bin/x\n", "no such file"),
            ("FROM base\nCOPY f /usr/bin/\n", "not to a file's path"),
            ("ENV A=1\n", "no FROM"),
            (
                "FROM base\nFROM other\n",
                "`FROM other` is not a config instruction",
            ),
        ] {
            let e = derive(&engine, "t:1", recipe, &[("f", b"x", 0o644)], "r")
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{recipe:?}: {e}");
        }
        assert!(!engine.state().images.contains("t:1"));
    }

    #[tokio::test]
    async fn online_path_builds_from_the_pulled_base_and_binary_changes_retag() {
        let engine = FakeEngine::new();
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("testnet-node");
        std::fs::write(&bin, b"v1").unwrap();
        let a = ensure_node_image(&engine, &bin, &|_| {}).await.unwrap();
        assert_eq!(a.base_source, BaseSource::Pulled);
        assert!(engine
            .state()
            .calls
            .iter()
            .any(|c| c == &format!("pull {ONLINE_BASE}")));
        std::fs::write(&bin, b"v2").unwrap();
        let b = ensure_node_image(&engine, &bin, &|_| {}).await.unwrap();
        assert_ne!(a.tag, b.tag, "a new binary is a new image");
        assert_eq!(b.base_source, BaseSource::Cached);
        assert!(!b.node_cached);
    }
}
