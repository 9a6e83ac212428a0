//! The API's one service layer. The HTTP/JSON face (`api`) and the gRPC face (`grpc`) are thin
//! adapters over [`Service`]: authentication, validation, certificate and token issuance, and
//! every operation live here once, and errors are one typed [`ServiceError`] that each face
//! maps to its own status codes.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use x0t_crypto::{
    AuditEntry, JoinToken, NodeCertificate, SignedJoinToken, SignedNodeCertificate,
    SignedRegistration, verify_chain,
};
use x0t_ledger::{NodeRecord, Reject, hex_id};
use x0t_types::api::{
    AnchorKeyView, AnchorView, ApiKeyView, ApproveNode, AuditEntryView, AuditVerification,
    CertificateStatus, ChainBreak, CreateApiKey, CreateMesh, CreateToken, MeshView, NodeStatus,
    NodeView, Reason, RegisterNode, RotateTokens, TokenView, UpdateSettings,
};
use x0t_types::{
    Actor, Command, DeviceClass, KeyRole, MeshId, MeshSettings, NodeId, NodeState, Tag, Timestamp,
    TokenProof, TokenUsage, base32,
};

use crate::control::{ControlError, ControlPlane, now};

mod acl;
use crate::token::{SecretToken, TokenKind};

/// How long a certificate is valid. Agents renew before it ends (a later release); the
/// ledger's revocation list covers the time in between.
pub const CERTIFICATE_TTL_MS: u64 = 90 * Timestamp::DAY;
/// How far into the past a certificate's validity starts, for verifiers with slow clocks.
pub(crate) use crate::clock::CERTIFICATE_BACKDATE_MS;
/// Default lifetime of a join token.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 24 * 3_600;
/// Shortest and longest join-token lifetime, in seconds.
pub const TOKEN_TTL_SECS: (u64, u64) = (3_600, 30 * 24 * 3_600);
/// Times a proposer retries when another approval took the overlay address it offered.
const ADDRESS_RETRIES: usize = 4;
/// Audit entries read from the ledger at once while exporting or verifying.
pub const AUDIT_PAGE: usize = 256;
/// Longest registration text accepted (base32 of the largest envelope).
const MAX_REGISTRATION_TEXT: usize = 16 * 1024;

/// What kind of failure a [`ServiceError`] is; each face maps it to a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed or invalid input (HTTP 400, gRPC InvalidArgument).
    BadRequest,
    /// No or unknown credentials (401, Unauthenticated).
    Unauthorized,
    /// Valid credentials that may not do this, or a refused token (403, PermissionDenied).
    Forbidden,
    /// No such mesh, node or route (404, NotFound).
    NotFound,
    /// The state does not allow it (409, FailedPrecondition / AlreadyExists).
    Conflict,
    /// The request is larger than allowed (413, ResourceExhausted).
    TooLarge,
    /// No quorum or leader now (503, Unavailable).
    Unavailable,
    /// Well-formed input the domain refuses, e.g. a policy whose tests fail (422,
    /// FailedPrecondition).
    Unprocessable,
    /// A bug or storage failure (500, Internal).
    Internal,
}

/// A typed error of the service layer: a kind, a stable code and a message for humans.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Stable machine-readable code, e.g. `token_used_up`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Where in the request's document the problem is (1-based line, column), if it is in one.
    pub position: Option<(u32, u32)>,
}

impl ServiceError {
    /// A new error.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            position: None,
        }
    }

    /// Malformed input.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, "bad_request", message)
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, "internal", message)
    }
}

/// The one place ledger refusals and control-plane failures get their kind and code.
impl From<ControlError> for ServiceError {
    fn from(error: ControlError) -> Self {
        let message = error.to_string();
        match error {
            ControlError::Rejected(reject) => {
                let (kind, code) = reject_kind(&reject);
                let mut error = Self::new(kind, code, message);
                match reject {
                    Reject::InvalidPolicy { line, column, .. } if line > 0 => {
                        error.position = Some((line, column));
                    }
                    // A failing test points at its `[[test]]` header.
                    Reject::PolicyTestFailed { line, .. } if line > 0 => {
                        error.position = Some((line, 1));
                    }
                    _ => {}
                }
                error
            }
            ControlError::NoLeader(_) | ControlError::Network(_) => {
                Self::new(ErrorKind::Unavailable, "unavailable", message)
            }
            ControlError::Membership(_) => Self::new(ErrorKind::Conflict, "membership", message),
            ControlError::Raft(_) | ControlError::Storage(_) => Self::internal(message),
        }
    }
}

impl From<Reject> for ServiceError {
    fn from(reject: Reject) -> Self {
        ControlError::Rejected(reject).into()
    }
}

fn reject_kind(reject: &Reject) -> (ErrorKind, &'static str) {
    use ErrorKind::*;
    match reject {
        Reject::MeshExists { .. } => (Conflict, "mesh_exists"),
        Reject::NoSuchMesh { .. } => (NotFound, "no_such_mesh"),
        Reject::VersionMismatch { .. } => (Conflict, "version_mismatch"),
        Reject::NoSuchAnchor { .. } => (NotFound, "no_such_anchor"),
        Reject::ApiKeyExists { .. } => (Conflict, "api_key_exists"),
        Reject::InvalidToken => (Forbidden, "invalid_token"),
        Reject::TokenExpired { .. } => (Forbidden, "token_expired"),
        Reject::TokenRotated { .. } => (Forbidden, "token_rotated"),
        Reject::TokenUsedUp { .. } => (Forbidden, "token_used_up"),
        Reject::TooManyAnchorTokens | Reject::TooManyTokens { .. } => (Conflict, "too_many_tokens"),
        Reject::NoSuchNode { .. } => (NotFound, "no_such_node"),
        Reject::NodeExists { .. } => (Conflict, "node_exists"),
        Reject::InvalidState { .. } => (Conflict, "invalid_state"),
        Reject::TooManyNodes { .. } => (Conflict, "too_many_nodes"),
        Reject::OverlayIpTaken { .. } => (Conflict, "overlay_ip_taken"),
        Reject::BadRegistration(_) => (BadRequest, "bad_registration"),
        Reject::BadCertificate(_) => (BadRequest, "bad_certificate"),
        Reject::BadStatement(_) => (Internal, "bad_statement"),
        Reject::Invalid(_) => (BadRequest, "invalid"),
        Reject::AclVersionMismatch { .. } => (Conflict, "version_mismatch"),
        Reject::InvalidPolicy { .. } => (BadRequest, "invalid_policy"),
        Reject::PolicyTestFailed { .. } => (Unprocessable, "policy_test_failed"),
    }
}

