//! A node's own registration: public, authenticated by the node's ML-DSA signature. Without a
//! token it can only create a pending record; with a pre-approved or re-issued token this
//! anchor signs the certificate at once.

use std::sync::atomic::Ordering;
use x0t_ledger::{Command, NodeCommand};
use x0t_ledger::{NodeOutcome, NodeReject, Outcome};

use x0t_crypto::{SignedJoinToken, SignedNodeCertificate, SignedRegistration};
use x0t_ledger::{NodeRecord, Reject};
use x0t_types::api::{NodeStatus, RegisterNode};
use x0t_types::{Actor, NodeState, TokenProof, base32};

use super::ADDRESS_RETRIES;
use crate::control::{ControlError, now};
use crate::service::{ErrorKind, Service, ServiceError, mesh_id};

/// Longest registration text accepted (base32 of the largest envelope).
const MAX_REGISTRATION_TEXT: usize = 16 * 1024;

impl Service {
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
        let command_for = |certificate| {
            Command::Nodes(NodeCommand::Register {
                registration: bytes.clone(),
                token: proof.clone(),
                certificate,
            })
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
                Err(ControlError::Rejected(Reject::Nodes(NodeReject::OverlayIpTaken {
                    ..
                }))) if attempt < ADDRESS_RETRIES => {
                    self.control.read_barrier().await?;
                }
                Err(e) => return Err(e.into()),
                Ok((_, outcome)) => break (outcome, certificate),
            }
        };
        let (outcome, certificate) = outcome;
        self.metrics.registrations.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Nodes(NodeOutcome::Registered {
                node_id,
                state,
                overlay_ip,
            }) => {
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
}
