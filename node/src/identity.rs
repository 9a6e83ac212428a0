//! The node's identity on disk: where the data directory is and what lives in it.
//!
//! ```text
//! <data dir>/            0700
//!   identity.key         0600  ML-DSA identity key (x0t key file v1, see x0t_crypto::keyfile)
//! ```

use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;
use x0t_crypto::keyfile::{
    read_secret_file, read_signing_key, write_secret_file, write_signing_key,
};
use x0t_crypto::{SigAlgorithm, SigningKey};

use crate::NodeError;

/// File (in the data dir) holding the libp2p ed25519 key, protobuf-encoded, 0600.
pub const LIBP2P_KEY_FILE: &str = "libp2p.key";

/// File name of the identity key inside the data directory.
pub const IDENTITY_KEY_FILE: &str = "identity.key";

/// Environment variable that overrides the default data directory.
pub const DATA_DIR_ENV: &str = "X0T_DATA_DIR";

/// Where a node keeps its state when no `--dir` is given: `/var/lib/x0t` for root (a system
/// service), `$XDG_DATA_HOME/x0t` or `~/.local/share/x0t` for anyone else.
pub fn default_data_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/x0t");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("x0t");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/x0t"),
        None => PathBuf::from(".x0t"),
    }
}

fn is_root() -> bool {
    // Reading our own /proc entry avoids an unsafe libc call; non-Linux falls back to "no".
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// Path of the identity key inside `dir`.
pub fn identity_key_path(dir: &Path) -> PathBuf {
    dir.join(IDENTITY_KEY_FILE)
}

/// Generates a new identity key and stores it in `dir`. Without `overwrite`, an existing key
/// is left exactly as it was and an error says so.
pub fn generate_identity(
    dir: &Path,
    algorithm: SigAlgorithm,
    overwrite: bool,
) -> Result<SigningKey, NodeError> {
    let path = identity_key_path(dir);
    if !overwrite && path.exists() {
        // Fail before spending time on key generation.
        return Err(x0t_crypto::CryptoError::KeyFileExists { path }.into());
    }
    let key = SigningKey::generate(algorithm)?;
    write_signing_key(&path, &key, overwrite)?;
    tracing::info!(path = %path.display(), node_id = %key.node_id().short(), %algorithm, "identity key written");
    Ok(key)
}

/// Loads the identity key from `dir` (the key file decoder checks that its halves belong
/// together).
pub fn load_identity(dir: &Path) -> Result<SigningKey, NodeError> {
    Ok(read_signing_key(&identity_key_path(dir))?)
}

/// Reads a running process's JSON info file; `hint` follows a read error (what to start).
pub(crate) fn read_runtime_info<T: serde::de::DeserializeOwned>(
    path: &Path,
    hint: &str,
) -> Result<T, NodeError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| NodeError::Config(format!("reading {}: {e}{hint}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| NodeError::Config(format!("parsing {}: {e}", path.display())))
}

/// The node's libp2p key from the data dir, created on first use (0600).
pub fn libp2p_keypair(data_dir: &Path) -> Result<Keypair, NodeError> {
    let path = data_dir.join(LIBP2P_KEY_FILE);
    if !path.exists() {
        let keypair = Keypair::generate_ed25519();
        let bytes = keypair
            .to_protobuf_encoding()
            .map_err(|e| NodeError::Config(format!("encoding libp2p key: {e}")))?;
        write_secret_file(&path, &bytes, false)?;
        return Ok(keypair);
    }
    let bytes = read_secret_file(&path, 4096)?;
    Keypair::from_protobuf_encoding(&bytes)
        .map_err(|e| NodeError::Config(format!("{} is not a libp2p key: {e}", path.display())))
}
