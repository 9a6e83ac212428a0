//! The cluster domain of the service layer.

use tonic::Code;
use x0t_types::api::CreateJoinToken;

use crate::testkit::{anchor, assert_error};
use x0t_node::service::ErrorKind;

#[tokio::test]
async fn the_one_anchor_leads_lists_its_key_and_issues_anchor_join_tokens() {
    let a = anchor().await;
    let s = &a.service;
    let status = s.cluster_status();
    assert_eq!(status.state, "leader");
    assert_eq!(status.voters.len(), 1);
    let anchors = s.anchors(false).await.unwrap();
    assert_eq!(anchors.len(), 1);
    assert_eq!(s.anchor_keys().len(), 1);
    assert_eq!(anchors[0].public_key, s.anchor_keys()[0].public_key);

    let token = s
        .create_anchor_join_token(&a.admin, CreateJoinToken { ttl_secs: None })
        .await
        .unwrap();
    assert!(token.token.starts_with("x0tanc_"), "{}", token.token);
    for ttl in [60, 31 * 24 * 3_600] {
        let body = CreateJoinToken {
            ttl_secs: Some(ttl),
        };
        let error = s
            .create_anchor_join_token(&a.admin, body)
            .await
            .unwrap_err();
        assert_error(
            &error,
            ErrorKind::BadRequest,
            "bad_request",
            400,
            Code::InvalidArgument,
        );
    }
    // Removing an anchor the membership does not hold is a membership conflict.
    let error = s.remove_anchor(&a.admin, 42).await.unwrap_err();
    assert_error(
        &error,
        ErrorKind::Conflict,
        "membership",
        409,
        Code::FailedPrecondition,
    );
    a.stop().await;
}
