//! What a member keeps on disk so its data paths survive a restart while the control plane
//! has no quorum: the newest signed mesh state (`mesh-state.x0t`), the policy document it
//! names (`policy.json`, checked against the state's signed digest on load), and where the
//! other members were last reached (`peers.json`). Nothing here is trusted without checking:
//! a cache that fails verification is ignored (and logged), never fatal.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use x0t_types::NodeId;

use super::trust::Trust;
use crate::p2p::protocol::PeerPresence;

const STATE_FILE: &str = "mesh-state.x0t";
const POLICY_FILE: &str = "policy.json";
const PEERS_FILE: &str = "peers.json";
/// Largest cache file read back (a state with the most revocations is ~2 MiB, a policy 4).
const MAX_CACHE_FILE: u64 = 8 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct CachedPolicy {
    version: u64,
    document: String,
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), %e, "could not write the cache");
    }
}

fn read_bounded(dir: &Path, name: &str) -> Option<Vec<u8>> {
    let path = dir.join(name);
    let size = std::fs::metadata(&path).ok()?.len();
    if size > MAX_CACHE_FILE {
        tracing::warn!(path = %path.display(), size, "cache file too large; ignored");
        return None;
    }
    std::fs::read(&path).ok()
}

/// Loads the cached state and policy into `trust`, verifying both.
pub fn load(dir: &Path, trust: &mut Trust) {
    if let Some(bytes) = read_bounded(dir, STATE_FILE) {
        match trust.accept_state(&bytes) {
            Ok(_) => tracing::info!(index = trust.state_index(), "cached mesh state loaded"),
            Err(why) => tracing::warn!(%why, "cached mesh state ignored"),
        }
    }
    if let Some(bytes) = read_bounded(dir, POLICY_FILE) {
        match serde_json::from_slice::<CachedPolicy>(&bytes) {
            Ok(cached) => match trust.accept_policy(cached.version, &cached.document) {
                Ok(_) => tracing::info!(version = cached.version, "cached policy loaded"),
                Err(why) => tracing::warn!(%why, "cached policy ignored"),
            },
            Err(e) => tracing::warn!(%e, "cached policy unreadable; ignored"),
        }
    }
}

/// Caches a verified state's envelope.
pub fn save_state(dir: &Path, bytes: &[u8]) {
    write_atomically(dir, STATE_FILE, bytes);
}

/// Caches a verified policy document.
pub fn save_policy(dir: &Path, version: u64, document: &str) {
    let cached = CachedPolicy {
        version,
        document: document.to_owned(),
    };
    if let Ok(json) = serde_json::to_vec(&cached) {
        write_atomically(dir, POLICY_FILE, &json);
    }
}

/// Where members were last reached.
pub fn load_peers(dir: &Path) -> HashMap<NodeId, PeerPresence> {
    let Some(bytes) = read_bounded(dir, PEERS_FILE) else {
        return HashMap::new();
    };
    let list: Vec<PeerPresence> = serde_json::from_slice(&bytes).unwrap_or_default();
    list.into_iter()
        .filter_map(|p| Some((p.node_id.parse().ok()?, p)))
        .collect()
}

/// Remembers where members were reached.
pub fn save_peers(dir: &Path, known: &HashMap<NodeId, PeerPresence>) {
    let list: Vec<&PeerPresence> = known.values().collect();
    if let Ok(json) = serde_json::to_vec_pretty(&list) {
        write_atomically(dir, PEERS_FILE, &json);
    }
}
