//! How the ledger's records reach storage: each one is a [`StoredRecord`] — the name of the
//! domain that owns it, its key bytes and its value bytes — so the stores in `x0t-consensus`
//! write and read opaque (domain, key) → value pairs and never learn a record type. A new
//! domain brings its own names and encodings; the stores do not change.
//!
//! Each domain's keys and values are the bincode encoding of that domain's own key and value
//! enums (below), so a domain can add record kinds without touching any other. Decoding is
//! bounded ([`MAX_RECORD_LEN`]) and exact (no trailing bytes), and a record of a domain this
//! build does not know is refused, never skipped.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use x0t_types::{AnchorRecord, MeshId, NodeId, PublicKeyBytes};

use crate::{
    AclRecord, AnchorJoinToken, ApiKey, AuditRecord, JoinTokenRecord, Mesh, NodeRecord, Record,
    RecordKey, RequestGroup,
};

/// Largest key or value decoded (a record is far smaller; a node record with its certificate
/// is ~8 KB).
pub const MAX_RECORD_LEN: usize = 4 * 1024 * 1024;

/// One record as storage holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// The owning domain's name ([`DOMAINS`]).
    pub domain: String,
    /// The record's key within its domain.
    #[serde(with = "x0t_types::bytes")]
    pub key: Vec<u8>,
    /// The record.
    #[serde(with = "x0t_types::bytes")]
    pub value: Vec<u8>,
}

/// One changed record since the last [`crate::Ledger::take_changes`]: its new value, or
/// `None` when it was deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredChange {
    /// The owning domain's name.
    pub domain: &'static str,
    /// The record's key within its domain.
    pub key: Vec<u8>,
    /// Its new value; `None`: deleted.
    pub value: Option<Vec<u8>>,
}

/// Why stored records do not make a ledger.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// A record of a domain this build does not have (written by a newer release).
    #[error(
        "a stored record belongs to domain {domain:?}, which this build does not know \
         (was the data written by a newer release?)"
    )]
    UnknownDomain {
        /// The name found.
        domain: String,
    },
    /// A record's bytes do not decode, or its value is not the record its key names.
    #[error("corrupt {domain} record: {detail}")]
    Corrupt {
        /// The domain.
        domain: String,
        /// What is wrong.
        detail: String,
    },
}

/// Every domain that stores records, by the name its records are stored under. Names never
/// change once released; they are lowercase ASCII, digits and `_` (no `/`: storage uses it
/// as the separator after the name).
pub const DOMAINS: &[&str] = &[
    meshes::NAME,
    anchors::NAME,
    api_keys::NAME,
    nodes::NAME,
    acl::NAME,
    audit::NAME,
    requests::NAME,
];

