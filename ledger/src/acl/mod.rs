//! The ACL domain: each mesh's policy document as the admin wrote it, its version
//! (compare-and-set), the last [`MAX_ACL_VERSIONS`] versions, and what the ledger itself needs
//! from it (the PQ profile per device class, which certificates must carry). A document is
//! parsed and its tests run inside `apply`, so every replica accepts or refuses the same one.

mod command;
pub use command::{AclCommand, AclOutcome, AclReject};
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use x0t_policy::{Policy, PolicyError};
use x0t_types::{Actor, DeviceClass, MeshId, PqProfile, Timestamp};

use crate::domain::{Applied, At, Domain};
use crate::{Ledger, Outcome, Reject};

/// Versions of a mesh's policy kept (the current one included), for `acl get --version` and
/// rollback; older ones are forgotten (the audit chain keeps every version's digest).
pub const MAX_ACL_VERSIONS: usize = 32;

/// One version of a mesh's policy document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclRecord {
    /// The mesh.
    pub mesh: MeshId,
    /// 1 for the first document, +1 per update.
    pub version: u64,
    /// The TOML document, exactly as set.
    pub document: String,
    /// `x0t_crypto::policy_digest` of the document.
    pub digest: [u8; 32],
    /// Who set it.
    pub updated_by: Actor,
    /// When (the leader's time).
    pub updated_at: Timestamp,
    /// Log index of the change.
    pub updated_index: u64,
    /// Rules in the document (built-in profile rules included).
    pub rules: u32,
    /// Policy tests in the document.
    pub tests: u32,
    /// The PQ profile of every device class under this document.
    pub pq_profiles: BTreeMap<DeviceClass, PqProfile>,
}

/// What the ACL domain needs from the meshes domain.
pub(crate) trait MeshExists {
    /// `Ok` when the mesh exists, its refusal otherwise.
    fn require_mesh(&self, mesh: &MeshId) -> Result<(), Reject>;
}

/// The policies' part of the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Acls {
    /// Each mesh's kept versions (none: the default, deny everything).
    versions: BTreeMap<(MeshId, u64), AclRecord>,
    changed: BTreeSet<Key>,
}

/// A policy record's key, as stored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Key {
    /// One version of a mesh's policy.
    Version(MeshId, u64),
}

/// A policy record, as stored.
#[derive(Serialize, Deserialize)]
pub(crate) enum Value {
    /// One version of a mesh's policy.
    Version(AclRecord),
}

impl Domain for Acls {
    const NAME: &'static str = "acl";
    type Key = Key;
    type Value = Value;

    fn key_of(value: &Value) -> Key {
        match value {
            Value::Version(acl) => Key::Version(acl.mesh.clone(), acl.version),
        }
    }

    fn get(&self, key: &Key) -> Option<Value> {
        match key {
            Key::Version(mesh, version) => self
                .versions
                .get(&(mesh.clone(), *version))
                .cloned()
                .map(Value::Version),
        }
    }

    fn values(&self) -> Vec<Value> {
        self.versions
            .values()
            .cloned()
            .map(Value::Version)
            .collect()
    }

    fn load(&mut self, value: Value) {
        match value {
            Value::Version(acl) => {
                self.versions.insert((acl.mesh.clone(), acl.version), acl);
            }
        }
    }

    fn changes(&self) -> &BTreeSet<Key> {
        &self.changed
    }

    fn changes_mut(&mut self) -> &mut BTreeSet<Key> {
        &mut self.changed
    }
}

impl Acls {
    /// A mesh's kept versions, newest first.
    fn history(&self, mesh: &MeshId) -> impl Iterator<Item = &AclRecord> {
        self.versions
            .range((mesh.clone(), 0)..=(mesh.clone(), u64::MAX))
            .rev()
            .map(|(_, record)| record)
    }

    /// A mesh's current policy.
    pub(crate) fn current(&self, mesh: &MeshId) -> Option<&AclRecord> {
        self.history(mesh).next()
    }

