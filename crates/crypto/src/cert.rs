//! Node certificates: what an anchor signs when it approves a node.
//!
//! ```text
//! body v1 = "X0TC" | u8 version=1
//!         | u8 len | mesh (ASCII)
//!         | node_id (32)                       = blake3(identity public key)
//!         | u8 sig_alg | u16 len | identity public key
//!         | u8 len | libp2p peer id bytes (1..=64)
//!         | overlay IPv4 (4)                   inside 100.64.0.0/10
//!         | u8 count | count × (u8 len | tag)  sorted, unique, at most 32
//!         | u8 device class | u8 pq profile
//!         | u64 not_before_ms | u64 not_after_ms | u64 ledger_index
//!         | issuer node_id (32)
//! ```
//! Integers are big-endian. The signed form is a [`crate::Signed`] envelope around this body.

use std::net::Ipv4Addr;

use x0t_types::{DeviceClass, MeshId, NodeId, PqProfile, Tag, Timestamp};

use crate::CryptoError;
use crate::sig::{SigAlgorithm, SignatureDomain, VerifyingKey};
use crate::signed::{
    Signed, SignedPayload, check_identity, check_tags, check_validity, read_header, read_identity,
    read_mesh, read_tags, write_identity, write_tags,
};
use crate::wire::{Reader, Writer};

const MAGIC: &[u8; 4] = b"X0TC";
/// Version of the certificate body encoding.
pub const CERTIFICATE_VERSION: u8 = 1;
/// Most tags one certificate may carry.
pub const MAX_CERT_TAGS: usize = 32;
/// Longest libp2p peer id accepted (a multihash of an ed25519 key is 38 bytes).
pub const MAX_PEER_ID_LEN: usize = 64;

/// The overlay range every node address comes from: 100.64.0.0/10 (RFC 6598).
pub const OVERLAY_NETWORK: (Ipv4Addr, u8) = (Ipv4Addr::new(100, 64, 0, 0), 10);

/// Whether `ip` lies in [`OVERLAY_NETWORK`].
pub fn is_overlay_ip(ip: Ipv4Addr) -> bool {
    let (network, prefix) = OVERLAY_NETWORK;
    let mask = u32::MAX << (32 - prefix);
    u32::from(ip) & mask == u32::from(network)
}

/// What an anchor attests about an approved node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCertificate {
    /// The mesh the node belongs to.
    pub mesh: MeshId,
    /// The node's id; must equal `identity_key.node_id()`.
    pub node_id: NodeId,
    /// The node's ML-DSA identity public key.
    pub identity_key: VerifyingKey,
    /// The node's libp2p peer id, as bytes (bound to the identity by an ML-DSA signature).
    pub peer_id: Vec<u8>,
    /// The node's address on the overlay, inside 100.64.0.0/10.
    pub overlay_ip: Ipv4Addr,
    /// Tags for ACL selectors; sorted and unique.
    pub tags: Vec<Tag>,
    /// What kind of device it is.
    pub device_class: DeviceClass,
    /// Which post-quantum algorithms its sessions must use.
    pub pq_profile: PqProfile,
    /// Start of validity (inclusive).
    pub not_before: Timestamp,
    /// End of validity (exclusive).
    pub not_after: Timestamp,
    /// Index of the ledger entry that approved the node.
    pub ledger_index: u64,
    /// The anchor that signed it.
    pub issuer: NodeId,
}

/// A node certificate with the issuing anchor's signature.
pub type SignedNodeCertificate = Signed<NodeCertificate>;

impl NodeCertificate {
    fn validate(&self) -> Result<(), CryptoError> {
        let invalid = |reason: String| CryptoError::Invalid {
            what: "node certificate",
            reason,
        };
        check_identity(
            &self.node_id,
            &self.identity_key,
            &self.peer_id,
            MAX_PEER_ID_LEN,
        )
        .map_err(invalid)?;
        if !is_overlay_ip(self.overlay_ip) {
            return Err(invalid(format!(
                "overlay IP {} is outside 100.64.0.0/10",
                self.overlay_ip
            )));
        }
        check_tags(&self.tags, MAX_CERT_TAGS).map_err(invalid)?;
        check_validity("node certificate", self.not_before, self.not_after)
    }
}

