//! Peers on every connection: the certificate exchange (`Hello`) checked offline, what an
//! anchor pushes (signed mesh states, policies), and dropping peers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use x0t_types::NodeId;

use crate::clock::now;
use crate::p2p::ConnectionEvent;
use crate::p2p::protocol::{
    ControlRequest, ControlResponse, MAX_HELLO_CERTIFICATE, MeshRequest, MeshResponse, PeerHello,
};

use super::{HELLO_TIMEOUT, Member, Peer, REFUSAL_GRACE, cache, lock, multiaddr_ip, read, write};

impl Member {
    /// A connection opened or closed.
    pub(super) fn on_connection(self: Arc<Self>, event: ConnectionEvent) {
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
    pub(super) async fn greet(
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
    pub(super) fn accept_hello(
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
    pub(super) async fn greet_anchor(self: &Arc<Self>, anchor: PeerId) {
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
    pub(super) async fn take_state(self: &Arc<Self>, bytes: &[u8], from: Option<PeerId>) {
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
    pub(super) async fn fetch_policy(self: &Arc<Self>, version: u64, hint: Option<PeerId>) {
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
    pub(super) async fn drop_peer(&self, node: &NodeId, why: &str) {
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
    pub(super) fn disconnect_after_answer(&self, peer: PeerId) {
        let p2p = self.p2p.clone();
        tokio::spawn(async move {
            tokio::time::sleep(REFUSAL_GRACE).await;
            p2p.disconnect(peer).await;
        });
    }
}
