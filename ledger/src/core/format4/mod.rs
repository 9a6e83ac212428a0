//! Frozen readers of what storage format 4 wrote with one flat enum of every domain: the
//! commands of its Raft log, and the outcomes and refusals of its remembered request results.
//! Format 5 gives each domain its own command, outcome and refusal types; opening a format-4
//! database rewrites each log entry through [`Proposal::upgrade`], a remembered result of
//! format 4 is upgraded when it is loaded ([`RequestGroup::upgrade`]), and audit statements
//! signed over format-4 command bytes are checked against [`legacy_command_bytes`]. Never
//! edit these types: they are what format 4 wrote.

#![allow(missing_docs)]

use serde::{Deserialize, Serialize};
use x0t_types::{
    AnchorRecord, KeyRole, MeshId, MeshSettings, NodeId, Plan, Tag, Timestamp, TokenProof,
    TokenUsage,
};

use crate::command::{
    AclCommand, AnchorCommand, ApiKeyCommand, Command as Current, MeshCommand, NodeCommand,
};

mod results;
#[cfg(test)]
mod tests;

pub use results::{Outcome, Reject, RequestGroup, RequestRecord};

/// What a client asked the ledger to do, in storage format 4: one flat enum of every command.
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
        #[serde(with = "x0t_types::bytes")]
        registration: Vec<u8>,
        /// The join token the node presented, if any.
        token: Option<TokenProof>,
        /// The certificate the proposing anchor signed, when the token pre-approves.
        #[serde(with = "x0t_types::bytes::option")]
        certificate: Option<Vec<u8>>,
    },
    /// Approves a pending node with the certificate the proposing anchor signed.
    ApproveNode {
        /// The mesh.
        mesh: MeshId,
        /// The node.
        node_id: NodeId,
        /// `x0t_crypto::SignedNodeCertificate` envelope bytes.
        #[serde(with = "x0t_types::bytes")]
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
    #[serde(with = "x0t_types::bytes")]
    pub statement: Vec<u8>,
}

impl Proposal {
    /// The same entry in the current format.
    pub fn upgrade(self) -> crate::Proposal {
        crate::Proposal {
            proposed_at: self.proposed_at,
            commands: self
                .commands
                .into_iter()
                .map(|c| crate::ProposedCommand {
                    command: c.command.upgrade(),
                    request_id: c.request_id,
                    statement: c.statement,
                })
                .collect(),
        }
    }
}

impl Command {
    /// The same command in the current format.
    pub fn upgrade(self) -> Current {
        match self {
            Command::CreateMesh {
                mesh,
                settings,
                plan,
            } => MeshCommand::Create {
                mesh,
                settings,
                plan,
            }
            .into(),
            Command::UpdateMeshSettings {
                mesh,
                expected_version,
                settings,
            } => MeshCommand::UpdateSettings {
                mesh,
                expected_version,
                settings,
            }
            .into(),
            Command::AddAnchor { anchor } => AnchorCommand::Add { anchor }.into(),
            Command::AddApiKey {
                key_id,
                secret_hash,
                label,
                role,
            } => ApiKeyCommand::Add {
                key_id,
                secret_hash,
                label,
                role,
            }
            .into(),
            Command::AddAnchorJoinToken {
                token_id,
                secret_hash,
                expires_at,
            } => AnchorCommand::AddJoinToken {
                token_id,
                secret_hash,
                expires_at,
            }
            .into(),
            Command::RedeemAnchorJoinToken {
                token_id,
                secret_hash,
                anchor,
            } => AnchorCommand::RedeemJoinToken {
                token_id,
                secret_hash,
                anchor,
            }
            .into(),
            Command::RemoveAnchor { raft_id } => AnchorCommand::Remove { raft_id }.into(),
            Command::RegisterNode {
                registration,
                token,
                certificate,
            } => NodeCommand::Register {
                registration,
                token,
                certificate,
            }
            .into(),
            Command::ApproveNode {
                mesh,
                node_id,
                certificate,
            } => NodeCommand::Approve {
                mesh,
                node_id,
                certificate,
            }
            .into(),
            Command::RejectNode {
                mesh,
                node_id,
                reason,
            } => NodeCommand::Reject {
                mesh,
                node_id,
                reason,
            }
            .into(),
            Command::RevokeNode {
                mesh,
                node_id,
                reason,
            } => NodeCommand::Revoke {
                mesh,
                node_id,
                reason,
            }
            .into(),
            Command::AddJoinToken {
                mesh,
                token_id,
                secret_hash,
                usage,
                pre_approved,
                tags,
                not_before,
                not_after,
                for_node,
            } => NodeCommand::AddJoinToken {
                mesh,
                token_id,
                secret_hash,
                usage,
                pre_approved,
                tags,
                not_before,
                not_after,
                for_node,
            }
            .into(),
            Command::RotateJoinTokens { mesh } => NodeCommand::RotateJoinTokens { mesh }.into(),
            Command::SetAcl {
                mesh,
                document,
                expected_version,
            } => AclCommand::Set {
                mesh,
                document,
                expected_version,
            }
            .into(),
        }
    }

