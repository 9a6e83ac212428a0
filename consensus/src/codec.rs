//! bincode with a size limit on every decode: stored and received bytes are never trusted to
//! state their own size.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StoreError;

/// Largest single log entry or record we decode (a proposal is far smaller).
pub(crate) const MAX_RECORD_LEN: usize = 4 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_LEN>()
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| StoreError::Encode(e.to_string()))
}

pub(crate) fn decode<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    decode_limited::<T, MAX_RECORD_LEN>(what, bytes)
}

/// Like [`decode`] with the snapshot limit (1 GiB).
pub(crate) fn decode_large<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    decode_limited::<T, { 1 << 30 }>(what, bytes)
}

/// Decodes exactly `bytes` (no trailing bytes) with at most `LIMIT` bytes of input.
fn decode_limited<T: DeserializeOwned, const LIMIT: usize>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt { what, detail };
    if bytes.len() > LIMIT {
        return Err(corrupt(format!(
            "{} bytes exceeds the {LIMIT}-byte limit",
            bytes.len()
        )));
    }
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config).map_err(|e| corrupt(e.to_string()))?;
    if used != bytes.len() {
        return Err(corrupt(format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(value)
}

pub(crate) fn encode_large<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| StoreError::Encode(e.to_string()))
}
