//! The ledger's side of the audit chain: checking who a command says asked, and appending
//! one entry per applied command to its mesh's (or the cluster's) chain.

use serde::{Deserialize, Serialize};
use x0t_crypto::{
    AuditEntry, SignedAuditStatement, SignedRegistration, VerifyingKey, command_digest,
};
use x0t_types::{Actor, Command, MeshId, NodeId, Timestamp};

use crate::{Ledger, RecordKey, Reject};

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
    match command {
        Command::CreateMesh { mesh, .. }
        | Command::UpdateMeshSettings { mesh, .. }
        | Command::ApproveNode { mesh, .. }
        | Command::RejectNode { mesh, .. }
        | Command::RevokeNode { mesh, .. }
        | Command::AddJoinToken { mesh, .. }
        | Command::RotateJoinTokens { mesh }
        | Command::SetAcl { mesh, .. } => Some(mesh.clone()),
        Command::RegisterNode { registration, .. } => SignedRegistration::decode(registration)
            .ok()
            .map(|r| r.payload().mesh.clone()),
        Command::AddAnchor { .. }
        | Command::AddApiKey { .. }
        | Command::AddAnchorJoinToken { .. }
        | Command::RedeemAnchorJoinToken { .. }
        | Command::RemoveAnchor { .. } => None,
    }
}

/// The bytes a statement's command digest covers: the command's bincode encoding.
pub fn command_bytes(command: &Command) -> Vec<u8> {
    // Encoding a plain enum into a Vec cannot fail; an empty digest input would only make
    // the statement check fail, never pass.
    bincode::serde::encode_to_vec(command, bincode::config::standard()).unwrap_or_default()
}

impl Ledger {
    /// The ML-DSA key of a recorded anchor (present or past: old audit entries and
    /// certificates stay verifiable after an anchor leaves).
    pub fn anchor_key(&self, node_id: &NodeId) -> Option<VerifyingKey> {
        self.anchor_keys
            .get(node_id)
            .and_then(|key| crate::nodes::verifying_key(key).ok())
    }

    /// The identity key of every anchor ever recorded, by node id.
    pub fn anchor_keys(&self) -> impl Iterator<Item = (&NodeId, &x0t_types::PublicKeyBytes)> {
        self.anchor_keys.iter()
    }

    /// The head of a chain.
    pub fn audit_head(&self, mesh: Option<&MeshId>) -> ChainHead {
        self.audit_heads
            .get(&mesh.cloned())
            .copied()
            .unwrap_or_default()
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
            .range((scope.clone(), from)..)
            .take_while(move |((m, _), _)| *m == scope)
            .take(limit)
            .map(|(_, record)| record)
    }

    /// Checks the anchor's statement about who asked for `command`, and returns the actor.
    /// The statement must name the command's action, chain and exact bytes, and come from a
    /// recorded anchor — or, for the anchor records themselves, from the anchor being added.
    /// (The signature is checked by `verify_chain`; see ARCHITECTURE.md, "audit".)
    pub(crate) fn check_statement(
        &self,
        command: &Command,
        statement: &[u8],
    ) -> Result<(Actor, Vec<u8>), Reject> {
        if let Command::RegisterNode { registration, .. } = command {
            let node_id = SignedRegistration::decode(registration)
                .map_err(|e| Reject::BadRegistration(e.to_string()))?
                .payload()
                .node_id;
            return Ok((Actor::Node { node_id }, registration.clone()));
        }
        let bad = |reason: String| Reject::BadStatement(reason);
        let signed = SignedAuditStatement::decode(statement).map_err(|e| bad(e.to_string()))?;
        let payload = signed.payload();
        let self_added = match command {
            Command::AddAnchor { anchor } => Some(anchor.node_id),
            _ => None,
        };
        if !self.anchor_keys.contains_key(&payload.issuer) && self_added != Some(payload.issuer) {
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
        if payload.command_digest != command_digest(&command_bytes(command)) {
            return Err(bad("it was signed for another command".to_owned()));
        }
        Ok((payload.actor.clone(), statement.to_vec()))
    }

    /// Appends an entry for an applied command to its chain.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn append_audit(
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
        let head = self.audit_head(mesh.as_ref());
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
        self.audit.insert(
            (mesh.clone(), head.len),
            AuditRecord {
                mesh: mesh.clone(),
                seq: head.len,
                entry: bytes,
                hash,
            },
        );
        self.audit_heads.insert(
            mesh.clone(),
            ChainHead {
                len: head.len + 1,
                hash,
            },
        );
        self.changed.insert(RecordKey::Audit(mesh, head.len));
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
