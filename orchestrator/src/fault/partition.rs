//! A partition's groups, both ways (`partition: [[n0, n1], [n2, n3]]`) or one
//! way (`partition: { groups: [[n0], [n1, n2]], one_way: true }`: the first
//! group's packets to every other node are dropped, theirs still arrive).

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::NodeSel;

#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub groups: Vec<Vec<NodeSel>>,
    pub one_way: bool,
}

impl Partition {
    /// Groups cut from each other both ways.
    pub fn groups(groups: Vec<Vec<NodeSel>>) -> Partition {
        Partition {
            groups,
            one_way: false,
        }
    }

    pub fn label(&self) -> String {
        let groups: Vec<String> = self.groups.iter().map(|g| g.join(",")).collect();
        match self.one_way {
            false => format!("partition {}", groups.join(" | ")),
            true => format!(
                "partition {} -/-> {}",
                groups[..1].join(""),
                groups[1..].join(" | ")
            ),
        }
    }
}

/// The map form, with unknown keys refused.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Spelled {
    groups: Vec<Vec<NodeSel>>,
    #[serde(default)]
    one_way: bool,
}

/// Either spelling: groups (`[[n0, n1], [n2]]`) or the map with `one_way`.
impl schemars::JsonSchema for Partition {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Partition".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let groups = generator.subschema_for::<Vec<Vec<NodeSel>>>();
        let spelled = generator.subschema_for::<Spelled>();
        schemars::json_schema!({
            "description": "groups cut from each other ([[n0, n1], [n2]]), or { groups: [...], one_way: true }: the first group's packets to the others are dropped",
            "anyOf": [groups, spelled]
        })
    }
}

impl<'de> Deserialize<'de> for Partition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = Partition;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "groups of nodes ([[n0, n1], [n2]]) or { groups: [...], one_way: true }",
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Partition, A::Error> {
                let groups = Vec::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Partition::groups(groups))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Partition, A::Error> {
                let s = Spelled::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Partition {
                    groups: s.groups,
                    one_way: s.one_way,
                })
            }
        }
        d.deserialize_any(Either)
    }
}

impl Serialize for Partition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Spelled<'a> {
            groups: &'a [Vec<NodeSel>],
            one_way: bool,
        }
        match self.one_way {
            false => self.groups.serialize(s),
            true => Spelled {
                groups: &self.groups,
                one_way: true,
            }
            .serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_read_and_write_back() {
        let p: Partition = serde_norway::from_str("[[n0, n1], [n2]]").unwrap();
        assert_eq!(
            p,
            Partition::groups(vec![vec!["n0".into(), "n1".into()], vec!["n2".into()]])
        );
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"[["n0","n1"],["n2"]]"#
        );
        let p: Partition =
            serde_norway::from_str("{ groups: [[n0], [n1, n2]], one_way: true }").unwrap();
        assert!(p.one_way);
        assert_eq!(p.label(), "partition n0 -/-> n1,n2");
        let back: Partition = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        let err = serde_norway::from_str::<Partition>("{ groups: [[n0]], oneway: true }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("oneway"), "{err}");
        let err = serde_norway::from_str::<Partition>("n0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("one_way"), "says what it takes: {err}");
    }
}
