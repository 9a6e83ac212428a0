//! Join tokens: bearer credentials an admin hands to a node so it can register.
//!
//! ```text
//! body v1 = "X0TJ" | u8 version=1
//!         | u8 len | mesh (ASCII)
//!         | token_id (16)
//!         | secret (32)                        the ledger stores only secret_hash()
//!         | u8 usage (1 single-use, 2 reusable) | u32 max_uses (single: 1; reusable: 0 = unlimited)
//!         | u8 pre_approved (0 or 1)
//!         | u8 count | count × (u8 len | tag)  sorted, unique, at most 32
//!         | u64 not_before_ms | u64 not_after_ms   lifetime between 1 hour and 30 days
//!         | issuer node_id (32)
//! ```
//! The signed form is a [`crate::Signed`] envelope; its text form is `x0tj1_` + base32.

use std::fmt;

use rand_core::{OsRng, RngCore};
use x0t_types::{MeshId, NodeId, Tag, Timestamp, TokenUsage, base32};
use zeroize::Zeroizing;

use crate::CryptoError;
use crate::sig::SignatureDomain;
use crate::signed::{
    Signed, SignedPayload, check_tags, check_validity, read_mesh, read_tags, write_tags,
};
use crate::wire::{Reader, Writer};

const MAGIC: &[u8; 4] = b"X0TJ";
/// Version of the token body encoding.
pub const TOKEN_VERSION: u8 = 1;
/// Prefix of the text form, so a token pasted in the wrong place is recognisable.
pub const TOKEN_TEXT_PREFIX: &str = "x0tj1_";
/// Shortest lifetime a token may have.
pub const MIN_TOKEN_TTL_MS: u64 = Timestamp::HOUR;
/// Longest lifetime a token may have.
pub const MAX_TOKEN_TTL_MS: u64 = 30 * Timestamp::DAY;
/// Most tags a token may pre-assign.
pub const MAX_TOKEN_TAGS: usize = 32;

/// The 32-byte bearer secret of a token; wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(Zeroizing<[u8; 32]>);

impl TokenSecret {
    /// Draws a fresh secret from the operating system.
    pub fn generate() -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(secret.as_mut());
        Self(secret)
    }

    /// Wraps known bytes (decoding, golden tests).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// What the ledger stores instead of the secret: a one-way blake3 derivation.
    pub fn hash(&self) -> [u8; 32] {
        blake3::derive_key("x0t 2026-11 join token secret v1", self.0.as_ref())
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

/// A join token's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    /// The mesh it admits into.
    pub mesh: MeshId,
    /// Public identifier (listing, revocation, rotation).
    pub token_id: [u8; 16],
    /// The bearer secret.
    pub secret: TokenSecret,
    /// Single-use or reusable.
    pub usage: TokenUsage,
    /// Whether a node registering with it is approved at once.
    pub pre_approved: bool,
    /// Tags given to nodes that join with it; sorted and unique.
    pub tags: Vec<Tag>,
    /// Start of validity (inclusive).
    pub not_before: Timestamp,
    /// End of validity (exclusive).
    pub not_after: Timestamp,
    /// The anchor that signed it.
    pub issuer: NodeId,
}

/// A join token with the issuing anchor's signature.
pub type SignedJoinToken = Signed<JoinToken>;

impl JoinToken {
    /// A new token with fresh random id and secret, valid from `now` for `ttl_ms`.
    /// The randomness is drawn here, before anything is proposed to the ledger.
    pub fn generate(
        mesh: MeshId,
        usage: TokenUsage,
        pre_approved: bool,
        mut tags: Vec<Tag>,
        now: Timestamp,
        ttl_ms: u64,
        issuer: NodeId,
    ) -> Result<Self, CryptoError> {
        let mut token_id = [0u8; 16];
        OsRng.fill_bytes(&mut token_id);
        tags.sort();
        tags.dedup();
        let token = Self {
            mesh,
            token_id,
            secret: TokenSecret::generate(),
            usage,
            pre_approved,
            tags,
            not_before: now,
            not_after: now.saturating_add(ttl_ms),
            issuer,
        };
        token.validate()?;
        Ok(token)
    }

    fn validate(&self) -> Result<(), CryptoError> {
        let invalid = |reason: String| CryptoError::Invalid {
            what: "join token",
            reason,
        };
        check_validity("join token", self.not_before, self.not_after)?;
        let ttl = self.not_after.as_millis() - self.not_before.as_millis();
        if !(MIN_TOKEN_TTL_MS..=MAX_TOKEN_TTL_MS).contains(&ttl) {
            return Err(invalid(format!(
                "lifetime of {} s is outside the allowed 1 hour to 30 days",
                ttl / 1_000
            )));
        }
        if let TokenUsage::Reusable { max_uses: Some(0) } = self.usage {
            return Err(invalid("a usage limit of 0 would admit nobody".to_owned()));
        }
        check_tags(&self.tags, MAX_TOKEN_TAGS).map_err(invalid)
    }
}

impl SignedPayload for JoinToken {
    const WHAT: &'static str = "join token";
    const DOMAIN: SignatureDomain = SignatureDomain::JoinToken;
    const MAX_BODY_LEN: usize = 5
        + 1
        + MeshId::MAX_LEN
        + 16
        + 32
        + 5
        + 1
        + 1
        + MAX_TOKEN_TAGS * (1 + Tag::MAX_LEN)
        + 16
        + 32;

