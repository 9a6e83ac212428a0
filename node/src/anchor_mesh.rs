//! The anchors' side of the mesh protocol: they check a member's certificate against the
//! ledger, sign the mesh state (anchors, revocations, policy version) and push every change
//! to the members connected to them, answer policy and presence queries. Each connected
//! member also sends them its own signed link state every second: anchors keep the newest
//! per member, so any node's API can show the mesh's topology and a stream of the link
//! changes it sees (for the browser console), without carrying any data themselves.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use x0t_crypto::{
    MAX_STATE_ANCHORS, MAX_STATE_REVOKED, MeshState, SigAlgorithm, SignedMeshState,
    SignedNodeCertificate, VerifyingKey,
};
use x0t_ledger::Ledger;
use x0t_types::{MeshId, NodeId, NodeState, Timestamp};

use crate::clock::now;
use crate::control::{ControlPlane, MeshRequests};
use crate::p2p::protocol::{
    ControlRequest, MAX_HELLO_ADDRS, MAX_HELLO_CERTIFICATE, MAX_PRESENCE, MeshRequest,
    MeshResponse, PeerHello, PeerPresence,
};

/// How often an anchor looks for changes to push.
const PUSH_EVERY: Duration = Duration::from_millis(100);

#[derive(Clone, Debug)]
struct VerifiedMember {
    mesh: MeshId,
    node_id: NodeId,
    identity_key: VerifyingKey,
    presence: PeerPresence,
}

/// Link states of one mesh as its members report them to this anchor.
#[derive(Debug, Default)]
struct MeshLinks {
    db: x0t_routing::LinkStateDb,
    /// Links a member stopped reporting (origin, neighbour), and when: their return is an
    /// event carrying the outage.
    lost: HashMap<(NodeId, NodeId), u64>,
    events: crate::events::EventLog,
    /// When this anchor first got each member's link state (ms): onboarding's end.
    first_report: HashMap<NodeId, u64>,
    /// Failover times members reported, newest last (at most [`KEPT_FAILOVERS`]).
    failovers: std::collections::VecDeque<u64>,
    /// Outages of links that came back, newest last (at most [`KEPT_FAILOVERS`]).
    outages: std::collections::VecDeque<u64>,
    /// Links members stopped reporting.
    failures: usize,
}

/// Failover times and outages kept per mesh.
const KEPT_FAILOVERS: usize = 1_024;
/// Members whose first report is remembered per mesh (beyond, the oldest are forgotten).
const KEPT_FIRST_REPORTS: usize = 100_000;
/// Lost links remembered per mesh. A member that leaves for good leaves its neighbours'
/// links to it lost forever; without a bound, churn would grow this map without end.
const KEPT_LOST_LINKS: usize = 16_384;
/// A link lost longer than this is forgotten first when the map is full.
const LOST_LINK_HORIZON_MS: u64 = 60 * 60 * 1_000;

/// Records that `origin` lost its link to `gone` at `now`, within [`KEPT_LOST_LINKS`].
fn remember_lost(lost: &mut HashMap<(NodeId, NodeId), u64>, key: (NodeId, NodeId), now: u64) {
    if lost.len() >= KEPT_LOST_LINKS && !lost.contains_key(&key) {
        lost.retain(|_, at| now.saturating_sub(*at) < LOST_LINK_HORIZON_MS);
        while lost.len() >= KEPT_LOST_LINKS {
            let Some(oldest) = lost.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k) else {
                break;
            };
            lost.remove(&oldest);
        }
    }
    lost.insert(key, now);
}

fn keep_last(ring: &mut std::collections::VecDeque<u64>, value: u64) {
    ring.push_back(value);
    while ring.len() > KEPT_FAILOVERS {
        ring.pop_front();
    }
}

/// What decides whether a mesh's state must be signed anew.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Content {
    anchors: Vec<NodeId>,
    revoked: Vec<NodeId>,
    policy_version: u64,
}

#[derive(Debug)]
struct SignedState {
    content: Content,
    bytes: Arc<Vec<u8>>,
    index: u64,
}

