//! Admin API keys: `x0tadm_<key id>_<secret>`. The ledger stores only a hash of the secret.

use rand_core::{OsRng, RngCore};
use x0t_types::base32;

const PREFIX: &str = "x0tadm_";
const HASH_CONTEXT: &str = "x0t 2026-11 admin key secret v1";

/// An admin API key as handed to an operator.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    /// Public identifier, stored in clear in the ledger.
    pub key_id: String,
    secret: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminToken({}, <redacted>)", self.key_id)
    }
}

impl AdminToken {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut id);
        OsRng.fill_bytes(&mut secret);
        Self {
            key_id: base32::encode(&id),
            secret,
        }
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        format!("{PREFIX}{}_{}", self.key_id, base32::encode(&self.secret))
    }

    /// Parses the text form; `None` for anything else (no detail, it's a credential).
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.trim().strip_prefix(PREFIX)?;
        if rest.len() > 128 {
            return None;
        }
        let (key_id, secret) = rest.split_once('_')?;
        if key_id.is_empty() || key_id.len() > 64 {
            return None;
        }
        let secret: [u8; 32] = base32::decode(secret).ok()?.try_into().ok()?;
        Some(Self {
            key_id: key_id.to_owned(),
            secret,
        })
    }

    /// What the ledger stores.
    pub fn secret_hash(&self) -> [u8; 32] {
        blake3::derive_key(HASH_CONTEXT, &self.secret)
    }

    /// Whether this token's secret hashes to `stored` (constant-time comparison).
    pub fn matches(&self, stored: &[u8; 32]) -> bool {
        blake3::Hash::from(self.secret_hash()) == blake3::Hash::from(*stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_roundtrip_and_rejects() {
        let token = AdminToken::generate();
        let parsed = AdminToken::parse(&format!(" {}\n", token.to_text())).unwrap();
        assert_eq!(parsed, token);
        assert!(parsed.matches(&token.secret_hash()));
        assert!(!AdminToken::generate().matches(&token.secret_hash()));
        assert!(AdminToken::parse("x0tadm_abc").is_none());
        assert!(AdminToken::parse("Bearer nope").is_none());
        assert!(AdminToken::parse(&"x0tadm_a_".repeat(100)).is_none());
        assert!(!format!("{token:?}").contains(&base32::encode(&token.secret)));
    }
}