    fn encode_body(&self) -> Result<Vec<u8>, CryptoError> {
        self.validate()?;
        let (usage, max_uses) = match self.usage {
            TokenUsage::SingleUse => (1, 1),
            TokenUsage::Reusable { max_uses } => (2, max_uses.unwrap_or(0)),
        };
        let mut w = Writer::with_capacity(160);
        w.bytes(MAGIC)
            .u8(TOKEN_VERSION)
            .short_bytes(self.mesh.as_str().as_bytes())
            .bytes(&self.token_id)
            .bytes(self.secret.0.as_ref())
            .u8(usage)
            .u32(max_uses)
            .u8(u8::from(self.pre_approved));
        write_tags(&mut w, &self.tags);
        w.u64(self.not_before.as_millis())
            .u64(self.not_after.as_millis())
            .bytes(self.issuer.as_bytes());
        Ok(w.finish())
    }

    fn decode_body(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut r = Reader::new(Self::WHAT, bytes);
        if &r.array::<4>()? != MAGIC {
            return Err(r.error("not a join token (bad magic)"));
        }
        let version = r.u8()?;
        if version != TOKEN_VERSION {
            return Err(r.error(format_args!(
                "token version {version}, this build reads {TOKEN_VERSION}"
            )));
        }
        let mesh = read_mesh(&mut r)?;
        let token_id = r.array()?;
        let secret = TokenSecret::from_bytes(r.array()?);
        let usage = match (r.u8()?, r.u32()?) {
            (1, 1) => TokenUsage::SingleUse,
            (2, 0) => TokenUsage::Reusable { max_uses: None },
            (2, n) => TokenUsage::Reusable { max_uses: Some(n) },
            (kind, n) => return Err(r.error(format_args!("invalid usage {kind} with limit {n}"))),
        };
        let pre_approved = match r.u8()? {
            0 => false,
            1 => true,
            other => return Err(r.error(format_args!("invalid pre-approved flag {other}"))),
        };
        let token = Self {
            mesh,
            token_id,
            secret,
            usage,
            pre_approved,
            tags: read_tags(&mut r, MAX_TOKEN_TAGS)?,
            not_before: Timestamp(r.u64()?),
            not_after: Timestamp(r.u64()?),
            issuer: NodeId::from_bytes(r.array()?),
        };
        r.finish()?;
        token.validate()?;
        Ok(token)
    }

    fn issuer(&self) -> NodeId {
        self.issuer
    }

    fn validity(&self) -> (Timestamp, Timestamp) {
        (self.not_before, self.not_after)
    }
}

impl Signed<JoinToken> {
    /// The text form handed to an operator: `x0tj1_` followed by base32 of the envelope.
    pub fn to_text(&self) -> String {
        format!("{TOKEN_TEXT_PREFIX}{}", base32::encode(&self.encode()))
    }

    /// Parses the text form (surrounding whitespace allowed), bounding its length first.
    pub fn from_text(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let max_len = TOKEN_TEXT_PREFIX.len() + Self::max_encoded_len().div_ceil(5) * 8;
        if text.len() > max_len {
            return Err(CryptoError::decode(
                "join token",
                format!(
                    "text of {} characters exceeds the limit of {max_len}",
                    text.len()
                ),
            ));
        }
        let encoded = text.strip_prefix(TOKEN_TEXT_PREFIX).ok_or_else(|| {
            CryptoError::decode(
                "join token",
                format!("text must start with {TOKEN_TEXT_PREFIX:?}"),
            )
        })?;
        let bytes = base32::decode(encoded)
            .map_err(|e| CryptoError::decode("join token", e.to_string()))?;
        Self::decode(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(ttl_ms: u64) -> Result<JoinToken, CryptoError> {
        JoinToken::generate(
            MeshId::new("factory").unwrap(),
            TokenUsage::SingleUse,
            false,
            vec![
                Tag::new("robot").unwrap(),
                Tag::new("a").unwrap(),
                Tag::new("robot").unwrap(),
            ],
            Timestamp(1_000),
            ttl_ms,
            NodeId::from_bytes([1; 32]),
        )
    }

    #[test]
    fn ttl_bounds_are_enforced() {
        assert!(token(MIN_TOKEN_TTL_MS).is_ok());
        assert!(token(MAX_TOKEN_TTL_MS).is_ok());
        let err = token(MIN_TOKEN_TTL_MS - 1).unwrap_err().to_string();
        assert!(err.contains("1 hour to 30 days"), "{err}");
        assert!(token(MAX_TOKEN_TTL_MS + 1).is_err());
    }

    #[test]
    fn generated_tokens_are_canonical_and_distinct() {
        let a = token(MIN_TOKEN_TTL_MS).unwrap();
        let b = token(MIN_TOKEN_TTL_MS).unwrap();
        assert_eq!(a.tags.len(), 2, "sorted and deduplicated");
        assert_ne!(a.token_id, b.token_id);
        assert_ne!(a.secret.hash(), b.secret.hash());
        assert!(!format!("{a:?}").contains(&format!("{:?}", a.secret.0.as_ref())));
    }
}
