//! The commands of the anchors domain.

use serde::{Deserialize, Serialize};
use x0t_types::{AnchorRecord, MeshId, Timestamp};

use super::Anchors;
use crate::Reject;
use crate::domain::{Applied, At};

/// What a client (or an anchor joining) asks of the anchors domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnchorCommand {
    /// Records an anchor (after it joined the Raft membership).
    Add {
        /// The anchor.
        anchor: AnchorRecord,
    },
    /// Records an anchor-join token: its id, the hash of its secret (never the secret), and
    /// when it stops being valid.
    AddJoinToken {
        /// Public identifier (part of the token text).
        token_id: String,
        /// blake3-derived hash of the secret.
        secret_hash: [u8; 32],
        /// The first instant it is no longer valid.
        expires_at: Timestamp,
    },
    /// Spends an anchor-join token (it works once) to record a new anchor. Refused unless the
    /// token exists, the presented secret hashes to its hash, and it has not expired at the
    /// proposal's time.
    RedeemJoinToken {
        /// The token's id.
        token_id: String,
        /// Hash of the secret the joining node presented.
        secret_hash: [u8; 32],
        /// The anchor it admits.
        anchor: AnchorRecord,
    },
    /// Forgets an anchor.
    Remove {
        /// Its Raft node id.
        raft_id: u64,
    },
}

impl AnchorCommand {
    /// The audit action name.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Add { .. } => "anchor.add",
            Self::AddJoinToken { .. } => "anchor_join_token.add",
            Self::RedeemJoinToken { .. } => "anchor_join_token.redeem",
            Self::Remove { .. } => "anchor.remove",
        }
    }

    /// The audit chain it belongs to: the cluster's.
    pub fn scope(&self) -> Option<MeshId> {
        None
    }
}

impl Anchors {
    /// Applies one of the domain's commands.
    pub(crate) fn apply(&mut self, command: &AnchorCommand, at: At) -> Result<Applied, Reject> {
        match command {
            AnchorCommand::Add { anchor } => self.add(anchor),
            AnchorCommand::Remove { raft_id } => self.remove(*raft_id),
            AnchorCommand::AddJoinToken {
                token_id,
                secret_hash,
                expires_at,
            } => self.add_join_token(token_id, *secret_hash, *expires_at, at),
            AnchorCommand::RedeemJoinToken {
                token_id,
                secret_hash,
                anchor,
            } => self.redeem(token_id, secret_hash, anchor, at),
        }
    }
}

/// What a successful command of this domain did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnchorOutcome {
    /// An anchor was recorded (or its record replaced).
    Added {
        /// Its Raft id.
        raft_id: u64,
    },
    /// An anchor-join token was recorded.
    JoinTokenAdded {
        /// Its id.
        token_id: String,
        /// When it expires.
        expires_at: Timestamp,
    },
    /// An anchor-join token was spent and the anchor recorded.
    JoinTokenRedeemed {
        /// The new anchor's Raft id.
        raft_id: u64,
    },
    /// An anchor was forgotten.
    Removed {
        /// Its Raft id.
        raft_id: u64,
    },
}

/// Why this domain refused a command (a refused command changes nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AnchorReject {
    /// No anchor with that Raft id.
    #[error("no anchor with raft id {raft_id}")]
    NoSuchAnchor {
        /// The id asked for.
        raft_id: u64,
    },
    /// Too many anchor-join tokens are outstanding.
    #[error(
        "{} anchor-join tokens are outstanding; use or let some expire",
        crate::MAX_ANCHOR_JOIN_TOKENS
    )]
    TooManyTokens,
    /// The token is unknown, already spent (anchor-join tokens), or its secret is wrong.
    #[error("unknown, spent or wrong token")]
    InvalidToken,
    /// The token is right but outside its validity.
    #[error("token {token_id} is not valid now (it expires at {expires_at})")]
    TokenExpired {
        /// Its id.
        token_id: String,
        /// When it expires or expired.
        expires_at: Timestamp,
    },
}
