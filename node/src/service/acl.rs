//! ACL operations of the service layer: read a mesh's policy, replace it (checked here first
//! for a quick answer, then again by the ledger's `apply`, the authority), and explain a flow.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use x0t_ledger::AclReject;
use x0t_ledger::{AclCommand, Command};
use x0t_ledger::{AclOutcome, MeshReject, Outcome};

use x0t_ledger::{AclRecord, Ledger, Reject, policy_reject};
use x0t_policy::{Endpoint, Flow, Policy, Protocol};
use x0t_types::api::{
    AclDecision, AclValidation, AclVersionView, AclView, ClassProfile, ExplainAcl, SetAcl,
    ValidateAcl,
};
use x0t_types::{DeviceClass, MeshId};

use super::{Caller, ErrorKind, Service, ServiceError, hex, mesh_id};

/// Compiled policies by mesh, with the version they were compiled from: a document is
/// parsed once per version, not once per `explain`.
#[derive(Clone, Debug, Default)]
pub(super) struct PolicyCache(Arc<Mutex<BTreeMap<MeshId, CompiledPolicy>>>);

/// A policy version and its compiled form.
type CompiledPolicy = (u64, Arc<Policy>);

/// Longest endpoint text accepted by `explain`.
const MAX_ENDPOINT_TEXT: usize = 4_096;

fn acl_view(mesh: &MeshId, record: Option<&AclRecord>) -> AclView {
    let profiles = |class: DeviceClass| {
        record
            .and_then(|r| r.pq_profiles.get(&class).copied())
            .unwrap_or_else(|| class.default_pq_profile())
    };
    AclView {
        mesh: mesh.to_string(),
        version: record.map_or(0, |r| r.version),
        document: record.map_or_else(String::new, |r| r.document.clone()),
        digest: hex(&record.map_or_else(|| x0t_crypto::policy_digest(""), |r| r.digest)),
        updated_at: record.map(|r| r.updated_at.to_string()),
        updated_by: record.map(|r| r.updated_by.to_string()),
        rules: record.map_or(0, |r| r.rules),
        tests: record.map_or(0, |r| r.tests),
        pq_profiles: DeviceClass::ALL
            .into_iter()
            .map(|device_class| ClassProfile {
                device_class,
                pq_profile: profiles(device_class),
            })
            .collect(),
    }
}

/// The endpoint an `explain` side names: attributes (`tag:…`, `class:…`, `node:…`), or a
/// node of the mesh by id, short id or hostname.
fn endpoint(ledger: &Ledger, mesh: &MeshId, text: &str) -> Result<Endpoint, ServiceError> {
    if text.len() > MAX_ENDPOINT_TEXT {
        return Err(ServiceError::bad_request("endpoint text too long"));
    }
    let text = text.trim();
    if text.contains(':') {
        return text
            .parse::<Endpoint>()
            .map_err(|e| ServiceError::bad_request(format!("endpoint {text:?}: {e}")));
    }
    let node = match ledger.find_node(mesh, text) {
        Ok(node) => node,
        Err(not_found) => ledger
            .nodes(mesh)
            .find(|n| n.hostname == text)
            .ok_or(not_found)?,
    };
    Ok(Endpoint::node(
        node.node_id,
        node.device_class,
        node.tags.iter().cloned(),
    ))
}

impl Service {
    /// A mesh's ACL policy, the current one or a kept older `version` (version 0 and an
    /// empty document: the default, deny everything).
    pub async fn get_acl(
        &self,
        mesh: &str,
        version: Option<u64>,
        stale: bool,
    ) -> Result<AclView, ServiceError> {
        let mesh = mesh_id(mesh)?;
        self.barrier(stale).await?;
        self.control.read(|l| {
            if l.mesh(&mesh).is_none() {
                return Err(Reject::Meshes(MeshReject::NoSuchMesh { mesh: mesh.clone() }).into());
            }
            match version {
                None => Ok(acl_view(&mesh, l.acl(&mesh))),
                Some(0) if l.acl_history(&mesh).next().is_none() => Ok(acl_view(&mesh, None)),
                Some(v) => l
                    .acl_version(&mesh, v)
                    .map(|record| acl_view(&mesh, Some(record)))
                    .ok_or_else(|| {
                        ServiceError::new(
                            ErrorKind::NotFound,
                            "no_such_policy_version",
                            format!(
                                "mesh {mesh} has no policy version {v} (the last {} versions are kept; see acl history)",
                                x0t_ledger::MAX_ACL_VERSIONS
                            ),
                        )
                    }),
            }
        })
    }

    /// The kept versions of a mesh's policy, newest first.
    pub async fn acl_history(
        &self,
        mesh: &str,
        stale: bool,
    ) -> Result<Vec<AclVersionView>, ServiceError> {
        let mesh = mesh_id(mesh)?;
        self.barrier(stale).await?;
        self.control.read(|l| {
            if l.mesh(&mesh).is_none() {
                return Err(Reject::Meshes(MeshReject::NoSuchMesh { mesh: mesh.clone() }).into());
            }
            Ok(l.acl_history(&mesh)
                .map(|r| AclVersionView {
                    version: r.version,
                    digest: hex(&r.digest),
                    updated_at: r.updated_at.to_string(),
                    updated_by: r.updated_by.to_string(),
                    rules: r.rules,
                    tests: r.tests,
                })
                .collect())
        })
    }

