//! Format 4's remembered results: one flat outcome and refusal enum of every domain, and the
//! per-entry group the `requests` domain stored; each upgrades to this release's form.

#![allow(missing_docs)]

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use x0t_types::{MeshId, NodeId, NodeState, Timestamp};

use crate::Mesh;
use crate::command::{
    AclOutcome, AclReject, AnchorOutcome, AnchorReject, ApiKeyOutcome, ApiKeyReject, MeshOutcome,
    MeshReject, NodeOutcome, NodeReject,
};

/// What a successful command did, as format 4 remembered it: one flat enum of every domain.
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

/// Why a command was refused, as format 4 remembered it: one flat enum of every domain.
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

/// The remembered results of one log entry, as format 4 stored them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestGroup {
    pub index: u64,
    pub applied_at: Timestamp,
    pub requests: Vec<RequestRecord>,
}

/// One remembered result, as format 4 stored it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub request_id: u128,
    pub position: u32,
    pub result: Result<Outcome, Reject>,
}

impl RequestGroup {
    /// The same group in the current format.
    pub fn upgrade(self) -> crate::RequestGroup {
        crate::RequestGroup {
            index: self.index,
            applied_at: self.applied_at,
            requests: self
                .requests
                .into_iter()
                .map(|r| crate::RequestRecord {
                    request_id: r.request_id,
                    position: r.position,
                    result: r.result.map(Outcome::upgrade).map_err(Reject::upgrade),
                })
                .collect(),
        }
    }
}

impl Outcome {
    /// The same outcome in the current format.
    pub fn upgrade(self) -> crate::Outcome {
        match self {
            Outcome::MeshCreated { mesh } => MeshOutcome::Created { mesh }.into(),
            Outcome::MeshUpdated { mesh } => MeshOutcome::Updated { mesh }.into(),
            Outcome::AnchorAdded { raft_id } => AnchorOutcome::Added { raft_id }.into(),
            Outcome::ApiKeyAdded { key_id } => ApiKeyOutcome::Added { key_id }.into(),
            Outcome::AnchorJoinTokenAdded {
                token_id,
                expires_at,
            } => AnchorOutcome::JoinTokenAdded {
                token_id,
                expires_at,
            }
            .into(),
            Outcome::AnchorJoinTokenRedeemed { raft_id } => {
                AnchorOutcome::JoinTokenRedeemed { raft_id }.into()
            }
            Outcome::AnchorRemoved { raft_id } => AnchorOutcome::Removed { raft_id }.into(),
            Outcome::NodeRegistered {
                node_id,
                state,
                overlay_ip,
            } => NodeOutcome::Registered {
                node_id,
                state,
                overlay_ip,
            }
            .into(),
            Outcome::NodeApproved {
                node_id,
                overlay_ip,
            } => NodeOutcome::Approved {
                node_id,
                overlay_ip,
            }
            .into(),
            Outcome::NodeRejected { node_id } => NodeOutcome::Rejected { node_id }.into(),
            Outcome::NodeRevoked { node_id } => NodeOutcome::Revoked { node_id }.into(),
            Outcome::JoinTokenAdded {
                token_id,
                not_after,
            } => NodeOutcome::JoinTokenAdded {
                token_id,
                not_after,
            }
            .into(),
            Outcome::JoinTokensRotated { epoch, invalidated } => {
                NodeOutcome::JoinTokensRotated { epoch, invalidated }.into()
            }
            Outcome::AclSet { version } => AclOutcome::Set { version }.into(),
        }
    }
}

impl Reject {
    /// The same refusal in the current format. Format 4 did not say which domain refused a
    /// token; join tokens are the nodes domain's unless the refusal can only be an anchor's.
    pub fn upgrade(self) -> crate::Reject {
        match self {
            Reject::MeshExists { mesh } => MeshReject::MeshExists { mesh }.into(),
            Reject::NoSuchMesh { mesh } => MeshReject::NoSuchMesh { mesh }.into(),
            Reject::VersionMismatch {
                mesh,
                expected,
                actual,
            } => MeshReject::VersionMismatch {
                mesh,
                expected,
                actual,
            }
            .into(),
            Reject::ApiKeyExists { key_id } => ApiKeyReject::ApiKeyExists { key_id }.into(),
            Reject::NoSuchAnchor { raft_id } => AnchorReject::NoSuchAnchor { raft_id }.into(),
            Reject::InvalidToken => NodeReject::InvalidToken.into(),
            Reject::TokenExpired {
                token_id,
                expires_at,
            } => NodeReject::TokenExpired {
                token_id,
                expires_at,
            }
            .into(),
            Reject::TokenRotated { token_id } => NodeReject::TokenRotated { token_id }.into(),
            Reject::TokenUsedUp { token_id, uses } => {
                NodeReject::TokenUsedUp { token_id, uses }.into()
            }
            Reject::TooManyAnchorTokens => AnchorReject::TooManyTokens.into(),
            Reject::TooManyTokens { limit } => NodeReject::TooManyTokens { limit }.into(),
            Reject::NoSuchNode { mesh, node } => NodeReject::NoSuchNode { mesh, node }.into(),
            Reject::NodeExists { node, state } => NodeReject::NodeExists { node, state }.into(),
            Reject::InvalidState {
                node,
                state,
                wanted,
            } => NodeReject::InvalidState {
                node,
                state,
                wanted,
            }
            .into(),
            Reject::TooManyNodes { limit } => NodeReject::TooManyNodes { limit }.into(),
            Reject::OverlayIpTaken { ip } => NodeReject::OverlayIpTaken { ip }.into(),
            Reject::BadRegistration(why) => NodeReject::BadRegistration(why).into(),
            Reject::BadCertificate(why) => NodeReject::BadCertificate(why).into(),
            Reject::BadStatement(why) => crate::Reject::BadStatement(why),
            Reject::Invalid(why) => crate::Reject::Invalid(why),
            Reject::AclVersionMismatch {
                mesh,
                expected,
                actual,
            } => AclReject::VersionMismatch {
                mesh,
                expected,
                actual,
            }
            .into(),
            Reject::InvalidPolicy {
                line,
                column,
                message,
            } => AclReject::InvalidPolicy {
                line,
                column,
                message,
            }
            .into(),
            Reject::PolicyTestFailed { line, message } => {
                AclReject::PolicyTestFailed { line, message }.into()
            }
        }
    }
}
