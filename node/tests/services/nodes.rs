//! The nodes domain over one in-process anchor: registration, the lifecycle, tokens and
//! certificate checks, and how each refusal reaches every face.
use tonic::Code;
use x0t_crypto::SignedNodeCertificate;
use x0t_types::NodeState;
use x0t_types::api::{ApproveNode, CreateToken, Reason};

use crate::testkit::{MESH, anchor, assert_error, registration};
use x0t_node::service::{ErrorKind, NodeFilter};

fn token(pre_approved: bool, reusable: bool) -> CreateToken {
    CreateToken {
        ttl_secs: Some(3_600),
        reusable,
        uses: None,
        pre_approved,
        tags: vec!["line-3".to_owned()],
    }
}

fn all() -> NodeFilter {
    NodeFilter {
        limit: 100,
        ..NodeFilter::default()
    }
}

#[tokio::test]
async fn a_registered_node_waits_for_approval_then_gets_a_certificate_then_is_revoked() {
    let a = anchor().await;
    let s = &a.service;
    let (key, body) = registration(MESH, None);
    let pending = s.register(MESH, body).await.unwrap();
    assert_eq!(pending.state, NodeState::PendingApproval);
    assert!(pending.certificate.is_none() && pending.overlay_ip.is_none());

    // Listed, found by its short id, filtered by state.
    let short = key.node_id().short();
    assert_eq!(
        s.get_node(MESH, &short, false).await.unwrap().state,
        NodeState::PendingApproval
    );
    let approved_only = NodeFilter {
        state: Some(NodeState::Approved),
        ..all()
    };
    assert!(
        s.list_nodes(MESH, &approved_only, false)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.list_nodes(MESH, &all(), false).await.unwrap().len(), 1);

    // A viewer may read but approval is the admin's; the service takes whoever the face
    // authenticated, so the admin approves here.
    let node = s
        .approve(&a.admin, MESH, &short, ApproveNode { tags: None })
        .await
        .unwrap();
    assert_eq!(node.state, NodeState::Approved);
    assert_eq!(node.tags, vec!["robot".to_owned()]);
    let status = s.node_status(MESH, &short, false).await.unwrap();
    let certificate = status.certificate.unwrap();
    let payload = SignedNodeCertificate::from_text(&certificate)
        .unwrap()
        .payload()
        .clone();
    assert_eq!(payload.node_id, key.node_id());
    assert_eq!(Some(payload.overlay_ip.to_string()), status.overlay_ip);
    assert!(
        s.verify_certificate(MESH, &certificate, false)
            .await
            .unwrap()
            .valid
    );

    // Approving twice is a conflict of state.
    let twice = s
        .approve(&a.admin, MESH, &short, ApproveNode::default())
        .await
        .unwrap_err();
    assert_error(
        &twice,
        ErrorKind::Conflict,
        "invalid_state",
        409,
        Code::FailedPrecondition,
    );

    // Revoked: the certificate no longer verifies, and says why.
    let reason = Reason {
        reason: "stolen".to_owned(),
    };
    let revoked = s.revoke(&a.admin, MESH, &short, reason).await.unwrap();
    assert_eq!(revoked.state, NodeState::Revoked);
    let check = s
        .verify_certificate(MESH, &certificate, false)
        .await
        .unwrap();
    assert!(!check.valid);
    assert!(check.reason.unwrap().contains("stolen"));
    a.stop().await;
}

#[tokio::test]
async fn bad_registrations_and_unknown_nodes_are_refused_with_their_codes() {
    let a = anchor().await;
    let s = &a.service;
    let (_, body) = registration(MESH, None);

    // Sent to another mesh than the one it signed.
    let error = s.register("other", body.clone()).await.unwrap_err();
    assert_error(
        &error,
        ErrorKind::BadRequest,
        "bad_request",
        400,
        Code::InvalidArgument,
    );
    // Not base32, then a flipped signature byte.
    let mut garbled = body.clone();
    garbled.registration = "!!".to_owned();
    let error = s.register(MESH, garbled).await.unwrap_err();
    assert_error(
        &error,
        ErrorKind::BadRequest,
        "bad_request",
        400,
        Code::InvalidArgument,
    );
    let mut bytes = x0t_types::base32::decode(&body.registration).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let mut flipped = body.clone();
    flipped.registration = x0t_types::base32::encode(&bytes);
    let error = s.register(MESH, flipped).await.unwrap_err();
    assert_error(
        &error,
        ErrorKind::BadRequest,
        "bad_registration",
        400,
        Code::InvalidArgument,
    );
    // A mesh name that cannot be one, an unknown mesh, an unknown node.
    let error = s.get_node("Not A Mesh", "x", false).await.unwrap_err();
    assert_error(
        &error,
        ErrorKind::BadRequest,
        "bad_request",
        400,
        Code::InvalidArgument,
    );
    let error = s.list_nodes("nowhere", &all(), false).await.unwrap_err();
    assert_error(
        &error,
        ErrorKind::NotFound,
        "no_such_mesh",
        404,
        Code::NotFound,
    );
    let error = s
        .get_node(MESH, "aaaaaaaaaaaaaaaa", false)
        .await
        .unwrap_err();
    assert_error(
        &error,
        ErrorKind::NotFound,
        "no_such_node",
        404,
        Code::NotFound,
    );
    // A garbage certificate.
    let error = s.verify_certificate(MESH, "nope", false).await.unwrap_err();
    assert_error(
        &error,
        ErrorKind::BadRequest,
        "bad_certificate",
        400,
        Code::InvalidArgument,
    );
    // Nothing of that reached the ledger.
    assert!(s.list_nodes(MESH, &all(), false).await.unwrap().is_empty());
    a.stop().await;
}

