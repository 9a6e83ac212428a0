//! Commands proposed to the replicated ledger, and the records they create.
//!
//! A command is what a client asks for; the leader wraps concurrent commands in one
//! [`Proposal`] stamped with the time it proposed them, so every replica applies the same bytes and computes the same state
//! without reading a clock.

use serde::{Deserialize, Serialize};

use crate::{MeshId, NodeId, Timestamp};

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
    /// Its libp2p peer id, as text.
    pub peer_id: String,
    /// Multiaddrs it listens on for node-to-node traffic.
    pub addrs: Vec<String>,
    /// Base URL of its API (HTTP), e.g. `http://127.0.0.1:7410`.
    pub api_url: String,
}

/// What a client asks the ledger to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Creates a mesh; refused if it exists.
    CreateMesh {
        /// Its name.
        mesh: MeshId,
        /// Its initial settings.
        settings: MeshSettings,
    },
    /// Replaces a mesh's settings. With `expected_version`, only if the mesh is at exactly
    /// that version (compare-and-set); without, unconditionally.
    UpdateMeshSettings {
        /// Which mesh.
        mesh: MeshId,
        /// The version the client read, for compare-and-set.
        expected_version: Option<u64>,
        /// The new settings.
        settings: MeshSettings,
    },
    /// Records an anchor (after it joined the Raft membership).
    AddAnchor {
        /// The anchor.
        anchor: AnchorRecord,
    },
    /// Records an admin API key by its id and the hash of its secret (never the secret).
    AddAdminKey {
        /// Public identifier (part of the token text).
        key_id: String,
        /// blake3-derived hash of the secret.
        secret_hash: [u8; 32],
        /// Human label, e.g. "bootstrap".
        label: String,
    },
    /// Records an anchor-join token: its id, the hash of its secret (never the secret), and
    /// when it stops being valid.
    AddAnchorJoinToken {
        /// Public identifier (part of the token text).
        token_id: String,
        /// blake3-derived hash of the secret.
        secret_hash: [u8; 32],
        /// The first instant it is no longer valid.
        expires_at: Timestamp,
    },
    /// Spends an anchor-join token (it works once) to record a new anchor. Refused unless the
    /// token exists, the presented secret hashes to its hash, and it has not expired at the
    /// proposal's time.
    RedeemAnchorJoinToken {
        /// The token's id.
        token_id: String,
        /// Hash of the secret the joining node presented.
        secret_hash: [u8; 32],
        /// The anchor it admits.
        anchor: AnchorRecord,
    },
    /// Forgets an anchor.
    RemoveAnchor {
        /// Its Raft node id.
        raft_id: u64,
    },
}

/// The payload of one log entry: commands the leader proposed together, stamped with the
/// time it proposed them. Concurrent writes travel and commit as one entry (one disk flush,
/// one replication round) instead of one entry each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The leader's clock when it proposed the batch; the only time `apply` ever sees.
    pub proposed_at: Timestamp,
    /// The commands, applied in this order.
    pub commands: Vec<ProposedCommand>,
}

/// One client command inside a [`Proposal`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedCommand {
    /// The command.
    pub command: Command,
    /// Identifies the client's logical write across retries: a write retried after a leader
    /// change is applied once, and the retry gets the first attempt's result.
    pub request_id: Option<u128>,
}
