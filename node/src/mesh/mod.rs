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

mod hello;
mod observe;
mod requests;
mod runtime;
mod sessions;
mod upkeep;

pub use runtime::run_member;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use x0t_crypto::frame::RekeyPolicy;
use x0t_crypto::{NodeCertificate, SigningKey};
use x0t_policy::{Endpoint, ResolvedEndpoint};
use x0t_types::{MeshId, NodeId};

use crate::NodeError;
use crate::p2p::P2p;
use crate::p2p::protocol::{MAX_HELLO_ADDRS, PeerHello, PeerPresence};
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
}
