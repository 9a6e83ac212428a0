//! Checking a certificate an anchor signed for a node, and the overlay address it carries.

use crate::NodeReject;
use std::net::Ipv4Addr;

use x0t_crypto::{
    NodeCertificate, OVERLAY_NETWORK, SignedNodeCertificate, VerifyingKey, is_overlay_ip,
};
use x0t_types::{NodeId, PublicKeyBytes, Tag, Timestamp};

use super::{CERTIFICATE_SKEW_MS, Deps, NodeRecord, Nodes};
use crate::Reject;

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

/// The recorded form of an identity key.
pub(super) fn public_key_bytes(key: &VerifyingKey) -> PublicKeyBytes {
    PublicKeyBytes {
        algorithm: key.algorithm().code(),
        bytes: key.as_bytes().to_vec(),
    }
}

/// What a certificate must say about the node it is for.
pub(super) struct Expected<'a> {
    /// The node record it approves.
    pub(super) node: &'a NodeRecord,
    /// The tags it must carry (`None`: any the admin chose).
    pub(super) tags: Option<&'a [Tag]>,
    /// The address it may carry even though a record holds it (the node it replaces).
    pub(super) inherited_ip: Option<Ipv4Addr>,
}

impl Nodes {
    /// Checks a signed certificate against the node record and the recorded anchors.
    pub(super) fn check_certificate(
        &self,
        deps: &Deps<'_>,
        bytes: &[u8],
        expected: Expected<'_>,
        now: Timestamp,
        index: u64,
    ) -> Result<(NodeCertificate, Vec<u8>), Reject> {
        let bad = |reason: String| Reject::Nodes(NodeReject::BadCertificate(reason));
        let signed = SignedNodeCertificate::decode(bytes).map_err(|e| bad(e.to_string()))?;
        let issuer = signed.payload().issuer;
        let key = deps
            .anchors
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
        let wanted = deps.acl.pq_profile(&node.mesh, node.device_class);
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
            || (self.ip_taken(&node.mesh, cert.overlay_ip)
                && expected.inherited_ip != Some(cert.overlay_ip))
        {
            return Err(Reject::Nodes(NodeReject::OverlayIpTaken {
                ip: cert.overlay_ip.to_string(),
            }));
        }
        Ok((cert, bytes.to_vec()))
    }
}
