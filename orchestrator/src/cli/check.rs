//! `testnet check`: the invariants that need no workload, on a running testnet.

use std::process::ExitCode;

use super::{print_json, testnet, Ctx, Fail};
use crate::testnet::HttpProbe;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  testnet check\n  testnet check --json   # the verdicts, JSON only on stdout\n\nExit codes: 0 every invariant holds, 1 one is violated, 2 an error."
)]
pub struct Args {
    /// JSON and nothing else on stdout.
    #[arg(long)]
    json: bool,
}

pub async fn exec(ctx: &Ctx, a: Args) -> Result<ExitCode, Fail> {
    let engine = super::engine_of(&ctx.name()).await?;
    let probe = HttpProbe::default();
    let verdicts = crate::run::check(&testnet(&ctx.name(), &engine, &probe)).await?;
    if a.json {
        print_json(&verdicts);
    } else {
        for v in &verdicts {
            println!(
                "{} {:<20} {}",
                if v.passed { "PASS" } else { "FAIL" },
                v.invariant,
                v.summary
            );
            for d in v.details.iter().skip(1) {
                println!("     {d}");
            }
        }
    }
    Ok(match verdicts.iter().all(|v| v.passed) {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}
