//! The ledger's side of the audit chain: checking who a command says asked, and appending
//! one entry per applied command to its mesh's (or the cluster's) chain.

use crate::NodeReject;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use x0t_crypto::{
    AuditEntry, SignedAuditStatement, SignedRegistration, command_digest as command_digest_v1,
    command_digest_v2,
};
use x0t_types::{Actor, MeshId, NodeId, Timestamp};

use crate::command::{AnchorCommand, Command, NodeCommand};
use crate::core::format4::legacy_command_bytes;
use crate::domain::Domain;
use crate::{Ledger, Reject};

/// One stored audit entry: its canonical bytes and chain hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The chain: a mesh, or `None` for the cluster.
    pub mesh: Option<MeshId>,
    /// Position in the chain.
    pub seq: u64,
    /// `x0t_crypto::AuditEntry` canonical bytes.
    #[serde(with = "x0t_types::bytes")]
    pub entry: Vec<u8>,
    /// Its chain hash.
    pub hash: [u8; 32],
}

/// The end of a chain: how many entries it has and the last one's hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Number of entries (the next entry's `seq`).
    pub len: u64,
    /// Hash of the last entry (zeros when empty).
    pub hash: [u8; 32],
}

/// The chain a command belongs to.
pub fn command_scope(command: &Command) -> Option<MeshId> {
    command.scope()
}

/// The bytes a statement's command digest covers: the command's bincode encoding.
pub fn command_bytes(command: &Command) -> Vec<u8> {
    // Encoding a plain enum into a Vec cannot fail; an empty digest input would only make
    // the statement check fail, never pass.
    bincode::serde::encode_to_vec(command, bincode::config::standard()).unwrap_or_default()
}

/// The digest an anchor's statement carries of `command`.
pub fn command_digest(command: &Command) -> [u8; 32] {
    command_digest_v2(&command_bytes(command))
}

/// Whether `digest` is `command`'s: as this release digests it, or as format 4 did (the
/// statements in log entries written before format 5, replayed after the migration).
fn digest_matches(digest: &[u8; 32], command: &Command) -> bool {
    *digest == command_digest(command)
        || legacy_command_bytes(command).is_some_and(|bytes| *digest == command_digest_v1(&bytes))
}

/// What the audit chain needs from the anchors domain.
pub(crate) trait AnchorDirectory {
    /// Whether `node_id` is (or was) a recorded anchor.
    fn is_anchor(&self, node_id: &NodeId) -> bool;
}

/// The audit chains' part of the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AuditChains {
    entries: BTreeMap<(Option<MeshId>, u64), AuditRecord>,
    /// Derived from `entries`: the head of each chain.
    heads: BTreeMap<Option<MeshId>, ChainHead>,
    changed: BTreeSet<Key>,
}

/// An audit record's key, as stored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Key {
    /// An entry, by chain and position.
    Entry(Option<MeshId>, u64),
}

/// An audit record, as stored.
#[derive(Serialize, Deserialize)]
pub(crate) enum Value {
    /// An entry.
    Entry(AuditRecord),
}

impl Domain for AuditChains {
    const NAME: &'static str = "audit";
    type Key = Key;
    type Value = Value;

    fn key_of(value: &Value) -> Key {
        match value {
            Value::Entry(entry) => Key::Entry(entry.mesh.clone(), entry.seq),
        }
    }

    fn get(&self, key: &Key) -> Option<Value> {
        match key {
            Key::Entry(mesh, seq) => self
                .entries
                .get(&(mesh.clone(), *seq))
                .cloned()
                .map(Value::Entry),
        }
    }

    fn values(&self) -> Vec<Value> {
        self.entries.values().cloned().map(Value::Entry).collect()
    }

    fn load(&mut self, value: Value) {
        let Value::Entry(entry) = value;
        let head = self.heads.entry(entry.mesh.clone()).or_default();
        if entry.seq + 1 > head.len {
            *head = ChainHead {
                len: entry.seq + 1,
                hash: entry.hash,
            };
        }
        self.entries.insert((entry.mesh.clone(), entry.seq), entry);
    }

    fn changes(&self) -> &BTreeSet<Key> {
        &self.changed
    }

    fn changes_mut(&mut self) -> &mut BTreeSet<Key> {
        &mut self.changed
    }
}

