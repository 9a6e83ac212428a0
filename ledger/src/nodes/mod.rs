//! The nodes domain: the node lifecycle — registration (open, bounded), approval with a
//! certificate an anchor signed, rejection, revocation, re-enrollment under a new key — and
//! the join tokens that admit nodes (usage limits, TTL, rotation by epoch, re-issue for a
//! replaced node), with each approved node's overlay address reserved.
//!
//! What it needs from other domains comes through [`Deps`]: mesh existence and token epochs
//! from the meshes, anchor keys (to check certificates) from the anchors, and each class's PQ
//! profile from the mesh's policy.

mod command;
pub use command::{NodeCommand, NodeOutcome, NodeReject};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use x0t_crypto::VerifyingKey;
use x0t_types::{
    DeviceClass, MeshId, NodeId, NodeState, PqProfile, PublicKeyBytes, Tag, Timestamp, TokenProof,
    TokenUsage,
};

use crate::domain::Domain;
use crate::{Ledger, Reject};

mod certificate;
mod lifecycle;
mod tokens;

pub use certificate::overlay_ip_for;

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

/// What the nodes domain needs from the meshes domain.
pub(crate) trait MeshKeeper {
    /// `Ok` when the mesh exists, its refusal otherwise.
    fn require_mesh(&self, mesh: &MeshId) -> Result<(), Reject>;
    /// The mesh's current join-token epoch (`None`: no such mesh).
    fn token_epoch(&self, mesh: &MeshId) -> Option<u64>;
    /// Starts a new join-token epoch; answers it.
    fn bump_token_epoch(&mut self, mesh: &MeshId) -> Result<u64, Reject>;
}

/// What the nodes domain needs from the anchors domain.
pub(crate) trait AnchorKeys {
    /// The identity key of a recorded anchor, present or past.
    fn anchor_key(&self, node_id: &NodeId) -> Option<VerifyingKey>;
}

/// What the nodes domain needs from the ACL domain.
pub(crate) trait PqProfiles {
    /// The PQ profile a node of `class` gets in `mesh` under its current policy.
    fn pq_profile(&self, mesh: &MeshId, class: DeviceClass) -> PqProfile;
}

/// The other domains, as the nodes domain sees them.
pub(crate) struct Deps<'a> {
    /// The meshes.
    pub(crate) meshes: &'a mut dyn MeshKeeper,
    /// The anchors.
    pub(crate) anchors: &'a dyn AnchorKeys,
    /// The policies.
    pub(crate) acl: &'a dyn PqProfiles,
}

/// The nodes' part of the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Nodes {
    nodes: BTreeMap<(MeshId, NodeId), NodeRecord>,
    join_tokens: BTreeMap<(MeshId, [u8; 16]), JoinTokenRecord>,
    /// Derived from `nodes`: reserved overlay addresses per mesh.
    overlay_ips: BTreeMap<(MeshId, u32), NodeId>,
    changed: BTreeSet<Key>,
}

/// A nodes record's key, as stored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Key {
    /// A node, by mesh and id.
    Node(MeshId, NodeId),
    /// A join token, by mesh and id.
    JoinToken(MeshId, [u8; 16]),
}

/// A nodes record, as stored.
#[derive(Serialize, Deserialize)]
pub(crate) enum Value {
    /// A node.
    Node(NodeRecord),
    /// A join token.
    JoinToken(JoinTokenRecord),
}

impl Domain for Nodes {
    const NAME: &'static str = "nodes";
    type Key = Key;
    type Value = Value;

    fn key_of(value: &Value) -> Key {
        match value {
            Value::Node(node) => Key::Node(node.mesh.clone(), node.node_id),
            Value::JoinToken(token) => Key::JoinToken(token.mesh.clone(), token.token_id),
        }
    }

    fn get(&self, key: &Key) -> Option<Value> {
        match key {
            Key::Node(mesh, id) => self
                .nodes
                .get(&(mesh.clone(), *id))
                .cloned()
                .map(Value::Node),
            Key::JoinToken(mesh, id) => self
                .join_tokens
                .get(&(mesh.clone(), *id))
                .cloned()
                .map(Value::JoinToken),
        }
    }

    fn values(&self) -> Vec<Value> {
        let nodes = self.nodes.values().cloned().map(Value::Node);
        let tokens = self.join_tokens.values().cloned().map(Value::JoinToken);
        nodes.chain(tokens).collect()
    }

