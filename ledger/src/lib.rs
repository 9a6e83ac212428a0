//! The replicated domain state machine of x0t.
//!
//! [`Ledger::apply`] takes a [`Command`] and the [`ApplyMeta`] the log gives it (index and the
//! leader's timestamp) and either changes the state and returns an [`Outcome`], or changes
//! nothing and returns a [`Reject`].
//!
//! **Architecture Invariant:** this crate does no I/O, never reads a clock, draws no
//! randomness and does not know about Raft or sled. The same commands with the same metadata
//! give the same state on every replica. Persistence happens in `x0t-consensus`, which asks the
//! ledger which records a batch changed ([`Ledger::take_changes`]) and writes exactly those.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use x0t_types::command::MAX_DESCRIPTION_LEN;
use x0t_types::{
    Actor, AnchorRecord, Command, KeyRole, MeshId, MeshSettings, NodeId, NodeState, Plan,
    ProposedCommand, PublicKeyBytes, Timestamp,
};

mod acl;
mod audit;
pub mod migrations;
mod nodes;
mod stored;

pub use acl::{AclRecord, MAX_ACL_VERSIONS, policy_reject};
pub use audit::{AuditRecord, ChainHead, command_bytes, command_scope};
pub use nodes::{
    CERTIFICATE_SKEW_MS, JoinTokenRecord, MAX_JOIN_TOKENS_PER_MESH, MAX_NODES_PER_MESH,
    MAX_PENDING_PER_MESH, MAX_REASON_LEN, NodeCounts, NodeRecord, TOKEN_TTL_RANGE_MS, hex_id,
    overlay_ip_for,
};
pub use stored::{DOMAINS, LoadError, MAX_RECORD_LEN, StoredChange, StoredRecord};

/// Where a command sits in the log, and when the leader proposed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyMeta {
    /// Log index of the entry carrying the command.
    pub index: u64,
    /// The command's position within its entry (an entry carries a batch of commands).
    pub position: u32,
    /// The leader's timestamp from the proposal.
    pub timestamp: Timestamp,
}

/// How long (in the leader's time) the ledger remembers a request's result. A node retries a
/// write for at most a few seconds after a leader change; the margin covers clock skew
/// between successive leaders.
pub const REQUEST_MEMORY_MS: u64 = 30_000;

/// The most request results remembered at once, whatever their age: bounds memory and
/// snapshot size. At this many, the oldest is forgotten first; even at 10,000 writes/s that
/// still covers 6.5 s of retries.
pub const MAX_REMEMBERED_REQUESTS: usize = 65_536;

/// The remembered result of one request, for answering its retries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The request id.
    pub request_id: u128,
    /// Its position within its entry.
    pub position: u32,
    /// What applying it returned, without mesh settings: a retry carries the same command,
    /// whose settings are put back when the result is replayed (keeps records small).
    pub result: Result<Outcome, Reject>,
}

/// The requests of one log entry, remembered (and stored) together: an entry carries a batch
/// of writes, and one record per entry keeps the storage cost per batch, not per write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestGroup {
    /// The log index of the entry.
    pub index: u64,
    /// The leader's time stamped on the entry (ages the group out).
    pub applied_at: Timestamp,
    /// Its requests, in position order.
    pub requests: Vec<RequestRecord>,
}

/// A mesh: a tenant's network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mesh {
    /// Its name.
    pub id: MeshId,
    /// Its current settings.
    pub settings: MeshSettings,
    /// Starts at 1 and goes up by one on every settings change (compare-and-set token).
    pub version: u64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its settings last changed.
    pub updated_at: Timestamp,
    /// Log index of its last change.
    pub updated_index: u64,
    /// Its plan (recorded; enforced in a later release).
    pub plan: Plan,
    /// Join-token rotation epoch: tokens of an older epoch are invalid.
    pub token_epoch: u64,
}

/// An API key: only the hash of its secret is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public identifier.
    pub key_id: String,
    /// blake3-derived hash of the secret.
    pub secret_hash: [u8; 32],
    /// Human label.
    pub label: String,
    /// What it may do.
    pub role: KeyRole,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A recorded anchor-join token: only the hash of its secret is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorJoinToken {
    /// Public identifier.
    pub token_id: String,
    /// blake3-derived hash of the secret.
    pub secret_hash: [u8; 32],
    /// When it was created.
    pub created_at: Timestamp,
    /// The first instant it is no longer valid.
    pub expires_at: Timestamp,
}

/// Most anchor-join tokens outstanding at once (expired ones are forgotten when a new one is
/// added).
pub const MAX_ANCHOR_JOIN_TOKENS: usize = 256;

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
    #[error("{MAX_ANCHOR_JOIN_TOKENS} anchor-join tokens are outstanding; use or let some expire")]
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

/// Identifies one record of the ledger (stored as its domain's key, [`stored`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum RecordKey {
    /// A mesh, by name.
    Mesh(MeshId),
    /// An anchor, by Raft id.
    Anchor(u64),
    /// An API key, by id.
    ApiKey(String),
    /// The remembered request results of one log entry, by its index.
    Requests(u64),
    /// An anchor-join token, by id.
    AnchorJoinToken(String),
    /// A node, by mesh and id.
    Node(MeshId, NodeId),
    /// A join token, by mesh and id.
    JoinToken(MeshId, [u8; 16]),
    /// An audit entry, by chain and position.
    Audit(Option<MeshId>, u64),
    /// The identity key of an anchor, present or past, by node id.
    AnchorKey(NodeId),
    /// One version of a mesh's ACL policy, by mesh and version.
    Acl(MeshId, u64),
}

/// One record of the ledger: the unit the storage layer writes (as its domain's value,
/// [`stored`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Record {
    /// A mesh.
    Mesh(Mesh),
    /// An anchor.
    Anchor(AnchorRecord),
    /// An API key.
    ApiKey(ApiKey),
    /// The remembered request results of one log entry.
    Requests(RequestGroup),
    /// An anchor-join token.
    AnchorJoinToken(AnchorJoinToken),
    /// A node.
    Node(NodeRecord),
    /// A join token.
    JoinToken(JoinTokenRecord),
    /// An audit entry.
    Audit(AuditRecord),
    /// An anchor's identity key.
    AnchorKey(NodeId, PublicKeyBytes),
    /// One version of a mesh's ACL policy.
    Acl(AclRecord),
}

impl Record {
    /// The key this record is stored under.
    pub(crate) fn key(&self) -> RecordKey {
        match self {
            Self::Mesh(mesh) => RecordKey::Mesh(mesh.id.clone()),
            Self::Anchor(anchor) => RecordKey::Anchor(anchor.raft_id),
            Self::ApiKey(key) => RecordKey::ApiKey(key.key_id.clone()),
            Self::Requests(group) => RecordKey::Requests(group.index),
            Self::AnchorJoinToken(token) => RecordKey::AnchorJoinToken(token.token_id.clone()),
            Self::Node(node) => RecordKey::Node(node.mesh.clone(), node.node_id),
            Self::JoinToken(token) => RecordKey::JoinToken(token.mesh.clone(), token.token_id),
            Self::Audit(entry) => RecordKey::Audit(entry.mesh.clone(), entry.seq),
            Self::AnchorKey(id, _) => RecordKey::AnchorKey(*id),
            Self::Acl(acl) => RecordKey::Acl(acl.mesh.clone(), acl.version),
        }
    }
}

