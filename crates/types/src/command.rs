//! Commands proposed to the replicated ledger, and the records they create.
//!
//! A command is what a client asks for; the leader wraps concurrent commands in one
//! [`Proposal`] stamped with the time it proposed them, so every replica applies the same bytes and computes the same state
//! without reading a clock.

use serde::{Deserialize, Serialize};

use crate::{
    KeyRole, MeshId, NodeId, Plan, PublicKeyBytes, Tag, Timestamp, TokenProof, TokenUsage,
};

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

/// What a client asks the ledger to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Creates a mesh; refused if it exists.
    CreateMesh {
        /// Its name.
        mesh: MeshId,
        /// Its initial settings.
        settings: MeshSettings,
        /// Its plan.
        plan: Plan,
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
    /// Records an API key by its id and the hash of its secret (never the secret).
    AddApiKey {
        /// Public identifier (part of the token text).
        key_id: String,
        /// blake3-derived hash of the secret.
        secret_hash: [u8; 32],
        /// Human label, e.g. "bootstrap".
        label: String,
        /// What it may do.
        role: KeyRole,
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
    /// A node asks to join a mesh. `registration` is the node's signed registration
    /// (`x0t_crypto::SignedRegistration` envelope bytes): mesh, identity key, peer id,
    /// hostname, device class, requested tags, signed by the node's own identity key. With a
    /// pre-approved token the proposing anchor also signed a certificate, and the node is
    /// approved at once.
    RegisterNode {
        /// The node's signed registration.
        #[serde(with = "crate::bytes")]
        registration: Vec<u8>,
        /// The join token the node presented, if any.
        token: Option<TokenProof>,
        /// The certificate the proposing anchor signed, when the token pre-approves.
        #[serde(with = "crate::bytes::option")]
        certificate: Option<Vec<u8>>,
    },
    /// Approves a pending node with the certificate the proposing anchor signed.
    ApproveNode {
        /// The mesh.
        mesh: MeshId,
        /// The node.
        node_id: NodeId,
        /// `x0t_crypto::SignedNodeCertificate` envelope bytes.
        #[serde(with = "crate::bytes")]
        certificate: Vec<u8>,
    },
    /// Refuses a pending node.
    RejectNode {
        /// The mesh.
        mesh: MeshId,
        /// The node.
        node_id: NodeId,
        /// Why, for the audit log.
        reason: String,
    },
    /// Withdraws an approved (or pending) node's admission; its certificate is listed as
    /// revoked.
    RevokeNode {
        /// The mesh.
        mesh: MeshId,
        /// The node.
        node_id: NodeId,
        /// Why, for the audit log and for peers.
        reason: String,
    },
    /// Records a join token for a mesh: its id and the hash of its secret (never the secret).
    /// With `for_node`, it is a re-issued token: a node registering with it replaces that
    /// node (new key, same tags, device class and overlay IP), and is approved at once.
    AddJoinToken {
        /// The mesh it admits into.
        mesh: MeshId,
        /// Its public id.
        token_id: [u8; 16],
        /// `TokenSecret::hash` of its secret.
        secret_hash: [u8; 32],
        /// Single-use or reusable.
        usage: TokenUsage,
        /// Whether registering with it approves at once.
        pre_approved: bool,
        /// Tags given to nodes that join with it.
        tags: Vec<Tag>,
        /// Start of validity.
        not_before: Timestamp,
        /// End of validity (exclusive); 1 h to 30 d after `not_before`.
        not_after: Timestamp,
        /// The approved node it re-admits, for `reissue-token`.
        for_node: Option<NodeId>,
    },
    /// Invalidates every join token of a mesh issued so far.
    RotateJoinTokens {
        /// The mesh.
        mesh: MeshId,
    },
    /// Replaces a mesh's ACL policy document. `apply` parses and validates it and runs its
    /// policy tests; a document that fails any of that changes nothing.
    SetAcl {
        /// The mesh.
        mesh: MeshId,
        /// The TOML policy document, as the admin wrote it.
        document: String,
        /// Compare-and-set: the policy version the admin edited (0: the default policy).
        expected_version: Option<u64>,
    },
}

impl Command {
    /// The audit action name, e.g. `node.approve`.
    pub fn action(&self) -> &'static str {
        match self {
            Self::CreateMesh { .. } => "mesh.create",
            Self::UpdateMeshSettings { .. } => "mesh.update_settings",
            Self::AddAnchor { .. } => "anchor.add",
            Self::AddApiKey { .. } => "api_key.add",
            Self::AddAnchorJoinToken { .. } => "anchor_join_token.add",
            Self::RedeemAnchorJoinToken { .. } => "anchor_join_token.redeem",
            Self::RemoveAnchor { .. } => "anchor.remove",
            Self::RegisterNode { .. } => "node.register",
            Self::ApproveNode { .. } => "node.approve",
            Self::RejectNode { .. } => "node.reject",
            Self::RevokeNode { .. } => "node.revoke",
            Self::AddJoinToken {
                for_node: Some(_), ..
            } => "node.reissue_token",
            Self::AddJoinToken { .. } => "token.create",
            Self::RotateJoinTokens { .. } => "token.rotate",
            Self::SetAcl { .. } => "acl.set",
        }
    }
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
    /// Who asked, as the proposing anchor attests: an `x0t_crypto::SignedAuditStatement`
    /// envelope (actor, action, digest of the command, signed by the anchor). Empty for
    /// [`Command::RegisterNode`], whose registration the node signed itself. Recorded in the
    /// mesh's audit chain.
    #[serde(with = "crate::bytes")]
    pub statement: Vec<u8>,
}
