//! Node registrations: what a node signs, with its own identity key, when it asks to join.
//!
//! ```text
//! body v1 = "X0TR" | u8 version=1
//!         | u8 len | mesh (ASCII)
//!         | node_id (32)                       = blake3(identity public key)
//!         | u8 sig_alg | u16 len | identity public key
//!         | u8 len | libp2p peer id bytes (1..=64)   bound to the identity by this signature
//!         | u8 len | hostname (1..=64, [A-Za-z0-9._-])
//!         | u8 device class
//!         | u8 count | count × (u8 len | tag)  requested tags; sorted, unique, at most 32
//!         | u64 requested_at_ms                the node's clock
//! ```
//! The signed form is a [`crate::Signed`] envelope whose issuer is the node itself: the
//! registration proves the node holds the key its id is the hash of, and binds its peer id.

use x0t_types::{DeviceClass, MeshId, NodeId, Tag, Timestamp};

use crate::CryptoError;
use crate::cert::MAX_PEER_ID_LEN;
use crate::sig::{SigAlgorithm, SignatureDomain, SigningKey, VerifyingKey};
use crate::signed::{
    Signed, SignedPayload, check_identity, check_tags, read_header, read_identity, read_mesh,
    read_tags, write_identity, write_tags,
};
use crate::wire::{Reader, Writer};

const MAGIC: &[u8; 4] = b"X0TR";
/// Version of the registration body encoding.
pub const REGISTRATION_VERSION: u8 = 1;
/// Longest hostname accepted.
pub const MAX_HOSTNAME_LEN: usize = 64;
/// Most tags a node may ask for.
pub const MAX_REQUESTED_TAGS: usize = 32;
/// How long a signed registration may be presented after the node signed it (and how far
/// the node's clock may run ahead), so a captured registration cannot be replayed later.
pub const REGISTRATION_WINDOW_MS: u64 = 10 * 60 * 1_000;

/// A node's request to join a mesh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The mesh it asks to join.
    pub mesh: MeshId,
    /// Its id; must equal `identity_key.node_id()`.
    pub node_id: NodeId,
    /// Its ML-DSA identity public key.
    pub identity_key: VerifyingKey,
    /// Its libp2p peer id, as bytes.
    pub peer_id: Vec<u8>,
    /// Its hostname, for humans.
    pub hostname: String,
    /// What kind of device it is.
    pub device_class: DeviceClass,
    /// Tags it asks for (an admin decides; a token may add its own).
    pub requested_tags: Vec<Tag>,
    /// When the node signed it (its own clock).
    pub requested_at: Timestamp,
}

/// A registration signed by the registering node.
pub type SignedRegistration = Signed<Registration>;

/// Whether `hostname` is acceptable: 1 to 64 bytes of letters, digits, `.`, `_` and `-`.
pub fn check_hostname(hostname: &str) -> Result<(), String> {
    if hostname.is_empty() || hostname.len() > MAX_HOSTNAME_LEN {
        return Err(format!(
            "hostname must be 1 to {MAX_HOSTNAME_LEN} bytes, not {}",
            hostname.len()
        ));
    }
    if !hostname
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err("hostname may contain only letters, digits, '.', '_' and '-'".to_owned());
    }
    Ok(())
}

impl Registration {
    fn validate(&self) -> Result<(), CryptoError> {
        let invalid = |reason: String| CryptoError::Invalid {
            what: "node registration",
            reason,
        };
        check_identity(
            &self.node_id,
            &self.identity_key,
            &self.peer_id,
            MAX_PEER_ID_LEN,
        )
        .map_err(invalid)?;
        check_hostname(&self.hostname).map_err(invalid)?;
        check_tags(&self.requested_tags, MAX_REQUESTED_TAGS).map_err(invalid)
    }

    /// Signs the registration with the node's identity key (which must be the key it names).
    pub fn sign(self, identity: &SigningKey) -> Result<SignedRegistration, CryptoError> {
        Signed::sign(self, identity)
    }
}

impl SignedPayload for Registration {
    const WHAT: &'static str = "node registration";
    const DOMAIN: SignatureDomain = SignatureDomain::Registration;
    const MAX_BODY_LEN: usize = 5
        + 1
        + MeshId::MAX_LEN
        + 32
        + 3
        + SigAlgorithm::MlDsa65.public_key_len()
        + 1
        + MAX_PEER_ID_LEN
        + 1
        + MAX_HOSTNAME_LEN
        + 1
        + 1
        + MAX_REQUESTED_TAGS * (1 + Tag::MAX_LEN)
        + 8;

    fn encode_body(&self) -> Result<Vec<u8>, CryptoError> {
        self.validate()?;
        let mut w = Writer::with_capacity(2200);
        w.bytes(MAGIC)
            .u8(REGISTRATION_VERSION)
            .short_bytes(self.mesh.as_str().as_bytes());
        write_identity(&mut w, &self.node_id, &self.identity_key, &self.peer_id);
        w.short_bytes(self.hostname.as_bytes())
            .u8(self.device_class.code());
        write_tags(&mut w, &self.requested_tags);
        w.u64(self.requested_at.as_millis());
        Ok(w.finish())
    }

    fn decode_body(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut r = Reader::new(Self::WHAT, bytes);
        read_header(&mut r, MAGIC, REGISTRATION_VERSION, "node registration")?;
        let mesh = read_mesh(&mut r)?;
        let (node_id, identity_key, peer_id) = read_identity(&mut r, MAX_PEER_ID_LEN)?;
        let hostname = std::str::from_utf8(r.short_bytes(MAX_HOSTNAME_LEN)?)
            .map_err(|_| r.error("hostname is not UTF-8"))?
            .to_owned();
        let code = r.u8()?;
        let device_class = DeviceClass::from_code(code)
            .ok_or_else(|| r.error(format_args!("unknown device class {code}")))?;
        let registration = Self {
            mesh,
            node_id,
            identity_key,
            peer_id,
            hostname,
            device_class,
            requested_tags: read_tags(&mut r, MAX_REQUESTED_TAGS)?,
            requested_at: Timestamp(r.u64()?),
        };
        r.finish()?;
        registration.validate()?;
        Ok(registration)
    }

    fn issuer(&self) -> NodeId {
        self.node_id
    }

    fn validity(&self) -> (Timestamp, Timestamp) {
        (
            Timestamp(
                self.requested_at
                    .as_millis()
                    .saturating_sub(REGISTRATION_WINDOW_MS),
            ),
            self.requested_at.saturating_add(REGISTRATION_WINDOW_MS),
        )
    }
}

impl Signed<Registration> {
    /// Checks the node's signature with the key the registration itself carries (whose hash
    /// is the node id), and that `now` is within [`REGISTRATION_WINDOW_MS`] of when it was
    /// signed.
    pub fn verify_self(&self, now: Timestamp) -> Result<&Registration, CryptoError> {
        let key = self.payload().identity_key.clone();
        self.verify(&key, now)
    }
}