/// The whole replicated state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    meshes: BTreeMap<MeshId, Mesh>,
    anchors: BTreeMap<u64, AnchorRecord>,
    api_keys: BTreeMap<String, ApiKey>,
    anchor_join_tokens: BTreeMap<String, AnchorJoinToken>,
    /// Identity keys of every anchor ever recorded (never forgotten: old certificates and
    /// audit entries stay verifiable).
    anchor_keys: BTreeMap<NodeId, PublicKeyBytes>,
    nodes: BTreeMap<(MeshId, NodeId), NodeRecord>,
    join_tokens: BTreeMap<(MeshId, [u8; 16]), JoinTokenRecord>,
    audit: BTreeMap<(Option<MeshId>, u64), AuditRecord>,
    /// Derived from `nodes`: reserved overlay addresses per mesh.
    overlay_ips: BTreeMap<(MeshId, u32), NodeId>,
    /// Each mesh's recent ACL policy versions (none: the default, deny everything).
    acls: BTreeMap<(MeshId, u64), AclRecord>,
    /// Derived from `audit`: the head of each chain.
    audit_heads: BTreeMap<Option<MeshId>, ChainHead>,
    /// Remembered request results by log index, oldest first.
    request_groups: BTreeMap<u64, RequestGroup>,
    /// The index of the group remembering each request.
    request_index: BTreeMap<u128, u64>,
    /// Keys changed since the last [`Ledger::take_changes`]; bookkeeping, not state.
    changed: BTreeSet<RecordKey>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a ledger from its stored records (from storage or a snapshot); refuses
    /// records that do not decode or belong to a domain this build does not know.
    pub fn from_records(
        records: impl IntoIterator<Item = StoredRecord>,
    ) -> Result<Self, LoadError> {
        let records = records
            .into_iter()
            .map(|record| stored::load(&record))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_decoded(records))
    }

    /// Rebuilds a ledger from its records, derived indexes included.
    pub(crate) fn from_decoded(records: impl IntoIterator<Item = Record>) -> Self {
        let mut ledger = Self::new();
        for record in records {
            match record {
                Record::Mesh(mesh) => {
                    ledger.meshes.insert(mesh.id.clone(), mesh);
                }
                Record::Anchor(anchor) => {
                    ledger.anchors.insert(anchor.raft_id, anchor);
                }
                Record::ApiKey(key) => {
                    ledger.api_keys.insert(key.key_id.clone(), key);
                }
                Record::AnchorKey(id, key) => {
                    ledger.anchor_keys.insert(id, key);
                }
                Record::Node(node) => {
                    if node.state == NodeState::Approved
                        && let Some(ip) = node.overlay_ip
                    {
                        ledger
                            .overlay_ips
                            .insert((node.mesh.clone(), u32::from(ip)), node.node_id);
                    }
                    ledger.nodes.insert((node.mesh.clone(), node.node_id), node);
                }
                Record::JoinToken(token) => {
                    ledger
                        .join_tokens
                        .insert((token.mesh.clone(), token.token_id), token);
                }
                Record::Audit(entry) => {
                    let head = ledger.audit_heads.entry(entry.mesh.clone()).or_default();
                    if entry.seq + 1 > head.len {
                        *head = ChainHead {
                            len: entry.seq + 1,
                            hash: entry.hash,
                        };
                    }
                    ledger.audit.insert((entry.mesh.clone(), entry.seq), entry);
                }
                Record::AnchorJoinToken(token) => {
                    ledger
                        .anchor_join_tokens
                        .insert(token.token_id.clone(), token);
                }
                Record::Acl(acl) => {
                    ledger.acls.insert((acl.mesh.clone(), acl.version), acl);
                }
                Record::Requests(group) => {
                    for request in &group.requests {
                        ledger.request_index.insert(request.request_id, group.index);
                    }
                    ledger.request_groups.insert(group.index, group);
                }
            }
        }
        ledger
    }

    /// Every record as stored, domain by domain (for snapshots).
    pub fn records(&self) -> impl Iterator<Item = StoredRecord> + '_ {
        self.decoded_records().map(stored::stored)
    }

    /// Every record, domain by domain.
    pub(crate) fn decoded_records(&self) -> impl Iterator<Item = Record> + '_ {
        self.meshes
            .values()
            .cloned()
            .map(Record::Mesh)
            .chain(self.anchors.values().cloned().map(Record::Anchor))
            .chain(self.api_keys.values().cloned().map(Record::ApiKey))
            .chain(
                self.anchor_keys
                    .iter()
                    .map(|(id, key)| Record::AnchorKey(*id, key.clone())),
            )
            .chain(self.nodes.values().cloned().map(Record::Node))
            .chain(self.join_tokens.values().cloned().map(Record::JoinToken))
            .chain(self.audit.values().cloned().map(Record::Audit))
            .chain(
                self.anchor_join_tokens
                    .values()
                    .cloned()
                    .map(Record::AnchorJoinToken),
            )
            .chain(self.acls.values().cloned().map(Record::Acl))
            .chain(self.request_groups.values().cloned().map(Record::Requests))
    }

    /// The current record under `key`, if any.
    pub(crate) fn record(&self, key: &RecordKey) -> Option<Record> {
        match key {
            RecordKey::Mesh(id) => self.meshes.get(id).cloned().map(Record::Mesh),
            RecordKey::Anchor(id) => self.anchors.get(id).cloned().map(Record::Anchor),
            RecordKey::ApiKey(id) => self.api_keys.get(id).cloned().map(Record::ApiKey),
            RecordKey::AnchorKey(id) => self
                .anchor_keys
                .get(id)
                .map(|key| Record::AnchorKey(*id, key.clone())),
            RecordKey::Node(mesh, id) => self
                .nodes
                .get(&(mesh.clone(), *id))
                .cloned()
                .map(Record::Node),
            RecordKey::JoinToken(mesh, id) => self
                .join_tokens
                .get(&(mesh.clone(), *id))
                .cloned()
                .map(Record::JoinToken),
            RecordKey::Audit(mesh, seq) => self
                .audit
                .get(&(mesh.clone(), *seq))
                .cloned()
                .map(Record::Audit),
            RecordKey::AnchorJoinToken(id) => self
                .anchor_join_tokens
                .get(id)
                .cloned()
                .map(Record::AnchorJoinToken),
            RecordKey::Acl(mesh, version) => self
                .acls
                .get(&(mesh.clone(), *version))
                .cloned()
                .map(Record::Acl),
            RecordKey::Requests(index) => self
                .request_groups
                .get(index)
                .cloned()
                .map(Record::Requests),
        }
    }

    /// The records changed since the last call, as stored, each with its new value (`None`:
    /// deleted).
    pub fn take_changes(&mut self) -> Vec<StoredChange> {
        self.take_record_changes()
            .into_iter()
            .map(|(key, record)| {
                let (domain, key) = stored::stored_key(&key);
                StoredChange {
                    domain,
                    key,
                    value: record.map(stored::stored_value),
                }
            })
            .collect()
    }

    /// The records changed since the last call, each with its new value (`None`: deleted).
    pub(crate) fn take_record_changes(&mut self) -> Vec<(RecordKey, Option<Record>)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .map(|key| {
                let record = self.record(&key);
                (key, record)
            })
            .collect()
    }

    /// How many records changed since the last [`Ledger::take_changes`].
    pub fn changes_pending(&self) -> usize {
        self.changed.len()
    }

    /// A mesh by name.
    pub fn mesh(&self, id: &MeshId) -> Option<&Mesh> {
        self.meshes.get(id)
    }

    /// All meshes, by name.
    pub fn meshes(&self) -> impl Iterator<Item = &Mesh> {
        self.meshes.values()
    }

    /// All recorded anchors, by Raft id.
    pub fn anchors(&self) -> impl Iterator<Item = &AnchorRecord> {
        self.anchors.values()
    }

    /// An anchor-join token by id (expired or not).
    pub fn anchor_join_token(&self, token_id: &str) -> Option<&AnchorJoinToken> {
        self.anchor_join_tokens.get(token_id)
    }

    /// An API key by id.
    pub fn api_key(&self, key_id: &str) -> Option<&ApiKey> {
        self.api_keys.get(key_id)
    }

    /// Every API key, by id.
    pub fn api_keys(&self) -> impl Iterator<Item = &ApiKey> {
        self.api_keys.values()
    }

    /// Every recorded anchor-join token (expired ones not yet forgotten included), by id.
    pub fn anchor_join_tokens(&self) -> impl Iterator<Item = &AnchorJoinToken> {
        self.anchor_join_tokens.values()
    }

    /// Applies one proposed command. On `Err`, the state is exactly as before (except that
    /// the result of a command with a request id is remembered). A command whose request id
    /// was already applied is not applied again: its first result is returned. Every applied
    /// command appends one entry to its audit chain.
    pub fn apply(
        &mut self,
        proposed: &ProposedCommand,
        meta: ApplyMeta,
    ) -> Result<Outcome, Reject> {
        let command = &proposed.command;
        let Some(request_id) = proposed.request_id else {
            return self.apply_audited(proposed, meta);
        };
        if let Some(remembered) = self.remembered(request_id) {
            return replayed(remembered, command);
        }
        let result = self.apply_audited(proposed, meta);
        let group = self
            .request_groups
            .entry(meta.index)
            .or_insert_with(|| RequestGroup {
                index: meta.index,
                applied_at: meta.timestamp,
                requests: Vec::new(),
            });
        group.requests.push(RequestRecord {
            request_id,
            position: meta.position,
            result: without_settings(&result),
        });
        self.request_index.insert(request_id, meta.index);
        self.changed.insert(RecordKey::Requests(meta.index));
        self.forget_old_requests(meta.timestamp);
        result
    }

    /// The remembered (settings-less) result of `request_id`, if any.
    fn remembered(&self, request_id: u128) -> Option<&Result<Outcome, Reject>> {
        let index = self.request_index.get(&request_id)?;
        self.request_groups
            .get(index)?
            .requests
            .iter()
            .find(|r| r.request_id == request_id)
            .map(|r| &r.result)
    }

    /// How many request results are remembered.
    pub fn remembered_requests(&self) -> usize {
        self.request_index.len()
    }

    /// Forgets request groups older than [`REQUEST_MEMORY_MS`] and, beyond
    /// [`MAX_REMEMBERED_REQUESTS`], the oldest ones. Deterministic: it uses only the log's
    /// times and indices.
    fn forget_old_requests(&mut self, now: Timestamp) {
        while let Some((&index, oldest)) = self.request_groups.first_key_value() {
            let expired = oldest.applied_at.0.saturating_add(REQUEST_MEMORY_MS) < now.0;
            if !expired && self.request_index.len() <= MAX_REMEMBERED_REQUESTS {
                break;
            }
            if let Some((_, group)) = self.request_groups.pop_first() {
                for request in &group.requests {
                    self.request_index.remove(&request.request_id);
                }
            }
            self.changed.insert(RecordKey::Requests(index));
        }
    }

    /// Checks who asked, applies, and records the change in the audit chain.
    fn apply_audited(
        &mut self,
        proposed: &ProposedCommand,
        meta: ApplyMeta,
    ) -> Result<Outcome, Reject> {
        let command = &proposed.command;
        let (actor, evidence) = self.check_statement(command, &proposed.statement)?;
        let (outcome, scope, subject, details) = self.apply_command(command, meta, &actor)?;
        self.append_audit(
            scope,
            actor,
            command.action(),
            subject,
            details,
            evidence,
            meta.timestamp,
            meta.index,
        );
        Ok(outcome)
    }

    /// Applies a command; answers its outcome and, for the audit entry, its chain, subject
    /// and a human summary.
    fn apply_command(
        &mut self,
        command: &Command,
        meta: ApplyMeta,
        actor: &Actor,
    ) -> Result<(Outcome, Option<MeshId>, String, String), Reject> {
        let scoped = |outcome: Outcome, mesh: &MeshId, subject: String, details: String| {
            (outcome, Some(mesh.clone()), subject, details)
        };
        let cluster =
            |outcome: Outcome, subject: String, details: String| (outcome, None, subject, details);
        let ok = Ok::<_, Reject>;
        match command {
            Command::CreateMesh {
                mesh,
                settings,
                plan,
            } => {
                validate_settings(settings)?;
                if self.meshes.contains_key(mesh) {
                    return Err(Reject::MeshExists { mesh: mesh.clone() });
                }
                let record = Mesh {
                    id: mesh.clone(),
                    settings: settings.clone(),
                    version: 1,
                    created_at: meta.timestamp,
                    updated_at: meta.timestamp,
                    updated_index: meta.index,
                    plan: *plan,
                    token_epoch: 0,
                };
                self.meshes.insert(mesh.clone(), record.clone());
                self.changed.insert(RecordKey::Mesh(mesh.clone()));
                ok(scoped(
                    Outcome::MeshCreated { mesh: record },
                    mesh,
                    mesh.to_string(),
                    format!("plan {plan}"),
                ))
            }
            Command::UpdateMeshSettings {
                mesh,
                expected_version,
                settings,
            } => {
                validate_settings(settings)?;
                let record = self
                    .meshes
                    .get_mut(mesh)
                    .ok_or_else(|| Reject::NoSuchMesh { mesh: mesh.clone() })?;
                if let Some(expected) = *expected_version
                    && expected != record.version
                {
                    return Err(Reject::VersionMismatch {
                        mesh: mesh.clone(),
                        expected,
                        actual: record.version,
                    });
                }
                record.settings = settings.clone();
                record.version += 1;
                record.updated_at = meta.timestamp;
                record.updated_index = meta.index;
                let updated = record.clone();
                self.changed.insert(RecordKey::Mesh(mesh.clone()));
                let details = format!("settings now at version {}", updated.version);
                ok(scoped(
                    Outcome::MeshUpdated { mesh: updated },
                    mesh,
                    mesh.to_string(),
                    details,
                ))
            }
            Command::AddAnchor { anchor } => {
                validate_anchor(anchor)?;
                self.record_anchor(anchor);
                ok(cluster(
                    Outcome::AnchorAdded {
                        raft_id: anchor.raft_id,
                    },
                    anchor.node_id.to_string(),
                    anchor_details(anchor),
                ))
            }
            Command::AddApiKey {
                key_id,
                secret_hash,
                label,
                role,
            } => {
                if key_id.is_empty() || key_id.len() > 64 || label.len() > 256 {
                    return Err(Reject::Invalid(
                        "admin key id must be 1 to 64 bytes and its label at most 256".into(),
                    ));
                }
                if self.api_keys.contains_key(key_id) {
                    return Err(Reject::ApiKeyExists {
                        key_id: key_id.clone(),
                    });
                }
                self.api_keys.insert(
                    key_id.clone(),
                    ApiKey {
                        key_id: key_id.clone(),
                        secret_hash: *secret_hash,
                        label: label.clone(),
                        role: *role,
                        created_at: meta.timestamp,
                    },
                );
                self.changed.insert(RecordKey::ApiKey(key_id.clone()));
                ok(cluster(
                    Outcome::ApiKeyAdded {
                        key_id: key_id.clone(),
                    },
                    key_id.clone(),
                    format!("role {}, label {label:?}", role.name()),
                ))
            }
            Command::AddAnchorJoinToken {
                token_id,
                secret_hash,
                expires_at,
            } => {
                if token_id.is_empty() || token_id.len() > 64 {
                    return Err(Reject::Invalid(
                        "anchor-join token id must be 1 to 64 bytes".into(),
                    ));
                }
                if *expires_at <= meta.timestamp {
                    return Err(Reject::Invalid(
                        "anchor-join token would be expired already".into(),
                    ));
                }
                let expired: Vec<String> = self
                    .anchor_join_tokens
                    .values()
                    .filter(|t| t.expires_at <= meta.timestamp)
                    .map(|t| t.token_id.clone())
                    .collect();
                let live = self.anchor_join_tokens.len() - expired.len();
                if self.anchor_join_tokens.contains_key(token_id) {
                    return Err(Reject::Invalid("anchor-join token id in use".into()));
                }
                if live >= MAX_ANCHOR_JOIN_TOKENS {
                    return Err(Reject::TooManyAnchorTokens);
                }
                for id in expired {
                    self.anchor_join_tokens.remove(&id);
                    self.changed.insert(RecordKey::AnchorJoinToken(id));
                }
                self.anchor_join_tokens.insert(
                    token_id.clone(),
                    AnchorJoinToken {
                        token_id: token_id.clone(),
                        secret_hash: *secret_hash,
                        created_at: meta.timestamp,
                        expires_at: *expires_at,
                    },
                );
                self.changed
                    .insert(RecordKey::AnchorJoinToken(token_id.clone()));
                ok(cluster(
                    Outcome::AnchorJoinTokenAdded {
                        token_id: token_id.clone(),
                        expires_at: *expires_at,
                    },
                    token_id.clone(),
                    format!("expires at {expires_at}"),
                ))
            }
            Command::RedeemAnchorJoinToken {
                token_id,
                secret_hash,
                anchor,
            } => {
                let token = self
                    .anchor_join_tokens
                    .get(token_id)
                    .filter(|t| constant_time_eq(&t.secret_hash, secret_hash))
                    .ok_or(Reject::InvalidToken)?;
                if token.expires_at <= meta.timestamp {
                    return Err(Reject::TokenExpired {
                        token_id: token_id.clone(),
                        expires_at: token.expires_at,
                    });
                }
                validate_anchor(anchor)?;
                self.anchor_join_tokens.remove(token_id);
                self.changed
                    .insert(RecordKey::AnchorJoinToken(token_id.clone()));
                self.record_anchor(anchor);
                ok(cluster(
                    Outcome::AnchorJoinTokenRedeemed {
                        raft_id: anchor.raft_id,
                    },
                    token_id.clone(),
                    anchor_details(anchor),
                ))
            }
            Command::RemoveAnchor { raft_id } => {
                if self.anchors.remove(raft_id).is_none() {
                    return Err(Reject::NoSuchAnchor { raft_id: *raft_id });
                }
                self.changed.insert(RecordKey::Anchor(*raft_id));
                ok(cluster(
                    Outcome::AnchorRemoved { raft_id: *raft_id },
                    format!("raft {raft_id}"),
                    String::new(),
                ))
            }
            Command::RegisterNode {
                registration,
                token,
                certificate,
            } => {
                let (outcome, mesh, node_id) = self.register_node(
                    registration,
                    token.as_ref(),
                    certificate.as_deref(),
                    meta.timestamp,
                    meta.index,
                )?;
                let details = self.node_details(&mesh, &node_id);
                ok(scoped(outcome, &mesh, node_id.to_string(), details))
            }
            Command::ApproveNode {
                mesh,
                node_id,
                certificate,
            } => {
                let outcome =
                    self.approve_node(mesh, node_id, certificate, meta.timestamp, meta.index)?;
                let details = self.node_details(mesh, node_id);
                ok(scoped(outcome, mesh, node_id.to_string(), details))
            }
            Command::RejectNode {
                mesh,
                node_id,
                reason,
            }
            | Command::RevokeNode {
                mesh,
                node_id,
                reason,
            } => {
                let to = if matches!(command, Command::RevokeNode { .. }) {
                    NodeState::Revoked
                } else {
                    NodeState::Rejected
                };
                let outcome =
                    self.turn_away(mesh, node_id, to, reason, (meta.timestamp, meta.index))?;
                ok(scoped(
                    outcome,
                    mesh,
                    node_id.to_string(),
                    format!("reason {reason:?}"),
                ))
            }
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
            } => {
                let outcome = self.add_join_token(
                    mesh,
                    *token_id,
                    *secret_hash,
                    *usage,
                    *pre_approved,
                    tags,
                    (*not_before, *not_after),
                    *for_node,
                    meta.timestamp,
                )?;
                let tags: Vec<&str> = tags.iter().map(|t| t.as_str()).collect();
                let details = format!(
                    "{usage:?}, pre-approved {pre_approved}, tags [{}], valid {not_before} to {not_after}{}",
                    tags.join(","),
                    for_node.map_or_else(String::new, |n| format!(", replaces node {n}"))
                );
                ok(scoped(outcome, mesh, hex_id(token_id), details))
            }
            Command::RotateJoinTokens { mesh } => {
                let outcome = self.rotate_join_tokens(mesh)?;
                let details = match &outcome {
                    Outcome::JoinTokensRotated { epoch, invalidated } => {
                        format!("epoch {epoch}, {invalidated} token(s) invalidated")
                    }
                    _ => String::new(),
                };
                ok(scoped(outcome, mesh, mesh.to_string(), details))
            }
            Command::SetAcl {
                mesh,
                document,
                expected_version,
            } => {
                let outcome = self.set_acl(
                    mesh,
                    document,
                    *expected_version,
                    actor,
                    (meta.timestamp, meta.index),
                )?;
                let details = self.acl(mesh).map_or_else(String::new, |acl| {
                    format!(
                        "version {}, {} rule(s), {} test(s), digest {}",
                        acl.version,
                        acl.rules,
                        acl.tests,
                        acl.digest
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<String>()
                    )
                });
                ok(scoped(outcome, mesh, mesh.to_string(), details))
            }
        }
    }

    /// Records an anchor and (for good) its identity key.
    fn record_anchor(&mut self, anchor: &AnchorRecord) {
        self.anchors.insert(anchor.raft_id, anchor.clone());
        self.changed.insert(RecordKey::Anchor(anchor.raft_id));
        if self.anchor_keys.get(&anchor.node_id) != Some(&anchor.identity_key) {
            self.anchor_keys
                .insert(anchor.node_id, anchor.identity_key.clone());
            self.changed.insert(RecordKey::AnchorKey(anchor.node_id));
        }
    }

    fn node_details(&self, mesh: &MeshId, node_id: &NodeId) -> String {
        self.node(mesh, node_id).map_or_else(String::new, |node| {
            let tags: Vec<&str> = node.tags.iter().map(|t| t.as_str()).collect();
            format!(
                "{} {} {}, state {}, overlay {}, tags [{}]",
                node.device_class,
                node.hostname,
                node.node_id.short(),
                node.state,
                node.overlay_ip
                    .map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
                tags.join(",")
            )
        })
    }
}

