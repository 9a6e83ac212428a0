//! The cluster: the Raft state of this anchor, the anchors (their addresses and identity keys,
//! what certificates verify against), adding and removing anchors, and anchor-join tokens.

use super::ErrorKind;
use x0t_ledger::AnchorCommand;
use x0t_ledger::AnchorReject;
use x0t_ledger::Command;
use x0t_types::api::{
    AddAnchor, AnchorKeyView, AnchorView, ClusterStatus, CreateJoinToken, JoinTokenView,
};

use super::{Caller, Service, ServiceError, hex};
use crate::token::{SecretToken, TokenKind};

/// Shortest validity of an anchor-join token.
pub const MIN_JOIN_TOKEN_TTL_SECS: u64 = 3_600;
/// Longest validity of an anchor-join token.
pub const MAX_JOIN_TOKEN_TTL_SECS: u64 = 30 * 24 * 3_600;

impl Service {
    /// The Raft state of this anchor: leader, term, voters, learners, indices (public).
    pub fn cluster_status(&self) -> ClusterStatus {
        self.control.status()
    }

    /// The anchors and their identity keys.
    pub async fn anchors(&self, stale: bool) -> Result<Vec<AnchorView>, ServiceError> {
        self.barrier(stale).await?;
        Ok(self.control.read(|l| {
            l.anchors()
                .map(|a| AnchorView {
                    raft_id: a.raft_id,
                    node_id: a.node_id.to_string(),
                    peer_id: a.peer_id.clone(),
                    addrs: a.addrs.clone(),
                    api_url: a.api_url.clone(),
                    algorithm: a.identity_key.algorithm,
                    public_key: hex(&a.identity_key.bytes),
                })
                .collect()
        }))
    }

    /// Keys of every anchor that ever signed for this cluster.
    pub fn anchor_keys(&self) -> Vec<AnchorKeyView> {
        self.control.read(|l| {
            l.anchor_keys()
                .map(|(id, key)| AnchorKeyView {
                    node_id: id.to_string(),
                    algorithm: key.algorithm,
                    public_key: hex(&key.bytes),
                })
                .collect()
        })
    }

    /// Adds an anchor to the Raft membership (learner first, voter once caught up).
    pub async fn add_anchor(
        &self,
        _caller: &Caller,
        body: AddAnchor,
    ) -> Result<ClusterStatus, ServiceError> {
        self.control.add_anchor(body.raft_id, body.node).await?;
        Ok(self.control.status())
    }

    /// Removes an anchor from the Raft membership (its process is stopped by its operator).
    pub async fn remove_anchor(
        &self,
        _caller: &Caller,
        raft_id: u64,
    ) -> Result<ClusterStatus, ServiceError> {
        self.control.remove_anchor(raft_id).await?;
        Ok(self.control.status())
    }

    /// Issues a single-use anchor-join token (`x0tanc_…`, shown once; the ledger keeps its
    /// hash) that lets a new machine join as an anchor without an admin key.
    pub async fn create_anchor_join_token(
        &self,
        caller: &Caller,
        body: CreateJoinToken,
    ) -> Result<JoinTokenView, ServiceError> {
        let ttl = body.ttl_secs.unwrap_or(MIN_JOIN_TOKEN_TTL_SECS);
        if !(MIN_JOIN_TOKEN_TTL_SECS..=MAX_JOIN_TOKEN_TTL_SECS).contains(&ttl) {
            return Err(ServiceError::bad_request(format!(
                "ttl_secs must be between {MIN_JOIN_TOKEN_TTL_SECS} (1 h) and \
                 {MAX_JOIN_TOKEN_TTL_SECS} (30 d), not {ttl}"
            )));
        }
        // The secret is drawn here, before anything is proposed; the ledger gets its hash.
        let token = SecretToken::generate(TokenKind::AnchorJoin);
        let expires_at = crate::clock::now().saturating_add(ttl * 1_000);
        let command = Command::Anchors(AnchorCommand::AddJoinToken {
            token_id: token.id.clone(),
            secret_hash: token.secret_hash(),
            expires_at,
        });
        self.control.write_as(caller.actor(), command).await?;
        Ok(JoinTokenView {
            token: token.to_text(),
            token_id: token.id.clone(),
            expires_at_ms: expires_at.as_millis(),
        })
    }

    /// The enrollment calls strangers send over libp2p, for the enrollment face to answer
    /// (the `enrollment` module); `None` once taken.
    pub(crate) fn take_enrollments(
        &self,
    ) -> Option<tokio::sync::mpsc::Receiver<crate::control::Enrollment>> {
        self.control.take_enrollments()
    }
}

/// The kind and stable code of each refusal of the anchors domain.
pub(super) fn reject_kind(reject: &AnchorReject) -> (ErrorKind, &'static str) {
    match reject {
        AnchorReject::NoSuchAnchor { .. } => (ErrorKind::NotFound, "no_such_anchor"),
        AnchorReject::InvalidToken => (ErrorKind::Forbidden, "invalid_token"),
        AnchorReject::TokenExpired { .. } => (ErrorKind::Forbidden, "token_expired"),
        AnchorReject::TooManyTokens => (ErrorKind::Conflict, "too_many_tokens"),
    }
}
