#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| testnet_node::fuzzing::frames(data));
