//! A member's upkeep: reaching out to anchors and neighbours, polling for the mesh state,
//! probing links every interval, and noticing peers whose sessions went silent.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use rand_core::RngCore;
use tokio::sync::watch;
use x0t_types::NodeId;

use crate::clock::now;
use crate::p2p::protocol::{
    ControlRequest, ControlResponse, MAX_PRESENCE, MeshRequest, MeshResponse, PeerPresence,
};

use super::{
    CONFIRM_TIMEOUT, Counters, Member, OLD_SESSION_GRACE, REMOTE_SESSION_SILENCE, cache, dataplane,
    lock, read, write,
};

impl Member {
    /// Dials the anchors (for state) and every known member (for sessions) not yet reached.
    pub(super) fn reach_out(self: Arc<Self>) {
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
    pub(super) async fn poll_anchor(self: &Arc<Self>) {
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
    pub(super) async fn maintain(
        self: Arc<Self>,
        state_poll: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
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
    pub(super) fn open_neighbour_sessions(self: &Arc<Self>) {
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
    pub(super) async fn probe_links(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
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
    pub(super) async fn check_remote_sessions(self: &Arc<Self>) {
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
}