#[tokio::test]
async fn tokens_admit_once_reissue_replaces_and_rotation_invalidates() {
    let a = anchor().await;
    let s = &a.service;

    // A pre-approved single-use token: approved at once, certificate in the answer.
    let single = s
        .create_token(&a.admin, MESH, token(true, false))
        .await
        .unwrap();
    assert_eq!(
        (single.usage.as_str(), single.max_uses),
        ("single_use", Some(1))
    );
    let (first, body) = registration(MESH, Some(single.token.clone()));
    let status = s.register(MESH, body).await.unwrap();
    assert_eq!(status.state, NodeState::Approved);
    assert!(status.certificate.is_some());
    let (_, again) = registration(MESH, Some(single.token.clone()));
    let error = s.register(MESH, again).await.unwrap_err();
    assert_error(
        &error,
        ErrorKind::Forbidden,
        "token_used_up",
        403,
        Code::PermissionDenied,
    );

    // Re-issued for the node: the new key takes over its address; the old one is revoked.
    let old = first.node_id().to_string();
    let reissued = s
        .reissue_token(&a.admin, MESH, &old, CreateToken::default())
        .await
        .unwrap();
    assert_eq!(reissued.for_node.as_deref(), Some(old.as_str()));
    let (_, body) = registration(MESH, Some(reissued.token));
    let replacement = s.register(MESH, body).await.unwrap();
    assert_eq!(replacement.state, NodeState::Approved);
    assert_eq!(replacement.overlay_ip, status.overlay_ip);
    let old_node = s.get_node(MESH, &old, false).await.unwrap();
    assert_eq!(old_node.state, NodeState::Revoked);

    // A reusable token stops working at rotation, with its own code.
    let reusable = s
        .create_token(&a.admin, MESH, token(false, true))
        .await
        .unwrap();
    let rotated = s.rotate_tokens(&a.admin, MESH).await.unwrap();
    assert!(rotated.invalidated >= 1);
    let (_, body) = registration(MESH, Some(reusable.token));
    let error = s.register(MESH, body).await.unwrap_err();
    assert_error(
        &error,
        ErrorKind::Forbidden,
        "token_rotated",
        403,
        Code::PermissionDenied,
    );

    // Bad token requests never reach the ledger.
    let mut short_lived = token(false, false);
    short_lived.ttl_secs = Some(60);
    let error = s
        .create_token(&a.admin, MESH, short_lived)
        .await
        .unwrap_err();
    assert_error(
        &error,
        ErrorKind::BadRequest,
        "bad_request",
        400,
        Code::InvalidArgument,
    );
    let mut uses = token(false, false);
    uses.uses = Some(3);
    let error = s.create_token(&a.admin, MESH, uses).await.unwrap_err();
    assert_error(
        &error,
        ErrorKind::BadRequest,
        "bad_request",
        400,
        Code::InvalidArgument,
    );
    let (_, body) = registration(MESH, Some("x0t-not-a-token".to_owned()));
    let error = s.register(MESH, body).await.unwrap_err();
    assert_error(
        &error,
        ErrorKind::Forbidden,
        "invalid_token",
        403,
        Code::PermissionDenied,
    );
    a.stop().await;
}

#[tokio::test]
async fn a_rejected_node_cannot_be_approved() {
    let a = anchor().await;
    let s = &a.service;
    let (key, body) = registration(MESH, None);
    s.register(MESH, body).await.unwrap();
    let id = key.node_id().to_string();
    let reason = Reason {
        reason: "unknown device".to_owned(),
    };
    let rejected = s.reject(&a.admin, MESH, &id, reason).await.unwrap();
    assert_eq!(rejected.state, NodeState::Rejected);
    assert_eq!(rejected.state_reason.as_deref(), Some("unknown device"));
    let error = s
        .approve(&a.admin, MESH, &id, ApproveNode::default())
        .await
        .unwrap_err();
    assert_error(
        &error,
        ErrorKind::Conflict,
        "invalid_state",
        409,
        Code::FailedPrecondition,
    );
    // Tags an admin gives must be tags.
    let (key, body) = registration(MESH, None);
    s.register(MESH, body).await.unwrap();
    let bad_tags = ApproveNode {
        tags: Some(vec!["Not A Tag!".to_owned()]),
    };
    let error = s
        .approve(&a.admin, MESH, &key.node_id().to_string(), bad_tags)
        .await
        .unwrap_err();
    assert_error(
        &error,
        ErrorKind::BadRequest,
        "bad_request",
        400,
        Code::InvalidArgument,
    );
    a.stop().await;
}
