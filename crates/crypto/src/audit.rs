//! The audit chain: who asked for each ledger change, signed, and linked by blake3 hashes so
//! a flipped byte, a dropped entry or a reordered pair is found at its exact position.
//!
//! Two encodings live here:
//!
//! ```text
//! statement v1 = "X0TA" | u8 version=1
//!              | u8 len | mesh (ASCII; length 0 = the cluster itself)
//!              | actor
//!              | u8 len | action (ASCII, e.g. "node.approve")
//!              | command digest (32)          blake3 of the command's bytes (command_digest_v2;
//!                                             command_digest for format-4 commands)
//!              | u64 requested_at_ms          the anchor's clock
//!              | issuer node_id (32)          the anchor that signs it
//! actor        = u8 kind: 1 API key | u8 len | key id
//!                         2 node    | node_id (32)
//!                         3 anchor  | node_id (32)
//!
//! entry v1     = "X0TL" | u8 version=1
//!              | u8 len | mesh (0 = cluster)
//!              | u64 seq                      0, 1, 2, … within the chain
//!              | u64 log_index | u64 at_ms    where and when the ledger applied it
//!              | actor | u8 len | action
//!              | u16 len | subject | u16 len | details
//!              | u32 len | evidence           signed statement, or the node's signed registration
//!              | prev_hash (32)               hash of entry seq-1; zeros for seq 0
//! hash(entry)  = blake3 derive_key("x0t 2026-11 audit chain v1", entry bytes)
//! ```
//! A statement is an [`AuditStatement`] inside a [`crate::Signed`] envelope: the anchor that
//! took the request vouches for who asked (an admin key it checked, or itself). A
//! registration is signed by the node itself, so the evidence of `node.register` is the
//! [`crate::SignedRegistration`].

use std::fmt;

use x0t_types::{Actor, MeshId, NodeId, Timestamp};

use crate::CryptoError;
use crate::registration::SignedRegistration;
use crate::sig::{SignatureDomain, VerifyingKey};
use crate::signed::{Signed, SignedPayload, read_mesh};
use crate::wire::{Reader, Writer};

const STATEMENT_MAGIC: &[u8; 4] = b"X0TA";
const ENTRY_MAGIC: &[u8; 4] = b"X0TL";
/// Version of the statement body encoding.
pub const STATEMENT_VERSION: u8 = 1;
/// Version of the audit entry encoding.
pub const AUDIT_ENTRY_VERSION: u8 = 1;
/// Longest action name.
pub const MAX_ACTION_LEN: usize = 64;
/// Longest API key id in an actor.
pub const MAX_KEY_ID_LEN: usize = 64;
/// Longest entry subject (a node id, a token id, a mesh name).
pub const MAX_SUBJECT_LEN: usize = 256;
/// Longest entry details text.
pub const MAX_DETAILS_LEN: usize = 2048;
/// Largest evidence envelope accepted in an entry.
pub const MAX_EVIDENCE_LEN: usize = 16 * 1024;
/// Largest encoded entry.
pub const MAX_ENTRY_LEN: usize = 5
    + 1
    + MeshId::MAX_LEN
    + 24
    + 2
    + MAX_KEY_ID_LEN
    + 1
    + MAX_ACTION_LEN
    + 2
    + MAX_SUBJECT_LEN
    + 2
    + MAX_DETAILS_LEN
    + 4
    + MAX_EVIDENCE_LEN
    + 32;

/// The action name of a node's registration, whose evidence is the node's own signature.
pub const REGISTER_ACTION: &str = "node.register";

/// The digest of a command's bytes that a statement signs.
pub fn command_digest(command_bytes: &[u8]) -> [u8; 32] {
    blake3::derive_key("x0t 2026-11 command digest v1", command_bytes)
}

/// The digest a statement carries of a command as storage format 5 and later encode it (each
/// domain its own command type). Its context differs from [`command_digest`]'s (format 4's),
/// so a statement signed for a command in one encoding is never taken for a command in the
/// other, whatever their bytes.
pub fn command_digest_v2(command_bytes: &[u8]) -> [u8; 32] {
    blake3::derive_key("x0t 2026-12 command digest v2", command_bytes)
}

/// An anchor's signed word on who asked for a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditStatement {
    /// The mesh the change is about; `None` for the cluster itself (anchors, API keys).
    pub mesh: Option<MeshId>,
    /// Who asked.
    pub actor: Actor,
    /// What they asked for, e.g. `node.approve`.
    pub action: String,
    /// [`command_digest_v2`] of the exact command's bytes ([`command_digest`] of its format-4
    /// bytes in statements of earlier releases).
    pub command_digest: [u8; 32],
    /// The anchor's clock when it signed.
    pub requested_at: Timestamp,
    /// The anchor that signs.
    pub issuer: NodeId,
}

