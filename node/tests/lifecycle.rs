//! The node lifecycle through the API of in-process anchors: join tokens (single use across a
//! leader change, rotation, limits), certificates (forged, flipped, revoked), authorization of
//! every route, malformed input, and audit exports that verify and catch tampering.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use common::{TestNode, cluster, eventually, register, registration, start, status_of};
use x0t_client::ApiClient;
use x0t_crypto::{SigAlgorithm, SignedNodeCertificate, SigningKey};
use x0t_node::api::{ApproveNode, Auth, CreateApiKey, CreateToken, Reason, routes};
use x0t_node::audit_file;
use x0t_types::{KeyRole, NodeState};

const MESH: &str = "default";

fn token(pre_approved: bool, reusable: bool) -> CreateToken {
    CreateToken {
        ttl_secs: Some(3_600),
        reusable,
        uses: None,
        pre_approved,
        tags: vec!["line-3".into()],
    }
}

async fn leader_index(nodes: &[TestNode]) -> usize {
    let leader = eventually("a leader", Duration::from_secs(15), async || {
        nodes[0].client(None).cluster().await.ok()?.leader
    })
    .await;
    nodes
        .iter()
        .position(|n| n.info().raft_id == leader)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_work_once_across_a_leader_change_and_rotation_invalidates_them() {
    let root = tempfile::tempdir().unwrap();
    let (mut nodes, key) = cluster(root.path(), 3).await;
    let admin = |i: usize, nodes: &[TestNode]| nodes[i].client(Some(key.clone()));

    // A single-use, pre-approved token: the node is approved at once, certificate in hand.
    let single = admin(0, &nodes)
        .create_token(MESH, &token(true, false))
        .await
        .unwrap();
    let (first, answer) = register(&nodes[1].client(None), MESH, Some(single.token.clone())).await;
    let answer = answer.unwrap();
    assert_eq!(answer.state, NodeState::Approved);
    let cert_text = answer.certificate.clone().unwrap();
    let cert = SignedNodeCertificate::from_text(&cert_text).unwrap();
    assert_eq!(cert.payload().node_id, first.node_id());
    assert_eq!(cert.payload().tags[0].as_str(), "line-3");

    // The leader stops; on another anchor, under the new leader, the token is spent.
    let old = leader_index(&nodes).await;
    nodes.remove(old).stop().await;
    let replay = eventually(
        "a refusal under the new leader",
        Duration::from_secs(20),
        async || match register(&nodes[1].client(None), MESH, Some(single.token.clone()))
            .await
            .1
        {
            Err(e) if status_of(&e) != 503 => Some(e),
            _ => None,
        },
    )
    .await;
    assert_eq!(status_of(&replay), 403, "{replay}");
    assert!(replay.to_string().contains("token_used_up"), "{replay}");

    // Rotation: a token issued before it is refused, with its own reason; a new one works.
    let reusable = admin(0, &nodes)
        .create_token(MESH, &token(false, true))
        .await
        .unwrap();
    let rotated = admin(1, &nodes).rotate_tokens(MESH).await.unwrap();
    assert!(rotated.invalidated >= 1);
    let refused = register(&nodes[0].client(None), MESH, Some(reusable.token.clone()))
        .await
        .1;
    let refused = refused.unwrap_err();
    assert_eq!(status_of(&refused), 403);
    assert!(refused.to_string().contains("token_rotated"), "{refused}");
    let fresh = admin(0, &nodes)
        .create_token(MESH, &token(false, true))
        .await
        .unwrap();
    let (_, pending) = register(&nodes[0].client(None), MESH, Some(fresh.token)).await;
    assert_eq!(pending.unwrap().state, NodeState::PendingApproval);

    // Lifetimes outside 1 h .. 30 d, a limit on a single-use token, a forged token: clear errors.
    for (ttl, what) in [(3_599, "59m59s"), (30 * 86_400 + 1, "30d+1s")] {
        let err = admin(0, &nodes)
            .create_token(
                MESH,
                &CreateToken {
                    ttl_secs: Some(ttl),
                    ..token(false, false)
                },
            )
            .await
            .unwrap_err();
        assert_eq!(status_of(&err), 400, "{what}");
        assert!(
            err.to_string()
                .contains("between 3600 (1 h) and 2592000 (30 d)"),
            "{err}"
        );
    }
    let err = admin(0, &nodes)
        .create_token(
            MESH,
            &CreateToken {
                uses: Some(3),
                ..token(false, false)
            },
        )
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 400);
    let mut forged = single.token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    let err = register(&nodes[0].client(None), MESH, Some(forged))
        .await
        .1
        .unwrap_err();
    assert_eq!(status_of(&err), 403, "{err}");

    // A certificate signed by a key that is no anchor, or with one flipped byte, is not valid.
    let stranger = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
    let mut payload = cert.payload().clone();
    payload.issuer = stranger.node_id();
    let foreign = SignedNodeCertificate::sign(payload, &stranger).unwrap();
    let status = nodes[0]
        .client(None)
        .verify_certificate(MESH, &foreign.to_text())
        .await
        .unwrap();
    assert!(!status.valid);
    assert!(status.reason.unwrap().contains("not an anchor"));
    let mut bytes = cert.encode();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let flipped = format!("x0tc1_{}", x0t_types::base32::encode(&bytes));
    match nodes[0]
        .client(None)
        .verify_certificate(MESH, &flipped)
        .await
    {
        Ok(status) => assert!(!status.valid, "{status:?}"),
        Err(e) => assert_eq!(status_of(&e), 400, "{e}"),
    }
    let good = nodes[0]
        .client(None)
        .verify_certificate(MESH, &cert_text)
        .await
        .unwrap();
    assert!(good.valid, "{good:?}");

    // Revoked: every anchor reports it.
    admin(0, &nodes)
        .reject_or_revoke(
            MESH,
            &first.node_id().to_string(),
            "revoke",
            &Reason {
                reason: "lost".into(),
            },
        )
        .await
        .unwrap();
    for node in &nodes {
        let status = node
            .client(None)
            .verify_certificate(MESH, &cert_text)
            .await
            .unwrap();
        assert!(!status.valid);
        assert_eq!(status.state, Some(NodeState::Revoked));
        assert!(status.reason.unwrap().starts_with("revoked: lost"));
    }
    for node in nodes {
        node.stop().await;
    }
}