/// Members connected to this anchor and the states it signed.
#[derive(Debug, Default)]
pub struct AnchorMesh {
    verified: Mutex<HashMap<PeerId, VerifiedMember>>,
    signed: Mutex<HashMap<MeshId, SignedState>>,
    links: Mutex<HashMap<MeshId, MeshLinks>>,
    /// Bumped with every link event (any mesh), for live readers.
    events_changed: tokio::sync::watch::Sender<u64>,
    /// Turns true when the node shuts down: live readers end (else they would hold the
    /// API server open).
    stopping: tokio::sync::watch::Sender<bool>,
    /// When this anchor started: onboarding counts only approvals it could see through.
    started: StartedAt,
}

/// Wall-clock ms at creation.
#[derive(Debug)]
struct StartedAt(u64);

impl Default for StartedAt {
    fn default() -> Self {
        Self(now().as_millis())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Replaces an unspecified IP in a member's advertised address with the one its
/// connection comes from.
pub(crate) fn observed_addrs(listen: &[String], remote: Option<&Multiaddr>) -> Vec<String> {
    use libp2p::multiaddr::Protocol;
    let seen_ip = remote.and_then(|addr| {
        addr.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(Protocol::Ip4(ip)),
            Protocol::Ip6(ip) => Some(Protocol::Ip6(ip)),
            _ => None,
        })
    });
    listen
        .iter()
        .take(MAX_HELLO_ADDRS)
        .filter_map(|text| text.parse::<Multiaddr>().ok())
        .map(|addr| {
            addr.iter()
                .map(|p| match (&p, &seen_ip) {
                    (Protocol::Ip4(ip), Some(seen)) if ip.is_unspecified() => seen.clone(),
                    (Protocol::Ip6(ip), Some(seen)) if ip.is_unspecified() => seen.clone(),
                    _ => p,
                })
                .collect::<Multiaddr>()
                .to_string()
        })
        .collect()
}

fn anchor_keys(ledger: &Ledger) -> BTreeMap<NodeId, VerifyingKey> {
    ledger
        .anchors()
        .filter_map(|a| {
            let alg = SigAlgorithm::from_code(a.identity_key.algorithm)?;
            let key = VerifyingKey::from_bytes(alg, &a.identity_key.bytes).ok()?;
            (key.node_id() == a.node_id).then_some((a.node_id, key))
        })
        .take(MAX_STATE_ANCHORS)
        .collect()
}

fn content_of(ledger: &Ledger, mesh: &MeshId, now: Timestamp) -> Content {
    let mut revoked: Vec<NodeId> = ledger
        .nodes(mesh)
        .filter(|n| n.state == NodeState::Revoked)
        // An expired certificate is refused anyway; leaving it out bounds the list.
        .filter(|n| n.certificate_not_after.is_some_and(|end| end > now))
        .map(|n| n.node_id)
        .collect();
    revoked.sort();
    revoked.truncate(MAX_STATE_REVOKED);
    Content {
        anchors: anchor_keys(ledger).into_keys().collect(),
        revoked,
        policy_version: ledger.acl(mesh).map_or(0, |a| a.version),
    }
}

impl AnchorMesh {
    /// The signed state of `mesh`, signed anew only when its content changed.
    fn state(&self, control: &ControlPlane, mesh: &MeshId) -> Result<Arc<Vec<u8>>, String> {
        let now = now();
        let (content, keys, digest, exists) = control.read(|ledger| {
            (
                content_of(ledger, mesh, now),
                anchor_keys(ledger),
                ledger.acl(mesh).map(|a| a.digest),
                ledger.mesh(mesh).is_some(),
            )
        });
        if !exists {
            return Err(format!("no mesh {mesh}"));
        }
        if let Some(cached) = lock(&self.signed).get(mesh)
            && cached.content == content
        {
            return Ok(cached.bytes.clone());
        }
        let index = control.status().last_applied_index.unwrap_or(0);
        let identity = control.identity();
        if !keys.contains_key(&identity.node_id()) {
            return Err("this anchor is not recorded in the ledger yet".to_owned());
        }
        let state = MeshState {
            mesh: mesh.clone(),
            ledger_index: index,
            issued_at: now,
            issuer: identity.node_id(),
            anchors: keys.into_values().collect(),
            revoked: content.revoked.clone(),
            policy_version: content.policy_version,
            policy_digest: digest.unwrap_or([0; 32]),
        };
        let bytes = Arc::new(
            SignedMeshState::sign(state, identity)
                .map_err(|e| e.to_string())?
                .encode(),
        );
        lock(&self.signed).insert(
            mesh.clone(),
            SignedState {
                content,
                bytes: bytes.clone(),
                index,
            },
        );
        Ok(bytes)
    }

