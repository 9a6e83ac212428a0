//! The mesh data plane: what an approved node runs (`x0t agent run`).
//!
//! - Zero trust on every connection: right after a libp2p connection opens, both ends
//!   exchange node certificates ([`MeshRequest::Hello`]) and check them offline against the
//!   anchor set ([`trust::Trust`]); until then a peer may ask nothing else, and a peer that
//!   does not present a valid, unexpired, unrevoked certificate for this mesh within
//!   [`HELLO_TIMEOUT`] is disconnected.
//! - Sessions: the hybrid handshake of [`session`], signed by both identities, over that
//!   connection; then IP packets travel as sealed frames over the node's own UDP socket
//!   ([`dataplane`]).
//! - The policy is enforced at both ends, per flow ([`packet`]).
//! - Anchors push each new signed mesh state (revocations, policy version); members forward
//!   it to their peers and poll an anchor as well; everything is cached on disk ([`cache`])
//!   so paths keep working without a control-plane quorum.

pub mod cache;
pub mod console_proxy;
pub mod dataplane;
pub mod forward;
pub mod local_api;
pub use x0t_wire::packet;
pub mod routing;
pub mod session;
pub mod trust;
pub mod udp;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use x0t_crypto::frame::RekeyPolicy;
use x0t_crypto::{NodeCertificate, SigAlgorithm, SigningKey, VerifyingKey};
use x0t_policy::{Endpoint, Protocol, ResolvedEndpoint};
use x0t_types::{MeshId, NodeId};

use crate::NodeError;
use crate::clock::now;
use crate::p2p::protocol::{
    ControlRequest, ControlResponse, HandshakeMessage, MAX_HELLO_ADDRS, MAX_HELLO_CERTIFICATE,
    MAX_PRESENCE, MAX_RELAYED_BYTES, MeshRequest, MeshResponse, PeerHello, PeerPresence,
    RelayedHandshake,
};
use crate::p2p::{ConnectionEvent, InboundRequest, P2p, P2pConfig};
use session::{Parties, Responding, Session};
use trust::Trust;

/// A peer's endpoint while no direct path to it is known.
const UNKNOWN_ENDPOINT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
/// A remote failure estimate this soon after a local onset is taken for the same failure.
const SAME_FAILURE: Duration = Duration::from_secs(1);
/// A path switch this soon after a link failure counts as that failure's failover.
const FAILOVER_WINDOW: Duration = Duration::from_secs(10);
/// How long a session with a member reached only through relays may stay silent.
const REMOTE_SESSION_SILENCE: Duration = Duration::from_secs(3);
/// How a relay's refusal starts when it could not pass a message on (worth another try,
/// perhaps along another route).
const RELAY_UNREACHABLE: &str = "relay could not pass it on";
/// How long a refused peer's connection stays open for the refusal to reach it.
const REFUSAL_GRACE: Duration = Duration::from_millis(200);
/// How long a new connection has to present a valid certificate.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a session replaced by a rekey still opens frames (packets in flight).
const OLD_SESSION_GRACE: Duration = Duration::from_secs(30);
/// How long a responder waits for the initiator's confirmation.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes a responder holds unconfirmed at once.
const MAX_RESPONDING: usize = 1_024;
/// Packets held for a peer while its session is being set up.
const MAX_QUEUED_PER_PEER: usize = 64;
/// Flows the data plane tracks at once.
const MAX_FLOWS: usize = 65_536;
/// File (in the data dir) describing the running member, for `x0t status` and friends.
pub const MEMBER_INFO_FILE: &str = "member.json";
/// File (in the data dir, 0600) holding the secret the local API wants.
pub const LOCAL_API_TOKEN_FILE: &str = "agent-api.token";

/// How to run a mesh member.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// The agent's data directory (keys, certificate, caches); it must have been approved
    /// (`x0t join`).
    pub data_dir: PathBuf,
    /// libp2p listen addresses.
    pub p2p_listen: Vec<Multiaddr>,
    /// UDP (frames) and TCP (userspace streams) address of the data plane; port 0 picks one.
    pub data_listen: SocketAddr,
    /// The local API (status, ping, expose, connect); loopback.
    pub api_listen: SocketAddr,
    /// A TUN device for the overlay address (root), or none (userspace mode).
    pub tun: Option<TunConfig>,
    /// When sessions get new keys.
    pub rekey: RekeyPolicy,
    /// How often to ask an anchor for a newer mesh state (besides its pushes).
    pub state_poll: Duration,
}

/// The TUN device.
#[derive(Clone, Debug)]
pub struct TunConfig {
    /// Interface name.
    pub name: String,
    /// Its MTU: the underlay's minus our overhead (IPv4 20 + UDP 8 + frame 84 + tag 16).
    pub mtu: u16,
}

impl Default for TunConfig {
    fn default() -> Self {
        Self {
            name: "x0t0".to_owned(),
            mtu: 1_372,
        }
    }
}

/// What a running member writes to `member.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Its node id.
    pub node_id: String,
    /// Its mesh.
    pub mesh: String,
    /// Its overlay address.
    pub overlay_ip: String,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Its libp2p addresses.
    pub p2p_addrs: Vec<String>,
    /// Its data-plane port (UDP frames, TCP streams).
    pub data_port: u16,
    /// The local API's base URL.
    pub api_url: String,
    /// Whether it runs a TUN device (and its name).
    pub tun: Option<String>,
    /// Process id.
    pub pid: u32,
}

impl MemberInfo {
    /// Reads `member.json` from a data directory.
    pub fn load(data_dir: &std::path::Path) -> Result<Self, NodeError> {
        crate::identity::read_runtime_info(
            &data_dir.join(MEMBER_INFO_FILE),
            " (is `x0t agent run` running on this data dir?)",
        )
    }
}

/// Frames and packets the data plane dropped, by reason, and what it carried.
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames that did not decode (bad magic, version, kind, lengths).
    pub frames_malformed: AtomicU64,
    /// Datagrams longer than the largest frame accepted (`dataplane::MAX_DATAGRAM`).
    pub frames_oversized: AtomicU64,
    /// Frames whose counter was seen before or fell behind the window.
    pub frames_replayed: AtomicU64,
    /// Frames that failed authentication (forged, altered, wrong key).
    pub frames_forged: AtomicU64,
    /// Frames for a session index we do not hold.
    pub frames_unknown_session: AtomicU64,
    /// Frames for another node not relayed: from a stranger's address, for or from a node
    /// not verified here, no route, no hops left.
    pub frames_not_for_us: AtomicU64,
    /// Frames for another node passed on towards it.
    pub frames_relayed: AtomicU64,
    /// Packets refused by the policy (either end).
    pub packets_denied: AtomicU64,
    /// Packets whose inner source address was not the sending peer's.
    pub packets_spoofed: AtomicU64,
    /// Packets for an address no verified peer holds.
    pub packets_no_route: AtomicU64,
    /// Packets dropped while a session could not be set up.
    pub packets_no_session: AtomicU64,
    /// Sessions set up (either end, rekeys included): a session that survives a failover
    /// does not move it.
    pub sessions_up: AtomicU64,
    /// Frames sent.
    pub frames_sent: AtomicU64,
    /// Frames received and opened.
    pub frames_received: AtomicU64,
    /// Links to peers found dead (no probe answered within the monitor's limit).
    pub links_down: AtomicU64,
    /// Links to peers found alive again after being dead.
    pub links_up_again: AtomicU64,
    /// Link states refused (unreadable, unverifiable, revoked origin, other mesh).
    pub link_states_refused: AtomicU64,
    /// Link states older than or equal to the one held (replays, duplicates).
    pub link_states_stale: AtomicU64,
    /// Link-state sends skipped because too many were in flight.
    pub link_states_unsent: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as a name → value map.
    pub fn snapshot(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("frames_malformed", get(&self.frames_malformed)),
            ("frames_oversized", get(&self.frames_oversized)),
            ("frames_replayed", get(&self.frames_replayed)),
            ("frames_forged", get(&self.frames_forged)),
            ("frames_unknown_session", get(&self.frames_unknown_session)),
            ("frames_not_for_us", get(&self.frames_not_for_us)),
            ("frames_relayed", get(&self.frames_relayed)),
            ("packets_denied", get(&self.packets_denied)),
            ("packets_spoofed", get(&self.packets_spoofed)),
            ("packets_no_route", get(&self.packets_no_route)),
            ("packets_no_session", get(&self.packets_no_session)),
            ("sessions_up", get(&self.sessions_up)),
            ("frames_sent", get(&self.frames_sent)),
            ("frames_received", get(&self.frames_received)),
            ("links_down", get(&self.links_down)),
            ("links_up_again", get(&self.links_up_again)),
            ("link_states_refused", get(&self.link_states_refused)),
            ("link_states_stale", get(&self.link_states_stale)),
            ("link_states_unsent", get(&self.link_states_unsent)),
        ]
        .into_iter()
        .collect()
    }
}

