//! Three anchors on loopback (no root needed): concurrent clients read, write and
//! compare-and-set mesh settings and register, approve and read nodes through every anchor
//! while the leader is killed (kill -9) and restarted twice; every key's history must be
//! linearizable (stateright, per key: `x0t_testnet::history`). The namespace suite
//! (`tests/chaos.rs`) adds partitions, loss, pauses and membership changes.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::{Arc, RwLock};
use std::time::Duration;

use x0t_client::ApiClient;
use x0t_node::NodeInfo;
use x0t_node::run::ADMIN_KEY_FILE;
use x0t_node::testnet;
use x0t_testnet::history::{Workload, WorkloadConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_are_linearizable_across_leader_kills() {
    let exe = x0t_testnet::mesh_lab::x0t_for_tests().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_path_buf();
    let _cleanup = testnet::KillOnDrop(dir.clone());
    let base = testnet::free_base_port(3, std::process::id()).unwrap();
    testnet::up(&exe, &dir, 3, base, &[]).await.unwrap();
    let key = std::fs::read_to_string(testnet::node_dir(&dir, 1).join(ADMIN_KEY_FILE)).unwrap();
    let key = key.trim().to_owned();
    let info = |i: usize| NodeInfo::load(&testnet::node_dir(&dir, i)).unwrap();
    let targets: Vec<(usize, String)> = (1..=3).map(|i| (i, info(i).api_url)).collect();
    let workload = Arc::new(
        Workload::prepare(
            WorkloadConfig {
                clients: 4,
                meshes: 3,
                nodes: 8,
                op_timeout: Duration::from_secs(2),
                think: Duration::from_millis(20),
                max_ops_per_client: 400,
                stale_reads: false,
            },
            &targets[0].1,
            &key,
        )
        .await
        .unwrap(),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let clients = {
        let workload = workload.clone();
        let targets = Arc::new(RwLock::new(targets.clone()));
        tokio::spawn(async move { workload.run(targets, stopped).await })
    };

    // The fault injector: kill -9 the leader, let the others carry on, restart it. Twice.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        // A node restarted in the round before may not know the leader yet: ask until one
        // does (bounded).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let leader = loop {
            let mut known = None;
            for (_, url) in &targets {
                if let Ok(status) = ApiClient::new(url, None).unwrap().cluster().await {
                    known = known.or(status.leader);
                }
            }
            match known {
                Some(leader) => break leader,
                None if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => panic!("no anchor knew a leader for 10 s"),
            }
        };
        let index = (1..=3).find(|&i| info(i).raft_id == leader).unwrap();
        testnet::kill_and_wait(info(index).pid).await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let pid = testnet::spawn_node(&exe, &dir, index, base, None, &[]).unwrap();
        testnet::wait_ready(&dir, index, pid, Duration::from_secs(30))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop.send(true);
    clients.await.unwrap().unwrap();
    workload.final_reads(1, &targets[0].1).await.unwrap();

    let history = workload.history.lock().unwrap();
    let verdict = history.check(Duration::from_secs(30));
    eprintln!("{verdict:?}");
    assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
    // A bound, not a figure: on a loaded CI machine the clients get through fewer.
    assert!(verdict.ok > 40, "too few operations answered: {verdict:?}");
}
