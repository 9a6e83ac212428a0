//! The commands of the API keys domain.

use serde::{Deserialize, Serialize};
use x0t_types::{KeyRole, MeshId};

use super::ApiKeys;
use crate::Reject;
use crate::domain::{Applied, At};

/// What a client asks of the API keys domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiKeyCommand {
    /// Records an API key by its id and the hash of its secret (never the secret).
    Add {
        /// Public identifier (part of the token text).
        key_id: String,
        /// blake3-derived hash of the secret.
        secret_hash: [u8; 32],
        /// Human label, e.g. "bootstrap".
        label: String,
        /// What it may do.
        role: KeyRole,
    },
}

impl ApiKeyCommand {
    /// The audit action name.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Add { .. } => "api_key.add",
        }
    }

    /// The audit chain it belongs to: the cluster's.
    pub fn scope(&self) -> Option<MeshId> {
        None
    }
}

impl ApiKeys {
    /// Applies one of the domain's commands.
    pub(crate) fn apply(&mut self, command: &ApiKeyCommand, at: At) -> Result<Applied, Reject> {
        match command {
            ApiKeyCommand::Add {
                key_id,
                secret_hash,
                label,
                role,
            } => self.add(key_id, *secret_hash, label, *role, at),
        }
    }
}

/// What a successful command of this domain did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiKeyOutcome {
    /// An API key was recorded.
    Added {
        /// Its id.
        key_id: String,
    },
}

/// Why this domain refused a command (a refused command changes nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApiKeyReject {
    /// An API key with that id exists.
    #[error("API key {key_id} already exists")]
    ApiKeyExists {
        /// The id.
        key_id: String,
    },
}
