//! Join tokens: checking one the way registration will, recording, rotating.

use crate::{NodeOutcome, NodeReject};
use x0t_types::{MeshId, NodeId, NodeState, Tag, Timestamp, TokenProof, TokenUsage};

use super::{
    Deps, JoinTokenRecord, Key, MAX_JOIN_TOKENS_PER_MESH, MeshKeeper, Nodes, TOKEN_TTL_RANGE_MS,
    hex_id,
};
use crate::domain::{Applied, constant_time_eq};
use crate::{Outcome, Reject};

impl Nodes {
    /// Checks a token the way registering with it will (`now`: the caller's clock).
    pub(crate) fn check_join_token(
        &self,
        meshes: &dyn MeshKeeper,
        mesh: &MeshId,
        proof: &TokenProof,
        now: Timestamp,
    ) -> Result<&JoinTokenRecord, Reject> {
        let current_epoch = meshes.token_epoch(mesh).unwrap_or(0);
        let token = self
            .token(mesh, &proof.token_id)
            .filter(|t| constant_time_eq(&t.secret_hash, &proof.secret_hash))
            .ok_or(Reject::Nodes(NodeReject::InvalidToken))?;
        let id = hex_id(&token.token_id);
        if token.epoch != current_epoch {
            return Err(Reject::Nodes(NodeReject::TokenRotated { token_id: id }));
        }
        if now < token.not_before || now >= token.not_after {
            return Err(Reject::Nodes(NodeReject::TokenExpired {
                token_id: id,
                expires_at: token.not_after,
            }));
        }
        if token.usage.limit().is_some_and(|limit| token.uses >= limit) {
            return Err(Reject::Nodes(NodeReject::TokenUsedUp {
                token_id: id,
                uses: token.uses,
            }));
        }
        if let Some(old) = token.for_node
            && self
                .get(mesh, &old)
                .is_none_or(|n| n.state != NodeState::Approved)
        {
            return Err(Reject::Nodes(NodeReject::InvalidState {
                node: old.to_string(),
                state: self.get(mesh, &old).map_or(NodeState::Revoked, |n| n.state),
                wanted: "approved (to be replaced)".to_owned(),
            }));
        }
        Ok(token)
    }

    /// `AddJoinToken`: records a token (forgetting dead ones), bounded per mesh.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_join_token(
        &mut self,
        deps: &Deps<'_>,
        mesh: &MeshId,
        token_id: [u8; 16],
        secret_hash: [u8; 32],
        usage: TokenUsage,
        pre_approved: bool,
        tags: &[Tag],
        validity: (Timestamp, Timestamp),
        for_node: Option<NodeId>,
        now: Timestamp,
    ) -> Result<Applied, Reject> {
        deps.meshes.require_mesh(mesh)?;
        let epoch = deps.meshes.token_epoch(mesh).unwrap_or(0);
        let (not_before, not_after) = validity;
        let ttl = not_after.as_millis().saturating_sub(not_before.as_millis());
        let (min, max) = TOKEN_TTL_RANGE_MS;
        if not_after <= not_before || !(min..=max).contains(&ttl) {
            return Err(Reject::Invalid(format!(
                "a join token lives between 1 hour and 30 days, not {} s",
                ttl / 1_000
            )));
        }
        if usage == (TokenUsage::Reusable { max_uses: Some(0) }) {
            return Err(Reject::Invalid("a usage limit of 0 admits nobody".into()));
        }
        if tags.len() > x0t_crypto::MAX_CERT_TAGS || tags.windows(2).any(|p| p[0] >= p[1]) {
            return Err(Reject::Invalid(format!(
                "at most {} tags, sorted and unique",
                x0t_crypto::MAX_CERT_TAGS
            )));
        }
        if let Some(old) = for_node {
            let node = self.existing(deps, mesh, &old)?;
            if node.state != NodeState::Approved {
                return Err(Reject::Nodes(NodeReject::InvalidState {
                    node: old.to_string(),
                    state: node.state,
                    wanted: "approved".to_owned(),
                }));
            }
        }
        if self.token(mesh, &token_id).is_some() {
            return Err(Reject::Invalid("join token id in use".into()));
        }
        // Forget tokens nobody can use any more, then check the bound.
        let dead: Vec<[u8; 16]> = self
            .tokens_of(mesh)
            .filter(|t| {
                t.epoch != epoch
                    || t.not_after <= now
                    || t.usage.limit().is_some_and(|limit| t.uses >= limit)
            })
            .map(|t| t.token_id)
            .collect();
        let live = self.tokens_of(mesh).count() - dead.len();
        if live >= MAX_JOIN_TOKENS_PER_MESH {
            return Err(Reject::Nodes(NodeReject::TooManyTokens {
                limit: MAX_JOIN_TOKENS_PER_MESH,
            }));
        }
        for id in dead {
            self.join_tokens.remove(&(mesh.clone(), id));
            self.changed.insert(Key::JoinToken(mesh.clone(), id));
        }
        self.join_tokens.insert(
            (mesh.clone(), token_id),
            JoinTokenRecord {
                mesh: mesh.clone(),
                token_id,
                secret_hash,
                usage,
                uses: 0,
                pre_approved,
                tags: tags.to_vec(),
                not_before,
                not_after,
                epoch,
                for_node,
                created_at: now,
            },
        );
        self.changed.insert(Key::JoinToken(mesh.clone(), token_id));
        let tag_names: Vec<&str> = tags.iter().map(|t| t.as_str()).collect();
        let details = format!(
            "{usage:?}, pre-approved {pre_approved}, tags [{}], valid {not_before} to {not_after}{}",
            tag_names.join(","),
            for_node.map_or_else(String::new, |n| format!(", replaces node {n}"))
        );
        Ok(Applied::new(
            Outcome::Nodes(NodeOutcome::JoinTokenAdded {
                token_id,
                not_after,
            }),
            hex_id(&token_id),
            details,
        ))
    }

    /// `RotateJoinTokens`: a new epoch in the mesh; every token issued so far stops working.
    pub(crate) fn rotate(&mut self, deps: &mut Deps<'_>, mesh: &MeshId) -> Result<Applied, Reject> {
        let epoch = deps.meshes.bump_token_epoch(mesh)?;
        let invalidated = self.tokens_of(mesh).filter(|t| t.epoch < epoch).count() as u32;
        Ok(Applied::new(
            Outcome::Nodes(NodeOutcome::JoinTokensRotated { epoch, invalidated }),
            mesh.to_string(),
            format!("epoch {epoch}, {invalidated} token(s) invalidated"),
        ))
    }
}
