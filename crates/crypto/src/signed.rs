//! The signed envelope shared by certificates and join tokens.
//!
//! ```text
//! envelope v1 = "X0TS" | u8 version=1 | u32 body_len | body | u8 sig_alg | u16 sig_len | sig
//! ```
//!
//! The body is the payload's own canonical encoding (which starts with its own magic and
//! version); the signature is ML-DSA over exactly those body bytes, in the payload's
//! [`SignatureDomain`]. The envelope keeps the body bytes it was decoded from, so verifying
//! never depends on re-encoding being byte-identical (it is, and tests pin it, but a verifier
//! should check what was signed, not what it thinks was signed).

use x0t_types::{NodeId, Timestamp};

use crate::CryptoError;
use crate::sig::{SigAlgorithm, Signature, SignatureDomain, SigningKey, VerifyingKey};
use crate::wire::{Reader, Writer};

const MAGIC: &[u8; 4] = b"X0TS";
/// Version of the signed envelope encoding.
pub const ENVELOPE_VERSION: u8 = 1;

/// A value that anchors sign: it has a canonical body encoding, an issuer and a validity.
pub trait SignedPayload: Sized {
    /// Human name for errors, e.g. "node certificate".
    const WHAT: &'static str;
    /// The signature domain (ML-DSA context string) of this payload.
    const DOMAIN: SignatureDomain;
    /// Upper bound on the body's encoded length, checked before decoding.
    const MAX_BODY_LEN: usize;

    /// The canonical body bytes; fails if the value breaks an invariant of the format.
    fn encode_body(&self) -> Result<Vec<u8>, CryptoError>;
    /// Parses and validates canonical body bytes.
    fn decode_body(bytes: &[u8]) -> Result<Self, CryptoError>;
    /// The node id of the anchor that signed (or must sign) it.
    fn issuer(&self) -> NodeId;
    /// The first and last instant (inclusive start, exclusive end) it is valid.
    fn validity(&self) -> (Timestamp, Timestamp);
}

/// A payload with its canonical body and an ML-DSA signature over that body.
#[derive(Clone, Debug)]
pub struct Signed<T> {
    payload: T,
    body: Vec<u8>,
    signature: Signature,
}

impl<T: SignedPayload> Signed<T> {
    /// Signs `payload` with the issuer's key. The key must be the one `payload.issuer()` names.
    pub fn sign(payload: T, issuer: &SigningKey) -> Result<Self, CryptoError> {
        if issuer.node_id() != payload.issuer() {
            return Err(CryptoError::Invalid {
                what: T::WHAT,
                reason: format!(
                    "names issuer {} but the signing key is {}",
                    payload.issuer().short(),
                    issuer.node_id().short()
                ),
            });
        }
        let body = payload.encode_body()?;
        let signature = issuer.sign(T::DOMAIN, &body)?;
        Ok(Self {
            payload,
            body,
            signature,
        })
    }

    /// The payload, **not yet verified**: call [`Signed::verify`] before trusting it.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The canonical body bytes the signature covers.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Largest accepted envelope: header, body, signature of the largest algorithm.
    pub const fn max_encoded_len() -> usize {
        4 + 1 + 4 + T::MAX_BODY_LEN + 1 + 2 + SigAlgorithm::MlDsa65.signature_len()
    }

    /// The canonical envelope bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(12 + self.body.len() + self.signature.as_bytes().len());
        w.bytes(MAGIC)
            .u8(ENVELOPE_VERSION)
            .u32(self.body.len() as u32)
            .bytes(&self.body)
            .u8(self.signature.algorithm().code())
            .medium_bytes(self.signature.as_bytes());
        w.finish()
    }

    /// Parses an envelope and its body, bounding every size. Does not verify the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() > Self::max_encoded_len() {
            return Err(CryptoError::decode(
                T::WHAT,
                format!(
                    "{} bytes exceeds the limit of {}",
                    bytes.len(),
                    Self::max_encoded_len()
                ),
            ));
        }
        let mut r = Reader::new(T::WHAT, bytes);
        if &r.array::<4>()? != MAGIC {
            return Err(r.error("not a signed x0t object (bad magic)"));
        }
        let version = r.u8()?;
        if version != ENVELOPE_VERSION {
            return Err(r.error(format_args!(
                "envelope version {version}, this build reads {ENVELOPE_VERSION}"
            )));
        }
        let body = r.long_bytes(T::MAX_BODY_LEN)?.to_vec();
        let code = r.u8()?;
        let algorithm = SigAlgorithm::from_code(code)
            .ok_or_else(|| r.error(format_args!("unknown signature algorithm {code:#04x}")))?;
        let signature =
            Signature::from_bytes(algorithm, r.medium_bytes(algorithm.signature_len())?)?;
        r.finish()?;
        let payload = T::decode_body(&body)?;
        Ok(Self {
            payload,
            body,
            signature,
        })
    }

    /// Checks the signature against the issuer's public key, without looking at time.
    pub fn verify_signature(&self, issuer_key: &VerifyingKey) -> Result<&T, CryptoError> {
        let named = self.payload.issuer();
        if issuer_key.node_id() != named {
            return Err(CryptoError::Invalid {
                what: T::WHAT,
                reason: format!(
                    "issued by {}, but the key offered to verify it is {}",
                    named.short(),
                    issuer_key.node_id().short()
                ),
            });
        }
        issuer_key.verify(T::DOMAIN, &self.body, &self.signature)?;
        Ok(&self.payload)
    }

    /// Checks the signature and that `now` lies inside the validity window.
    pub fn verify(&self, issuer_key: &VerifyingKey, now: Timestamp) -> Result<&T, CryptoError> {
        let payload = self.verify_signature(issuer_key)?;
        let (not_before, not_after) = payload.validity();
        if now < not_before || now >= not_after {
            return Err(CryptoError::OutsideValidity {
                what: T::WHAT,
                now,
                not_before,
                not_after,
            });
        }
        Ok(payload)
    }
}

