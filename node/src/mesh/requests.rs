//! What verified peers may ask a member over libp2p (the mesh protocol), and the answers.

use std::sync::Arc;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

use crate::p2p::InboundRequest;
use crate::p2p::protocol::{
    ControlRequest, ControlResponse, HandshakeMessage, MAX_PRESENCE, MeshRequest, MeshResponse,
};

use super::{Member, read};

impl Member {
    /// Serves mesh requests from peers (and refuses everything else: this is not an anchor).
    pub(super) fn serve_requests(self: Arc<Self>, mut inbound: mpsc::Receiver<InboundRequest>) {
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

    pub(super) async fn handle(
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
}
