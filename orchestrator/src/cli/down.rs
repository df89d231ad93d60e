//! `testnet down`: remove everything of a testnet (or of all), by label.

use std::process::ExitCode;

use super::{docker, Ctx, Fail};
use crate::lifecycle;

#[derive(clap::Args)]
pub struct Args {
    /// Every testnet on this engine.
    #[arg(long)]
    all: bool,
}

pub async fn exec(ctx: &Ctx, a: Args) -> Result<ExitCode, Fail> {
    let engine = docker().await?;
    let name = ctx.name();
    let removed = lifecycle::down(&engine, (!a.all).then_some(name.as_str())).await?;
    println!(
        "removed {} containers, {} networks, {} volumes{}",
        removed.containers.len(),
        removed.networks.len(),
        removed.volumes.len(),
        if a.all {
            " (all testnets)".to_owned()
        } else {
            format!(" of testnet {name:?}")
        }
    );
    Ok(ExitCode::SUCCESS)
}
