//! The member's side of link-state routing (issue 7, first steps): every second it signs
//! what its link probes measured ([`x0t_crypto::LinkStateAdvert`]) and floods it to its
//! peers; it verifies what others flood (the origin's certificate against the anchors, then
//! the origin's signature), keeps the newest state per origin in the routing core's
//! [`LinkStateDb`], and recomputes the routes in use ([`x0t_routing::stable_routes`]: a
//! broken path is left at once, a working one only for a clearly better one). Each peer's
//! next hop follows its route: the data plane sends its frames to that neighbour, which
//! relays them ([`super::dataplane`]). Members met only through link states become peers
//! reachable through relays.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use x0t_crypto::{AdvertisedLink, LinkStateAdvert, SignedLinkState};
use x0t_routing::{LinkMeasure, LinkState, LinkStateDb, Routes};
use x0t_types::{NodeId, Timestamp};

use super::{Counters, Member, Peer, lock};
use crate::clock::now;
use crate::p2p::protocol::{ControlRequest, MeshRequest};

/// Link-state sends in flight at most; beyond it a flood skips peers (the origin's next
/// state, a second later, supersedes the one skipped).
const MAX_FLOODS_IN_FLIGHT: usize = 1_024;

/// A state not refreshed for this long is dropped: its origin went silent (origins
/// re-advertise every second).
pub(crate) const LINK_STATE_MAX_AGE_MS: u64 = 5_000;

/// What this member knows of the mesh's links.
#[derive(Debug, Default)]
pub struct RoutingState {
    /// Newest verified state per origin.
    pub(crate) db: LinkStateDb,
    /// Best paths from this node.
    pub(crate) routes: Routes,
    /// The last sequence this node advertised.
    sequence: u64,
    /// Bounds the sends in flight.
    floods: Option<Arc<tokio::sync::Semaphore>>,
    /// The last event whose failover time went to the anchors.
    failovers_reported: u64,
}

impl Member {
    /// Signs this node's current links and floods them to every peer.
    pub(crate) async fn advertise_links(self: &Arc<Self>) {
        let now_ms = now().as_millis();
        let mut links: Vec<AdvertisedLink> = self
            .neighbours()
            .iter()
            .filter_map(|peer| {
                let health = peer.link_health();
                (health.alive).then(|| AdvertisedLink {
                    neighbor: peer.cert.node_id,
                    rtt_micros: health.rtt_micros.unwrap_or(0),
                    loss_permille: health.loss_permille,
                })
            })
            .collect();
        links.sort_by_key(|l| l.neighbor);
        links.truncate(x0t_crypto::MAX_ADVERTISED_LINKS);
        let sequence = {
            let mut routing = lock(&self.routing);
            // A restarted node continues above what it sent before: the clock in ms.
            routing.sequence = (routing.sequence + 1).max(now_ms);
            routing.sequence
        };
        let advert = LinkStateAdvert {
            mesh: self.mesh.clone(),
            origin: self.node_id,
            sequence,
            issued_at: Timestamp(now_ms),
            links,
        };
        let signed = match SignedLinkState::sign(advert.clone(), &self.identity) {
            Ok(signed) => signed,
            Err(e) => {
                tracing::warn!(%e, "cannot sign this node's link state");
                return;
            }
        };
        let changes;
        {
            let mut routing = lock(&self.routing);
            let _ = routing.db.accept(to_core(&advert), now_ms);
            routing
                .db
                .expire(now_ms, LINK_STATE_MAX_AGE_MS, &self.node_id);
            changes = replan(self.node_id, &mut routing);
        }
        self.report(changes);
        let state = signed.encode();
        self.tell_anchors(&state);
        self.flood(state, self.cert_bytes.clone(), None);
    }

