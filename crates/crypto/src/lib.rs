//! Post-quantum cryptography for x0t: identities, signatures, key exchange, AEAD, signed
//! certificates and tokens, key files.
//!
//! - [`sig`]: ML-DSA-65 (and ML-DSA-44 for constrained devices) through liboqs, with a
//!   distinct FIPS 204 context string per [`SignatureDomain`].
//! - [`kem`]: ML-KEM-768 (and ML-KEM-512).
//! - [`hybrid`]: X25519 + ML-KEM key exchange combined with blake3; secure while either holds.
//! - [`aead`]: ChaCha20-Poly1305 whose types make nonce reuse under one key impossible.
//! - [`frame`]: data-plane frames (a header relays can route on, a body sealed end to end),
//!   the replay window and the rekey policy.
//! - [`NodeCertificate`], [`JoinToken`]: versioned canonical encodings inside a [`Signed`]
//!   envelope; golden tests pin their bytes.
//! - [`bearer`]: admin API keys and anchor-join tokens (text form; only hashes are stored).
//! - [`keyfile`]: the on-disk identity format (0600, atomic, checksummed, versioned).
//!
//! Nothing here reads a clock: verifiers take `now` from their caller.

pub mod aead;
pub mod audit;
pub mod bearer;
mod cert;
mod error;
pub mod frame;
pub mod hybrid;
pub mod kem;
pub mod keyfile;
mod link_state;
mod mesh_state;
mod registration;
pub mod sig;
mod signed;
mod token;
mod wire;

pub use audit::{
    AuditEntry, AuditStatement, ChainError, SignedAuditStatement, command_digest,
    command_digest_v2, verify_chain,
};
pub use cert::{
    CERTIFICATE_TEXT_PREFIX, CERTIFICATE_VERSION, MAX_CERT_TAGS, MAX_PEER_ID_LEN, NodeCertificate,
    OVERLAY_NETWORK, SignedNodeCertificate, is_overlay_ip,
};
pub use error::CryptoError;
pub use link_state::{
    AdvertisedLink, LINK_STATE_LIFETIME_MS, LINK_STATE_SKEW_MS, LINK_STATE_VERSION,
    LinkStateAdvert, MAX_ADVERTISED_LINKS, SignedLinkState,
};
pub use mesh_state::{
    MAX_STATE_ANCHORS, MAX_STATE_REVOKED, MESH_STATE_VERSION, MeshState, SignedMeshState,
};
pub use registration::{
    MAX_HOSTNAME_LEN, MAX_REQUESTED_TAGS, REGISTRATION_VERSION, REGISTRATION_WINDOW_MS,
    Registration, SignedRegistration, check_hostname,
};
pub use sig::{SigAlgorithm, Signature, SignatureDomain, SigningKey, VerifyingKey};
pub use signed::{ENVELOPE_VERSION, Signed, SignedPayload};
pub use token::{
    JoinToken, MAX_TOKEN_TAGS, MAX_TOKEN_TTL_MS, MIN_TOKEN_TTL_MS, SignedJoinToken,
    TOKEN_TEXT_PREFIX, TOKEN_VERSION, TokenSecret,
};
pub use x0t_types::TokenUsage;

/// Short human fingerprint of bytes: the first 16 bytes of blake3, hex in colon-separated
/// pairs of bytes, e.g. `3fa1:09bc:…`. Used by `x0t id` to show public keys.
pub fn fingerprint(bytes: &[u8]) -> String {
    let hash = blake3::hash(bytes);
    hash.as_bytes()[..16]
        .chunks(2)
        .map(|pair| format!("{:02x}{:02x}", pair[0], pair[1]))
        .collect::<Vec<_>>()
        .join(":")
}

/// The digest of a policy document's exact bytes (blake3, domain-separated): what audit
/// entries and API views show to tell versions apart.
pub fn policy_digest(document: &str) -> [u8; 32] {
    blake3::derive_key("x0t 2026-11 policy document v1", document.as_bytes())
}
