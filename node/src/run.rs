//! `node::run`: one node, from data directory to serving API and peers, until shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use x0t_ledger::{AnchorCommand, ApiKeyCommand, Command, MeshCommand};

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use x0t_consensus::{AnchorNode, SledStorage};
use x0t_crypto::keyfile::write_secret_file;
use x0t_crypto::{SigAlgorithm, SigningKey};
use x0t_types::{AnchorRecord, MeshId, MeshSettings};

use crate::NodeError;
use crate::control::{ControlPlane, RaftSettings};
use crate::identity::{generate_identity, identity_key_path, load_identity};
use crate::p2p::protocol::{ControlRequest, ControlResponse};
use crate::p2p::{self, P2p, P2pConfig};
use crate::token::{SecretToken, TokenKind};

pub use crate::identity::LIBP2P_KEY_FILE;
/// File (in the data dir) holding the bootstrap admin key, 0600.
pub const ADMIN_KEY_FILE: &str = "admin.key";
/// File (in the data dir) describing the running node, for CLIs and the testnet.
pub const NODE_INFO_FILE: &str = "node.json";
/// The mesh created when a cluster is bootstrapped.
pub const DEFAULT_MESH: &str = "default";

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Data directory (keys, database, runtime info).
    pub data_dir: PathBuf,
    /// Peer-to-peer listen addresses (TCP and QUIC multiaddrs; port 0 picks one).
    pub p2p_listen: Vec<Multiaddr>,
    /// API listen address (port 0 picks one).
    pub api_listen: SocketAddr,
    /// Join an existing cluster through this anchor's API instead of bootstrapping.
    pub join: Option<JoinConfig>,
    /// Raft timing.
    pub raft: RaftSettings,
}

/// Joining an existing cluster as an anchor (learner first, voter once caught up).
#[derive(Clone, Debug)]
pub enum JoinConfig {
    /// Through any anchor's peer-to-peer address with a single-use anchor-join token (`x0t
    /// cluster join-token`): the way for a new machine, which needs no admin key.
    Token {
        /// The anchor's multiaddr, ending in `/p2p/<peer id>`.
        peer: Multiaddr,
        /// The token text (`x0tanc_…`).
        token: String,
    },
    /// Through any anchor's HTTP API with an admin key of the cluster (testnets, scripts).
    AdminKey {
        /// Base URL of the anchor's API.
        api_url: String,
        /// An admin key of that cluster.
        admin_key: String,
    },
}

/// What a running node writes to `node.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Raft id.
    pub raft_id: u64,
    /// x0t node id.
    pub node_id: String,
    /// libp2p peer id.
    pub peer_id: String,
    /// Peer-to-peer addresses.
    pub p2p_addrs: Vec<String>,
    /// API base URL.
    pub api_url: String,
    /// Process id.
    pub pid: u32,
}

impl NodeInfo {
    /// Reads `node.json` from a data directory.
    pub fn load(data_dir: &Path) -> Result<Self, NodeError> {
        read_runtime_info(&data_dir.join(NODE_INFO_FILE), "")
    }
}

pub use crate::identity::libp2p_keypair;
pub(crate) use crate::identity::read_runtime_info;

/// A Raft id from the node id: its first 8 bytes. Collisions would need 2^32 anchors.
pub fn raft_id_of(node_id: &x0t_types::NodeId) -> u64 {
    let mut id = [0u8; 8];
    id.copy_from_slice(&node_id.as_bytes()[..8]);
    u64::from_be_bytes(id)
}

