//! The node lifecycle: registration, approval, rejection, revocation, replacement.

use crate::{NodeOutcome, NodeReject};
use x0t_crypto::{NodeCertificate, SignedRegistration};
use x0t_types::{MeshId, NodeId, NodeState, Timestamp, TokenProof};

use super::certificate::{Expected, public_key_bytes};
use super::{
    Deps, Key, MAX_NODES_PER_MESH, MAX_PENDING_PER_MESH, MAX_REASON_LEN, NodeRecord, Nodes,
};
use crate::domain::Applied;
use crate::{Outcome, Reject};

fn check_reason(reason: &str) -> Result<(), Reject> {
    if reason.len() > MAX_REASON_LEN {
        return Err(Reject::Invalid(format!(
            "reason of {} bytes exceeds {MAX_REASON_LEN}",
            reason.len()
        )));
    }
    Ok(())
}

/// The audit entry's summary of a node.
fn details(node: &NodeRecord) -> String {
    let tags: Vec<&str> = node.tags.iter().map(|t| t.as_str()).collect();
    format!(
        "{} {} {}, state {}, overlay {}, tags [{}]",
        node.device_class,
        node.hostname,
        node.node_id.short(),
        node.state,
        node.overlay_ip
            .map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
        tags.join(",")
    )
}

impl Nodes {
    /// Approves a node with a checked certificate, reserving its address.
    fn approve_with(
        &mut self,
        mesh: &MeshId,
        node_id: &NodeId,
        cert: NodeCertificate,
        bytes: Vec<u8>,
    ) {
        if let Some(node) = self.nodes.get_mut(&(mesh.clone(), *node_id)) {
            node.state = NodeState::Approved;
            node.state_reason = None;
            node.tags = cert.tags.clone();
            node.overlay_ip = Some(cert.overlay_ip);
            node.certificate = Some(bytes);
            node.certificate_not_after = Some(cert.not_after);
            self.overlay_ips
                .insert((mesh.clone(), u32::from(cert.overlay_ip)), *node_id);
        }
    }

    /// Moves a node to `state`, releasing its address.
    fn retire(
        &mut self,
        mesh: &MeshId,
        node_id: &NodeId,
        state: NodeState,
        reason: &str,
        at: Timestamp,
        index: u64,
    ) {
        if let Some(node) = self.nodes.get_mut(&(mesh.clone(), *node_id)) {
            if let Some(ip) = node.overlay_ip
                && self.overlay_ips.get(&(mesh.clone(), u32::from(ip))) == Some(node_id)
            {
                self.overlay_ips.remove(&(mesh.clone(), u32::from(ip)));
            }
            node.state = state;
            node.state_reason = Some(reason.to_owned());
            node.updated_at = at;
            node.updated_index = index;
            self.changed.insert(Key::Node(mesh.clone(), *node_id));
        }
    }

    /// `RegisterNode`: a node asks to join (pending), or is approved at once with a token
    /// that pre-approves (or re-admits a replaced node) and the certificate that came with
    /// it.
    pub(crate) fn register(
        &mut self,
        deps: &Deps<'_>,
        registration: &[u8],
        token: Option<&TokenProof>,
        certificate: Option<&[u8]>,
        now: Timestamp,
        index: u64,
    ) -> Result<Applied, Reject> {
        let signed = SignedRegistration::decode(registration)
            .map_err(|e| Reject::Nodes(NodeReject::BadRegistration(e.to_string())))?;
        let reg = signed
            .verify_self(now)
            .map_err(|e| Reject::Nodes(NodeReject::BadRegistration(e.to_string())))?
            .clone();
        let mesh = reg.mesh.clone();
        deps.meshes.require_mesh(&mesh)?;
        if let Some(existing) = self.get(&mesh, &reg.node_id) {
            return Err(Reject::Nodes(NodeReject::NodeExists {
                node: reg.node_id.to_string(),
                state: existing.state,
            }));
        }
        let counts = self.counts(&mesh);
        if counts.total >= MAX_NODES_PER_MESH {
            return Err(Reject::Nodes(NodeReject::TooManyNodes {
                limit: MAX_NODES_PER_MESH,
            }));
        }
        let token = match token {
            Some(proof) => Some(
                self.check_join_token(&*deps.meshes, &mesh, proof, now)?
                    .clone(),
            ),
            None => None,
        };
        let replaced = token
            .as_ref()
            .and_then(|t| t.for_node)
            .and_then(|old| self.get(&mesh, &old).cloned());
        let approves = token
            .as_ref()
            .is_some_and(|t| t.pre_approved || t.for_node.is_some());
        if !approves && counts.pending >= MAX_PENDING_PER_MESH {
            return Err(Reject::Nodes(NodeReject::TooManyNodes {
                limit: MAX_PENDING_PER_MESH,
            }));
        }
        let mut node = NodeRecord {
            mesh: mesh.clone(),
            node_id: reg.node_id,
            identity_key: public_key_bytes(&reg.identity_key),
            peer_id: reg.peer_id.clone(),
            hostname: reg.hostname.clone(),
            device_class: replaced
                .as_ref()
                .map_or(reg.device_class, |old| old.device_class),
            requested_tags: reg.requested_tags.clone(),
            tags: Vec::new(),
            state: NodeState::PendingApproval,
            state_reason: None,
            registered_at: now,
            registered_index: index,
            updated_at: now,
            updated_index: index,
            overlay_ip: None,
            certificate: None,
            certificate_not_after: None,
            token_id: token.as_ref().map(|t| t.token_id),
            replaces: replaced.as_ref().map(|old| old.node_id),
        };
        let approved = match (approves, certificate) {
            (true, Some(bytes)) => {
                let tags = replaced.as_ref().map_or_else(
                    || token.as_ref().map(|t| t.tags.clone()).unwrap_or_default(),
                    |old| old.tags.clone(),
                );
                let expected = Expected {
                    node: &node,
                    tags: Some(&tags),
                    inherited_ip: replaced.as_ref().and_then(|old| old.overlay_ip),
                };
                Some(self.check_certificate(deps, bytes, expected, now, index)?)
            }
            (true, None) => {
                return Err(Reject::Nodes(NodeReject::BadCertificate(
                    "the token approves at once, but no certificate came with it".to_owned(),
                )));
            }
            (false, Some(_)) => {
                return Err(Reject::Nodes(NodeReject::BadCertificate(
                    "a certificate came without a token that approves".to_owned(),
                )));
            }
            (false, None) => None,
        };
        // Every check passed: change state.
        if let Some(token) = &token {
            if let Some(record) = self.join_tokens.get_mut(&(mesh.clone(), token.token_id)) {
                record.uses += 1;
            }
            self.changed
                .insert(Key::JoinToken(mesh.clone(), token.token_id));
        }
        if let Some(old) = &replaced {
            self.retire(
                &mesh,
                &old.node_id,
                NodeState::Revoked,
                &format!("replaced by {} (re-issued token)", reg.node_id.short()),
                now,
                index,
            );
        }
        node.state = NodeState::PendingApproval;
        self.nodes.insert((mesh.clone(), reg.node_id), node);
        if let Some((cert, bytes)) = approved {
            self.approve_with(&mesh, &reg.node_id, cert, bytes);
        }
        self.changed.insert(Key::Node(mesh.clone(), reg.node_id));
        let node = &self.nodes[&(mesh.clone(), reg.node_id)];
        Ok(Applied::new(
            Outcome::Nodes(NodeOutcome::Registered {
                node_id: reg.node_id,
                state: node.state,
                overlay_ip: node.overlay_ip,
            }),
            reg.node_id.to_string(),
            details(node),
        ))
    }

