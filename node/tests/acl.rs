//! ACL policies through the API, Raft and the CLI: validation with line/column, policy tests
//! refusing an update, compare-and-set, versions and audit, explain (by hostname and by
//! attributes), the PQ profile written into certificates, and `x0t acl` as a binary.

mod common;

use std::time::Duration;

use common::{cluster, eventually, register, status_of};
use x0t_client::AdminClient;
use x0t_crypto::SignedNodeCertificate;
use x0t_node::api::{ApproveNode, ExplainAcl, SetAcl};
use x0t_node::grpc::{ERROR_CODE_KEY, ERROR_COLUMN_KEY, ERROR_LINE_KEY};
use x0t_proto::pb;
use x0t_types::{NodeState, PqProfile};

const MESH: &str = "default";

const POLICY: &str = r#"version = 1
profiles = ["robot-to-server"]

[pq]
robot = "constrained"

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_validated_tested_versioned_audited_and_explained() {
    let root = tempfile::tempdir().unwrap();
    let (nodes, key) = cluster(root.path(), 3).await;
    let admin = |i: usize| nodes[i].client(Some(key.clone()));
    let http = reqwest::Client::new();
    let put = async |i: usize, body: serde_json::Value| {
        let response = http
            .put(format!(
                "{}/api/v1/meshes/{MESH}/acl",
                nodes[i].info().api_url
            ))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().await.unwrap())
    };

    // No policy yet: version 0, deny everything, default PQ profiles.
    let initial = admin(0).acl(MESH).await.unwrap();
    assert_eq!((initial.version, initial.document.as_str()), (0, ""));
    let audit_before = admin(0).audit_verify(MESH).await.unwrap().entries;

    // Invalid: 400 with line and column. Failing tests: 422 naming the test. Nothing changes.
    let (status, body) = put(1, serde_json::json!({
        "document": "version = 1\n\n[[rule]]\naction = \"allow\"\nsrc = \"tag:robot\"\ndst = \"robot\"\n"
    }))
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_policy");
    assert_eq!(
        (
            body["error"]["line"].as_u64(),
            body["error"]["column"].as_u64()
        ),
        (Some(6), Some(7))
    );
    let failing = POLICY.replace("port = 1883", "port = 1884");
    let (status, body) = put(2, serde_json::json!({ "document": failing })).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "policy_test_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"mqtt\""),
        "{body}"
    );
    assert_eq!(admin(0).acl(MESH).await.unwrap().version, 0);
    assert_eq!(
        admin(0).audit_verify(MESH).await.unwrap().entries,
        audit_before
    );

    // Accepted through a follower or the leader alike; every anchor reads the same version.
    let first = SetAcl {
        document: POLICY.into(),
        expected_version: Some(0),
    };
    let set = admin(1).set_acl(MESH, &first).await.unwrap();
    assert_eq!((set.version, set.rules, set.tests), (1, 2, 1));
    for i in 0..3 {
        let view = admin(i).acl(MESH).await.unwrap();
        assert_eq!((view.version, view.document.as_str()), (1, POLICY));
        assert!(
            view.updated_by.as_deref().unwrap().starts_with("key:"),
            "{view:?}"
        );
    }
    // A stale compare-and-set is refused.
    let stale = admin(2).set_acl(MESH, &first).await.unwrap_err();
    assert_eq!(status_of(&stale), 409);
    let verdict = admin(0).audit_verify(MESH).await.unwrap();
    assert!(
        verdict.ok && verdict.entries == audit_before + 1,
        "{verdict:?}"
    );
    let export = admin(0).audit_export(MESH, "json").await.unwrap();
    assert!(
        export.contains("acl.set"),
        "the audit chain records the update"
    );

    // Explain by hostname (the anchor looks the node up) and by attributes.
    let (robot, answer) = register(&nodes[0].client(None), MESH, None).await;
    assert_eq!(answer.unwrap().state, NodeState::PendingApproval);
    let hostname = format!("robot-{}", &robot.node_id().short()[..4]);
    let explain = |src: &str, dst: &str, port| ExplainAcl {
        src: src.into(),
        dst: dst.into(),
        port,
        proto: None,
        document: None,
    };
    let allowed = admin(2)
        .explain_acl(MESH, &explain(&hostname, "tag:broker", 1883))
        .await
        .unwrap();
    assert!(allowed.allowed, "{allowed:?}");
    assert_eq!(
        allowed.deciding_rule.unwrap().name,
        "robots talk to the broker"
    );
    assert_eq!(allowed.policy_version, 1);
    let denied = admin(1)
        .explain_acl(MESH, &explain("tag:broker", &robot.node_id().short(), 1883))
        .await
        .unwrap();
    assert!(
        !denied.allowed && denied.reason.contains("no rule allows"),
        "{denied:?}"
    );
    let unknown = admin(1)
        .explain_acl(MESH, &explain("no-such-host", "tag:broker", 1))
        .await
        .unwrap_err();
    assert_eq!(status_of(&unknown), 404);

    // The policy's PQ profile for robots is written into the certificate at approval.
    let approved = admin(2)
        .approve(MESH, &robot.node_id().to_string(), &ApproveNode::default())
        .await
        .unwrap();
    assert_eq!(approved.state, NodeState::Approved);
    let status = eventually("the certificate", Duration::from_secs(10), async || {
        nodes[0]
            .client(None)
            .node_status(MESH, &robot.node_id().to_string())
            .await
            .ok()?
            .certificate
    })
    .await;
    let cert = SignedNodeCertificate::from_text(&status).unwrap();
    assert_eq!(cert.payload().pq_profile, PqProfile::Constrained);

    // The gRPC face: the same answers; an invalid document's position in the metadata.
    let url = nodes[1].info().api_url;
    let grpc = AdminClient::connect(&url, Some(key.clone())).await.unwrap();
    assert_eq!(grpc.acl(MESH, None).await.unwrap().document, POLICY);
    let by_grpc = grpc
        .explain_acl(MESH, explain(&hostname, "tag:broker", 1883))
        .await
        .unwrap();
    let by_http = admin(1)
        .explain_acl(MESH, &explain(&hostname, "tag:broker", 1883))
        .await
        .unwrap();
    assert_eq!(by_grpc, by_http);
    let mut raw = pb::acl_service_client::AclServiceClient::connect(url)
        .await
        .unwrap();
    let mut request = tonic::Request::new(pb::SetAclRequest {
        mesh: MESH.into(),
        document: "version = 1\n[pq]\nrobot = \"rsa\"\n".into(),
        expected_version: None,
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    let status = raw.set_acl(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let meta = |k: &str| {
        status
            .metadata()
            .get(k)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(meta(ERROR_CODE_KEY), "invalid_policy");
    assert_eq!(
        (meta(ERROR_LINE_KEY), meta(ERROR_COLUMN_KEY)),
        ("3".into(), "9".into())
    );
    let failing = grpc
        .set_acl(
            MESH,
            SetAcl {
                document: POLICY.replace("port = 1883", "port = 1"),
                expected_version: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        failing.to_string().contains("policy_test_failed"),
        "{failing}"
    );
    assert_eq!(
        grpc.validate_acl(MESH, POLICY.into()).await.unwrap(),
        (2, 1)
    );
    let invalid = grpc
        .validate_acl(MESH, "version = 1\nnope".into())
        .await
        .unwrap_err();
    assert_eq!(status_of(&invalid), 400, "{invalid}");

    // The CLI: a bad file is refused locally with its position; explain prints the decision.
    let exe = env!("CARGO_BIN_EXE_x0t");
    let bad = root.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = 1\n[[rule]]\naction = \"maybe\"\nsrc = \"*\"\ndst = \"*\"\n",
    )
    .unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(exe)
            .args(args)
            .env("X0T_API", nodes[0].info().api_url)
            .env("X0T_KEY", &key)
            .output()
            .unwrap()
    };
    let out = cli(&["acl", "set", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3, column 10"), "{stderr}");
    let good = root.path().join("good.toml");
    std::fs::write(
        &good,
        POLICY.replace("robot = \"constrained\"", "robot = \"standard\""),
    )
    .unwrap();
    let out = cli(&[
        "acl",
        "set",
        good.to_str().unwrap(),
        "--expected-version",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("version 2"));
    let out = cli(&["acl", "explain", "class:robot", "tag:broker", "22"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("DENY  tcp class:robot -> tag:broker port 22"),
        "{stdout}"
    );
    let out = cli(&["acl", "get"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("robot = \"standard\""),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Validate without saving (HTTP), explain under a draft (CLI), check files offline.
    let validate = async |document: &str| {
        let response = http
            .post(format!(
                "{}/api/v1/meshes/{MESH}/acl/validate",
                nodes[1].info().api_url
            ))
            .bearer_auth(&key)
            .json(&serde_json::json!({ "document": document }))
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<serde_json::Value>().await.unwrap(),
        )
    };
    let (status, body) = validate(POLICY).await;
    assert_eq!(
        (status, body["rules"].as_u64(), body["tests"].as_u64()),
        (200, Some(2), Some(1))
    );
    let (status, body) = validate(&POLICY.replace("port = 1883", "port = 1")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("policy_test_failed"))
    );
    let draft = root.path().join("draft.toml");
    std::fs::write(&draft, "version = 1\n[[rule]]\nname = \"draft ssh\"\naction = \"allow\"\nsrc = \"*\"\ndst = \"*\"\nports = [\"tcp/22\"]\n").unwrap();
    let out = cli(&[
        "acl",
        "explain",
        "class:robot",
        "tag:broker",
        "22",
        "--json",
        "--draft",
        draft.to_str().unwrap(),
    ]);
    let decision: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            decision["allowed"].as_bool(),
            decision["policy_version"].as_u64()
        ),
        (Some(true), Some(0))
    );
    assert_eq!(decision["deciding_rule"]["name"], "draft ssh");
    assert_eq!(
        admin(0).acl(MESH).await.unwrap().version,
        2,
        "validate and drafts save nothing"
    );
    let offline = std::process::Command::new(exe)
        .args(["acl", "check"])
        .arg(&good)
        .arg(&bad)
        .env("X0T_API", "http://127.0.0.1:1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&offline.stdout);
    let stderr = String::from_utf8_lossy(&offline.stderr);
    assert!(!offline.status.success());
    assert!(
        stdout.contains("good.toml: ok (2 rules, 1 tests passed)"),
        "{stdout}"
    );
    assert!(stderr.contains("bad.toml: line 3, column 10"), "{stderr}");

    // Versions: the history lists both, an old one reads back, rollback restores it as a
    // new version, and an unknown version is a 404.
    let out = cli(&["acl", "history", "--json"]);
    let history: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        history
            .iter()
            .map(|v| v["version"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 1]
    );
    let out = cli(&["acl", "get", "1"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), POLICY);
    let out = cli(&["acl", "rollback", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let current = admin(2).acl(MESH).await.unwrap();
    assert_eq!((current.version, current.document.as_str()), (3, POLICY));
    let response = http
        .get(format!(
            "{}/api/v1/meshes/{MESH}/acl?version=99",
            nodes[0].info().api_url
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_such_policy_version");
    let history: Vec<serde_json::Value> = http
        .get(format!(
            "{}/api/v1/meshes/{MESH}/acl/history",
            nodes[2].info().api_url
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(
        history[0]["digest"], history[2]["digest"],
        "rollback restores the same bytes"
    );

    for node in nodes {
        node.stop().await;
    }
}
