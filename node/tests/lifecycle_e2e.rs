//! The whole lifecycle against three anchor processes, with the leader killed (kill -9)
//! between the steps: register → approve → status → revoke → re-enroll → approve.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::eventually;
use x0t_client::ApiClient;
use x0t_node::agent::{self, JoinOptions};
use x0t_node::api::{ApproveNode, Reason};
use x0t_node::run::ADMIN_KEY_FILE;
use x0t_node::{NodeInfo, testnet};
use x0t_types::{DeviceClass, MeshId, NodeState, Tag};

const MESH: &str = "default";

struct Net {
    dir: PathBuf,
    base: u16,
    key: String,
}

impl Net {
    fn info(&self, index: usize) -> NodeInfo {
        NodeInfo::load(&testnet::node_dir(&self.dir, index)).unwrap()
    }

    fn client(&self, index: usize) -> ApiClient {
        ApiClient::new(&self.info(index).api_url, Some(self.key.clone())).unwrap()
    }

    /// Which node leads, asking `via`.
    async fn leader(&self, via: usize) -> usize {
        let id = eventually("a leader", Duration::from_secs(20), async || {
            self.client(via).cluster().await.ok()?.leader
        })
        .await;
        (1..=3).find(|&i| self.info(i).raft_id == id).unwrap()
    }

    /// kill -9 the leader; answers it and a survivor that sees a new leader.
    async fn kill_leader(&self) -> (usize, usize) {
        let leader = self.leader(1).await;
        testnet::kill_and_wait(self.info(leader).pid).await;
        let survivor = (1..=3).find(|&i| i != leader).unwrap();
        let dead_id = self.info(leader).raft_id;
        let new_id = eventually("a new leader", Duration::from_secs(20), async || {
            self.client(survivor)
                .cluster()
                .await
                .ok()?
                .leader
                .filter(|&id| id != dead_id)
        })
        .await;
        let new = (1..=3).find(|&i| self.info(i).raft_id == new_id).unwrap();
        eprintln!("killed leader node{leader}; node{new} leads");
        (leader, survivor)
    }

    async fn restart(&self, index: usize) {
        let exe = Path::new(env!("CARGO_BIN_EXE_x0t"));
        let pid = testnet::spawn_node(exe, &self.dir, index, self.base, None, &[]).unwrap();
        testnet::wait_ready(&self.dir, index, pid, Duration::from_secs(30))
            .await
            .unwrap();
    }
}

fn options(net: &Net, anchor: usize, dir: &Path) -> JoinOptions {
    JoinOptions {
        data_dir: dir.to_path_buf(),
        anchor: net.info(anchor).api_url,
        mesh: MeshId::new(MESH).unwrap(),
        token: None,
        tags: vec![Tag::new("robot").unwrap()],
        device_class: DeviceClass::Robot,
        hostname: Some("robot-e2e".into()),
        timeout: Duration::from_millis(300),
        poll_every: Duration::from_millis(100),
    }
}