/// Runs a node until `shutdown` turns true.
pub async fn run(config: NodeConfig, mut shutdown: watch::Receiver<bool>) -> Result<(), NodeError> {
    let data_dir = &config.data_dir;
    let identity = if identity_key_path(data_dir).exists() {
        load_identity(data_dir)?
    } else {
        generate_identity(data_dir, SigAlgorithm::MlDsa65, false)?
    };
    let node_id = identity.node_id();
    let raft_id = raft_id_of(&node_id);
    let keypair = libp2p_keypair(data_dir)?;

    let api_listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .map_err(|e| NodeError::Config(format!("binding API to {}: {e}", config.api_listen)))?;
    let api_addr = api_listener
        .local_addr()
        .map_err(|e| NodeError::Config(e.to_string()))?;
    let api_url = format!("http://{api_addr}");

    let (connection_events, connections) = tokio::sync::mpsc::channel(1024);
    let (p2p, inbound) = p2p::spawn(
        P2pConfig {
            keypair,
            listen: config.p2p_listen.clone(),
            request_timeout: Duration::from_secs(10),
            connection_events: Some(connection_events),
        },
        shutdown.clone(),
    )
    .await?;
    let p2p_addrs: Vec<String> = p2p
        .listen_addrs()
        .await?
        .iter()
        .map(|a| a.to_string())
        .collect();
    let anchor = AnchorNode {
        peer_id: p2p.local_peer_id().to_string(),
        addrs: p2p_addrs.clone(),
        api_url: api_url.clone(),
    };

    let storage = SledStorage::open(&data_dir.join("db"))
        .map_err(|e| NodeError::Config(format!("opening the database: {e}")))?;
    let identity = std::sync::Arc::new(identity);
    let control = ControlPlane::start(
        raft_id,
        anchor.clone(),
        identity.clone(),
        &storage,
        p2p.clone(),
        &config.raft,
    )
    .await?;
    // The anchors' side of the mesh takes members' requests before any request is served.
    let members = std::sync::Arc::new(crate::anchor_mesh::AnchorMesh::default());
    members.serve(&control, connections, shutdown.clone());
    control.serve(inbound);

    let info = NodeInfo {
        raft_id,
        node_id: node_id.to_string(),
        peer_id: anchor.peer_id.clone(),
        p2p_addrs,
        api_url: api_url.clone(),
        pid: std::process::id(),
    };

    let service = crate::service::Service::new(control.clone(), members);
    crate::enrollment::serve(&service);
    let server = axum::serve(api_listener, crate::api::router(service));
    let mut server_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        server
            .with_graceful_shutdown(async move {
                let _ = server_shutdown.wait_for(|stop| *stop).await;
            })
            .await
    });

    let started = match &config.join {
        None => match control.bootstrap_if_uninitialized().await {
            Ok(true) => bootstrap_cluster(&control, data_dir, raft_id, &anchor).await,
            Ok(false) => Ok(()),
            Err(e) => Err(e.into()),
        },
        Some(join) => join_cluster(&control, &p2p, join, raft_id, &anchor).await,
    };
    if let Err(e) = started {
        // Leave nothing running behind a node that could not start (in-process callers).
        control.shutdown().await;
        server.abort();
        return Err(e);
    }

    let json = serde_json::to_vec_pretty(&info).map_err(|e| NodeError::Config(e.to_string()))?;
    std::fs::write(data_dir.join(NODE_INFO_FILE), json)
        .map_err(|e| NodeError::Config(format!("writing {NODE_INFO_FILE}: {e}")))?;
    tracing::info!(%api_url, raft_id, node_id = %node_id.short(), "node ready");

    let _ = shutdown.wait_for(|stop| *stop).await;
    tracing::info!("shutting down");
    control.shutdown().await;
    let _ = server.await;
    Ok(())
}

/// Founds a new one-anchor cluster on an initialized control plane: records this anchor, a
/// bootstrap admin key (written to `ADMIN_KEY_FILE`, 0600) and the default mesh.
pub async fn bootstrap_cluster(
    control: &ControlPlane,
    data_dir: &Path,
    raft_id: u64,
    anchor: &AnchorNode,
) -> Result<(), NodeError> {
    tracing::info!("bootstrapping a new one-anchor cluster");
    let token = SecretToken::generate(TokenKind::Admin);
    let mesh = MeshId::new(DEFAULT_MESH).map_err(|e| NodeError::Config(e.to_string()))?;
    for command in [
        Command::Anchors(AnchorCommand::Add {
            anchor: anchor_record(raft_id, control.identity(), anchor),
        }),
        Command::ApiKeys(ApiKeyCommand::Add {
            key_id: token.id.clone(),
            secret_hash: token.secret_hash(),
            label: "bootstrap".to_owned(),
            role: x0t_types::KeyRole::Admin,
        }),
        Command::Meshes(MeshCommand::Create {
            mesh: mesh.clone(),
            settings: MeshSettings {
                description: "created at bootstrap".to_owned(),
            },
            plan: x0t_types::Plan::Enterprise,
        }),
    ] {
        control.write(command).await?;
    }
    write_secret_file(
        &data_dir.join(ADMIN_KEY_FILE),
        token.to_text().as_bytes(),
        true,
    )?;
    Ok(())
}

