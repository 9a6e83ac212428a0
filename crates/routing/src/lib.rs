//! The routing core of the x0t data plane: what each node knows of the mesh's links, what a
//! link costs, the best path to every node, and when to switch paths.
//!
//! Every node measures its links (round trip, loss) and advertises them in a sequence-numbered
//! [`LinkState`]; the node side signs, gossips and verifies those, then hands verified states
//! to a [`LinkStateDb`] here. [`LinkStateDb::accept`] keeps only the newest state per origin
//! (a replay or an older state changes nothing). [`routes`] runs Dijkstra over the links
//! both ends report, with [`link_cost`] as the metric, and gives each reachable node its
//! next hop, path and cost. [`Switch`] decides whether a new best path is worth leaving the
//! current one for: a dead next hop is left at once, a merely better path must be better by
//! a margin, so two near-equal paths do not flap. [`LinkMonitor`] turns probes and replies
//! into a link's round trip, loss and liveness (a dead link is known within about a second).
//!
//! **Architecture Invariant:** this crate does no I/O, reads no clock and draws no
//! randomness: callers pass `now` in milliseconds, and the same inputs give the same routes
//! on every node (ties break on node ids).

mod db;
mod monitor;
mod paths;

pub use db::{Accepted, LinkStateDb};
pub use monitor::{LinkHealth, LinkMonitor, MonitorConfig, Transition};
pub use paths::{
    HOP_COST_MICROS, LinkView, Route, Routes, Switch, link_cost, link_views, path_cost, routes,
    stable_routes,
};

use x0t_types::NodeId;

/// One node's measurement of one link, as it advertises it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkMeasure {
    /// The node at the other end.
    pub neighbor: NodeId,
    /// Smoothed round trip, microseconds.
    pub rtt_micros: u32,
    /// Probes lost over the measuring window, per thousand.
    pub loss_permille: u16,
}

/// What one node advertises: its links, under a sequence number that only grows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// The advertising node (whose signature the node side checked).
    pub origin: NodeId,
    /// Higher supersedes lower; a restarted node resumes above what it sent before.
    pub sequence: u64,
    /// Its links, at most [`MAX_LINKS`].
    pub links: Vec<LinkMeasure>,
}

/// The most links one state may list; a longer one is refused.
pub const MAX_LINKS: usize = 256;

/// Loss at or above this (per thousand) makes a link unusable: half the probes gone.
pub const DEAD_LOSS_PERMILLE: u16 = 500;

/// Why a link state was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RoutingError {
    /// The state lists more links than [`MAX_LINKS`].
    #[error("link state of {origin} lists {count} links; at most {MAX_LINKS}")]
    TooManyLinks {
        /// The origin.
        origin: NodeId,
        /// How many it listed.
        count: usize,
    },
    /// The state lists a link from its origin to itself, or a neighbour twice.
    #[error("link state of {origin} is malformed: {reason}")]
    Malformed {
        /// The origin.
        origin: NodeId,
        /// What is wrong.
        reason: String,
    },
}
