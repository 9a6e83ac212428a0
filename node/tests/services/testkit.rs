//! One anchor in this process, for the service layer's tests: a real openraft control
//! plane on a real sled database in a temporary directory, bootstrapped exactly as `x0t up`
//! bootstraps a cluster — but with a swarm that listens nowhere, so no test here opens a
//! socket. Each domain's tests call [`Service`] methods directly and check both what they
//! answer and how their errors map to every face (HTTP status, gRPC code, stable code).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use x0t_consensus::{AnchorNode, SledStorage};
use x0t_crypto::{SigAlgorithm, SigningKey};
use x0t_types::api::RegisterNode;

use x0t_node::control::{ControlPlane, RaftSettings};
use x0t_node::p2p::{self, P2pConfig};
use x0t_node::service::{Caller, ErrorKind, Service, ServiceError};

/// The mesh every bootstrapped cluster has.
pub(crate) const MESH: &str = x0t_node::run::DEFAULT_MESH;

/// A bootstrapped one-anchor cluster and its service.
pub(crate) struct Anchor {
    /// The service under test.
    pub(crate) service: Service,
    /// The bootstrap admin key's caller.
    pub(crate) admin: Caller,
    /// The admin key's text (`x0tadm_…`), for authentication tests.
    pub(crate) admin_key: String,
    control: ControlPlane,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

/// Starts and bootstraps one anchor (the default mesh and the bootstrap admin key).
pub(crate) async fn anchor() -> Anchor {
    let dir = tempfile::tempdir().unwrap();
    let identity = Arc::new(SigningKey::generate(SigAlgorithm::MlDsa65).unwrap());
    let raft_id = x0t_node::run::raft_id_of(&identity.node_id());
    let (stop, shutdown) = watch::channel(false);
    let (p2p, _inbound) = p2p::spawn(
        P2pConfig {
            keypair: libp2p::identity::Keypair::generate_ed25519(),
            // Listens nowhere: a one-voter cluster needs no peer.
            listen: Vec::new(),
            request_timeout: Duration::from_secs(5),
            connection_events: None,
        },
        shutdown,
    )
    .await
    .unwrap();
    let node = AnchorNode {
        peer_id: p2p.local_peer_id().to_string(),
        addrs: Vec::new(),
        api_url: "http://127.0.0.1:9".to_owned(),
    };
    let storage = SledStorage::open(&dir.path().join("db")).unwrap();
    let control = ControlPlane::start(
        raft_id,
        node.clone(),
        identity,
        &storage,
        p2p,
        &RaftSettings::default(),
    )
    .await
    .unwrap();
    assert!(control.bootstrap_if_uninitialized().await.unwrap());
    x0t_node::run::bootstrap_cluster(&control, dir.path(), raft_id, &node)
        .await
        .unwrap();
    let members = Arc::new(x0t_node::anchor_mesh::AnchorMesh::default());
    let service = Service::new(control.clone(), members);
    let admin_key = std::fs::read_to_string(dir.path().join(x0t_node::run::ADMIN_KEY_FILE))
        .unwrap()
        .trim()
        .to_owned();
    let admin = service
        .authenticate(Some(&format!("Bearer {admin_key}")))
        .unwrap();
    Anchor {
        service,
        admin,
        admin_key,
        control,
        stop,
        _dir: dir,
    }
}

impl Anchor {
    /// Stops the control plane and the swarm.
    pub(crate) async fn stop(self) {
        self.control.shutdown().await;
        let _ = self.stop.send(true);
    }
}

/// A fresh node key and the registration body `x0t join` would send with it.
pub(crate) fn registration(mesh: &str, token: Option<String>) -> (SigningKey, RegisterNode) {
    let key = crate::common::node_key();
    let body = crate::common::registration(&key, mesh, token);
    (key, body)
}

/// Asserts an error's kind and stable code, and what every face answers for it: the HTTP
/// status, the gRPC code, and the code in the gRPC metadata.
#[track_caller]
pub(crate) fn assert_error(
    error: &ServiceError,
    kind: ErrorKind,
    code: &str,
    http: u16,
    grpc: tonic::Code,
) {
    assert_eq!((error.kind, error.code), (kind, code), "{error:?}");
    assert_eq!(
        x0t_node::api::status_of(error.kind).as_u16(),
        http,
        "{error:?}"
    );
    let status = x0t_node::grpc::status_of(error.clone());
    assert_eq!(status.code(), grpc, "{error:?}");
    assert_eq!(
        status
            .metadata()
            .get(x0t_node::grpc::ERROR_CODE_KEY)
            .and_then(|v| v.to_str().ok()),
        Some(code),
        "{error:?}"
    );
}
