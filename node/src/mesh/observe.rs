//! What a member reports about itself: its MAPE-K events, SLO figures, pings through the mesh,
//! and the policy decision of a flow.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand_core::RngCore;
use tokio::sync::watch;
use x0t_policy::{Endpoint, Protocol};
use x0t_types::NodeId;

use crate::clock::now;
use session::Session;

use super::{
    FAILOVER_WINDOW, Member, Onboarding, Peer, SAME_FAILURE, dataplane, lock, read, session, write,
};

impl Member {
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
    pub(super) async fn send_ping(
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
    pub(super) fn decide(
        &self,
        peer: &Peer,
        outbound: bool,
        protocol: Protocol,
        port: u16,
    ) -> bool {
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
