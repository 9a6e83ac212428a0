//! The member's event log: what its MAPE-K loop saw and did, in order, with timestamps —
//! Monitor (probes: a link went silent), Analyze (a link is down, or back), Plan (routes
//! recomputed: a destination's next hop changed), Execute (a peer's frames switched to the
//! new next hop). Kept in a bounded ring; `x0t events`
//! reads it (`--follow` keeps reading), so failover times are measured by the system itself.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Events kept; older ones are dropped first.
pub const MAX_EVENTS: usize = 1_024;

/// One step of the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A link's probes went unanswered past the limit (Analyze: failure detected).
    LinkDown,
    /// A dead link answered again.
    LinkRecovered,
    /// The best path to a node changed, appeared or vanished (Plan).
    RouteChanged,
    /// Frames to a peer with a session now take another next hop (Execute).
    PathSwitched,
    /// A peer's certificate was verified.
    PeerVerified,
    /// A peer was dropped (revoked, expired certificate).
    PeerDropped,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshEvent {
    /// Increasing from 1 per member run.
    pub id: u64,
    /// Wall clock, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Microseconds since the member started (monotonic: for durations between events).
    pub uptime_us: u64,
    /// What happened.
    pub kind: EventKind,
    /// The node it concerns, if one.
    pub node: Option<String>,
    /// Details for people.
    pub detail: String,
}

/// The ring of recent events.
#[derive(Debug, Default)]
pub struct EventLog {
    next_id: u64,
    events: VecDeque<MeshEvent>,
}

impl EventLog {
    /// Appends an event and returns its id.
    pub fn push(
        &mut self,
        at_ms: u64,
        uptime_us: u64,
        kind: EventKind,
        node: Option<String>,
        detail: String,
    ) -> u64 {
        self.next_id += 1;
        self.events.push_back(MeshEvent {
            id: self.next_id,
            at_ms,
            uptime_us,
            kind,
            node,
            detail,
        });
        while self.events.len() > MAX_EVENTS {
            self.events.pop_front();
        }
        self.next_id
    }

    /// The events after `after` (an id; 0 for all kept), oldest first, at most `limit`.
    pub fn after(&self, after: u64, limit: usize) -> Vec<MeshEvent> {
        self.events
            .iter()
            .filter(|e| e.id > after)
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_is_bounded_and_read_after_an_id() {
        let mut log = EventLog::default();
        for i in 0..(MAX_EVENTS as u64 + 10) {
            log.push(i, i, EventKind::RouteChanged, None, String::new());
        }
        let all = log.after(0, usize::MAX);
        assert_eq!(all.len(), MAX_EVENTS);
        assert_eq!(all[0].id, 11);
        let tail = log.after(MAX_EVENTS as u64 + 8, 10);
        assert_eq!(
            tail.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![1_033, 1_034]
        );
        assert_eq!(log.after(0, 3).len(), 3);
    }
}
