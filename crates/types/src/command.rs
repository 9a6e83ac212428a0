//! Values the ledger's commands carry that the API shows too: a mesh's settings and where an
//! anchor can be reached. (The commands themselves live with their domains in `x0t-ledger`.)

use serde::{Deserialize, Serialize};

use crate::{NodeId, PublicKeyBytes};

/// Longest mesh description accepted, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 4096;

/// A mesh's admin-editable settings. Updates replace the whole value and may be conditional
/// on the mesh's current version (compare-and-set).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshSettings {
    /// Free text shown in the UI (at most [`MAX_DESCRIPTION_LEN`] bytes).
    pub description: String,
}

/// A control-plane anchor as the ledger records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorRecord {
    /// Its Raft node id.
    pub raft_id: u64,
    /// Its x0t node id (hash of its ML-DSA identity key).
    pub node_id: NodeId,
    /// Its ML-DSA identity public key: what certificates and audit statements it signs are
    /// verified against.
    pub identity_key: PublicKeyBytes,
    /// Its libp2p peer id, as text.
    pub peer_id: String,
    /// Multiaddrs it listens on for node-to-node traffic.
    pub addrs: Vec<String>,
    /// Base URL of its API (HTTP), e.g. `http://127.0.0.1:7410`.
    pub api_url: String,
}

/// Where a control-plane anchor can be reached: what the Raft membership records for each
/// member, and what `GET /api/v1/cluster` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorNode {
    /// Its libp2p peer id, as text.
    pub peer_id: String,
    /// Multiaddrs it listens on.
    pub addrs: Vec<String>,
    /// Base URL of its HTTP API.
    pub api_url: String,
}
