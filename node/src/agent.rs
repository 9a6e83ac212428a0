//! The agent side of enrollment: `x0t join` registers this device with a mesh and waits for
//! its certificate; `x0t status` reports what the agent holds and what the anchors say.
//!
//! The agent's state lives in its data directory next to its keys:
//! `agent.json` (mesh, node id, anchors' API URLs, state) and `node.cert` (the certificate
//! text, once approved). Neither is secret; the keys are (0600).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use x0t_crypto::{
    NodeCertificate, Registration, SigAlgorithm, SignedNodeCertificate, SigningKey, VerifyingKey,
};
use x0t_types::api::{NodeStatus, RegisterNode};
use x0t_types::{DeviceClass, MeshId, NodeId, NodeState, Tag, base32};

use crate::NodeError;
use crate::clock::now;
use crate::hex::unhex;
use crate::identity::{generate_identity, identity_key_path, load_identity};
use x0t_client::ApiClient;

/// The agent's state file.
pub const AGENT_FILE: &str = "agent.json";
/// The certificate file.
pub const CERTIFICATE_FILE: &str = "node.cert";

/// What `x0t join` needs.
#[derive(Clone, Debug)]
pub struct JoinOptions {
    /// The agent's data directory (keys, state).
    pub data_dir: PathBuf,
    /// An anchor's API URL.
    pub anchor: String,
    /// The mesh to join.
    pub mesh: MeshId,
    /// A join token (`x0tj1_…`).
    pub token: Option<String>,
    /// Tags to ask for.
    pub tags: Vec<Tag>,
    /// What kind of device this is.
    pub device_class: DeviceClass,
    /// Hostname to register [default: the system's].
    pub hostname: Option<String>,
    /// How long to wait for approval.
    pub timeout: Duration,
    /// How often to ask.
    pub poll_every: Duration,
}

/// What the agent remembers between runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    /// Its mesh.
    pub mesh: String,
    /// Its node id.
    pub node_id: String,
    /// API URLs of the anchors it knows.
    pub anchors: Vec<String>,
    /// Last state it saw.
    pub state: NodeState,
    /// Its overlay address, once approved.
    pub overlay_ip: Option<String>,
}

/// Progress of a join, for a progress indicator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinProgress {
    /// Registered (or found already registered); now in `state`.
    Registered {
        /// The node id.
        node_id: NodeId,
        /// Its state.
        state: NodeState,
    },
    /// Still waiting for an admin, this long so far.
    Waiting {
        /// Time since registering.
        elapsed: Duration,
    },
}

/// This machine's hostname, cleaned to what a registration accepts.
pub fn system_hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_else(|_| "node".to_owned());
    let cleaned: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(x0t_crypto::MAX_HOSTNAME_LEN)
        .collect();
    if cleaned.is_empty() {
        "node".to_owned()
    } else {
        cleaned
    }
}

fn identity(dir: &Path) -> Result<SigningKey, NodeError> {
    if identity_key_path(dir).exists() {
        load_identity(dir)
    } else {
        generate_identity(dir, SigAlgorithm::MlDsa65, false)
    }
}

/// Loads the agent's state, if it joined before.
pub fn load_state(dir: &Path) -> Result<Option<AgentState>, NodeError> {
    let path = dir.join(AGENT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| NodeError::Config(format!("{} is corrupt: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::Config(format!(
            "reading {}: {e}",
            path.display()
        ))),
    }
}

fn save(dir: &Path, state: &AgentState, certificate: Option<&str>) -> Result<(), NodeError> {
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| NodeError::Config(format!("writing {}: {e}", path.display())))
    };
    if let Some(certificate) = certificate {
        write(CERTIFICATE_FILE, format!("{certificate}\n").as_bytes())?;
    }
    let json = serde_json::to_vec_pretty(state).map_err(|e| NodeError::Config(e.to_string()))?;
    write(AGENT_FILE, &json)
}

/// The anchors file: their keys (the agent's trust roots until a signed mesh state updates
/// them) and how to reach them.
pub const ANCHORS_FILE: &str = "anchors.json";