macro_rules! stored_forms {
    ($($(#[$doc:meta])* $module:ident = $name:literal {
        key { $($kvariant:ident($($kty:ty),+)),+ $(,)? }
        value { $($vvariant:ident($($vty:ty),+)),+ $(,)? }
    })+) => {
        $(
            $(#[$doc])*
            pub(crate) mod $module {
                use super::*;

                /// The name this domain's records are stored under.
                pub(crate) const NAME: &str = $name;

                /// This domain's record keys, as stored.
                #[derive(Serialize, Deserialize, PartialEq, Debug)]
                pub(crate) enum Key { $($kvariant($($kty),+)),+ }

                /// This domain's record values, as stored.
                #[derive(Serialize, Deserialize)]
                pub(crate) enum Value { $($vvariant($($vty),+)),+ }
            }
        )+
    };
}

stored_forms! {
    /// Meshes and their settings.
    meshes = "meshes" {
        key { Mesh(MeshId) }
        value { Mesh(Mesh) }
    }
    /// Anchors, every anchor's identity key, and anchor-join tokens.
    anchors = "anchors" {
        key { Anchor(u64), Identity(NodeId), JoinToken(String) }
        value { Anchor(AnchorRecord), IdentityKey(NodeId, PublicKeyBytes), JoinToken(AnchorJoinToken) }
    }
    /// API keys.
    api_keys = "api_keys" {
        key { Id(String) }
        value { ApiKey(ApiKey) }
    }
    /// Nodes and join tokens.
    nodes = "nodes" {
        key { Node(MeshId, NodeId), JoinToken(MeshId, [u8; 16]) }
        value { Node(NodeRecord), JoinToken(JoinTokenRecord) }
    }
    /// Each mesh's kept policy versions.
    acl = "acl" {
        key { Version(MeshId, u64) }
        value { Version(AclRecord) }
    }
    /// The audit chains (the ledger core's).
    audit = "audit" {
        key { Entry(Option<MeshId>, u64) }
        value { Entry(AuditRecord) }
    }
    /// Remembered request results (the ledger core's de-duplication).
    requests = "requests" {
        key { Entry(u64) }
        value { Group(RequestGroup) }
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_LEN>()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding plain data into a Vec cannot fail (sizes are bounded by the commands'
    // checks); an empty value would be refused on load, never misread.
    bincode::serde::encode_to_vec(value, config()).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(domain: &str, what: &str, bytes: &[u8]) -> Result<T, LoadError> {
    let corrupt = |detail: String| LoadError::Corrupt {
        domain: domain.to_owned(),
        detail: format!("{what}: {detail}"),
    };
    if bytes.len() > MAX_RECORD_LEN {
        return Err(corrupt(format!(
            "{} bytes exceeds {MAX_RECORD_LEN}",
            bytes.len()
        )));
    }
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| corrupt(e.to_string()))?;
    if used != bytes.len() {
        return Err(corrupt(format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(value)
}

/// The stored name and key bytes of a record key.
pub(crate) fn stored_key(key: &RecordKey) -> (&'static str, Vec<u8>) {
    match key {
        RecordKey::Mesh(id) => (meshes::NAME, encode(&meshes::Key::Mesh(id.clone()))),
        RecordKey::Anchor(id) => (anchors::NAME, encode(&anchors::Key::Anchor(*id))),
        RecordKey::AnchorKey(id) => (anchors::NAME, encode(&anchors::Key::Identity(*id))),
        RecordKey::AnchorJoinToken(id) => {
            (anchors::NAME, encode(&anchors::Key::JoinToken(id.clone())))
        }
        RecordKey::ApiKey(id) => (api_keys::NAME, encode(&api_keys::Key::Id(id.clone()))),
        RecordKey::Node(mesh, id) => (nodes::NAME, encode(&nodes::Key::Node(mesh.clone(), *id))),
        RecordKey::JoinToken(mesh, id) => (
            nodes::NAME,
            encode(&nodes::Key::JoinToken(mesh.clone(), *id)),
        ),
        RecordKey::Acl(mesh, version) => (
            acl::NAME,
            encode(&acl::Key::Version(mesh.clone(), *version)),
        ),
        RecordKey::Audit(mesh, seq) => {
            (audit::NAME, encode(&audit::Key::Entry(mesh.clone(), *seq)))
        }
        RecordKey::Requests(index) => (requests::NAME, encode(&requests::Key::Entry(*index))),
    }
}

/// The stored value bytes of a record.
pub(crate) fn stored_value(record: Record) -> Vec<u8> {
    match record {
        Record::Mesh(mesh) => encode(&meshes::Value::Mesh(mesh)),
        Record::Anchor(anchor) => encode(&anchors::Value::Anchor(anchor)),
        Record::AnchorKey(id, key) => encode(&anchors::Value::IdentityKey(id, key)),
        Record::AnchorJoinToken(token) => encode(&anchors::Value::JoinToken(token)),
        Record::ApiKey(key) => encode(&api_keys::Value::ApiKey(key)),
        Record::Node(node) => encode(&nodes::Value::Node(node)),
        Record::JoinToken(token) => encode(&nodes::Value::JoinToken(token)),
        Record::Acl(acl) => encode(&acl::Value::Version(acl)),
        Record::Audit(entry) => encode(&audit::Value::Entry(entry)),
        Record::Requests(group) => encode(&requests::Value::Group(group)),
    }
}

/// A record as stored.
pub(crate) fn stored(record: Record) -> StoredRecord {
    let (domain, key) = stored_key(&record.key());
    StoredRecord {
        domain: domain.to_owned(),
        key,
        value: stored_value(record),
    }
}

/// Decodes a stored record, checking that its value is the record its key names.
pub(crate) fn load(stored: &StoredRecord) -> Result<Record, LoadError> {
    let domain = stored.domain.as_str();
    let record = match domain {
        meshes::NAME => match decode(domain, "value", &stored.value)? {
            meshes::Value::Mesh(mesh) => Record::Mesh(mesh),
        },
        anchors::NAME => match decode(domain, "value", &stored.value)? {
            anchors::Value::Anchor(anchor) => Record::Anchor(anchor),
            anchors::Value::IdentityKey(id, key) => Record::AnchorKey(id, key),
            anchors::Value::JoinToken(token) => Record::AnchorJoinToken(token),
        },
        api_keys::NAME => match decode(domain, "value", &stored.value)? {
            api_keys::Value::ApiKey(key) => Record::ApiKey(key),
        },
        nodes::NAME => match decode(domain, "value", &stored.value)? {
            nodes::Value::Node(node) => Record::Node(node),
            nodes::Value::JoinToken(token) => Record::JoinToken(token),
        },
        acl::NAME => match decode(domain, "value", &stored.value)? {
            acl::Value::Version(acl) => Record::Acl(acl),
        },
        audit::NAME => match decode(domain, "value", &stored.value)? {
            audit::Value::Entry(entry) => Record::Audit(entry),
        },
        requests::NAME => match decode(domain, "value", &stored.value)? {
            requests::Value::Group(group) => Record::Requests(group),
        },
        _ => {
            return Err(LoadError::UnknownDomain {
                domain: domain.chars().take(64).collect(),
            });
        }
    };
    // The key must be the one the value would be stored under: a record filed under another
    // key would be found by nobody, or shadow another.
    let (expected_domain, expected_key) = stored_key(&record.key());
    if expected_domain != domain || expected_key != stored.key {
        return Err(LoadError::Corrupt {
            domain: domain.to_owned(),
            detail: "the value is not the record its key names".to_owned(),
        });
    }
    Ok(record)
}
