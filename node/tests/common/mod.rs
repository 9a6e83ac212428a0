//! Helpers shared by the node's integration tests: in-process nodes on loopback, and
//! registrations signed by fresh node keys.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod member;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use x0t_client::{ApiClient, ClientError};
use x0t_crypto::{Registration, SigAlgorithm, SigningKey};
use x0t_node::api::{NodeStatus, RegisterNode};
use x0t_node::control::RaftSettings;
use x0t_node::run::JoinConfig;
use x0t_node::{NodeConfig, NodeError, NodeInfo};
use x0t_types::{DeviceClass, MeshId, Tag, Timestamp, base32};

/// A node running in this process.
pub struct TestNode {
    pub dir: PathBuf,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), NodeError>>,
}

pub fn config(dir: &Path, join: Option<JoinConfig>) -> NodeConfig {
    NodeConfig {
        data_dir: dir.to_path_buf(),
        p2p_listen: vec![
            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap(),
        ],
        api_listen: "127.0.0.1:0".parse().unwrap(),
        join,
        raft: RaftSettings::default(),
    }
}

/// Starts a node and waits until it serves.
pub async fn start(dir: &Path, join: Option<JoinConfig>) -> TestNode {
    start_with(config(dir, join)).await
}

/// Starts a node with `config` and waits until it serves.
pub async fn start_with(config: NodeConfig) -> TestNode {
    let dir = config.data_dir.clone();
    let dir = dir.as_path();
    let _ = std::fs::remove_file(dir.join("node.json"));
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(x0t_node::run(config, shutdown));
    let deadline = Instant::now() + Duration::from_secs(30);
    while NodeInfo::load(dir).is_err() {
        assert!(!task.is_finished(), "node exited early: {:?}", task.await);
        assert!(Instant::now() < deadline, "node did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    TestNode {
        dir: dir.to_path_buf(),
        stop,
        task,
    }
}

/// Runs a node that is expected to fail to join; returns its error.
pub async fn run_until_error(dir: &Path, join: JoinConfig) -> String {
    let (_stop, shutdown) = watch::channel(false);
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        x0t_node::run(config(dir, Some(join)), shutdown),
    )
    .await
    .expect("a refused join must end the node, not hang");
    result
        .expect_err("the join should have been refused")
        .to_string()
}

impl TestNode {
    pub fn info(&self) -> NodeInfo {
        NodeInfo::load(&self.dir).unwrap()
    }

    pub fn client(&self, key: Option<String>) -> ApiClient {
        ApiClient::new(&self.info().api_url, key).unwrap()
    }

    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// Starts `n` anchors in one cluster (node 1 bootstraps, the others join with its admin key);
/// answers them and the admin key.
pub async fn cluster(root: &Path, n: usize) -> (Vec<TestNode>, String) {
    let first = start(&root.join("a1"), None).await;
    let key = std::fs::read_to_string(first.dir.join(x0t_node::run::ADMIN_KEY_FILE)).unwrap();
    let api_url = first.info().api_url;
    let mut nodes = vec![first];
    for i in 2..=n {
        let join = JoinConfig::AdminKey {
            api_url: api_url.clone(),
            admin_key: key.clone(),
        };
        nodes.push(start(&root.join(format!("a{i}")), Some(join)).await);
    }
    // Every node knows every anchor (and its key) before the test starts.
    let deadline = Instant::now() + Duration::from_secs(20);
    for node in &nodes {
        while node.client(None).anchors().await.map_or(0, |a| a.len()) < n {
            assert!(Instant::now() < deadline, "anchors did not all appear");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (nodes, key.trim().to_owned())
}

/// A fresh node identity.
pub fn node_key() -> SigningKey {
    SigningKey::generate(SigAlgorithm::MlDsa65).unwrap()
}

pub fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    )
}

/// The registration body `x0t join` would send for `key`.
pub fn registration(key: &SigningKey, mesh: &str, token: Option<String>) -> RegisterNode {
    let signed = Registration {
        mesh: MeshId::new(mesh).unwrap(),
        node_id: key.node_id(),
        identity_key: key.verifying_key().clone(),
        peer_id: libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
            .to_bytes(),
        hostname: format!("robot-{}", &key.node_id().short()[..4]),
        device_class: DeviceClass::Robot,
        requested_tags: vec![Tag::new("robot").unwrap()],
        requested_at: now(),
    }
    .sign(key)
    .unwrap();
    RegisterNode {
        registration: base32::encode(&signed.encode()),
        token,
    }
}

/// Registers a fresh node; answers its key and what the anchor said.
pub async fn register(
    client: &ApiClient,
    mesh: &str,
    token: Option<String>,
) -> (SigningKey, Result<NodeStatus, ClientError>) {
    let key = node_key();
    let answer = client
        .register(mesh, &registration(&key, mesh, token))
        .await;
    (key, answer)
}

/// Retries `check` until it answers `Some` or `timeout` passes.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The status code of an API error.
pub fn status_of(error: &ClientError) -> u16 {
    match error {
        ClientError::Api { status, .. } => *status,
        other => panic!("not an API error: {other}"),
    }
}
