//! Storage format 3 (releases before per-domain records): every ledger record was one
//! bincode-encoded `Record` enum of all domains, stored under the bincode of a `RecordKey`
//! enum of all domains. This module keeps that enum exactly (variant order included: bincode
//! encodes the variant's index) and turns its values into [`StoredRecord`]s.

use serde::{Deserialize, Serialize};
use x0t_types::{AnchorRecord, NodeId, PublicKeyBytes};

use crate::stored::{self, LoadError, MAX_RECORD_LEN, StoredRecord};
use crate::{
    AclRecord, AnchorJoinToken, ApiKey, AuditRecord, JoinTokenRecord, Mesh, NodeRecord,
    RequestGroup,
};

/// One ledger record as format 3 stored it. Frozen: the order of the variants is the
/// encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
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

impl From<Record> for crate::Record {
    fn from(record: Record) -> Self {
        match record {
            Record::Mesh(mesh) => Self::Mesh(mesh),
            Record::Anchor(anchor) => Self::Anchor(anchor),
            Record::ApiKey(key) => Self::ApiKey(key),
            Record::Requests(group) => Self::Requests(group),
            Record::AnchorJoinToken(token) => Self::AnchorJoinToken(token),
            Record::Node(node) => Self::Node(node),
            Record::JoinToken(token) => Self::JoinToken(token),
            Record::Audit(entry) => Self::Audit(entry),
            Record::AnchorKey(id, key) => Self::AnchorKey(id, key),
            Record::Acl(acl) => Self::Acl(acl),
        }
    }
}

/// Decodes one format-3 record value (bounded, exact).
pub fn decode_record(bytes: &[u8]) -> Result<Record, LoadError> {
    let corrupt = |detail: String| LoadError::Corrupt {
        domain: "format 3".to_owned(),
        detail,
    };
    if bytes.len() > MAX_RECORD_LEN {
        return Err(corrupt(format!(
            "{} bytes exceeds {MAX_RECORD_LEN}",
            bytes.len()
        )));
    }
    let config = bincode::config::standard().with_limit::<MAX_RECORD_LEN>();
    let (record, used) =
        bincode::serde::decode_from_slice(bytes, config).map_err(|e| corrupt(e.to_string()))?;
    if used != bytes.len() {
        return Err(corrupt(format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(record)
}

/// The current stored form of a format-3 record.
pub fn upgrade(record: Record) -> StoredRecord {
    stored::stored(record.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ledger;
    use crate::tests::{ApplyExt, booted, meta};
    use x0t_types::{Command, MeshId, MeshSettings, Plan};

    /// Format-3 bytes of a mesh record, as that release wrote them (bincode of variant 0,
    /// then the mesh): pinned, so a change to the frozen enum shows.
    #[test]
    fn format3_bytes_decode_and_upgrade_to_the_same_ledger() {
        let mut ledger = booted();
        ledger
            .ap(
                &Command::CreateMesh {
                    mesh: MeshId::new("m").unwrap(),
                    settings: MeshSettings::default(),
                    plan: Plan::Pro,
                },
                meta(1),
            )
            .unwrap();
        ledger.take_changes();
        let old: Vec<Vec<u8>> = ledger
            .decoded_records()
            .map(|r| {
                let legacy = match r {
                    crate::Record::Mesh(m) => Record::Mesh(m),
                    crate::Record::Anchor(a) => Record::Anchor(a),
                    crate::Record::ApiKey(k) => Record::ApiKey(k),
                    crate::Record::Requests(g) => Record::Requests(g),
                    crate::Record::AnchorJoinToken(t) => Record::AnchorJoinToken(t),
                    crate::Record::Node(n) => Record::Node(n),
                    crate::Record::JoinToken(t) => Record::JoinToken(t),
                    crate::Record::Audit(e) => Record::Audit(e),
                    crate::Record::AnchorKey(i, k) => Record::AnchorKey(i, k),
                    crate::Record::Acl(a) => Record::Acl(a),
                };
                bincode::serde::encode_to_vec(&legacy, bincode::config::standard()).unwrap()
            })
            .collect();
        let mesh = old
            .iter()
            .find(|bytes| bytes[0] == 0)
            .expect("a mesh record");
        assert_eq!(&mesh[..3], &[0, 1, b'm'], "variant 0, then the name");
        let upgraded = old
            .iter()
            .map(|bytes| decode_record(bytes).map(upgrade))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert!(Ledger::from_records(upgraded).unwrap() == ledger);
        assert!(decode_record(&[42]).is_err());
        let mut trailing = mesh.clone();
        trailing.push(0);
        assert!(decode_record(&trailing).is_err());
    }
}
