//! The acl domain of the service layer.

use tonic::Code;
use x0t_types::api::{ExplainAcl, SetAcl, ValidateAcl};

use crate::testkit::{MESH, anchor, assert_error};
use x0t_node::service::ErrorKind;

const POLICY: &str = r#"version = 1

[[rule]]
name = "robots talk to the broker"
action = "allow"
src = "class:robot"
dst = "tag:broker"
ports = ["tcp/1883"]

[[test]]
name = "mqtt"
src = "class:robot"
dst = "tag:broker"
port = 1883
expect = "allow"
"#;

fn set(document: &str, expected_version: Option<u64>) -> SetAcl {
    SetAcl {
        document: document.to_owned(),
        expected_version,
    }
}

#[tokio::test]
async fn policies_are_validated_versioned_and_explained() {
    let a = anchor().await;
    let s = &a.service;
    assert_eq!(s.get_acl(MESH, None, false).await.unwrap().version, 0);
    let view = s
        .set_acl(&a.admin, MESH, set(POLICY, Some(0)))
        .await
        .unwrap();
    assert_eq!((view.version, view.rules, view.tests), (1, 1, 1));
    assert_eq!(s.acl_history(MESH, false).await.unwrap().len(), 1);

    let explain = |src: &str, port| ExplainAcl {
        src: src.to_owned(),
        dst: "tag:broker".to_owned(),
        port,
        proto: None,
        document: None,
    };
    let allowed = s
        .explain_acl(MESH, explain("class:robot", 1883), false)
        .await
        .unwrap();
    assert!(allowed.allowed, "{allowed:?}");
    let denied = s
        .explain_acl(MESH, explain("class:robot", 22), false)
        .await
        .unwrap();
    assert!(
        !denied.allowed && denied.deciding_rule.is_none(),
        "{denied:?}"
    );

    // A syntax error points at its line; a failing test is 422; a stale version is 409.
    let broken = "version = 1\n[[rule]]\nname = \n";
    let error = s
        .set_acl(&a.admin, MESH, set(broken, None))
        .await
        .unwrap_err();
    assert_error(
        &error,
        ErrorKind::BadRequest,
        "invalid_policy",
        400,
        Code::InvalidArgument,
    );
    assert_eq!(error.position.map(|(line, _)| line), Some(3));
    let failing = POLICY.replace("expect = \"allow\"", "expect = \"deny\"");
    let error = s
        .validate_acl(ValidateAcl {
            document: failing.clone(),
        })
        .unwrap_err();
    assert_error(
        &error,
        ErrorKind::Unprocessable,
        "policy_test_failed",
        422,
        Code::FailedPrecondition,
    );
    let error = s
        .set_acl(&a.admin, MESH, set(&failing, None))
        .await
        .unwrap_err();
    assert_eq!(error.code, "policy_test_failed");
    let error = s
        .set_acl(&a.admin, MESH, set(POLICY, Some(0)))
        .await
        .unwrap_err();
    assert_error(
        &error,
        ErrorKind::Conflict,
        "version_mismatch",
        409,
        Code::FailedPrecondition,
    );
    // None of the refusals made a version.
    assert_eq!(s.get_acl(MESH, None, false).await.unwrap().version, 1);
    a.stop().await;
}
