//! The data plane in userspace mode, in one process on loopback: approved agents verify each
//! other's certificates, bring up signed hybrid sessions, ping through them, forward TCP
//! streams as the policy allows, and cut a revoked node off within 2 s.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::eventually;
use common::member::agent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x0t_client::ApiClient;
use x0t_node::api::{Reason, SetAcl};

const MESH: &str = "default";

/// Robots may reach servers on one TCP port (and ping them); nothing else is allowed.
fn policy(port: u16) -> String {
    format!(
        r#"
version = 1

[[rule]]
name = "robots-to-servers"
action = "allow"
src = ["tag:robot"]
dst = ["tag:server"]
ports = ["tcp/{port}", "icmp"]
"#
    )
}

/// A TCP server answering each line with "echo: <line>".
async fn echo_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Sends `payload` through a forwarded port and reads it back.
async fn round_trip(port: u16, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(payload).await?;
    let mut back = vec![0u8; payload.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut back))
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    Ok(back)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_verify_each_other_forward_streams_and_cut_off_a_revoked_node() {
    let root = tempfile::tempdir().unwrap();
    let (anchors, key) = common::cluster(root.path(), 1).await;
    let anchor_url = anchors[0].info().api_url;
    let admin = ApiClient::new(&anchor_url, Some(key.clone())).unwrap();
    let (allowed_port, denied_port) = (echo_server().await, echo_server().await);
    admin
        .set_acl(
            MESH,
            &SetAcl {
                document: policy(allowed_port),
                expected_version: None,
            },
        )
        .await
        .unwrap();

    let server = agent(&admin, &anchor_url, root.path(), "server", "server").await;
    let robot = agent(&admin, &anchor_url, root.path(), "robot", "robot").await;
    let camera = agent(&admin, &anchor_url, root.path(), "camera", "camera").await;

    // Everyone finds everyone through the anchor and verifies their certificates.
    for member in [&server, &robot, &camera] {
        eventually("every peer verified", Duration::from_secs(20), async || {
            let status = member.status().await;
            (status.peers.len() == 2 && status.policy_version == 1).then_some(())
        })
        .await;
    }

    // A ping goes through a freshly set-up, signed hybrid session.
    let report = robot.client().ping(&server.node_id[..16], 3).await.unwrap();
    assert!(report.rtts_ms.iter().all(Option::is_some), "{report:?}");
    let status = robot.status().await;
    let to_server = status
        .peers
        .iter()
        .find(|p| p.node_id == server.node_id)
        .unwrap();
    assert!(to_server.session_age_s.is_some());
    assert_eq!(to_server.kem, "ML-KEM-768");

    // Streams: the robot may reach the server's allowed port, not the other one; the
    // camera may reach nothing.
    server.client().expose("echo", denied_port).await.unwrap();
    server.client().expose("web", allowed_port).await.unwrap();
    let robot_web = robot
        .client()
        .connect(
            &format!("{}/web", &server.node_id[..16]),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        round_trip(robot_web.port(), &payload).await.unwrap(),
        payload
    );

    // The other port is denied at the exposing end; the camera has no rule at all.
    for (from, service) in [(&robot, "echo"), (&camera, "web")] {
        let forwarded = from
            .client()
            .connect(
                &format!("{}/{service}", &server.node_id[..16]),
                "127.0.0.1:0".parse().unwrap(),
            )
            .await
            .unwrap();
        assert!(
            round_trip(forwarded.port(), b"hi").await.is_err(),
            "{service}"
        );
    }
    assert!(server.status().await.counters["packets_denied"] >= 2);

    // Revoke the robot: both other members drop it within 2 s.
    let revoked_at = Instant::now();
    admin
        .reject_or_revoke(
            MESH,
            &robot.node_id,
            "revoke",
            &Reason {
                reason: "test".into(),
            },
        )
        .await
        .unwrap();
    for member in [&server, &camera] {
        eventually("the robot cut off", Duration::from_secs(2), async || {
            let status = member.status().await;
            (!status.peers.iter().any(|p| p.node_id == robot.node_id)).then_some(())
        })
        .await;
    }
    let cut = revoked_at.elapsed();
    eprintln!("revocation reached both peers in {cut:?}");
    assert!(round_trip(robot_web.port(), b"hi").await.is_err());

    for member in [server, robot, camera] {
        member.stop().await;
    }
    for anchor in anchors {
        anchor.stop().await;
    }
}
