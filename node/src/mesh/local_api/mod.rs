//! The member's local API (loopback): what `x0t status`, `x0t ping`, `x0t expose` and
//! `x0t connect` talk to, plus the mesh routes of the MAPE-K loop:
//! `GET /api/v1/meshes/{mesh}/events` (server-sent events, live), `…/slo[?window_s=N]`
//! (failover, detection, time to repair and onboarding, measured from its own events) and
//! `…/topology` (nodes and links with health, from the link states). Every route wants the
//! secret in the data dir's `agent-api.token` (0600), so only whoever may read the node's
//! files may drive it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

mod client;
mod mape;

use mape::{EventsFace, event_stream, events, slo, topology};

pub use client::LocalClient;

pub use x0t_types::api::{Topology, TopologyLink, TopologyNode};

use super::{LOCAL_API_TOKEN_FILE, Member, read};
use crate::NodeError;

/// Header carrying the local API secret.
pub const TOKEN_HEADER: &str = "x0t-agent-token";

/// One peer as `x0t status` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Its node id.
    pub node_id: String,
    /// Its overlay address.
    pub overlay_ip: String,
    /// Its device class.
    pub device_class: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// How frames reach it: `direct <udp endpoint>`, `via <relay short id>`, or `no path`.
    pub path: String,
    /// Last measured round trip over the data path, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Frame bytes sent to it.
    pub bytes_sent: u64,
    /// Frame bytes received from it.
    pub bytes_received: u64,
    /// Age of the live session in seconds (none: no session yet).
    pub session_age_s: Option<u64>,
    /// The KEM its sessions use.
    pub kem: String,
    /// Whether its link answers probes (false before the first answer, and after 800 ms of
    /// silence).
    #[serde(default)]
    pub link_alive: bool,
    /// Probes lost among the last 25, per thousand.
    #[serde(default)]
    pub loss_permille: u16,
}

/// What `GET /v1/status` answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberStatus {
    /// This node's id.
    pub node_id: String,
    /// Its mesh.
    pub mesh: String,
    /// Its overlay address.
    pub overlay_ip: String,
    /// The TUN device, if any (none: userspace mode).
    pub tun: Option<String>,
    /// Ledger index of the mesh state it holds.
    pub state_index: u64,
    /// The policy version it enforces (0: none, deny all).
    pub policy_version: u64,
    /// Anchors it currently reaches.
    pub anchors_reached: usize,
    /// Verified peers.
    pub peers: Vec<PeerStatus>,
    /// Services it exposes (name → local port).
    pub services: std::collections::BTreeMap<String, u16>,
    /// Drop and traffic counters.
    pub counters: std::collections::BTreeMap<String, u64>,
    /// How many nodes' link states this node holds (itself included).
    #[serde(default)]
    pub link_states: usize,
    /// Best paths to every node the link states reach.
    #[serde(default)]
    pub routes: Vec<RouteStatus>,
}

/// One computed route, as `x0t status --json` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RouteStatus {
    /// The destination's node id.
    pub destination: String,
    /// The first node on the way (the destination itself when direct).
    pub next_hop: String,
    /// The nodes after this one, ending with the destination.
    pub path: Vec<String>,
    /// The path's cost (microseconds: round trips with loss and hop penalties).
    pub cost_micros: u64,
}

/// Answer of `GET /api/v1/meshes/{mesh}/slo`: what this member measured of itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SloStatus {
    /// The member.
    pub node_id: String,
    /// Figures from its event log (failover, detection, time to repair).
    #[serde(flatten)]
    pub report: crate::events::SloReport,
    /// Onboarding: how long this run took to its first session.
    #[serde(flatten)]
    pub onboarding: super::Onboarding,
}

/// A link of the topology from its view in the link states.
pub(crate) fn topology_link(view: x0t_routing::LinkView) -> TopologyLink {
    let measures: Vec<_> = [view.a_to_b, view.b_to_a].into_iter().flatten().collect();
    let rtt = measures.iter().map(|m| m.rtt_micros).max();
    let loss = measures.iter().map(|m| m.loss_permille).max();
    let health = match (measures.len(), view.cost) {
        (1, _) => "one_sided",
        (_, None) => "down",
        _ if loss.unwrap_or(0) > 0 => "degraded",
        _ => "up",
    };
    TopologyLink {
        a: view.a.to_string(),
        b: view.b.to_string(),
        health: health.to_owned(),
        rtt_micros: rtt,
        loss_permille: loss,
        cost_micros: view.cost,
    }
}

