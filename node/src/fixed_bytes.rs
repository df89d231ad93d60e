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
                        <[u8; $len]>::try_from(v)
                            .map($name)
                            .map_err(|_| E::invalid_length(v.len(), &self))
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
}