    /// `ApproveNode`: approves a pending node with the certificate the proposing anchor
    /// signed.
    pub(crate) fn approve(
        &mut self,
        deps: &Deps<'_>,
        mesh: &MeshId,
        node_id: &NodeId,
        certificate: &[u8],
        now: Timestamp,
        index: u64,
    ) -> Result<Applied, Reject> {
        let node = self.existing(deps, mesh, node_id)?;
        if node.state != NodeState::PendingApproval {
            return Err(Reject::Nodes(NodeReject::InvalidState {
                node: node_id.to_string(),
                state: node.state,
                wanted: "pending_approval".to_owned(),
            }));
        }
        let expected = Expected {
            node,
            tags: None,
            inherited_ip: None,
        };
        let (cert, bytes) = self.check_certificate(deps, certificate, expected, now, index)?;
        let ip = cert.overlay_ip;
        self.approve_with(mesh, node_id, cert, bytes);
        let mut summary = String::new();
        if let Some(node) = self.nodes.get_mut(&(mesh.clone(), *node_id)) {
            node.updated_at = now;
            node.updated_index = index;
            summary = details(node);
        }
        self.changed.insert(Key::Node(mesh.clone(), *node_id));
        Ok(Applied::new(
            Outcome::Nodes(NodeOutcome::Approved {
                node_id: *node_id,
                overlay_ip: ip,
            }),
            node_id.to_string(),
            summary,
        ))
    }

    /// A node of an existing mesh, or the refusal naming what is missing.
    pub(super) fn existing(
        &self,
        deps: &Deps<'_>,
        mesh: &MeshId,
        node_id: &NodeId,
    ) -> Result<&NodeRecord, Reject> {
        deps.meshes.require_mesh(mesh)?;
        self.get(mesh, node_id).ok_or_else(|| {
            Reject::Nodes(NodeReject::NoSuchNode {
                mesh: mesh.clone(),
                node: node_id.to_string(),
            })
        })
    }

    /// Rejects a pending node (`to = Rejected`) or revokes a pending or approved one
    /// (`to = Revoked`), releasing its address.
    pub(crate) fn turn_away(
        &mut self,
        deps: &Deps<'_>,
        mesh: &MeshId,
        node_id: &NodeId,
        to: NodeState,
        reason: &str,
        at: (Timestamp, u64),
    ) -> Result<Applied, Reject> {
        check_reason(reason)?;
        let node = self.existing(deps, mesh, node_id)?;
        let (allowed, wanted) = match to {
            NodeState::Revoked => (
                matches!(node.state, NodeState::Approved | NodeState::PendingApproval),
                "approved or pending_approval",
            ),
            _ => (node.state == NodeState::PendingApproval, "pending_approval"),
        };
        if !allowed {
            return Err(Reject::Nodes(NodeReject::InvalidState {
                node: node_id.to_string(),
                state: node.state,
                wanted: wanted.to_owned(),
            }));
        }
        self.retire(mesh, node_id, to, reason, at.0, at.1);
        let outcome = match to {
            NodeState::Revoked => Outcome::Nodes(NodeOutcome::Revoked { node_id: *node_id }),
            _ => Outcome::Nodes(NodeOutcome::Rejected { node_id: *node_id }),
        };
        Ok(Applied::new(
            outcome,
            node_id.to_string(),
            format!("reason {reason:?}"),
        ))
    }
}