impl AuditChains {
    /// The head of a chain.
    pub(crate) fn head(&self, mesh: Option<&MeshId>) -> ChainHead {
        self.heads.get(&mesh.cloned()).copied().unwrap_or_default()
    }

    /// Appends an entry for an applied command to its chain.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn append(
        &mut self,
        mesh: Option<MeshId>,
        actor: Actor,
        action: &str,
        subject: String,
        details: String,
        evidence: Vec<u8>,
        at: Timestamp,
        log_index: u64,
    ) {
        let head = self.head(mesh.as_ref());
        let entry = AuditEntry {
            mesh: mesh.clone(),
            seq: head.len,
            log_index,
            at,
            actor,
            action: action.to_owned(),
            subject: truncate(subject, x0t_crypto::audit::MAX_SUBJECT_LEN),
            details: truncate(details, x0t_crypto::audit::MAX_DETAILS_LEN),
            evidence,
            prev_hash: head.hash,
        };
        // Every field is within its limit (checked above or by the command's own checks), so
        // encoding succeeds; if it ever did not, the chain records the failure visibly
        // instead of skipping the entry.
        let bytes = entry.encode().unwrap_or_else(|e| {
            AuditEntry {
                details: format!("entry could not be encoded: {e}"),
                evidence: Vec::new(),
                subject: String::new(),
                ..entry.clone()
            }
            .encode()
            .unwrap_or_default()
        });
        let hash = x0t_crypto::audit::chain_hash(&bytes);
        self.entries.insert(
            (mesh.clone(), head.len),
            AuditRecord {
                mesh: mesh.clone(),
                seq: head.len,
                entry: bytes,
                hash,
            },
        );
        self.heads.insert(
            mesh.clone(),
            ChainHead {
                len: head.len + 1,
                hash,
            },
        );
        self.changed.insert(Key::Entry(mesh, head.len));
    }
}

/// Checks the anchor's statement about who asked for `command`, and returns the actor and
/// the evidence the audit entry keeps. The statement must name the command's action, chain
/// and exact bytes, and come from a recorded anchor — or, for the anchor records
/// themselves, from the anchor being added. A node's registration is its own evidence.
/// (The signature is checked by `verify_chain`; see ARCHITECTURE.md, "audit".)
pub(crate) fn check_statement(
    anchors: &dyn AnchorDirectory,
    command: &Command,
    statement: &[u8],
) -> Result<(Actor, Vec<u8>), Reject> {
    if let Command::Nodes(NodeCommand::Register { registration, .. }) = command {
        let node_id = SignedRegistration::decode(registration)
            .map_err(|e| Reject::Nodes(NodeReject::BadRegistration(e.to_string())))?
            .payload()
            .node_id;
        return Ok((Actor::Node { node_id }, registration.clone()));
    }
    let bad = |reason: String| Reject::BadStatement(reason);
    let signed = SignedAuditStatement::decode(statement).map_err(|e| bad(e.to_string()))?;
    let payload = signed.payload();
    let self_added = match command {
        Command::Anchors(AnchorCommand::Add { anchor }) => Some(anchor.node_id),
        _ => None,
    };
    if !anchors.is_anchor(&payload.issuer) && self_added != Some(payload.issuer) {
        return Err(bad(format!(
            "signed by {}, which is not an anchor",
            payload.issuer.short()
        )));
    }
    if payload.action != command.action() || payload.mesh != command_scope(command) {
        return Err(bad(format!(
            "it speaks of {} in {:?}, the command is {}",
            payload.action,
            payload.mesh,
            command.action()
        )));
    }
    if !digest_matches(&payload.command_digest, command) {
        return Err(bad("it was signed for another command".to_owned()));
    }
    Ok((payload.actor.clone(), statement.to_vec()))
}

impl Ledger {
    /// The head of a chain.
    pub fn audit_head(&self, mesh: Option<&MeshId>) -> ChainHead {
        self.audit.head(mesh)
    }

    /// The entries of a chain from `from` on, at most `limit`.
    pub fn audit_entries(
        &self,
        mesh: Option<&MeshId>,
        from: u64,
        limit: usize,
    ) -> impl Iterator<Item = &AuditRecord> {
        let scope = mesh.cloned();
        self.audit
            .entries
            .range((scope.clone(), from)..)
            .take_while(move |((m, _), _)| *m == scope)
            .take(limit)
            .map(|(_, record)| record)
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