/// Why a handshake attempt failed.
enum Handshake {
    /// The request did not get through (worth another try).
    Transport(String),
    /// The peer (or the crypto) said no.
    Refused(String),
}

/// A verified peer: its certificate, where its data plane listens, its sessions.
pub struct Peer {
    /// Its verified certificate.
    pub cert: NodeCertificate,
    /// Its libp2p peer id.
    pub peer_id: PeerId,
    /// Where its frames go directly (learned from the connection, updated by authenticated
    /// frames that came without relays); unspecified for a member known only through link
    /// states (no direct path, reached through relays).
    pub endpoint: Mutex<SocketAddr>,
    /// The neighbour frames to it go through, when the route in use is not direct.
    via: RwLock<Option<NodeId>>,
    /// When it was verified.
    pub verified_at: Instant,
    /// The session packets to it are sealed with.
    send: RwLock<Option<Arc<Session>>>,
    /// A session replaced by a rekey, still accepted for a while.
    previous: Mutex<Option<(Arc<Session>, Instant)>>,
    /// One handshake at a time.
    handshake: tokio::sync::Mutex<()>,
    /// Packets waiting for a session.
    queue: Mutex<Vec<Vec<u8>>>,
    /// Its endpoint as the policy sees it, resolved against policy version `.0`.
    resolved: RwLock<(u64, ResolvedEndpoint)>,
    /// Bytes of frames sent to it / received from it.
    pub bytes_sent: AtomicU64,
    /// See `bytes_sent`.
    pub bytes_received: AtomicU64,
    /// Last measured round trip (µs), 0 if none yet.
    pub rtt_micros: AtomicU64,
    /// Whether a handshake is being set up in the background.
    connecting: AtomicBool,
    /// The peer process's instance (from its hello).
    instance: AtomicU64,
    /// Probes over the data path: round trip, loss, liveness.
    monitor: Mutex<x0t_routing::LinkMonitor>,
    /// When an authentic frame last came from it (the member's clock, µs).
    last_heard_us: AtomicU64,
    /// While its link is dead: when the last reply came before it died (µs; 0 when up).
    down_since_us: AtomicU64,
}

impl Peer {
    fn new(cert: NodeCertificate, peer_id: PeerId, endpoint: SocketAddr, instance: u64) -> Self {
        Self {
            peer_id,
            endpoint: Mutex::new(endpoint),
            via: RwLock::new(None),
            verified_at: Instant::now(),
            send: RwLock::new(None),
            previous: Mutex::new(None),
            handshake: tokio::sync::Mutex::new(()),
            queue: Mutex::new(Vec::new()),
            resolved: RwLock::new((u64::MAX, ResolvedEndpoint::default())),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            rtt_micros: AtomicU64::new(0),
            connecting: AtomicBool::new(false),
            instance: AtomicU64::new(instance),
            monitor: Mutex::new(x0t_routing::LinkMonitor::new(
                x0t_routing::MonitorConfig::default(),
            )),
            last_heard_us: AtomicU64::new(0),
            down_since_us: AtomicU64::new(0),
            cert,
        }
    }

    /// Where frames reach it directly, if this node has ever had a direct path to it.
    pub fn direct(&self) -> Option<SocketAddr> {
        let endpoint = *lock(&self.endpoint);
        (!endpoint.ip().is_unspecified()).then_some(endpoint)
    }

    /// The neighbour its frames are relayed through (`None`: sent directly).
    pub fn via(&self) -> Option<NodeId> {
        *read(&self.via)
    }

    /// Its link's health as the probes measured it.
    pub fn link_health(&self) -> x0t_routing::LinkHealth {
        lock(&self.monitor).health()
    }

