//! The node lifecycle: registration, approval with a certificate, rejection, revocation,
//! join tokens and their rotation. Part of [`Ledger::apply`]; pure like the rest.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use x0t_crypto::{
    NodeCertificate, OVERLAY_NETWORK, SigAlgorithm, SignedNodeCertificate, SignedRegistration,
    VerifyingKey, is_overlay_ip,
};
use x0t_types::{
    DeviceClass, MeshId, NodeId, NodeState, PublicKeyBytes, Tag, Timestamp, TokenProof, TokenUsage,
};

use crate::{Ledger, Outcome, RecordKey, Reject, constant_time_eq};

/// Most join tokens one mesh keeps at once (expired and rotated-out ones are forgotten when a
/// new one is added).
pub const MAX_JOIN_TOKENS_PER_MESH: usize = 1_024;
/// Most nodes waiting for approval in one mesh: registration is open to anyone, so this
/// bounds what a stranger can make the ledger hold.
pub const MAX_PENDING_PER_MESH: usize = 10_000;
/// Most nodes (in any state) one mesh holds.
pub const MAX_NODES_PER_MESH: usize = 200_000;
/// Longest rejection or revocation reason.
pub const MAX_REASON_LEN: usize = 256;
/// Shortest and longest join-token lifetime.
pub const TOKEN_TTL_RANGE_MS: (u64, u64) = (Timestamp::HOUR, 30 * Timestamp::DAY);
/// How far a certificate's `not_before` may lie ahead of the proposal's time (clock skew
/// between the signing anchor and the leader).
pub const CERTIFICATE_SKEW_MS: u64 = 5 * 60 * 1_000;

/// A node as the ledger records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Its mesh.
    pub mesh: MeshId,
    /// Its id (hash of its identity key).
    pub node_id: NodeId,
    /// Its ML-DSA identity public key.
    pub identity_key: PublicKeyBytes,
    /// Its libp2p peer id, as bytes.
    #[serde(with = "x0t_types::bytes")]
    pub peer_id: Vec<u8>,
    /// Its hostname.
    pub hostname: String,
    /// Its device class.
    pub device_class: DeviceClass,
    /// The tags it asked for.
    pub requested_tags: Vec<Tag>,
    /// The tags it was granted (those of its certificate).
    pub tags: Vec<Tag>,
    /// Where it is in the lifecycle.
    pub state: NodeState,
    /// Why it was rejected or revoked.
    pub state_reason: Option<String>,
    /// When it registered.
    pub registered_at: Timestamp,
    /// Log index of its registration.
    pub registered_index: u64,
    /// When its state last changed.
    pub updated_at: Timestamp,
    /// Log index of its last change.
    pub updated_index: u64,
    /// Its overlay address (kept after revocation for the record; no longer reserved).
    pub overlay_ip: Option<Ipv4Addr>,
    /// Its signed certificate (envelope bytes), once approved.
    #[serde(with = "x0t_types::bytes::option")]
    pub certificate: Option<Vec<u8>>,
    /// End of its certificate's validity.
    pub certificate_not_after: Option<Timestamp>,
    /// The join token it registered with, if any.
    pub token_id: Option<[u8; 16]>,
    /// The node this one replaced (re-issued token).
    pub replaces: Option<NodeId>,
}

/// A join token as the ledger records it: the hash of its secret, never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenRecord {
    /// The mesh it admits into.
    pub mesh: MeshId,
    /// Its id.
    pub token_id: [u8; 16],
    /// Hash of its secret.
    pub secret_hash: [u8; 32],
    /// How often it may be used.
    pub usage: TokenUsage,
    /// How often it was used.
    pub uses: u32,
    /// Whether it approves at once.
    pub pre_approved: bool,
    /// Tags it grants.
    pub tags: Vec<Tag>,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity (exclusive).
    pub not_after: Timestamp,
    /// The mesh's rotation epoch when it was created; an older epoch is invalid.
    pub epoch: u64,
    /// The node it re-admits (`reissue-token`).
    pub for_node: Option<NodeId>,
    /// When it was recorded.
    pub created_at: Timestamp,
}

/// The overlay address a node is offered: derived from its id, so the same node gets the same
/// address from any anchor, then the next free one (linear probing) on a collision. Skips the
/// network and broadcast addresses of 100.64.0.0/10.
pub fn overlay_ip_for(node_id: &NodeId, taken: impl Fn(Ipv4Addr) -> bool) -> Option<Ipv4Addr> {
    let (network, prefix) = OVERLAY_NETWORK;
    let size = 1u32 << (32 - prefix);
    let base = u32::from(network);
    let bytes = node_id.as_bytes();
    let start = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) % size;
    (0..size)
        .map(|step| base + (start.wrapping_add(step) % size))
        .filter(|&ip| ip != base && ip != base + size - 1)
        .map(Ipv4Addr::from)
        .find(|&ip| !taken(ip))
}

/// The decoded key of a record, or a reject naming what is wrong.
pub(crate) fn verifying_key(key: &PublicKeyBytes) -> Result<VerifyingKey, Reject> {
    let algorithm = SigAlgorithm::from_code(key.algorithm)
        .ok_or_else(|| Reject::Invalid(format!("unknown key algorithm {}", key.algorithm)))?;
    VerifyingKey::from_bytes(algorithm, &key.bytes)
        .map_err(|e| Reject::Invalid(format!("identity key: {e}")))
}

fn public_key_bytes(key: &VerifyingKey) -> PublicKeyBytes {
    PublicKeyBytes {
        algorithm: key.algorithm().code(),
        bytes: key.as_bytes().to_vec(),
    }
}

fn check_reason(reason: &str) -> Result<(), Reject> {
    if reason.len() > MAX_REASON_LEN {
        return Err(Reject::Invalid(format!(
            "reason of {} bytes exceeds {MAX_REASON_LEN}",
            reason.len()
        )));
    }
    Ok(())
}

