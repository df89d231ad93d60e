//! `testnet completions bash|zsh|fish|...`: a shell completion script (clap_complete).

use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, Ctx, Fail};

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    testnet completions bash > ~/.local/share/bash-completion/completions/testnet\n  \
    testnet completions zsh > \"${fpath[1]}/_testnet\"\n  \
    testnet completions fish > ~/.config/fish/completions/testnet.fish")]
pub struct Args {
    /// The shell to write the script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub async fn exec(_: &Ctx, args: Args) -> Result<ExitCode, Fail> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "testnet", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