    /// Sends this node's own link state to the anchors it is connected to: they keep the
    /// mesh's topology for the API and the browser console.
    fn tell_anchors(&self, state: &[u8]) {
        let permits = self.flood_permits();
        let anchors: Vec<libp2p::PeerId> = super::read(&self.anchors_up).iter().copied().collect();
        self.report_failovers(&anchors);
        for anchor in anchors {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                Counters::bump(&self.counters.link_states_unsent);
                continue;
            };
            let p2p = self.p2p.clone();
            let request = ControlRequest::Mesh(MeshRequest::LinkState {
                state: state.to_vec(),
                certificate: Vec::new(),
            });
            tokio::spawn(async move {
                let _ = p2p.request(anchor, Vec::new(), request).await;
                drop(permit);
            });
        }
    }

    /// Sends the anchors the failover times measured since the last report (the mesh's SLO
    /// figures); kept for later while no anchor is connected.
    fn report_failovers(&self, anchors: &[libp2p::PeerId]) {
        use crate::p2p::protocol::MAX_REPORTED_FAILOVERS;
        if anchors.is_empty() {
            return;
        }
        let after = lock(&self.routing).failovers_reported;
        let events = self.events_after(after, MAX_REPORTED_FAILOVERS * 4);
        let Some(last) = events.last().map(|e| e.id) else {
            return;
        };
        lock(&self.routing).failovers_reported = last;
        let durations_ms: Vec<u32> = events
            .iter()
            .filter(|e| e.kind == crate::events::EventKind::PathSwitched)
            .filter_map(|e| e.duration_ms)
            .map(|ms| u32::try_from(ms).unwrap_or(u32::MAX))
            .take(MAX_REPORTED_FAILOVERS)
            .collect();
        if durations_ms.is_empty() {
            return;
        }
        for anchor in anchors {
            let p2p = self.p2p.clone();
            let request = ControlRequest::Mesh(MeshRequest::Failovers {
                durations_ms: durations_ms.clone(),
            });
            let anchor = *anchor;
            tokio::spawn(async move {
                let _ = p2p.request(anchor, Vec::new(), request).await;
            });
        }
    }

    fn flood_permits(&self) -> Arc<tokio::sync::Semaphore> {
        lock(&self.routing)
            .floods
            .get_or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_FLOODS_IN_FLIGHT)))
            .clone()
    }

    /// Sends a link state (and its origin's certificate) to every peer but `except`.
    fn flood(&self, state: Vec<u8>, certificate: Vec<u8>, except: Option<NodeId>) {
        let permits = self.flood_permits();
        for peer in self.neighbours() {
            if Some(peer.cert.node_id) == except {
                continue;
            }
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                Counters::bump(&self.counters.link_states_unsent);
                continue;
            };
            let p2p = self.p2p.clone();
            let request = ControlRequest::Mesh(MeshRequest::LinkState {
                state: state.clone(),
                certificate: certificate.clone(),
            });
            tokio::spawn(async move {
                let _ = p2p.request(peer.peer_id, Vec::new(), request).await;
                drop(permit);
            });
        }
    }

    /// A link state flooded by peer `from`: checked, stored if newer, passed on.
    pub(crate) fn take_link_state(
        self: &Arc<Self>,
        state: &[u8],
        certificate: &[u8],
        from: &Peer,
    ) -> Result<(), String> {
        let refused = |why: String| {
            Counters::bump(&self.counters.link_states_refused);
            why
        };
        let signed = SignedLinkState::decode(state)
            .map_err(|e| refused(format!("unreadable link state: {e}")))?;
        let origin = signed.payload().origin;
        if origin == self.node_id {
            return Ok(()); // our own, back from a neighbour
        }
        let now = now();
        // The origin's certificate: a verified peer's, or the one sent along, checked
        // against the anchors like any peer's.
        let known = super::read(&self.peers).get(&origin).cloned();
        let cert = match known {
            Some(peer) => peer.cert.clone(),
            None => {
                let cert = super::read(&self.trust)
                    .verify_certificate(certificate, None, now)
                    .map_err(|e| refused(format!("link state of {}: {e}", origin.short())))?;
                if cert.node_id != origin {
                    return Err(refused(
                        "the certificate sent along names another node".to_owned(),
                    ));
                }
                cert
            }
        };
        if super::read(&self.trust).is_revoked(&origin) {
            return Err(refused(format!("{} is revoked", origin.short())));
        }
        let advert = signed
            .verify(&cert.identity_key, now)
            .map_err(|e| refused(format!("link state of {}: {e}", origin.short())))?;
        if advert.mesh != self.mesh {
            return Err(refused("link state of another mesh".to_owned()));
        }
        // A member this node has no connection to: reachable through relays from now on.
        self.remember_remote(&cert);
        let (accepted, changes) = {
            let mut routing = lock(&self.routing);
            // A link the origin reported before and no longer does has died (or left): the
            // origin declared it dead after the monitor's silence, so the failure began
            // about that long ago. Path switches soon after are its failover.
            let lost_link = routing.db.get(&origin).is_some_and(|before| {
                before
                    .links
                    .iter()
                    .any(|l| !advert.links.iter().any(|n| n.neighbor == l.neighbor))
            });
            if lost_link {
                let silence = x0t_routing::MonitorConfig::default().dead_after_us;
                self.last_remote_failure_us.fetch_max(
                    self.micros().saturating_sub(silence).max(1),
                    Ordering::AcqRel,
                );
            }
            let accepted = routing
                .db
                .accept(to_core(advert), now.as_millis())
                .map_err(|e| e.to_string());
            let mut changes = Vec::new();
            if matches!(accepted, Ok(x0t_routing::Accepted::Newer)) {
                changes = replan(self.node_id, &mut routing);
            }
            (accepted, changes)
        };
        self.report(changes);
        match accepted {
            Ok(x0t_routing::Accepted::Newer) => {
                self.flood(
                    state.to_vec(),
                    certificate.to_vec(),
                    Some(from.cert.node_id),
                );
                Ok(())
            }
            Ok(_) => {
                self.counters
                    .link_states_stale
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(why) => Err(refused(why)),
        }
    }

    /// Forgets what `node` advertised (it was dropped: revoked or expired).
    pub(crate) fn forget_links(&self, node: &NodeId) {
        let changes = {
            let mut routing = lock(&self.routing);
            routing.db.remove(node);
            replan(self.node_id, &mut routing)
        };
        self.report(changes);
    }

    /// Records route changes (Plan) and points each affected peer's frames at its new next
    /// hop (Execute).
    fn report(&self, changes: Vec<RouteChange>) {
        for change in changes {
            self.event(
                crate::events::EventKind::RouteChanged,
                Some(&change.destination),
                change.detail,
            );
            let Some(peer) = super::read(&self.peers).get(&change.destination).cloned() else {
                continue;
            };
            // Direct when the route is, or when there is none (a neighbour whose link state
            // has not arrived yet is still reached directly).
            let via = change.next_hop.filter(|hop| *hop != change.destination);
            let before = std::mem::replace(&mut *super::write(&peer.via), via);
            if before != via && peer.session().is_some() {
                let how = match via {
                    Some(hop) => format!("frames now go through {}", hop.short()),
                    None if change.next_hop.is_some() => "frames now go direct".to_owned(),
                    None => "no route: frames go to its last direct endpoint".to_owned(),
                };
                self.event_timed(
                    crate::events::EventKind::PathSwitched,
                    Some(&change.destination),
                    how,
                    // A failover: the path left was broken.
                    change
                        .broken
                        .then(|| self.since_failure())
                        .flatten()
                        .map(|d| d.as_millis() as u64),
                );
            }
        }
    }

    /// The mesh as the link states describe it, for people and the UI's graph.
    pub fn topology(&self) -> super::local_api::Topology {
        use super::local_api::{Topology, TopologyNode};
        let (routes, views, origins) = {
            let routing = lock(&self.routing);
            (
                routing.routes.clone(),
                x0t_routing::link_views(&routing.db),
                routing.db.states().map(|s| s.origin).collect::<Vec<_>>(),
            )
        };
        let peers = super::read(&self.peers).clone();
        let mut ids: std::collections::BTreeSet<NodeId> = peers.keys().copied().collect();
        ids.extend(origins);
        ids.insert(self.node_id);
        let nodes = ids
            .into_iter()
            .map(|id| {
                let peer = peers.get(&id);
                let route = routes.get(&id);
                TopologyNode {
                    node_id: id.to_string(),
                    overlay_ip: if id == self.node_id {
                        Some(self.cert.overlay_ip.to_string())
                    } else {
                        peer.map(|p| p.cert.overlay_ip.to_string())
                    },
                    local: id == self.node_id,
                    neighbour: peer.is_some_and(|p| p.direct().is_some()),
                    reachable: id == self.node_id || route.is_some(),
                    via: route
                        .filter(|r| r.next_hop != id)
                        .map(|r| r.next_hop.to_string()),
                }
            })
            .collect();
        let links = views
            .into_iter()
            .map(super::local_api::topology_link)
            .collect();
        Topology {
            node_id: self.node_id.to_string(),
            nodes,
            links,
        }
    }

    /// The routes and how many origins' states are held.
    pub fn routes(&self) -> (Routes, usize) {
        let routing = lock(&self.routing);
        (routing.routes.clone(), routing.db.len())
    }
}

