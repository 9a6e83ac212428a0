//! Concurrent clients read, write and compare-and-set one mesh's settings through every
//! anchor while the leader is killed (kill -9) and restarted; stateright's linearizability
//! tester must find a sequential order that explains every answer.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use x0t_node::api::{CreateMesh, UpdateSettings};
use x0t_node::client::ApiClient;
use x0t_node::run::{ADMIN_KEY_FILE, NodeInfo};
use x0t_node::{NodeError, testnet};

/// The reference object: one mesh's settings with its version.
#[derive(Clone, Debug, Default, PartialEq)]
struct Settings {
    version: u64,
    description: String,
}

#[derive(Clone, Debug)]
enum Op {
    Read,
    Write(String),
    Cas(u64, String),
}

#[derive(Clone, Debug, PartialEq)]
enum Ret {
    Read(u64, String),
    Written(u64),
    CasFailed,
}

impl SequentialSpec for Settings {
    type Op = Op;
    type Ret = Ret;

    fn invoke(&mut self, op: &Op) -> Ret {
        match op {
            Op::Read => Ret::Read(self.version, self.description.clone()),
            Op::Write(text) => {
                self.version += 1;
                self.description = text.clone();
                Ret::Written(self.version)
            }
            Op::Cas(expected, text) if *expected == self.version => {
                self.version += 1;
                self.description = text.clone();
                Ret::Written(self.version)
            }
            Op::Cas(..) => Ret::CasFailed,
        }
    }
}

/// A small deterministic generator per client (no extra dependency).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_settings_are_linearizable_across_leader_kills() {
    const CLIENTS: u64 = 4;
    const OPS_PER_CLIENT: usize = 40;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_path_buf();
    let _cleanup = testnet::KillOnDrop(dir.clone());
    let exe = Path::new(env!("CARGO_BIN_EXE_x0t"));
    let base = testnet::free_base_port(3, std::process::id()).unwrap();
    testnet::up(exe, &dir, 3, base, &[]).await.unwrap();
    let key = std::fs::read_to_string(testnet::node_dir(&dir, 1).join(ADMIN_KEY_FILE)).unwrap();
    let urls: Vec<String> = (1..=3)
        .map(|i| NodeInfo::load(&testnet::node_dir(&dir, i)).unwrap().api_url)
        .collect();
    let admin = ApiClient::new(&urls[0], Some(key.clone())).unwrap();
    admin
        .create_mesh(&CreateMesh {
            name: "lin".into(),
            description: String::new(),
            plan: None,
        })
        .await
        .unwrap();
    // Version 1, empty description: the reference object starts there.
    let tester = Arc::new(Mutex::new(LinearizabilityTester::new(Settings {
        version: 1,
        description: String::new(),
    })));

    // The fault injector: kill -9 the leader, let the others carry on, restart it. Twice.
    // Clients steer clear of the node while it is known to be down: a request refused at
    // connect would count as an operation of unknown outcome, and every such operation
    // multiplies the histories the checker must consider (operations in flight at the
    // moment of the kill remain, which is the point of the test).
    let down = Arc::new(AtomicUsize::new(usize::MAX));
    let fault_down = down.clone();
    let fault_dir = dir.clone();
    let fault_urls = urls.clone();
    let faults = tokio::spawn(async move {
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(800)).await;
            let mut leader = None;
            for url in &fault_urls {
                if let Ok(status) = ApiClient::new(url, None).unwrap().cluster().await {
                    leader = status.leader;
                    break;
                }
            }
            let Some(leader) = leader else { continue };
            let index = (1..=3)
                .find(|&i| {
                    NodeInfo::load(&testnet::node_dir(&fault_dir, i))
                        .unwrap()
                        .raft_id
                        == leader
                })
                .unwrap();
            let pid = NodeInfo::load(&testnet::node_dir(&fault_dir, index))
                .unwrap()
                .pid;
            testnet::kill_and_wait(pid).await;
            fault_down.store(index - 1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            let pid = testnet::spawn_node(exe_path(), &fault_dir, index, base, None, &[]).unwrap();
            testnet::wait_ready(&fault_dir, index, pid, Duration::from_secs(30))
                .await
                .unwrap();
            fault_down.store(usize::MAX, Ordering::SeqCst);
        }
    });

    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let tester = tester.clone();
        let urls = urls.clone();
        let key = key.clone();
        let down = down.clone();
        clients.push(tokio::spawn(async move {
            let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ (client + 1));
            // A client whose operation's outcome is unknown (timeout, node down) leaves it in
            // flight forever and continues as a new thread id.
            let mut thread = client * 1_000;
            let mut last_version = 1;
            let deadline = Instant::now() + Duration::from_secs(20);
            for seq in 0..OPS_PER_CLIENT {
                if Instant::now() > deadline {
                    break;
                }
                let mut target = (rng.next() % 3) as usize;
                if target == down.load(Ordering::SeqCst) {
                    target = (target + 1) % 3;
                }
                let url = &urls[target];
                let api = ApiClient::new(url, Some(key.clone())).unwrap();
                let text = format!("c{client}-{seq}");
                let op = match rng.next() % 3 {
                    0 => Op::Read,
                    1 => Op::Write(text),
                    _ => Op::Cas(last_version, text),
                };
                tester
                    .lock()
                    .unwrap()
                    .on_invoke(thread, op.clone())
                    .unwrap();
                let result: Result<Ret, NodeError> = match &op {
                    Op::Read => api
                        .mesh("lin", false)
                        .await
                        .map(|m| Ret::Read(m.version, m.description)),
                    Op::Write(text) | Op::Cas(_, text) => {
                        let expected_version = match &op {
                            Op::Cas(v, _) => Some(*v),
                            _ => None,
                        };
                        match api
                            .update_settings(
                                "lin",
                                &UpdateSettings {
                                    description: text.clone(),
                                    expected_version,
                                },
                            )
                            .await
                        {
                            Ok(mesh) => Ok(Ret::Written(mesh.version)),
                            Err(NodeError::Api { status: 409, .. }) => Ok(Ret::CasFailed),
                            Err(e) => Err(e),
                        }
                    }
                };
                match result {
                    Ok(ret) => {
                        if let Ret::Read(v, _) | Ret::Written(v) = ret {
                            last_version = v;
                        }
                        tester.lock().unwrap().on_return(thread, ret).unwrap();
                    }
                    Err(e) => {
                        eprintln!(
                            "client {client}: outcome unknown ({e}); continuing as a new thread"
                        );
                        thread += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    faults.await.unwrap();

    let tester = tester.lock().unwrap();
    assert!(
        tester.len() > 60,
        "too few operations completed: {}",
        tester.len()
    );
    let started = Instant::now();
    assert!(
        tester.is_consistent(),
        "history is not linearizable: {tester:?}"
    );
    eprintln!(
        "{} operations, linearizable (checked in {:?})",
        tester.len(),
        started.elapsed()
    );
}

fn exe_path() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_x0t"))
}