impl SignedPayload for NodeCertificate {
    const WHAT: &'static str = "node certificate";
    const DOMAIN: SignatureDomain = SignatureDomain::NodeCertificate;
    const MAX_BODY_LEN: usize = 5
        + 1
        + MeshId::MAX_LEN
        + 32
        + 3
        + SigAlgorithm::MlDsa65.public_key_len()
        + 1
        + MAX_PEER_ID_LEN
        + 4
        + 1
        + MAX_CERT_TAGS * (1 + Tag::MAX_LEN)
        + 2
        + 24
        + 32;

    fn encode_body(&self) -> Result<Vec<u8>, CryptoError> {
        self.validate()?;
        let mut w = Writer::with_capacity(2300);
        w.bytes(MAGIC)
            .u8(CERTIFICATE_VERSION)
            .short_bytes(self.mesh.as_str().as_bytes());
        write_identity(&mut w, &self.node_id, &self.identity_key, &self.peer_id);
        w.bytes(&self.overlay_ip.octets());
        write_tags(&mut w, &self.tags);
        w.u8(self.device_class.code())
            .u8(self.pq_profile.code())
            .u64(self.not_before.as_millis())
            .u64(self.not_after.as_millis())
            .u64(self.ledger_index)
            .bytes(self.issuer.as_bytes());
        Ok(w.finish())
    }

    fn decode_body(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut r = Reader::new(Self::WHAT, bytes);
        read_header(&mut r, MAGIC, CERTIFICATE_VERSION, "node certificate")?;
        let mesh = read_mesh(&mut r)?;
        let (node_id, identity_key, peer_id) = read_identity(&mut r, MAX_PEER_ID_LEN)?;
        let overlay_ip = Ipv4Addr::from(r.array::<4>()?);
        let tags = read_tags(&mut r, MAX_CERT_TAGS)?;
        let code = r.u8()?;
        let device_class = DeviceClass::from_code(code)
            .ok_or_else(|| r.error(format_args!("unknown device class {code}")))?;
        let code = r.u8()?;
        let pq_profile = PqProfile::from_code(code)
            .ok_or_else(|| r.error(format_args!("unknown PQ profile {code}")))?;
        let certificate = Self {
            mesh,
            node_id,
            identity_key,
            peer_id,
            overlay_ip,
            tags,
            device_class,
            pq_profile,
            not_before: Timestamp(r.u64()?),
            not_after: Timestamp(r.u64()?),
            ledger_index: r.u64()?,
            issuer: NodeId::from_bytes(r.array()?),
        };
        r.finish()?;
        certificate.validate()?;
        Ok(certificate)
    }

    fn issuer(&self) -> NodeId {
        self.issuer
    }

    fn validity(&self) -> (Timestamp, Timestamp) {
        (self.not_before, self.not_after)
    }
}

/// Prefix of a certificate's text form.
pub const CERTIFICATE_TEXT_PREFIX: &str = "x0tc1_";

impl Signed<NodeCertificate> {
    /// The text form: `x0tc1_` followed by base32 of the envelope.
    pub fn to_text(&self) -> String {
        format!(
            "{CERTIFICATE_TEXT_PREFIX}{}",
            x0t_types::base32::encode(&self.encode())
        )
    }

    /// Parses the text form (surrounding whitespace allowed), bounding its length first.
    pub fn from_text(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let max_len = CERTIFICATE_TEXT_PREFIX.len() + Self::max_encoded_len().div_ceil(5) * 8;
        if text.len() > max_len {
            return Err(CryptoError::decode(
                "node certificate",
                format!("text of {} characters exceeds {max_len}", text.len()),
            ));
        }
        let encoded = text.strip_prefix(CERTIFICATE_TEXT_PREFIX).ok_or_else(|| {
            CryptoError::decode(
                "node certificate",
                format!("text must start with {CERTIFICATE_TEXT_PREFIX:?}"),
            )
        })?;
        let bytes = x0t_types::base32::decode(encoded)
            .map_err(|e| CryptoError::decode("node certificate", e.to_string()))?;
        Self::decode(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_range() {
        assert!(is_overlay_ip(Ipv4Addr::new(100, 64, 0, 1)));
        assert!(is_overlay_ip(Ipv4Addr::new(100, 127, 255, 254)));
        assert!(!is_overlay_ip(Ipv4Addr::new(100, 128, 0, 1)));
        assert!(!is_overlay_ip(Ipv4Addr::new(10, 0, 0, 1)));
    }
}
