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
    if bytes.len() > MAX_RECORD_LEN {
        return Err(StoreError::Corrupt {
            what,
            detail: format!(
                "{} bytes exceeds the {MAX_RECORD_LEN}-byte limit",
                bytes.len()
            ),
        });
    }
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| StoreError::Corrupt {
            what,
            detail: e.to_string(),
        })?;
    if used != bytes.len() {
        return Err(StoreError::Corrupt {
            what,
            detail: format!("{} trailing bytes", bytes.len() - used),
        });
    }
    Ok(value)
}

/// Like [`decode`] with a larger, caller-chosen limit (snapshots).
pub(crate) fn decode_large<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    const MAX_SNAPSHOT_LEN: usize = 1 << 30;
    let config = bincode::config::standard().with_limit::<MAX_SNAPSHOT_LEN>();
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config).map_err(|e| StoreError::Corrupt {
            what,
            detail: e.to_string(),
        })?;
    if used != bytes.len() {
        return Err(StoreError::Corrupt {
            what,
            detail: format!("{} trailing bytes", bytes.len() - used),
        });
    }
    Ok(value)
}

pub(crate) fn encode_large<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| StoreError::Encode(e.to_string()))
}
