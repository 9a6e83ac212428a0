//! What applying a command answers: an [`Outcome`] when it changed the state, a [`Reject`]
//! (with nothing changed) when it did not. One variant per command result for now; each
//! domain's variants are grouped and documented here.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use x0t_types::{MeshId, NodeId, NodeState, Timestamp};

use crate::Mesh;

/// What a successful command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A mesh was created at version 1.
    MeshCreated {
        /// The new mesh.
        mesh: Mesh,
    },
    /// A mesh's settings were replaced.
    MeshUpdated {
        /// The mesh after the change.
        mesh: Mesh,
    },
    /// An anchor was recorded (or its record replaced).
    AnchorAdded {
        /// Its Raft id.
        raft_id: u64,
    },
    /// An API key was recorded.
    ApiKeyAdded {
        /// Its id.
        key_id: String,
    },
    /// An anchor-join token was recorded.
    AnchorJoinTokenAdded {
        /// Its id.
        token_id: String,
        /// When it expires.
        expires_at: Timestamp,
    },
    /// An anchor-join token was spent and the anchor recorded.
    AnchorJoinTokenRedeemed {
        /// The new anchor's Raft id.
        raft_id: u64,
    },
    /// An anchor was forgotten.
    AnchorRemoved {
        /// Its Raft id.
        raft_id: u64,
    },
    /// A node registered (pending, or approved at once by its token).
    NodeRegistered {
        /// The node.
        node_id: NodeId,
        /// Its state after registering.
        state: NodeState,
        /// Its overlay address, when approved.
        overlay_ip: Option<Ipv4Addr>,
    },
    /// A node was approved.
    NodeApproved {
        /// The node.
        node_id: NodeId,
        /// Its overlay address.
        overlay_ip: Ipv4Addr,
    },
    /// A node was rejected.
    NodeRejected {
        /// The node.
        node_id: NodeId,
    },
    /// A node was revoked.
    NodeRevoked {
        /// The node.
        node_id: NodeId,
    },
    /// A join token was recorded.
    JoinTokenAdded {
        /// Its id.
        token_id: [u8; 16],
        /// When it stops being valid.
        not_after: Timestamp,
    },
    /// A mesh's join tokens were rotated.
    JoinTokensRotated {
        /// The new epoch.
        epoch: u64,
        /// How many recorded tokens it invalidated.
        invalidated: u32,
    },
    /// A mesh's ACL policy was replaced.
    AclSet {
        /// Its new version.
        version: u64,
    },
}

/// Why a command was refused. A refused command changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Reject {
    /// The mesh already exists.
    #[error("mesh {mesh} already exists")]
    MeshExists {
        /// Its name.
        mesh: MeshId,
    },
    /// No mesh by that name.
    #[error("no mesh named {mesh}")]
    NoSuchMesh {
        /// The name asked for.
        mesh: MeshId,
    },
    /// Compare-and-set failed: the mesh moved on since the client read it.
    #[error("mesh {mesh} is at version {actual}, not {expected}")]
    VersionMismatch {
        /// The mesh.
        mesh: MeshId,
        /// The version the client expected.
        expected: u64,
        /// The version it is at.
        actual: u64,
    },
    /// An API key with that id exists.
    #[error("API key {key_id} already exists")]
    ApiKeyExists {
        /// The id.
        key_id: String,
    },
    /// No anchor with that Raft id.
    #[error("no anchor with raft id {raft_id}")]
    NoSuchAnchor {
        /// The id asked for.
        raft_id: u64,
    },
    /// The token is unknown, already spent (anchor-join tokens), or its secret is wrong.
    #[error("unknown, spent or wrong token")]
    InvalidToken,
    /// The token is right but outside its validity.
    #[error("token {token_id} is not valid now (it expires at {expires_at})")]
    TokenExpired {
        /// Its id.
        token_id: String,
        /// When it expires or expired.
        expires_at: Timestamp,
    },
    /// The join token was issued before the mesh's tokens were rotated.
    #[error("join token {token_id} was invalidated by a token rotation")]
    TokenRotated {
        /// Its id.
        token_id: String,
    },
    /// The join token has been used as often as it may.
    #[error("join token {token_id} is used up ({uses} use(s))")]
    TokenUsedUp {
        /// Its id.
        token_id: String,
        /// How often it was used.
        uses: u32,
    },
    /// Too many anchor-join tokens are outstanding.
    #[error(
        "{} anchor-join tokens are outstanding; use or let some expire",
        crate::MAX_ANCHOR_JOIN_TOKENS
    )]
    TooManyAnchorTokens,
    /// Too many join tokens are live in the mesh.
    #[error("{limit} join tokens are live in this mesh; rotate or let some expire")]
    TooManyTokens {
        /// The limit.
        limit: usize,
    },
    /// No node with that id in the mesh.
    #[error("no node {node} in mesh {mesh}")]
    NoSuchNode {
        /// The mesh.
        mesh: MeshId,
        /// The id asked for.
        node: String,
    },
    /// The node is registered already.
    #[error("node {node} is registered already ({state})")]
    NodeExists {
        /// The node.
        node: String,
        /// Its state.
        state: NodeState,
    },
    /// The node is not in a state that allows the command.
    #[error("node {node} is {state}; this needs it {wanted}")]
    InvalidState {
        /// The node.
        node: String,
        /// Its state.
        state: NodeState,
        /// The state(s) the command needs.
        wanted: String,
    },
    /// The mesh holds as many nodes as it may.
    #[error("the mesh holds its limit of {limit} nodes in this state")]
    TooManyNodes {
        /// The limit.
        limit: usize,
    },
    /// Another node holds the overlay address.
    #[error("overlay address {ip} is taken")]
    OverlayIpTaken {
        /// The address.
        ip: String,
    },
    /// The node's signed registration is malformed, badly signed or stale.
    #[error("registration refused: {0}")]
    BadRegistration(String),
    /// The certificate is malformed, badly signed, or does not match the node.
    #[error("certificate refused: {0}")]
    BadCertificate(String),
    /// The anchor's statement of who asked is missing, malformed or for another command.
    #[error("audit statement refused: {0}")]
    BadStatement(String),
    /// The command is malformed.
    #[error("invalid command: {0}")]
    Invalid(String),
    /// Compare-and-set on the ACL policy failed: it changed since the admin read it.
    #[error("the policy of mesh {mesh} is at version {actual}, not {expected}")]
    AclVersionMismatch {
        /// The mesh.
        mesh: MeshId,
        /// The version the admin expected.
        expected: u64,
        /// The version it is at.
        actual: u64,
    },
    /// The policy document is not a valid policy (line and column 0: no position).
    #[error("invalid policy: {message}")]
    InvalidPolicy {
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// What is wrong, with its position.
        message: String,
    },
    /// A policy test in the document fails.
    #[error("{message}")]
    PolicyTestFailed {
        /// 1-based line of the failing test's `[[test]]` header.
        line: u32,
        /// Which test, what it expected and what it got.
        message: String,
    },
}