    /// The live session packets are sealed with.
    pub fn session(&self) -> Option<Arc<Session>> {
        self.send.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// How long this member took to get connected, this run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Onboarding {
    /// From its approval (the certificate) to its first session: the whole onboarding when
    /// the agent runs right after `x0t join`; for an agent approved long ago and restarted,
    /// mostly the time it was not running.
    pub approved_to_first_session_ms: Option<u64>,
    /// From this run's start to its first session: the data plane's part.
    pub started_to_first_session_ms: Option<u64>,
}

/// A running member's shared state.
pub struct Member {
    mesh: MeshId,
    identity: Arc<SigningKey>,
    node_id: NodeId,
    cert: NodeCertificate,
    cert_bytes: Vec<u8>,
    me: Endpoint,
    trust: RwLock<Trust>,
    p2p: P2p,
    p2p_addrs: Vec<String>,
    data_port: u16,
    data_dir: PathBuf,
    rekey: RekeyPolicy,
    /// Anchors' peer ids and addresses (from enrollment and the anchors file).
    anchors: RwLock<HashMap<PeerId, Vec<Multiaddr>>>,
    /// Anchors we said hello to on the current connection.
    anchors_up: RwLock<HashSet<PeerId>>,
    peers: RwLock<HashMap<NodeId, Arc<Peer>>>,
    by_peer_id: RwLock<HashMap<PeerId, NodeId>>,
    by_ip: RwLock<HashMap<Ipv4Addr, NodeId>>,
    /// Direct endpoints of neighbours: relays forward only what a neighbour sent.
    by_endpoint: RwLock<HashMap<SocketAddr, NodeId>>,
    sessions: RwLock<HashMap<u32, Arc<Session>>>,
    responding: Mutex<HashMap<u32, (NodeId, Responding, Instant)>>,
    /// Where members can be reached (anchors' presence lists, cached).
    known: RwLock<HashMap<NodeId, PeerPresence>>,
    flows: Mutex<packet::FlowTable>,
    udp: Arc<udp::UdpLink>,
    /// Link states and routes.
    routing: Mutex<routing::RoutingState>,
    /// What the MAPE-K loop saw and did.
    events: Mutex<crate::events::EventLog>,
    /// The newest event's id, for live readers.
    events_changed: watch::Sender<u64>,
    /// A link went down or came back since the last link state: advertise now, not at the
    /// next second.
    links_changed: AtomicBool,
    tun: Option<Arc<tun_rs::AsyncDevice>>,
    tun_name: Option<String>,
    /// What the data plane dropped and carried.
    pub counters: Counters,
    pings: Mutex<HashMap<u64, (Instant, tokio::sync::oneshot::Sender<Duration>)>>,
    /// Services exposed to the mesh (userspace mode): name → local port.
    services: RwLock<HashMap<String, u16>>,
    started: Instant,
    /// Wall-clock ms of the start.
    started_at_ms: u64,
    /// Random per process start (see [`PeerHello::instance`]).
    instance: u64,
    /// When the most recent failure of one of this node's links began (µs of
    /// [`Member::micros`], 0: none): the last reply on it. Path switches soon after it are
    /// its failover.
    last_failure_us: AtomicU64,
    /// The same for a link another member reported dead: its state's arrival less the
    /// monitor's silence threshold (a lower bound of the failure's age, used only when no
    /// link of this node's failed recently).
    pub(crate) last_remote_failure_us: AtomicU64,
    /// Wall-clock ms of the first session this run (0: none yet): onboarding's end.
    first_session_ms: AtomicU64,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The IP of a multiaddr, if it has one.
pub(crate) fn multiaddr_ip(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        libp2p::multiaddr::Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// Runs a mesh member until `shutdown` turns true.
pub async fn run_member(
    config: MemberConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    let dir = &config.data_dir;
    let not_ready = |why: &str| {
        NodeError::Config(format!(
            "{} is not an approved node's data dir: {why} (run `x0t join` first)",
            dir.display()
        ))
    };
    let state = crate::agent::load_state(dir)?.ok_or_else(|| not_ready("no agent.json"))?;
    let signed = crate::agent::load_certificate(dir)?.ok_or_else(|| not_ready("no certificate"))?;
    let anchor_views = crate::agent::load_anchors(dir)?;
    if anchor_views.is_empty() {
        return Err(not_ready("no anchors.json"));
    }
    let identity = Arc::new(crate::identity::load_identity(dir)?);
    let keypair = crate::identity::libp2p_keypair(dir)?;
    let mesh = MeshId::new(&state.mesh).map_err(|e| NodeError::Config(e.to_string()))?;
    let anchor_keys: Vec<VerifyingKey> = anchor_views
        .iter()
        .filter_map(|a| {
            let alg = SigAlgorithm::from_code(a.algorithm)?;
            VerifyingKey::from_bytes(alg, &crate::hex::unhex(&a.public_key).ok()?).ok()
        })
        .collect();
    let mut trust = Trust::new(mesh.clone(), anchor_keys);
    let cert_bytes = signed.encode();
    let cert = trust
        .verify_certificate(
            &cert_bytes,
            Some(&keypair.public().to_peer_id().to_bytes()),
            now(),
        )
        .map_err(|why| NodeError::Config(format!("this node's own certificate: {why}")))?;
    if cert.node_id != identity.node_id() {
        return Err(not_ready("the certificate names another node"));
    }
    cache::load(dir, &mut trust);
    if trust.is_revoked(&cert.node_id) {
        return Err(NodeError::Config(
            "this node is revoked (per the cached mesh state); re-enroll with a new key".to_owned(),
        ));
    }

    let (udp, streams, data_port) = bind_data_port(config.data_listen).await?;

    let tun = match &config.tun {
        Some(tun) => Some(Arc::new(dataplane::open_tun(tun, cert.overlay_ip)?)),
        None => None,
    };

    let (connection_events, mut connections) = mpsc::channel(1024);
    let (p2p, inbound) = crate::p2p::spawn(
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
        .map(ToString::to_string)
        .collect();

    let anchors = anchor_views
        .iter()
        .filter_map(|a| {
            let peer: PeerId = a.peer_id.parse().ok()?;
            Some((
                peer,
                a.addrs.iter().filter_map(|s| s.parse().ok()).collect(),
            ))
        })
        .collect();
    let me = Endpoint::node(cert.node_id, cert.device_class, cert.tags.iter().cloned());
    let member = Arc::new(Member {
        mesh,
        node_id: identity.node_id(),
        identity,
        me,
        cert_bytes,
        trust: RwLock::new(trust),
        p2p: p2p.clone(),
        p2p_addrs: p2p_addrs.clone(),
        data_port,
        data_dir: dir.clone(),
        rekey: config.rekey,
        anchors: RwLock::new(anchors),
        anchors_up: RwLock::default(),
        peers: RwLock::default(),
        by_peer_id: RwLock::default(),
        by_ip: RwLock::default(),
        by_endpoint: RwLock::default(),
        sessions: RwLock::default(),
        responding: Mutex::default(),
        known: RwLock::new(cache::load_peers(dir)),
        flows: Mutex::new(packet::FlowTable::new(MAX_FLOWS)),
        udp: Arc::new(udp),
        routing: Mutex::default(),
        events: Mutex::default(),
        events_changed: watch::Sender::new(0),
        links_changed: AtomicBool::new(false),
        tun_name: config.tun.as_ref().map(|t| t.name.clone()),
        tun,
        counters: Counters::default(),
        pings: Mutex::default(),
        services: RwLock::default(),
        started: Instant::now(),
        started_at_ms: now().as_millis(),
        instance: rand_core::OsRng.next_u64(),
        last_failure_us: AtomicU64::new(0),
        last_remote_failure_us: AtomicU64::new(0),
        first_session_ms: AtomicU64::new(0),
        cert,
    });

    member.clone().serve_requests(inbound);
    // The packet paths end with the member (in one process, tests run several members: a
    // stopped one must stop answering).
    tokio::spawn(until_shutdown(
        member.clone().receive_frames(),
        shutdown.clone(),
    ));
    if member.tun.is_some() {
        tokio::spawn(until_shutdown(member.clone().read_tun(), shutdown.clone()));
    }
    tokio::spawn(forward::serve_streams(member.clone(), streams));
    {
        let member = member.clone();
        tokio::spawn(async move {
            while let Some(event) = connections.recv().await {
                member.clone().on_connection(event);
            }
        });
    }
    tokio::spawn(member.clone().maintain(config.state_poll, shutdown.clone()));
    tokio::spawn(member.clone().probe_links(shutdown.clone()));
    let (api_url, api) =
        local_api::serve(member.clone(), config.api_listen, shutdown.clone()).await?;

    let info = MemberInfo {
        node_id: member.node_id.to_string(),
        mesh: member.mesh.to_string(),
        overlay_ip: member.cert.overlay_ip.to_string(),
        peer_id: p2p.local_peer_id().to_string(),
        p2p_addrs,
        data_port,
        api_url: api_url.clone(),
        tun: member.tun_name.clone().filter(|_| member.tun.is_some()),
        pid: std::process::id(),
    };
    let json = serde_json::to_vec_pretty(&info).map_err(|e| NodeError::Config(e.to_string()))?;
    std::fs::write(dir.join(MEMBER_INFO_FILE), json)
        .map_err(|e| NodeError::Config(format!("writing {MEMBER_INFO_FILE}: {e}")))?;
    tracing::info!(
        node = %member.node_id.short(),
        overlay = %member.cert.overlay_ip,
        data_port,
        %api_url,
        "mesh member ready"
    );
    // Reach the anchors and the known members at once, not at the first tick.
    member.clone().reach_out();

    let _ = shutdown.wait_for(|stop| *stop).await;
    tracing::info!("mesh member shutting down");
    let _ = api.await;
    let _ = std::fs::remove_file(dir.join(MEMBER_INFO_FILE));
    Ok(())
}

/// Runs `task` until it ends or `shutdown` turns true.
async fn until_shutdown(
    task: impl std::future::Future<Output = ()>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::select! {
        () = task => {}
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
}

/// Binds the data port: UDP for frames and TCP for streams, on the same number. With port 0
/// the UDP socket picks one, which another process may hold for TCP: then try another.
async fn bind_data_port(
    listen: SocketAddr,
) -> Result<(udp::UdpLink, tokio::net::TcpListener, u16), NodeError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let udp = udp::UdpLink::bind(listen)?;
        let port = udp
            .local_addr()
            .map_err(|e| NodeError::Config(e.to_string()))?
            .port();
        match tokio::net::TcpListener::bind(SocketAddr::new(listen.ip(), port)).await {
            Ok(streams) => return Ok((udp, streams, port)),
            Err(e) if listen.port() != 0 || attempts >= 16 => {
                return Err(NodeError::Config(format!(
                    "binding TCP data port {port}: {e}"
                )));
            }
            Err(_) => continue,
        }
    }
}

impl Member {
    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// This node's certificate.
    pub fn certificate(&self) -> &NodeCertificate {
        &self.cert
    }

    /// The verified peers: neighbours, and members met only through relays.
    pub fn peers(&self) -> Vec<Arc<Peer>> {
        read(&self.peers).values().cloned().collect()
    }

    /// The peers this node has a direct path to (verified on a libp2p connection).
    pub fn neighbours(&self) -> Vec<Arc<Peer>> {
        read(&self.peers)
            .values()
            .filter(|p| p.direct().is_some())
            .cloned()
            .collect()
    }

    /// Moves `peer`'s direct endpoint.
    fn set_endpoint(&self, peer: &Peer, endpoint: SocketAddr) {
        let old = std::mem::replace(&mut *lock(&peer.endpoint), endpoint);
        if old != endpoint {
            let mut by_endpoint = write(&self.by_endpoint);
            if by_endpoint.get(&old) == Some(&peer.cert.node_id) {
                by_endpoint.remove(&old);
            }
            by_endpoint.insert(endpoint, peer.cert.node_id);
        }
    }

    /// The peer for a member whose certificate was verified without a connection (its
    /// link state, or a handshake relayed to this node): known, reachable through relays.
    pub(crate) fn remember_remote(&self, cert: &NodeCertificate) -> Option<Arc<Peer>> {
        if let Some(peer) = read(&self.peers).get(&cert.node_id) {
            return Some(peer.clone());
        }
        if cert.node_id == self.node_id {
            return None;
        }
        let peer_id = PeerId::from_bytes(&cert.peer_id).ok()?;
        let peer = write(&self.peers)
            .entry(cert.node_id)
            .or_insert_with(|| Arc::new(Peer::new(cert.clone(), peer_id, UNKNOWN_ENDPOINT, 0)))
            .clone();
        write(&self.by_ip).insert(cert.overlay_ip, cert.node_id);
        Some(peer)
    }

    /// Where frames for `peer` go now: the direct endpoint of the next hop of the route in
    /// use (the peer itself when direct), or its own direct endpoint when there is no route
    /// (yet).
    pub(crate) fn data_endpoint(&self, peer: &Peer) -> Option<SocketAddr> {
        if let Some(via) = peer.via()
            && let Some(hop) = read(&self.peers).get(&via)
            && let Some(endpoint) = hop.direct()
        {
            return Some(endpoint);
        }
        peer.direct()
    }

    fn hello(&self) -> PeerHello {
        PeerHello {
            certificate: self.cert_bytes.clone(),
            data_port: self.data_port,
            listen: self
                .p2p_addrs
                .iter()
                .take(MAX_HELLO_ADDRS)
                .cloned()
                .collect(),
            state_index: read(&self.trust).state_index(),
            instance: self.instance,
        }
    }

    fn is_anchor(&self, peer: &PeerId) -> bool {
        read(&self.anchors).contains_key(peer)
    }

    fn parties<'a>(&'a self, peer: &'a NodeCertificate) -> Parties<'a> {
        Parties {
            mesh: &self.mesh,
            identity: &self.identity,
            profile: self.cert.pq_profile,
            peer,
        }
    }

    fn verified(&self, peer: &PeerId) -> Option<Arc<Peer>> {
        let id = *read(&self.by_peer_id).get(peer)?;
        read(&self.peers).get(&id).cloned()
    }

    /// A connection opened or closed.
    fn on_connection(self: Arc<Self>, event: ConnectionEvent) {
        match event {
            ConnectionEvent::Connected { peer, remote } => {
                if self.is_anchor(&peer) {
                    tokio::spawn(async move { self.greet_anchor(peer).await });
                    return;
                }
                tokio::spawn(async move {
                    if let Err(why) = self.greet(peer, Some(remote)).await {
                        tracing::debug!(%peer, %why, "hello failed");
                    }
                    // Whoever did not prove itself in time is cut off.
                    tokio::time::sleep(HELLO_TIMEOUT).await;
                    if !self.is_anchor(&peer) && self.verified(&peer).is_none() {
                        tracing::info!(%peer, "no valid certificate in time; disconnecting");
                        self.p2p.disconnect(peer).await;
                    }
                });
            }
            ConnectionEvent::Disconnected { peer } => {
                write(&self.anchors_up).remove(&peer);
                // Sessions survive a libp2p reconnect: frames go over UDP.
            }
        }
    }

    /// Says hello to a member (verifying its answer) unless it is verified already.
    async fn greet(
        self: &Arc<Self>,
        peer: PeerId,
        remote: Option<Multiaddr>,
    ) -> Result<Arc<Peer>, String> {
        if let Some(verified) = self.verified(&peer) {
            return Ok(verified);
        }
        let addrs = read(&self.known)
            .values()
            .filter(|p| p.peer_id == peer.to_string())
            .flat_map(|p| p.addrs.iter().filter_map(|a| a.parse().ok()))
            .collect();
        let answer = self
            .p2p
            .request(
                peer,
                addrs,
                ControlRequest::Mesh(MeshRequest::Hello(self.hello())),
            )
            .await
            .map_err(|e| e.to_string())?;
        match answer {
            ControlResponse::Mesh(Ok(MeshResponse::Hello(hello))) => {
                self.accept_hello(peer, remote.as_ref(), hello)
            }
            ControlResponse::Mesh(Err(why)) | ControlResponse::Refused(why) => Err(why),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    /// Verifies a member's hello and records it as a peer.
    fn accept_hello(
        self: &Arc<Self>,
        peer: PeerId,
        remote: Option<&Multiaddr>,
        hello: PeerHello,
    ) -> Result<Arc<Peer>, String> {
        if hello.certificate.len() > MAX_HELLO_CERTIFICATE {
            return Err("certificate too large".to_owned());
        }
        let cert =
            read(&self.trust).verify_certificate(&hello.certificate, Some(&peer.to_bytes()), now());
        let cert = match cert {
            Ok(cert) => cert,
            Err(why) => {
                tracing::info!(%peer, %why, "refusing a peer");
                self.disconnect_after_answer(peer);
                return Err(why);
            }
        };
        if cert.node_id == self.node_id {
            return Err("that is this node's own certificate".to_owned());
        }
        let ip = remote
            .and_then(multiaddr_ip)
            .or_else(|| {
                read(&self.known)
                    .get(&cert.node_id)
                    .and_then(|p| p.addrs.first()?.parse::<Multiaddr>().ok())
                    .and_then(|a| multiaddr_ip(&a))
            })
            .ok_or("cannot tell the peer's address")?;
        let endpoint = SocketAddr::new(ip, hello.data_port);
        let existing = read(&self.peers).get(&cert.node_id).cloned();
        if let Some(existing) = existing
            && existing.peer_id == peer
        {
            self.set_endpoint(&existing, endpoint);
            // A member first met through relays is verified on a connection now.
            write(&self.by_peer_id).insert(peer, cert.node_id);
            let before = existing.instance.swap(hello.instance, Ordering::AcqRel);
            // 0: met through relays, its instance unknown.
            if before != 0 && before != hello.instance {
                // The peer restarted: the sessions we hold with it are gone on its side.
                *write(&existing.send) = None;
                *lock(&existing.previous) = None;
                write(&self.sessions).retain(|_, s| s.peer != cert.node_id);
                tracing::info!(node = %cert.node_id.short(), "peer restarted; its sessions are reset");
                let p2p = self.p2p.clone();
                tokio::spawn(async move { p2p.close_older_connections(peer).await });
            }
            return Ok(existing);
        }
        let node = cert.node_id;
        let overlay = cert.overlay_ip;
        let peer_state = Arc::new(Peer::new(cert, peer, endpoint, hello.instance));
        write(&self.peers).insert(node, peer_state.clone());
        write(&self.by_peer_id).insert(peer, node);
        write(&self.by_ip).insert(overlay, node);
        write(&self.by_endpoint).insert(endpoint, node);
        tracing::info!(%peer, node = %node.short(), %overlay, %endpoint, "peer verified");
        if self.node_id < node {
            // Once the peer had time to take this node's hello too (a handshake before that
            // would be refused).
            let (this, peer) = (self.clone(), peer_state.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(250)).await;
                this.open_session_soon(peer);
            });
        }
        self.event(
            crate::events::EventKind::PeerVerified,
            Some(&node),
            format!("overlay {overlay}, data endpoint {endpoint}"),
        );
        Ok(peer_state)
    }

    /// Says hello to an anchor and takes the mesh state it answers with.
    async fn greet_anchor(self: &Arc<Self>, anchor: PeerId) {
        if read(&self.anchors_up).contains(&anchor) {
            return;
        }
        let addrs = read(&self.anchors)
            .get(&anchor)
            .cloned()
            .unwrap_or_default();
        let request = ControlRequest::Mesh(MeshRequest::Hello(self.hello()));
        match self.p2p.request(anchor, addrs, request).await {
            Ok(ControlResponse::Mesh(Ok(MeshResponse::State(Some(state))))) => {
                write(&self.anchors_up).insert(anchor);
                self.take_state(&state, Some(anchor)).await;
            }
            Ok(ControlResponse::Mesh(Err(why))) => {
                tracing::warn!(%anchor, %why, "the anchor refused this node");
            }
            Ok(other) => tracing::debug!(%anchor, ?other, "unexpected anchor answer"),
            Err(e) => tracing::debug!(%anchor, %e, "anchor unreachable"),
        }
    }

    /// Takes a signed state (from an anchor's push or answer, or a peer's forward): newer
    /// ones replace the held one, revoked peers are cut off, a new policy is fetched, and
    /// the state is cached and forwarded to the other peers.
    async fn take_state(self: &Arc<Self>, bytes: &[u8], from: Option<PeerId>) {
        let change = write(&self.trust).accept_state(bytes);
        let change = match change {
            Ok(Some(change)) => change,
            Ok(None) => return,
            Err(why) => {
                tracing::warn!(?from, %why, "refusing a mesh state");
                return;
            }
        };
        tracing::info!(
            index = read(&self.trust).state_index(),
            revoked = change.newly_revoked.len(),
            policy = ?change.policy_wanted,
            "new mesh state"
        );
        for node in &change.newly_revoked {
            if *node == self.node_id {
                tracing::error!("this node has been revoked; dropping every session");
                for peer in self.peers() {
                    self.drop_peer(&peer.cert.node_id, "this node was revoked")
                        .await;
                }
            } else {
                self.drop_peer(node, "revoked").await;
            }
        }
        cache::save_state(&self.data_dir, bytes);
        // Gossip: pass it on to every verified peer but the one it came from.
        for peer in self.neighbours() {
            if Some(peer.peer_id) == from {
                continue;
            }
            let p2p = self.p2p.clone();
            let state = bytes.to_vec();
            tokio::spawn(async move {
                let request = ControlRequest::Mesh(MeshRequest::StateUpdate { state });
                let _ = p2p.request(peer.peer_id, Vec::new(), request).await;
            });
        }
        if let Some(version) = change.policy_wanted {
            self.fetch_policy(version, from).await;
        }
    }

    /// Gets the policy document of `version` from an anchor (or the peer that sent the
    /// state), checks it against the signed digest, and installs it.
    async fn fetch_policy(self: &Arc<Self>, version: u64, hint: Option<PeerId>) {
        let mut sources: Vec<PeerId> = hint.into_iter().collect();
        sources.extend(read(&self.anchors_up).iter().copied());
        sources.extend(self.neighbours().iter().map(|p| p.peer_id));
        sources.dedup();
        for source in sources {
            let request = ControlRequest::Mesh(MeshRequest::Policy { version });
            let Ok(ControlResponse::Mesh(Ok(MeshResponse::Policy(document)))) =
                self.p2p.request(source, Vec::new(), request).await
            else {
                continue;
            };
            let accepted = write(&self.trust).accept_policy(version, &document);
            match accepted {
                Ok(changed) => {
                    if changed {
                        // Every flow is decided again under the new policy.
                        lock(&self.flows).clear();
                        cache::save_policy(&self.data_dir, version, &document);
                        tracing::info!(version, "policy installed");
                    }
                    return;
                }
                Err(why) => tracing::warn!(%source, %why, "refusing a policy document"),
            }
        }
        tracing::warn!(
            version,
            "no one could provide the policy in force; keeping the old one"
        );
    }

    /// Forgets a peer: its sessions, flows and connection.
    async fn drop_peer(&self, node: &NodeId, why: &str) {
        let Some(peer) = write(&self.peers).remove(node) else {
            return;
        };
        write(&self.by_peer_id).remove(&peer.peer_id);
        write(&self.by_ip).remove(&peer.cert.overlay_ip);
        if let Some(endpoint) = peer.direct() {
            write(&self.by_endpoint).remove(&endpoint);
        }
        write(&self.sessions).retain(|_, s| s.peer != *node);
        lock(&self.responding).retain(|_, (n, _, _)| n != node);
        lock(&self.flows).forget_address(peer.cert.overlay_ip);
        *write(&peer.send) = None;
        self.forget_links(node);
        self.event(
            crate::events::EventKind::PeerDropped,
            Some(node),
            why.to_owned(),
        );
        tracing::info!(node = %node.short(), why, "peer dropped; sessions torn down");
        self.p2p.disconnect(peer.peer_id).await;
    }

    /// Cuts a refused peer off once the refusal (with its reason) had time to reach it.
    fn disconnect_after_answer(&self, peer: PeerId) {
        let p2p = self.p2p.clone();
        tokio::spawn(async move {
            tokio::time::sleep(REFUSAL_GRACE).await;
            p2p.disconnect(peer).await;
        });
    }

    fn new_index(&self) -> u32 {
        loop {
            let index = rand_core::OsRng.next_u32();
            if index != 0
                && !read(&self.sessions).contains_key(&index)
                && !lock(&self.responding).contains_key(&index)
            {
                return index;
            }
        }
    }

    /// Sets up a new session with `peer` (or returns the live one unless it is due for new
    /// keys). A transport failure is retried: right after a peer restarts, the old libp2p
    /// connection may not yet be known dead.
    async fn ensure_session(
        self: &Arc<Self>,
        peer: &Arc<Peer>,
        rekey: bool,
    ) -> Result<Arc<Session>, String> {
        let _one_at_a_time = peer.handshake.lock().await;
        if let Some(session) = peer.session()
            && !(rekey && self.due_for_rekey(&session))
        {
            return Ok(session);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.handshake(peer).await {
                Ok(session) => return Ok(session),
                Err(Handshake::Transport(why)) if attempt < 4 => {
                    tracing::debug!(node = %peer.cert.node_id.short(), %why, attempt, "handshake retry");
                    tokio::time::sleep(Duration::from_millis(250 * attempt)).await;
                }
                Err(Handshake::Transport(why) | Handshake::Refused(why)) => return Err(why),
            }
        }
    }

    /// One handshake attempt (initiator side).
    async fn handshake(self: &Arc<Self>, peer: &Arc<Peer>) -> Result<Arc<Session>, Handshake> {
        let refused = Handshake::Refused;
        let index = self.new_index();
        let (initiating, init) =
            session::initiate(self.parties(&peer.cert), index).map_err(refused)?;
        let answer = self
            .session_request(
                peer,
                HandshakeMessage::Init {
                    initiator_index: index,
                    hello: init.hello,
                    signature: init.signature,
                },
            )
            .await?;
        let (responder_index, reply) = match answer {
            Ok(MeshResponse::HandshakeReply {
                responder_index,
                hello,
                signature,
            }) => (responder_index, session::InitMessage { hello, signature }),
            Err(why) => return Err(refused(why)),
            Ok(other) => return Err(refused(format!("unexpected answer {other:?}"))),
        };
        let (session, confirmation) = session::finish(
            self.parties(&peer.cert),
            initiating,
            responder_index,
            &reply,
        )
        .map_err(refused)?;
        let session = Arc::new(session);
        // Receive under the new index before the peer can send on it.
        write(&self.sessions).insert(index, session.clone());
        let answer = self
            .session_request(
                peer,
                HandshakeMessage::Confirm {
                    responder_index,
                    signature: confirmation,
                },
            )
            .await;
        let failed = match answer {
            Ok(Ok(MeshResponse::Done)) => None,
            Ok(Err(why)) => Some(refused(why)),
            Ok(Ok(other)) => Some(refused(format!("unexpected answer {other:?}"))),
            Err(transport) => Some(transport),
        };
        if let Some(failed) = failed {
            write(&self.sessions).remove(&index);
            return Err(failed);
        }
        self.install(peer, session.clone());
        tracing::debug!(
            node = %peer.cert.node_id.short(),
            ms = session.started.elapsed().as_millis() as u64,
            "session up (initiator)"
        );
        Ok(session)
    }

    fn due_for_rekey(&self, session: &Session) -> bool {
        self.rekey.due(
            session.sealed_count(),
            session.created.elapsed().as_millis() as u64,
        )
    }

    /// Makes `session` the one packets to `peer` are sealed with; the one it replaces keeps
    /// opening frames for [`OLD_SESSION_GRACE`].
    fn install(&self, peer: &Peer, session: Arc<Session>) {
        Counters::bump(&self.counters.sessions_up);
        let _ = self.first_session_ms.compare_exchange(
            0,
            now().as_millis(),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        write(&self.sessions).insert(session.local_index, session.clone());
        let old = write(&peer.send).replace(session);
        if let Some(old) = old {
            *lock(&peer.previous) = Some((old, Instant::now()));
        }
    }

    /// Serves mesh requests from peers (and refuses everything else: this is not an anchor).
    fn serve_requests(self: Arc<Self>, mut inbound: mpsc::Receiver<InboundRequest>) {
        tokio::spawn(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(256));
            while let Some(request) = inbound.recv().await {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let this = self.clone();
                tokio::spawn(async move {
                    let response = match request.request {
                        ControlRequest::Mesh(mesh) => ControlResponse::Mesh(
                            this.handle(request.peer, request.remote.as_ref(), mesh)
                                .await,
                        ),
                        _ => ControlResponse::Refused("this node is not an anchor".to_owned()),
                    };
                    this.p2p.respond(request.channel, response).await;
                    drop(permit);
                });
            }
        });
    }

    async fn handle(
        self: &Arc<Self>,
        peer: PeerId,
        remote: Option<&Multiaddr>,
        request: MeshRequest,
    ) -> Result<MeshResponse, String> {
        if let MeshRequest::Hello(hello) = request {
            self.accept_hello(peer, remote, hello)?;
            return Ok(MeshResponse::Hello(self.hello()));
        }
        // Anchors push states; everything else needs a verified certificate.
        if let MeshRequest::StateUpdate { state } = &request
            && (self.is_anchor(&peer) || self.verified(&peer).is_some())
        {
            self.take_state(state, Some(peer)).await;
            return Ok(MeshResponse::Done);
        }
        let Some(from) = self.verified(&peer) else {
            self.disconnect_after_answer(peer);
            return Err("say hello with a valid certificate first".to_owned());
        };
        match request {
            MeshRequest::Hello(_) | MeshRequest::StateUpdate { .. } => {
                Err("already handled".to_owned())
            }
            MeshRequest::Failovers { .. } => Err("failover times go to anchors".to_owned()),
            MeshRequest::State { have_index } => {
                let trust = read(&self.trust);
                Ok(MeshResponse::State(
                    (trust.state_index() > have_index)
                        .then(|| trust.state_bytes())
                        .flatten(),
                ))
            }
            MeshRequest::Policy { version } => {
                let trust = read(&self.trust);
                match (trust.policy().1 == version, trust.policy_document()) {
                    (true, Some(document)) => Ok(MeshResponse::Policy(document.to_owned())),
                    _ => Err(format!("this node does not hold policy version {version}")),
                }
            }
            MeshRequest::LinkState { state, certificate } => {
                self.take_link_state(&state, &certificate, &from)?;
                Ok(MeshResponse::Done)
            }
            MeshRequest::Peers => Ok(MeshResponse::Peers(
                read(&self.known)
                    .values()
                    .take(MAX_PRESENCE)
                    .cloned()
                    .collect(),
            )),
            MeshRequest::HandshakeInit {
                initiator_index,
                hello,
                signature,
            } => {
                self.answer_handshake(
                    &from,
                    HandshakeMessage::Init {
                        initiator_index,
                        hello,
                        signature,
                    },
                )
                .await
            }
            MeshRequest::HandshakeConfirm {
                responder_index,
                signature,
            } => {
                self.answer_handshake(
                    &from,
                    HandshakeMessage::Confirm {
                        responder_index,
                        signature,
                    },
                )
                .await
            }
            MeshRequest::Relayed(relayed) => self.take_relayed(&from, relayed).await,
        }
    }

    /// The responder's side of a handshake message from `from` (a neighbour, or a member
    /// whose message came through relays).
    async fn answer_handshake(
        self: &Arc<Self>,
        from: &Arc<Peer>,
        message: HandshakeMessage,
    ) -> Result<MeshResponse, String> {
        match message {
            HandshakeMessage::Init {
                initiator_index,
                hello,
                signature,
            } => {
                if lock(&self.responding).len() >= MAX_RESPONDING {
                    return Err("too many handshakes in progress".to_owned());
                }
                let index = self.new_index();
                let (responding, reply) = session::respond(
                    self.parties(&from.cert),
                    initiator_index,
                    &session::InitMessage { hello, signature },
                    index,
                )?;
                lock(&self.responding)
                    .insert(index, (from.cert.node_id, responding, Instant::now()));
                Ok(MeshResponse::HandshakeReply {
                    responder_index: index,
                    hello: reply.hello,
                    signature: reply.signature,
                })
            }
            HandshakeMessage::Confirm {
                responder_index,
                signature,
            } => {
                let pending = lock(&self.responding).remove(&responder_index);
                let Some((node, responding, _)) = pending else {
                    return Err("no such handshake".to_owned());
                };
                if node != from.cert.node_id {
                    return Err("that handshake belongs to another peer".to_owned());
                }
                let session = Arc::new(session::confirm(
                    self.parties(&from.cert),
                    responding,
                    &signature,
                )?);
                self.install(from, session.clone());
                tracing::debug!(node = %node.short(), "session up (responder)");
                self.flush_queue(from, &session).await;
                Ok(MeshResponse::Done)
            }
        }
    }

    /// A handshake message relayed by neighbour `from`: answered when it is for this node
    /// (its sender's certificate checked against the anchors like any peer's), else passed
    /// to the next hop towards its destination and the answer passed back.
    async fn take_relayed(
        self: &Arc<Self>,
        from: &Arc<Peer>,
        relayed: RelayedHandshake,
    ) -> Result<MeshResponse, String> {
        if relayed.weight() > MAX_RELAYED_BYTES {
            return Err(format!(
                "a relayed handshake of {} bytes; at most {MAX_RELAYED_BYTES}",
                relayed.weight()
            ));
        }
        if relayed.to == self.node_id {
            if relayed.certificate.len() > MAX_HELLO_CERTIFICATE {
                return Err("certificate too large".to_owned());
            }
            let cert = read(&self.trust).verify_certificate(&relayed.certificate, None, now())?;
            if cert.node_id != relayed.from {
                return Err("the certificate names another node than the sender".to_owned());
            }
            let origin = self
                .remember_remote(&cert)
                .ok_or("cannot take a handshake from this node itself")?;
            return self.answer_handshake(&origin, relayed.message).await;
        }
        if relayed.hops == 0 {
            return Err(format!("{RELAY_UNREACHABLE}: no hops left"));
        }
        let target = read(&self.peers).get(&relayed.to).cloned();
        let next = target
            .and_then(|t| match t.via() {
                Some(hop) => read(&self.peers).get(&hop).cloned(),
                None => Some(t),
            })
            .ok_or_else(|| format!("{RELAY_UNREACHABLE}: no route to {}", relayed.to.short()))?;
        if next.cert.node_id == from.cert.node_id || next.cert.node_id == relayed.from {
            return Err(format!("{RELAY_UNREACHABLE}: the route leads back"));
        }
        let request = ControlRequest::Mesh(MeshRequest::Relayed(RelayedHandshake {
            hops: relayed.hops - 1,
            ..relayed
        }));
        match self.p2p.request(next.peer_id, Vec::new(), request).await {
            Ok(ControlResponse::Mesh(answer)) => answer,
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(format!("{RELAY_UNREACHABLE}: {e}")),
        }
    }

    /// Sends a handshake message to `peer`: over the connection to it when the route in use
    /// is direct (or there is none yet), else to the route's next hop, which relays it.
    async fn session_request(
        &self,
        peer: &Peer,
        message: HandshakeMessage,
    ) -> Result<Result<MeshResponse, String>, Handshake> {
        let hop = peer
            .via()
            .and_then(|hop| read(&self.peers).get(&hop).cloned());
        let (to, request) = match hop {
            Some(hop) => (
                hop.peer_id,
                MeshRequest::Relayed(RelayedHandshake {
                    to: peer.cert.node_id,
                    from: self.node_id,
                    hops: x0t_crypto::frame::DEFAULT_HOPS,
                    certificate: self.cert_bytes.clone(),
                    message,
                }),
            ),
            None => (
                peer.peer_id,
                match message {
                    HandshakeMessage::Init {
                        initiator_index,
                        hello,
                        signature,
                    } => MeshRequest::HandshakeInit {
                        initiator_index,
                        hello,
                        signature,
                    },
                    HandshakeMessage::Confirm {
                        responder_index,
                        signature,
                    } => MeshRequest::HandshakeConfirm {
                        responder_index,
                        signature,
                    },
                },
            ),
        };
        match self
            .p2p
            .request(to, Vec::new(), ControlRequest::Mesh(request))
            .await
        {
            Ok(ControlResponse::Mesh(Err(why))) if why.starts_with(RELAY_UNREACHABLE) => {
                Err(Handshake::Transport(why))
            }
            Ok(ControlResponse::Mesh(answer)) => Ok(answer),
            Ok(ControlResponse::Refused(why)) => Ok(Err(why)),
            Ok(other) => Ok(Err(format!("unexpected answer {other:?}"))),
            Err(e) => Err(Handshake::Transport(e.to_string())),
        }
    }

    /// Dials the anchors (for state) and every known member (for sessions) not yet reached.
    fn reach_out(self: Arc<Self>) {
        let anchors: Vec<PeerId> = read(&self.anchors).keys().copied().collect();
        for anchor in anchors {
            let this = self.clone();
            tokio::spawn(async move { this.greet_anchor(anchor).await });
        }
        let known: Vec<PeerPresence> = read(&self.known).values().cloned().collect();
        for presence in known.into_iter().take(256) {
            let Ok(peer) = presence.peer_id.parse::<PeerId>() else {
                continue;
            };
            if self.verified(&peer).is_some() || presence.node_id == self.node_id.to_string() {
                continue;
            }
            let this = self.clone();
            tokio::spawn(async move {
                let remote = presence.addrs.first().and_then(|a| a.parse().ok());
                if let Err(why) = this.greet(peer, remote).await {
                    tracing::debug!(%peer, %why, "could not reach a member");
                }
            });
        }
    }

    /// Asks a reachable anchor for newer state and the members it knows.
    async fn poll_anchor(self: &Arc<Self>) {
        let Some(anchor) = read(&self.anchors_up).iter().next().copied() else {
            return;
        };
        let have_index = read(&self.trust).state_index();
        let request = ControlRequest::Mesh(MeshRequest::State { have_index });
        if let Ok(ControlResponse::Mesh(Ok(MeshResponse::State(Some(state))))) =
            self.p2p.request(anchor, Vec::new(), request).await
        {
            self.take_state(&state, Some(anchor)).await;
        }
        let request = ControlRequest::Mesh(MeshRequest::Peers);
        if let Ok(ControlResponse::Mesh(Ok(MeshResponse::Peers(list)))) =
            self.p2p.request(anchor, Vec::new(), request).await
        {
            let mut known = write(&self.known);
            for presence in list.into_iter().take(MAX_PRESENCE) {
                if let Ok(id) = presence.node_id.parse::<NodeId>() {
                    known.insert(id, presence);
                }
            }
            cache::save_peers(&self.data_dir, &known);
        }
        // A policy that could not be fetched when its state arrived is retried here.
        let (wanted, have) = {
            let trust = read(&self.trust);
            (
                trust.state().map_or(0, |s| s.policy_version),
                trust.policy().1,
            )
        };
        if wanted != 0 && wanted != have {
            self.fetch_policy(wanted, Some(anchor)).await;
        }
    }

    /// Timers: expire flows and half-done handshakes, rekey, drop expired certificates,
    /// poll the anchors, reach new members.
    async fn maintain(self: Arc<Self>, state_poll: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_poll = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let uptime = self.started.elapsed();
            lock(&self.flows).expire(uptime);
            self.open_neighbour_sessions();
            lock(&self.responding).retain(|_, (_, _, at)| at.elapsed() < CONFIRM_TIMEOUT);
            let now = now();
            for peer in self.peers() {
                if peer.cert.not_after <= now {
                    self.drop_peer(&peer.cert.node_id, "certificate expired")
                        .await;
                    continue;
                }
                let expired_previous = lock(&peer.previous)
                    .as_ref()
                    .is_some_and(|(_, at)| at.elapsed() > OLD_SESSION_GRACE);
                if expired_previous && let Some((old, _)) = lock(&peer.previous).take() {
                    write(&self.sessions).remove(&old.local_index);
                }
                if let Some(session) = peer.session() {
                    // The lower node id renews keys, so both ends do not rekey at once.
                    if self.node_id < peer.cert.node_id && self.due_for_rekey(&session) {
                        let this = self.clone();
                        let peer = peer.clone();
                        tokio::spawn(async move {
                            if let Err(why) = this.ensure_session(&peer, true).await {
                                tracing::warn!(node = %peer.cert.node_id.short(), %why, "rekey failed");
                            }
                        });
                    }
                }
            }
            if last_poll.elapsed() >= state_poll {
                last_poll = Instant::now();
                if read(&self.anchors_up).is_empty() {
                    self.clone().reach_out();
                } else {
                    self.poll_anchor().await;
                    self.clone().reach_out();
                }
            }
        }
    }

