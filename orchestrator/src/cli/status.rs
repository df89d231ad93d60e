//! `testnet status`: every node's container, IP, URL, peers.

use std::process::ExitCode;

use super::{print_json, testnet, Ctx, Fail};
use crate::testnet::HttpProbe;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  testnet status\n  testnet --name demo status --json | jq '.[].http_url'"
)]
pub struct Args {
    /// JSON and nothing else on stdout.
    #[arg(long)]
    json: bool,
}

pub async fn exec(ctx: &Ctx, a: Args) -> Result<ExitCode, Fail> {
    let name = ctx.name();
    let engine = super::engine_of(&name).await?;
    let probe = HttpProbe::default();
    let summary = testnet(&name, &engine, &probe).status().await?;
    if summary.is_empty() {
        return Err(Fail(format!(
            "no testnet named {name:?} is running (`testnet up --name {name}`)"
        )));
    }
    if a.json {
        print_json(&summary);
    } else {
        super::up::print_table(&summary);
        super::up::print_monitor(&engine, &name, None).await;
    }
    Ok(ExitCode::SUCCESS)
}