/// A destination whose next hop changed, appeared or vanished.
#[derive(Debug)]
pub(crate) struct RouteChange {
    destination: NodeId,
    /// `None`: unreachable.
    next_hop: Option<NodeId>,
    /// Whether the path it leaves was broken (a failover), not merely worse.
    broken: bool,
    detail: String,
}

/// Recomputes the routes in use; answers each destination whose next hop changed.
fn replan(me: NodeId, routing: &mut RoutingState) -> Vec<RouteChange> {
    let new = x0t_routing::stable_routes(
        me,
        &routing.db,
        &routing.routes,
        x0t_routing::Switch::default(),
        |_| true,
    );
    let mut changes = Vec::new();
    for (destination, route) in new.iter() {
        let old = routing.routes.get(destination);
        let before = old.map(|r| r.next_hop);
        if before != Some(route.next_hop) {
            let broken = old.is_some_and(|old| {
                x0t_routing::path_cost(me, &old.path, &routing.db, |_| true).is_none()
            });
            let how = if route.path.len() == 1 {
                "direct".to_owned()
            } else {
                format!("via {} ({} relays)", route.next_hop.short(), route.relays())
            };
            changes.push(RouteChange {
                destination: *destination,
                next_hop: Some(route.next_hop),
                broken,
                detail: format!("{how}, cost {} µs", route.cost),
            });
        }
    }
    for (destination, _) in routing.routes.iter() {
        if new.get(destination).is_none() {
            changes.push(RouteChange {
                destination: *destination,
                next_hop: None,
                broken: true,
                detail: crate::events::UNREACHABLE.to_owned(),
            });
        }
    }
    routing.routes = new;
    changes
}

/// The routing core's view of a verified advert.
fn to_core(advert: &LinkStateAdvert) -> LinkState {
    LinkState {
        origin: advert.origin,
        sequence: advert.sequence,
        links: advert
            .links
            .iter()
            .map(|l| LinkMeasure {
                neighbor: l.neighbor,
                rtt_micros: l.rtt_micros,
                loss_permille: l.loss_permille,
            })
            .collect(),
    }
}
