//! The commands of the nodes domain (nodes and their join tokens).

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