    fn load(&mut self, value: Value) {
        match value {
            Value::Node(node) => {
                if node.state == NodeState::Approved
                    && let Some(ip) = node.overlay_ip
                {
                    self.overlay_ips
                        .insert((node.mesh.clone(), u32::from(ip)), node.node_id);
                }
                self.nodes.insert((node.mesh.clone(), node.node_id), node);
            }
            Value::JoinToken(token) => {
                self.join_tokens
                    .insert((token.mesh.clone(), token.token_id), token);
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

impl Nodes {
    /// A node of a mesh.
    pub(crate) fn get(&self, mesh: &MeshId, node_id: &NodeId) -> Option<&NodeRecord> {
        self.nodes.get(&(mesh.clone(), *node_id))
    }

    /// Every node of a mesh, by id.
    pub(crate) fn of_mesh(&self, mesh: &MeshId) -> impl Iterator<Item = &NodeRecord> {
        self.nodes
            .range((mesh.clone(), NodeId::from_bytes([0; 32]))..)
            .take_while(move |((m, _), _)| m == mesh)
            .map(|(_, node)| node)
    }

    /// A join token by mesh and id.
    pub(crate) fn token(&self, mesh: &MeshId, token_id: &[u8; 16]) -> Option<&JoinTokenRecord> {
        self.join_tokens.get(&(mesh.clone(), *token_id))
    }

    /// Every join token of a mesh.
    pub(crate) fn tokens_of(&self, mesh: &MeshId) -> impl Iterator<Item = &JoinTokenRecord> {
        self.join_tokens
            .range((mesh.clone(), [0u8; 16])..)
            .take_while(move |((m, _), _)| m == mesh)
            .map(|(_, token)| token)
    }

    /// Whether `ip` is reserved in `mesh` (held by an approved node).
    pub(crate) fn ip_taken(&self, mesh: &MeshId, ip: Ipv4Addr) -> bool {
        self.overlay_ips
            .contains_key(&(mesh.clone(), u32::from(ip)))
    }

    /// How many nodes a mesh has, in total and by state.
    pub(crate) fn counts(&self, mesh: &MeshId) -> NodeCounts {
        let mut counts = NodeCounts::default();
        for node in self.of_mesh(mesh) {
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

impl Ledger {
    /// A node of a mesh.
    pub fn node(&self, mesh: &MeshId, node_id: &NodeId) -> Option<&NodeRecord> {
        self.nodes.get(mesh, node_id)
    }

    /// Every node of a mesh, by id.
    pub fn nodes(&self, mesh: &MeshId) -> impl Iterator<Item = &NodeRecord> {
        self.nodes.of_mesh(mesh)
    }

    /// Finds a node by its full id text or its short form (the first 16 characters), which
    /// must then be unambiguous within the mesh.
    pub fn find_node(&self, mesh: &MeshId, id: &str) -> Result<&NodeRecord, Reject> {
        if let Ok(node_id) = id.parse::<NodeId>() {
            return self.node(mesh, &node_id).ok_or_else(|| {
                Reject::Nodes(NodeReject::NoSuchNode {
                    mesh: mesh.clone(),
                    node: id.to_owned(),
                })
            });
        }
        if !id.is_ascii() {
            return Err(Reject::Nodes(NodeReject::NoSuchNode {
                mesh: mesh.clone(),
                node: id.chars().take(60).collect(),
            }));
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
            .nodes
            .range(range)
            .map(|(_, node)| node)
            .filter(|n| !id.is_empty() && n.node_id.to_string().starts_with(&id));
        match (found.next(), found.next()) {
            (Some(node), None) => Ok(node),
            (Some(_), Some(_)) => Err(Reject::Invalid(format!(
                "node id prefix {id} matches several nodes; give more characters"
            ))),
            (None, _) => Err(Reject::Nodes(NodeReject::NoSuchNode {
                mesh: mesh.clone(),
                node: id,
            })),
        }
    }

    /// A join token by mesh and id.
    pub fn join_token(&self, mesh: &MeshId, token_id: &[u8; 16]) -> Option<&JoinTokenRecord> {
        self.nodes.token(mesh, token_id)
    }

    /// Every join token of a mesh (including used-up, expired and rotated-out ones not yet
    /// forgotten).
    pub fn join_tokens(&self, mesh: &MeshId) -> impl Iterator<Item = &JoinTokenRecord> {
        self.nodes.tokens_of(mesh)
    }

    /// Whether `ip` is reserved in `mesh` (held by an approved node).
    pub fn overlay_ip_taken(&self, mesh: &MeshId, ip: Ipv4Addr) -> bool {
        self.nodes.ip_taken(mesh, ip)
    }

    /// The address a proposer should put in `node_id`'s certificate.
    pub fn propose_overlay_ip(&self, mesh: &MeshId, node_id: &NodeId) -> Option<Ipv4Addr> {
        overlay_ip_for(node_id, |ip| self.nodes.ip_taken(mesh, ip))
    }

    /// Checks a token the way registering with it will (`now`: the caller's clock).
    pub fn check_join_token(
        &self,
        mesh: &MeshId,
        proof: &TokenProof,
        now: Timestamp,
    ) -> Result<&JoinTokenRecord, Reject> {
        self.nodes.check_join_token(&self.meshes, mesh, proof, now)
    }

    /// How many nodes a mesh has, in total and pending.
    pub fn node_counts(&self, mesh: &MeshId) -> NodeCounts {
        self.nodes.counts(mesh)
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
mod tests;
