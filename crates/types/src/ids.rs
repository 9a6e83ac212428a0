use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::TypesError;
use crate::base32;
use crate::error::quote;

/// The identity of a node: blake3 of its ML-DSA public key.
///
/// Shown to humans as 52 lowercase base32 characters ([`fmt::Display`]), or as the first
/// [`NodeId::SHORT_LEN`] of them ([`NodeId::short`]) where a list needs to stay readable.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId([u8; 32]);

impl NodeId {
    /// Length of the full base32 form.
    pub const TEXT_LEN: usize = 52;
    /// Length of the short base32 form: 80 bits, plenty to tell nodes of one mesh apart.
    pub const SHORT_LEN: usize = 16;

    /// Wraps a 32-byte digest. Only `x0t-crypto` should compute one; this just carries it.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The short display form (first 16 base32 characters).
    pub fn short(&self) -> String {
        let mut text = self.to_string();
        text.truncate(Self::SHORT_LEN);
        text
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base32::encode(&self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

impl FromStr for NodeId {
    type Err = TypesError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason: String| TypesError::NodeId {
            text: quote(text),
            reason,
        };
        if text.len() != Self::TEXT_LEN {
            return Err(error(format!(
                "expected {} base32 characters, got {}",
                Self::TEXT_LEN,
                text.len()
            )));
        }
        let bytes = base32::decode(text).map_err(|e| error(e.to_string()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| error("does not decode to 32 bytes".to_owned()))?;
        Ok(Self(bytes))
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Checks a name against the shared rule for mesh names and tags: lowercase ASCII letters,
/// digits and the given extra punctuation, starting with a letter or digit.
fn check_name(text: &str, max: usize, extra: &[char]) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("must not be empty");
    }
    if text.len() > max {
        return Err("is too long");
    }
    let mut chars = text.chars();
    if !chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err("must start with a lowercase letter or digit");
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(&c)) {
        return Err("may contain only lowercase letters, digits and the allowed punctuation");
    }
    Ok(())
}

macro_rules! validated_name {
    ($(#[$meta:meta])* $name:ident, max = $max:expr, extra = $extra:expr, error = $variant:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The longest accepted name, in bytes.
            pub const MAX_LEN: usize = $max;
            /// Punctuation accepted besides lowercase letters and digits.
            pub const PUNCTUATION: &'static [char] = $extra;

            /// Validates and wraps a name.
            pub fn new(text: impl Into<String>) -> Result<Self, TypesError> {
                let text = text.into();
                match check_name(&text, Self::MAX_LEN, Self::PUNCTUATION) {
                    Ok(()) => Ok(Self(text)),
                    Err(reason) => Err(TypesError::$variant {
                        text: quote(&text),
                        reason,
                    }),
                }
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = TypesError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::new(text)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::new(text).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_name!(
    /// The name of a mesh (a tenant's network): 1–63 characters of `[a-z0-9-]`, starting with a
    /// letter or digit, so it is safe in URLs, DNS labels and file names.
    MeshId,
    max = 63,
    extra = &['-'],
    error = MeshId
);

validated_name!(
    /// A node tag used by ACL selectors, e.g. `robot`, `site:berlin`, `tier-1`:
    /// 1–64 characters of `[a-z0-9-_:.]`, starting with a letter or digit.
    Tag,
    max = 64,
    extra = &['-', '_', ':', '.'],
    error = Tag
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn node_id_text_forms() {
        let id = NodeId::from_bytes([7; 32]);
        let text = id.to_string();
        assert_eq!(text.len(), NodeId::TEXT_LEN);
        assert_eq!(id.short(), &text[..NodeId::SHORT_LEN]);
        assert_eq!(text.parse::<NodeId>().unwrap(), id);
        assert_eq!(text.to_uppercase().parse::<NodeId>().unwrap(), id);
        assert!(text[..51].parse::<NodeId>().is_err());
        let err = "not-an-id".parse::<NodeId>().unwrap_err().to_string();
        assert!(err.contains("expected 52 base32 characters"), "{err}");
    }

    #[test]
    fn names_are_validated() {
        assert!(MeshId::new("factory-1").is_ok());
        assert!(MeshId::new("").is_err());
        assert!(MeshId::new("-x").is_err());
        assert!(MeshId::new("Factory").is_err());
        assert!(MeshId::new("a".repeat(64)).is_err());
        assert!(MeshId::new("a".repeat(63)).is_ok());
        assert!(Tag::new("site:berlin.north_2").is_ok());
        assert!(Tag::new("has space").is_err());
        let err = Tag::new("x".repeat(1000)).unwrap_err().to_string();
        assert!(err.len() < 200, "error quotes a bounded prefix: {err}");
    }

    proptest! {
        #[test]
        fn node_id_roundtrip(bytes in any::<[u8; 32]>()) {
            let id = NodeId::from_bytes(bytes);
            prop_assert_eq!(id.to_string().parse::<NodeId>().unwrap(), id);
        }
    }
}
