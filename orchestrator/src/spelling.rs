//! How durations are spelled in testnet and scenario files, for the JSON
//! Schema (the parsing is serde's, beside each type). A leaf: the types use
//! it, `testnet schema` renders them.

use schemars::{json_schema, Schema, SchemaGenerator};

/// A duration as the files spell it (humantime).
pub(crate) fn duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "description": "a duration: 500ms, 10s, 1m30s",
        "pattern": r"^\s*\d"
    })
}

/// A duration that may be negative (a clock offset).
pub(crate) fn signed_duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "description": "a duration, negative allowed: 30s, -1m, 0s",
        "pattern": r"^\s*-?\s*\d"
    })
}