/// Remembers the anchors an approved agent verified its certificate against.
pub fn save_anchors(dir: &Path, anchors: &[x0t_types::api::AnchorView]) -> Result<(), NodeError> {
    let json = serde_json::to_vec_pretty(anchors).map_err(|e| NodeError::Config(e.to_string()))?;
    let path = dir.join(ANCHORS_FILE);
    let tmp = dir.join(format!(".{ANCHORS_FILE}.tmp"));
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| NodeError::Config(format!("writing {}: {e}", path.display())))
}

/// The anchors remembered at enrollment (empty if the agent never got approved here).
pub fn load_anchors(dir: &Path) -> Result<Vec<x0t_types::api::AnchorView>, NodeError> {
    let path = dir.join(ANCHORS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| NodeError::Config(format!("{} is corrupt: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(NodeError::Config(format!(
            "reading {}: {e}",
            path.display()
        ))),
    }
}

/// The stored certificate, if any.
pub fn load_certificate(dir: &Path) -> Result<Option<SignedNodeCertificate>, NodeError> {
    match std::fs::read_to_string(dir.join(CERTIFICATE_FILE)) {
        Ok(text) => SignedNodeCertificate::from_text(&text)
            .map(Some)
            .map_err(Into::into),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::Config(format!(
            "reading {CERTIFICATE_FILE}: {e}"
        ))),
    }
}

/// Checks a certificate the way a peer will: signed by an anchor the cluster lists, for this
/// node and mesh, valid now.
pub fn check_certificate(
    text: &str,
    node_id: &NodeId,
    mesh: &MeshId,
    anchors: &[x0t_types::api::AnchorView],
) -> Result<NodeCertificate, NodeError> {
    let bad = |why: String| NodeError::Config(format!("the certificate is not valid: {why}"));
    let signed = SignedNodeCertificate::from_text(text)?;
    let issuer = signed.payload().issuer;
    let anchor = anchors
        .iter()
        .find(|a| a.node_id == issuer.to_string())
        .ok_or_else(|| bad(format!("issuer {} is not an anchor", issuer.short())))?;
    let algorithm = SigAlgorithm::from_code(anchor.algorithm)
        .ok_or_else(|| bad("anchor key of unknown algorithm".to_owned()))?;
    let key = VerifyingKey::from_bytes(algorithm, &unhex(&anchor.public_key).map_err(bad)?)?;
    if key.node_id() != issuer {
        return Err(bad("the anchor's key does not hash to its id".to_owned()));
    }
    let cert = signed.verify(&key, now())?.clone();
    if cert.node_id != *node_id || cert.mesh != *mesh {
        return Err(bad("it names another node or mesh".to_owned()));
    }
    Ok(cert)
}

/// A fresh libp2p peer id (ed25519), as bytes: for registrations built outside `join`
/// (benchmarks, tests).
pub fn fresh_peer_id() -> Vec<u8> {
    libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
        .to_bytes()
}

/// How the agent reaches an anchor: its HTTP API (`http://…`), or libp2p
/// (`/ip4/…/udp/…/quic-v1/p2p/<peer id>`), where only the enrollment calls are open to a node
/// that is not approved and the anchor sees which peer is asking.
enum AnchorLink {
    Http(ApiClient),
    P2p {
        p2p: crate::p2p::P2p,
        peer: libp2p::PeerId,
        addr: libp2p::Multiaddr,
        /// Stops the agent's swarm when the link is dropped.
        _stop: tokio::sync::watch::Sender<bool>,
    },
}

