//! `testnet schema testnet|scenario`: the JSON Schema of a file kind, for
//! editors (`# yaml-language-server: $schema=...`) and validators.

use std::process::ExitCode;

use super::{Ctx, Fail};
use crate::schema::{render, Kind};

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    testnet schema scenario > scenario.schema.json\n  \
    # then, first line of a scenario file:\n  \
    # yaml-language-server: $schema=scenario.schema.json")]
pub struct Args {
    /// Which file kind.
    #[arg(value_enum)]
    pub kind: Kind,
}

pub async fn exec(_: &Ctx, args: Args) -> Result<ExitCode, Fail> {
    print!("{}", render(args.kind));
    Ok(ExitCode::SUCCESS)
}