    /// Every neighbour gets a session at once, traffic or not: its link is probed over it,
    /// and routing needs every link measured before the first packet. The lower node id
    /// sets it up, so both ends do not handshake at once.
    fn open_neighbour_sessions(self: &Arc<Self>) {
        for peer in self.neighbours() {
            if self.node_id < peer.cert.node_id && peer.session().is_none() {
                self.open_session_soon(peer);
            }
        }
    }

    /// Probes every peer with a session over the data path, every probe interval (200 ms),
    /// and finds dead links: the Monitor and Analyze steps of the MAPE-K loop. A link that
    /// answers nothing for 800 ms is down (logged, counted); its first answer after that
    /// brings it up again.
    async fn probe_links(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let interval = x0t_routing::MonitorConfig::default().probe_interval_us;
        let mut tick = tokio::time::interval(Duration::from_micros(interval));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            ticks += 1;
            for peer in self.neighbours() {
                let Some(session) = peer.session() else {
                    continue;
                };
                let now = self.micros();
                let (transition, sequence, last_reply) = {
                    let mut monitor = lock(&peer.monitor);
                    (monitor.poll(now), monitor.probe(now), monitor.last_reply())
                };
                if transition == Some(x0t_routing::Transition::Down) {
                    Counters::bump(&self.counters.links_down);
                    // The link died after its last reply: that is when the failure began.
                    let failed_at = last_reply.unwrap_or(now);
                    peer.down_since_us
                        .store(failed_at.max(1), Ordering::Release);
                    self.last_failure_us
                        .fetch_max(failed_at.max(1), Ordering::AcqRel);
                    self.links_changed.store(true, Ordering::Release);
                    self.event_timed(
                        crate::events::EventKind::LinkDown,
                        Some(&peer.cert.node_id),
                        "probes unanswered".to_owned(),
                        Some(now.saturating_sub(failed_at) / 1_000),
                    );
                    tracing::warn!(
                        node = %peer.cert.node_id.short(),
                        silent_ms = x0t_routing::MonitorConfig::default().dead_after_us / 1_000,
                        "link down: probes unanswered"
                    );
                }
                let mut payload = vec![dataplane::PROBE];
                payload.extend_from_slice(&sequence.to_be_bytes());
                self.send_frame(
                    &peer,
                    &session,
                    x0t_crypto::frame::FrameKind::Keepalive,
                    &payload,
                    dataplane::Path::Direct,
                )
                .await;
            }
            // Link states go out once a second (every fifth probe round), and at once after
            // a link went down or came back.
            if ticks.is_multiple_of(5) || self.links_changed.swap(false, Ordering::AcqRel) {
                self.advertise_links().await;
            }
            if ticks.is_multiple_of(5) {
                self.check_remote_sessions().await;
            }
        }
    }