/// Registers (or re-checks) the agent in `dir`; it stays pending, so the join times out.
async fn join_pending(net: &Net, anchor: usize, dir: &Path) -> String {
    let err = agent::join(&options(net, anchor, dir), |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("still pending_approval"), "{err}");
    agent::load_state(dir).unwrap().unwrap().node_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_approve_status_revoke_reenroll_across_leader_kills() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("net");
    let _cleanup = testnet::KillOnDrop(dir.clone());
    let exe = Path::new(env!("CARGO_BIN_EXE_x0t"));
    let base = testnet::free_base_port(3, std::process::id()).unwrap();
    testnet::up(exe, &dir, 3, base, &[]).await.unwrap();
    let key = std::fs::read_to_string(testnet::node_dir(&dir, 1).join(ADMIN_KEY_FILE))
        .unwrap()
        .trim()
        .to_owned();
    let net = Net { dir, base, key };
    let agent_dir = root.path().join("agent");

    // 1. Register: pending.
    let first_id = join_pending(&net, 1, &agent_dir).await;

    // 2. Leader dies; approve through a survivor (the write goes to the new leader).
    let (dead, survivor) = net.kill_leader().await;
    let approved = eventually(
        "an approval after the failover",
        Duration::from_secs(20),
        async || {
            net.client(survivor)
                .approve(MESH, &first_id, &ApproveNode::default())
                .await
                .ok()
        },
    )
    .await;
    assert_eq!(approved.state, NodeState::Approved);
    net.restart(dead).await;

    // 3. The agent, pointed at the restarted anchor, picks up its certificate; status says so.
    let (state, cert) = agent::join(&options(&net, dead, &agent_dir), |_| {})
        .await
        .unwrap();
    let cert = cert.unwrap();
    assert_eq!(state.state, NodeState::Approved);
    assert_eq!(Some(cert.overlay_ip.to_string()), approved.overlay_ip);
    let out = std::process::Command::new(exe)
        .args(["status", "--dir"])
        .arg(&agent_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("state:       approved"), "{text}");
    assert!(text.contains("certificate: valid"), "{text}");
    assert!(text.contains("anchors:     3 of 3 reached"), "{text}");

    // 4. Leader dies again; revoke through a survivor; every anchor (the killed one after its
    //    restart too) reports the certificate revoked.
    let (dead, survivor) = net.kill_leader().await;
    eventually(
        "a revocation after the failover",
        Duration::from_secs(20),
        async || {
            net.client(survivor)
                .reject_or_revoke(
                    MESH,
                    &first_id,
                    "revoke",
                    &Reason {
                        reason: "stolen".into(),
                    },
                )
                .await
                .ok()
        },
    )
    .await;
    net.restart(dead).await;
    let cert_text = std::fs::read_to_string(agent_dir.join(agent::CERTIFICATE_FILE)).unwrap();
    for i in 1..=3 {
        let status = eventually(
            "the revocation everywhere",
            Duration::from_secs(10),
            async || {
                let status = net
                    .client(i)
                    .verify_certificate(MESH, &cert_text)
                    .await
                    .ok()?;
                (status.state == Some(NodeState::Revoked)).then_some(status)
            },
        )
        .await;
        assert!(!status.valid);
        assert_eq!(status.reason.as_deref(), Some("revoked: stolen"));
    }

    // 5. Re-enroll: the same key is refused; a new key goes back to pending.
    let err = agent::join(&options(&net, 2, &agent_dir), |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    std::fs::rename(
        agent_dir.join("identity.key"),
        agent_dir.join("identity.key.revoked"),
    )
    .unwrap();
    let (dead, survivor) = net.kill_leader().await;
    let second_id = eventually(
        "a re-registration after the failover",
        Duration::from_secs(20),
        async || {
            let err = agent::join(&options(&net, survivor, &agent_dir), |_| {})
                .await
                .err()?;
            err.to_string()
                .contains("still pending_approval")
                .then(|| agent::load_state(&agent_dir).unwrap().unwrap().node_id)
        },
    )
    .await;
    assert_ne!(second_id, first_id);
    net.restart(dead).await;

    // 6. Approve the new key; the agent gets a fresh certificate.
    net.client(dead)
        .approve(MESH, &second_id, &ApproveNode::default())
        .await
        .unwrap();
    let (_, cert) = agent::join(&options(&net, 1, &agent_dir), |_| {})
        .await
        .unwrap();
    assert_eq!(cert.unwrap().node_id.to_string(), second_id);

    // The ledger holds both identities, and every anchor's audit chain verifies.
    let nodes = net.client(2).list_nodes(MESH, &[]).await.unwrap();
    let state_of = |id: &str| nodes.iter().find(|n| n.node_id == id).unwrap().state;
    assert_eq!(state_of(&first_id), NodeState::Revoked);
    assert_eq!(state_of(&second_id), NodeState::Approved);
    for i in 1..=3 {
        let verdict = net.client(i).audit_verify(MESH).await.unwrap();
        assert!(verdict.ok, "node{i}: {verdict:?}");
    }
    assert_eq!(testnet::down(&net.dir).await.unwrap(), 3);
}