/// A statement with the anchor's signature.
pub type SignedAuditStatement = Signed<AuditStatement>;

fn check_action(action: &str) -> Result<(), String> {
    if action.is_empty()
        || action.len() > MAX_ACTION_LEN
        || !action
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
    {
        return Err(format!(
            "action must be 1 to {MAX_ACTION_LEN} of [a-z._], not {action:?}"
        ));
    }
    Ok(())
}

fn write_mesh(w: &mut Writer, mesh: Option<&MeshId>) {
    w.short_bytes(mesh.map_or(&[][..], |m| m.as_str().as_bytes()));
}

fn read_scope(r: &mut Reader<'_>) -> Result<Option<MeshId>, CryptoError> {
    // A zero length is the cluster scope; peek by reading the length through read_mesh's
    // format: u8 len | bytes.
    let mut probe = r.clone();
    if probe.u8()? == 0 {
        r.u8()?;
        return Ok(None);
    }
    read_mesh(r).map(Some)
}

fn write_actor(w: &mut Writer, actor: &Actor) {
    match actor {
        Actor::ApiKey { key_id } => {
            w.u8(1).short_bytes(key_id.as_bytes());
        }
        Actor::Node { node_id } => {
            w.u8(2).bytes(node_id.as_bytes());
        }
        Actor::Anchor { node_id } => {
            w.u8(3).bytes(node_id.as_bytes());
        }
    }
}

fn check_actor(actor: &Actor) -> Result<(), String> {
    match actor {
        Actor::ApiKey { key_id }
            if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN || !key_id.is_ascii() =>
        {
            Err(format!(
                "API key id must be 1 to {MAX_KEY_ID_LEN} ASCII bytes"
            ))
        }
        _ => Ok(()),
    }
}

fn read_actor(r: &mut Reader<'_>) -> Result<Actor, CryptoError> {
    match r.u8()? {
        1 => {
            let raw = r.short_bytes(MAX_KEY_ID_LEN)?;
            let key_id = std::str::from_utf8(raw)
                .ok()
                .filter(|k| !k.is_empty() && k.is_ascii())
                .ok_or_else(|| r.error("API key id is not 1 or more ASCII bytes"))?;
            Ok(Actor::ApiKey {
                key_id: key_id.to_owned(),
            })
        }
        2 => Ok(Actor::Node {
            node_id: NodeId::from_bytes(r.array()?),
        }),
        3 => Ok(Actor::Anchor {
            node_id: NodeId::from_bytes(r.array()?),
        }),
        other => Err(r.error(format_args!("unknown actor kind {other}"))),
    }
}

impl AuditStatement {
    fn validate(&self) -> Result<(), CryptoError> {
        let invalid = |reason: String| CryptoError::Invalid {
            what: "audit statement",
            reason,
        };
        check_action(&self.action).map_err(invalid)?;
        check_actor(&self.actor).map_err(invalid)
    }
}

impl SignedPayload for AuditStatement {
    const WHAT: &'static str = "audit statement";
    const DOMAIN: SignatureDomain = SignatureDomain::AuditStatement;
    const MAX_BODY_LEN: usize =
        5 + 1 + MeshId::MAX_LEN + 2 + MAX_KEY_ID_LEN + 1 + MAX_ACTION_LEN + 32 + 8 + 32;

    fn encode_body(&self) -> Result<Vec<u8>, CryptoError> {
        self.validate()?;
        let mut w = Writer::with_capacity(160);
        w.bytes(STATEMENT_MAGIC).u8(STATEMENT_VERSION);
        write_mesh(&mut w, self.mesh.as_ref());
        write_actor(&mut w, &self.actor);
        w.short_bytes(self.action.as_bytes())
            .bytes(&self.command_digest)
            .u64(self.requested_at.as_millis())
            .bytes(self.issuer.as_bytes());
        Ok(w.finish())
    }

