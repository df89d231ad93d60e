//! Fixed-size byte strings (hashes, signatures) that serialize as hex in JSON and
//! as raw bytes on the wire.

/// Defines a `[u8; N]` newtype with hex `Display`/`Debug` and dual serde.
macro_rules! fixed_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub fn to_hex(self) -> String {
                hex::encode(self.0)
            }

            pub fn from_hex(s: &str) -> Option<Self> {
                let bytes = hex::decode(s.trim()).ok()?;
                Some($name(<[u8; $len]>::try_from(bytes.as_slice()).ok()?))
            }

            /// The first 8 hex digits, for logs.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    s.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl<'de> serde::de::Visitor<'de> for Visitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "{} bytes, or {} hex digits", $len, 2 * $len)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::from_hex(v).ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
                    }
                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<$name, E> {
                        $crate::fixed_bytes::array::<E, $len>(v).map($name)
                    }
                }
                if d.is_human_readable() {
                    d.deserialize_str(Visitor)
                } else {
                    d.deserialize_bytes(Visitor)
                }
            }
        }
    };
}

pub(crate) use fixed_bytes;

/// `N` bytes read as an array (a byte string of another length is an error).
pub fn array<E: serde::de::Error, const N: usize>(v: &[u8]) -> Result<[u8; N], E> {
    <[u8; N]>::try_from(v).map_err(|_| E::invalid_length(v.len(), &Length(N)))
}

struct Length(usize);

impl serde::de::Expected for Length {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

/// Binary formats get a hash as one byte string (a length, then a copy),
/// not as a tuple of 32 numbers: serde encodes and decodes a tuple a byte
/// at a time, which made certificates (a voter and a path of hashes in each
/// approval) a tenth of a node's work. `#[serde(with = "raw32")]`.
pub mod raw32 {
    use serde::{Deserializer, Serializer};

    /// Hex in human-readable formats (JSON), bytes in the others.
    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(bytes))
        } else {
            s.serialize_bytes(bytes)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        if d.is_human_readable() {
            d.deserialize_str(Visitor)
        } else {
            d.deserialize_bytes(Visitor)
        }
    }

    struct Visitor;

    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = [u8; 32];
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("32 bytes, or 64 hex digits")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<[u8; 32], E> {
            super::array(v)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<[u8; 32], E> {
            let bytes = hex::decode(v)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))?;
            super::array(&bytes)
        }
    }
}

/// A sequence of hashes, each as [`raw32`] has it.
pub mod raw32_seq {
    use serde::de::SeqAccess;
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    /// One hash of a sequence.
    struct Item([u8; 32]);

    impl<'de> Deserialize<'de> for Item {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            super::raw32::deserialize(d).map(Item)
        }
    }

    pub fn serialize<S: Serializer>(hashes: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(hashes.len()))?;
        for h in hashes {
            seq.serialize_element(&Bytes(h))?;
        }
        seq.end()
    }

    /// A hash of a sequence, serialized as bytes.
    struct Bytes<'a>(&'a [u8; 32]);

    impl serde::Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::raw32::serialize(self.0, s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Vec<[u8; 32]>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence of 32-byte hashes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // Bounded: a hostile length must not reserve memory.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
                while let Some(Item(h)) = seq.next_element()? {
                    out.push(h);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Visitor)
    }
}

#[cfg(test)]
mod tests {
    fixed_bytes!(Demo, 4);

    #[test]
    fn hex_in_json_bytes_in_postcard() {
        let d = Demo([1, 2, 3, 0xff]);
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"010203ff\"");
        assert_eq!(serde_json::from_str::<Demo>("\"010203ff\"").unwrap(), d);
        assert!(serde_json::from_str::<Demo>("\"0102\"").is_err());
        let wire = postcard::to_stdvec(&d).unwrap();
        assert_eq!(wire, vec![4, 1, 2, 3, 0xff]);
        assert_eq!(postcard::from_bytes::<Demo>(&wire).unwrap(), d);
        assert!(postcard::from_bytes::<Demo>(&[3, 1, 2, 3]).is_err());
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Path {
        #[serde(with = "super::raw32")]
        one: [u8; 32],
        #[serde(with = "super::raw32_seq")]
        many: Vec<[u8; 32]>,
    }

    #[test]
    fn hashes_are_one_byte_string_each_in_postcard_and_hex_in_json() {
        let p = Path {
            one: [7; 32],
            many: vec![[1; 32], [2; 32]],
        };
        let wire = postcard::to_stdvec(&p).unwrap();
        let mut want = vec![32];
        want.extend([7; 32]);
        want.extend([2, 32]);
        want.extend([1; 32]);
        want.push(32);
        want.extend([2; 32]);
        assert_eq!(wire, want);
        assert_eq!(postcard::from_bytes::<Path>(&wire).unwrap(), p);
        // A byte string of another length is not a hash.
        let mut short = vec![31];
        short.extend([7; 31]);
        short.push(0);
        assert!(postcard::from_bytes::<Path>(&short).is_err());
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains(&"07".repeat(32)), "{json}");
        assert_eq!(serde_json::from_str::<Path>(&json).unwrap(), p);
        assert!(serde_json::from_str::<Path>(r#"{"one":"07","many":[]}"#).is_err());
    }

    #[test]
    fn a_node_id_is_one_byte_string_in_postcard() {
        let id = crate::identity::Keypair::generate().id();
        let wire = postcard::to_stdvec(&id).unwrap();
        assert_eq!(wire.len(), 33);
        assert_eq!((wire[0], &wire[1..]), (32, &id.as_bytes()[..]));
        assert_eq!(
            postcard::from_bytes::<crate::identity::NodeId>(&wire).unwrap(),
            id
        );
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.to_hex()));
    }
}
