//! Nodes: registration (`register`), the admin's lifecycle (approve with a certificate this
//! anchor signs, reject, revoke), reads and filters, certificate checks, and join tokens
//! (`tokens`).

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use x0t_ledger::{Command, NodeCommand};
use x0t_ledger::{MeshReject, NodeReject};

use x0t_crypto::{NodeCertificate, SignedNodeCertificate};
use x0t_ledger::{NodeRecord, Reject, hex_id};
use x0t_types::api::{ApproveNode, CertificateStatus, NodeStatus, NodeView, Reason};
use x0t_types::{DeviceClass, MeshId, NodeId, NodeState, Tag, Timestamp};

use super::{Caller, ErrorKind, Service, ServiceError, hex, mesh_id, parse_tags};
use crate::control::now;

mod register;
mod tokens;

pub use tokens::{DEFAULT_TOKEN_TTL_SECS, TOKEN_TTL_SECS};

/// How long a certificate is valid. Agents renew before it ends (a later release); the
/// ledger's revocation list covers the time in between.
pub const CERTIFICATE_TTL_MS: u64 = 90 * Timestamp::DAY;
/// How far into the past a certificate's validity starts, for verifiers with slow clocks.
pub(crate) use crate::clock::CERTIFICATE_BACKDATE_MS;
/// Times a proposer retries when another approval took the overlay address it offered.
const ADDRESS_RETRIES: usize = 4;

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

/// A peer id's text form (base58), or hex if the bytes are not a peer id.
fn peer_id_text(bytes: &[u8]) -> String {
    libp2p::PeerId::from_bytes(bytes).map_or_else(|_| hex(bytes), |p| p.to_string())
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

impl Service {
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
                    return Err(Reject::Meshes(MeshReject::NoSuchMesh {
                        mesh: mesh.clone(),
                    }));
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
                return Err(Reject::Meshes(MeshReject::NoSuchMesh { mesh: mesh.clone() }).into());
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
                return Err(Reject::Nodes(NodeReject::InvalidState {
                    node: node.node_id.to_string(),
                    state: node.state,
                    wanted: "pending_approval".to_owned(),
                })
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
            let command = Command::Nodes(NodeCommand::Approve {
                mesh: mesh.clone(),
                node_id: node.node_id,
                certificate,
            });
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
            Command::Nodes(NodeCommand::Revoke {
                mesh: mesh_,
                node_id,
                reason,
            })
        } else {
            Command::Nodes(NodeCommand::Reject {
                mesh: mesh_,
                node_id,
                reason,
            })
        };
        self.write(caller.actor(), command).await?;
        if revoke {
            self.metrics.revocations.fetch_add(1, Ordering::Relaxed);
        }
        self.node_after(&mesh, &node_id).await
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
}

/// The kind and stable code of each refusal of the nodes domain.
pub(super) fn reject_kind(reject: &NodeReject) -> (ErrorKind, &'static str) {
    use ErrorKind::*;
    match reject {
        NodeReject::InvalidToken => (Forbidden, "invalid_token"),
        NodeReject::TokenExpired { .. } => (Forbidden, "token_expired"),
        NodeReject::TokenRotated { .. } => (Forbidden, "token_rotated"),
        NodeReject::TokenUsedUp { .. } => (Forbidden, "token_used_up"),
        NodeReject::TooManyTokens { .. } => (Conflict, "too_many_tokens"),
        NodeReject::NoSuchNode { .. } => (NotFound, "no_such_node"),
        NodeReject::NodeExists { .. } => (Conflict, "node_exists"),
        NodeReject::InvalidState { .. } => (Conflict, "invalid_state"),
        NodeReject::TooManyNodes { .. } => (Conflict, "too_many_nodes"),
        NodeReject::OverlayIpTaken { .. } => (Conflict, "overlay_ip_taken"),
        NodeReject::BadRegistration(_) => (BadRequest, "bad_registration"),
        NodeReject::BadCertificate(_) => (BadRequest, "bad_certificate"),
    }
}
