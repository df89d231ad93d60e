//! `testnet image build`, and the image step of `up` and `run`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{Ctx, Fail};
use crate::engine::hosts::Hosts;

#[derive(clap::Subcommand)]
pub enum Args {
    /// Build (or find cached) the base and node images.
    Build {
        /// Build around this statically linked testnet-node instead of compiling one.
        #[arg(long, env = "TESTNET_NODE_BINARY")]
        node_binary: Option<PathBuf>,
        /// Bake this P2P protocol version into the image (an upgrade to test).
        #[arg(long)]
        protocol_version: Option<u32>,
        /// With --protocol-version: the oldest version its nodes accept from
        /// a peer (default: the same, refusing every older node).
        #[arg(long, requires = "protocol_version")]
        min_peer_version: Option<u32>,
    },
}

pub async fn exec(ctx: &Ctx, a: Args) -> Result<ExitCode, Fail> {
    let Args::Build {
        node_binary,
        protocol_version,
        min_peer_version,
    } = a;
    let engine = super::engine_on(&[]).await?;
    let mut tag = build(ctx, &engine, node_binary).await?;
    if let Some(version) = protocol_version {
        let protocol = crate::image::Protocol {
            version,
            min_peer: min_peer_version.unwrap_or(version),
        };
        let progress = |l: &str| ctx.progress(l);
        tag = crate::image::ensure_protocol_image(&engine, &tag, protocol, &progress).await?;
    }
    println!("{tag}");
    Ok(ExitCode::SUCCESS)
}

/// The node image's tag: built from `node_binary`, or from a static build of
/// this checkout's node.
pub async fn build(
    ctx: &Ctx,
    engine: &Hosts,
    node_binary: Option<PathBuf>,
) -> Result<String, Fail> {
    let progress = |l: &str| ctx.progress(l);
    let binary = match node_binary {
        Some(b) => b,
        None => crate::image::build_static_node(&progress).await?,
    };
    Ok(crate::image::ensure_node_image(engine, &binary, &progress)
        .await?
        .tag)
}
