//! The node the image ships: `testnet-node`'s command line, linked from the
//! orchestrator's own build, so `testnet up` after `cargo run --release -p
//! testnet` needs no second build of the node. `testnet image build` relinks
//! it statically (`cargo rustc ... -C target-feature=+crt-static`), reusing
//! every compiled dependency; see `testnet::image::build_static_node`.

fn main() -> std::process::ExitCode {
    testnet_node::cli::main()
}
