//! Bearer secrets handed to people: admin API keys (`x0tadm_<id>_<secret>`) and anchor-join
//! tokens (`x0tanc_<id>_<secret>`). The ledger stores only the id and a keyed blake3 hash of
//! the secret, with a different hash context per kind, so one kind never passes for another.

use rand_core::{OsRng, RngCore};
use x0t_types::base32;

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// An admin API key (`Authorization: Bearer x0tadm_…`).
    Admin,
    /// Admits one new anchor into the cluster (single use, expires).
    AnchorJoin,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Admin => "x0tadm_",
            Self::AnchorJoin => "x0tanc_",
        }
    }

    fn hash_context(self) -> &'static str {
        match self {
            Self::Admin => "x0t 2026-11 admin key secret v1",
            Self::AnchorJoin => "x0t 2026-11 anchor join token secret v1",
        }
    }
}

/// A token as handed to an operator.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken {
    kind: TokenKind,
    /// Public identifier, stored in clear in the ledger.
    pub id: String,
    secret: [u8; 32],
}

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretToken({:?}, {}, <redacted>)", self.kind, self.id)
    }
}

impl SecretToken {
    /// A fresh random token of `kind`.
    pub fn generate(kind: TokenKind) -> Self {
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut id);
        OsRng.fill_bytes(&mut secret);
        Self {
            kind,
            id: base32::encode(&id),
            secret,
        }
    }

    /// What it is for.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        format!(
            "{}{}_{}",
            self.kind.prefix(),
            self.id,
            base32::encode(&self.secret)
        )
    }

    /// Parses the text form of a `kind` token; `None` for anything else (no detail: it is a
    /// credential).
    pub fn parse(kind: TokenKind, text: &str) -> Option<Self> {
        let rest = text.trim().strip_prefix(kind.prefix())?;
        if rest.len() > 128 {
            return None;
        }
        let (id, secret) = rest.split_once('_')?;
        if id.is_empty() || id.len() > 64 {
            return None;
        }
        let secret: [u8; 32] = base32::decode(secret).ok()?.try_into().ok()?;
        Some(Self {
            kind,
            id: id.to_owned(),
            secret,
        })
    }

    /// What the ledger stores.
    pub fn secret_hash(&self) -> [u8; 32] {
        blake3::derive_key(self.kind.hash_context(), &self.secret)
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
        for kind in [TokenKind::Admin, TokenKind::AnchorJoin] {
            let token = SecretToken::generate(kind);
            let parsed = SecretToken::parse(kind, &format!(" {}\n", token.to_text())).unwrap();
            assert_eq!(parsed, token);
            assert!(parsed.matches(&token.secret_hash()));
            assert!(!SecretToken::generate(kind).matches(&token.secret_hash()));
            assert!(!format!("{token:?}").contains(&base32::encode(&token.secret)));
        }
        assert!(SecretToken::parse(TokenKind::Admin, "x0tadm_abc").is_none());
        assert!(SecretToken::parse(TokenKind::Admin, "Bearer nope").is_none());
        assert!(SecretToken::parse(TokenKind::Admin, &"x0tadm_a_".repeat(100)).is_none());
    }

    #[test]
    fn kinds_do_not_pass_for_each_other() {
        let join = SecretToken::generate(TokenKind::AnchorJoin);
        assert!(SecretToken::parse(TokenKind::Admin, &join.to_text()).is_none());
        // Same id and secret read as an admin key would hash differently.
        let forged = SecretToken {
            kind: TokenKind::Admin,
            ..join.clone()
        };
        assert!(!forged.matches(&join.secret_hash()));
    }
}
