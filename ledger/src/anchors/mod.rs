//! The anchors domain: the control plane's anchors (Raft members as the ledger records them),
//! the identity key of every anchor ever recorded (kept for good: old certificates and audit
//! entries stay verifiable), and single-use anchor-join tokens.

mod command;
pub use command::{AnchorCommand, AnchorOutcome, AnchorReject};
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use x0t_crypto::VerifyingKey;
use x0t_types::{AnchorRecord, NodeId, PublicKeyBytes, Timestamp};

use crate::domain::{Applied, At, Domain, constant_time_eq, verifying_key};
use crate::{Ledger, Outcome, Reject};

/// Most anchor-join tokens outstanding at once (expired ones are forgotten when a new one is
/// added).
pub const MAX_ANCHOR_JOIN_TOKENS: usize = 256;

/// A recorded anchor-join token: only the hash of its secret is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorJoinToken {
    /// Public identifier.
    pub token_id: String,
    /// blake3-derived hash of the secret.
    pub secret_hash: [u8; 32],
    /// When it was created.
    pub created_at: Timestamp,
    /// The first instant it is no longer valid.
    pub expires_at: Timestamp,
}

/// The anchors' part of the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Anchors {
    anchors: BTreeMap<u64, AnchorRecord>,
    identity_keys: BTreeMap<NodeId, PublicKeyBytes>,
    join_tokens: BTreeMap<String, AnchorJoinToken>,
    changed: BTreeSet<Key>,
}

/// An anchors record's key, as stored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Key {
    /// An anchor, by Raft id.
    Anchor(u64),
    /// An anchor's identity key, by node id.
    Identity(NodeId),
    /// An anchor-join token, by id.
    JoinToken(String),
}

/// An anchors record, as stored.
#[derive(Serialize, Deserialize)]
pub(crate) enum Value {
    /// An anchor.
    Anchor(AnchorRecord),
    /// The identity key of an anchor, present or past.
    IdentityKey(NodeId, PublicKeyBytes),
    /// An anchor-join token.
    JoinToken(AnchorJoinToken),
}

impl Domain for Anchors {
    const NAME: &'static str = "anchors";
    type Key = Key;
    type Value = Value;

    fn key_of(value: &Value) -> Key {
        match value {
            Value::Anchor(anchor) => Key::Anchor(anchor.raft_id),
            Value::IdentityKey(id, _) => Key::Identity(*id),
            Value::JoinToken(token) => Key::JoinToken(token.token_id.clone()),
        }
    }

    fn get(&self, key: &Key) -> Option<Value> {
        match key {
            Key::Anchor(id) => self.anchors.get(id).cloned().map(Value::Anchor),
            Key::Identity(id) => self
                .identity_keys
                .get(id)
                .map(|key| Value::IdentityKey(*id, key.clone())),
            Key::JoinToken(id) => self.join_tokens.get(id).cloned().map(Value::JoinToken),
        }
    }

    fn values(&self) -> Vec<Value> {
        let anchors = self.anchors.values().cloned().map(Value::Anchor);
        let keys = self
            .identity_keys
            .iter()
            .map(|(id, key)| Value::IdentityKey(*id, key.clone()));
        let tokens = self.join_tokens.values().cloned().map(Value::JoinToken);
        anchors.chain(keys).chain(tokens).collect()
    }

