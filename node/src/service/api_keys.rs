//! API keys: an admin creates a key with a role; the secret is shown once and the ledger keeps
//! only its keyed hash. (Checking a key is the core's `Service::authenticate`.)

use super::ErrorKind;
use x0t_ledger::ApiKeyCommand;
use x0t_ledger::ApiKeyReject;
use x0t_ledger::Command;
use x0t_types::api::{ApiKeyView, CreateApiKey};

use super::{Caller, Service, ServiceError};
use crate::token::{SecretToken, TokenKind};

impl Service {
    /// Creates an API key (shown once; the ledger keeps its hash).
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        body: CreateApiKey,
    ) -> Result<ApiKeyView, ServiceError> {
        let key = SecretToken::generate(TokenKind::Admin);
        let command = Command::ApiKeys(ApiKeyCommand::Add {
            key_id: key.id.clone(),
            secret_hash: key.secret_hash(),
            label: body.label,
            role: body.role,
        });
        self.write(caller.actor(), command).await?;
        Ok(ApiKeyView {
            key: key.to_text(),
            key_id: key.id.clone(),
            role: body.role,
        })
    }
}

/// The kind and stable code of each refusal of the API keys domain.
pub(super) fn reject_kind(reject: &ApiKeyReject) -> (ErrorKind, &'static str) {
    match reject {
        ApiKeyReject::ApiKeyExists { .. } => (ErrorKind::Conflict, "api_key_exists"),
    }
}
