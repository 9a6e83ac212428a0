//! The inbound control protocol: Raft RPCs, forwarded writes, anchor joins and enrollments
//! from peers, answered at most `MAX_INBOUND_IN_FLIGHT` at a time.

use std::sync::Arc;
use x0t_ledger::NodeReject;
use x0t_ledger::{AnchorCommand, Command};

use libp2p::PeerId;
use tokio::sync::{Semaphore, mpsc, oneshot};
use x0t_consensus::AnchorNode;
use x0t_ledger::Reject;
use x0t_types::AnchorRecord;

use crate::p2p::InboundRequest;
use crate::p2p::protocol::{ControlRequest, ControlResponse, ForwardedWriteError};
use crate::token::{SecretToken, TokenKind};

use super::writes::check_batch;
use super::{ControlError, ControlPlane, Enrollment, MAX_INBOUND_IN_FLIGHT};

impl ControlPlane {
    /// Answers inbound control requests until the stream ends; at most
    /// [`MAX_INBOUND_IN_FLIGHT`] at a time.
    pub fn serve(&self, mut inbound: mpsc::Receiver<InboundRequest>) {
        let this = self.clone();
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(MAX_INBOUND_IN_FLIGHT));
            while let Some(request) = inbound.recv().await {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let this = this.clone();
                tokio::spawn(async move {
                    let response = this
                        .handle(request.peer, request.remote.as_ref(), request.request)
                        .await;
                    this.p2p.respond(request.channel, response).await;
                    drop(permit);
                });
            }
        });
    }

    pub(super) async fn handle(
        &self,
        peer: PeerId,
        remote: Option<&libp2p::Multiaddr>,
        request: ControlRequest,
    ) -> ControlResponse {
        let request = match request {
            // Mesh members authenticate with their certificate, not Raft membership.
            ControlRequest::Mesh(request) => {
                return match self.mesh.get() {
                    Some(members) => {
                        ControlResponse::Mesh(members.answer(self, peer, remote, request))
                    }
                    None => ControlResponse::Mesh(Err("not serving mesh members yet".to_owned())),
                };
            }
            // Enrollment: the one request a stranger may make.
            ControlRequest::JoinAnchor { token, anchor } => {
                return ControlResponse::JoinAnchor(self.join_anchor(peer, &token, anchor).await);
            }
            ControlRequest::Enroll(request) => {
                return ControlResponse::Enroll(self.enroll(peer, request).await);
            }
            ControlRequest::AddAnchor { id, node }
                if !self.is_member(&peer) && self.redeemed_for(&peer, id, &node).await =>
            {
                return ControlResponse::AddAnchor(
                    self.add_anchor(id, node).await.map_err(|e| e.to_string()),
                );
            }
            request => request,
        };
        if !self.is_member(&peer) {
            tracing::warn!(%peer, "refusing control request from a peer that is not an anchor");
            return ControlResponse::Refused("not an anchor of this cluster".to_owned());
        }
        match request {
            ControlRequest::JoinAnchor { .. }
            | ControlRequest::Enroll(_)
            | ControlRequest::Mesh(_) => ControlResponse::Refused("already handled".to_owned()),
            ControlRequest::AppendEntries(rpc) => {
                ControlResponse::AppendEntries(self.raft.append_entries(rpc).await)
            }
            ControlRequest::Vote(rpc) => ControlResponse::Vote(self.raft.vote(rpc).await),
            ControlRequest::InstallSnapshot(rpc) => {
                ControlResponse::InstallSnapshot(self.raft.install_snapshot(rpc).await)
            }
            // Forwarded writes join this node's next batch, so that under load the whole
            // cluster's writes share entries, not just each node's own.
            ControlRequest::ClientWrite { commands } => match check_batch(&commands) {
                Ok(size) => {
                    ControlResponse::ClientWrite(match self.enqueue(commands, size, true).await {
                        Ok(done) => Ok(done),
                        Err(ControlError::NoLeader(_)) => Err(ForwardedWriteError::NotLeader),
                        Err(e) => Err(ForwardedWriteError::Failed(e.to_string())),
                    })
                }
                Err(why) => ControlResponse::Refused(why),
            },
            ControlRequest::ReadIndex => {
                ControlResponse::ReadIndex(self.raft.ensure_linearizable().await)
            }
            ControlRequest::AddAnchor { id, node } => ControlResponse::AddAnchor(
                self.add_anchor_local(id, node)
                    .await
                    .map_err(|e| e.to_string()),
            ),
            ControlRequest::RemoveAnchor { id } => ControlResponse::RemoveAnchor(
                self.remove_anchor_local(id)
                    .await
                    .map_err(|e| e.to_string()),
            ),
        }
    }

    /// Passes an enrollment call to the service layer and waits for its answer.
    pub(super) async fn enroll(
        &self,
        peer: PeerId,
        request: crate::p2p::protocol::EnrollRequest,
    ) -> Result<crate::p2p::protocol::EnrollResponse, crate::p2p::protocol::EnrollError> {
        let refused = |status: u16, code: &str, message: &str| crate::p2p::protocol::EnrollError {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
        };
        let Some(sender) = self.enrollment.get() else {
            return Err(refused(
                503,
                "unavailable",
                "this node does not serve enrollment",
            ));
        };
        let (reply, answer) = oneshot::channel();
        sender
            .try_send(Enrollment {
                peer,
                request,
                reply,
            })
            .map_err(|_| refused(503, "overloaded", "too many enrollments at once; retry"))?;
        answer
            .await
            .map_err(|_| refused(500, "internal", "the enrollment was dropped"))?
    }

    /// Spends an anchor-join token for `peer`: records it as an anchor (through the leader)
    /// and answers the members it must accept Raft traffic from before it is added.
    pub(super) async fn join_anchor(
        &self,
        peer: PeerId,
        token: &str,
        anchor: AnchorRecord,
    ) -> Result<Vec<AnchorNode>, String> {
        if anchor.peer_id != peer.to_string() {
            return Err("the anchor record must name the requesting peer".to_owned());
        }
        let token = SecretToken::parse(TokenKind::AnchorJoin, token)
            .ok_or("malformed anchor-join token (x0tanc_…)")?;
        // A first check on local (possibly stale) state keeps strangers with made-up tokens
        // from writing to the log at all.
        let plausible = self.read(|ledger| {
            ledger
                .anchor_join_token(&token.id)
                .is_some_and(|t| token.matches(&t.secret_hash))
                || ledger
                    .anchors()
                    .any(|a| a.raft_id == anchor.raft_id && a.peer_id == anchor.peer_id)
        });
        if !plausible {
            tracing::warn!(%peer, "refusing an anchor join with an unknown or wrong token");
            return Err(format!(
                "anchor-join token refused: {}",
                Reject::Nodes(NodeReject::InvalidToken)
            ));
        }
        let (raft_id, peer_id) = (anchor.raft_id, anchor.peer_id.clone());
        match self
            .write(Command::Anchors(AnchorCommand::RedeemJoinToken {
                token_id: token.id.clone(),
                secret_hash: token.secret_hash(),
                anchor,
            }))
            .await
        {
            Ok(_) => {}
            // A retry after a lost answer: the token is spent, by this very node.
            Err(ControlError::Rejected(Reject::Nodes(NodeReject::InvalidToken)))
                if self.read(|l| {
                    l.anchors()
                        .any(|a| a.raft_id == raft_id && a.peer_id == peer_id)
                }) => {}
            Err(e) => return Err(format!("anchor-join token refused: {e}")),
        }
        tracing::info!(%peer, raft_id, "anchor-join token redeemed");
        let status = self.status();
        Ok(status
            .voters
            .into_values()
            .chain(status.learners.into_values())
            .collect())
    }

    /// Whether `peer` redeemed a join token for raft id `id` with this node record
    /// (linearizable: the redemption may have been applied on the leader only so far).
    pub(super) async fn redeemed_for(&self, peer: &PeerId, id: u64, node: &AnchorNode) -> bool {
        let text = peer.to_string();
        if node.peer_id != text || self.read_barrier().await.is_err() {
            return false;
        }
        self.read(|ledger| {
            ledger
                .anchors()
                .any(|a| a.raft_id == id && a.peer_id == text)
        })
    }
}