    /// Sessions with members reached only through relays have no link probes: once a
    /// second they get an end-to-end ping, and one that has heard nothing for
    /// [`REMOTE_SESSION_SILENCE`] is dropped (the far end restarted and lost it, say), so
    /// the next packet sets up a new one.
    async fn check_remote_sessions(self: &Arc<Self>) {
        let now = self.micros();
        let silence = u64::try_from(REMOTE_SESSION_SILENCE.as_micros()).unwrap_or(u64::MAX);
        for peer in self.peers() {
            if peer.direct().is_some() {
                continue;
            }
            let Some(session) = peer.session() else {
                continue;
            };
            let age = u64::try_from(session.created.elapsed().as_micros()).unwrap_or(u64::MAX);
            let heard = now.saturating_sub(peer.last_heard_us.load(Ordering::Relaxed));
            if age > silence && heard > silence {
                tracing::info!(node = %peer.cert.node_id.short(), "relayed session silent; dropping it");
                *write(&peer.send) = None;
                write(&self.sessions).retain(|_, s| !Arc::ptr_eq(s, &session));
                continue;
            }
            self.send_ping(&peer, &session, rand_core::OsRng.next_u64(), None)
                .await;
        }
    }

    /// Records an event of the MAPE-K loop.
    pub(crate) fn event(
        &self,
        kind: crate::events::EventKind,
        node: Option<&NodeId>,
        detail: String,
    ) {
        self.event_timed(kind, node, detail, None);
    }