fn anchor_details(anchor: &AnchorRecord) -> String {
    format!(
        "raft {} peer {} api {}",
        anchor.raft_id, anchor.peer_id, anchor.api_url
    )
}

fn validate_anchor(anchor: &AnchorRecord) -> Result<(), Reject> {
    let key = nodes::verifying_key(&anchor.identity_key)?;
    if key.node_id() != anchor.node_id {
        return Err(Reject::Invalid(
            "the anchor's node id is not the hash of its identity key".into(),
        ));
    }
    if anchor.peer_id.is_empty() || anchor.peer_id.len() > 128 {
        return Err(Reject::Invalid(
            "anchor peer id must be 1 to 128 bytes".into(),
        ));
    }
    if anchor.addrs.len() > 16 || anchor.addrs.iter().any(|a| a.len() > 256) {
        return Err(Reject::Invalid(
            "at most 16 anchor addresses of 256 bytes".into(),
        ));
    }
    if anchor.api_url.len() > 256 {
        return Err(Reject::Invalid(
            "an anchor API URL has at most 256 bytes".into(),
        ));
    }
    Ok(())
}

/// Compares two hashes in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A result as remembered: mesh outcomes without their settings (the command has them).
fn without_settings(result: &Result<Outcome, Reject>) -> Result<Outcome, Reject> {
    let bare = |mesh: &Mesh| Mesh {
        settings: MeshSettings::default(),
        ..mesh.clone()
    };
    match result {
        Ok(Outcome::MeshCreated { mesh }) => Ok(Outcome::MeshCreated { mesh: bare(mesh) }),
        Ok(Outcome::MeshUpdated { mesh }) => Ok(Outcome::MeshUpdated { mesh: bare(mesh) }),
        other => other.clone(),
    }
}

