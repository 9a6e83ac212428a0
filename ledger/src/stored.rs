//! How the ledger's records reach storage: each one is a [`StoredRecord`] — the name of the
//! domain that owns it, its key bytes and its value bytes — so the stores in `x0t-consensus`
//! write and read opaque (domain, key) → value pairs and never learn a record type. A new
//! domain brings its own name and encodings (its `Domain` implementation); the stores do not
//! change.
//!
//! Keys and values are bincode. Decoding is bounded ([`MAX_RECORD_LEN`]) and exact (no
//! trailing bytes), and a record of a domain this build does not know is refused, never
//! skipped.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest key or value decoded (a record is far smaller; a node record with its certificate
/// is ~8 KB).
pub const MAX_RECORD_LEN: usize = 4 * 1024 * 1024;

/// One record as storage holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// The owning domain's name ([`crate::DOMAINS`]).
    pub domain: String,
    /// The record's key within its domain.
    #[serde(with = "x0t_types::bytes")]
    pub key: Vec<u8>,
    /// The record.
    #[serde(with = "x0t_types::bytes")]
    pub value: Vec<u8>,
}

/// One changed record since the last [`crate::Ledger::take_changes`]: its new value, or
/// `None` when it was deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredChange {
    /// The owning domain's name.
    pub domain: &'static str,
    /// The record's key within its domain.
    pub key: Vec<u8>,
    /// Its new value; `None`: deleted.
    pub value: Option<Vec<u8>>,
}

/// Why stored records do not make a ledger.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// A record of a domain this build does not have (written by a newer release).
    #[error(
        "a stored record belongs to domain {domain:?}, which this build does not know \
         (was the data written by a newer release?)"
    )]
    UnknownDomain {
        /// The name found (at most 64 characters of it).
        domain: String,
    },
    /// A record's bytes do not decode, or its value is not the record its key names.
    #[error("corrupt {domain} record: {detail}")]
    Corrupt {
        /// The domain.
        domain: String,
        /// What is wrong.
        detail: String,
    },
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_LEN>()
}

/// The stored bytes of a key or value.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding plain data into a Vec cannot fail (sizes are bounded by the commands'
    // checks); an empty value would be refused on load, never misread.
    bincode::serde::encode_to_vec(value, config()).unwrap_or_default()
}

/// Decodes exactly `bytes` (bounded, no trailing bytes) as `what` of `domain`.
pub(crate) fn decode<T: DeserializeOwned>(
    domain: &str,
    what: &str,
    bytes: &[u8],
) -> Result<T, LoadError> {
    let corrupt = |detail: String| LoadError::Corrupt {
        domain: domain.to_owned(),
        detail: format!("{what}: {detail}"),
    };
    if bytes.len() > MAX_RECORD_LEN {
        return Err(corrupt(format!(
            "{} bytes exceeds {MAX_RECORD_LEN}",
            bytes.len()
        )));
    }
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| corrupt(e.to_string()))?;
    if used != bytes.len() {
        return Err(corrupt(format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(value)
}