    /// Answers a mesh request from `peer`.
    pub(crate) fn handle(
        &self,
        control: &ControlPlane,
        peer: PeerId,
        remote: Option<&Multiaddr>,
        request: MeshRequest,
    ) -> Result<MeshResponse, String> {
        if let MeshRequest::Hello(hello) = request {
            return self.hello(control, peer, remote, hello);
        }
        let member = lock(&self.verified)
            .get(&peer)
            .cloned()
            .ok_or("say hello with a valid certificate first")?;
        match request {
            MeshRequest::Hello(_) => Err("already handled".to_owned()),
            MeshRequest::State { have_index } => {
                let bytes = self.state(control, &member.mesh)?;
                let index = lock(&self.signed).get(&member.mesh).map_or(0, |s| s.index);
                Ok(MeshResponse::State(
                    (index > have_index).then(|| bytes.to_vec()),
                ))
            }
            MeshRequest::Policy { version } => control
                .read(|ledger| {
                    ledger
                        .acl_version(&member.mesh, version)
                        .map(|a| a.document.clone())
                })
                .map(MeshResponse::Policy)
                .ok_or_else(|| format!("policy version {version} is not kept")),
            MeshRequest::Peers => {
                let approved = |id: &NodeId| {
                    control.read(|l| {
                        l.node(&member.mesh, id)
                            .is_some_and(|n| n.state == NodeState::Approved)
                    })
                };
                Ok(MeshResponse::Peers(
                    lock(&self.verified)
                        .values()
                        .filter(|m| m.mesh == member.mesh && m.node_id != member.node_id)
                        .filter(|m| approved(&m.node_id))
                        .take(MAX_PRESENCE)
                        .map(|m| m.presence.clone())
                        .collect(),
                ))
            }
            MeshRequest::LinkState { state, .. } => {
                self.take_link_state(&member, &state)?;
                Ok(MeshResponse::Done)
            }
            MeshRequest::Failovers { durations_ms } => {
                if durations_ms.len() > crate::p2p::protocol::MAX_REPORTED_FAILOVERS {
                    return Err("too many failover times in one report".to_owned());
                }
                let mut all = lock(&self.links);
                let links = all.entry(member.mesh.clone()).or_default();
                for ms in durations_ms {
                    keep_last(&mut links.failovers, u64::from(ms));
                }
                Ok(MeshResponse::Done)
            }
            // Anchors sign states; they do not take a member's forward.
            MeshRequest::StateUpdate { .. } => Ok(MeshResponse::Done),
            MeshRequest::HandshakeInit { .. }
            | MeshRequest::HandshakeConfirm { .. }
            | MeshRequest::Relayed(_) => Err("anchors carry no data-plane sessions".to_owned()),
        }
    }