/// Reads the magic and version every signed body starts with; `what` names the body in errors.
pub(crate) fn read_header(
    r: &mut Reader<'_>,
    magic: &[u8; 4],
    version: u8,
    what: &str,
) -> Result<(), CryptoError> {
    if &r.array::<4>()? != magic {
        return Err(r.error(format_args!("not a {what} (bad magic)")));
    }
    let found = r.u8()?;
    if found != version {
        return Err(r.error(format_args!(
            "{what} version {found}, this build reads {version}"
        )));
    }
    Ok(())
}

/// Checks the identity part registrations and certificates share: the node id is the hash of
/// the identity key, and the peer id is 1 to `max_peer_id` bytes.
pub(crate) fn check_identity(
    node_id: &NodeId,
    identity_key: &VerifyingKey,
    peer_id: &[u8],
    max_peer_id: usize,
) -> Result<(), String> {
    if identity_key.node_id() != *node_id {
        return Err(format!(
            "node id {} is not the hash of the identity key ({})",
            node_id.short(),
            identity_key.node_id().short()
        ));
    }
    if peer_id.is_empty() || peer_id.len() > max_peer_id {
        return Err(format!(
            "peer id of {} bytes; expected 1 to {max_peer_id}",
            peer_id.len()
        ));
    }
    Ok(())
}

/// Writes the identity part registrations and certificates share (see [`read_identity`]).
pub(crate) fn write_identity(
    w: &mut Writer,
    node_id: &NodeId,
    identity_key: &VerifyingKey,
    peer_id: &[u8],
) {
    w.bytes(node_id.as_bytes())
        .u8(identity_key.algorithm().code())
        .medium_bytes(identity_key.as_bytes())
        .short_bytes(peer_id);
}

/// Reads the identity part registrations and certificates share: node id, the algorithm and
/// bytes of the identity public key, and the libp2p peer id (at most `max_peer_id` bytes).
pub(crate) fn read_identity(
    r: &mut Reader<'_>,
    max_peer_id: usize,
) -> Result<(NodeId, VerifyingKey, Vec<u8>), CryptoError> {
    let node_id = NodeId::from_bytes(r.array()?);
    let code = r.u8()?;
    let algorithm = SigAlgorithm::from_code(code)
        .ok_or_else(|| r.error(format_args!("unknown identity key algorithm {code:#04x}")))?;
    let identity_key =
        VerifyingKey::from_bytes(algorithm, r.medium_bytes(algorithm.public_key_len())?)?;
    let peer_id = r.short_bytes(max_peer_id)?.to_vec();
    Ok((node_id, identity_key, peer_id))
}

/// Reads a tag list: count-prefixed, each tag short-length-prefixed, strictly increasing so
/// each set of tags has exactly one encoding.
pub(crate) fn read_tags(
    r: &mut Reader<'_>,
    max: usize,
) -> Result<Vec<x0t_types::Tag>, CryptoError> {
    let count = usize::from(r.u8()?);
    if count > max {
        return Err(r.error(format_args!("{count} tags exceeds the limit of {max}")));
    }
    let mut tags = Vec::with_capacity(count);
    for _ in 0..count {
        let raw = r.short_bytes(x0t_types::Tag::MAX_LEN)?;
        let text = std::str::from_utf8(raw).map_err(|_| r.error("tag is not UTF-8"))?;
        let tag = x0t_types::Tag::new(text).map_err(|e| r.error(e))?;
        tags.push(tag);
    }
    check_tags(&tags, max).map_err(|reason| r.error(reason))?;
    Ok(tags)
}

/// Tags must be strictly increasing (sorted, no duplicates) and at most `max`.
pub(crate) fn check_tags(tags: &[x0t_types::Tag], max: usize) -> Result<(), String> {
    if tags.len() > max {
        return Err(format!("{} tags exceeds the limit of {max}", tags.len()));
    }
    if tags.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err("tags must be sorted and unique".to_owned());
    }
    Ok(())
}

pub(crate) fn write_tags(w: &mut Writer, tags: &[x0t_types::Tag]) {
    w.u8(tags.len() as u8);
    for tag in tags {
        w.short_bytes(tag.as_str().as_bytes());
    }
}

pub(crate) fn read_mesh(r: &mut Reader<'_>) -> Result<x0t_types::MeshId, CryptoError> {
    let raw = r.short_bytes(x0t_types::MeshId::MAX_LEN)?;
    let text = std::str::from_utf8(raw).map_err(|_| r.error("mesh name is not UTF-8"))?;
    x0t_types::MeshId::new(text).map_err(|e| r.error(e))
}

pub(crate) fn check_validity(
    what: &'static str,
    not_before: Timestamp,
    not_after: Timestamp,
) -> Result<(), CryptoError> {
    if not_before >= not_after {
        return Err(CryptoError::Invalid {
            what,
            reason: format!("not_before {not_before} is not before not_after {not_after}"),
        });
    }
    Ok(())
}
