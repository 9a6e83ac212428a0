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

use serde::{Deserialize, Serialize};
use x0t_types::command::MAX_DESCRIPTION_LEN;
use x0t_types::{AnchorRecord, Command, MeshId, MeshSettings, Timestamp};

/// Where a command sits in the log, and when the leader proposed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyMeta {
    /// Log index of the entry carrying the command.
    pub index: u64,
    /// The command's position within its entry (an entry carries a batch of commands).
    pub position: u32,
    /// The leader's timestamp from the proposal.
    pub timestamp: Timestamp,
    /// The client's request id, for applying a retried write once.
    pub request_id: Option<u128>,
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
}

/// An admin API key: only the hash of its secret is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminKey {
    /// Public identifier.
    pub key_id: String,
    /// blake3-derived hash of the secret.
    pub secret_hash: [u8; 32],
    /// Human label.
    pub label: String,
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
    /// An admin key was recorded.
    AdminKeyAdded {
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
    /// An admin key with that id exists.
    #[error("admin key {key_id} already exists")]
    AdminKeyExists {
        /// The id.
        key_id: String,
    },
    /// No anchor with that Raft id.
    #[error("no anchor with raft id {raft_id}")]
    NoSuchAnchor {
        /// The id asked for.
        raft_id: u64,
    },
    /// The anchor-join token is unknown, already used, or its secret is wrong.
    #[error("unknown, used or wrong anchor-join token")]
    InvalidToken,
    /// The anchor-join token is right but expired.
    #[error("anchor-join token {token_id} expired at {expires_at:?}")]
    TokenExpired {
        /// Its id.
        token_id: String,
        /// When it expired.
        expires_at: Timestamp,
    },
    /// Too many anchor-join tokens are outstanding.
    #[error("{MAX_ANCHOR_JOIN_TOKENS} anchor-join tokens are outstanding; use or let some expire")]
    TooManyTokens,
    /// The command is malformed.
    #[error("invalid command: {0}")]
    Invalid(String),
}

/// Identifies one persisted record of the ledger.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RecordKey {
    /// A mesh, by name.
    Mesh(MeshId),
    /// An anchor, by Raft id.
    Anchor(u64),
    /// An admin key, by id.
    AdminKey(String),
    /// The remembered request results of one log entry, by its index.
    Requests(u64),
    /// An anchor-join token, by id.
    AnchorJoinToken(String),
}

/// One persisted record: the unit the storage layer writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// A mesh.
    Mesh(Mesh),
    /// An anchor.
    Anchor(AnchorRecord),
    /// An admin key.
    AdminKey(AdminKey),
    /// The remembered request results of one log entry.
    Requests(RequestGroup),
    /// An anchor-join token.
    AnchorJoinToken(AnchorJoinToken),
}

impl Record {
    /// The key this record is stored under.
    pub fn key(&self) -> RecordKey {
        match self {
            Self::Mesh(mesh) => RecordKey::Mesh(mesh.id.clone()),
            Self::Anchor(anchor) => RecordKey::Anchor(anchor.raft_id),
            Self::AdminKey(key) => RecordKey::AdminKey(key.key_id.clone()),
            Self::Requests(group) => RecordKey::Requests(group.index),
            Self::AnchorJoinToken(token) => RecordKey::AnchorJoinToken(token.token_id.clone()),
        }
    }
}