    /// The PQ profile a node of `class` gets in `mesh`, under the mesh's current policy.
    pub(crate) fn pq_profile(&self, mesh: &MeshId, class: DeviceClass) -> PqProfile {
        self.current(mesh)
            .and_then(|acl| acl.pq_profiles.get(&class).copied())
            .unwrap_or_else(|| class.default_pq_profile())
    }

    /// `SetAcl`: replaces a mesh's policy after parsing it and running its tests.
    pub(crate) fn set(
        &mut self,
        meshes: &dyn MeshExists,
        mesh: &MeshId,
        document: &str,
        expected_version: Option<u64>,
        actor: &Actor,
        at: At,
    ) -> Result<Applied, Reject> {
        meshes.require_mesh(mesh)?;
        let current = self.current(mesh).map_or(0, |acl| acl.version);
        if let Some(expected) = expected_version
            && expected != current
        {
            return Err(Reject::Acl(AclReject::VersionMismatch {
                mesh: mesh.clone(),
                expected,
                actual: current,
            }));
        }
        let policy = Policy::parse(document).map_err(policy_reject)?;
        let version = current + 1;
        let record = AclRecord {
            mesh: mesh.clone(),
            version,
            document: document.to_owned(),
            digest: x0t_crypto::policy_digest(document),
            updated_by: actor.clone(),
            updated_at: at.timestamp,
            updated_index: at.index,
            rules: policy.document().rules.len() as u32,
            tests: policy.document().tests.len() as u32,
            pq_profiles: DeviceClass::ALL
                .into_iter()
                .map(|class| (class, policy.pq_profile(class)))
                .collect(),
        };
        let details = format!(
            "version {}, {} rule(s), {} test(s), digest {}",
            record.version,
            record.rules,
            record.tests,
            record
                .digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        self.versions.insert((mesh.clone(), version), record);
        self.changed.insert(Key::Version(mesh.clone(), version));
        let forgotten: Vec<u64> = self
            .history(mesh)
            .skip(MAX_ACL_VERSIONS)
            .map(|acl| acl.version)
            .collect();
        for old in forgotten {
            self.versions.remove(&(mesh.clone(), old));
            self.changed.insert(Key::Version(mesh.clone(), old));
        }
        Ok(Applied::new(
            Outcome::Acl(AclOutcome::Set { version }),
            mesh.to_string(),
            details,
        ))
    }
}

impl Ledger {
    /// A mesh's current policy, if one was ever set (none: deny everything, default profiles).
    pub fn acl(&self, mesh: &MeshId) -> Option<&AclRecord> {
        self.acl.current(mesh)
    }

    /// One kept version of a mesh's policy.
    pub fn acl_version(&self, mesh: &MeshId, version: u64) -> Option<&AclRecord> {
        self.acl.versions.get(&(mesh.clone(), version))
    }

    /// The kept versions of a mesh's policy, newest first (at most [`MAX_ACL_VERSIONS`]).
    pub fn acl_history(&self, mesh: &MeshId) -> impl Iterator<Item = &AclRecord> {
        self.acl.history(mesh)
    }

    /// The PQ profile a node of `class` gets in `mesh`, under the mesh's current policy.
    pub fn pq_profile(&self, mesh: &MeshId, class: DeviceClass) -> PqProfile {
        self.acl.pq_profile(mesh, class)
    }
}

/// The refusal for a document the policy engine refused (the service layer uses it too, so
/// a document refused before proposing reads the same as one refused by `apply`).
pub fn policy_reject(error: PolicyError) -> Reject {
    if let PolicyError::TestFailed { line, .. } = error {
        return Reject::Acl(AclReject::PolicyTestFailed {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            message: error.to_string(),
        });
    }
    // Line and column 0: the error points at no position (a document over the size limit).
    let (line, column) = error.position().unwrap_or((0, 0));
    Reject::Acl(AclReject::InvalidPolicy {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
        message: error.to_string(),
    })
}
