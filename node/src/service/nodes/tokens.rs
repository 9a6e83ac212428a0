//! Join tokens of a mesh: issue (single use or reusable, pre-approved or not, with tags and a
//! TTL), re-issue for a replaced device, and rotate (every earlier token stops working).
//! The secret is drawn and the token signed here, before anything is proposed.

use std::sync::atomic::Ordering;
use x0t_ledger::NodeOutcome;
use x0t_ledger::{Command, NodeCommand, Outcome};

use x0t_crypto::{JoinToken, SignedJoinToken};
use x0t_ledger::{NodeRecord, hex_id};
use x0t_types::api::{CreateToken, RotateTokens, TokenView};
use x0t_types::{MeshId, TokenUsage};

use crate::control::now;
use crate::service::{Caller, Service, ServiceError, mesh_id, parse_tags};

/// Default lifetime of a join token.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 24 * 3_600;
/// Shortest and longest join-token lifetime, in seconds.
pub const TOKEN_TTL_SECS: (u64, u64) = (3_600, 30 * 24 * 3_600);

impl Service {
    /// Issues a join token (`for_node`: a re-issued token that replaces that node).
    async fn issue_token(
        &self,
        caller: &Caller,
        mesh: MeshId,
        body: CreateToken,
        for_node: Option<&NodeRecord>,
    ) -> Result<TokenView, ServiceError> {
        let ttl = body.ttl_secs.unwrap_or(DEFAULT_TOKEN_TTL_SECS);
        let (min, max) = TOKEN_TTL_SECS;
        if !(min..=max).contains(&ttl) {
            return Err(ServiceError::bad_request(format!(
                "ttl_secs must be between {min} (1 h) and {max} (30 d), not {ttl}"
            )));
        }
        let usage = match (body.reusable, body.uses) {
            (false, None) => TokenUsage::SingleUse,
            (false, Some(_)) => {
                return Err(ServiceError::bad_request(
                    "uses applies to reusable tokens (add reusable: true)",
                ));
            }
            (true, Some(0)) => {
                return Err(ServiceError::bad_request("uses must be at least 1"));
            }
            (true, max_uses) => TokenUsage::Reusable { max_uses },
        };
        let tags = match for_node {
            Some(node) => node.tags.clone(),
            None => parse_tags(&body.tags)?,
        };
        // Randomness and signing happen here, before anything is proposed.
        let token = JoinToken::generate(
            mesh.clone(),
            usage,
            body.pre_approved,
            tags.clone(),
            now(),
            ttl * 1_000,
            self.control.identity().node_id(),
        )
        .map_err(|e| ServiceError::bad_request(e.to_string()))?;
        let command = Command::Nodes(NodeCommand::AddJoinToken {
            mesh: mesh.clone(),
            token_id: token.token_id,
            secret_hash: token.secret.hash(),
            usage,
            pre_approved: body.pre_approved,
            tags: tags.clone(),
            not_before: token.not_before,
            not_after: token.not_after,
            for_node: for_node.map(|n| n.node_id),
        });
        let signed = SignedJoinToken::sign(token, self.control.identity())
            .map_err(|e| ServiceError::internal(format!("signing the token: {e}")))?;
        self.write(caller.actor(), command).await?;
        self.metrics.tokens_issued.fetch_add(1, Ordering::Relaxed);
        let payload = signed.payload();
        Ok(TokenView {
            token: signed.to_text(),
            token_id: hex_id(&payload.token_id),
            mesh: mesh.to_string(),
            usage: match usage {
                TokenUsage::SingleUse => "single_use",
                TokenUsage::Reusable { .. } => "reusable",
            }
            .to_owned(),
            max_uses: usage.limit(),
            pre_approved: payload.pre_approved,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            not_before_ms: payload.not_before.as_millis(),
            not_after_ms: payload.not_after.as_millis(),
            for_node: for_node.map(|n| n.node_id.to_string()),
        })
    }

    /// Issues a join token for a mesh.
    pub async fn create_token(
        &self,
        caller: &Caller,
        mesh: &str,
        body: CreateToken,
    ) -> Result<TokenView, ServiceError> {
        self.issue_token(caller, mesh_id(mesh)?, body, None).await
    }

    /// Issues a single-use token that re-admits an approved node under a new key (a wiped or
    /// replaced device): the new registration is approved at once with the node's tags and
    /// address, and the old identity is revoked.
    pub async fn reissue_token(
        &self,
        caller: &Caller,
        mesh: &str,
        id: &str,
        body: CreateToken,
    ) -> Result<TokenView, ServiceError> {
        let mesh = mesh_id(mesh)?;
        let node = self.fresh_node(&mesh, id).await?;
        if body.reusable || body.uses.is_some() || !body.tags.is_empty() {
            return Err(ServiceError::bad_request(
                "a re-issued token is single use and carries the node's own tags",
            ));
        }
        self.issue_token(caller, mesh, body, Some(&node)).await
    }

    /// Invalidates every join token of the mesh issued so far.
    pub async fn rotate_tokens(
        &self,
        caller: &Caller,
        mesh: &str,
    ) -> Result<RotateTokens, ServiceError> {
        let command = Command::Nodes(NodeCommand::RotateJoinTokens {
            mesh: mesh_id(mesh)?,
        });
        match self.write(caller.actor(), command).await? {
            Outcome::Nodes(NodeOutcome::JoinTokensRotated { epoch, invalidated }) => {
                Ok(RotateTokens { epoch, invalidated })
            }
            other => Err(ServiceError::internal(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }
}