    fn hello(
        &self,
        control: &ControlPlane,
        peer: PeerId,
        remote: Option<&Multiaddr>,
        hello: PeerHello,
    ) -> Result<MeshResponse, String> {
        if hello.certificate.len() > MAX_HELLO_CERTIFICATE {
            return Err("certificate too large".to_owned());
        }
        let signed = SignedNodeCertificate::decode(&hello.certificate)
            .map_err(|e| format!("unreadable certificate: {e}"))?;
        let cert = signed.payload().clone();
        if cert.peer_id != peer.to_bytes() {
            return Err("the certificate names another libp2p peer".to_owned());
        }
        let now = now();
        let checked = control.read(|ledger| {
            let key = anchor_keys(ledger)
                .remove(&cert.issuer)
                .ok_or_else(|| format!("issuer {} is not an anchor", cert.issuer.short()))?;
            signed
                .verify(&key, now)
                .map_err(|e| format!("certificate refused: {e}"))?;
            match ledger.node(&cert.mesh, &cert.node_id) {
                Some(node) if node.state == NodeState::Approved => Ok(()),
                Some(node) => Err(format!("node {} is {:?}", cert.node_id.short(), node.state)),
                None => Err(format!(
                    "node {} is not in mesh {}",
                    cert.node_id.short(),
                    cert.mesh
                )),
            }
        });
        if let Err(why) = checked {
            tracing::info!(%peer, node = %cert.node_id.short(), %why, "refusing a mesh member");
            return Err(why);
        }
        let member = VerifiedMember {
            mesh: cert.mesh.clone(),
            node_id: cert.node_id,
            identity_key: cert.identity_key.clone(),
            presence: PeerPresence {
                node_id: cert.node_id.to_string(),
                peer_id: peer.to_string(),
                addrs: observed_addrs(&hello.listen, remote),
                overlay_ip: cert.overlay_ip.to_string(),
            },
        };
        let (mesh, node_id) = (member.mesh.clone(), member.node_id);
        let earlier = lock(&self.verified).insert(peer, member);
        if earlier.is_none_or(|m| m.node_id != node_id) {
            self.member_event(
                &mesh,
                crate::events::EventKind::PeerVerified,
                &node_id,
                format!("{} connected to this anchor", node_id.short()),
            );
        }
        tracing::debug!(%peer, node = %cert.node_id.short(), "mesh member verified");
        Ok(MeshResponse::State(Some(
            self.state(control, &cert.mesh)?.to_vec(),
        )))
    }

    /// A member's own link state: verified with its key, kept if newer; links it stopped
    /// (or started again) reporting become events of its mesh.
    fn take_link_state(&self, member: &VerifiedMember, bytes: &[u8]) -> Result<(), String> {
        let signed = x0t_crypto::SignedLinkState::decode(bytes)
            .map_err(|e| format!("unreadable link state: {e}"))?;
        if signed.payload().origin != member.node_id {
            return Err("an anchor takes a member's own link state only".to_owned());
        }
        let now = now();
        let advert = signed
            .verify(&member.identity_key, now)
            .map_err(|e| format!("link state refused: {e}"))?;
        if advert.mesh != member.mesh {
            return Err("link state of another mesh".to_owned());
        }
        let state = x0t_routing::LinkState {
            origin: advert.origin,
            sequence: advert.sequence,
            links: advert
                .links
                .iter()
                .map(|l| x0t_routing::LinkMeasure {
                    neighbor: l.neighbor,
                    rtt_micros: l.rtt_micros,
                    loss_permille: l.loss_permille,
                })
                .collect(),
        };
        let mut all = lock(&self.links);
        let links = all.entry(member.mesh.clone()).or_default();
        let before: Vec<NodeId> = links
            .db
            .get(&state.origin)
            .map(|s| s.links.iter().map(|l| l.neighbor).collect())
            .unwrap_or_default();
        let after: Vec<NodeId> = state.links.iter().map(|l| l.neighbor).collect();
        let origin = state.origin;
        if links
            .db
            .accept(state, now.as_millis())
            .map_err(|e| e.to_string())?
            != x0t_routing::Accepted::Newer
        {
            return Ok(());
        }
        if links.first_report.len() < KEPT_FIRST_REPORTS {
            links.first_report.entry(origin).or_insert(now.as_millis());
        }
        let mut newest = None;
        for gone in before.iter().filter(|n| !after.contains(n)) {
            remember_lost(&mut links.lost, (origin, *gone), now.as_millis());
            links.failures += 1;
            newest = Some(links.events.push(
                now.as_millis(),
                0,
                crate::events::EventKind::LinkDown,
                Some(origin.to_string()),
                format!(
                    "{} no longer reports its link to {}",
                    origin.short(),
                    gone.short()
                ),
                None,
            ));
        }
        for back in after.iter().filter(|n| !before.contains(n)) {
            if let Some(lost_at) = links.lost.remove(&(origin, *back)) {
                let outage = now.as_millis().saturating_sub(lost_at);
                keep_last(&mut links.outages, outage);
                newest = Some(links.events.push(
                    now.as_millis(),
                    0,
                    crate::events::EventKind::LinkRecovered,
                    Some(origin.to_string()),
                    format!(
                        "{} reports its link to {} again",
                        origin.short(),
                        back.short()
                    ),
                    Some(outage),
                ));
            }
        }
        drop(all);
        if let Some(id) = newest {
            self.events_changed.send_replace(id);
        }
        Ok(())
    }