impl AnchorLink {
    async fn open(anchor: &str, keypair: libp2p::identity::Keypair) -> Result<Self, NodeError> {
        if anchor.starts_with("http://") || anchor.starts_with("https://") {
            return Ok(Self::Http(ApiClient::new(anchor, None)?));
        }
        let addr: libp2p::Multiaddr = anchor.parse().map_err(|_| {
            NodeError::Config(format!(
                "--anchor {anchor:?} is neither an http(s) URL nor a multiaddr"
            ))
        })?;
        let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
            return Err(NodeError::Config(
                "a multiaddr --anchor must end in /p2p/<peer id> (see `x0t cluster status`)"
                    .to_owned(),
            ));
        };
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let (p2p, _inbound) = crate::p2p::spawn(
            crate::p2p::P2pConfig {
                keypair,
                listen: Vec::new(),
                request_timeout: Duration::from_secs(10),
                connection_events: None,
            },
            shutdown,
        )
        .await?;
        Ok(Self::P2p {
            p2p,
            peer,
            addr,
            _stop: stop,
        })
    }

    async fn call(
        &self,
        request: crate::p2p::protocol::EnrollRequest,
    ) -> Result<crate::p2p::protocol::EnrollResponse, NodeError> {
        use crate::p2p::protocol::{ControlRequest, ControlResponse};
        let Self::P2p {
            p2p, peer, addr, ..
        } = self
        else {
            return Err(NodeError::Client("not a libp2p link".to_owned()));
        };
        match p2p
            .request(*peer, vec![addr.clone()], ControlRequest::Enroll(request))
            .await?
        {
            ControlResponse::Enroll(Ok(answer)) => Ok(answer),
            ControlResponse::Enroll(Err(e)) => Err(NodeError::Api {
                status: e.status,
                message: format!("{} ({})", e.message, e.code),
            }),
            ControlResponse::Refused(why) => Err(NodeError::Client(format!("refused: {why}"))),
            other => Err(NodeError::Client(format!("unexpected answer {other:?}"))),
        }
    }

    async fn register(&self, mesh: &str, body: RegisterNode) -> Result<NodeStatus, NodeError> {
        use crate::p2p::protocol::{EnrollRequest, EnrollResponse};
        match self {
            Self::Http(client) => Ok(client.register(mesh, &body).await?),
            Self::P2p { .. } => match self
                .call(EnrollRequest::Register {
                    mesh: mesh.to_owned(),
                    body,
                })
                .await?
            {
                EnrollResponse::Status(status) => Ok(status),
                other => Err(NodeError::Client(format!("unexpected answer {other:?}"))),
            },
        }
    }

    async fn status(&self, mesh: &str, id: &str) -> Result<NodeStatus, NodeError> {
        use crate::p2p::protocol::{EnrollRequest, EnrollResponse};
        match self {
            Self::Http(client) => Ok(client.node_status(mesh, id).await?),
            Self::P2p { .. } => match self
                .call(EnrollRequest::Status {
                    mesh: mesh.to_owned(),
                    id: id.to_owned(),
                })
                .await?
            {
                EnrollResponse::Status(status) => Ok(status),
                other => Err(NodeError::Client(format!("unexpected answer {other:?}"))),
            },
        }
    }

    async fn anchors(&self) -> Result<Vec<x0t_types::api::AnchorView>, NodeError> {
        use crate::p2p::protocol::{EnrollRequest, EnrollResponse};
        match self {
            Self::Http(client) => Ok(client.anchors().await?),
            Self::P2p { .. } => match self.call(EnrollRequest::Anchors).await? {
                EnrollResponse::Anchors(anchors) => Ok(anchors),
                other => Err(NodeError::Client(format!("unexpected answer {other:?}"))),
            },
        }
    }
}