    /// Records an event of the MAPE-K loop with how long it took.
    pub(crate) fn event_timed(
        &self,
        kind: crate::events::EventKind,
        node: Option<&NodeId>,
        detail: String,
        duration_ms: Option<u64>,
    ) {
        let (at_ms, uptime) = (now().as_millis(), self.micros());
        let id = lock(&self.events).push(
            at_ms,
            uptime,
            kind,
            node.map(ToString::to_string),
            detail,
            duration_ms,
        );
        self.events_changed.send_replace(id);
    }

    /// Learns the newest event's id each time one is recorded.
    pub fn subscribe_events(&self) -> watch::Receiver<u64> {
        self.events_changed.subscribe()
    }

    /// Time since the most recent link failure, if it was recent enough for a path switch
    /// now to be its failover ([`FAILOVER_WINDOW`]).
    pub(crate) fn since_failure(&self) -> Option<Duration> {
        let now = self.micros();
        let (local, remote) = (
            self.last_failure_us.load(Ordering::Acquire),
            self.last_remote_failure_us.load(Ordering::Acquire),
        );
        // The newest failure is the one being failed over. A remote estimate within a
        // second after a local onset is the same failure seen later: the local
        // onset (the last reply on the link) is the exact one.
        let same_failure = u64::try_from(SAME_FAILURE.as_micros()).unwrap_or(u64::MAX);
        let at = if remote > local.saturating_add(same_failure) {
            remote
        } else {
            local
        };
        let since = Duration::from_micros(now.saturating_sub(at));
        (at != 0 && since <= FAILOVER_WINDOW).then_some(since)
    }