    /// The link events of `mesh` after `after`, oldest first (at most `limit`).
    pub(crate) fn events_after(
        &self,
        mesh: &MeshId,
        after: u64,
        limit: usize,
    ) -> Vec<crate::events::MeshEvent> {
        lock(&self.links)
            .get(mesh)
            .map(|l| l.events.after(after, limit))
            .unwrap_or_default()
    }

    /// The mesh's self-healing figures from what its members report here; `approved` gives
    /// each approved node's approval time (ms), for onboarding.
    pub(crate) fn slo(&self, mesh: &MeshId, approved: &[(NodeId, u64)]) -> x0t_types::api::MeshSlo {
        self.current_links(mesh, |links| {
            let mut slo = x0t_types::api::MeshSlo {
                members_reporting: links.db.states().count(),
                failures: links.failures,
                failover: crate::events::Percentiles::of(links.failovers.iter().copied().collect()),
                link_outage: crate::events::Percentiles::of(
                    links.outages.iter().copied().collect(),
                ),
                onboarding: crate::events::Percentiles::of(
                    approved
                        .iter()
                        // An approval from before this anchor started would count its downtime.
                        .filter(|(_, at)| *at >= self.started.0)
                        .filter_map(|(id, at)| links.first_report.get(id)?.checked_sub(*at))
                        .collect(),
                ),
                ..Default::default()
            };
            for view in x0t_routing::link_views(&links.db) {
                match crate::mesh::local_api::topology_link(view).health.as_str() {
                    "up" => slo.links_up += 1,
                    "degraded" => slo.links_degraded += 1,
                    _ => slo.links_down += 1,
                }
            }
            slo
        })
    }

    /// Runs `f` on `mesh`'s link states, those of silent members expired first.
    fn current_links<R>(&self, mesh: &MeshId, f: impl FnOnce(&mut MeshLinks) -> R) -> R {
        let mut all = lock(&self.links);
        let links = all.entry(mesh.clone()).or_default();
        // Anchors advertise no links of their own: nothing of theirs to keep.
        let keep = NodeId::from_bytes([0; 32]);
        links.db.expire(
            now().as_millis(),
            crate::mesh::routing::LINK_STATE_MAX_AGE_MS,
            &keep,
        );
        f(links)
    }

    /// Ends live readers: the node is shutting down.
    pub(crate) fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Turns true when the node shuts down.
    pub(crate) fn stopped(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Learns of each new link event (any mesh).
    pub(crate) fn subscribe_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events_changed.subscribe()
    }

    /// The mesh's topology as its members' link states describe it: `nodes` are its
    /// approved nodes (id, overlay address) — `neighbour` meaning connected to this anchor,
    /// `reachable` meaning it reports links now — and every link a state mentions.
    pub(crate) fn topology(
        &self,
        mesh: &MeshId,
        nodes: Vec<(NodeId, Option<String>)>,
    ) -> x0t_types::api::Topology {
        let (views, live) = self.current_links(mesh, |links| {
            (
                x0t_routing::link_views(&links.db),
                links.db.states().map(|s| s.origin).collect::<Vec<_>>(),
            )
        });
        let connected: std::collections::HashSet<NodeId> = lock(&self.verified)
            .values()
            .filter(|m| &m.mesh == mesh)
            .map(|m| m.node_id)
            .collect();
        x0t_types::api::Topology {
            node_id: String::new(),
            nodes: nodes
                .into_iter()
                .map(|(id, overlay_ip)| x0t_types::api::TopologyNode {
                    node_id: id.to_string(),
                    overlay_ip,
                    local: false,
                    neighbour: connected.contains(&id),
                    reachable: live.contains(&id),
                    via: None,
                })
                .collect(),
            links: views
                .into_iter()
                .map(crate::mesh::local_api::topology_link)
                .collect(),
        }
    }

