//! API keys: an admin creates a key with a role; the secret is shown once and the ledger keeps
//! only its keyed hash. (Checking a key is the core's `Service::authenticate`.)

use x0t_types::Command;
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
        let command = Command::AddApiKey {
            key_id: key.id.clone(),
            secret_hash: key.secret_hash(),
            label: body.label,
            role: body.role,
        };
        self.write(caller.actor(), command).await?;
        Ok(ApiKeyView {
            key: key.to_text(),
            key_id: key.id.clone(),
            role: body.role,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tonic::Code;
    use x0t_types::KeyRole;
    use x0t_types::api::CreateApiKey;

    use crate::service::ErrorKind;
    use crate::service::testkit::{anchor, assert_error};

    #[tokio::test]
    async fn keys_authenticate_by_their_secret_and_only_admins_may_write() {
        let a = anchor().await;
        let s = &a.service;
        let created = s
            .create_api_key(
                &a.admin,
                CreateApiKey {
                    role: KeyRole::Viewer,
                    label: "dashboards".to_owned(),
                },
            )
            .await
            .unwrap();
        let bearer = format!("Bearer {}", created.key);
        let caller = s.authenticate(Some(&bearer)).unwrap();
        assert_eq!(
            (caller.key_id, caller.role),
            (created.key_id, KeyRole::Viewer)
        );
        let error = s.authorize_admin(Some(&bearer)).unwrap_err();
        assert_error(
            &error,
            ErrorKind::Forbidden,
            "forbidden",
            403,
            Code::PermissionDenied,
        );
        assert!(
            s.authorize_admin(Some(&format!("Bearer {}", a.admin_key)))
                .is_ok()
        );

        // Missing, malformed, and a right id with a wrong secret.
        let mut wrong_secret = bearer.clone().into_bytes();
        let at = wrong_secret.len() - 10;
        wrong_secret[at] = if wrong_secret[at] == b'a' { b'b' } else { b'a' };
        let wrong_secret = String::from_utf8(wrong_secret).unwrap();
        for header in [
            None,
            Some("Basic abc"),
            Some("Bearer x0tadm_nope"),
            Some(wrong_secret.as_str()),
        ] {
            let error = s.authenticate(header).unwrap_err();
            assert_error(
                &error,
                ErrorKind::Unauthorized,
                "unauthorized",
                401,
                Code::Unauthenticated,
            );
        }
        let failures = s
            .metrics()
            .auth_failures
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(failures, 5, "every refusal counted");
        a.stop().await;
    }
}
