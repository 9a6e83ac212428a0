//! Value types of the node lifecycle: who did something, what state a node is in, which plan a
//! mesh is on, how a join token may be used.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{NodeId, TypesError};

/// Who asked for a change; recorded in the audit chain.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Actor {
    /// An admin (or viewer) API key, by its public id.
    ApiKey {
        /// The key's id (the middle part of `x0tadm_<id>_<secret>`).
        key_id: String,
    },
    /// A node acting for itself (registration, signed with its own identity key).
    Node {
        /// The node.
        node_id: NodeId,
    },
    /// An anchor acting on its own (bootstrap, anchor joins, housekeeping).
    Anchor {
        /// The anchor.
        node_id: NodeId,
    },
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiKey { key_id } => write!(f, "key:{key_id}"),
            Self::Node { node_id } => write!(f, "node:{node_id}"),
            Self::Anchor { node_id } => write!(f, "anchor:{node_id}"),
        }
    }
}

impl FromStr for Actor {
    type Err = TypesError;

    /// Parses the display form: `key:<id>`, `node:<node id>`, `anchor:<node id>`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || TypesError::UnknownVariant {
            kind: "actor",
            value: crate::error::quote(text),
            expected: "key:<id>, node:<node id>, anchor:<node id>",
        };
        let (kind, id) = text.split_once(':').ok_or_else(bad)?;
        match kind {
            "key" if !id.is_empty() => Ok(Self::ApiKey {
                key_id: id.to_owned(),
            }),
            "node" => Ok(Self::Node {
                node_id: id.parse()?,
            }),
            "anchor" => Ok(Self::Anchor {
                node_id: id.parse()?,
            }),
            _ => Err(bad()),
        }
    }
}

/// Where a node is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Registered, waiting for an admin.
    PendingApproval,
    /// Holds a certificate.
    Approved,
    /// An admin said no; the node may not register again with the same key.
    Rejected,
    /// Its certificate is withdrawn; it may re-enroll with a new key.
    Revoked,
}

impl NodeState {
    /// Every state.
    pub const ALL: [Self; 4] = [
        Self::PendingApproval,
        Self::Approved,
        Self::Rejected,
        Self::Revoked,
    ];

    /// The name used in the API and CLI.
    pub const fn name(self) -> &'static str {
        match self {
            Self::PendingApproval => "pending_approval",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Revoked => "revoked",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NodeState {
    type Err = TypesError;

    /// Accepts the API names and the short `pending`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "pending" {
            return Ok(Self::PendingApproval);
        }
        Self::ALL
            .into_iter()
            .find(|s| s.name() == text)
            .ok_or_else(|| TypesError::UnknownVariant {
                kind: "node state",
                value: crate::error::quote(text),
                expected: "pending_approval (or pending), approved, rejected, revoked",
            })
    }
}

/// A mesh's commercial plan: recorded now, enforced later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// The free tier.
    #[default]
    Starter,
    /// Paid, per node.
    Pro,
    /// Contract.
    Enterprise,
}

impl Plan {
    /// Every plan.
    pub const ALL: [Self; 3] = [Self::Starter, Self::Pro, Self::Enterprise];

    /// The name used in the API and CLI.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Starter => "starter",
            Self::Pro => "pro",
            Self::Enterprise => "enterprise",
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Plan {
    type Err = TypesError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| TypesError::UnknownVariant {
                kind: "plan",
                value: crate::error::quote(text),
                expected: "starter, pro, enterprise",
            })
    }
}

/// What an API key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// Everything, including every mutating route.
    Admin,
    /// Reads only; a mutating route answers 403.
    Viewer,
}

impl KeyRole {
    /// The name used in the API and CLI.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Viewer => "viewer",
        }
    }
}

impl FromStr for KeyRole {
    type Err = TypesError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "admin" => Ok(Self::Admin),
            "viewer" => Ok(Self::Viewer),
            _ => Err(TypesError::UnknownVariant {
                kind: "key role",
                value: crate::error::quote(text),
                expected: "admin, viewer",
            }),
        }
    }
}

/// How often a join token may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TokenUsage {
    /// Exactly one registration.
    SingleUse,
    /// Many registrations, up to `max_uses` if set.
    Reusable {
        /// The limit, or `None` for no limit (the TTL still applies).
        max_uses: Option<u32>,
    },
}

impl TokenUsage {
    /// The most registrations it admits (`None`: unlimited).
    pub const fn limit(self) -> Option<u32> {
        match self {
            Self::SingleUse => Some(1),
            Self::Reusable { max_uses } => max_uses,
        }
    }
}

/// An ML-DSA public key as the ledger stores it: algorithm code and raw bytes. Parsed and
/// checked by `x0t-crypto`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicKeyBytes {
    /// The algorithm's code (`x0t_crypto::SigAlgorithm::code`).
    pub algorithm: u8,
    /// The raw public key.
    #[serde(with = "crate::bytes")]
    pub bytes: Vec<u8>,
}

/// A presented join token, as it travels in a command: its id and the hash of the secret the
/// node presented (the secret itself never enters the log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenProof {
    /// The token's id.
    pub token_id: [u8; 16],
    /// `TokenSecret::hash` of the presented secret.
    pub secret_hash: [u8; 32],
}
