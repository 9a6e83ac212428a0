//! Three anchors in one process on loopback: bootstrap, join, replicate, forward, authorize.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use x0t_client::ClientError;
use x0t_node::api::{CreateJoinToken, CreateMesh, UpdateSettings};
use x0t_node::run::{ADMIN_KEY_FILE, JoinConfig};

mod common;

use common::{run_until_error, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_anchors_replicate_forward_and_authorize() {
    let root = tempfile::tempdir().unwrap();
    let a = start(&root.path().join("a"), None).await;
    let admin_key = std::fs::read_to_string(a.dir.join(ADMIN_KEY_FILE)).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(a.dir.join(ADMIN_KEY_FILE))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let join = JoinConfig::AdminKey {
        api_url: a.info().api_url,
        admin_key: admin_key.clone(),
    };
    let b = start(&root.path().join("b"), Some(join.clone())).await;
    let c = start(&root.path().join("c"), Some(join)).await;

    let status = a.client(None).cluster().await.unwrap();
    assert_eq!(status.voters.len(), 3, "{status:?}");
    assert_eq!(status.leader, Some(a.info().raft_id));

    // A write sent to a follower is forwarded to the leader and replicated everywhere.
    let created = b
        .client(Some(admin_key.clone()))
        .create_mesh(&CreateMesh {
            name: "factory".into(),
            description: "robots".into(),
            plan: None,
        })
        .await
        .unwrap();
    assert_eq!(created.version, 1);
    // A linearizable read on another follower sees it at once.
    let read = c.client(None).mesh("factory", false).await.unwrap();
    assert_eq!(read.description, "robots");

    // Compare-and-set through a follower: the right version wins, a stale one is refused.
    let updated = c
        .client(Some(admin_key.clone()))
        .update_settings(
            "factory",
            &UpdateSettings {
                description: "v2".into(),
                expected_version: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    let stale = c
        .client(Some(admin_key.clone()))
        .update_settings(
            "factory",
            &UpdateSettings {
                description: "lost".into(),
                expected_version: Some(1),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(stale, ClientError::Api { status: 409, .. }),
        "{stale}"
    );

    // Mutating routes need an admin key.
    let denied = b
        .client(None)
        .create_mesh(&CreateMesh {
            name: "nope".into(),
            description: String::new(),
            plan: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(denied, ClientError::Api { status: 401, .. }),
        "{denied}"
    );
    let forged = b
        .client(Some(
            "x0tadm_aaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
        ))
        .create_mesh(&CreateMesh {
            name: "nope".into(),
            description: String::new(),
            plan: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(forged, ClientError::Api { status: 401, .. }),
        "{forged}"
    );

    // Bad query strings get a typed JSON 400, not a plain-text rejection.
    let response = reqwest::get(format!(
        "{}/api/v1/meshes/factory?stale=maybe",
        c.info().api_url
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    let body: x0t_node::api::ErrorBody = response.json().await.unwrap();
    assert_eq!(body.error.code, "bad_request");

    // Concurrent writes through all three nodes travel in shared batches; each writer still
    // gets its own answer: per name exactly one create wins, the others are told it exists,
    // and every CAS on one mesh either wins with a distinct version or is refused.
    let nodes = [&a, &b, &c];
    let mut writes = Vec::new();
    for i in 0..48usize {
        let api = nodes[i % 3].client(Some(admin_key.clone()));
        writes.push(tokio::spawn(async move {
            api.create_mesh(&CreateMesh {
                name: format!("fleet-{}", i % 16),
                description: format!("writer {i}"),
                plan: None,
            })
            .await
            .map(|mesh| (i, mesh))
        }));
    }
    let mut winners = std::collections::BTreeMap::new();
    for write in writes {
        match write.await.unwrap() {
            Ok((i, mesh)) => {
                assert_eq!(mesh.description, format!("writer {i}"));
                assert!(
                    winners.insert(mesh.name.clone(), i).is_none(),
                    "two winners"
                );
            }
            Err(ClientError::Api { status: 409, .. }) => {}
            Err(e) => panic!("concurrent create failed: {e}"),
        }
    }
    assert_eq!(winners.len(), 16, "one winner per name: {winners:?}");
    for (name, i) in &winners {
        let mesh = a.client(None).mesh(name, false).await.unwrap();
        assert_eq!(mesh.description, format!("writer {i}"));
    }
    let mut cas = Vec::new();
    for i in 0..24usize {
        let api = nodes[i % 3].client(Some(admin_key.clone()));
        cas.push(tokio::spawn(async move {
            api.update_settings(
                "factory",
                &UpdateSettings {
                    description: format!("cas {i}"),
                    expected_version: Some(2 + (i as u64 % 4)),
                },
            )
            .await
        }));
    }
    let mut versions = std::collections::BTreeSet::new();
    for write in cas {
        match write.await.unwrap() {
            Ok(mesh) => assert!(
                versions.insert(mesh.version),
                "version {} twice",
                mesh.version
            ),
            Err(ClientError::Api { status: 409, .. }) => {}
            Err(e) => panic!("concurrent CAS failed: {e}"),
        }
    }
    let last = c.client(None).mesh("factory", false).await.unwrap();
    assert!(!versions.is_empty());
    assert_eq!(Some(&last.version), versions.last(), "{versions:?}");

    // Anchor-join tokens: admin only, TTL bounded, shown once, stored as a hash.
    let issued = b
        .client(Some(admin_key.clone()))
        .create_join_token(&CreateJoinToken {
            ttl_secs: Some(7_200),
        })
        .await
        .unwrap();
    assert!(issued.token.starts_with("x0tanc_"), "{}", issued.token);
    let denied = b
        .client(None)
        .create_join_token(&CreateJoinToken::default())
        .await
        .unwrap_err();
    assert!(
        matches!(denied, ClientError::Api { status: 401, .. }),
        "{denied}"
    );
    let too_short = b
        .client(Some(admin_key.clone()))
        .create_join_token(&CreateJoinToken { ttl_secs: Some(60) })
        .await
        .unwrap_err();
    assert!(
        matches!(too_short, ClientError::Api { status: 400, .. }),
        "{too_short}"
    );

    // A new machine joins with the token, through a follower's peer address: the token is
    // redeemed (through the leader), the node added as learner, then voter.
    let b_info = b.info();
    let quic = b_info
        .p2p_addrs
        .iter()
        .find(|a| a.contains("quic"))
        .unwrap();
    let peer: libp2p::Multiaddr = format!("{quic}/p2p/{}", b_info.peer_id).parse().unwrap();
    let d = start(
        &root.path().join("d"),
        Some(JoinConfig::Token {
            peer: peer.clone(),
            token: issued.token.clone(),
        }),
    )
    .await;
    let status = a.client(None).cluster().await.unwrap();
    assert_eq!(status.voters.len(), 4, "{status:?}");
    assert!(status.voters.contains_key(&d.info().raft_id));
    let read = d.client(None).mesh("factory", false).await.unwrap();
    assert_eq!(
        read.version, last.version,
        "the new anchor serves linearizable reads"
    );
    // The token worked once: another node presenting it is refused, as is a made-up one.
    for (name, token) in [
        ("e", issued.token.clone()),
        ("f", issued.token.replace(&issued.token_id, "AAAAAAAAAAAAA")),
        ("g", "x0tanc_nonsense".to_owned()),
    ] {
        let refused = run_until_error(
            &root.path().join(name),
            JoinConfig::Token {
                peer: peer.clone(),
                token,
            },
        )
        .await;
        assert!(refused.contains("anchor-join token"), "{name}: {refused}");
    }
    let status = a.client(None).cluster().await.unwrap();
    assert_eq!(
        status.voters.len(),
        4,
        "refused joins add nobody: {status:?}"
    );

    // Removing an anchor: admin only; through a follower (forwarded to the leader); an
    // unknown id is a typed 409; the cluster goes on with the rest.
    let d_id = d.info().raft_id;
    let denied = c.client(None).remove_anchor(d_id).await.unwrap_err();
    assert!(
        matches!(denied, ClientError::Api { status: 401, .. }),
        "{denied}"
    );
    let status = c
        .client(Some(admin_key.clone()))
        .remove_anchor(d_id)
        .await
        .unwrap();
    assert_eq!(status.voters.len(), 3, "{status:?}");
    assert!(!status.voters.contains_key(&d_id));
    assert!(
        !status.learners.contains_key(&d_id),
        "not kept as a learner"
    );
    let unknown = b
        .client(Some(admin_key.clone()))
        .remove_anchor(d_id)
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, ClientError::Api { status: 409, ref message } if message.contains("not a voter")),
        "{unknown}"
    );
    d.stop().await;
    let after = b
        .client(Some(admin_key.clone()))
        .update_settings(
            "factory",
            &UpdateSettings {
                description: "after removal".into(),
                expected_version: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(after.description, "after removal");

    let a_dir = a.dir.clone();
    c.stop().await;
    b.stop().await;
    a.stop().await;

    // Nothing on disk holds the token's secret; its id is there.
    let secret_text = issued.token.rsplit('_').next().unwrap();
    let secret = x0t_types::base32::decode(secret_text).unwrap();
    let mut files = vec![a_dir.join("db")];
    let mut found_id = false;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(!contains(&secret), "secret in {}", path.display());
        assert!(
            !contains(secret_text.as_bytes()),
            "secret text in {}",
            path.display()
        );
        found_id |= contains(issued.token_id.as_bytes());
    }
    assert!(found_id, "the token id is recorded");
}