    /// A current command as format 4 wrote it. Every command of format 5's first release has
    /// a format-4 form; commands of domains added later have none.
    pub fn downgrade(command: &Current) -> Option<Self> {
        Some(match command.clone() {
            Current::Meshes(MeshCommand::Create {
                mesh,
                settings,
                plan,
            }) => Command::CreateMesh {
                mesh,
                settings,
                plan,
            },
            Current::Meshes(MeshCommand::UpdateSettings {
                mesh,
                expected_version,
                settings,
            }) => Command::UpdateMeshSettings {
                mesh,
                expected_version,
                settings,
            },
            Current::Anchors(AnchorCommand::Add { anchor }) => Command::AddAnchor { anchor },
            Current::Anchors(AnchorCommand::AddJoinToken {
                token_id,
                secret_hash,
                expires_at,
            }) => Command::AddAnchorJoinToken {
                token_id,
                secret_hash,
                expires_at,
            },
            Current::Anchors(AnchorCommand::RedeemJoinToken {
                token_id,
                secret_hash,
                anchor,
            }) => Command::RedeemAnchorJoinToken {
                token_id,
                secret_hash,
                anchor,
            },
            Current::Anchors(AnchorCommand::Remove { raft_id }) => {
                Command::RemoveAnchor { raft_id }
            }
            Current::ApiKeys(ApiKeyCommand::Add {
                key_id,
                secret_hash,
                label,
                role,
            }) => Command::AddApiKey {
                key_id,
                secret_hash,
                label,
                role,
            },
            Current::Nodes(NodeCommand::Register {
                registration,
                token,
                certificate,
            }) => Command::RegisterNode {
                registration,
                token,
                certificate,
            },
            Current::Nodes(NodeCommand::Approve {
                mesh,
                node_id,
                certificate,
            }) => Command::ApproveNode {
                mesh,
                node_id,
                certificate,
            },
            Current::Nodes(NodeCommand::Reject {
                mesh,
                node_id,
                reason,
            }) => Command::RejectNode {
                mesh,
                node_id,
                reason,
            },
            Current::Nodes(NodeCommand::Revoke {
                mesh,
                node_id,
                reason,
            }) => Command::RevokeNode {
                mesh,
                node_id,
                reason,
            },
            Current::Nodes(NodeCommand::AddJoinToken {
                mesh,
                token_id,
                secret_hash,
                usage,
                pre_approved,
                tags,
                not_before,
                not_after,
                for_node,
            }) => Command::AddJoinToken {
                mesh,
                token_id,
                secret_hash,
                usage,
                pre_approved,
                tags,
                not_before,
                not_after,
                for_node,
            },
            Current::Nodes(NodeCommand::RotateJoinTokens { mesh }) => {
                Command::RotateJoinTokens { mesh }
            }
            Current::Acl(AclCommand::Set {
                mesh,
                document,
                expected_version,
            }) => Command::SetAcl {
                mesh,
                document,
                expected_version,
            },
            // Domains added after format 4 have no format-4 form.
            #[allow(unreachable_patterns)]
            _ => return None,
        })
    }
}

/// The bytes format 4 encoded `command` as (what its audit statements' digests cover), if it
/// has a format-4 form.
pub fn legacy_command_bytes(command: &Current) -> Option<Vec<u8>> {
    let old = Command::downgrade(command)?;
    bincode::serde::encode_to_vec(&old, bincode::config::standard()).ok()
}
