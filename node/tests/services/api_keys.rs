//! The api_keys domain of the service layer.

use tonic::Code;
use x0t_types::KeyRole;
use x0t_types::api::CreateApiKey;

use crate::testkit::{anchor, assert_error};
use x0t_node::service::ErrorKind;

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
