//! Each mesh's ACL policy: the document as the admin wrote it, its version, and what the
//! ledger itself needs from it (the PQ profile per device class, for certificates).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use x0t_policy::{Policy, PolicyError};
use x0t_types::{Actor, DeviceClass, MeshId, PqProfile, Timestamp};

use crate::{Ledger, Outcome, RecordKey, Reject};

/// Versions of a mesh's policy kept (the current one included), for `acl get --version` and
/// rollback; older ones are forgotten (the audit chain keeps every version's digest).
pub const MAX_ACL_VERSIONS: usize = 32;

/// A mesh's current policy document.
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

impl Ledger {
    /// A mesh's current policy, if one was ever set (none: deny everything, default profiles).
    pub fn acl(&self, mesh: &MeshId) -> Option<&AclRecord> {
        self.acl_history(mesh).next()
    }

    /// One kept version of a mesh's policy.
    pub fn acl_version(&self, mesh: &MeshId, version: u64) -> Option<&AclRecord> {
        self.acls.get(&(mesh.clone(), version))
    }

    /// The kept versions of a mesh's policy, newest first (at most [`MAX_ACL_VERSIONS`]).
    pub fn acl_history(&self, mesh: &MeshId) -> impl Iterator<Item = &AclRecord> {
        self.acls
            .range((mesh.clone(), 0)..=(mesh.clone(), u64::MAX))
            .rev()
            .map(|(_, record)| record)
    }

    /// The PQ profile a node of `class` gets in `mesh`, under the mesh's current policy.
    pub fn pq_profile(&self, mesh: &MeshId, class: DeviceClass) -> PqProfile {
        self.acl(mesh)
            .and_then(|acl| acl.pq_profiles.get(&class).copied())
            .unwrap_or_else(|| class.default_pq_profile())
    }

    /// Replaces a mesh's policy after parsing it and running its tests.
    pub(crate) fn set_acl(
        &mut self,
        mesh: &MeshId,
        document: &str,
        expected_version: Option<u64>,
        actor: &Actor,
        at: (Timestamp, u64),
    ) -> Result<Outcome, Reject> {
        if !self.meshes.contains_key(mesh) {
            return Err(Reject::NoSuchMesh { mesh: mesh.clone() });
        }
        let current = self.acl(mesh).map_or(0, |acl| acl.version);
        if let Some(expected) = expected_version
            && expected != current
        {
            return Err(Reject::AclVersionMismatch {
                mesh: mesh.clone(),
                expected,
                actual: current,
            });
        }
        let policy = Policy::parse(document).map_err(policy_reject)?;
        let version = current + 1;
        let record = AclRecord {
            mesh: mesh.clone(),
            version,
            document: document.to_owned(),
            digest: x0t_crypto::policy_digest(document),
            updated_by: actor.clone(),
            updated_at: at.0,
            updated_index: at.1,
            rules: policy.document().rules.len() as u32,
            tests: policy.document().tests.len() as u32,
            pq_profiles: DeviceClass::ALL
                .into_iter()
                .map(|class| (class, policy.pq_profile(class)))
                .collect(),
        };
        self.acls.insert((mesh.clone(), version), record);
        self.changed.insert(RecordKey::Acl(mesh.clone(), version));
        let forgotten: Vec<u64> = self
            .acl_history(mesh)
            .skip(MAX_ACL_VERSIONS)
            .map(|acl| acl.version)
            .collect();
        for old in forgotten {
            self.acls.remove(&(mesh.clone(), old));
            self.changed.insert(RecordKey::Acl(mesh.clone(), old));
        }
        Ok(Outcome::AclSet { version })
    }
}

/// The refusal for a document the policy engine refused (the service layer uses it too, so
/// a document refused before proposing reads the same as one refused by `apply`).
pub fn policy_reject(error: PolicyError) -> Reject {
    if let PolicyError::TestFailed { line, .. } = error {
        return Reject::PolicyTestFailed {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            message: error.to_string(),
        };
    }
    // Line and column 0: the error points at no position (a document over the size limit).
    let (line, column) = error.position().unwrap_or((0, 0));
    Reject::InvalidPolicy {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
        message: error.to_string(),
    }
}
