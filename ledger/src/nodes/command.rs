//! The commands of the nodes domain (nodes and their join tokens).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use x0t_crypto::SignedRegistration;
use x0t_types::{MeshId, NodeId, NodeState, Tag, Timestamp, TokenProof, TokenUsage};

use super::{Deps, Nodes};
use crate::Reject;
use crate::domain::{Applied, At};

/// What a client (or a node registering itself) asks of the nodes domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeCommand {
    /// A node asks to join a mesh. `registration` is the node's signed registration
    /// (`x0t_crypto::SignedRegistration` envelope bytes): mesh, identity key, peer id,
    /// hostname, device class, requested tags, signed by the node's own identity key. With a
    /// pre-approved token the proposing anchor also signed a certificate, and the node is
    /// approved at once.
    Register {
        /// The node's signed registration.
        #[serde(with = "x0t_types::bytes")]
        registration: Vec<u8>,
        /// The join token the node presented, if any.
        token: Option<TokenProof>,
        /// The certificate the proposing anchor signed, when the token pre-approves.
        #[serde(with = "x0t_types::bytes::option")]
        certificate: Option<Vec<u8>>,
    },
    /// Approves a pending node with the certificate the proposing anchor signed.
    Approve {
        /// The mesh.
        mesh: MeshId,
        /// The node.
        node_id: NodeId,
        /// `x0t_crypto::SignedNodeCertificate` envelope bytes.
        #[serde(with = "x0t_types::bytes")]
        certificate: Vec<u8>,
    },
    /// Refuses a pending node.
    Reject {
        /// The mesh.
        mesh: MeshId,
        /// The node.
        node_id: NodeId,
        /// Why, for the audit log.
        reason: String,
    },
    /// Withdraws an approved (or pending) node's admission; its certificate is listed as
    /// revoked.
    Revoke {
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
}

impl NodeCommand {
    /// The audit action name.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Register { .. } => "node.register",
            Self::Approve { .. } => "node.approve",
            Self::Reject { .. } => "node.reject",
            Self::Revoke { .. } => "node.revoke",
            Self::AddJoinToken {
                for_node: Some(_), ..
            } => "node.reissue_token",
            Self::AddJoinToken { .. } => "token.create",
            Self::RotateJoinTokens { .. } => "token.rotate",
        }
    }

    /// The audit chain it belongs to: its mesh's (a registration's, as the node signed it).
    pub fn scope(&self) -> Option<MeshId> {
        match self {
            Self::Approve { mesh, .. }
            | Self::Reject { mesh, .. }
            | Self::Revoke { mesh, .. }
            | Self::AddJoinToken { mesh, .. }
            | Self::RotateJoinTokens { mesh } => Some(mesh.clone()),
            Self::Register { registration, .. } => SignedRegistration::decode(registration)
                .ok()
                .map(|r| r.payload().mesh.clone()),
        }
    }
}

impl Nodes {
    /// Applies one of the domain's commands, seeing the other domains through `deps`.
    pub(crate) fn apply(
        &mut self,
        deps: &mut Deps<'_>,
        command: &NodeCommand,
        at: At,
    ) -> Result<Applied, Reject> {
        match command {
            NodeCommand::Register {
                registration,
                token,
                certificate,
            } => self.register(
                deps,
                registration,
                token.as_ref(),
                certificate.as_deref(),
                at.timestamp,
                at.index,
            ),
            NodeCommand::Approve {
                mesh,
                node_id,
                certificate,
            } => self.approve(deps, mesh, node_id, certificate, at.timestamp, at.index),
            NodeCommand::Reject {
                mesh,
                node_id,
                reason,
            } => self.turn_away(
                deps,
                mesh,
                node_id,
                NodeState::Rejected,
                reason,
                (at.timestamp, at.index),
            ),
            NodeCommand::Revoke {
                mesh,
                node_id,
                reason,
            } => self.turn_away(
                deps,
                mesh,
                node_id,
                NodeState::Revoked,
                reason,
                (at.timestamp, at.index),
            ),
            NodeCommand::AddJoinToken {
                mesh,
                token_id,
                secret_hash,
                usage,
                pre_approved,
                tags,
                not_before,
                not_after,
                for_node,
            } => self.add_join_token(
                deps,
                mesh,
                *token_id,
                *secret_hash,
                *usage,
                *pre_approved,
                tags,
                (*not_before, *not_after),
                *for_node,
                at.timestamp,
            ),
            NodeCommand::RotateJoinTokens { mesh } => self.rotate(deps, mesh),
        }
    }
}

/// What a successful command of this domain did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeOutcome {
    /// A node registered (pending, or approved at once by its token).
    Registered {
        /// The node.
        node_id: NodeId,
        /// Its state after registering.
        state: NodeState,
        /// Its overlay address, when approved.
        overlay_ip: Option<Ipv4Addr>,
    },
    /// A node was approved.
    Approved {
        /// The node.
        node_id: NodeId,
        /// Its overlay address.
        overlay_ip: Ipv4Addr,
    },
    /// A node was rejected.
    Rejected {
        /// The node.
        node_id: NodeId,
    },
    /// A node was revoked.
    Revoked {
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
}

/// Why this domain refused a command (a refused command changes nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NodeReject {
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
}
