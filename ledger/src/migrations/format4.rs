//! Frozen readers of what storage format 4 wrote with one flat enum of every domain: the
//! commands of its Raft log, and the outcomes and refusals of its remembered request results.
//! Format 5 gives each domain its own command, outcome and refusal types; opening a format-4
//! database rewrites each log entry through [`Proposal::upgrade`], a remembered result of
//! format 4 is upgraded when it is loaded ([`RequestGroup::upgrade`]), and audit statements
//! signed over format-4 command bytes are checked against [`legacy_command_bytes`]. Never
//! edit these types: they are what format 4 wrote.

#![allow(missing_docs)]

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use x0t_types::{
    AnchorRecord, KeyRole, MeshId, MeshSettings, NodeId, NodeState, Plan, Tag, Timestamp,
    TokenProof, TokenUsage,
};

use crate::Mesh;
use crate::command::{
    AclCommand, AclOutcome, AclReject, AnchorCommand, AnchorOutcome, AnchorReject, ApiKeyCommand,
    ApiKeyOutcome, ApiKeyReject, Command as Current, MeshCommand, MeshOutcome, MeshReject,
    NodeCommand, NodeOutcome, NodeReject,
};

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use x0t_crypto::{AuditStatement, SignedAuditStatement, command_digest, command_digest_v2};
    use x0t_types::{Actor, Timestamp};

    use super::{Command, legacy_command_bytes};
    use crate::testkit::{ANCHOR, booted, mesh, meta, settings};
    use crate::{Command as Current, MeshCommand, ProposedCommand, Reject, command_bytes};

    fn create() -> Current {
        MeshCommand::Create {
            mesh: mesh("factory"),
            settings: settings("line 3"),
            plan: x0t_types::Plan::Pro,
        }
        .into()
    }

    fn signed(command: &Current, digest: [u8; 32]) -> ProposedCommand {
        let statement = SignedAuditStatement::sign(
            AuditStatement {
                mesh: command.scope(),
                actor: Actor::ApiKey {
                    key_id: "test".into(),
                },
                action: command.action().to_owned(),
                command_digest: digest,
                requested_at: Timestamp(0),
                issuer: ANCHOR.node_id(),
            },
            &ANCHOR,
        )
        .unwrap()
        .encode();
        ProposedCommand {
            command: command.clone(),
            request_id: None,
            statement,
        }
    }

    fn apply(proposed: &ProposedCommand) -> Result<(), Reject> {
        let m = meta(1);
        booted()
            .apply(
                proposed,
                crate::ApplyMeta {
                    index: m.index,
                    position: m.position,
                    timestamp: m.timestamp,
                },
            )
            .map(drop)
    }

    /// The flat enum's variant order is format 4's: its first and last commands keep their
    /// indices (bincode writes the index first), and format 5 writes the domain first.
    #[test]
    fn format4_and_format5_encodings_are_pinned() {
        let old = legacy_command_bytes(&create()).unwrap();
        assert_eq!(old[0], 0, "CreateMesh was format 4's first command");
        let acl: Current = crate::AclCommand::Set {
            mesh: mesh("factory"),
            document: String::new(),
            expected_version: None,
        }
        .into();
        assert_eq!(
            legacy_command_bytes(&acl).unwrap()[0],
            13,
            "SetAcl was its 14th and last"
        );
        assert_eq!(&command_bytes(&create())[..2], &[0, 0], "meshes, create");
        assert_eq!(command_bytes(&acl)[0], 4, "the ACL domain is the 5th");
        assert!(matches!(
            Command::downgrade(&create()),
            Some(Command::CreateMesh { .. })
        ));
    }

    /// A statement signed over a command's format-4 bytes (an entry written before the
    /// migration) still verifies; one over the current bytes verifies; but neither digest is
    /// taken for the other encoding, whatever the bytes.
    #[test]
    fn statements_over_either_encoding_verify_and_never_cross() {
        let command = create();
        let legacy = legacy_command_bytes(&command).unwrap();
        let current = command_bytes(&command);
        assert!(apply(&signed(&command, command_digest(&legacy))).is_ok());
        assert!(apply(&signed(&command, command_digest_v2(&current))).is_ok());
        for wrong in [command_digest(&current), command_digest_v2(&legacy)] {
            let refused = apply(&signed(&command, wrong)).unwrap_err();
            assert!(matches!(refused, Reject::BadStatement(_)), "{refused:?}");
        }
    }
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
