//! Storage format 3 (releases before per-domain records): every ledger record was one
//! bincode-encoded `Record` enum of all domains, stored under the bincode of a `RecordKey`
//! enum of all domains. This module keeps that enum exactly (variant order included: bincode
//! encodes the variant's index) and turns its values into [`StoredRecord`]s.

use serde::{Deserialize, Serialize};
use x0t_types::{AnchorRecord, NodeId, PublicKeyBytes};

use crate::acl::{self, Acls};
use crate::anchors::{self, Anchors};
use crate::api_keys::{self, ApiKeys};
use crate::core::audit::{self, AuditChains};
use crate::core::requests::{self, Requests};
use crate::domain::stored;
use crate::meshes::{self, Meshes};
use crate::nodes::{self, Nodes};
use crate::stored::{LoadError, MAX_RECORD_LEN, StoredRecord};
use crate::{AclRecord, AnchorJoinToken, ApiKey, AuditRecord, JoinTokenRecord, Mesh, NodeRecord};

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
    Requests(crate::core::format4::RequestGroup),
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

/// The current stored form of a format-3 record: the same record, filed under its domain.
pub fn upgrade(record: Record) -> StoredRecord {
    match record {
        Record::Mesh(mesh) => stored::<Meshes>(&meshes::Value::Mesh(mesh)),
        Record::Anchor(anchor) => stored::<Anchors>(&anchors::Value::Anchor(anchor)),
        Record::AnchorKey(id, key) => stored::<Anchors>(&anchors::Value::IdentityKey(id, key)),
        Record::AnchorJoinToken(token) => stored::<Anchors>(&anchors::Value::JoinToken(token)),
        Record::ApiKey(key) => stored::<ApiKeys>(&api_keys::Value::ApiKey(key)),
        Record::Node(node) => stored::<Nodes>(&nodes::Value::Node(node)),
        Record::JoinToken(token) => stored::<Nodes>(&nodes::Value::JoinToken(token)),
        Record::Acl(acl) => stored::<Acls>(&acl::Value::Version(acl)),
        Record::Audit(entry) => stored::<AuditChains>(&audit::Value::Entry(entry)),
        Record::Requests(group) => stored::<Requests>(&requests::Value::Group(group)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::testkit::{ApplyExt, booted, mesh, meta};
    use crate::{Command, Ledger, MeshCommand};
    use x0t_types::{MeshSettings, Plan};

    /// Format-3 bytes as that release wrote them (bincode of the variant's index, then the
    /// record) decode and upgrade to the same ledger; the variant order is pinned.
    #[test]
    fn format3_bytes_decode_and_upgrade_to_the_same_ledger() {
        let mut ledger = booted();
        ledger
            .ap(
                &Command::Meshes(MeshCommand::Create {
                    mesh: mesh("m"),
                    settings: MeshSettings::default(),
                    plan: Plan::Pro,
                }),
                meta(1),
            )
            .unwrap();
        ledger.take_changes();
        let mut old: Vec<Record> = ledger.meshes().cloned().map(Record::Mesh).collect();
        old.extend(ledger.anchors().cloned().map(Record::Anchor));
        old.extend(
            ledger
                .anchor_keys()
                .map(|(id, key)| Record::AnchorKey(*id, key.clone())),
        );
        for chain in [None, Some(mesh("m"))] {
            old.extend(
                ledger
                    .audit_entries(chain.as_ref(), 0, usize::MAX)
                    .cloned()
                    .map(Record::Audit),
            );
        }
        let bytes: Vec<Vec<u8>> = old
            .iter()
            .map(|r| bincode::serde::encode_to_vec(r, bincode::config::standard()).unwrap())
            .collect();
        assert_eq!(
            &bytes[0][..3],
            &[0, 1, b'm'],
            "variant 0 (mesh), then the name"
        );
        assert_eq!(bytes[1][0], 1, "variant 1: anchor");
        assert_eq!(bytes.last().unwrap()[0], 7, "variant 7: audit entry");
        let upgraded = bytes
            .iter()
            .map(|b| decode_record(b).map(upgrade))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert!(Ledger::from_records(upgraded).unwrap() == ledger);
        assert!(decode_record(&[42]).is_err(), "no such variant");
        let mut trailing = bytes[0].clone();
        trailing.push(0);
        assert!(decode_record(&trailing).is_err(), "trailing bytes");
    }
}
