//! `testnet image build`, and the image step of `up` and `run`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{docker, Ctx, Fail};
use crate::engine::docker::DockerEngine;

#[derive(clap::Subcommand)]
pub enum Args {
    /// Build (or find cached) the base and node images.
    Build {
        #[arg(long, env = "TESTNET_NODE_BINARY")]
        node_binary: Option<PathBuf>,
    },
}

pub async fn exec(ctx: &Ctx, a: Args) -> Result<ExitCode, Fail> {
    let Args::Build { node_binary } = a;
    let engine = docker().await?;
    println!("{}", build(ctx, &engine, node_binary).await?);
    Ok(ExitCode::SUCCESS)
}

/// The node image's tag: built from `node_binary`, or from a static build of
/// this checkout's node.
pub async fn build(
    ctx: &Ctx,
    engine: &DockerEngine,
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