    fn decode_body(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut r = Reader::new(Self::WHAT, bytes);
        if &r.array::<4>()? != STATEMENT_MAGIC {
            return Err(r.error("not an audit statement (bad magic)"));
        }
        let version = r.u8()?;
        if version != STATEMENT_VERSION {
            return Err(r.error(format_args!(
                "statement version {version}, this build reads {STATEMENT_VERSION}"
            )));
        }
        let mesh = read_scope(&mut r)?;
        let actor = read_actor(&mut r)?;
        let action = std::str::from_utf8(r.short_bytes(MAX_ACTION_LEN)?)
            .map_err(|_| r.error("action is not UTF-8"))?
            .to_owned();
        let statement = Self {
            mesh,
            actor,
            action,
            command_digest: r.array()?,
            requested_at: Timestamp(r.u64()?),
            issuer: NodeId::from_bytes(r.array()?),
        };
        r.finish()?;
        statement.validate()?;
        Ok(statement)
    }

    fn issuer(&self) -> NodeId {
        self.issuer
    }

    fn validity(&self) -> (Timestamp, Timestamp) {
        // A statement records a past fact; it does not expire.
        (self.requested_at, Timestamp(u64::MAX))
    }
}

/// One link of a mesh's audit chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// The chain: a mesh, or `None` for the cluster.
    pub mesh: Option<MeshId>,
    /// Position in the chain, from 0.
    pub seq: u64,
    /// The Raft log index of the change.
    pub log_index: u64,
    /// The leader's time on the change.
    pub at: Timestamp,
    /// Who asked.
    pub actor: Actor,
    /// What was done, e.g. `node.approve`.
    pub action: String,
    /// What it was done to (a node id, a token id, a mesh name).
    pub subject: String,
    /// A human summary of the change.
    pub details: String,
    /// The signed evidence: a [`SignedAuditStatement`], or for `node.register` the node's
    /// [`SignedRegistration`], as envelope bytes.
    pub evidence: Vec<u8>,
    /// The hash of the previous entry (zeros for the first).
    pub prev_hash: [u8; 32],
}

impl AuditEntry {
    /// The canonical bytes the chain hash covers. Fails if a field is over its limit.
    pub fn encode(&self) -> Result<Vec<u8>, CryptoError> {
        let invalid = |reason: String| CryptoError::Invalid {
            what: "audit entry",
            reason,
        };
        check_action(&self.action).map_err(invalid)?;
        check_actor(&self.actor).map_err(invalid)?;
        if self.subject.len() > MAX_SUBJECT_LEN
            || self.details.len() > MAX_DETAILS_LEN
            || self.evidence.len() > MAX_EVIDENCE_LEN
        {
            return Err(invalid(
                "subject, details or evidence over its size limit".to_owned(),
            ));
        }
        let mut w = Writer::with_capacity(200 + self.evidence.len() + self.details.len());
        w.bytes(ENTRY_MAGIC).u8(AUDIT_ENTRY_VERSION);
        write_mesh(&mut w, self.mesh.as_ref());
        w.u64(self.seq).u64(self.log_index).u64(self.at.as_millis());
        write_actor(&mut w, &self.actor);
        w.short_bytes(self.action.as_bytes())
            .medium_bytes(self.subject.as_bytes())
            .medium_bytes(self.details.as_bytes())
            .u32(self.evidence.len() as u32)
            .bytes(&self.evidence)
            .bytes(&self.prev_hash);
        Ok(w.finish())
    }