/// What a certificate must say about the node it is for.
struct Expected<'a> {
    node: &'a NodeRecord,
    tags: Option<&'a [Tag]>,
    /// The address it may carry even though a record holds it (the node it replaces).
    inherited_ip: Option<Ipv4Addr>,
}

impl Ledger {
    /// A node of a mesh.
    pub fn node(&self, mesh: &MeshId, node_id: &NodeId) -> Option<&NodeRecord> {
        self.nodes.get(&(mesh.clone(), *node_id))
    }

    /// Every node of a mesh, by id.
    pub fn nodes(&self, mesh: &MeshId) -> impl Iterator<Item = &NodeRecord> {
        self.nodes
            .range((mesh.clone(), NodeId::from_bytes([0; 32]))..)
            .take_while(move |((m, _), _)| m == mesh)
            .map(|(_, node)| node)
    }

    /// Finds a node by its full id text or its short form (the first 16 characters), which
    /// must then be unambiguous within the mesh.
    pub fn find_node(&self, mesh: &MeshId, id: &str) -> Result<&NodeRecord, Reject> {
        if let Ok(node_id) = id.parse::<NodeId>() {
            return self.node(mesh, &node_id).ok_or_else(|| Reject::NoSuchNode {
                mesh: mesh.clone(),
                node: id.to_owned(),
            });
        }
        if !id.is_ascii() {
            return Err(Reject::NoSuchNode {
                mesh: mesh.clone(),
                node: id.chars().take(60).collect(),
            });
        }
        let id = id.to_ascii_lowercase();
        // Whole groups of 8 base32 characters are whole bytes: narrow to the ids starting with
        // them (a 16-character short id is exactly 10 bytes) instead of scanning the mesh.
        let whole = id.len() / 8 * 8;
        let (low, high) = match x0t_types::base32::decode(&id[..whole]) {
            Ok(prefix) if !prefix.is_empty() && prefix.len() <= 32 => {
                let (mut low, mut high) = ([0u8; 32], [0xffu8; 32]);
                low[..prefix.len()].copy_from_slice(&prefix);
                high[..prefix.len()].copy_from_slice(&prefix);
                (low, high)
            }
            _ => ([0u8; 32], [0xffu8; 32]),
        };
        let range =
            (mesh.clone(), NodeId::from_bytes(low))..=(mesh.clone(), NodeId::from_bytes(high));
        let mut found = self
            .nodes
            .range(range)
            .map(|(_, node)| node)
            .filter(|n| !id.is_empty() && n.node_id.to_string().starts_with(&id));
        match (found.next(), found.next()) {
            (Some(node), None) => Ok(node),
            (Some(_), Some(_)) => Err(Reject::Invalid(format!(
                "node id prefix {id} matches several nodes; give more characters"
            ))),
            (None, _) => Err(Reject::NoSuchNode {
                mesh: mesh.clone(),
                node: id,
            }),
        }
    }

    /// A join token by mesh and id.
    pub fn join_token(&self, mesh: &MeshId, token_id: &[u8; 16]) -> Option<&JoinTokenRecord> {
        self.join_tokens.get(&(mesh.clone(), *token_id))
    }

    /// Every join token of a mesh (including used-up, expired and rotated-out ones not yet
    /// forgotten).
    pub fn join_tokens(&self, mesh: &MeshId) -> impl Iterator<Item = &JoinTokenRecord> {
        self.join_tokens
            .range((mesh.clone(), [0u8; 16])..)
            .take_while(move |((m, _), _)| m == mesh)
            .map(|(_, token)| token)
    }

    /// Whether `ip` is reserved in `mesh` (held by an approved node).
    pub fn overlay_ip_taken(&self, mesh: &MeshId, ip: Ipv4Addr) -> bool {
        self.overlay_ips
            .contains_key(&(mesh.clone(), u32::from(ip)))
    }

    /// The address a proposer should put in `node_id`'s certificate.
    pub fn propose_overlay_ip(&self, mesh: &MeshId, node_id: &NodeId) -> Option<Ipv4Addr> {
        overlay_ip_for(node_id, |ip| self.overlay_ip_taken(mesh, ip))
    }

    /// Checks a token the way registering with it will (`now`: the caller's clock).
    pub fn check_join_token(
        &self,
        mesh: &MeshId,
        proof: &TokenProof,
        now: Timestamp,
    ) -> Result<&JoinTokenRecord, Reject> {
        let current_epoch = self.meshes.get(mesh).map_or(0, |m| m.token_epoch);
        let token = self
            .join_token(mesh, &proof.token_id)
            .filter(|t| constant_time_eq(&t.secret_hash, &proof.secret_hash))
            .ok_or(Reject::InvalidToken)?;
        let id = hex_id(&token.token_id);
        if token.epoch != current_epoch {
            return Err(Reject::TokenRotated { token_id: id });
        }
        if now < token.not_before || now >= token.not_after {
            return Err(Reject::TokenExpired {
                token_id: id,
                expires_at: token.not_after,
            });
        }
        if token.usage.limit().is_some_and(|limit| token.uses >= limit) {
            return Err(Reject::TokenUsedUp {
                token_id: id,
                uses: token.uses,
            });
        }
        if let Some(old) = token.for_node
            && self
                .node(mesh, &old)
                .is_none_or(|n| n.state != NodeState::Approved)
        {
            return Err(Reject::InvalidState {
                node: old.to_string(),
                state: self
                    .node(mesh, &old)
                    .map_or(NodeState::Revoked, |n| n.state),
                wanted: "approved (to be replaced)".to_owned(),
            });
        }
        Ok(token)
    }

