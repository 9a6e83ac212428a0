//! The API keys domain: admin and viewer keys, by id, with only the hash of each secret.

mod command;
pub use command::{ApiKeyCommand, ApiKeyOutcome, ApiKeyReject};
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use x0t_types::{KeyRole, Timestamp};

use crate::domain::{Applied, At, Domain};
use crate::{Ledger, Outcome, Reject};

/// An API key: only the hash of its secret is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public identifier.
    pub key_id: String,
    /// blake3-derived hash of the secret.
    pub secret_hash: [u8; 32],
    /// Human label.
    pub label: String,
    /// What it may do.
    pub role: KeyRole,
    /// When it was created.
    pub created_at: Timestamp,
}

/// The API keys' part of the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ApiKeys {
    keys: BTreeMap<String, ApiKey>,
    changed: BTreeSet<Key>,
}

/// An API key record's key, as stored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Key {
    /// A key, by id.
    Id(String),
}

/// An API key record, as stored.
#[derive(Serialize, Deserialize)]
pub(crate) enum Value {
    /// A key.
    ApiKey(ApiKey),
}

impl Domain for ApiKeys {
    const NAME: &'static str = "api_keys";
    type Key = Key;
    type Value = Value;

    fn key_of(value: &Value) -> Key {
        match value {
            Value::ApiKey(key) => Key::Id(key.key_id.clone()),
        }
    }

    fn get(&self, key: &Key) -> Option<Value> {
        match key {
            Key::Id(id) => self.keys.get(id).cloned().map(Value::ApiKey),
        }
    }

    fn values(&self) -> Vec<Value> {
        self.keys.values().cloned().map(Value::ApiKey).collect()
    }

    fn load(&mut self, value: Value) {
        match value {
            Value::ApiKey(key) => {
                self.keys.insert(key.key_id.clone(), key);
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

impl ApiKeys {
    /// `AddApiKey`: records a key by its id and the hash of its secret.
    pub(crate) fn add(
        &mut self,
        key_id: &str,
        secret_hash: [u8; 32],
        label: &str,
        role: KeyRole,
        at: At,
    ) -> Result<Applied, Reject> {
        if key_id.is_empty() || key_id.len() > 64 || label.len() > 256 {
            return Err(Reject::Invalid(
                "admin key id must be 1 to 64 bytes and its label at most 256".into(),
            ));
        }
        if self.keys.contains_key(key_id) {
            return Err(Reject::ApiKeys(ApiKeyReject::ApiKeyExists {
                key_id: key_id.to_owned(),
            }));
        }
        self.keys.insert(
            key_id.to_owned(),
            ApiKey {
                key_id: key_id.to_owned(),
                secret_hash,
                label: label.to_owned(),
                role,
                created_at: at.timestamp,
            },
        );
        self.changed.insert(Key::Id(key_id.to_owned()));
        Ok(Applied::new(
            Outcome::ApiKeys(ApiKeyOutcome::Added {
                key_id: key_id.to_owned(),
            }),
            key_id,
            format!("role {}, label {label:?}", role.name()),
        ))
    }
}

impl Ledger {
    /// An API key by id.
    pub fn api_key(&self, key_id: &str) -> Option<&ApiKey> {
        self.api_keys.keys.get(key_id)
    }

    /// Every API key, by id.
    pub fn api_keys(&self) -> impl Iterator<Item = &ApiKey> {
        self.api_keys.keys.values()
    }
}