    /// Forgets a member whose connection closed.
    pub(crate) fn forget(&self, peer: &PeerId) {
        let gone = lock(&self.verified).remove(peer);
        if let Some(member) = gone {
            self.member_event(
                &member.mesh,
                crate::events::EventKind::PeerDropped,
                &member.node_id,
                format!("{} left this anchor", member.node_id.short()),
            );
        }
    }

    /// A member connected or left: an event of its mesh (the console redraws its topology).
    fn member_event(
        &self,
        mesh: &MeshId,
        kind: crate::events::EventKind,
        node: &NodeId,
        detail: String,
    ) {
        let id = lock(&self.links)
            .entry(mesh.clone())
            .or_default()
            .events
            .push(
                now().as_millis(),
                0,
                kind,
                Some(node.to_string()),
                detail,
                None,
            );
        self.events_changed.send_replace(id);
    }

    /// Signs and pushes a mesh's new state to its connected members whenever its content
    /// changes (a revocation, a policy, an anchor), checking every [`PUSH_EVERY`].
    pub(crate) fn spawn_pusher(
        self: Arc<Self>,
        control: ControlPlane,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        tokio::spawn(async move {
            let mut pushed: HashMap<MeshId, Arc<Vec<u8>>> = HashMap::new();
            let mut tick = tokio::time::interval(PUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                let mut by_mesh: HashMap<MeshId, Vec<PeerId>> = HashMap::new();
                for (peer, member) in lock(&self.verified).iter() {
                    by_mesh.entry(member.mesh.clone()).or_default().push(*peer);
                }
                for (mesh, peers) in by_mesh {
                    let Ok(bytes) = self.state(&control, &mesh) else {
                        continue;
                    };
                    if pushed
                        .get(&mesh)
                        .is_some_and(|old| Arc::ptr_eq(old, &bytes))
                    {
                        continue;
                    }
                    pushed.insert(mesh.clone(), bytes.clone());
                    tracing::debug!(%mesh, members = peers.len(), "pushing a new mesh state");
                    for peer in peers {
                        let p2p = control.p2p().clone();
                        let state = bytes.to_vec();
                        tokio::spawn(async move {
                            let request = ControlRequest::Mesh(MeshRequest::StateUpdate { state });
                            if let Err(e) = p2p.request(peer, Vec::new(), request).await {
                                tracing::debug!(%peer, %e, "state push failed");
                            }
                        });
                    }
                }
            }
        });
    }
}

impl MeshRequests for AnchorMesh {
    fn answer(
        &self,
        control: &ControlPlane,
        peer: PeerId,
        remote: Option<&Multiaddr>,
        request: MeshRequest,
    ) -> Result<MeshResponse, String> {
        self.handle(control, peer, remote, request)
    }

    fn forget(&self, peer: &PeerId) {
        AnchorMesh::forget(self, peer);
    }

    fn stop(&self) {
        AnchorMesh::stop(self);
    }
}

impl AnchorMesh {
    /// Starts serving mesh members on `control`: their requests come here, members whose
    /// connection closes are forgotten, and every new mesh state is pushed to those connected.
    pub fn serve(
        self: &Arc<Self>,
        control: &ControlPlane,
        mut connections: tokio::sync::mpsc::Receiver<crate::p2p::ConnectionEvent>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        control.serve_mesh_requests(self.clone());
        self.clone().spawn_pusher(control.clone(), shutdown);
        let mesh = self.clone();
        tokio::spawn(async move {
            while let Some(event) = connections.recv().await {
                if let crate::p2p::ConnectionEvent::Disconnected { peer } = event {
                    mesh.forget(&peer);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_links_stay_bounded_under_churn() {
        let mut lost = HashMap::new();
        let id = |n: u64| {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&n.to_be_bytes());
            NodeId::from_bytes(bytes)
        };
        // Links lost one a millisecond: more than the map keeps.
        for n in 0..(KEPT_LOST_LINKS as u64 + 500) {
            remember_lost(&mut lost, (id(n), id(n + 1)), n);
        }
        assert_eq!(lost.len(), KEPT_LOST_LINKS);
        // The oldest went first; the newest is kept.
        assert!(!lost.contains_key(&(id(0), id(1))));
        let last = KEPT_LOST_LINKS as u64 + 499;
        assert!(lost.contains_key(&(id(last), id(last + 1))));
    }
}