fn anchor_record(raft_id: u64, identity: &SigningKey, anchor: &AnchorNode) -> AnchorRecord {
    AnchorRecord {
        raft_id,
        node_id: identity.node_id(),
        identity_key: x0t_types::PublicKeyBytes {
            algorithm: identity.algorithm().code(),
            bytes: identity.verifying_key().as_bytes().to_vec(),
        },
        peer_id: anchor.peer_id.clone(),
        addrs: anchor.addrs.clone(),
        api_url: anchor.api_url.clone(),
    }
}

async fn join_cluster(
    control: &ControlPlane,
    p2p: &P2p,
    join: &JoinConfig,
    raft_id: u64,
    anchor: &AnchorNode,
) -> Result<(), NodeError> {
    let already = control.status();
    if already.voters.contains_key(&raft_id) {
        tracing::info!("already a voter; not joining again");
        return Ok(());
    }
    match join {
        JoinConfig::Token { peer, token } => {
            join_with_token(control, p2p, peer, token, raft_id, anchor).await
        }
        JoinConfig::AdminKey { api_url, admin_key } => {
            join_with_admin_key(control, api_url, admin_key, raft_id, anchor).await
        }
    }
}

/// Presents the token to the anchor at `peer` (which records this node as an anchor), learns
/// the members to accept Raft traffic from, then asks to be added.
async fn join_with_token(
    control: &ControlPlane,
    p2p: &P2p,
    peer: &Multiaddr,
    token: &str,
    raft_id: u64,
    anchor: &AnchorNode,
) -> Result<(), NodeError> {
    let refused = |why: String| NodeError::Config(format!("joining through {peer}: {why}"));
    let Some(libp2p::multiaddr::Protocol::P2p(peer_id)) = peer.iter().last() else {
        return Err(refused(
            "the address must end in /p2p/<peer id> (see `x0t cluster status`)".to_owned(),
        ));
    };
    tracing::info!(via = %peer, "presenting an anchor-join token");
    let answer = p2p
        .request(
            peer_id,
            vec![peer.clone()],
            ControlRequest::JoinAnchor {
                token: token.trim().to_owned(),
                anchor: anchor_record(raft_id, control.identity(), anchor),
            },
        )
        .await?;
    let members = match answer {
        ControlResponse::JoinAnchor(Ok(members)) => members,
        ControlResponse::JoinAnchor(Err(why)) | ControlResponse::Refused(why) => {
            return Err(refused(why));
        }
        other => return Err(refused(format!("unexpected answer {other:?}"))),
    };
    control.expect_peers(members.iter().filter_map(|n| n.peer_id.parse().ok()));
    tracing::info!("token accepted; joining as a learner, then voter");
    match p2p
        .request(
            peer_id,
            vec![peer.clone()],
            ControlRequest::AddAnchor {
                id: raft_id,
                node: anchor.clone(),
            },
        )
        .await?
    {
        ControlResponse::AddAnchor(Ok(())) => Ok(()),
        ControlResponse::AddAnchor(Err(why)) | ControlResponse::Refused(why) => Err(refused(why)),
        other => Err(refused(format!("unexpected answer {other:?}"))),
    }
}

async fn join_with_admin_key(
    control: &ControlPlane,
    api_url: &str,
    admin_key: &str,
    raft_id: u64,
    anchor: &AnchorNode,
) -> Result<(), NodeError> {
    let client = x0t_client::ApiClient::new(api_url, Some(admin_key.to_owned()))?;
    let cluster = client.cluster().await?;
    // Accept Raft traffic from the current members before we are in their membership.
    let peers = cluster
        .voters
        .values()
        .chain(cluster.learners.values())
        .filter_map(|n| n.peer_id.parse().ok());
    control.expect_peers(peers);
    tracing::info!(via = %api_url, "joining the cluster as a learner, then voter");
    client
        .add_anchor(&crate::api::AddAnchor {
            raft_id,
            node: anchor.clone(),
        })
        .await?;
    control
        .write(Command::Anchors(AnchorCommand::Add {
            anchor: anchor_record(raft_id, control.identity(), anchor),
        }))
        .await?;
    Ok(())
}