/// Fills a route's path parameters.
fn concrete(path: &str, node: &str) -> String {
    path.replace("{mesh}", MESH)
        .replace("{id}", node)
        .replace("{raft_id}", "999")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_served_and_every_mutating_route_needs_an_admin_key() {
    let root = tempfile::tempdir().unwrap();
    let node = start(&root.path().join("a1"), None).await;
    let key = std::fs::read_to_string(node.dir.join(x0t_node::run::ADMIN_KEY_FILE)).unwrap();
    let admin = node.client(Some(key.trim().to_owned()));
    let viewer = admin
        .create_api_key(&CreateApiKey {
            role: KeyRole::Viewer,
            label: "ro".into(),
        })
        .await
        .unwrap();
    let (pending, _) = register(&node.client(None), MESH, None).await;
    let node_id = pending.node_id().to_string();
    let base = node.info().api_url;
    let http = reqwest::Client::new();
    let openapi: serde_json::Value = http
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let before = admin.audit_verify(MESH).await.unwrap().entries;
    let mut mutating = 0;
    for route in routes() {
        let url = format!("{base}{}", concrete(route.path, &node_id));
        let method: reqwest::Method = route.method.parse().unwrap();
        let send = |auth: Option<&str>| {
            let mut request = http.request(method.clone(), &url).body("{}");
            request = request.header("content-type", "application/json");
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            request.send()
        };
        // The OpenAPI document lists it.
        assert!(
            openapi["paths"][route.path][route.method.to_ascii_lowercase()].is_object(),
            "{} {} missing from openapi.json",
            route.method,
            route.path
        );
        if matches!(route.auth, Auth::Admin | Auth::Key) {
            for auth in [None, Some("Bearer x0tadm_nope"), Some("Basic abc")] {
                let response = send(auth).await.unwrap();
                assert_eq!(
                    response.status(),
                    401,
                    "{} {} with {auth:?}",
                    route.method,
                    route.path
                );
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "unauthorized");
            }
        }
        if route.auth == Auth::Admin {
            mutating += 1;
            let response = send(Some(&format!("Bearer {}", viewer.key))).await.unwrap();
            assert_eq!(
                response.status(),
                403,
                "{} {} with a viewer key",
                route.method,
                route.path
            );
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "forbidden");
        } else {
            // Served: whatever it answers, it is not the router's "no such route".
            let auth = format!("Bearer {}", viewer.key);
            let response = send(Some(&auth)).await.unwrap();
            let status = response.status();
            // An event stream never ends: its status says enough.
            let text = if route.path.ends_with("/events") {
                assert_eq!(status, 200, "{} {}", route.method, route.path);
                String::new()
            } else {
                response.text().await.unwrap()
            };
            assert!(
                !(status == 404 && text.contains("no such route")),
                "{} {} is not routed",
                route.method,
                route.path
            );
            // Its handler answers the documented method.
            assert_ne!(status, 405, "{} {}: {text}", route.method, route.path);
        }
    }
    assert_eq!(mutating, 13, "admin routes enumerated");
    // None of that changed anything.
    assert_eq!(admin.audit_verify(MESH).await.unwrap().entries, before);
    let listed = admin.list_nodes(MESH, &[]).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, NodeState::PendingApproval);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_gets_typed_errors_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let node = start(&root.path().join("a1"), None).await;
    let key = std::fs::read_to_string(node.dir.join(x0t_node::run::ADMIN_KEY_FILE)).unwrap();
    let admin = node.client(Some(key.trim().to_owned()));
    let (pending, _) = register(&node.client(None), MESH, None).await;
    let node_id = pending.node_id().to_string();
    let base = node.info().api_url;
    let before = admin.audit_verify(MESH).await.unwrap();
    let http = reqwest::Client::new();
    let auth = format!("Bearer {}", key.trim());
    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        (
            "POST",
            "/api/v1/meshes".into(),
            "{not json".into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/meshes".into(),
            r#"{"name":"x","surprise":1}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/meshes".into(),
            r#"{"name":"Not A Name!"}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/meshes".into(),
            format!(r#"{{"name":"{}"}}"#, "x".repeat(100_000)),
            413,
            "body_too_large",
        ),
        (
            "POST",
            format!("/api/v1/meshes/{MESH}/nodes/register"),
            r#"{"registration":"!!!"}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("/api/v1/meshes/{MESH}/nodes/register"),
            r#"{"registration":"AAAA"}"#.into(),
            400,
            "bad_registration",
        ),
        (
            "POST",
            format!("/api/v1/meshes/{MESH}/nodes/register"),
            "[]".into(),
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/meshes/nope/nodes".into(),
            String::new(),
            404,
            "no_such_mesh",
        ),
        (
            "GET",
            format!("/api/v1/meshes/{MESH}/nodes?state=sleeping"),
            String::new(),
            400,
            "bad_request",
        ),
        (
            "GET",
            format!("/api/v1/meshes/{MESH}/nodes/zzzzzzzzzzzzzzzz"),
            String::new(),
            404,
            "no_such_node",
        ),
        (
            "POST",
            format!("/api/v1/meshes/{MESH}/nodes/zzzzzzzzzzzzzzzz/approve"),
            String::new(),
            404,
            "no_such_node",
        ),
        (
            "POST",
            format!("/api/v1/meshes/nope/nodes/{node_id}/approve"),
            String::new(),
            404,
            "no_such_mesh",
        ),
        (
            "POST",
            format!("/api/v1/meshes/{MESH}/nodes/{node_id}/approve"),
            r#"{"tags":["BAD TAG"]}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("/api/v1/meshes/{MESH}/nodes/{node_id}/revoke"),
            format!(r#"{{"reason":"{}"}}"#, "r".repeat(300)),
            400,
            "invalid",
        ),
        (
            "POST",
            format!("/api/v1/meshes/{MESH}/nodes/{node_id}/reissue-token"),
            String::new(),
            409,
            "invalid_state",
        ),
        (
            "POST",
            format!("/api/v1/meshes/{MESH}/tokens"),
            r#"{"ttl_secs":"soon"}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("/api/v1/meshes/{MESH}/certificates/verify"),
            r#"{"certificate":"x0tc1_AAAA"}"#.into(),
            400,
            "bad_certificate",
        ),
        (
            "GET",
            format!("/api/v1/meshes/{MESH}/audit-logs/export?format=xml"),
            String::new(),
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/nothing-here".into(),
            String::new(),
            404,
            "not_found",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let response = http
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{method} {path}: {error}");
    }
    // Registering for one mesh at another mesh's route: refused.
    let key2 = common::node_key();
    let err = node
        .client(None)
        .register("other", &registration(&key2, MESH, None))
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 400);
    let after = admin.audit_verify(MESH).await.unwrap();
    assert_eq!(
        (after.entries, after.head_hash),
        (before.entries, before.head_hash)
    );
    assert_eq!(admin.list_nodes(MESH, &[]).await.unwrap().len(), 1);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_exports_round_trip_and_tampering_is_found_at_its_entry() {
    let root = tempfile::tempdir().unwrap();
    let node = start(&root.path().join("a1"), None).await;
    let key = std::fs::read_to_string(node.dir.join(x0t_node::run::ADMIN_KEY_FILE)).unwrap();
    let admin: ApiClient = node.client(Some(key.trim().to_owned()));
    // Some history: registrations, an approval, a rejection, a token, a rotation.
    let (a, _) = register(&node.client(None), MESH, None).await;
    let (b, _) = register(&node.client(None), MESH, None).await;
    admin
        .approve(
            MESH,
            &a.node_id().short(),
            &ApproveNode {
                tags: Some(vec!["robot".into(), "arm".into()]),
            },
        )
        .await
        .unwrap();
    admin
        .reject_or_revoke(
            MESH,
            &b.node_id().short(),
            "reject",
            &Reason {
                reason: "unknown, \"suspicious\"\ndevice".into(),
            },
        )
        .await
        .unwrap();
    admin.create_token(MESH, &token(true, true)).await.unwrap();
    admin.rotate_tokens(MESH).await.unwrap();
    let verdict = admin.audit_verify(MESH).await.unwrap();
    assert!(verdict.ok, "{verdict:?}");
    assert!(verdict.entries >= 7, "{verdict:?}");

    let exe = env!("CARGO_BIN_EXE_x0t");
    for format in ["json", "csv"] {
        let text = admin.audit_export(MESH, format).await.unwrap();
        let parsed = audit_file::parse(&text).unwrap();
        assert_eq!(parsed.entries.len() as u64, verdict.entries);
        assert_eq!(
            audit_file::verify(&parsed).unwrap().entries,
            verdict.entries
        );
        // The CLI verifies the file too.
        let path = root.path().join(format!("audit.{format}"));
        std::fs::write(&path, &text).unwrap();
        let out = std::process::Command::new(exe)
            .args(["audit", "verify", "--file"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // Tampering with entry k is reported at k: a changed detail, a dropped entry, a swap.
        let n = parsed.entries.len();
        for k in [1, n / 2, n - 2] {
            let mut edited = audit_file::parse(&text).unwrap();
            if let Ok(entry) = &mut edited.entries[k] {
                entry.details.push('!');
            }
            assert_eq!(
                audit_file::verify(&edited).unwrap_err().index,
                k as u64,
                "{format}: edit {k}"
            );
            let mut dropped = audit_file::parse(&text).unwrap();
            let _removed = dropped.entries.remove(k);
            assert_eq!(
                audit_file::verify(&dropped).unwrap_err().index,
                k as u64,
                "{format}: drop {k}"
            );
            let mut swapped = audit_file::parse(&text).unwrap();
            swapped.entries.swap(k, k + 1);
            assert_eq!(
                audit_file::verify(&swapped).unwrap_err().index,
                k as u64,
                "{format}: swap {k}"
            );
        }
        // Cutting the tail is caught by the head the export declares.
        let mut cut = audit_file::parse(&text).unwrap();
        cut.entries.pop();
        assert_eq!(audit_file::verify(&cut).unwrap_err().index, (n - 1) as u64);
    }
    // One flipped character in the file itself: the CLI names the entry.
    let text = admin.audit_export(MESH, "csv").await.unwrap();
    let rows: Vec<&str> = text.split("\r\n").collect();
    let header_rows = rows.iter().take_while(|r| r.starts_with('#')).count() + 1;
    let k = 3;
    let row = rows[header_rows + k];
    let hash_field = row.rsplit(',').next().unwrap();
    let flipped_hash = format!(
        "{}{}",
        if hash_field.starts_with('0') {
            '1'
        } else {
            '0'
        },
        &hash_field[1..]
    );
    let tampered = text.replacen(row, &row.replace(hash_field, &flipped_hash), 1);
    let path = root.path().join("tampered.csv");
    std::fs::write(&path, tampered).unwrap();
    let out = std::process::Command::new(exe)
        .args(["audit", "verify", "--file"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("breaks at entry {k}")), "{stderr}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_face_and_the_admin_cli_act_like_the_http_face() {
    use x0t_client::AdminClient;
    use x0t_proto::pb;
    let root = tempfile::tempdir().unwrap();
    let node = start(&root.path().join("a1"), None).await;
    let key = std::fs::read_to_string(node.dir.join(x0t_node::run::ADMIN_KEY_FILE))
        .unwrap()
        .trim()
        .to_owned();
    let url = node.info().api_url;
    let viewer = node
        .client(Some(key.clone()))
        .create_api_key(&CreateApiKey {
            role: KeyRole::Viewer,
            label: String::new(),
        })
        .await
        .unwrap();
    let (a, _) = register(&node.client(None), MESH, None).await;
    let (b, _) = register(&node.client(None), MESH, None).await;
    let admin = AdminClient::connect(&url, Some(key.clone())).await.unwrap();
    let anonymous = AdminClient::connect(&url, None).await.unwrap();
    let read_only = AdminClient::connect(&url, Some(viewer.key.clone()))
        .await
        .unwrap();
    let all = pb::ListNodesRequest {
        mesh: MESH.into(),
        ..Default::default()
    };

    let deny_all = || x0t_node::api::SetAcl {
        document: "version = 1\n".into(),
        expected_version: None,
    };

    // Authorization: no key → 401, viewer key → reads yes, writes 403.
    let err = anonymous.list_nodes(all.clone()).await.unwrap_err();
    assert_eq!(status_of(&err), 401, "{err}");
    assert_eq!(read_only.list_nodes(all.clone()).await.unwrap().len(), 2);
    for result in [
        read_only
            .approve(MESH, &a.node_id().short(), None)
            .await
            .map(|_| ()),
        read_only
            .reject_or_revoke(MESH, &b.node_id().short(), false, String::new())
            .await
            .map(|_| ()),
        read_only.rotate_tokens(MESH).await.map(|_| ()),
        read_only
            .create_token(pb::CreateTokenRequest {
                mesh: MESH.into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        read_only
            .reject_or_revoke(MESH, &a.node_id().short(), true, String::new())
            .await
            .map(|_| ()),
        read_only
            .reissue_token(MESH, &a.node_id().short(), 3_600)
            .await
            .map(|_| ()),
        read_only.set_acl(MESH, deny_all()).await.map(|_| ()),
        anonymous.rotate_tokens(MESH).await.map(|_| ()),
        anonymous
            .approve(MESH, &a.node_id().short(), None)
            .await
            .map(|_| ()),
        anonymous.set_acl(MESH, deny_all()).await.map(|_| ()),
        anonymous.acl(MESH, None).await.map(|_| ()),
    ] {
        // Every mutating RPC (CreateMesh is the same service call, checked over HTTP).
        let err = result.unwrap_err();
        assert!([401, 403].contains(&status_of(&err)), "{err}");
    }

    // The same operations, through gRPC.
    let approved = admin
        .approve(MESH, &a.node_id().short(), Some(vec!["arm".into()]))
        .await
        .unwrap();
    assert_eq!(
        (approved.state, approved.tags.clone()),
        (NodeState::Approved, vec!["arm".to_owned()])
    );
    let status = admin
        .node_status(MESH, &a.node_id().to_string())
        .await
        .unwrap();
    assert!(status.certificate.is_some());
    let err = admin
        .approve(MESH, &a.node_id().short(), None)
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 409, "approving twice: {err}");
    assert!(err.to_string().contains("invalid_state"), "{err}");
    let err = admin.node(MESH, "zzzzzzzzzzzzzzzz").await.unwrap_err();
    assert_eq!(status_of(&err), 404);
    let err = admin
        .create_token(pb::CreateTokenRequest {
            mesh: MESH.into(),
            ttl_secs: 60,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 400, "{err}");
    let pending = admin
        .list_nodes(pb::ListNodesRequest {
            state: "pending".into(),
            ..all.clone()
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    let export = admin.export_audit(MESH, "csv").await.unwrap();
    let parsed = audit_file::parse(std::str::from_utf8(&export).unwrap()).unwrap();
    audit_file::verify(&parsed).unwrap();
    assert!(admin.verify_audit(MESH).await.unwrap().ok);

    // The admin CLI talks gRPC: approve and list with tables and JSON.
    let exe = env!("CARGO_BIN_EXE_x0t");
    let cli = |args: &[&str]| {
        std::process::Command::new(exe)
            .args(args)
            .env("X0T_API", &url)
            .env("X0T_KEY", &key)
            .env("X0T_DATA_DIR", root.path().join("nowhere"))
            .output()
            .unwrap()
    };
    let out = cli(&["nodes", "approve", &b.node_id().short()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["nodes", "list", "--state", "approved", "--json"]);
    let listed: Vec<x0t_node::api::NodeView> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 2);
    let out = cli(&["nodes", "list"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&b.node_id().short()) && table.contains("2 node(s)"),
        "{table}"
    );
    let out = cli(&[
        "tokens",
        "create",
        "--ttl",
        "2h",
        "--reusable",
        "--uses",
        "5",
        "--json",
    ]);
    let token: x0t_node::api::TokenView = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (token.usage.as_str(), token.max_uses),
        ("reusable", Some(5))
    );
    let out = cli(&["tokens", "create", "--ttl", "31d"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("30 d"));
    let out = cli(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_enrolls_over_libp2p_through_a_multiaddr() {
    use x0t_node::agent::{self, JoinOptions};
    use x0t_types::{DeviceClass, MeshId};
    let root = tempfile::tempdir().unwrap();
    let (nodes, key) = cluster(root.path(), 2).await;
    let admin = nodes[0].client(Some(key.clone()));
    let info = nodes[1].info();
    let quic = info.p2p_addrs.iter().find(|a| a.contains("quic")).unwrap();
    let anchor = format!("{quic}/p2p/{}", info.peer_id);
    let options = |dir: &str, token: Option<String>| JoinOptions {
        data_dir: root.path().join(dir),
        anchor: anchor.clone(),
        mesh: MeshId::new(MESH).unwrap(),
        token,
        tags: Vec::new(),
        device_class: DeviceClass::Gateway,
        hostname: Some(dir.to_owned()),
        timeout: Duration::from_millis(500),
        poll_every: Duration::from_millis(100),
    };
    // With a pre-approved token: approved at once, certificate verified and stored.
    let token = admin.create_token(MESH, &token(true, false)).await.unwrap();
    let (state, cert) = agent::join(&options("gw1", Some(token.token)), |_| {})
        .await
        .unwrap();
    assert_eq!(state.state, NodeState::Approved);
    assert_eq!(cert.unwrap().tags[0].as_str(), "line-3");
    // Without: pending; once approved, the agent picks its certificate up over libp2p.
    let err = agent::join(&options("gw2", None), |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("still pending_approval"), "{err}");
    let id = agent::load_state(&root.path().join("gw2"))
        .unwrap()
        .unwrap()
        .node_id;
    admin
        .approve(MESH, &id, &ApproveNode::default())
        .await
        .unwrap();
    let (state, _) = agent::join(&options("gw2", None), |_| {}).await.unwrap();
    assert_eq!(state.state, NodeState::Approved);
    // Over libp2p the sender is known: a registration naming another peer is refused.
    {
        use x0t_node::p2p::protocol::{ControlRequest, ControlResponse, EnrollRequest};
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let (p2p, _inbound) = x0t_node::p2p::spawn(
            x0t_node::p2p::P2pConfig {
                keypair: libp2p::identity::Keypair::generate_ed25519(),
                listen: Vec::new(),
                request_timeout: Duration::from_secs(10),
                connection_events: None,
            },
            shutdown,
        )
        .await
        .unwrap();
        let addr: libp2p::Multiaddr = anchor.parse().unwrap();
        let body = registration(&common::node_key(), MESH, None); // a fresh, foreign peer id
        let answer = p2p
            .request(
                info.peer_id.parse().unwrap(),
                vec![addr],
                ControlRequest::Enroll(EnrollRequest::Register {
                    mesh: MESH.into(),
                    body,
                }),
            )
            .await
            .unwrap();
        match answer {
            ControlResponse::Enroll(Err(e)) => {
                assert_eq!(
                    (e.status, e.code.as_str()),
                    (400, "bad_registration"),
                    "{}",
                    e.message
                );
            }
            other => panic!("accepted a registration for another peer: {other:?}"),
        }
    }
    // A bad --anchor is a clear error.
    let mut bad = options("gw3", None);
    bad.anchor = quic.clone();
    let err = agent::join(&bad, |_| {}).await.unwrap_err();
    assert!(err.to_string().contains("/p2p/<peer id>"), "{err}");
    for node in nodes {
        node.stop().await;
    }
}
