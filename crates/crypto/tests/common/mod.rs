//! Fixtures shared by the crypto integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::sync::LazyLock;

use x0t_crypto::{
    JoinToken, NodeCertificate, SigAlgorithm, SignedJoinToken, SignedNodeCertificate, SigningKey,
    TokenSecret, TokenUsage, VerifyingKey,
};
use x0t_types::{DeviceClass, MeshId, NodeId, PqProfile, Tag, Timestamp};

/// 2026-11-26T00:00:00Z.
pub const T0: Timestamp = Timestamp(1_795_651_200_000);

/// A deterministic stand-in identity key (valid length; only its bytes matter to encodings).
pub fn fixed_identity_key() -> VerifyingKey {
    let bytes: Vec<u8> = (0..SigAlgorithm::MlDsa65.public_key_len())
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    VerifyingKey::from_bytes(SigAlgorithm::MlDsa65, &bytes).unwrap()
}

pub fn certificate(issuer: NodeId) -> NodeCertificate {
    let identity_key = fixed_identity_key();
    NodeCertificate {
        mesh: MeshId::new("factory-berlin").unwrap(),
        node_id: identity_key.node_id(),
        identity_key,
        peer_id: (0..38).collect(),
        overlay_ip: Ipv4Addr::new(100, 64, 0, 7),
        tags: vec![Tag::new("robot").unwrap(), Tag::new("site:berlin").unwrap()],
        device_class: DeviceClass::Robot,
        pq_profile: PqProfile::Standard,
        not_before: T0,
        not_after: T0.saturating_add(30 * Timestamp::DAY),
        ledger_index: 42,
        issuer,
    }
}

pub fn token(issuer: NodeId) -> JoinToken {
    JoinToken {
        mesh: MeshId::new("factory-berlin").unwrap(),
        token_id: *b"0123456789abcdef",
        secret: TokenSecret::from_bytes([0x5a; 32]),
        usage: TokenUsage::Reusable { max_uses: Some(25) },
        pre_approved: true,
        tags: vec![Tag::new("robot").unwrap()],
        not_before: T0,
        not_after: T0.saturating_add(Timestamp::DAY),
        issuer,
    }
}

/// One anchor key for the whole test binary: ML-DSA key generation is cheap, but signing in
/// every proptest case is not needed.
pub static ANCHOR: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::generate(SigAlgorithm::MlDsa65).unwrap());

pub static SIGNED_CERT: LazyLock<SignedNodeCertificate> =
    LazyLock::new(|| SignedNodeCertificate::sign(certificate(ANCHOR.node_id()), &ANCHOR).unwrap());

pub static SIGNED_TOKEN: LazyLock<SignedJoinToken> =
    LazyLock::new(|| SignedJoinToken::sign(token(ANCHOR.node_id()), &ANCHOR).unwrap());
