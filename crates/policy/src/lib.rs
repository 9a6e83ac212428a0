//! The x0t policy engine: who may open flows to whom.
//!
//! A mesh's policy is a TOML document (see `docs/policy.md`): groups of nodes, built-in
//! profiles (`robot-to-server`, `deny-east-west`), `allow`/`deny` rules between selectors
//! (tags, groups, device classes, node ids) with ports and protocols, post-quantum profiles
//! per device class, and policy tests that must pass before the document is accepted.
//!
//! Semantics: default deny; a matching `deny` beats every `allow`; rules are directional
//! (allowing A → B lets B reply on that flow, but B opening a flow to A needs a rule of its
//! own); with `deny-east-west`, two nodes that share a segment tag may talk only if a matching
//! allow rule names that tag on both sides.
//!
//! [`PolicyDocument::parse`] validates a document (errors with line and column);
//! [`Policy`] compiles it into an index so a decision touches only the rules whose selectors
//! mention the flow's endpoints; [`reference::decide`] is the plain rule-by-rule evaluator the
//! compiled one is tested (and benchmarked) against.
//!
//! **Architecture Invariant:** this crate does no I/O, reads no clock and draws no randomness:
//! the ledger parses and tests documents inside `apply`, and every replica must agree.

mod document;
mod engine;
mod flow;
mod parse;
pub mod reference;

pub use document::{
    Action, BuiltinProfile, MAX_DOCUMENT_BYTES, MAX_GROUPS, MAX_NAME_LEN, MAX_PORT_RANGES,
    MAX_RULES, MAX_SELECTORS, MAX_TESTS, POLICY_VERSION, PolicyDocument, PolicyTest, PortRange,
    ProtocolSet, Rule, RuleOrigin, Segments, Selector,
};
pub use engine::{Policy, ResolvedEndpoint, explain_text};
pub use flow::{Endpoint, Flow, MAX_ENDPOINT_TAGS, Protocol};

use x0t_types::Tag;

/// What a test's `rule = "..."` names when it expects no rule to match.
pub const DEFAULT_DENY: &str = "default-deny";

/// The outcome of deciding one flow.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// An allow rule matched (its index in [`PolicyDocument::rules`]).
    Allowed {
        /// The deciding rule.
        rule: usize,
    },
    /// A deny rule matched.
    Denied {
        /// The deciding rule.
        rule: usize,
    },
    /// Allow rules matched, but the two nodes share a segment and none of them names it on
    /// both sides (`deny-east-west`).
    EastWest {
        /// The first shared segment tag.
        segment: Tag,
    },
    /// No rule matched: default deny.
    NoRuleMatched,
}

impl Verdict {
    /// Whether the flow may open.
    pub const fn allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

/// Why a policy document was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The document is not valid TOML or not a valid policy.
    #[error("line {line}, column {column}: {message}")]
    Invalid {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The document is larger than accepted.
    #[error("the policy document is {size} bytes; at most {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A policy test in the document does not hold.
    #[error(
        "policy test {name:?} (line {line}) failed: expected {expected}, got {got}{}",
        if *.more > 0 { format!(" ({more} more test(s) failed)") } else { String::new() }
    )]
    TestFailed {
        /// The first failing test.
        name: String,
        /// Its line.
        line: usize,
        /// What it expected (`allow`, or `deny by <rule>`).
        expected: String,
        /// What the policy decided, and by which rule.
        got: String,
        /// How many other tests failed.
        more: usize,
    },
}

impl PolicyError {
    /// The 1-based line and column the error points at, if it points at one.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            Self::Invalid { line, column, .. } => Some((*line, *column)),
            Self::TestFailed { line, .. } => Some((*line, 1)),
            Self::TooLarge { .. } => None,
        }
    }
}
