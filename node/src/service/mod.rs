//! The API's one service layer. The HTTP/JSON face (`api`) and the gRPC face (`grpc`) are thin
//! adapters over [`Service`]: authentication, validation, certificate and token issuance, and
//! every operation live here once, and errors are one typed [`ServiceError`] that each face
//! maps to its own status codes.
//!
//! This module is the core every domain shares: [`Service`] (the control plane, counters, the
//! callers' authentication), linearizable reads and writes, and the error type. Each domain's
//! operations are an `impl Service` block in a module of its own, listed below; adding a
//! domain adds one module and its line here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use x0t_ledger::Command;

use x0t_types::{Actor, KeyRole, MeshId, Tag};

use crate::control::ControlPlane;
use crate::token::{SecretToken, TokenKind};

// The domains, one module each (the registration list of this layer).
mod acl;
mod api_keys;
mod audit;
mod cluster;
mod health;
mod meshes;
mod nodes;

mod error;

pub use audit::{
    AUDIT_PAGE, CSV_COLUMNS, ExportFormat, audit_entry_from_view, audit_entry_view, csv_field,
    csv_row,
};
pub use cluster::{MAX_JOIN_TOKEN_TTL_SECS, MIN_JOIN_TOKEN_TTL_SECS};
pub use error::{ErrorKind, ServiceError};
pub use meshes::mesh_view;
pub use nodes::{
    CERTIFICATE_TTL_MS, DEFAULT_TOKEN_TTL_SECS, MAX_REGISTRATIONS_IN_FLIGHT, NodeFilter,
    TOKEN_TTL_SECS, node_view,
};

/// Who is calling, once their API key checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The key's id.
    pub key_id: String,
    /// What it may do.
    pub role: KeyRole,
}

impl Caller {
    pub(crate) fn actor(&self) -> Actor {
        Actor::ApiKey {
            key_id: self.key_id.clone(),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Registrations accepted (pending or approved).
    pub registrations: AtomicU64,
    /// Nodes approved (by an admin or a token).
    pub approvals: AtomicU64,
    /// Nodes revoked.
    pub revocations: AtomicU64,
    /// Join tokens issued.
    pub tokens_issued: AtomicU64,
    /// Requests refused for missing or bad credentials.
    pub auth_failures: AtomicU64,
    /// HTTP responses by class: 2xx, 4xx, 5xx.
    pub http_responses: [AtomicU64; 3],
}

/// The API's operations over one node's control plane.
#[derive(Clone)]
pub struct Service {
    control: ControlPlane,
    /// The mesh members connected to this anchor: their link states and link events.
    members: Arc<crate::anchor_mesh::AnchorMesh>,
    metrics: Arc<Metrics>,
    registrations: Arc<tokio::sync::Semaphore>,
    policies: acl::PolicyCache,
}

/// Parses a mesh name from a path.
pub fn mesh_id(text: &str) -> Result<MeshId, ServiceError> {
    MeshId::new(text).map_err(|e| ServiceError::bad_request(e.to_string()))
}

fn parse_tags(tags: &[String]) -> Result<Vec<Tag>, ServiceError> {
    let mut parsed = tags
        .iter()
        .map(|t| Tag::new(t.as_str()).map_err(|e| ServiceError::bad_request(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    parsed.sort();
    parsed.dedup();
    if parsed.len() > x0t_crypto::MAX_CERT_TAGS {
        return Err(ServiceError::bad_request(format!(
            "at most {} tags",
            x0t_crypto::MAX_CERT_TAGS
        )));
    }
    Ok(parsed)
}

pub use crate::hex::{hex, unhex};
pub use crate::limits::{MAX_LIST_LIMIT, MAX_POLICY_BODY};

impl Service {
    /// The service over `control`.
    pub fn new(control: ControlPlane, members: Arc<crate::anchor_mesh::AnchorMesh>) -> Self {
        Self {
            control,
            members,
            metrics: Arc::default(),
            registrations: Arc::new(tokio::sync::Semaphore::new(MAX_REGISTRATIONS_IN_FLIGHT)),
            policies: acl::PolicyCache::default(),
        }
    }

    /// The control plane underneath.
    pub fn control(&self) -> &ControlPlane {
        &self.control
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Checks an `Authorization` value (`Bearer x0tadm_…`) against the ledger's API keys.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ServiceError> {
        let unauthorized = |message: &str| {
            self.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            ServiceError::new(ErrorKind::Unauthorized, "unauthorized", message)
        };
        let header = authorization.ok_or_else(|| {
            unauthorized("this route needs an API key: Authorization: Bearer x0tadm_…")
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .and_then(|text| SecretToken::parse(TokenKind::Admin, text))
            .ok_or_else(|| unauthorized("malformed API key"))?;
        self.control
            .read(|ledger| {
                ledger
                    .api_key(&token.id)
                    .filter(|key| token.matches(&key.secret_hash))
                    .map(|key| Caller {
                        key_id: key.key_id.clone(),
                        role: key.role,
                    })
            })
            .ok_or_else(|| unauthorized("unknown or wrong API key"))
    }

    /// Like [`Self::authenticate`], and the key must have the admin role (else 403).
    pub fn authorize_admin(&self, authorization: Option<&str>) -> Result<Caller, ServiceError> {
        let caller = self.authenticate(authorization)?;
        if caller.role != KeyRole::Admin {
            self.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            return Err(ServiceError::new(
                ErrorKind::Forbidden,
                "forbidden",
                format!(
                    "API key {} is a {} key; this needs an admin key",
                    caller.key_id,
                    caller.role.name()
                ),
            ));
        }
        Ok(caller)
    }

    async fn barrier(&self, stale: bool) -> Result<(), ServiceError> {
        if !stale {
            self.control.read_barrier().await?;
        }
        Ok(())
    }

    /// Proposes `command` for `actor` and waits until this node has applied it, so a read
    /// right after sees it.
    async fn write(
        &self,
        actor: Actor,
        command: Command,
    ) -> Result<x0t_ledger::Outcome, ServiceError> {
        let (log_id, outcome) = self.control.write_as(actor, command).await?;
        self.control.wait_applied(log_id.index).await?;
        Ok(outcome)
    }
}