    fn load(&mut self, value: Value) {
        match value {
            Value::Anchor(anchor) => {
                self.anchors.insert(anchor.raft_id, anchor);
            }
            Value::IdentityKey(id, key) => {
                self.identity_keys.insert(id, key);
            }
            Value::JoinToken(token) => {
                self.join_tokens.insert(token.token_id.clone(), token);
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

impl Anchors {
    /// The ML-DSA key of a recorded anchor, present or past.
    pub(crate) fn key(&self, node_id: &NodeId) -> Option<VerifyingKey> {
        self.identity_keys
            .get(node_id)
            .and_then(|key| verifying_key(key).ok())
    }

    /// Whether `node_id` is (or was) a recorded anchor.
    pub(crate) fn knows(&self, node_id: &NodeId) -> bool {
        self.identity_keys.contains_key(node_id)
    }

    /// Records an anchor and (for good) its identity key.
    fn record(&mut self, anchor: &AnchorRecord) {
        self.anchors.insert(anchor.raft_id, anchor.clone());
        self.changed.insert(Key::Anchor(anchor.raft_id));
        if self.identity_keys.get(&anchor.node_id) != Some(&anchor.identity_key) {
            self.identity_keys
                .insert(anchor.node_id, anchor.identity_key.clone());
            self.changed.insert(Key::Identity(anchor.node_id));
        }
    }

    /// `AddAnchor`: records an anchor (or replaces its record).
    pub(crate) fn add(&mut self, anchor: &AnchorRecord) -> Result<Applied, Reject> {
        validate_anchor(anchor)?;
        self.record(anchor);
        Ok(Applied::new(
            Outcome::Anchors(AnchorOutcome::Added {
                raft_id: anchor.raft_id,
            }),
            anchor.node_id.to_string(),
            details(anchor),
        ))
    }

    /// `RemoveAnchor`: forgets an anchor (its identity key stays).
    pub(crate) fn remove(&mut self, raft_id: u64) -> Result<Applied, Reject> {
        if self.anchors.remove(&raft_id).is_none() {
            return Err(Reject::Anchors(AnchorReject::NoSuchAnchor { raft_id }));
        }
        self.changed.insert(Key::Anchor(raft_id));
        Ok(Applied::new(
            Outcome::Anchors(AnchorOutcome::Removed { raft_id }),
            format!("raft {raft_id}"),
            String::new(),
        ))
    }

    /// `AddAnchorJoinToken`: records a token (forgetting expired ones), bounded in number.
    pub(crate) fn add_join_token(
        &mut self,
        token_id: &str,
        secret_hash: [u8; 32],
        expires_at: Timestamp,
        at: At,
    ) -> Result<Applied, Reject> {
        if token_id.is_empty() || token_id.len() > 64 {
            return Err(Reject::Invalid(
                "anchor-join token id must be 1 to 64 bytes".into(),
            ));
        }
        if expires_at <= at.timestamp {
            return Err(Reject::Invalid(
                "anchor-join token would be expired already".into(),
            ));
        }
        let expired: Vec<String> = self
            .join_tokens
            .values()
            .filter(|t| t.expires_at <= at.timestamp)
            .map(|t| t.token_id.clone())
            .collect();
        let live = self.join_tokens.len() - expired.len();
        if self.join_tokens.contains_key(token_id) {
            return Err(Reject::Invalid("anchor-join token id in use".into()));
        }
        if live >= MAX_ANCHOR_JOIN_TOKENS {
            return Err(Reject::Anchors(AnchorReject::TooManyTokens));
        }
        for id in expired {
            self.join_tokens.remove(&id);
            self.changed.insert(Key::JoinToken(id));
        }
        self.join_tokens.insert(
            token_id.to_owned(),
            AnchorJoinToken {
                token_id: token_id.to_owned(),
                secret_hash,
                created_at: at.timestamp,
                expires_at,
            },
        );
        self.changed.insert(Key::JoinToken(token_id.to_owned()));
        Ok(Applied::new(
            Outcome::Anchors(AnchorOutcome::JoinTokenAdded {
                token_id: token_id.to_owned(),
                expires_at,
            }),
            token_id,
            format!("expires at {expires_at}"),
        ))
    }

    /// `RedeemAnchorJoinToken`: spends a token (once, before it expires) to record an anchor.
    pub(crate) fn redeem(
        &mut self,
        token_id: &str,
        secret_hash: &[u8; 32],
        anchor: &AnchorRecord,
        at: At,
    ) -> Result<Applied, Reject> {
        let token = self
            .join_tokens
            .get(token_id)
            .filter(|t| constant_time_eq(&t.secret_hash, secret_hash))
            .ok_or(Reject::Anchors(AnchorReject::InvalidToken))?;
        if token.expires_at <= at.timestamp {
            return Err(Reject::Anchors(AnchorReject::TokenExpired {
                token_id: token_id.to_owned(),
                expires_at: token.expires_at,
            }));
        }
        validate_anchor(anchor)?;
        self.join_tokens.remove(token_id);
        self.changed.insert(Key::JoinToken(token_id.to_owned()));
        self.record(anchor);
        Ok(Applied::new(
            Outcome::Anchors(AnchorOutcome::JoinTokenRedeemed {
                raft_id: anchor.raft_id,
            }),
            token_id,
            details(anchor),
        ))
    }
}

fn details(anchor: &AnchorRecord) -> String {
    format!(
        "raft {} peer {} api {}",
        anchor.raft_id, anchor.peer_id, anchor.api_url
    )
}

fn validate_anchor(anchor: &AnchorRecord) -> Result<(), Reject> {
    let key = verifying_key(&anchor.identity_key)?;
    if key.node_id() != anchor.node_id {
        return Err(Reject::Invalid(
            "the anchor's node id is not the hash of its identity key".into(),
        ));
    }
    if anchor.peer_id.is_empty() || anchor.peer_id.len() > 128 {
        return Err(Reject::Invalid(
            "anchor peer id must be 1 to 128 bytes".into(),
        ));
    }
    if anchor.addrs.len() > 16 || anchor.addrs.iter().any(|a| a.len() > 256) {
        return Err(Reject::Invalid(
            "at most 16 anchor addresses of 256 bytes".into(),
        ));
    }
    if anchor.api_url.len() > 256 {
        return Err(Reject::Invalid(
            "an anchor API URL has at most 256 bytes".into(),
        ));
    }
    Ok(())
}

impl Ledger {
    /// All recorded anchors, by Raft id.
    pub fn anchors(&self) -> impl Iterator<Item = &AnchorRecord> {
        self.anchors.anchors.values()
    }

    /// The ML-DSA key of a recorded anchor (present or past: old audit entries and
    /// certificates stay verifiable after an anchor leaves).
    pub fn anchor_key(&self, node_id: &NodeId) -> Option<VerifyingKey> {
        self.anchors.key(node_id)
    }

    /// The identity key of every anchor ever recorded, by node id.
    pub fn anchor_keys(&self) -> impl Iterator<Item = (&NodeId, &PublicKeyBytes)> {
        self.anchors.identity_keys.iter()
    }

    /// An anchor-join token by id (expired or not).
    pub fn anchor_join_token(&self, token_id: &str) -> Option<&AnchorJoinToken> {
        self.anchors.join_tokens.get(token_id)
    }

    /// Every recorded anchor-join token (expired ones not yet forgotten included), by id.
    pub fn anchor_join_tokens(&self) -> impl Iterator<Item = &AnchorJoinToken> {
        self.anchors.join_tokens.values()
    }
}

#[cfg(test)]
mod tests;