/// Body of `POST /v1/ping`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PingRequest {
    /// Node id, short id or overlay address.
    pub node: String,
    /// How many pings.
    pub count: u32,
}

/// Answer of `POST /v1/ping`: each round trip in milliseconds (none: lost).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PingReport {
    /// The node pinged.
    pub node_id: String,
    /// Round trips.
    pub rtts_ms: Vec<Option<f64>>,
}

/// Body of `POST /v1/expose`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExposeRequest {
    /// The local TCP port to offer.
    pub port: u16,
    /// The name peers connect to (`<node>/<name>`).
    pub name: String,
}

/// Body of `POST /v1/connect`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConnectRequest {
    /// `<node>/<service>`.
    pub target: String,
    /// Local address to listen on.
    pub listen: SocketAddr,
}

/// Answer of `POST /v1/connect`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConnectAnswer {
    /// Where it listens.
    pub listen: SocketAddr,
}

#[derive(Clone)]
struct Api {
    member: Arc<Member>,
    token_hash: [u8; 32],
    /// Ends live streams when the member stops (else they would hold the server open).
    shutdown: watch::Receiver<bool>,
}

type ApiError = (StatusCode, Json<serde_json::Value>);

fn error(status: StatusCode, message: impl std::fmt::Display) -> ApiError {
    (
        status,
        Json(serde_json::json!({ "error": { "message": message.to_string() } })),
    )
}

impl Api {
    fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let given = headers
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if blake3::hash(given.as_bytes()).as_bytes() == &self.token_hash {
            Ok(())
        } else {
            Err(error(
                StatusCode::UNAUTHORIZED,
                format!("missing or wrong {TOKEN_HEADER} (see {LOCAL_API_TOKEN_FILE})"),
            ))
        }
    }
}

/// What forwarding the console's calls needs.
#[derive(Clone)]
struct ConsoleForwarding {
    http: reqwest::Client,
    data_dir: std::path::PathBuf,
    shutdown: watch::Receiver<bool>,
}

/// Sends `/api/…` calls that do not carry the agent's token (the browser console's, with an
/// admin's key) to an anchor; everything else is this member's own API.
async fn forward_console_calls(
    State(forwarding): State<ConsoleForwarding>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if request.uri().path().starts_with("/api/") && !request.headers().contains_key(TOKEN_HEADER) {
        let anchors = super::console_proxy::anchor_urls(&forwarding.data_dir);
        return super::console_proxy::forward(
            &forwarding.http,
            &anchors,
            request,
            forwarding.shutdown.clone(),
        )
        .await;
    }
    next.run(request).await
}

/// Starts the local API; returns its URL and the server task.
pub(crate) async fn serve(
    member: Arc<Member>,
    listen: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(String, tokio::task::JoinHandle<()>), NodeError> {
    let token_path = member.data_dir.join(LOCAL_API_TOKEN_FILE);
    let token = match x0t_crypto::keyfile::read_secret_file(&token_path, 256) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => {
            let mut secret = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret);
            let token = format!("x0tagt_{}", x0t_types::base32::encode(&secret));
            let _ = std::fs::remove_file(&token_path);
            x0t_crypto::keyfile::write_secret_file(&token_path, token.as_bytes(), false)?;
            token
        }
    };
    let member_dir = member.data_dir.clone();
    let api = Api {
        member,
        token_hash: *blake3::hash(token.as_bytes()).as_bytes(),
        shutdown: shutdown.clone(),
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| NodeError::Config(format!("binding the local API to {listen}: {e}")))?;
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| NodeError::Config(e.to_string()))?
    );
    let router = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/events", get(events))
        .route("/v1/ping", post(ping))
        .route("/v1/expose", post(expose))
        .route("/v1/connect", post(connect))
        .route("/api/v1/meshes/{mesh}/events", get(event_stream))
        .route("/api/v1/meshes/{mesh}/slo", get(slo))
        .route("/api/v1/meshes/{mesh}/topology", get(topology))
        .route_service(
            "/x0t.v1.MeshEvents/{*method}",
            x0t_proto::pb::mesh_events_server::MeshEventsServer::new(EventsFace {
                api: api.clone(),
            }),
        )
        .with_state(api)
        // The browser console, and its API calls forwarded to an anchor.
        .merge(crate::console::routes())
        .layer(axum::middleware::from_fn_with_state(
            ConsoleForwarding {
                http: super::console_proxy::client(),
                data_dir: member_dir,
                shutdown: shutdown.clone(),
            },
            forward_console_calls,
        ));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await;
    });
    Ok((url, task))
}

