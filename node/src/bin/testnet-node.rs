//! `testnet-node`: the node, its agent and genesis (see `testnet_node::cli`).

fn main() -> std::process::ExitCode {
    testnet_node::cli::main()
}