    /// Checks a signed certificate against the node record and the recorded anchors.
    fn check_certificate(
        &self,
        bytes: &[u8],
        expected: Expected<'_>,
        now: Timestamp,
        index: u64,
    ) -> Result<(NodeCertificate, Vec<u8>), Reject> {
        let bad = |reason: String| Reject::BadCertificate(reason);
        let signed = SignedNodeCertificate::decode(bytes).map_err(|e| bad(e.to_string()))?;
        let issuer = signed.payload().issuer;
        let key = self
            .anchor_key(&issuer)
            .ok_or_else(|| bad(format!("signed by {}, not an anchor", issuer.short())))?;
        let cert = signed
            .verify_signature(&key)
            .map_err(|e| bad(e.to_string()))?
            .clone();
        let node = expected.node;
        if cert.mesh != node.mesh
            || cert.node_id != node.node_id
            || public_key_bytes(&cert.identity_key) != node.identity_key
            || cert.peer_id != node.peer_id
            || cert.device_class != node.device_class
        {
            return Err(bad(
                "names another mesh, node, key, peer id or device class".to_owned(),
            ));
        }
        // The mesh's policy decides each class's profile (the class default without one).
        let wanted = self.pq_profile(&node.mesh, node.device_class);
        if cert.pq_profile != wanted {
            return Err(bad(format!(
                "PQ profile {} is not the {} profile the mesh's policy gives a {}",
                cert.pq_profile.name(),
                wanted.name(),
                node.device_class
            )));
        }
        if let Some(tags) = expected.tags
            && cert.tags != tags
        {
            return Err(bad("tags differ from the token's".to_owned()));
        }
        if cert.not_before > now.saturating_add(CERTIFICATE_SKEW_MS) || cert.not_after <= now {
            return Err(bad("validity does not cover the present".to_owned()));
        }
        if cert.ledger_index > index {
            return Err(bad(format!(
                "claims ledger index {} beyond {index}",
                cert.ledger_index
            )));
        }
        if !is_overlay_ip(cert.overlay_ip)
            || (self.overlay_ip_taken(&node.mesh, cert.overlay_ip)
                && expected.inherited_ip != Some(cert.overlay_ip))
        {
            return Err(Reject::OverlayIpTaken {
                ip: cert.overlay_ip.to_string(),
            });
        }
        Ok((cert, bytes.to_vec()))
    }

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
            self.changed.insert(RecordKey::Node(mesh.clone(), *node_id));
        }
    }

    pub(crate) fn register_node(
        &mut self,
        registration: &[u8],
        token: Option<&TokenProof>,
        certificate: Option<&[u8]>,
        now: Timestamp,
        index: u64,
    ) -> Result<(Outcome, MeshId, NodeId), Reject> {
        let signed = SignedRegistration::decode(registration)
            .map_err(|e| Reject::BadRegistration(e.to_string()))?;
        let reg = signed
            .verify_self(now)
            .map_err(|e| Reject::BadRegistration(e.to_string()))?
            .clone();
        let mesh = reg.mesh.clone();
        if !self.meshes.contains_key(&mesh) {
            return Err(Reject::NoSuchMesh { mesh });
        }
        if let Some(existing) = self.node(&mesh, &reg.node_id) {
            return Err(Reject::NodeExists {
                node: reg.node_id.to_string(),
                state: existing.state,
            });
        }
        let counts = self.node_counts(&mesh);
        if counts.total >= MAX_NODES_PER_MESH {
            return Err(Reject::TooManyNodes {
                limit: MAX_NODES_PER_MESH,
            });
        }
        let token = match token {
            Some(proof) => Some(self.check_join_token(&mesh, proof, now)?.clone()),
            None => None,
        };
        let replaced = token
            .as_ref()
            .and_then(|t| t.for_node)
            .and_then(|old| self.node(&mesh, &old).cloned());
        let approves = token
            .as_ref()
            .is_some_and(|t| t.pre_approved || t.for_node.is_some());
        if !approves && counts.pending >= MAX_PENDING_PER_MESH {
            return Err(Reject::TooManyNodes {
                limit: MAX_PENDING_PER_MESH,
            });
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
                Some(self.check_certificate(bytes, expected, now, index)?)
            }
            (true, None) => {
                return Err(Reject::BadCertificate(
                    "the token approves at once, but no certificate came with it".to_owned(),
                ));
            }
            (false, Some(_)) => {
                return Err(Reject::BadCertificate(
                    "a certificate came without a token that approves".to_owned(),
                ));
            }
            (false, None) => None,
        };
        // Every check passed: change state.
        if let Some(token) = &token {
            if let Some(record) = self.join_tokens.get_mut(&(mesh.clone(), token.token_id)) {
                record.uses += 1;
            }
            self.changed
                .insert(RecordKey::JoinToken(mesh.clone(), token.token_id));
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
        self.changed
            .insert(RecordKey::Node(mesh.clone(), reg.node_id));
        let node = &self.nodes[&(mesh.clone(), reg.node_id)];
        Ok((
            Outcome::NodeRegistered {
                node_id: reg.node_id,
                state: node.state,
                overlay_ip: node.overlay_ip,
            },
            mesh,
            reg.node_id,
        ))
    }

    pub(crate) fn approve_node(
        &mut self,
        mesh: &MeshId,
        node_id: &NodeId,
        certificate: &[u8],
        now: Timestamp,
        index: u64,
    ) -> Result<Outcome, Reject> {
        let node = self.existing_node(mesh, node_id)?;
        if node.state != NodeState::PendingApproval {
            return Err(Reject::InvalidState {
                node: node_id.to_string(),
                state: node.state,
                wanted: "pending_approval".to_owned(),
            });
        }
        let expected = Expected {
            node,
            tags: None,
            inherited_ip: None,
        };
        let (cert, bytes) = self.check_certificate(certificate, expected, now, index)?;
        let ip = cert.overlay_ip;
        self.approve_with(mesh, node_id, cert, bytes);
        if let Some(node) = self.nodes.get_mut(&(mesh.clone(), *node_id)) {
            node.updated_at = now;
            node.updated_index = index;
        }
        self.changed.insert(RecordKey::Node(mesh.clone(), *node_id));
        Ok(Outcome::NodeApproved {
            node_id: *node_id,
            overlay_ip: ip,
        })
    }

    fn existing_node(&self, mesh: &MeshId, node_id: &NodeId) -> Result<&NodeRecord, Reject> {
        if !self.meshes.contains_key(mesh) {
            return Err(Reject::NoSuchMesh { mesh: mesh.clone() });
        }
        self.node(mesh, node_id).ok_or_else(|| Reject::NoSuchNode {
            mesh: mesh.clone(),
            node: node_id.to_string(),
        })
    }

    /// Rejects a pending node (`to = Rejected`) or revokes a pending or approved one
    /// (`to = Revoked`), releasing its address.
    pub(crate) fn turn_away(
        &mut self,
        mesh: &MeshId,
        node_id: &NodeId,
        to: NodeState,
        reason: &str,
        at: (Timestamp, u64),
    ) -> Result<Outcome, Reject> {
        check_reason(reason)?;
        let node = self.existing_node(mesh, node_id)?;
        let (allowed, wanted) = match to {
            NodeState::Revoked => (
                matches!(node.state, NodeState::Approved | NodeState::PendingApproval),
                "approved or pending_approval",
            ),
            _ => (node.state == NodeState::PendingApproval, "pending_approval"),
        };
        if !allowed {
            return Err(Reject::InvalidState {
                node: node_id.to_string(),
                state: node.state,
                wanted: wanted.to_owned(),
            });
        }
        self.retire(mesh, node_id, to, reason, at.0, at.1);
        Ok(match to {
            NodeState::Revoked => Outcome::NodeRevoked { node_id: *node_id },
            _ => Outcome::NodeRejected { node_id: *node_id },
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_join_token(
        &mut self,
        mesh: &MeshId,
        token_id: [u8; 16],
        secret_hash: [u8; 32],
        usage: TokenUsage,
        pre_approved: bool,
        tags: &[Tag],
        validity: (Timestamp, Timestamp),
        for_node: Option<NodeId>,
        now: Timestamp,
    ) -> Result<Outcome, Reject> {
        let epoch = self
            .meshes
            .get(mesh)
            .ok_or_else(|| Reject::NoSuchMesh { mesh: mesh.clone() })?
            .token_epoch;
        let (not_before, not_after) = validity;
        let ttl = not_after.as_millis().saturating_sub(not_before.as_millis());
        let (min, max) = TOKEN_TTL_RANGE_MS;
        if not_after <= not_before || !(min..=max).contains(&ttl) {
            return Err(Reject::Invalid(format!(
                "a join token lives between 1 hour and 30 days, not {} s",
                ttl / 1_000
            )));
        }
        if usage == (TokenUsage::Reusable { max_uses: Some(0) }) {
            return Err(Reject::Invalid("a usage limit of 0 admits nobody".into()));
        }
        if tags.len() > x0t_crypto::MAX_CERT_TAGS || tags.windows(2).any(|p| p[0] >= p[1]) {
            return Err(Reject::Invalid(format!(
                "at most {} tags, sorted and unique",
                x0t_crypto::MAX_CERT_TAGS
            )));
        }
        if let Some(old) = for_node {
            let node = self.existing_node(mesh, &old)?;
            if node.state != NodeState::Approved {
                return Err(Reject::InvalidState {
                    node: old.to_string(),
                    state: node.state,
                    wanted: "approved".to_owned(),
                });
            }
        }
        if self.join_token(mesh, &token_id).is_some() {
            return Err(Reject::Invalid("join token id in use".into()));
        }
        // Forget tokens nobody can use any more, then check the bound.
        let dead: Vec<[u8; 16]> = self
            .join_tokens(mesh)
            .filter(|t| {
                t.epoch != epoch
                    || t.not_after <= now
                    || t.usage.limit().is_some_and(|limit| t.uses >= limit)
            })
            .map(|t| t.token_id)
            .collect();
        let live = self.join_tokens(mesh).count() - dead.len();
        if live >= MAX_JOIN_TOKENS_PER_MESH {
            return Err(Reject::TooManyTokens {
                limit: MAX_JOIN_TOKENS_PER_MESH,
            });
        }
        for id in dead {
            self.join_tokens.remove(&(mesh.clone(), id));
            self.changed.insert(RecordKey::JoinToken(mesh.clone(), id));
        }
        self.join_tokens.insert(
            (mesh.clone(), token_id),
            JoinTokenRecord {
                mesh: mesh.clone(),
                token_id,
                secret_hash,
                usage,
                uses: 0,
                pre_approved,
                tags: tags.to_vec(),
                not_before,
                not_after,
                epoch,
                for_node,
                created_at: now,
            },
        );
        self.changed
            .insert(RecordKey::JoinToken(mesh.clone(), token_id));
        Ok(Outcome::JoinTokenAdded {
            token_id,
            not_after,
        })
    }

    pub(crate) fn rotate_join_tokens(&mut self, mesh: &MeshId) -> Result<Outcome, Reject> {
        let record = self
            .meshes
            .get_mut(mesh)
            .ok_or_else(|| Reject::NoSuchMesh { mesh: mesh.clone() })?;
        record.token_epoch += 1;
        let epoch = record.token_epoch;
        self.changed.insert(RecordKey::Mesh(mesh.clone()));
        let invalidated = self.join_tokens(mesh).filter(|t| t.epoch < epoch).count();
        Ok(Outcome::JoinTokensRotated {
            epoch,
            invalidated: invalidated as u32,
        })
    }

    /// How many nodes a mesh has, in total and pending.
    pub fn node_counts(&self, mesh: &MeshId) -> NodeCounts {
        let mut counts = NodeCounts::default();
        for node in self.nodes(mesh) {
            counts.total += 1;
            match node.state {
                NodeState::PendingApproval => counts.pending += 1,
                NodeState::Approved => counts.approved += 1,
                NodeState::Rejected => counts.rejected += 1,
                NodeState::Revoked => counts.revoked += 1,
            }
        }
        counts
    }
}

/// Node counts of a mesh by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCounts {
    /// All nodes.
    pub total: usize,
    /// Waiting for approval.
    pub pending: usize,
    /// Approved.
    pub approved: usize,
    /// Rejected.
    pub rejected: usize,
    /// Revoked.
    pub revoked: usize,
}

/// A token id as text (hex), as the API and errors show it.
pub fn hex_id(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{ANCHOR, ApplyExt, booted, meta};
    use crate::{Record, RecordKey};
    use x0t_crypto::{Registration, SigningKey};
    use x0t_types::{Command, MeshSettings, Plan, PqProfile};

    fn mesh() -> MeshId {
        MeshId::new("factory").unwrap()
    }

    fn tag(t: &str) -> Tag {
        Tag::new(t).unwrap()
    }

    fn with_mesh() -> Ledger {
        let mut ledger = booted();
        ledger
            .ap(
                &Command::CreateMesh {
                    mesh: mesh(),
                    settings: MeshSettings::default(),
                    plan: Plan::Enterprise,
                },
                meta(1),
            )
            .unwrap();
        ledger
    }

    fn key() -> SigningKey {
        SigningKey::generate(SigAlgorithm::MlDsa65).unwrap()
    }

    fn registration(node: &SigningKey, at: u64) -> Vec<u8> {
        Registration {
            mesh: mesh(),
            node_id: node.node_id(),
            identity_key: node.verifying_key().clone(),
            peer_id: vec![7; 38],
            hostname: "robot-1".into(),
            device_class: DeviceClass::Robot,
            requested_tags: vec![tag("robot")],
            requested_at: Timestamp(at),
        }
        .sign(node)
        .unwrap()
        .encode()
    }

    fn certificate(
        ledger: &Ledger,
        node: &SigningKey,
        tags: Vec<Tag>,
        at: u64,
        signer: &SigningKey,
    ) -> Vec<u8> {
        certificate_with(ledger, node, tags, at, signer, PqProfile::Standard)
    }

    fn certificate_with(
        ledger: &Ledger,
        node: &SigningKey,
        tags: Vec<Tag>,
        at: u64,
        signer: &SigningKey,
        pq_profile: PqProfile,
    ) -> Vec<u8> {
        let cert = NodeCertificate {
            mesh: mesh(),
            node_id: node.node_id(),
            identity_key: node.verifying_key().clone(),
            peer_id: vec![7; 38],
            overlay_ip: ledger.propose_overlay_ip(&mesh(), &node.node_id()).unwrap(),
            tags,
            device_class: DeviceClass::Robot,
            pq_profile,
            not_before: Timestamp(at),
            not_after: Timestamp(at + 90 * Timestamp::DAY),
            ledger_index: 1,
            issuer: signer.node_id(),
        };
        SignedNodeCertificate::sign(cert, signer).unwrap().encode()
    }

    fn register(
        node: &SigningKey,
        token: Option<TokenProof>,
        certificate: Option<Vec<u8>>,
        index: u64,
    ) -> Command {
        Command::RegisterNode {
            registration: registration(node, index * 1_000),
            token,
            certificate,
        }
    }

    fn add_token(id: u8, usage: TokenUsage, pre_approved: bool, from: u64, ttl: u64) -> Command {
        Command::AddJoinToken {
            mesh: mesh(),
            token_id: [id; 16],
            secret_hash: [id; 32],
            usage,
            pre_approved,
            tags: vec![tag("line-3")],
            not_before: Timestamp(from),
            not_after: Timestamp(from + ttl),
            for_node: None,
        }
    }

    fn proof(id: u8) -> Option<TokenProof> {
        Some(TokenProof {
            token_id: [id; 16],
            secret_hash: [id; 32],
        })
    }

    #[test]
    fn register_approve_revoke_reenroll() {
        let mut ledger = with_mesh();
        let node = key();
        let outcome = ledger.ap(&register(&node, None, None, 2), meta(2)).unwrap();
        assert!(matches!(
            outcome,
            Outcome::NodeRegistered {
                state: NodeState::PendingApproval,
                overlay_ip: None,
                ..
            }
        ));
        assert!(matches!(
            ledger.ap(&register(&node, None, None, 3), meta(3)),
            Err(Reject::NodeExists { .. })
        ));
        // A certificate from a key that is not an anchor, or with a flipped byte: refused.
        let stranger = key();
        let forged = certificate(&ledger, &node, vec![tag("robot")], 4_000, &stranger);
        let approve = |certificate| Command::ApproveNode {
            mesh: mesh(),
            node_id: node.node_id(),
            certificate,
        };
        assert!(matches!(
            ledger.ap(&approve(forged), meta(4)),
            Err(Reject::BadCertificate(_))
        ));
        let good = certificate(&ledger, &node, vec![tag("robot")], 4_000, &ANCHOR);
        let mut flipped = good.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 1;
        assert!(matches!(
            ledger.ap(&approve(flipped), meta(4)),
            Err(Reject::BadCertificate(_))
        ));
        let Outcome::NodeApproved { overlay_ip, .. } = ledger.ap(&approve(good), meta(4)).unwrap()
        else {
            panic!("not approved")
        };
        assert!(ledger.overlay_ip_taken(&mesh(), overlay_ip));
        let record = ledger.node(&mesh(), &node.node_id()).unwrap();
        assert_eq!(record.state, NodeState::Approved);
        assert_eq!(record.tags, vec![tag("robot")]);
        // Revoke: the address is released, the record stays with its reason.
        ledger
            .ap(
                &Command::RevokeNode {
                    mesh: mesh(),
                    node_id: node.node_id(),
                    reason: "stolen".into(),
                },
                meta(5),
            )
            .unwrap();
        let record = ledger.node(&mesh(), &node.node_id()).unwrap();
        assert_eq!(record.state, NodeState::Revoked);
        assert_eq!(record.state_reason.as_deref(), Some("stolen"));
        assert!(!ledger.overlay_ip_taken(&mesh(), overlay_ip));
        // The same key cannot come back; a new key goes back to pending.
        assert!(matches!(
            ledger.ap(&register(&node, None, None, 6), meta(6)),
            Err(Reject::NodeExists {
                state: NodeState::Revoked,
                ..
            })
        ));
        let renewed = key();
        ledger
            .ap(&register(&renewed, None, None, 6), meta(6))
            .unwrap();
        assert_eq!(
            ledger.node(&mesh(), &renewed.node_id()).unwrap().state,
            NodeState::PendingApproval
        );
        ledger.take_changes();
        assert!(Ledger::from_records(ledger.records()).unwrap() == ledger);
    }

    fn set_acl(document: &str, expected_version: Option<u64>) -> Command {
        Command::SetAcl {
            mesh: mesh(),
            document: document.into(),
            expected_version,
        }
    }

    #[test]
    fn policy_updates_are_checked_versioned_audited_and_set_pq_profiles() {
        let mut ledger = with_mesh();
        let head = |l: &Ledger| l.audit_head(Some(&mesh())).len;
        let before = head(&ledger);
        // Invalid, failing tests, stale compare-and-set, unknown mesh: nothing changes.
        let bad = ledger.ap(
            &set_acl("version = 1\n[[rule]]\naction = \"allow\"\n", None),
            meta(2),
        );
        assert!(
            matches!(bad, Err(Reject::InvalidPolicy { line: 2, .. })),
            "{bad:?}"
        );
        let failing = "version = 1\n[[test]]\nsrc = \"tag:a\"\ndst = \"tag:b\"\nport = 1\nexpect = \"allow\"\n";
        assert!(matches!(
            ledger.ap(&set_acl(failing, None), meta(2)),
            Err(Reject::PolicyTestFailed { message, line: 2 }) if message.contains("test #1")
        ));
        assert!(matches!(
            ledger.ap(&set_acl("version = 1\n", Some(3)), meta(2)),
            Err(Reject::AclVersionMismatch {
                expected: 3,
                actual: 0,
                ..
            })
        ));
        assert!(ledger.acl(&mesh()).is_none());
        assert_eq!(head(&ledger), before);

        let constrained = "version = 1\n[pq]\nrobot = \"constrained\"\n";
        assert_eq!(
            ledger.ap(&set_acl(constrained, Some(0)), meta(3)).unwrap(),
            Outcome::AclSet { version: 1 }
        );
        let acl = ledger.acl(&mesh()).unwrap();
        assert_eq!((acl.version, acl.updated_index), (1, 3));
        assert_eq!(acl.document, constrained);
        assert_eq!(head(&ledger), before + 1);
        assert_eq!(
            ledger.pq_profile(&mesh(), DeviceClass::Robot),
            PqProfile::Constrained
        );

        // A robot's certificate must now carry the constrained profile.
        let node = key();
        ledger.ap(&register(&node, None, None, 4), meta(4)).unwrap();
        let approve = |certificate| Command::ApproveNode {
            mesh: mesh(),
            node_id: node.node_id(),
            certificate,
        };
        let standard = certificate(&ledger, &node, vec![tag("robot")], 5_000, &ANCHOR);
        assert!(matches!(
            ledger.ap(&approve(standard), meta(5)),
            Err(Reject::BadCertificate(m)) if m.contains("PQ profile standard")
        ));
        let right = certificate_with(
            &ledger,
            &node,
            vec![tag("robot")],
            5_000,
            &ANCHOR,
            PqProfile::Constrained,
        );
        ledger.ap(&approve(right), meta(5)).unwrap();

        // The next update needs version 1; records round-trip.
        assert!(
            ledger
                .ap(&set_acl("version = 1\n", Some(0)), meta(6))
                .is_err()
        );
        assert_eq!(
            ledger
                .ap(&set_acl("version = 1\n", Some(1)), meta(6))
                .unwrap(),
            Outcome::AclSet { version: 2 }
        );
        assert!(
            ledger
                .take_record_changes()
                .iter()
                .any(|(key, _)| *key == RecordKey::Acl(mesh(), 2))
        );
        assert!(Ledger::from_records(ledger.records()).unwrap() == ledger);

        // Every version stays readable until MAX_ACL_VERSIONS newer ones exist.
        assert_eq!(
            ledger.acl_version(&mesh(), 1).unwrap().document,
            constrained
        );
        for n in 3..=(crate::MAX_ACL_VERSIONS as u64 + 2) {
            let doc = format!("version = 1\n# {n}\n");
            ledger.ap(&set_acl(&doc, None), meta(4 + n)).unwrap();
        }
        let kept: Vec<u64> = ledger.acl_history(&mesh()).map(|a| a.version).collect();
        assert_eq!(kept.len(), crate::MAX_ACL_VERSIONS);
        assert_eq!((kept[0], *kept.last().unwrap()), (34, 3));
        assert!(ledger.acl_version(&mesh(), 2).is_none());
        let changes = ledger.take_record_changes();
        assert!(changes.contains(&(RecordKey::Acl(mesh(), 1), None)));
        assert!(Ledger::from_records(ledger.records()).unwrap() == ledger);
    }

    #[test]
    fn stale_or_foreign_registrations_are_refused() {
        let mut ledger = with_mesh();
        let node = key();
        // Signed 11 minutes before the proposal.
        let stale = Command::RegisterNode {
            registration: registration(&node, 1_000),
            token: None,
            certificate: None,
        };
        assert!(matches!(
            ledger.ap(&stale, meta(661)),
            Err(Reject::BadRegistration(_))
        ));
        let mut garbage = registration(&node, 2_000);
        garbage.truncate(100);
        let bad = Command::RegisterNode {
            registration: garbage,
            token: None,
            certificate: None,
        };
        assert!(ledger.ap(&bad, meta(2)).is_err());
        assert_eq!(ledger.node_counts(&mesh()).total, 0);
    }

    #[test]
    fn tokens_single_use_expiry_rotation_and_limits() {
        let mut ledger = with_mesh();
        let hour = Timestamp::HOUR;
        // TTL bounds.
        assert!(matches!(
            ledger.ap(
                &add_token(1, TokenUsage::SingleUse, false, 0, hour - 1),
                meta(2)
            ),
            Err(Reject::Invalid(_))
        ));
        assert!(
            ledger
                .ap(
                    &add_token(1, TokenUsage::SingleUse, false, 0, 31 * Timestamp::DAY),
                    meta(2)
                )
                .is_err()
        );
        ledger
            .ap(
                &add_token(1, TokenUsage::SingleUse, false, 0, hour),
                meta(2),
            )
            .unwrap();
        // Single use: a second registration with it is refused.
        let (a, b) = (key(), key());
        ledger
            .ap(&register(&a, proof(1), None, 3), meta(3))
            .unwrap();
        assert_eq!(
            ledger.node(&mesh(), &a.node_id()).unwrap().state,
            NodeState::PendingApproval
        );
        assert!(matches!(
            ledger.ap(&register(&b, proof(1), None, 4), meta(4)),
            Err(Reject::TokenUsedUp { .. })
        ));
        // Wrong secret: unknown.
        let wrong = Some(TokenProof {
            token_id: [1; 16],
            secret_hash: [9; 32],
        });
        assert!(matches!(
            ledger.ap(&register(&b, wrong, None, 4), meta(4)),
            Err(Reject::InvalidToken)
        ));
        // Reusable with a limit of 2.
        ledger
            .ap(
                &add_token(
                    2,
                    TokenUsage::Reusable { max_uses: Some(2) },
                    false,
                    0,
                    hour,
                ),
                meta(5),
            )
            .unwrap();
        ledger
            .ap(&register(&b, proof(2), None, 5), meta(5))
            .unwrap();
        let c = key();
        ledger
            .ap(&register(&c, proof(2), None, 6), meta(6))
            .unwrap();
        assert!(matches!(
            ledger.ap(&register(&key(), proof(2), None, 7), meta(7)),
            Err(Reject::TokenUsedUp { uses: 2, .. })
        ));
        // Expired: proposal time past not_after.
        ledger
            .ap(
                &add_token(
                    3,
                    TokenUsage::Reusable { max_uses: None },
                    false,
                    8_000,
                    hour,
                ),
                meta(8),
            )
            .unwrap();
        let late = 8 + hour / 1_000;
        assert!(matches!(
            ledger.ap(&register(&key(), proof(3), None, late), meta(late)),
            Err(Reject::TokenExpired { .. })
        ));
        // Rotation invalidates older tokens, with its own error.
        ledger
            .ap(
                &add_token(
                    4,
                    TokenUsage::Reusable { max_uses: None },
                    false,
                    9_000,
                    hour,
                ),
                meta(9),
            )
            .unwrap();
        let Outcome::JoinTokensRotated { epoch: 1, .. } = ledger
            .ap(&Command::RotateJoinTokens { mesh: mesh() }, meta(10))
            .unwrap()
        else {
            panic!("rotation")
        };
        assert!(matches!(
            ledger.ap(&register(&key(), proof(4), None, 11), meta(11)),
            Err(Reject::TokenRotated { .. })
        ));
        ledger
            .ap(
                &add_token(5, TokenUsage::SingleUse, false, 11_000, hour),
                meta(11),
            )
            .unwrap();
        assert!(
            ledger.join_token(&mesh(), &[4; 16]).is_none(),
            "rotated-out tokens are forgotten"
        );
        ledger
            .ap(&register(&key(), proof(5), None, 12), meta(12))
            .unwrap();
        ledger.take_changes();
        assert!(Ledger::from_records(ledger.records()).unwrap() == ledger);
    }

    #[test]
    fn a_pre_approved_token_approves_with_its_tags_and_a_valid_certificate() {
        let mut ledger = with_mesh();
        ledger
            .ap(
                &add_token(
                    1,
                    TokenUsage::Reusable { max_uses: None },
                    true,
                    0,
                    Timestamp::HOUR,
                ),
                meta(2),
            )
            .unwrap();
        let node = key();
        // Without a certificate, or with tags other than the token's: refused.
        assert!(matches!(
            ledger.ap(&register(&node, proof(1), None, 3), meta(3)),
            Err(Reject::BadCertificate(_))
        ));
        let wrong_tags = certificate(&ledger, &node, vec![tag("admin")], 3_000, &ANCHOR);
        assert!(matches!(
            ledger.ap(&register(&node, proof(1), Some(wrong_tags), 3), meta(3)),
            Err(Reject::BadCertificate(_))
        ));
        let cert = certificate(&ledger, &node, vec![tag("line-3")], 3_000, &ANCHOR);
        let outcome = ledger
            .ap(&register(&node, proof(1), Some(cert.clone()), 3), meta(3))
            .unwrap();
        assert!(matches!(
            outcome,
            Outcome::NodeRegistered {
                state: NodeState::Approved,
                overlay_ip: Some(_),
                ..
            }
        ));
        // Another node offering a certificate for the same address: refused.
        let other = key();
        let mut clash = SignedNodeCertificate::decode(&certificate(
            &ledger,
            &other,
            vec![tag("line-3")],
            3_000,
            &ANCHOR,
        ))
        .unwrap()
        .payload()
        .clone();
        clash.overlay_ip = ledger
            .node(&mesh(), &node.node_id())
            .unwrap()
            .overlay_ip
            .unwrap();
        let clash = SignedNodeCertificate::sign(clash, &ANCHOR)
            .unwrap()
            .encode();
        assert!(matches!(
            ledger.ap(&register(&other, proof(1), Some(clash), 4), meta(4)),
            Err(Reject::OverlayIpTaken { .. })
        ));
    }

    #[test]
    fn a_reissued_token_replaces_the_node_and_keeps_its_address() {
        let mut ledger = with_mesh();
        let old = key();
        ledger.ap(&register(&old, None, None, 2), meta(2)).unwrap();
        let cert = certificate(&ledger, &old, vec![tag("robot")], 2_000, &ANCHOR);
        ledger
            .ap(
                &Command::ApproveNode {
                    mesh: mesh(),
                    node_id: old.node_id(),
                    certificate: cert,
                },
                meta(2),
            )
            .unwrap();
        let ip = ledger
            .node(&mesh(), &old.node_id())
            .unwrap()
            .overlay_ip
            .unwrap();
        let mut reissue = add_token(7, TokenUsage::SingleUse, false, 3_000, Timestamp::HOUR);
        if let Command::AddJoinToken { for_node, .. } = &mut reissue {
            *for_node = Some(old.node_id());
        }
        ledger.ap(&reissue, meta(3)).unwrap();
        let new = key();
        let mut cert = SignedNodeCertificate::decode(&certificate(
            &ledger,
            &new,
            vec![tag("robot")],
            4_000,
            &ANCHOR,
        ))
        .unwrap()
        .payload()
        .clone();
        cert.overlay_ip = ip;
        let cert = SignedNodeCertificate::sign(cert, &ANCHOR).unwrap().encode();
        ledger
            .ap(&register(&new, proof(7), Some(cert), 4), meta(4))
            .unwrap();
        let old_record = ledger.node(&mesh(), &old.node_id()).unwrap();
        assert_eq!(old_record.state, NodeState::Revoked);
        let new_record = ledger.node(&mesh(), &new.node_id()).unwrap();
        assert_eq!(
            (new_record.state, new_record.overlay_ip),
            (NodeState::Approved, Some(ip))
        );
        assert_eq!(new_record.replaces, Some(old.node_id()));
    }

    #[test]
    fn the_audit_chain_records_every_applied_command_and_verifies() {
        let mut ledger = with_mesh();
        let node = key();
        ledger.ap(&register(&node, None, None, 2), meta(2)).unwrap();
        let _ = ledger.ap(&register(&node, None, None, 3), meta(3)); // refused: not audited
        ledger
            .ap(
                &Command::RejectNode {
                    mesh: mesh(),
                    node_id: node.node_id(),
                    reason: "unknown device".into(),
                },
                meta(4),
            )
            .unwrap();
        let entries: Vec<(x0t_crypto::AuditEntry, [u8; 32])> = ledger
            .audit_entries(Some(&mesh()), 0, usize::MAX)
            .map(|r| (x0t_crypto::AuditEntry::decode(&r.entry).unwrap(), r.hash))
            .collect();
        let actions: Vec<&str> = entries.iter().map(|(e, _)| e.action.as_str()).collect();
        assert_eq!(actions, ["mesh.create", "node.register", "node.reject"]);
        assert_eq!(ledger.audit_head(Some(&mesh())).len, 3);
        x0t_crypto::verify_chain(&entries, &|id| ledger.anchor_key(id)).unwrap();
        // A statement for another command is refused before anything changes.
        let revoke = Command::RevokeNode {
            mesh: mesh(),
            node_id: node.node_id(),
            reason: String::new(),
        };
        let mut proposed = x0t_types::ProposedCommand {
            command: revoke.clone(),
            request_id: None,
            statement: crate::tests::statement(&Command::RotateJoinTokens { mesh: mesh() }),
        };
        let m = crate::ApplyMeta {
            index: 5,
            position: 0,
            timestamp: Timestamp(5_000),
        };
        assert!(matches!(
            ledger.apply(&proposed, m),
            Err(Reject::BadStatement(_))
        ));
        proposed.statement.clear();
        assert!(matches!(
            ledger.apply(&proposed, m),
            Err(Reject::BadStatement(_))
        ));
        assert_eq!(ledger.audit_head(Some(&mesh())).len, 3);
        // Records round-trip, heads included.
        ledger.take_changes();
        let rebuilt = Ledger::from_records(ledger.records()).unwrap();
        assert_eq!(
            rebuilt.audit_head(Some(&mesh())),
            ledger.audit_head(Some(&mesh()))
        );
        assert!(matches!(
            ledger.record(&RecordKey::Audit(None, 0)),
            Some(Record::Audit(_))
        ));
    }

    #[test]
    fn nodes_are_found_by_full_id_short_id_and_prefix() {
        let mut ledger = with_mesh();
        let nodes: Vec<SigningKey> = (0..3).map(|_| key()).collect();
        for (i, node) in nodes.iter().enumerate() {
            ledger
                .ap(
                    &register(node, None, None, 2 + i as u64),
                    meta(2 + i as u64),
                )
                .unwrap();
        }
        for node in &nodes {
            let id = node.node_id();
            let full = id.to_string();
            for query in [
                full.clone(),
                id.short(),
                full[..9].to_owned(),
                full[..5].to_uppercase(),
            ] {
                match ledger.find_node(&mesh(), &query) {
                    Ok(found) => assert_eq!(found.node_id, id, "{query}"),
                    // A 5-character prefix may be shared; then it must say so.
                    Err(Reject::Invalid(why)) => {
                        assert!(query.len() < 8 && why.contains("several"), "{query}: {why}")
                    }
                    Err(e) => panic!("{query}: {e}"),
                }
            }
        }
        for bad in ["zzzzzzzzzzzzzzzz", "", "ünïcödé-prefix-x", "!!"] {
            assert!(ledger.find_node(&mesh(), bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn overlay_addresses_are_stable_and_skip_taken_ones() {
        let id = NodeId::from_bytes([9; 32]);
        let first = overlay_ip_for(&id, |_| false).unwrap();
        assert!(is_overlay_ip(first));
        assert_eq!(overlay_ip_for(&id, |_| false), Some(first));
        let second = overlay_ip_for(&id, |ip| ip == first).unwrap();
        assert_ne!(first, second);
        assert!(is_overlay_ip(second));
    }
}