/// Registers this device and waits until it is approved (or rejected, or the timeout
/// passes), reporting progress. On approval the certificate is verified against the
/// anchors' keys and stored.
pub async fn join(
    options: &JoinOptions,
    mut progress: impl FnMut(&JoinProgress),
) -> Result<(AgentState, Option<NodeCertificate>), NodeError> {
    std::fs::create_dir_all(&options.data_dir)
        .map_err(|e| NodeError::Config(format!("creating the data dir: {e}")))?;
    let identity = identity(&options.data_dir)?;
    let keypair = crate::identity::libp2p_keypair(&options.data_dir)?;
    let node_id = identity.node_id();
    let mut tags = options.tags.clone();
    tags.sort();
    tags.dedup();
    let registration = Registration {
        mesh: options.mesh.clone(),
        node_id,
        identity_key: identity.verifying_key().clone(),
        peer_id: keypair.public().to_peer_id().to_bytes(),
        hostname: options.hostname.clone().unwrap_or_else(system_hostname),
        device_class: options.device_class,
        requested_tags: tags,
        requested_at: now(),
    }
    .sign(&identity)?;
    let link = AnchorLink::open(&options.anchor, keypair).await?;
    let mesh = options.mesh.as_str();
    let first = match link
        .register(
            mesh,
            RegisterNode {
                registration: base32::encode(&registration.encode()),
                token: options.token.clone(),
            },
        )
        .await
    {
        Ok(status) => status,
        // Registered before (a second `x0t join`): pick up where it stands.
        Err(NodeError::Api {
            status: 409,
            ref message,
        }) if message.contains("node_exists") => link.status(mesh, &node_id.to_string()).await?,
        Err(e) => return Err(e),
    };
    let anchors: Vec<String> = link
        .anchors()
        .await
        .map(|list| list.into_iter().map(|a| a.api_url).collect())
        .unwrap_or_else(|_| vec![options.anchor.clone()]);
    progress(&JoinProgress::Registered {
        node_id,
        state: first.state,
    });
    let started = Instant::now();
    let mut status: NodeStatus = first;
    // What the agent remembers, whatever the outcome.
    let remember = |state: NodeState, overlay_ip: Option<String>, certificate: Option<&str>| {
        let remembered = AgentState {
            mesh: mesh.to_owned(),
            node_id: node_id.to_string(),
            anchors: anchors.clone(),
            state,
            overlay_ip,
        };
        save(&options.data_dir, &remembered, certificate).map(|()| remembered)
    };
    loop {
        match status.state {
            NodeState::Approved if status.certificate.is_some() => break,
            NodeState::Rejected | NodeState::Revoked => {
                remember(status.state, None, None)?;
                return Err(NodeError::Config(format!(
                    "the mesh {} this node: {}{}",
                    if status.state == NodeState::Rejected {
                        "rejected"
                    } else {
                        "revoked"
                    },
                    status.state_reason.unwrap_or_default(),
                    if status.state == NodeState::Revoked {
                        " (to re-enroll, move the data dir's identity.key aside and join again)"
                    } else {
                        ""
                    }
                )));
            }
            _ => {}
        }
        if started.elapsed() >= options.timeout {
            remember(status.state, None, None)?;
            return Err(NodeError::Config(format!(
                "still {} after {} s; an admin can approve it with `x0t nodes approve {}` \
                 (run `x0t join` again to keep waiting)",
                status.state,
                options.timeout.as_secs(),
                node_id.short()
            )));
        }
        tokio::time::sleep(options.poll_every).await;
        progress(&JoinProgress::Waiting {
            elapsed: started.elapsed(),
        });
        // Ask the anchor it came through, then every other known anchor in turn, so one
        // being down does not stall the wait.
        let mut last_error = match link.status(mesh, &node_id.to_string()).await {
            Ok(answer) => {
                status = answer;
                None
            }
            Err(e) => Some(e),
        };
        if last_error.is_some() {
            for url in &anchors {
                match ApiClient::new(url, None)?
                    .node_status(mesh, &node_id.to_string())
                    .await
                {
                    Ok(answer) => {
                        status = answer;
                        last_error = None;
                        break;
                    }
                    Err(e) => last_error = Some(e.into()),
                }
            }
        }
        if let Some(e) = last_error {
            tracing::debug!("no anchor answered: {e}");
        }
    }
    let certificate = status.certificate.unwrap_or_default();
    let anchor_views = link.anchors().await?;
    let cert = check_certificate(&certificate, &node_id, &options.mesh, &anchor_views)?;
    save_anchors(&options.data_dir, &anchor_views)?;
    let state = remember(
        NodeState::Approved,
        Some(cert.overlay_ip.to_string()),
        Some(&certificate),
    )?;
    Ok((state, Some(cert)))
}