/// The member's status (also what tests read).
pub fn member_status(member: &Member) -> MemberStatus {
    let (state_index, policy_version) = {
        let trust = read(&member.trust);
        (trust.state_index(), trust.policy().1)
    };
    let mut peers: Vec<PeerStatus> = member
        .peers()
        .iter()
        .map(|peer| {
            let session = peer.session();
            let rtt = peer.rtt_micros.load(Ordering::Relaxed);
            let health = peer.link_health();
            PeerStatus {
                node_id: peer.cert.node_id.to_string(),
                overlay_ip: peer.cert.overlay_ip.to_string(),
                device_class: peer.cert.device_class.to_string(),
                tags: peer.cert.tags.iter().map(ToString::to_string).collect(),
                path: match (peer.via(), peer.direct()) {
                    (Some(hop), _) => format!("via {}", hop.short()),
                    (None, Some(endpoint)) => format!("direct {endpoint}"),
                    (None, None) => "no path".to_owned(),
                },
                rtt_ms: (rtt > 0).then(|| rtt as f64 / 1_000.0),
                bytes_sent: peer.bytes_sent.load(Ordering::Relaxed),
                bytes_received: peer.bytes_received.load(Ordering::Relaxed),
                session_age_s: session.as_ref().map(|s| s.created.elapsed().as_secs()),
                kem: super::session::kem_for(member.cert.pq_profile, peer.cert.pq_profile)
                    .to_string(),
                link_alive: health.alive,
                loss_permille: health.loss_permille,
            }
        })
        .collect();
    peers.sort_by(|a, b| a.overlay_ip.cmp(&b.overlay_ip));
    let (routes, link_states) = member.routes();
    MemberStatus {
        node_id: member.node_id.to_string(),
        mesh: member.mesh.to_string(),
        overlay_ip: member.cert.overlay_ip.to_string(),
        tun: member.tun_name.clone().filter(|_| member.tun.is_some()),
        state_index,
        policy_version,
        anchors_reached: read(&member.anchors_up).len(),
        peers,
        services: read(&member.services)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        counters: member
            .counters
            .snapshot()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        link_states,
        routes: routes
            .iter()
            .map(|(destination, route)| RouteStatus {
                destination: destination.to_string(),
                next_hop: route.next_hop.to_string(),
                path: route.path.iter().map(ToString::to_string).collect(),
                cost_micros: route.cost,
            })
            .collect(),
    }
}

async fn status(
    State(api): State<Api>,
    headers: HeaderMap,
) -> Result<Json<MemberStatus>, ApiError> {
    api.check(&headers)?;
    Ok(Json(member_status(&api.member)))
}

async fn ping(
    State(api): State<Api>,
    headers: HeaderMap,
    Json(body): Json<PingRequest>,
) -> Result<Json<PingReport>, ApiError> {
    api.check(&headers)?;
    let peer = api.member.find_peer(&body.node).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("no connected peer {:?}", body.node),
        )
    })?;
    let count = body.count.clamp(1, 100);
    let mut rtts = Vec::new();
    for i in 0..count {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let rtt = api
            .member
            .ping(&peer.cert.node_id, Duration::from_secs(2))
            .await;
        rtts.push(rtt.ok().map(|d| d.as_secs_f64() * 1_000.0));
    }
    Ok(Json(PingReport {
        node_id: peer.cert.node_id.to_string(),
        rtts_ms: rtts,
    }))
}

async fn expose(
    State(api): State<Api>,
    headers: HeaderMap,
    Json(body): Json<ExposeRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    api.check(&headers)?;
    super::forward::expose(&api.member, &body.name, body.port)
        .map_err(|why| error(StatusCode::BAD_REQUEST, why))?;
    Ok(Json(
        serde_json::json!({ "name": body.name, "port": body.port }),
    ))
}

async fn connect(
    State(api): State<Api>,
    headers: HeaderMap,
    Json(body): Json<ConnectRequest>,
) -> Result<Json<ConnectAnswer>, ApiError> {
    api.check(&headers)?;
    let listen = super::forward::connect(api.member.clone(), &body.target, body.listen)
        .await
        .map_err(|why| error(StatusCode::BAD_REQUEST, why))?;
    Ok(Json(ConnectAnswer { listen }))
}
