//! Sessions with peers: the signed hybrid handshake (direct or relayed through other members),
//! rekeying, and installing the keys the data plane seals with.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use crate::clock::now;
use crate::p2p::protocol::{
    ControlRequest, ControlResponse, HandshakeMessage, MAX_HELLO_CERTIFICATE, MAX_RELAYED_BYTES,
    MeshRequest, MeshResponse, RelayedHandshake,
};
use session::Session;

use super::{
    Counters, Handshake, MAX_RESPONDING, Member, Peer, RELAY_UNREACHABLE, lock, read, session,
    write,
};

impl Member {
    pub(super) fn new_index(&self) -> u32 {
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
    pub(super) async fn ensure_session(
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
    pub(super) async fn handshake(
        self: &Arc<Self>,
        peer: &Arc<Peer>,
    ) -> Result<Arc<Session>, Handshake> {
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

    pub(super) fn due_for_rekey(&self, session: &Session) -> bool {
        self.rekey.due(
            session.sealed_count(),
            session.created.elapsed().as_millis() as u64,
        )
    }

    /// Makes `session` the one packets to `peer` are sealed with; the one it replaces keeps
    /// opening frames for [`OLD_SESSION_GRACE`].
    pub(super) fn install(&self, peer: &Peer, session: Arc<Session>) {
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

    /// The responder's side of a handshake message from `from` (a neighbour, or a member
    /// whose message came through relays).
    pub(super) async fn answer_handshake(
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
    pub(super) async fn take_relayed(
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
    pub(super) async fn session_request(
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
}
