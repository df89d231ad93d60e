//! `testnet`: parses the command line and hands it to [`testnet::cli`].

use std::process::ExitCode;

use clap::Parser;
use testnet::cli::{dispatch, Cli, Fail};

fn main() -> ExitCode {
    // `testnet status | head` must end quietly, not panic on a closed pipe.
    // SAFETY: restoring the default disposition of SIGPIPE at start-up.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(Fail(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
