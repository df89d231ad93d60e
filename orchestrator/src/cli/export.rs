//! `testnet export compose`: a docker-compose file equivalent to the testnet.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{Ctx, Fail};

#[derive(clap::Subcommand)]
pub enum Args {
    /// A docker-compose file equivalent to the testnet (genesis and keys beside it).
    Compose {
        /// Where to write it (default docker-compose.<name>.yml).
        file: Option<PathBuf>,
    },
}

pub async fn exec(ctx: &Ctx, a: Args) -> Result<ExitCode, Fail> {
    let Args::Compose { file } = a;
    let name = ctx.name();
    let out = file.unwrap_or_else(|| PathBuf::from(format!("docker-compose.{name}.yml")));
    crate::compose::export(&name, &out)?;
    println!(
        "wrote {} (with genesis.json and node keys beside it); run it with `docker-compose -f {} up`",
        out.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