    /// Replaces a mesh's policy: validated and tested here, then committed through Raft
    /// (where `apply` validates and tests it again, and the audit chain records it).
    pub async fn set_acl(
        &self,
        caller: &Caller,
        mesh: &str,
        body: SetAcl,
    ) -> Result<AclView, ServiceError> {
        let mesh = mesh_id(mesh)?;
        // Refuse a bad document before it costs a log entry.
        Policy::parse(&body.document).map_err(|e| ServiceError::from(policy_reject(e)))?;
        let command = Command::Acl(AclCommand::Set {
            mesh: mesh.clone(),
            document: body.document,
            expected_version: body.expected_version,
        });
        match self.write(caller.actor(), command).await? {
            Outcome::Acl(AclOutcome::Set { .. }) => {
                self.control.read(|l| Ok(acl_view(&mesh, l.acl(&mesh))))
            }
            other => Err(ServiceError::internal(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }

    /// Checks a document as `PUT …/acl` would (syntax, limits, its tests) without saving it.
    pub fn validate_acl(&self, body: ValidateAcl) -> Result<AclValidation, ServiceError> {
        let policy =
            Policy::parse(&body.document).map_err(|e| ServiceError::from(policy_reject(e)))?;
        Ok(AclValidation {
            rules: u32::try_from(policy.document().rules.len()).unwrap_or(u32::MAX),
            tests: u32::try_from(policy.document().tests.len()).unwrap_or(u32::MAX),
            pq_profiles: DeviceClass::ALL
                .into_iter()
                .map(|device_class| ClassProfile {
                    device_class,
                    pq_profile: policy.pq_profile(device_class),
                })
                .collect(),
        })
    }

    /// The mesh's current policy, compiled (cached per version).
    pub fn policy(&self, mesh: &MeshId) -> (u64, Arc<Policy>) {
        let cache = || {
            self.policies
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let current = self
            .control
            .read(|l| l.acl(mesh).map_or(0, |acl| acl.version));
        if let Some((cached, policy)) = cache().get(mesh)
            && *cached == current
        {
            return (current, policy.clone());
        }
        // A miss: copy the document out (up to 4 MiB, so not on every call) and compile it
        // outside the lock. The ledger accepted it, so it parses; its tests passed then.
        let (version, document) = self.control.read(|l| {
            l.acl(mesh)
                .map_or((0, None), |acl| (acl.version, Some(acl.document.clone())))
        });
        let policy = Arc::new(
            document
                .and_then(|d| x0t_policy::PolicyDocument::parse(&d).ok())
                .map_or_else(Policy::deny_all, Policy::compile),
        );
        cache().insert(mesh.clone(), (version, policy.clone()));
        (version, policy)
    }

    /// Explains whether `src` may open a flow to `dst`, and why.
    pub async fn explain_acl(
        &self,
        mesh: &str,
        body: ExplainAcl,
        stale: bool,
    ) -> Result<AclDecision, ServiceError> {
        let mesh = mesh_id(mesh)?;
        self.barrier(stale).await?;
        let protocol = match body.proto.as_deref() {
            None | Some("") => Protocol::Tcp,
            Some(text) => text
                .parse::<Protocol>()
                .map_err(ServiceError::bad_request)?,
        };
        if protocol != Protocol::Icmp && body.port == 0 {
            return Err(ServiceError::bad_request(
                "a tcp or udp flow needs a port (1-65535)",
            ));
        }
        let (src, dst) = self.control.read(|l| {
            if l.mesh(&mesh).is_none() {
                return Err(ServiceError::from(Reject::Meshes(MeshReject::NoSuchMesh {
                    mesh: mesh.clone(),
                })));
            }
            Ok((
                endpoint(l, &mesh, &body.src)?,
                endpoint(l, &mesh, &body.dst)?,
            ))
        })?;
        let (version, policy) = match &body.document {
            // A draft: validated, not tested (explaining is how one finds why a test fails).
            Some(draft) => (
                0,
                Arc::new(Policy::compile(
                    x0t_policy::PolicyDocument::parse(draft)
                        .map_err(|e| ServiceError::from(policy_reject(e)))?,
                )),
            ),
            None => self.policy(&mesh),
        };
        Ok(policy.explain(
            &Flow {
                src,
                dst,
                protocol,
                port: body.port,
            },
            version,
        ))
    }
}

/// The kind and stable code of each refusal of the ACL domain.
pub(super) fn reject_kind(reject: &AclReject) -> (ErrorKind, &'static str) {
    match reject {
        AclReject::VersionMismatch { .. } => (ErrorKind::Conflict, "version_mismatch"),
        AclReject::InvalidPolicy { .. } => (ErrorKind::BadRequest, "invalid_policy"),
        AclReject::PolicyTestFailed { .. } => (ErrorKind::Unprocessable, "policy_test_failed"),
    }
}
