//! `testnet export compose`: a docker-compose file equivalent to the testnet.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{Ctx, Fail};

#[derive(clap::Subcommand)]
pub enum Args {
    /// A docker-compose file of the testnet's containers, agents included (its
    /// state beside it, for `testnet` to drive it).
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
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let state = dir.join(crate::compose::STATE_DIR);
    println!(
        "wrote {} (and {}: plan, genesis, keys)\nrun it with `docker compose -f {} up -d` (or docker-compose), then drive it with\n  TESTNET_STATE_DIR={} testnet --name {name} status|chaos|check|load|down",
        out.display(),
        state.display(),
        out.display(),
        state.display()
    );
    Ok(ExitCode::SUCCESS)
}
