//! What the YAML fuzz target (`fuzz/`, cargo-fuzz) runs on arbitrary bytes,
//! and `cargo test` again on every input kept under `fuzz/regressions/yaml`:
//! a testnet file and a scenario file are parsed (errors are fine, panics and
//! hangs are not), and a scenario that parses reads back the same once
//! written out.

use crate::config::TestnetFile;
use crate::scenario::Scenario;

pub fn yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = TestnetFile::parse(text, "fuzz.yaml");
    if let Ok(mut s) = Scenario::parse(text, "fuzz.scenario.yaml") {
        let written = serde_norway::to_string(&s).expect("a scenario serializes");
        // A drawn nemesis reads back as the plain steps it drew.
        s.nemesis_steps = 0;
        let again = Scenario::parse(&written, "again.scenario.yaml");
        assert_eq!(again.as_ref().ok(), Some(&s), "{written}");
    }
}

#[cfg(test)]
mod tests {
    /// Every input kept in `fuzz/regressions/yaml/` (seeds, and each crash
    /// the fuzzer found, once fixed) passes again.
    #[test]
    fn kept_inputs_pass_again() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/regressions/yaml");
        testnet_node::fuzzing::replay(dir, super::yaml);
    }
}