    /// Parses canonical entry bytes, bounding every size.
    pub fn decode(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(CryptoError::decode(
                "audit entry",
                format!("{} bytes exceeds the limit of {MAX_ENTRY_LEN}", bytes.len()),
            ));
        }
        let mut r = Reader::new("audit entry", bytes);
        if &r.array::<4>()? != ENTRY_MAGIC {
            return Err(r.error("not an audit entry (bad magic)"));
        }
        let version = r.u8()?;
        if version != AUDIT_ENTRY_VERSION {
            return Err(r.error(format_args!(
                "audit entry version {version}, this build reads {AUDIT_ENTRY_VERSION}"
            )));
        }
        let mesh = read_scope(&mut r)?;
        let seq = r.u64()?;
        let log_index = r.u64()?;
        let at = Timestamp(r.u64()?);
        let actor = read_actor(&mut r)?;
        let action = std::str::from_utf8(r.short_bytes(MAX_ACTION_LEN)?)
            .map_err(|_| r.error("action is not UTF-8"))?
            .to_owned();
        let subject = std::str::from_utf8(r.medium_bytes(MAX_SUBJECT_LEN)?)
            .map_err(|_| r.error("subject is not UTF-8"))?
            .to_owned();
        let details = std::str::from_utf8(r.medium_bytes(MAX_DETAILS_LEN)?)
            .map_err(|_| r.error("details are not UTF-8"))?
            .to_owned();
        let evidence = r.long_bytes(MAX_EVIDENCE_LEN)?.to_vec();
        let prev_hash = r.array()?;
        r.finish()?;
        let entry = Self {
            mesh,
            seq,
            log_index,
            at,
            actor,
            action,
            subject,
            details,
            evidence,
            prev_hash,
        };
        check_action(&entry.action).map_err(|reason| CryptoError::Invalid {
            what: "audit entry",
            reason,
        })?;
        Ok(entry)
    }

    /// The entry's chain hash: blake3 (derive-key mode, its own context) of its bytes.
    pub fn hash(&self) -> Result<[u8; 32], CryptoError> {
        Ok(chain_hash(&self.encode()?))
    }

    /// Checks the evidence: it must be signed by the right key (`anchor_key` finds an
    /// anchor's key by id; a registration carries its own) and name this entry's mesh,
    /// actor and action.
    pub fn verify_evidence(
        &self,
        anchor_key: &dyn Fn(&NodeId) -> Option<VerifyingKey>,
    ) -> Result<(), String> {
        if self.action == REGISTER_ACTION {
            let registration =
                SignedRegistration::decode(&self.evidence).map_err(|e| format!("evidence: {e}"))?;
            let payload = registration.payload();
            let key = payload.identity_key.clone();
            registration
                .verify_signature(&key)
                .map_err(|e| format!("evidence: {e}"))?;
            let actor = Actor::Node {
                node_id: payload.node_id,
            };
            if actor != self.actor || Some(&payload.mesh) != self.mesh.as_ref() {
                return Err("the registration names another node or mesh".to_owned());
            }
            return Ok(());
        }
        let statement =
            SignedAuditStatement::decode(&self.evidence).map_err(|e| format!("evidence: {e}"))?;
        let issuer = statement.payload().issuer;
        let key = anchor_key(&issuer)
            .ok_or_else(|| format!("signed by {}, which is not a known anchor", issuer.short()))?;
        let payload = statement
            .verify_signature(&key)
            .map_err(|e| format!("evidence: {e}"))?;
        if payload.actor != self.actor || payload.action != self.action || payload.mesh != self.mesh
        {
            return Err(format!(
                "the signed statement says {} did {} in {}, the entry says {} did {}",
                payload.actor,
                payload.action,
                scope_name(payload.mesh.as_ref()),
                self.actor,
                self.action
            ));
        }
        Ok(())
    }
}

/// `mesh` or "the cluster", for messages.
fn scope_name(mesh: Option<&MeshId>) -> String {
    mesh.map_or_else(|| "the cluster".to_owned(), |m| format!("mesh {m}"))
}

/// The chain hash of canonical entry bytes.
pub fn chain_hash(entry_bytes: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("x0t 2026-11 audit chain v1");
    hasher.update(entry_bytes);
    *hasher.finalize().as_bytes()
}

/// Where a chain breaks first, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainError {
    /// Position in the list that was checked (0-based), not the entry's own `seq` (which a
    /// tamperer may have changed).
    pub index: usize,
    /// What is wrong there.
    pub reason: String,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {}: {}", self.index, self.reason)
    }
}

impl std::error::Error for ChainError {}

/// Checks a whole chain from its first entry: sequence numbers 0, 1, 2…, each `prev_hash`
/// equal to the previous entry's hash, each stored hash equal to the recomputed one, each
/// piece of evidence signed by the right key. Answers the first position that breaks.
pub fn verify_chain(
    entries: &[(AuditEntry, [u8; 32])],
    anchor_key: &dyn Fn(&NodeId) -> Option<VerifyingKey>,
) -> Result<(), ChainError> {
    let mut prev = [0u8; 32];
    for (index, (entry, stored_hash)) in entries.iter().enumerate() {
        let fail = |reason: String| ChainError { index, reason };
        if entry.seq != index as u64 {
            return Err(fail(format!(
                "sequence number {} where {index} belongs (an entry was dropped, added or moved)",
                entry.seq
            )));
        }
        if entry.prev_hash != prev {
            return Err(fail(
                "previous-hash link does not match the entry before it".to_owned(),
            ));
        }
        let hash = entry
            .hash()
            .map_err(|e| fail(format!("cannot encode: {e}")))?;
        if &hash != stored_hash {
            return Err(fail(
                "contents do not match the recorded hash (the entry was altered)".to_owned(),
            ));
        }
        entry.verify_evidence(anchor_key).map_err(fail)?;
        prev = hash;
    }
    Ok(())
}
