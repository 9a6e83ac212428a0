//! Raft membership: adding an anchor (learner, then voter once caught up) and removing one,
//! on the leader or through it; which peers count as members.

use std::collections::BTreeSet;

use libp2p::PeerId;
use openraft::ChangeMembers;
use openraft::error::{ClientWriteError, RaftError};
use x0t_consensus::AnchorNode;

use crate::p2p::protocol::{ControlRequest, ControlResponse};
use crate::raft_network::peer_of;

use super::{ControlError, ControlPlane};

impl ControlPlane {
    /// Adds a node as a learner, waits until it has caught up, then promotes it to voter.
    /// On a follower, asks the leader to do it.
    pub async fn add_anchor(&self, id: u64, node: AnchorNode) -> Result<(), ControlError> {
        match self.leader() {
            Some((leader, _)) if leader == self.id => self.add_anchor_local(id, node).await,
            Some((leader, leader_node)) => {
                let (peer, addrs) = peer_of(&leader_node).map_err(ControlError::Raft)?;
                match self
                    .p2p
                    .request(peer, addrs, ControlRequest::AddAnchor { id, node })
                    .await?
                {
                    ControlResponse::AddAnchor(result) => result.map_err(ControlError::Raft),
                    other => Err(ControlError::Raft(format!(
                        "leader {leader} answered {other:?}"
                    ))),
                }
            }
            None => Err(ControlError::NoLeader("no leader known".to_owned())),
        }
    }

    pub(super) async fn add_anchor_local(
        &self,
        id: u64,
        node: AnchorNode,
    ) -> Result<(), ControlError> {
        let raft_error = |e: RaftError<u64, ClientWriteError<u64, AnchorNode>>| {
            ControlError::Raft(e.to_string())
        };
        self.raft
            .add_learner(id, node, true)
            .await
            .map_err(raft_error)?;
        self.raft
            .change_membership(ChangeMembers::AddVoterIds([id].into()), false)
            .await
            .map_err(raft_error)?;
        Ok(())
    }

    /// Removes anchor `id` from the Raft membership (it is not kept as a learner). On a
    /// follower, asks the leader to do it. The removed anchor's process should then be
    /// stopped: it no longer receives the log.
    pub async fn remove_anchor(&self, id: u64) -> Result<(), ControlError> {
        match self.leader() {
            Some((leader, _)) if leader == self.id => self.remove_anchor_local(id).await,
            Some((leader, leader_node)) => {
                let (peer, addrs) = peer_of(&leader_node).map_err(ControlError::Raft)?;
                match self
                    .p2p
                    .request(peer, addrs, ControlRequest::RemoveAnchor { id })
                    .await?
                {
                    ControlResponse::RemoveAnchor(result) => {
                        result.map_err(ControlError::Membership)
                    }
                    other => Err(ControlError::Raft(format!(
                        "leader {leader} answered {other:?}"
                    ))),
                }
            }
            None => Err(ControlError::NoLeader("no leader known".to_owned())),
        }
    }

    pub(super) async fn remove_anchor_local(&self, id: u64) -> Result<(), ControlError> {
        let metrics = self.raft.metrics().borrow().clone();
        let voters: BTreeSet<u64> = metrics.membership_config.membership().voter_ids().collect();
        if !voters.contains(&id) {
            return Err(ControlError::Membership(format!(
                "anchor {id} is not a voter of this cluster (voters: {voters:?})"
            )));
        }
        if voters.len() == 1 {
            return Err(ControlError::Membership(format!(
                "anchor {id} is the last voter; a cluster cannot remove its last anchor"
            )));
        }
        self.raft
            .change_membership(ChangeMembers::RemoveVoters([id].into()), false)
            .await
            .map_err(|e| ControlError::Raft(e.to_string()))?;
        Ok(())
    }

    pub(super) fn is_member(&self, peer: &PeerId) -> bool {
        let text = peer.to_string();
        let metrics = self.raft.metrics().borrow().clone();
        let in_membership = metrics
            .membership_config
            .membership()
            .nodes()
            .any(|(_, node)| node.peer_id == text);
        in_membership
            || self
                .expected_peers
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(peer)
    }
}