/// A remembered result answered to a retry of `command`: the settings the command set are
/// put back, giving exactly what the first attempt returned.
fn replayed(remembered: &Result<Outcome, Reject>, command: &Command) -> Result<Outcome, Reject> {
    let with = |mesh: &Mesh, settings: &MeshSettings| Mesh {
        settings: settings.clone(),
        ..mesh.clone()
    };
    match (remembered, command) {
        (Ok(Outcome::MeshCreated { mesh }), Command::CreateMesh { settings, .. }) => {
            Ok(Outcome::MeshCreated {
                mesh: with(mesh, settings),
            })
        }
        (Ok(Outcome::MeshUpdated { mesh }), Command::UpdateMeshSettings { settings, .. }) => {
            Ok(Outcome::MeshUpdated {
                mesh: with(mesh, settings),
            })
        }
        (other, _) => other.clone(),
    }
}

fn validate_settings(settings: &MeshSettings) -> Result<(), Reject> {
    if settings.description.len() > MAX_DESCRIPTION_LEN {
        return Err(Reject::Invalid(format!(
            "description of {} bytes exceeds {MAX_DESCRIPTION_LEN}",
            settings.description.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::sync::LazyLock;
    use x0t_crypto::{AuditStatement, SigAlgorithm, SignedAuditStatement, SigningKey};
    use x0t_types::Actor;

    /// The anchor every test ledger is bootstrapped with.
    pub(crate) static ANCHOR: LazyLock<SigningKey> =
        LazyLock::new(|| SigningKey::generate(SigAlgorithm::MlDsa65).unwrap());

    /// Test metadata: the real [`super::ApplyMeta`] plus the request id the proposal carries.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct ApplyMeta {
        pub(crate) index: u64,
        pub(crate) position: u32,
        pub(crate) timestamp: Timestamp,
        pub(crate) request_id: Option<u128>,
    }

    pub(crate) fn meta(index: u64) -> ApplyMeta {
        ApplyMeta {
            index,
            position: 0,
            timestamp: Timestamp(1_000 * index),
            request_id: None,
        }
    }

    thread_local! {
        static STATEMENTS: RefCell<HashMap<Vec<u8>, Vec<u8>>> = RefCell::new(HashMap::new());
    }

    /// The statement [`ANCHOR`] signs for `command` as an admin key (cached: signing is the
    /// slow part and a statement does not depend on the request id).
    pub(crate) fn statement(command: &Command) -> Vec<u8> {
        let bytes = command_bytes(command);
        STATEMENTS.with(|cache| {
            cache
                .borrow_mut()
                .entry(bytes.clone())
                .or_insert_with(|| {
                    SignedAuditStatement::sign(
                        AuditStatement {
                            mesh: command_scope(command),
                            actor: Actor::ApiKey {
                                key_id: "test".into(),
                            },
                            action: command.action().to_owned(),
                            command_digest: x0t_crypto::command_digest(&bytes),
                            requested_at: Timestamp(0),
                            issuer: ANCHOR.node_id(),
                        },
                        &ANCHOR,
                    )
                    .unwrap()
                    .encode()
                })
                .clone()
        })
    }

    pub(crate) trait ApplyExt {
        fn ap(&mut self, command: &Command, meta: ApplyMeta) -> Result<Outcome, Reject>;
    }

    impl ApplyExt for Ledger {
        fn ap(&mut self, command: &Command, m: ApplyMeta) -> Result<Outcome, Reject> {
            let proposed = ProposedCommand {
                command: command.clone(),
                request_id: m.request_id,
                statement: statement(command),
            };
            self.apply(
                &proposed,
                super::ApplyMeta {
                    index: m.index,
                    position: m.position,
                    timestamp: m.timestamp,
                },
            )
        }
    }

    /// An anchor record with [`ANCHOR`]'s key.
    pub(crate) fn anchor(raft_id: u64) -> AnchorRecord {
        AnchorRecord {
            raft_id,
            node_id: ANCHOR.node_id(),
            identity_key: PublicKeyBytes {
                algorithm: ANCHOR.algorithm().code(),
                bytes: ANCHOR.verifying_key().as_bytes().to_vec(),
            },
            peer_id: "12D3KooW".into(),
            addrs: vec!["/ip4/127.0.0.1/udp/1/quic-v1".into()],
            api_url: "http://127.0.0.1:2".into(),
        }
    }

    /// A ledger that knows [`ANCHOR`] (raft id 1), as after bootstrap.
    pub(crate) fn booted() -> Ledger {
        let mut ledger = Ledger::new();
        ledger
            .ap(&Command::AddAnchor { anchor: anchor(1) }, meta(0))
            .unwrap();
        ledger.take_changes();
        ledger
    }

    fn mesh(name: &str) -> MeshId {
        MeshId::new(name).unwrap()
    }

    fn settings(text: &str) -> MeshSettings {
        MeshSettings {
            description: text.to_owned(),
        }
    }

    #[test]
    fn create_then_compare_and_set() {
        let mut ledger = booted();
        let create = Command::CreateMesh {
            mesh: mesh("m"),
            settings: settings("a"),
            plan: Plan::Starter,
        };
        assert!(matches!(
            ledger.ap(&create, meta(1)),
            Ok(Outcome::MeshCreated { .. })
        ));
        assert_eq!(
            ledger.ap(&create, meta(2)),
            Err(Reject::MeshExists { mesh: mesh("m") })
        );
        let update = |expected, text: &str| Command::UpdateMeshSettings {
            mesh: mesh("m"),
            expected_version: expected,
            settings: settings(text),
        };
        let Ok(Outcome::MeshUpdated { mesh: updated }) = ledger.ap(&update(Some(1), "b"), meta(3))
        else {
            panic!("update failed")
        };
        assert_eq!((updated.version, updated.updated_at), (2, Timestamp(3_000)));
        assert_eq!(
            ledger.ap(&update(Some(1), "c"), meta(4)),
            Err(Reject::VersionMismatch {
                mesh: mesh("m"),
                expected: 1,
                actual: 2
            })
        );
        assert_eq!(ledger.mesh(&mesh("m")).unwrap().settings, settings("b"));
        assert!(ledger.ap(&update(None, "d"), meta(5)).is_ok());
        assert_eq!(ledger.mesh(&mesh("m")).unwrap().version, 3);
        let missing = Command::UpdateMeshSettings {
            mesh: mesh("nope"),
            expected_version: None,
            settings: settings(""),
        };
        assert!(matches!(
            ledger.ap(&missing, meta(6)),
            Err(Reject::NoSuchMesh { .. })
        ));
        let huge = update(None, &"x".repeat(MAX_DESCRIPTION_LEN + 1));
        assert!(matches!(ledger.ap(&huge, meta(7)), Err(Reject::Invalid(_))));
    }

    #[test]
    fn retried_requests_apply_once_and_are_forgotten_oldest_first() {
        let mut ledger = booted();
        let with_id = |index, id| ApplyMeta {
            request_id: Some(id),
            ..meta(index)
        };
        let create = Command::CreateMesh {
            mesh: mesh("m"),
            settings: settings(""),
            plan: Plan::Starter,
        };
        let first = ledger.ap(&create, with_id(1, 7)).unwrap();
        // The retry gets the first result, not MeshExists, and changes nothing.
        assert_eq!(ledger.ap(&create, with_id(2, 7)).unwrap(), first);
        let bump = Command::UpdateMeshSettings {
            mesh: mesh("m"),
            expected_version: None,
            settings: settings("x"),
        };
        ledger.ap(&bump, with_id(3, 8)).unwrap();
        ledger.ap(&bump, with_id(4, 8)).unwrap();
        assert_eq!(ledger.mesh(&mesh("m")).unwrap().version, 2, "applied once");
        // A rejected request's rejection is remembered too.
        let cas = Command::UpdateMeshSettings {
            mesh: mesh("m"),
            expected_version: Some(1),
            settings: settings("y"),
        };
        let rejected = ledger.ap(&cas, with_id(5, 9)).unwrap_err();
        assert_eq!(ledger.ap(&cas, with_id(6, 9)).unwrap_err(), rejected);
        // Several requests in one entry share one record.
        let at = |position, id| ApplyMeta {
            position,
            ..with_id(7, id)
        };
        ledger.take_changes();
        let tenth = ledger.ap(&bump, at(0, 10)).unwrap();
        ledger.ap(&bump, at(1, 11)).unwrap();
        let changed: Vec<RecordKey> = ledger
            .take_record_changes()
            .into_iter()
            .map(|c| c.0)
            .filter(|key| !matches!(key, RecordKey::Audit(..)))
            .collect();
        assert_eq!(
            changed,
            [RecordKey::Mesh(mesh("m")), RecordKey::Requests(7)],
            "two requests of one entry: one record"
        );
        assert_eq!(ledger.ap(&bump, at(2, 10)).unwrap(), tenth);
        assert_eq!(ledger.mesh(&mesh("m")).unwrap().version, 4);
        // Results are remembered for REQUEST_MEMORY_MS of log time, then forgotten.
        let later = |index: u64, id| ApplyMeta {
            timestamp: Timestamp(7_000 + REQUEST_MEMORY_MS),
            ..with_id(index, id)
        };
        ledger.ap(&bump, later(8, 12)).unwrap();
        assert!(
            ledger.request_index.contains_key(&10),
            "exactly at the limit: kept"
        );
        assert!(
            !ledger.request_index.contains_key(&7),
            "applied at 1 s: forgotten"
        );
        let much_later = |index: u64, id| ApplyMeta {
            timestamp: Timestamp(7_001 + REQUEST_MEMORY_MS),
            ..with_id(index, id)
        };
        ledger.ap(&bump, much_later(9, 13)).unwrap();
        assert!(!ledger.request_index.contains_key(&10) && !ledger.request_index.contains_key(&11));
        assert!(ledger.request_index.contains_key(&12) && ledger.request_index.contains_key(&13));
        // Bounded memory: beyond the cap the oldest ids go first, whatever their age. (A
        // refused command is remembered too, and adds no audit entry to hold in memory.)
        let refused = Command::UpdateMeshSettings {
            mesh: mesh("absent"),
            expected_version: None,
            settings: settings("x"),
        };
        for i in 0..MAX_REMEMBERED_REQUESTS as u64 {
            let _ = ledger.ap(&refused, much_later(10 + i, 1_000 + u128::from(i)));
        }
        assert_eq!(ledger.remembered_requests(), MAX_REMEMBERED_REQUESTS);
        assert!(!ledger.request_index.contains_key(&12));
        ledger.take_changes();
        assert!(
            Ledger::from_records(ledger.records()).unwrap() == ledger,
            "records rebuild the ledger"
        );
    }

    #[test]
    fn anchor_join_tokens_work_once_until_they_expire() {
        let mut ledger = booted();
        let add = |id: &str, expires_at| Command::AddAnchorJoinToken {
            token_id: id.into(),
            secret_hash: [1; 32],
            expires_at: Timestamp(expires_at),
        };
        let redeem = |id: &str, hash, raft_id| Command::RedeemAnchorJoinToken {
            token_id: id.into(),
            secret_hash: hash,
            anchor: anchor(raft_id),
        };
        // meta(n) is at n seconds.
        assert!(matches!(
            ledger.ap(&add("t1", 10_000), meta(1)),
            Ok(Outcome::AnchorJoinTokenAdded { .. })
        ));
        assert!(ledger.ap(&add("t1", 10_000), meta(2)).is_err(), "id in use");
        assert!(
            ledger.ap(&add("old", 500), meta(2)).is_err(),
            "expired at birth"
        );
        ledger.take_changes();
        // A wrong secret changes nothing.
        let before = ledger.clone();
        assert_eq!(
            ledger.ap(&redeem("t1", [2; 32], 9), meta(3)),
            Err(Reject::InvalidToken)
        );
        assert_eq!(ledger, before);
        let mut huge = redeem("t1", [1; 32], 9);
        if let Command::RedeemAnchorJoinToken { anchor, .. } = &mut huge {
            anchor.api_url = "h".repeat(257);
        }
        assert!(matches!(ledger.ap(&huge, meta(4)), Err(Reject::Invalid(_))));
        assert!(
            ledger.anchor_join_token("t1").is_some(),
            "a refused redeem spends nothing"
        );
        assert_eq!(
            ledger.ap(&redeem("t1", [1; 32], 9), meta(4)),
            Ok(Outcome::AnchorJoinTokenRedeemed { raft_id: 9 })
        );
        assert_eq!(ledger.anchors().count(), 2, "the booted anchor and raft 9");
        assert!(ledger.anchor_join_token("t1").is_none(), "spent");
        assert_eq!(
            ledger.ap(&redeem("t1", [1; 32], 10), meta(5)),
            Err(Reject::InvalidToken),
            "single use"
        );
        // Expiry uses the proposal's time.
        ledger.ap(&add("t2", 20_000), meta(6)).unwrap();
        assert!(matches!(
            ledger.ap(&redeem("t2", [1; 32], 11), meta(20)),
            Err(Reject::TokenExpired { .. })
        ));
        assert!(
            ledger.anchor_join_token("t2").is_some(),
            "a refusal changes nothing"
        );
        // Adding a token forgets expired ones; the number outstanding is bounded.
        ledger.ap(&add("t3", 100_000), meta(21)).unwrap();
        assert!(ledger.anchor_join_token("t2").is_none());
        for i in 1..MAX_ANCHOR_JOIN_TOKENS {
            ledger
                .ap(&add(&format!("n{i}"), 100_000), meta(22))
                .unwrap();
        }
        assert_eq!(
            ledger.ap(&add("one-more", 100_000), meta(23)),
            Err(Reject::TooManyAnchorTokens)
        );
        ledger.take_changes();
        assert!(Ledger::from_records(ledger.records()).unwrap() == ledger);
    }

    #[test]
    fn anchors_and_changes() {
        let mut ledger = booted();
        let anchor = anchor(7);
        ledger
            .ap(
                &Command::AddAnchor {
                    anchor: anchor.clone(),
                },
                meta(1),
            )
            .unwrap();
        let changes = ledger.take_record_changes();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(
            changes[0],
            (RecordKey::Anchor(7), Some(Record::Anchor(anchor)))
        );
        assert!(matches!(changes[1], (RecordKey::Audit(None, 1), Some(_))));
        assert!(ledger.take_changes().is_empty());
        ledger
            .ap(&Command::RemoveAnchor { raft_id: 7 }, meta(2))
            .unwrap();
        let changes = ledger.take_record_changes();
        assert_eq!(changes[0], (RecordKey::Anchor(7), None));
        assert_eq!(changes.len(), 2, "the removal and its audit entry");
        assert!(
            ledger
                .ap(&Command::RemoveAnchor { raft_id: 7 }, meta(3))
                .is_err()
        );
        assert!(ledger.take_changes().is_empty(), "a reject changes nothing");
    }

    /// Node identities the generated commands register, approve, turn away and replace.
    static NODE_KEYS: LazyLock<Vec<SigningKey>> = LazyLock::new(|| {
        (0..3)
            .map(|_| SigningKey::generate(SigAlgorithm::MlDsa65).unwrap())
            .collect()
    });

    fn tag(name: &str) -> x0t_types::Tag {
        x0t_types::Tag::new(name).unwrap()
    }

    /// A registration of node `k` into `mesh`, signed at 10 s (inside the window of every
    /// generated proposal's time).
    fn registration(k: usize, mesh_name: &str) -> Vec<u8> {
        let key = &NODE_KEYS[k];
        x0t_crypto::Registration {
            mesh: mesh(mesh_name),
            node_id: key.node_id(),
            identity_key: key.verifying_key().clone(),
            peer_id: vec![k as u8 + 1; 38],
            hostname: format!("robot-{k}"),
            device_class: x0t_types::DeviceClass::Robot,
            requested_tags: vec![tag("robot")],
            requested_at: Timestamp(10_000),
        }
        .sign(key)
        .unwrap()
        .encode()
    }

    /// A certificate [`ANCHOR`] signs for node `k` in `mesh` at its preferred overlay address.
    fn certificate(
        k: usize,
        mesh_name: &str,
        tags: Vec<x0t_types::Tag>,
        pq: x0t_types::PqProfile,
    ) -> Vec<u8> {
        let key = &NODE_KEYS[k];
        let cert = x0t_crypto::NodeCertificate {
            mesh: mesh(mesh_name),
            node_id: key.node_id(),
            identity_key: key.verifying_key().clone(),
            peer_id: vec![k as u8 + 1; 38],
            overlay_ip: overlay_ip_for(&key.node_id(), |_| false).unwrap(),
            tags,
            device_class: x0t_types::DeviceClass::Robot,
            pq_profile: pq,
            not_before: Timestamp(0),
            not_after: Timestamp(90 * Timestamp::DAY),
            ledger_index: 0,
            issuer: ANCHOR.node_id(),
        };
        x0t_crypto::SignedNodeCertificate::sign(cert, &ANCHOR)
            .unwrap()
            .encode()
    }

    /// Signed inputs are made once per value (signing is the slow part).
    fn cached(key: String, make: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
        thread_local! {
            static SIGNED: RefCell<HashMap<String, Vec<u8>>> = RefCell::new(HashMap::new());
        }
        SIGNED.with(|c| c.borrow_mut().entry(key).or_insert_with(make).clone())
    }

    fn node_id(k: usize) -> NodeId {
        NODE_KEYS[k].node_id()
    }

    /// Every command the ledger knows, over small pools of meshes, nodes, tokens and
    /// documents, so that sequences collide: a token used up, a node approved twice, a
    /// policy that changes which certificates are valid.
    fn command() -> impl Strategy<Value = Command> {
        use x0t_types::{PqProfile, TokenProof, TokenUsage};
        let name = prop_oneof![Just("a"), Just("b"), Just("c")];
        let node = 0usize..3;
        let profile = prop_oneof![Just(PqProfile::Standard), Just(PqProfile::Constrained)];
        let documents = prop_oneof![
            Just("version = 1\n".to_owned()),
            Just("version = 1\n[pq]\nrobot = \"constrained\"\n".to_owned()),
            Just("version = 1\n[[rule]]\naction = \"allow\"\n".to_owned()),
        ];
        prop_oneof![
            3 => (name.clone(), "[a-z]{0,8}").prop_map(|(m, text)| Command::CreateMesh {
                mesh: mesh(m),
                settings: settings(&text),
                plan: Plan::Pro,
            }),
            1 => (name.clone(), proptest::option::of(0u64..5), "[a-z]{0,8}").prop_map(
                |(m, expected_version, text)| Command::UpdateMeshSettings {
                    mesh: mesh(m),
                    expected_version,
                    settings: settings(&text)
                }
            ),
            1 => (2u64..4).prop_map(|raft_id| Command::AddAnchor {
                anchor: anchor(raft_id)
            }),
            1 => (0u64..3).prop_map(|raft_id| Command::RemoveAnchor { raft_id }),
            1 => (0u8..3, prop_oneof![Just(KeyRole::Admin), Just(KeyRole::Viewer)]).prop_map(
                |(k, role)| Command::AddApiKey {
                    key_id: format!("k{k}"),
                    secret_hash: [k; 32],
                    label: String::new(),
                    role,
                }
            ),
            1 => (0u8..3, 1u64..60).prop_map(|(t, expires)| Command::AddAnchorJoinToken {
                token_id: format!("t{t}"),
                secret_hash: [1; 32],
                expires_at: Timestamp(expires * 1_000),
            }),
            1 => (0u8..3, any::<bool>(), 4u64..6).prop_map(|(t, right, raft_id)| {
                Command::RedeemAnchorJoinToken {
                    token_id: format!("t{t}"),
                    secret_hash: if right { [1; 32] } else { [2; 32] },
                    anchor: anchor(raft_id),
                }
            }),
            4 => (
                node.clone(),
                prop_oneof![Just("a"), Just("b")],
                proptest::option::of((0u8..3, any::<bool>())),
                proptest::option::of(profile.clone()),
            )
                .prop_map(|(k, m, token, cert)| Command::RegisterNode {
                    registration: cached(format!("reg {k} {m}"), || registration(k, m)),
                    token: token.map(|(t, right)| TokenProof {
                        token_id: [t; 16],
                        secret_hash: if right { [t; 32] } else { [9; 32] },
                    }),
                    // Pre-approved tokens grant `line-3`; re-issued ones the old node's tags.
                    certificate: cert.map(|pq| {
                        cached(format!("cert {k} {m} line-3 {pq:?}"), || {
                            certificate(k, m, vec![tag("line-3")], pq)
                        })
                    }),
                }),
            3 => (node.clone(), prop_oneof![Just("a"), Just("b")], profile).prop_map(|(k, m, pq)| {
                Command::ApproveNode {
                    mesh: mesh(m),
                    node_id: node_id(k),
                    certificate: cached(format!("cert {k} {m} robot {pq:?}"), || {
                        certificate(k, m, vec![tag("robot")], pq)
                    }),
                }
            }),
            3 => (node.clone(), name.clone(), any::<bool>()).prop_map(|(k, m, revoke)| {
                let (mesh, node_id, reason) = (mesh(m), node_id(k), "r".to_owned());
                if revoke {
                    Command::RevokeNode { mesh, node_id, reason }
                } else {
                    Command::RejectNode { mesh, node_id, reason }
                }
            }),
            4 => (
                name.clone(),
                0u8..3,
                prop_oneof![
                    Just(TokenUsage::SingleUse),
                    Just(TokenUsage::Reusable { max_uses: None }),
                    Just(TokenUsage::Reusable { max_uses: Some(2) }),
                ],
                any::<bool>(),
                proptest::option::of(node),
                prop_oneof![Just(Timestamp::HOUR), Just(1_000)],
            )
                .prop_map(|(m, t, usage, pre_approved, for_node, ttl)| Command::AddJoinToken {
                    mesh: mesh(m),
                    token_id: [t; 16],
                    secret_hash: [t; 32],
                    usage,
                    pre_approved,
                    tags: vec![tag("line-3")],
                    not_before: Timestamp(0),
                    not_after: Timestamp(ttl),
                    for_node: for_node.map(node_id),
                }),
            1 => name.clone().prop_map(|m| Command::RotateJoinTokens { mesh: mesh(m) }),
            1 => (name, documents, proptest::option::of(0u64..3)).prop_map(
                |(m, document, expected_version)| Command::SetAcl {
                    mesh: mesh(m),
                    document,
                    expected_version,
                }
            ),
        ]
    }

    /// The generator reaches every command: a new command must be added to it.
    #[test]
    fn the_generator_covers_every_command() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let mut seen = BTreeSet::new();
        for _ in 0..2_000 {
            let command = command().new_tree(&mut runner).unwrap().current();
            seen.insert(command.action());
        }
        let every = [
            "mesh.create",
            "mesh.update_settings",
            "anchor.add",
            "anchor.remove",
            "api_key.add",
            "anchor_join_token.add",
            "anchor_join_token.redeem",
            "node.register",
            "node.approve",
            "node.reject",
            "node.revoke",
            "node.reissue_token",
            "token.create",
            "token.rotate",
            "acl.set",
        ];
        assert_eq!(seen, every.into_iter().collect::<BTreeSet<_>>());
    }

    /// Generated sequences are not all refusals: every command succeeds somewhere in them, so
    /// the property below exercises every command's changes, not only its checks.
    #[test]
    fn generated_sequences_apply_every_command() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let mut applied = BTreeSet::new();
        let sequences = proptest::collection::vec(command(), 0..40);
        for _ in 0..200 {
            let mut ledger = booted();
            let commands = sequences.new_tree(&mut runner).unwrap().current();
            for (i, command) in commands.iter().enumerate() {
                if ledger.ap(command, meta(i as u64 + 1)).is_ok() {
                    applied.insert(command.action());
                }
            }
        }
        let missing: Vec<&str> = [
            "mesh.create",
            "mesh.update_settings",
            "anchor.add",
            "anchor.remove",
            "api_key.add",
            "anchor_join_token.add",
            "anchor_join_token.redeem",
            "node.register",
            "node.approve",
            "node.reject",
            "node.revoke",
            "node.reissue_token",
            "token.create",
            "token.rotate",
            "acl.set",
        ]
        .into_iter()
        .filter(|a| !applied.contains(a))
        .collect();
        assert!(missing.is_empty(), "never applied: {missing:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
        /// Same log, same state; persisting only the changed records and reloading gives the
        /// same state as the live ledger, derived indexes (overlay addresses, chain heads,
        /// remembered requests) included; a rejected command changes nothing.
        #[test]
        fn deterministic_and_persistable(commands in proptest::collection::vec(command(), 0..40)) {
            let mut a = booted();
            let mut b = booted();
            let mut persisted: BTreeMap<(String, Vec<u8>), StoredRecord> =
                a.records().map(|r| ((r.domain.clone(), r.key.clone()), r)).collect();
            for (i, command) in commands.iter().enumerate() {
                let before = a.clone();
                let m = meta(i as u64 + 1);
                let result = a.ap(command, m);
                prop_assert_eq!(&result, &b.ap(command, m));
                if result.is_err() {
                    prop_assert_eq!(&a, &before);
                }
                for change in a.take_changes() {
                    let key = (change.domain.to_owned(), change.key);
                    match change.value {
                        Some(value) => {
                            let record = StoredRecord { domain: key.0.clone(), key: key.1.clone(), value };
                            persisted.insert(key, record);
                        }
                        None => { persisted.remove(&key); }
                    }
                }
                b.take_changes();
            }
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(&Ledger::from_records(persisted.into_values()).unwrap(), &a);
            prop_assert_eq!(&Ledger::from_records(a.records()).unwrap(), &a);
        }
    }
}