    /// The SLO figures from this member's event log, with its onboarding (to its first
    /// session, from its approval and from this run's start).
    /// Only events of the last `window` count, if given.
    pub fn slo(&self, window: Option<Duration>) -> (crate::events::SloReport, Onboarding) {
        let mut events = lock(&self.events).after(0, usize::MAX);
        if let Some(window) = window {
            let since = now()
                .as_millis()
                .saturating_sub(u64::try_from(window.as_millis()).unwrap_or(u64::MAX));
            events.retain(|e| e.at_ms >= since);
        }
        let first = self.first_session_ms.load(Ordering::Acquire);
        let approved = self
            .cert
            .not_before
            .as_millis()
            .saturating_add(crate::clock::CERTIFICATE_BACKDATE_MS);
        let started = self.started_at_ms;
        (
            crate::events::slo(&events),
            Onboarding {
                approved_to_first_session_ms: (first != 0).then(|| first.saturating_sub(approved)),
                started_to_first_session_ms: (first != 0).then(|| first.saturating_sub(started)),
            },
        )
    }

    /// The events after id `after`, oldest first (at most `limit`).
    pub fn events_after(&self, after: u64, limit: usize) -> Vec<crate::events::MeshEvent> {
        lock(&self.events).after(after, limit)
    }

    /// Microseconds since this member started: the link monitors' clock.
    pub(crate) fn micros(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Sends a ping over the data path; `done` learns the round trip.
    async fn send_ping(
        &self,
        peer: &Peer,
        session: &Session,
        id: u64,
        done: Option<tokio::sync::oneshot::Sender<Duration>>,
    ) {
        let (tx, _) = tokio::sync::oneshot::channel();
        lock(&self.pings).insert(id, (Instant::now(), done.unwrap_or(tx)));
        if lock(&self.pings).len() > 4_096 {
            lock(&self.pings).retain(|_, (at, _)| at.elapsed() < Duration::from_secs(10));
        }
        let mut payload = vec![dataplane::PING];
        payload.extend_from_slice(&id.to_be_bytes());
        self.send_frame(
            peer,
            session,
            x0t_crypto::frame::FrameKind::Keepalive,
            &payload,
            dataplane::Path::Route,
        )
        .await;
    }

    /// Pings `node` over the mesh: the round trip through its session.
    pub async fn ping(
        self: &Arc<Self>,
        node: &NodeId,
        timeout: Duration,
    ) -> Result<Duration, String> {
        let peer = read(&self.peers)
            .get(node)
            .cloned()
            .ok_or_else(|| format!("{} is not a connected peer", node.short()))?;
        let session = self.ensure_session(&peer, false).await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let id = rand_core::OsRng.next_u64();
        self.send_ping(&peer, &session, id, Some(tx)).await;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(rtt)) => Ok(rtt),
            _ => {
                lock(&self.pings).remove(&id);
                Err(format!(
                    "no answer from {} within {timeout:?}",
                    node.short()
                ))
            }
        }
    }

    /// Finds a verified peer by full or short node id, or overlay address.
    pub fn find_peer(&self, text: &str) -> Option<Arc<Peer>> {
        let text = text.trim();
        let peers = read(&self.peers);
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            let id = read(&self.by_ip).get(&ip).copied()?;
            return peers.get(&id).cloned();
        }
        peers
            .values()
            .find(|p| {
                let id = p.cert.node_id.to_string();
                id == text || p.cert.node_id.short() == text
            })
            .cloned()
    }

    /// Decides a flow between this node and `peer` under the current policy.
    fn decide(&self, peer: &Peer, outbound: bool, protocol: Protocol, port: u16) -> bool {
        let (policy, version) = read(&self.trust).policy();
        let peer_resolved = {
            let cached = read(&peer.resolved);
            if cached.0 == version {
                cached.1.clone()
            } else {
                drop(cached);
                let endpoint = Endpoint::node(
                    peer.cert.node_id,
                    peer.cert.device_class,
                    peer.cert.tags.iter().cloned(),
                );
                let resolved = policy.resolve(&endpoint);
                *write(&peer.resolved) = (version, resolved.clone());
                resolved
            }
        };
        let me = policy.resolve(&self.me);
        let verdict = if outbound {
            policy.decide_resolved(&me, &peer_resolved, protocol, port)
        } else {
            policy.decide_resolved(&peer_resolved, &me, protocol, port)
        };
        verdict.allowed()
    }
}
