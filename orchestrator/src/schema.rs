//! JSON Schema of testnet and scenario files, derived from the types that
//! parse them (schemars), for editors and validators: `testnet schema
//! testnet|scenario` prints one, and `schemas/` holds them committed (a test
//! keeps those in step with the types).
//!
//! What a schema cannot say (a node name that exists, a fault that fits the
//! topology) is still checked when the file is loaded.

use crate::config::TestnetFile;
use crate::scenario::Scenario;

/// Which file a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A testnet file (`testnet up FILE`).
    Testnet,
    /// A scenario file (`testnet run FILE`).
    Scenario,
}

impl Kind {
    /// Where the committed schema lives, from the repository's root.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Testnet => "schemas/testnet.schema.json",
            Kind::Scenario => "schemas/scenario.schema.json",
        }
    }
}

/// The schema of `kind`, as pretty JSON with a final newline.
pub fn render(kind: Kind) -> String {
    let mut schema = match kind {
        Kind::Testnet => schemars::schema_for!(TestnetFile),
        Kind::Scenario => schemars::schema_for!(Scenario),
    };
    let title = match kind {
        Kind::Testnet => "testnet file",
        Kind::Scenario => "testnet scenario file",
    };
    schema.insert("title".into(), title.into());
    let mut value = schema.to_value();
    scalars_as_strings(&mut value);
    let mut text = serde_json::to_string_pretty(&value).expect("a schema is JSON");
    text.push('\n');
    text
}

/// The YAML loader reads any plain scalar where a string is expected
/// (`seed: 42`, `env: { X: 1 }`), so a free string in the schema accepts
/// numbers and booleans too. Strings with a shape (an `enum`, a `const`, a
/// `pattern` such as a duration's) stay strings: there the loader refuses
/// `30` as it refuses `thirty`.
fn scalars_as_strings(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            let shaped = ["enum", "const", "pattern"]
                .iter()
                .any(|k| m.contains_key(*k));
            if !shaped {
                let loosen = |t: &serde_json::Value| t == "string";
                let widened = match m.get("type") {
                    Some(t) if loosen(t) => {
                        Some(serde_json::json!(["string", "number", "boolean"]))
                    }
                    Some(serde_json::Value::Array(ts)) if ts.iter().any(loosen) => {
                        let mut ts = ts.clone();
                        ts.extend([serde_json::json!("number"), serde_json::json!("boolean")]);
                        Some(serde_json::Value::Array(ts))
                    }
                    _ => None,
                };
                if let Some(t) = widened {
                    m.insert("type".into(), t);
                }
            }
            m.values_mut().for_each(scalars_as_strings);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(scalars_as_strings),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn committed_schemas_match_the_types() {
        for kind in [Kind::Testnet, Kind::Scenario] {
            let path = root().join(kind.path());
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == render(kind),
                "{} is not what the types give: run `cargo run -p testnet -- schema {} > {}`",
                kind.path(),
                format!("{kind:?}").to_lowercase(),
                kind.path()
            );
        }
    }

    #[test]
    fn the_schemas_refuse_unknown_keys_and_name_the_faults() {
        let scenario: serde_json::Value = serde_json::from_str(&render(Kind::Scenario)).unwrap();
        let text = scenario.to_string();
        for fault in [
            "partition",
            "delay",
            "clock",
            "byzantine",
            "disk_full",
            "kill",
        ] {
            assert!(
                text.contains(&format!("\"{fault}\"")),
                "no {fault} in the schema"
            );
        }
        assert_eq!(scenario["additionalProperties"], false);
        let testnet: serde_json::Value = serde_json::from_str(&render(Kind::Testnet)).unwrap();
        assert_eq!(testnet["additionalProperties"], false);
        assert_eq!(testnet["required"], serde_json::json!(["nodes"]));
    }
}
