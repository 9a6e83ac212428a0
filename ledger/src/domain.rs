//! The seam between the ledger core and its domains.
//!
//! A domain (meshes, anchors, API keys, nodes, ACL, …) is one folder of this crate holding its
//! records, its part of [`crate::Ledger`]'s state, the functions that apply its commands and
//! its queries. Its state implements [`Domain`]: the name its records are stored under, its
//! key and value types, and how a record is found, listed and loaded. From that alone the
//! core persists it — records, change tracking, snapshots, loading — without knowing what a
//! record holds; storage sees only (domain, key, value) bytes ([`crate::StoredRecord`]).
//!
//! What a domain needs from another comes through a small trait the needing domain declares
//! (Cosmos SDK's "expected keepers"), implemented in `ledger.rs` where the domains are wired
//! together, so no domain imports another.

use std::collections::BTreeSet;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::stored::{LoadError, StoredChange, StoredRecord, decode, encode};
use crate::{ApplyMeta, Outcome};

/// One domain's persisted state.
pub(crate) trait Domain {
    /// The name its records are stored under; never changes once released (lowercase ASCII,
    /// digits and `_`).
    const NAME: &'static str;
    /// Its record keys, as stored (bincode; the variant order is part of the format).
    type Key: Ord + Clone + Serialize + DeserializeOwned;
    /// Its records, as stored (bincode; the variant order is part of the format).
    type Value: Serialize + DeserializeOwned;

    /// The key `value` is stored under.
    fn key_of(value: &Self::Value) -> Self::Key;
    /// The current record under `key`.
    fn get(&self, key: &Self::Key) -> Option<Self::Value>;
    /// Every record, in key order.
    fn values(&self) -> Vec<Self::Value>;
    /// Puts a loaded record in place, with whatever indexes derive from it.
    fn load(&mut self, value: Self::Value);
    /// Keys changed since the last [`take_changes`].
    fn changes(&self) -> &BTreeSet<Self::Key>;
    /// The same, to add to or drain.
    fn changes_mut(&mut self) -> &mut BTreeSet<Self::Key>;
}

/// What applying a command did, for its caller and its audit entry.
#[derive(Debug)]
pub(crate) struct Applied {
    /// The command's outcome.
    pub(crate) outcome: Outcome,
    /// What it acted on, for the audit entry (a mesh name, a node id, …).
    pub(crate) subject: String,
    /// A one-line human summary for the audit entry.
    pub(crate) details: String,
}

impl Applied {
    /// An outcome with its audit subject and details.
    pub(crate) fn new(
        outcome: Outcome,
        subject: impl Into<String>,
        details: impl Into<String>,
    ) -> Self {
        Self {
            outcome,
            subject: subject.into(),
            details: details.into(),
        }
    }
}

/// When and where in the log a command applies (what a domain may read of it).
pub(crate) type At = ApplyMeta;

/// `value` as stored by domain `D`.
pub(crate) fn stored<D: Domain>(value: &D::Value) -> StoredRecord {
    StoredRecord {
        domain: D::NAME.to_owned(),
        key: encode(&D::key_of(value)),
        value: encode(value),
    }
}

/// Loads one stored record into `domain`, checking that the value is the record its key
/// names (a record filed under another key would be found by nobody, or shadow another).
pub(crate) fn load<D: Domain>(domain: &mut D, record: &StoredRecord) -> Result<(), LoadError> {
    let value: D::Value = decode(D::NAME, "value", &record.value)?;
    if encode(&D::key_of(&value)) != record.key {
        return Err(LoadError::Corrupt {
            domain: D::NAME.to_owned(),
            detail: "the value is not the record its key names".to_owned(),
        });
    }
    domain.load(value);
    Ok(())
}

/// Appends every record of `domain`, as stored.
pub(crate) fn records<D: Domain>(domain: &D, out: &mut Vec<StoredRecord>) {
    out.extend(domain.values().iter().map(stored::<D>));
}

/// Appends the records `domain` changed since the last call, each with its new value
/// (`None`: deleted), and forgets them.
pub(crate) fn take_changes<D: Domain>(domain: &mut D, out: &mut Vec<StoredChange>) {
    for key in std::mem::take(domain.changes_mut()) {
        let value = domain.get(&key).map(|value| encode(&value));
        out.push(StoredChange {
            domain: D::NAME,
            key: encode(&key),
            value,
        });
    }
}

/// The decoded identity key of a record, or a refusal naming what is wrong.
pub(crate) fn verifying_key(
    key: &x0t_types::PublicKeyBytes,
) -> Result<x0t_crypto::VerifyingKey, crate::Reject> {
    let algorithm = x0t_crypto::SigAlgorithm::from_code(key.algorithm).ok_or_else(|| {
        crate::Reject::Invalid(format!("unknown key algorithm {}", key.algorithm))
    })?;
    x0t_crypto::VerifyingKey::from_bytes(algorithm, &key.bytes)
        .map_err(|e| crate::Reject::Invalid(format!("identity key: {e}")))
}

/// Compares two secret hashes in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