/// Who is calling, once their API key checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The key's id.
    pub key_id: String,
    /// What it may do.
    pub role: KeyRole,
}

impl Caller {
    fn actor(&self) -> Actor {
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

/// Filters of `GET /api/v1/meshes/{mesh}/nodes`.
#[derive(Clone, Debug, Default)]
pub struct NodeFilter {
    /// Only nodes in this state.
    pub state: Option<NodeState>,
    /// Only nodes holding (or asking for) this tag.
    pub tag: Option<Tag>,
    /// Only nodes of this class.
    pub device_class: Option<DeviceClass>,
    /// Free text: a substring of the hostname, node id or overlay address.
    pub q: Option<String>,
    /// Skip this many matches.
    pub offset: usize,
    /// Return at most this many.
    pub limit: usize,
}

/// Registrations one node handles at once; more wait their turn. A burst of a thousand
/// devices registering together otherwise starves the Raft heartbeats on a small machine
/// (measured: leadership lost mid-burst on 2 vCPUs).
pub const MAX_REGISTRATIONS_IN_FLIGHT: usize = 64;

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

/// A peer id's text form (base58), or hex if the bytes are not a peer id.
fn peer_id_text(bytes: &[u8]) -> String {
    libp2p::PeerId::from_bytes(bytes).map_or_else(|_| hex(bytes), |p| p.to_string())
}

/// A mesh as the API shows it.
pub fn mesh_view(mesh: &x0t_ledger::Mesh) -> MeshView {
    MeshView {
        name: mesh.id.to_string(),
        description: mesh.settings.description.clone(),
        version: mesh.version,
        plan: mesh.plan,
        token_epoch: mesh.token_epoch,
        created_at_ms: mesh.created_at.as_millis(),
        updated_at_ms: mesh.updated_at.as_millis(),
        updated_index: mesh.updated_index,
    }
}

/// A node as the API shows it.
pub fn node_view(node: &NodeRecord) -> NodeView {
    NodeView {
        node_id: node.node_id.to_string(),
        short_id: node.node_id.short(),
        mesh: node.mesh.to_string(),
        hostname: node.hostname.clone(),
        device_class: node.device_class,
        state: node.state,
        state_reason: node.state_reason.clone(),
        requested_tags: node.requested_tags.iter().map(|t| t.to_string()).collect(),
        tags: node.tags.iter().map(|t| t.to_string()).collect(),
        overlay_ip: node.overlay_ip.map(|ip| ip.to_string()),
        peer_id: peer_id_text(&node.peer_id),
        registered_at_ms: node.registered_at.as_millis(),
        updated_at_ms: node.updated_at.as_millis(),
        certificate_not_after_ms: node.certificate_not_after.map(Timestamp::as_millis),
        token_id: node.token_id.as_ref().map(hex_id),
        replaces: node.replaces.map(|n| n.to_string()),
    }
}

fn node_status(node: &NodeRecord) -> NodeStatus {
    let certificate = node
        .certificate
        .as_ref()
        .filter(|_| node.state == NodeState::Approved)
        .and_then(|bytes| SignedNodeCertificate::decode(bytes).ok())
        .map(|cert| cert.to_text());
    NodeStatus {
        node_id: node.node_id.to_string(),
        state: node.state,
        state_reason: node.state_reason.clone(),
        overlay_ip: node
            .overlay_ip
            .filter(|_| node.state == NodeState::Approved)
            .map(|ip| ip.to_string()),
        certificate,
    }
}

fn matches(node: &NodeRecord, filter: &NodeFilter) -> bool {
    filter.state.is_none_or(|s| node.state == s)
        && filter.device_class.is_none_or(|c| node.device_class == c)
        && filter
            .tag
            .as_ref()
            .is_none_or(|t| node.tags.contains(t) || node.requested_tags.contains(t))
        && filter.q.as_ref().is_none_or(|q| {
            let q = q.to_ascii_lowercase();
            node.hostname.to_ascii_lowercase().contains(&q)
                || node.node_id.to_string().to_ascii_lowercase().contains(&q)
                || node
                    .overlay_ip
                    .is_some_and(|ip| ip.to_string().contains(&q))
        })
}

/// An audit record as an export row.
pub fn audit_entry_view(record: &x0t_ledger::AuditRecord) -> Result<AuditEntryView, ServiceError> {
    let entry = AuditEntry::decode(&record.entry)
        .map_err(|e| ServiceError::internal(format!("stored audit entry {}: {e}", record.seq)))?;
    Ok(AuditEntryView {
        seq: entry.seq,
        log_index: entry.log_index,
        at_ms: entry.at.as_millis(),
        actor: entry.actor.to_string(),
        action: entry.action,
        subject: entry.subject,
        details: entry.details,
        evidence: hex(&entry.evidence),
        prev_hash: hex(&entry.prev_hash),
        hash: hex(&record.hash),
    })
}

/// Rebuilds an entry and its recorded hash from an export row (for `x0t audit verify`).
pub fn audit_entry_from_view(
    mesh: &MeshId,
    view: &AuditEntryView,
) -> Result<(AuditEntry, [u8; 32]), String> {
    let hash32 = |text: &str, what: &str| -> Result<[u8; 32], String> {
        unhex(text)?
            .try_into()
            .map_err(|_| format!("{what} is not 32 bytes"))
    };
    let entry = AuditEntry {
        mesh: Some(mesh.clone()),
        seq: view.seq,
        log_index: view.log_index,
        at: Timestamp(view.at_ms),
        actor: view.actor.parse().map_err(|e| format!("actor: {e}"))?,
        action: view.action.clone(),
        subject: view.subject.clone(),
        details: view.details.clone(),
        evidence: unhex(&view.evidence).map_err(|e| format!("evidence: {e}"))?,
        prev_hash: hash32(&view.prev_hash, "prev_hash")?,
    };
    Ok((entry, hash32(&view.hash, "hash")?))
}

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

    /// Every mesh.
    pub async fn list_meshes(&self, stale: bool) -> Result<Vec<MeshView>, ServiceError> {
        self.barrier(stale).await?;
        Ok(self.control.read(|l| l.meshes().map(mesh_view).collect()))
    }

    /// One mesh.
    pub async fn get_mesh(&self, mesh: &str, stale: bool) -> Result<MeshView, ServiceError> {
        let mesh = mesh_id(mesh)?;
        self.barrier(stale).await?;
        self.control
            .read(|l| l.mesh(&mesh).map(mesh_view))
            .ok_or_else(|| Reject::NoSuchMesh { mesh }.into())
    }

    /// Creates a mesh.
    pub async fn create_mesh(
        &self,
        caller: &Caller,
        body: CreateMesh,
    ) -> Result<MeshView, ServiceError> {
        let command = Command::CreateMesh {
            mesh: mesh_id(&body.name)?,
            settings: MeshSettings {
                description: body.description,
            },
            plan: body.plan.unwrap_or_default(),
        };
        match self.control.write_as(caller.actor(), command).await? {
            (_, x0t_ledger::Outcome::MeshCreated { mesh }) => Ok(mesh_view(&mesh)),
            (_, other) => Err(ServiceError::internal(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }

    /// Replaces a mesh's settings (compare-and-set with `expected_version`).
    pub async fn update_settings(
        &self,
        caller: &Caller,
        mesh: &str,
        body: UpdateSettings,
    ) -> Result<MeshView, ServiceError> {
        let command = Command::UpdateMeshSettings {
            mesh: mesh_id(mesh)?,
            expected_version: body.expected_version,
            settings: MeshSettings {
                description: body.description,
            },
        };
        match self.control.write_as(caller.actor(), command).await? {
            (_, x0t_ledger::Outcome::MeshUpdated { mesh }) => Ok(mesh_view(&mesh)),
            (_, other) => Err(ServiceError::internal(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }

    /// The anchors and their identity keys.
    pub async fn anchors(&self, stale: bool) -> Result<Vec<AnchorView>, ServiceError> {
        self.barrier(stale).await?;
        Ok(self.control.read(|l| {
            l.anchors()
                .map(|a| AnchorView {
                    raft_id: a.raft_id,
                    node_id: a.node_id.to_string(),
                    peer_id: a.peer_id.clone(),
                    addrs: a.addrs.clone(),
                    api_url: a.api_url.clone(),
                    algorithm: a.identity_key.algorithm,
                    public_key: hex(&a.identity_key.bytes),
                })
                .collect()
        }))
    }

    /// Signs a certificate for `node` with this anchor's key.
    fn sign_certificate(
        &self,
        node: &NodeRecord,
        tags: Vec<Tag>,
        overlay_ip: Ipv4Addr,
    ) -> Result<Vec<u8>, ServiceError> {
        let identity_key = x0t_crypto::VerifyingKey::from_bytes(
            x0t_crypto::SigAlgorithm::from_code(node.identity_key.algorithm)
                .ok_or_else(|| ServiceError::internal("stored key of unknown algorithm"))?,
            &node.identity_key.bytes,
        )
        .map_err(|e| ServiceError::internal(e.to_string()))?;
        let now = now();
        let applied = self.control.status().last_applied_index.unwrap_or(0);
        let certificate = NodeCertificate {
            mesh: node.mesh.clone(),
            node_id: node.node_id,
            identity_key,
            peer_id: node.peer_id.clone(),
            overlay_ip,
            tags,
            device_class: node.device_class,
            // The mesh's policy names each class's profile; `apply` checks it is still so.
            pq_profile: self
                .control
                .read(|l| l.pq_profile(&node.mesh, node.device_class)),
            not_before: Timestamp(now.as_millis().saturating_sub(CERTIFICATE_BACKDATE_MS)),
            not_after: now.saturating_add(CERTIFICATE_TTL_MS),
            ledger_index: applied,
            issuer: self.control.identity().node_id(),
        };
        SignedNodeCertificate::sign(certificate, self.control.identity())
            .map(|signed| signed.encode())
            .map_err(|e| ServiceError::internal(format!("signing the certificate: {e}")))
    }

    /// A node asks to join (public: the registration is signed by the node's own key; an
    /// unapproved node gets nothing but a pending record). With a pre-approved or re-issued
    /// token, this anchor signs the certificate at once and the answer carries it.
    pub async fn register(
        &self,
        mesh: &str,
        body: RegisterNode,
    ) -> Result<NodeStatus, ServiceError> {
        let path_mesh = mesh_id(mesh)?;
        if body.registration.len() > MAX_REGISTRATION_TEXT {
            return Err(ServiceError::bad_request(format!(
                "registration of {} characters exceeds {MAX_REGISTRATION_TEXT}",
                body.registration.len()
            )));
        }
        let bytes = base32::decode(body.registration.trim())
            .map_err(|e| ServiceError::bad_request(format!("registration: {e}")))?;
        let signed = SignedRegistration::decode(&bytes).map_err(|e| {
            ServiceError::new(ErrorKind::BadRequest, "bad_registration", e.to_string())
        })?;
        let registration = signed
            .verify_self(now())
            .map_err(|e| {
                ServiceError::new(
                    ErrorKind::BadRequest,
                    "bad_registration",
                    format!("{e} (is this node's clock right?)"),
                )
            })?
            .clone();
        let mesh = registration.mesh.clone();
        if mesh != path_mesh {
            return Err(ServiceError::bad_request(format!(
                "the registration is for mesh {mesh}, but was sent to mesh {path_mesh}"
            )));
        }
        let token = match &body.token {
            None => None,
            Some(text) => Some(SignedJoinToken::from_text(text).map_err(|e| {
                ServiceError::new(ErrorKind::Forbidden, "invalid_token", e.to_string())
            })?),
        };
        let _permit = self
            .registrations
            .acquire()
            .await
            .map_err(|_| ServiceError::internal("the registration queue closed"))?;
        // No read barrier up front: `apply` re-checks everything against the committed state,
        // so local (possibly slightly stale) state is enough to prepare the command; a
        // barrier is paid only when local state refuses, in case it is merely behind.
        let proof = match &token {
            None => None,
            Some(token) => {
                let issuer = token.payload().issuer;
                if self.control.read(|l| l.anchor_key(&issuer)).is_none() {
                    self.control.read_barrier().await?;
                }
                let key = self
                    .control
                    .read(|l| l.anchor_key(&issuer))
                    .ok_or_else(|| {
                        ServiceError::new(
                            ErrorKind::Forbidden,
                            "invalid_token",
                            "the token was not issued by an anchor of this cluster",
                        )
                    })?;
                let payload = token.verify_signature(&key).map_err(|e| {
                    ServiceError::new(ErrorKind::Forbidden, "invalid_token", e.to_string())
                })?;
                if payload.mesh != mesh {
                    return Err(ServiceError::new(
                        ErrorKind::Forbidden,
                        "invalid_token",
                        format!("the token is for mesh {}, not {mesh}", payload.mesh),
                    ));
                }
                Some(TokenProof {
                    token_id: payload.token_id,
                    secret_hash: payload.secret.hash(),
                })
            }
        };
        let command_for = |certificate| Command::RegisterNode {
            registration: bytes.clone(),
            token: proof.clone(),
            certificate,
        };
        let actor = Actor::Node {
            node_id: registration.node_id,
        };
        let mut attempt = 0;
        let mut caught_up = false;
        let outcome = loop {
            attempt += 1;
            // What the token grants, as this anchor's ledger sees it now.
            let grant = proof.as_ref().map(|proof| {
                self.control.read(|l| {
                    let token = l.check_join_token(&mesh, proof, now())?;
                    if !(token.pre_approved || token.for_node.is_some()) {
                        return Ok(None);
                    }
                    let replaced = token.for_node.and_then(|old| l.node(&mesh, &old)).cloned();
                    let draft = NodeRecord {
                        mesh: mesh.clone(),
                        node_id: registration.node_id,
                        identity_key: x0t_types::PublicKeyBytes {
                            algorithm: registration.identity_key.algorithm().code(),
                            bytes: registration.identity_key.as_bytes().to_vec(),
                        },
                        peer_id: registration.peer_id.clone(),
                        hostname: registration.hostname.clone(),
                        device_class: replaced
                            .as_ref()
                            .map_or(registration.device_class, |o| o.device_class),
                        requested_tags: registration.requested_tags.clone(),
                        tags: Vec::new(),
                        state: NodeState::PendingApproval,
                        state_reason: None,
                        registered_at: now(),
                        registered_index: 0,
                        updated_at: now(),
                        updated_index: 0,
                        overlay_ip: None,
                        certificate: None,
                        certificate_not_after: None,
                        token_id: None,
                        replaces: None,
                    };
                    let tags = replaced
                        .as_ref()
                        .map_or_else(|| token.tags.clone(), |o| o.tags.clone());
                    let ip = replaced
                        .as_ref()
                        .and_then(|o| o.overlay_ip)
                        .or_else(|| l.propose_overlay_ip(&mesh, &registration.node_id));
                    Ok::<_, Reject>(Some((draft, tags, ip)))
                })
            });
            let grant = match grant {
                Some(Err(_)) if !caught_up => {
                    caught_up = true;
                    self.control.read_barrier().await?;
                    continue;
                }
                Some(Err(reject)) => return Err(reject.into()),
                Some(Ok(grant)) => grant,
                None => None,
            };
            let certificate = match grant {
                None => None,
                Some((draft, tags, ip)) => {
                    let ip = ip.ok_or_else(|| {
                        ServiceError::new(
                            ErrorKind::Conflict,
                            "overlay_full",
                            "no free overlay address",
                        )
                    })?;
                    Some(self.sign_certificate(&draft, tags, ip)?)
                }
            };
            match self
                .control
                .write_as(actor.clone(), command_for(certificate.clone()))
                .await
            {
                Err(ControlError::Rejected(Reject::OverlayIpTaken { .. }))
                    if attempt < ADDRESS_RETRIES =>
                {
                    self.control.read_barrier().await?;
                }
                Err(e) => return Err(e.into()),
                Ok((_, outcome)) => break (outcome, certificate),
            }
        };
        let (outcome, certificate) = outcome;
        self.metrics.registrations.fetch_add(1, Ordering::Relaxed);
        match outcome {
            x0t_ledger::Outcome::NodeRegistered {
                node_id,
                state,
                overlay_ip,
            } => {
                if state == NodeState::Approved {
                    self.metrics.approvals.fetch_add(1, Ordering::Relaxed);
                }
                Ok(NodeStatus {
                    node_id: node_id.to_string(),
                    state,
                    state_reason: None,
                    overlay_ip: overlay_ip.map(|ip| ip.to_string()),
                    certificate: certificate
                        .filter(|_| state == NodeState::Approved)
                        .and_then(|bytes| SignedNodeCertificate::decode(&bytes).ok())
                        .map(|c| c.to_text()),
                })
            }
            other => Err(ServiceError::internal(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }

    /// What an agent polls: its state and, once approved, its certificate (public: the
    /// certificate is what the node shows every peer anyway).
    pub async fn node_status(
        &self,
        mesh: &str,
        id: &str,
        stale: bool,
    ) -> Result<NodeStatus, ServiceError> {
        let mesh = mesh_id(mesh)?;
        self.barrier(stale).await?;
        self.lookup(&mesh, id, node_status)
    }

    /// Finds a node of a mesh (full or short id) and views it, from local state.
    fn lookup<T>(
        &self,
        mesh: &MeshId,
        id: &str,
        view: impl FnOnce(&NodeRecord) -> T,
    ) -> Result<T, ServiceError> {
        self.control
            .read(|l| {
                if l.mesh(mesh).is_none() {
                    return Err(Reject::NoSuchMesh { mesh: mesh.clone() });
                }
                l.find_node(mesh, id).map(view)
            })
            .map_err(Into::into)
    }

    /// The nodes of a mesh matching `filter`.
    pub async fn list_nodes(
        &self,
        mesh: &str,
        filter: &NodeFilter,
        stale: bool,
    ) -> Result<Vec<NodeView>, ServiceError> {
        let mesh = mesh_id(mesh)?;
        self.barrier(stale).await?;
        self.control.read(|l| {
            if l.mesh(&mesh).is_none() {
                return Err(Reject::NoSuchMesh { mesh: mesh.clone() }.into());
            }
            Ok(l.nodes(&mesh)
                .filter(|n| matches(n, filter))
                .skip(filter.offset)
                .take(filter.limit)
                .map(node_view)
                .collect())
        })
    }

    /// One node.
    pub async fn get_node(
        &self,
        mesh: &str,
        id: &str,
        stale: bool,
    ) -> Result<NodeView, ServiceError> {
        let mesh = mesh_id(mesh)?;
        self.barrier(stale).await?;
        self.lookup(&mesh, id, node_view)
    }

    /// A node record, linearizably.
    async fn fresh_node(&self, mesh: &MeshId, id: &str) -> Result<NodeRecord, ServiceError> {
        self.control.read_barrier().await?;
        self.lookup(mesh, id, NodeRecord::clone)
    }

    async fn node_after(&self, mesh: &MeshId, node_id: &NodeId) -> Result<NodeView, ServiceError> {
        self.control
            .read(|l| l.node(mesh, node_id).map(node_view))
            .ok_or_else(|| ServiceError::internal("the node vanished after the write"))
    }

    /// Approves a pending node: this anchor signs its certificate and proposes it.
    pub async fn approve(
        &self,
        caller: &Caller,
        mesh: &str,
        id: &str,
        body: ApproveNode,
    ) -> Result<NodeView, ServiceError> {
        let mesh = mesh_id(mesh)?;
        let mut node = self.fresh_node(&mesh, id).await?;
        let tags = match &body.tags {
            Some(tags) => parse_tags(tags)?,
            None => node.requested_tags.clone(),
        };
        for attempt in 1.. {
            if node.state != NodeState::PendingApproval {
                return Err(Reject::InvalidState {
                    node: node.node_id.to_string(),
                    state: node.state,
                    wanted: "pending_approval".to_owned(),
                }
                .into());
            }
            let ip = self
                .control
                .read(|l| l.propose_overlay_ip(&mesh, &node.node_id))
                .ok_or_else(|| {
                    ServiceError::new(
                        ErrorKind::Conflict,
                        "overlay_full",
                        "no free overlay address",
                    )
                })?;
            let certificate = self.sign_certificate(&node, tags.clone(), ip)?;
            let command = Command::ApproveNode {
                mesh: mesh.clone(),
                node_id: node.node_id,
                certificate,
            };
            match self.write(caller.actor(), command).await {
                Err(e) if e.code == "overlay_ip_taken" && attempt < ADDRESS_RETRIES => {
                    node = self.fresh_node(&mesh, &node.node_id.to_string()).await?;
                }
                Err(e) => return Err(e),
                Ok(_) => break,
            }
        }
        self.metrics.approvals.fetch_add(1, Ordering::Relaxed);
        self.node_after(&mesh, &node.node_id).await
    }

    /// Rejects a pending node.
    pub async fn reject(
        &self,
        caller: &Caller,
        mesh: &str,
        id: &str,
        body: Reason,
    ) -> Result<NodeView, ServiceError> {
        self.turn_away(caller, mesh, id, body, false).await
    }

    /// Revokes a node: its certificate is listed as revoked.
    pub async fn revoke(
        &self,
        caller: &Caller,
        mesh: &str,
        id: &str,
        body: Reason,
    ) -> Result<NodeView, ServiceError> {
        self.turn_away(caller, mesh, id, body, true).await
    }

    /// Rejects (`revoke = false`) or revokes a node, with a reason for the audit log.
    async fn turn_away(
        &self,
        caller: &Caller,
        mesh: &str,
        id: &str,
        body: Reason,
        revoke: bool,
    ) -> Result<NodeView, ServiceError> {
        let mesh = mesh_id(mesh)?;
        let node = self.fresh_node(&mesh, id).await?;
        let (mesh_, node_id, reason) = (mesh.clone(), node.node_id, body.reason);
        let command = if revoke {
            Command::RevokeNode {
                mesh: mesh_,
                node_id,
                reason,
            }
        } else {
            Command::RejectNode {
                mesh: mesh_,
                node_id,
                reason,
            }
        };
        self.write(caller.actor(), command).await?;
        if revoke {
            self.metrics.revocations.fetch_add(1, Ordering::Relaxed);
        }
        self.node_after(&mesh, &node_id).await
    }

    /// Issues a join token (`for_node`: a re-issued token that replaces that node).
    async fn issue_token(
        &self,
        caller: &Caller,
        mesh: MeshId,
        body: CreateToken,
        for_node: Option<&NodeRecord>,
    ) -> Result<TokenView, ServiceError> {
        let ttl = body.ttl_secs.unwrap_or(DEFAULT_TOKEN_TTL_SECS);
        let (min, max) = TOKEN_TTL_SECS;
        if !(min..=max).contains(&ttl) {
            return Err(ServiceError::bad_request(format!(
                "ttl_secs must be between {min} (1 h) and {max} (30 d), not {ttl}"
            )));
        }
        let usage = match (body.reusable, body.uses) {
            (false, None) => TokenUsage::SingleUse,
            (false, Some(_)) => {
                return Err(ServiceError::bad_request(
                    "uses applies to reusable tokens (add reusable: true)",
                ));
            }
            (true, Some(0)) => {
                return Err(ServiceError::bad_request("uses must be at least 1"));
            }
            (true, max_uses) => TokenUsage::Reusable { max_uses },
        };
        let tags = match for_node {
            Some(node) => node.tags.clone(),
            None => parse_tags(&body.tags)?,
        };
        // Randomness and signing happen here, before anything is proposed.
        let token = JoinToken::generate(
            mesh.clone(),
            usage,
            body.pre_approved,
            tags.clone(),
            now(),
            ttl * 1_000,
            self.control.identity().node_id(),
        )
        .map_err(|e| ServiceError::bad_request(e.to_string()))?;
        let command = Command::AddJoinToken {
            mesh: mesh.clone(),
            token_id: token.token_id,
            secret_hash: token.secret.hash(),
            usage,
            pre_approved: body.pre_approved,
            tags: tags.clone(),
            not_before: token.not_before,
            not_after: token.not_after,
            for_node: for_node.map(|n| n.node_id),
        };
        let signed = SignedJoinToken::sign(token, self.control.identity())
            .map_err(|e| ServiceError::internal(format!("signing the token: {e}")))?;
        self.write(caller.actor(), command).await?;
        self.metrics.tokens_issued.fetch_add(1, Ordering::Relaxed);
        let payload = signed.payload();
        Ok(TokenView {
            token: signed.to_text(),
            token_id: hex_id(&payload.token_id),
            mesh: mesh.to_string(),
            usage: match usage {
                TokenUsage::SingleUse => "single_use",
                TokenUsage::Reusable { .. } => "reusable",
            }
            .to_owned(),
            max_uses: usage.limit(),
            pre_approved: payload.pre_approved,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            not_before_ms: payload.not_before.as_millis(),
            not_after_ms: payload.not_after.as_millis(),
            for_node: for_node.map(|n| n.node_id.to_string()),
        })
    }

    /// Issues a join token for a mesh.
    pub async fn create_token(
        &self,
        caller: &Caller,
        mesh: &str,
        body: CreateToken,
    ) -> Result<TokenView, ServiceError> {
        self.issue_token(caller, mesh_id(mesh)?, body, None).await
    }

    /// Issues a single-use token that re-admits an approved node under a new key (a wiped or
    /// replaced device): the new registration is approved at once with the node's tags and
    /// address, and the old identity is revoked.
    pub async fn reissue_token(
        &self,
        caller: &Caller,
        mesh: &str,
        id: &str,
        body: CreateToken,
    ) -> Result<TokenView, ServiceError> {
        let mesh = mesh_id(mesh)?;
        let node = self.fresh_node(&mesh, id).await?;
        if body.reusable || body.uses.is_some() || !body.tags.is_empty() {
            return Err(ServiceError::bad_request(
                "a re-issued token is single use and carries the node's own tags",
            ));
        }
        self.issue_token(caller, mesh, body, Some(&node)).await
    }

    /// Invalidates every join token of the mesh issued so far.
    pub async fn rotate_tokens(
        &self,
        caller: &Caller,
        mesh: &str,
    ) -> Result<RotateTokens, ServiceError> {
        let command = Command::RotateJoinTokens {
            mesh: mesh_id(mesh)?,
        };
        match self.write(caller.actor(), command).await? {
            x0t_ledger::Outcome::JoinTokensRotated { epoch, invalidated } => {
                Ok(RotateTokens { epoch, invalidated })
            }
            other => Err(ServiceError::internal(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }

    /// Creates an API key (shown once; the ledger keeps its hash).
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        body: CreateApiKey,
    ) -> Result<ApiKeyView, ServiceError> {
        let key = SecretToken::generate(TokenKind::Admin);
        let command = Command::AddApiKey {
            key_id: key.id.clone(),
            secret_hash: key.secret_hash(),
            label: body.label,
            role: body.role,
        };
        self.write(caller.actor(), command).await?;
        Ok(ApiKeyView {
            key: key.to_text(),
            key_id: key.id.clone(),
            role: body.role,
        })
    }

    /// What this anchor's ledger says about a certificate: signature, validity now, and the
    /// node's current state (revoked, superseded…).
    pub async fn verify_certificate(
        &self,
        mesh: &str,
        text: &str,
        stale: bool,
    ) -> Result<CertificateStatus, ServiceError> {
        let mesh = mesh_id(mesh)?;
        let signed = SignedNodeCertificate::from_text(text).map_err(|e| {
            ServiceError::new(ErrorKind::BadRequest, "bad_certificate", e.to_string())
        })?;
        self.barrier(stale).await?;
        let payload = signed.payload().clone();
        let invalid = |state: Option<NodeState>, reason: String| CertificateStatus {
            valid: false,
            node_id: Some(payload.node_id.to_string()),
            state,
            reason: Some(reason),
        };
        let Some(key) = self.control.read(|l| l.anchor_key(&payload.issuer)) else {
            return Ok(invalid(
                None,
                format!(
                    "issued by {}, which is not an anchor",
                    payload.issuer.short()
                ),
            ));
        };
        if let Err(e) = signed.verify(&key, now()) {
            return Ok(invalid(None, e.to_string()));
        }
        if payload.mesh != mesh {
            return Ok(invalid(None, format!("issued for mesh {}", payload.mesh)));
        }
        let node = self
            .control
            .read(|l| l.node(&mesh, &payload.node_id).cloned());
        Ok(match node {
            None => invalid(None, "the ledger has no such node".to_owned()),
            Some(node) if node.state == NodeState::Revoked => invalid(
                Some(node.state),
                format!("revoked: {}", node.state_reason.unwrap_or_default()),
            ),
            Some(node) if node.state != NodeState::Approved => {
                invalid(Some(node.state), format!("the node is {}", node.state))
            }
            Some(node) if node.certificate.as_deref() != Some(&signed.encode()[..]) => invalid(
                Some(node.state),
                "superseded by a newer certificate".to_owned(),
            ),
            Some(node) => CertificateStatus {
                valid: true,
                node_id: Some(node.node_id.to_string()),
                state: Some(node.state),
                reason: None,
            },
        })
    }

    /// Keys of every anchor that ever signed for this cluster.
    pub fn anchor_keys(&self) -> Vec<AnchorKeyView> {
        self.control.read(|l| {
            l.anchor_keys()
                .map(|(id, key)| AnchorKeyView {
                    node_id: id.to_string(),
                    algorithm: key.algorithm,
                    public_key: hex(&key.bytes),
                })
                .collect()
        })
    }

    /// The head of a mesh's audit chain, checking that the mesh exists (linearizable).
    pub async fn audit_head(
        &self,
        mesh: &str,
    ) -> Result<(MeshId, x0t_ledger::ChainHead), ServiceError> {
        let mesh = mesh_id(mesh)?;
        self.control.read_barrier().await?;
        self.control
            .read(|l| {
                l.mesh(&mesh)
                    .map(|_| l.audit_head(Some(&mesh)))
                    .ok_or_else(|| Reject::NoSuchMesh { mesh: mesh.clone() })
            })
            .map(|head| (mesh, head))
            .map_err(Into::into)
    }

    /// Up to [`AUDIT_PAGE`] entries of a chain from `from`, but none at or past `until`.
    pub fn audit_page(
        &self,
        mesh: &MeshId,
        from: u64,
        until: u64,
    ) -> Result<Vec<AuditEntryView>, ServiceError> {
        self.control.read(|l| {
            l.audit_entries(Some(mesh), from, AUDIT_PAGE)
                .take_while(|r| r.seq < until)
                .map(audit_entry_view)
                .collect()
        })
    }

    /// The mesh's topology as its members report it to this anchor: the approved nodes and
    /// every link their signed link states mention, with health.
    pub fn mesh_topology(&self, mesh: &str) -> Result<x0t_types::api::Topology, ServiceError> {
        let mesh = mesh_id(mesh)?;
        let nodes = self.approved_nodes(&mesh, |n| {
            (n.node_id, n.overlay_ip.map(|ip| ip.to_string()))
        })?;
        Ok(self.members.topology(&mesh, nodes))
    }

    /// `f` of each approved node of `mesh` (an unknown mesh is an error).
    fn approved_nodes<T>(
        &self,
        mesh: &MeshId,
        f: impl Fn(&NodeRecord) -> T,
    ) -> Result<Vec<T>, ServiceError> {
        Ok(self.control.read(|l| {
            l.mesh(mesh)
                .map(|_| {
                    l.nodes(mesh)
                        .filter(|n| n.state == NodeState::Approved)
                        .map(&f)
                        .collect::<Vec<_>>()
                })
                .ok_or_else(|| Reject::NoSuchMesh { mesh: mesh.clone() })
        })?)
    }

    /// The mesh's self-healing figures as this anchor's members report them.
    pub fn mesh_slo(&self, mesh: &str) -> Result<x0t_types::api::MeshSlo, ServiceError> {
        let mesh = mesh_id(mesh)?;
        // Approval is an approved node's last state change.
        let approved = self.approved_nodes(&mesh, |n| (n.node_id, n.updated_at.as_millis()))?;
        Ok(self.members.slo(&mesh, &approved))
    }

    /// The link events this anchor saw in `mesh` after event `after`, then each new one as
    /// it happens; the stream ends when the node shuts down. An unknown mesh is an error
    /// before the stream starts.
    pub fn follow_mesh_events(
        &self,
        mesh: &str,
        after: u64,
    ) -> Result<impl futures::Stream<Item = crate::events::MeshEvent> + use<>, ServiceError> {
        let mesh = mesh_id(mesh)?;
        self.control
            .read(|l| l.mesh(&mesh).map(|_| ()))
            .ok_or_else(|| Reject::NoSuchMesh { mesh: mesh.clone() })?;
        let members = self.members.clone();
        let (changed, shutdown) = (members.subscribe_events(), members.stopped());
        Ok(crate::events::follow_events(
            move |after| members.events_after(&mesh, after, 256),
            after,
            changed,
            shutdown,
        ))
    }

    /// Verifies a mesh's whole audit chain here, signatures included.
    pub async fn verify_audit(&self, mesh: &str) -> Result<AuditVerification, ServiceError> {
        let (mesh, head) = self.audit_head(mesh).await?;
        let mut entries = Vec::with_capacity(head.len as usize);
        let mut from = 0;
        while from < head.len {
            let page: Vec<(AuditEntry, [u8; 32])> = self.control.read(|l| {
                l.audit_entries(Some(&mesh), from, AUDIT_PAGE)
                    .take_while(|r| r.seq < head.len)
                    .map(|r| {
                        AuditEntry::decode(&r.entry)
                            .map(|e| (e, r.hash))
                            .map_err(|e| ServiceError::internal(format!("entry {}: {e}", r.seq)))
                    })
                    .collect::<Result<_, _>>()
            })?;
            if page.is_empty() {
                break;
            }
            from += page.len() as u64;
            entries.extend(page);
        }
        let control = self.control.clone();
        let result = tokio::task::spawn_blocking(move || {
            let checked = entries.len() as u64;
            let verdict = verify_chain(&entries, &|id| control.read(|l| l.anchor_key(id)));
            (checked, verdict)
        })
        .await
        .map_err(|e| ServiceError::internal(e.to_string()))?;
        let (checked, verdict) = result;
        let mut first_bad = verdict.err().map(|e| ChainBreak {
            index: e.index as u64,
            reason: e.reason,
        });
        if first_bad.is_none() && checked != head.len {
            first_bad = Some(ChainBreak {
                index: checked,
                reason: format!("the ledger holds {checked} of {} entries", head.len),
            });
        }
        Ok(AuditVerification {
            ok: first_bad.is_none(),
            entries: checked,
            head_hash: hex(&head.hash),
            first_bad,
        })
    }
}

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// One JSON document ([`AuditExport`]).
    Json,
    /// `#` header lines (format, mesh, head, anchor keys), a column row, one row per entry.
    Csv,
}

/// The CSV columns of an audit export, in order.
pub const CSV_COLUMNS: [&str; 10] = [
    "seq",
    "log_index",
    "at_ms",
    "actor",
    "action",
    "subject",
    "details",
    "evidence",
    "prev_hash",
    "hash",
];

/// Quotes a CSV field when it needs it (RFC 4180).
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// One entry as a CSV row, with its line ending.
pub fn csv_row(e: &AuditEntryView) -> String {
    let fields = [
        e.seq.to_string(),
        e.log_index.to_string(),
        e.at_ms.to_string(),
        csv_field(&e.actor),
        csv_field(&e.action),
        csv_field(&e.subject),
        csv_field(&e.details),
        e.evidence.clone(),
        e.prev_hash.clone(),
        e.hash.clone(),
    ];
    format!("{}\r\n", fields.join(","))
}

impl Service {
    /// The mesh's audit chain up to its head at call time, as chunks of an export document
    /// (JSON or CSV, with the chain hashes and the anchors' keys so anyone can verify it).
    /// Entries are read in pages of [`AUDIT_PAGE`] while the stream is consumed, so a long
    /// chain never sits in memory as one document.
    pub async fn export_audit(
        &self,
        mesh: &str,
        format: ExportFormat,
    ) -> Result<
        impl futures::Stream<Item = Result<Vec<u8>, ServiceError>> + Send + 'static,
        ServiceError,
    > {
        let (mesh, head) = self.audit_head(mesh).await?;
        let anchors = self.anchor_keys();
        let header = match format {
            ExportFormat::Json => {
                let shell = x0t_types::api::AuditExport {
                    format: "x0t-audit-v1".to_owned(),
                    mesh: mesh.to_string(),
                    head_len: head.len,
                    head_hash: hex(&head.hash),
                    anchors,
                    entries: Vec::new(),
                };
                let text = serde_json::to_string(&shell)
                    .map_err(|e| ServiceError::internal(e.to_string()))?;
                // Cut the empty entries array's closing "]}": entries and the closer follow.
                text.strip_suffix("]}").unwrap_or(&text).to_owned()
            }
            ExportFormat::Csv => {
                let mut text = format!(
                    "# x0t-audit-v1,mesh={},head_len={},head_hash={}\r\n",
                    mesh,
                    head.len,
                    hex(&head.hash)
                );
                for anchor in &anchors {
                    text.push_str(&format!(
                        "# anchor,{},{},{}\r\n",
                        anchor.node_id, anchor.algorithm, anchor.public_key
                    ));
                }
                text.push_str(&CSV_COLUMNS.join(","));
                text.push_str("\r\n");
                text
            }
        };
        let service = self.clone();
        // State: next entry to read, whether one was written (JSON commas), whether done.
        let state = (Some(header), 0u64, true, false);
        Ok(futures::stream::unfold(
            state,
            move |(header, next, first, done)| {
                let service = service.clone();
                let mesh = mesh.clone();
                async move {
                    if let Some(header) = header {
                        return Some((Ok(header.into_bytes()), (None, next, first, done)));
                    }
                    if done {
                        return None;
                    }
                    let page = match service.audit_page(&mesh, next, head.len) {
                        Ok(page) => page,
                        Err(e) => return Some((Err(e), (None, next, first, true))),
                    };
                    if page.is_empty() {
                        let closer = match format {
                            ExportFormat::Json => "]}",
                            ExportFormat::Csv => "",
                        };
                        return Some((Ok(closer.as_bytes().to_vec()), (None, next, first, true)));
                    }
                    let mut chunk = String::new();
                    let mut first = first;
                    for entry in &page {
                        match format {
                            ExportFormat::Json => {
                                if !first {
                                    chunk.push(',');
                                }
                                first = false;
                                match serde_json::to_string(entry) {
                                    Ok(text) => chunk.push_str(&text),
                                    Err(e) => {
                                        return Some((
                                            Err(ServiceError::internal(e.to_string())),
                                            (None, next, first, true),
                                        ));
                                    }
                                }
                            }
                            ExportFormat::Csv => chunk.push_str(&csv_row(entry)),
                        }
                    }
                    let next = next + page.len() as u64;
                    Some((Ok(chunk.into_bytes()), (None, next, first, false)))
                }
            },
        ))
    }
}

impl Service {
    /// The enrollment calls strangers send over libp2p, for the enrollment face to answer
    /// (the `enrollment` module); `None` once taken.
    pub(crate) fn take_enrollments(
        &self,
    ) -> Option<tokio::sync::mpsc::Receiver<crate::control::Enrollment>> {
        self.control.take_enrollments()
    }
}
