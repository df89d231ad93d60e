//! `testnet`: [`testnet::cli::main`] parses the command line and runs it.

fn main() -> std::process::ExitCode {
    testnet::cli::main()
}
