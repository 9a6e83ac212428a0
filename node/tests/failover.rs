//! Anchors as real processes: kill -9 the leader, elect a new one, restart the dead one from
//! its sled files, and catch a far-behind follower up through a snapshot.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::time::{Duration, Instant};

use x0t_client::ApiClient;
use x0t_node::api::{CreateMesh, UpdateSettings};
use x0t_node::run::{ADMIN_KEY_FILE, NodeInfo};
use x0t_node::testnet;

mod common;

use common::eventually;

fn free_base_port() -> u16 {
    testnet::free_base_port(3, std::process::id()).unwrap()
}

fn info(dir: &Path, index: usize) -> NodeInfo {
    NodeInfo::load(&testnet::node_dir(dir, index)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_restart_and_snapshot_catch_up() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_path_buf();
    let _cleanup = testnet::KillOnDrop(dir.clone());
    let exe = Path::new(env!("CARGO_BIN_EXE_x0t"));
    let base = free_base_port();
    let args: Vec<String> = ["--snapshot-every", "20", "--keep-after-snapshot", "5"]
        .map(String::from)
        .to_vec();
    testnet::up(exe, &dir, 3, base, &args).await.unwrap();
    let key = std::fs::read_to_string(testnet::node_dir(&dir, 1).join(ADMIN_KEY_FILE)).unwrap();
    let client =
        |index: usize| ApiClient::new(&info(&dir, index).api_url, Some(key.clone())).unwrap();

    client(1)
        .create_mesh(&CreateMesh {
            name: "m".into(),
            description: "0".into(),
            plan: None,
        })
        .await
        .unwrap();

    // kill -9 the leader; the others elect a new one and accept writes again.
    let leader_id = client(1).cluster().await.unwrap().leader.unwrap();
    let leader = (1..=3)
        .find(|&i| info(&dir, i).raft_id == leader_id)
        .unwrap();
    let survivor = (1..=3).find(|&i| i != leader).unwrap();
    testnet::signal(info(&dir, leader).pid, "KILL");
    let killed_at = Instant::now();
    let acked = eventually(
        "a write after the leader died",
        Duration::from_secs(15),
        async || {
            client(survivor)
                .update_settings(
                    "m",
                    &UpdateSettings {
                        description: "after failover".into(),
                        expected_version: None,
                    },
                )
                .await
                .ok()
        },
    )
    .await;
    eprintln!(
        "write accepted {:?} after kill -9 of the leader",
        killed_at.elapsed()
    );
    let status = client(survivor).cluster().await.unwrap();
    assert_ne!(status.leader, Some(leader_id));

    // The killed node restarts from its files and catches up, acknowledged write included.
    let pid = testnet::spawn_node(exe, &dir, leader, base, None, &args).unwrap();
    testnet::wait_ready(&dir, leader, pid, Duration::from_secs(30))
        .await
        .unwrap();
    eventually(
        "the restarted node to catch up",
        Duration::from_secs(15),
        async || {
            let view = client(leader).mesh("m", true).await.ok()?;
            (view.version == acked.version).then_some(())
        },
    )
    .await;

    // A follower that falls far behind (the leader purged the entries it lacks) catches up
    // by installing a snapshot.
    let leader_id = client(survivor).cluster().await.unwrap().leader.unwrap();
    let follower = (1..=3)
        .find(|&i| info(&dir, i).raft_id != leader_id)
        .unwrap();
    let leader = (1..=3)
        .find(|&i| info(&dir, i).raft_id == leader_id)
        .unwrap();
    let behind_at = client(follower)
        .cluster()
        .await
        .unwrap()
        .last_applied_index
        .unwrap();
    testnet::kill_and_wait(info(&dir, follower).pid).await;
    let mut last = None;
    for i in 0..100 {
        last = Some(
            client(leader)
                .update_settings(
                    "m",
                    &UpdateSettings {
                        description: format!("write {i}"),
                        expected_version: None,
                    },
                )
                .await
                .unwrap(),
        );
    }
    let last = last.unwrap();
    let purged = client(leader)
        .cluster()
        .await
        .unwrap()
        .purged_index
        .unwrap_or(0);
    assert!(
        purged > behind_at,
        "leader purged to {purged}, follower was at {behind_at}"
    );
    let pid = testnet::spawn_node(exe, &dir, follower, base, None, &args).unwrap();
    testnet::wait_ready(&dir, follower, pid, Duration::from_secs(30))
        .await
        .unwrap();
    eventually(
        "the far-behind follower to install a snapshot",
        Duration::from_secs(20),
        async || {
            let view = client(follower).mesh("m", true).await.ok()?;
            (view.version == last.version && view.description == "write 99").then_some(())
        },
    )
    .await;
    let status = client(follower).cluster().await.unwrap();
    assert!(status.snapshot_index.unwrap_or(0) > behind_at, "{status:?}");

    assert_eq!(testnet::down(&dir).await.unwrap(), 3);

    // `testnet up` on the same directory restarts the cluster from its files (no node can
    // issue a join token before a quorum is back); a different size is refused clearly.
    let error = testnet::up(exe, &dir, 2, base, &args).await.unwrap_err();
    assert!(error.to_string().contains("--anchors 3"), "{error}");
    testnet::up(exe, &dir, 3, base, &args).await.unwrap();
    let view = client(1).mesh("m", false).await.unwrap();
    assert_eq!(view.version, last.version);
    assert_eq!(testnet::down(&dir).await.unwrap(), 3);
}

/// A write acknowledged just before kill -9 is there after restart. Each round kills at a
/// different moment within 500 ms of the acknowledgement (sled's own background flush runs
/// every 500 ms: only the flush before the ack can make every one of them survive).
/// `X0T_DURABILITY_ROUNDS` sets how many kill/restart rounds (the `fault` nextest profile
/// runs 200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durability_acknowledged_write_survives_kill_9() {
    let rounds: usize = std::env::var("X0T_DURABILITY_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_path_buf();
    let _cleanup = testnet::KillOnDrop(dir.clone());
    let exe = Path::new(env!("CARGO_BIN_EXE_x0t"));
    let base = free_base_port();
    testnet::up(exe, &dir, 1, base, &[]).await.unwrap();
    let key = std::fs::read_to_string(testnet::node_dir(&dir, 1).join(ADMIN_KEY_FILE)).unwrap();
    let client = || ApiClient::new(&info(&dir, 1).api_url, Some(key.clone())).unwrap();
    client()
        .create_mesh(&CreateMesh {
            name: "d".into(),
            description: String::new(),
            plan: None,
        })
        .await
        .unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..rounds {
        let acked = client()
            .update_settings(
                "d",
                &UpdateSettings {
                    description: format!("round {round}"),
                    expected_version: None,
                },
            )
            .await
            .unwrap();
        // No grace period beyond a random 0–499 ms: the ack is the only promise. A quarter
        // of the rounds kill at once, the moment most likely to catch an unflushed write.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = if rng.is_multiple_of(4) {
            0
        } else {
            (rng >> 8) % 500
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        testnet::kill_and_wait(info(&dir, 1).pid).await;
        let pid = testnet::spawn_node(exe, &dir, 1, base, None, &[]).unwrap();
        testnet::wait_ready(&dir, 1, pid, Duration::from_secs(30))
            .await
            .unwrap();
        let view = eventually(
            "the restarted node to answer",
            Duration::from_secs(15),
            async || client().mesh("d", false).await.ok(),
        )
        .await;
        assert_eq!(
            (view.version, view.description.as_str()),
            (acked.version, acked.description.as_str()),
            "round {round} (killed {delay} ms after the ack): acknowledged write lost"
        );
    }
}
