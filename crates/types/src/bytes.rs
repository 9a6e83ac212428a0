//! Serde helpers that encode byte vectors as one byte string (`serialize_bytes`) instead of a
//! sequence of numbers: for bincode that is one length and a copy rather than a call per byte,
//! which matters for the kilobytes of signatures every command carries. Use with
//! `#[serde(with = "x0t_types::bytes")]` (or `crate::bytes` here).

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

/// Serializes `bytes` as a byte string.
pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// Deserializes a byte string (or, from self-describing formats, a sequence of numbers).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_byte_buf(BytesVisitor)
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(bytes)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        // Bounded by what the format hands us; never pre-allocate from a claimed length.
        let mut bytes = Vec::new();
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

/// The same for `Option<Vec<u8>>`.
pub mod option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Wrapped(#[serde(with = "super")] Vec<u8>);

    /// Serializes an optional byte string.
    pub fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        bytes
            .as_ref()
            .map(|b| Wrapped(b.clone()))
            .serialize(serializer)
    }

    /// Deserializes an optional byte string.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "super")]
        a: Vec<u8>,
        #[serde(with = "super::option")]
        b: Option<Vec<u8>>,
        #[serde(with = "super::option")]
        c: Option<Vec<u8>>,
    }

    fn holder() -> Holder {
        Holder {
            a: (0..=255).collect(),
            b: Some(vec![]),
            c: None,
        }
    }

    #[test]
    fn bincode_round_trip_is_one_length_and_the_bytes() {
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(holder(), config).unwrap();
        let (back, used): (Holder, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!((back, used), (holder(), bytes.len()));
        // 256 bytes: a 3-byte varint length, then the bytes verbatim.
        assert_eq!(&bytes[3..259], &holder().a[..]);
    }

    #[test]
    fn json_round_trip_accepts_number_arrays() {
        let text = serde_json::to_string(&holder()).unwrap();
        assert_eq!(serde_json::from_str::<Holder>(&text).unwrap(), holder());
        let legacy: Holder = serde_json::from_str(r#"{"a":[1,2],"b":[3],"c":null}"#).unwrap();
        assert_eq!((legacy.a, legacy.b), (vec![1, 2], Some(vec![3])));
    }
}