/// The whole replicated state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    meshes: BTreeMap<MeshId, Mesh>,
    anchors: BTreeMap<u64, AnchorRecord>,
    admin_keys: BTreeMap<String, AdminKey>,
    anchor_join_tokens: BTreeMap<String, AnchorJoinToken>,
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

    /// Rebuilds a ledger from its records (from storage or a snapshot).
    pub fn from_records(records: impl IntoIterator<Item = Record>) -> Self {
        let mut ledger = Self::new();
        for record in records {
            match record {
                Record::Mesh(mesh) => {
                    ledger.meshes.insert(mesh.id.clone(), mesh);
                }
                Record::Anchor(anchor) => {
                    ledger.anchors.insert(anchor.raft_id, anchor);
                }
                Record::AdminKey(key) => {
                    ledger.admin_keys.insert(key.key_id.clone(), key);
                }
                Record::AnchorJoinToken(token) => {
                    ledger
                        .anchor_join_tokens
                        .insert(token.token_id.clone(), token);
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

    /// Every record, in key order (for snapshots).
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.meshes
            .values()
            .cloned()
            .map(Record::Mesh)
            .chain(self.anchors.values().cloned().map(Record::Anchor))
            .chain(self.admin_keys.values().cloned().map(Record::AdminKey))
            .chain(
                self.anchor_join_tokens
                    .values()
                    .cloned()
                    .map(Record::AnchorJoinToken),
            )
            .chain(self.request_groups.values().cloned().map(Record::Requests))
    }

    /// The current record under `key`, if any.
    pub fn record(&self, key: &RecordKey) -> Option<Record> {
        match key {
            RecordKey::Mesh(id) => self.meshes.get(id).cloned().map(Record::Mesh),
            RecordKey::Anchor(id) => self.anchors.get(id).cloned().map(Record::Anchor),
            RecordKey::AdminKey(id) => self.admin_keys.get(id).cloned().map(Record::AdminKey),
            RecordKey::AnchorJoinToken(id) => self
                .anchor_join_tokens
                .get(id)
                .cloned()
                .map(Record::AnchorJoinToken),
            RecordKey::Requests(index) => self
                .request_groups
                .get(index)
                .cloned()
                .map(Record::Requests),
        }
    }

    /// The records changed since the last call, each with its new value (`None`: deleted).
    pub fn take_changes(&mut self) -> Vec<(RecordKey, Option<Record>)> {
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

    /// An admin key by id.
    pub fn admin_key(&self, key_id: &str) -> Option<&AdminKey> {
        self.admin_keys.get(key_id)
    }

    /// Applies one command. On `Err`, the state is exactly as before (except that the result
    /// of a command with a request id is remembered). A command whose request id was already
    /// applied is not applied again: its first result is returned.
    pub fn apply(&mut self, command: &Command, meta: ApplyMeta) -> Result<Outcome, Reject> {
        let Some(request_id) = meta.request_id else {
            return self.apply_command(command, meta);
        };
        if let Some(remembered) = self.remembered(request_id) {
            return replayed(remembered, command);
        }
        let result = self.apply_command(command, meta);
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

    fn apply_command(&mut self, command: &Command, meta: ApplyMeta) -> Result<Outcome, Reject> {
        match command {
            Command::CreateMesh { mesh, settings } => {
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
                };
                self.meshes.insert(mesh.clone(), record.clone());
                self.changed.insert(RecordKey::Mesh(mesh.clone()));
                Ok(Outcome::MeshCreated { mesh: record })
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
                Ok(Outcome::MeshUpdated { mesh: updated })
            }
            Command::AddAnchor { anchor } => {
                validate_anchor(anchor)?;
                self.anchors.insert(anchor.raft_id, anchor.clone());
                self.changed.insert(RecordKey::Anchor(anchor.raft_id));
                Ok(Outcome::AnchorAdded {
                    raft_id: anchor.raft_id,
                })
            }
            Command::AddAdminKey {
                key_id,
                secret_hash,
                label,
            } => {
                if key_id.is_empty() || key_id.len() > 64 || label.len() > 256 {
                    return Err(Reject::Invalid(
                        "admin key id must be 1 to 64 bytes and its label at most 256".into(),
                    ));
                }
                if self.admin_keys.contains_key(key_id) {
                    return Err(Reject::AdminKeyExists {
                        key_id: key_id.clone(),
                    });
                }
                self.admin_keys.insert(
                    key_id.clone(),
                    AdminKey {
                        key_id: key_id.clone(),
                        secret_hash: *secret_hash,
                        label: label.clone(),
                        created_at: meta.timestamp,
                    },
                );
                self.changed.insert(RecordKey::AdminKey(key_id.clone()));
                Ok(Outcome::AdminKeyAdded {
                    key_id: key_id.clone(),
                })
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
                    return Err(Reject::TooManyTokens);
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
                Ok(Outcome::AnchorJoinTokenAdded {
                    token_id: token_id.clone(),
                    expires_at: *expires_at,
                })
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
                self.anchors.insert(anchor.raft_id, anchor.clone());
                self.changed.insert(RecordKey::Anchor(anchor.raft_id));
                Ok(Outcome::AnchorJoinTokenRedeemed {
                    raft_id: anchor.raft_id,
                })
            }
            Command::RemoveAnchor { raft_id } => {
                if self.anchors.remove(raft_id).is_none() {
                    return Err(Reject::NoSuchAnchor { raft_id: *raft_id });
                }
                self.changed.insert(RecordKey::Anchor(*raft_id));
                Ok(Outcome::AnchorRemoved { raft_id: *raft_id })
            }
        }
    }
}

fn validate_anchor(anchor: &AnchorRecord) -> Result<(), Reject> {
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
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A result as remembered: mesh outcomes without their settings (the command has them).
fn without_settings(result: &Result<Outcome, Reject>) -> Result<Outcome, Reject> {
    let bare = |mesh: &Mesh| Mesh {
        id: mesh.id.clone(),
        settings: MeshSettings::default(),
        version: mesh.version,
        created_at: mesh.created_at,
        updated_at: mesh.updated_at,
        updated_index: mesh.updated_index,
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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use x0t_types::NodeId;

    fn meta(index: u64) -> ApplyMeta {
        ApplyMeta {
            index,
            position: 0,
            timestamp: Timestamp(1_000 * index),
            request_id: None,
        }
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
        let mut ledger = Ledger::new();
        let create = Command::CreateMesh {
            mesh: mesh("m"),
            settings: settings("a"),
        };
        assert!(matches!(
            ledger.apply(&create, meta(1)),
            Ok(Outcome::MeshCreated { .. })
        ));
        assert_eq!(
            ledger.apply(&create, meta(2)),
            Err(Reject::MeshExists { mesh: mesh("m") })
        );
        let update = |expected, text: &str| Command::UpdateMeshSettings {
            mesh: mesh("m"),
            expected_version: expected,
            settings: settings(text),
        };
        let Ok(Outcome::MeshUpdated { mesh: updated }) =
            ledger.apply(&update(Some(1), "b"), meta(3))
        else {
            panic!("update failed")
        };
        assert_eq!((updated.version, updated.updated_at), (2, Timestamp(3_000)));
        assert_eq!(
            ledger.apply(&update(Some(1), "c"), meta(4)),
            Err(Reject::VersionMismatch {
                mesh: mesh("m"),
                expected: 1,
                actual: 2
            })
        );
        assert_eq!(ledger.mesh(&mesh("m")).unwrap().settings, settings("b"));
        assert!(ledger.apply(&update(None, "d"), meta(5)).is_ok());
        assert_eq!(ledger.mesh(&mesh("m")).unwrap().version, 3);
        let missing = Command::UpdateMeshSettings {
            mesh: mesh("nope"),
            expected_version: None,
            settings: settings(""),
        };
        assert!(matches!(
            ledger.apply(&missing, meta(6)),
            Err(Reject::NoSuchMesh { .. })
        ));
        let huge = update(None, &"x".repeat(MAX_DESCRIPTION_LEN + 1));
        assert!(matches!(
            ledger.apply(&huge, meta(7)),
            Err(Reject::Invalid(_))
        ));
    }

    #[test]
    fn retried_requests_apply_once_and_are_forgotten_oldest_first() {
        let mut ledger = Ledger::new();
        let with_id = |index, id| ApplyMeta {
            request_id: Some(id),
            ..meta(index)
        };
        let create = Command::CreateMesh {
            mesh: mesh("m"),
            settings: settings(""),
        };
        let first = ledger.apply(&create, with_id(1, 7)).unwrap();
        // The retry gets the first result, not MeshExists, and changes nothing.
        assert_eq!(ledger.apply(&create, with_id(2, 7)).unwrap(), first);
        let bump = Command::UpdateMeshSettings {
            mesh: mesh("m"),
            expected_version: None,
            settings: settings("x"),
        };
        ledger.apply(&bump, with_id(3, 8)).unwrap();
        ledger.apply(&bump, with_id(4, 8)).unwrap();
        assert_eq!(ledger.mesh(&mesh("m")).unwrap().version, 2, "applied once");
        // A rejected request's rejection is remembered too.
        let cas = Command::UpdateMeshSettings {
            mesh: mesh("m"),
            expected_version: Some(1),
            settings: settings("y"),
        };
        let rejected = ledger.apply(&cas, with_id(5, 9)).unwrap_err();
        assert_eq!(ledger.apply(&cas, with_id(6, 9)).unwrap_err(), rejected);
        // Several requests in one entry share one record.
        let at = |position, id| ApplyMeta {
            position,
            ..with_id(7, id)
        };
        ledger.take_changes();
        let tenth = ledger.apply(&bump, at(0, 10)).unwrap();
        ledger.apply(&bump, at(1, 11)).unwrap();
        let changed: Vec<RecordKey> = ledger.take_changes().into_iter().map(|c| c.0).collect();
        assert_eq!(
            changed,
            [RecordKey::Mesh(mesh("m")), RecordKey::Requests(7)],
            "two requests of one entry: one record"
        );
        assert_eq!(ledger.apply(&bump, at(2, 10)).unwrap(), tenth);
        assert_eq!(ledger.mesh(&mesh("m")).unwrap().version, 4);
        // Results are remembered for REQUEST_MEMORY_MS of log time, then forgotten.
        let later = |index: u64, id| ApplyMeta {
            timestamp: Timestamp(7_000 + REQUEST_MEMORY_MS),
            ..with_id(index, id)
        };
        ledger.apply(&bump, later(8, 12)).unwrap();
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
        ledger.apply(&bump, much_later(9, 13)).unwrap();
        assert!(!ledger.request_index.contains_key(&10) && !ledger.request_index.contains_key(&11));
        assert!(ledger.request_index.contains_key(&12) && ledger.request_index.contains_key(&13));
        // Bounded memory: beyond the cap the oldest ids go first, whatever their age.
        for i in 0..MAX_REMEMBERED_REQUESTS as u64 {
            let _ = ledger.apply(&bump, much_later(10 + i, 1_000 + u128::from(i)));
        }
        assert_eq!(ledger.remembered_requests(), MAX_REMEMBERED_REQUESTS);
        assert!(!ledger.request_index.contains_key(&12));
        ledger.take_changes();
        assert!(
            Ledger::from_records(ledger.records()) == ledger,
            "records rebuild the ledger"
        );
    }

    #[test]
    fn anchor_join_tokens_work_once_until_they_expire() {
        let mut ledger = Ledger::new();
        let anchor = |raft_id| AnchorRecord {
            raft_id,
            node_id: NodeId::from_bytes([raft_id as u8; 32]),
            peer_id: "12D3KooW".into(),
            addrs: vec!["/ip4/127.0.0.1/udp/1/quic-v1".into()],
            api_url: "http://127.0.0.1:2".into(),
        };
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
            ledger.apply(&add("t1", 10_000), meta(1)),
            Ok(Outcome::AnchorJoinTokenAdded { .. })
        ));
        assert!(
            ledger.apply(&add("t1", 10_000), meta(2)).is_err(),
            "id in use"
        );
        assert!(
            ledger.apply(&add("old", 500), meta(2)).is_err(),
            "expired at birth"
        );
        ledger.take_changes();
        // A wrong secret changes nothing.
        let before = ledger.clone();
        assert_eq!(
            ledger.apply(&redeem("t1", [2; 32], 9), meta(3)),
            Err(Reject::InvalidToken)
        );
        assert_eq!(ledger, before);
        let mut huge = redeem("t1", [1; 32], 9);
        if let Command::RedeemAnchorJoinToken { anchor, .. } = &mut huge {
            anchor.api_url = "h".repeat(257);
        }
        assert!(matches!(
            ledger.apply(&huge, meta(4)),
            Err(Reject::Invalid(_))
        ));
        assert!(
            ledger.anchor_join_token("t1").is_some(),
            "a refused redeem spends nothing"
        );
        assert_eq!(
            ledger.apply(&redeem("t1", [1; 32], 9), meta(4)),
            Ok(Outcome::AnchorJoinTokenRedeemed { raft_id: 9 })
        );
        assert_eq!(ledger.anchors().count(), 1);
        assert!(ledger.anchor_join_token("t1").is_none(), "spent");
        assert_eq!(
            ledger.apply(&redeem("t1", [1; 32], 10), meta(5)),
            Err(Reject::InvalidToken),
            "single use"
        );
        // Expiry uses the proposal's time.
        ledger.apply(&add("t2", 20_000), meta(6)).unwrap();
        assert!(matches!(
            ledger.apply(&redeem("t2", [1; 32], 11), meta(20)),
            Err(Reject::TokenExpired { .. })
        ));
        assert!(
            ledger.anchor_join_token("t2").is_some(),
            "a refusal changes nothing"
        );
        // Adding a token forgets expired ones; the number outstanding is bounded.
        ledger.apply(&add("t3", 100_000), meta(21)).unwrap();
        assert!(ledger.anchor_join_token("t2").is_none());
        for i in 1..MAX_ANCHOR_JOIN_TOKENS {
            ledger
                .apply(&add(&format!("n{i}"), 100_000), meta(22))
                .unwrap();
        }
        assert_eq!(
            ledger.apply(&add("one-more", 100_000), meta(23)),
            Err(Reject::TooManyTokens)
        );
        ledger.take_changes();
        assert!(Ledger::from_records(ledger.records()) == ledger);
    }

    #[test]
    fn anchors_and_changes() {
        let mut ledger = Ledger::new();
        let anchor = AnchorRecord {
            raft_id: 7,
            node_id: NodeId::from_bytes([7; 32]),
            peer_id: "12D3KooW".into(),
            addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
            api_url: "http://127.0.0.1:2".into(),
        };
        ledger
            .apply(
                &Command::AddAnchor {
                    anchor: anchor.clone(),
                },
                meta(1),
            )
            .unwrap();
        let changes = ledger.take_changes();
        assert_eq!(
            changes,
            vec![(RecordKey::Anchor(7), Some(Record::Anchor(anchor)))]
        );
        assert!(ledger.take_changes().is_empty());
        ledger
            .apply(&Command::RemoveAnchor { raft_id: 7 }, meta(2))
            .unwrap();
        assert_eq!(ledger.take_changes(), vec![(RecordKey::Anchor(7), None)]);
        assert!(
            ledger
                .apply(&Command::RemoveAnchor { raft_id: 7 }, meta(3))
                .is_err()
        );
        assert!(ledger.take_changes().is_empty(), "a reject changes nothing");
    }

    fn command() -> impl Strategy<Value = Command> {
        let name = prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(mesh);
        prop_oneof![
            (name.clone(), "[a-z]{0,8}").prop_map(|(mesh, text)| Command::CreateMesh {
                mesh,
                settings: settings(&text)
            }),
            (name, proptest::option::of(0u64..5), "[a-z]{0,8}").prop_map(
                |(mesh, expected_version, text)| Command::UpdateMeshSettings {
                    mesh,
                    expected_version,
                    settings: settings(&text)
                }
            ),
            (0u64..3).prop_map(|raft_id| Command::RemoveAnchor { raft_id }),
            (0u8..3).prop_map(|k| Command::AddAdminKey {
                key_id: format!("k{k}"),
                secret_hash: [k; 32],
                label: String::new(),
            }),
            (0u64..3).prop_map(|raft_id| Command::AddAnchor {
                anchor: AnchorRecord {
                    raft_id,
                    node_id: NodeId::from_bytes([raft_id as u8; 32]),
                    peer_id: "p".into(),
                    addrs: vec![],
                    api_url: String::new(),
                }
            }),
        ]
    }

    proptest! {
        /// Same log, same state; persisting only the changed records and reloading gives the
        /// same state as the live ledger; a rejected command changes nothing.
        #[test]
        fn deterministic_and_persistable(commands in proptest::collection::vec(command(), 0..40)) {
            let mut a = Ledger::new();
            let mut b = Ledger::new();
            let mut persisted: BTreeMap<RecordKey, Record> = BTreeMap::new();
            for (i, command) in commands.iter().enumerate() {
                let before = a.clone();
                let m = meta(i as u64 + 1);
                let result = a.apply(command, m);
                prop_assert_eq!(&result, &b.apply(command, m));
                if result.is_err() {
                    prop_assert_eq!(&a, &before);
                }
                for (key, record) in a.take_changes() {
                    match record {
                        Some(record) => { persisted.insert(key, record); }
                        None => { persisted.remove(&key); }
                    }
                }
                b.take_changes();
            }
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(&Ledger::from_records(persisted.into_values()), &a);
            prop_assert_eq!(&Ledger::from_records(a.records()), &a);
        }
    }
}
