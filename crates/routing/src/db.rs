//! The link-state database: the newest advertised state of every origin, and when it came.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use x0t_types::NodeId;

use crate::{LinkState, MAX_LINKS, RoutingError};

/// What [`LinkStateDb::accept`] did with a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// It was newer than what we had (or the first from its origin): stored; pass it on.
    Newer,
    /// Same sequence as what we hold: nothing changed (a duplicate from another neighbour).
    Duplicate,
    /// Older than what we hold: a replay or a late copy; ignored.
    Stale,
}

#[derive(Clone, Debug)]
struct Stored {
    state: LinkState,
    received_ms: u64,
}

/// The newest link state per origin.
#[derive(Clone, Debug, Default)]
pub struct LinkStateDb {
    states: BTreeMap<NodeId, Stored>,
}

impl LinkStateDb {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a verified state received at `now_ms`: stored if it is newer than the one held
    /// for its origin. A malformed state is refused and changes nothing.
    pub fn accept(&mut self, state: LinkState, now_ms: u64) -> Result<Accepted, RoutingError> {
        check(&state)?;
        if let Some(held) = self.states.get_mut(&state.origin) {
            if state.sequence < held.state.sequence {
                return Ok(Accepted::Stale);
            }
            if state.sequence == held.state.sequence {
                return Ok(Accepted::Duplicate);
            }
        }
        self.states.insert(
            state.origin,
            Stored {
                state,
                received_ms: now_ms,
            },
        );
        Ok(Accepted::Newer)
    }

    /// The state held for `origin`.
    pub fn get(&self, origin: &NodeId) -> Option<&LinkState> {
        self.states.get(origin).map(|s| &s.state)
    }

    /// The sequence held for `origin` (for a node's own restart: advertise above it).
    pub fn sequence(&self, origin: &NodeId) -> Option<u64> {
        self.states.get(origin).map(|s| s.state.sequence)
    }

    /// Every held state.
    pub fn states(&self) -> impl Iterator<Item = &LinkState> {
        self.states.values().map(|s| &s.state)
    }

    /// Drops the states not refreshed within `max_age_ms` of `now_ms` (their origins went
    /// silent) and returns their origins. Origins in `keep` (this node) stay.
    pub fn expire(&mut self, now_ms: u64, max_age_ms: u64, keep: &NodeId) -> Vec<NodeId> {
        let old: Vec<NodeId> = self
            .states
            .iter()
            .filter(|(origin, s)| {
                *origin != keep && now_ms.saturating_sub(s.received_ms) > max_age_ms
            })
            .map(|(origin, _)| *origin)
            .collect();
        for origin in &old {
            self.states.remove(origin);
        }
        old
    }

    /// Forgets `origin` (revoked): its links stop counting at once.
    pub fn remove(&mut self, origin: &NodeId) -> bool {
        self.states.remove(origin).is_some()
    }

    /// How many origins are held.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

fn check(state: &LinkState) -> Result<(), RoutingError> {
    if state.links.len() > MAX_LINKS {
        return Err(RoutingError::TooManyLinks {
            origin: state.origin,
            count: state.links.len(),
        });
    }
    let mut seen = BTreeSet::new();
    for link in &state.links {
        if link.neighbor == state.origin {
            return Err(RoutingError::Malformed {
                origin: state.origin,
                reason: "a link to itself".to_owned(),
            });
        }
        if !seen.insert(link.neighbor) {
            return Err(RoutingError::Malformed {
                origin: state.origin,
                reason: format!("neighbour {} listed twice", link.neighbor.short()),
            });
        }
    }
    Ok(())
}
