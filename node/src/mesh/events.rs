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
    /// How long it took, where that is known: for `link_down` the silence before the link
    /// was declared dead (detection), for `link_recovered` the outage, for `path_switched`
    /// the time since the failure that caused it (failover).
    pub duration_ms: Option<u64>,
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
        duration_ms: Option<u64>,
    ) -> u64 {
        self.next_id += 1;
        self.events.push_back(MeshEvent {
            id: self.next_id,
            at_ms,
            uptime_us,
            kind,
            node,
            detail,
            duration_ms,
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

/// Percentiles of a set of durations, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    /// How many were measured.
    pub count: usize,
    /// Median (nearest rank), if any.
    pub p50_ms: Option<u64>,
    /// 99th percentile (nearest rank), if any.
    pub p99_ms: Option<u64>,
    /// Largest, if any.
    pub max_ms: Option<u64>,
}

impl Percentiles {
    /// The percentiles of `values` (any order).
    pub fn of(mut values: Vec<u64>) -> Self {
        values.sort_unstable();
        let rank = |p: usize| {
            // Nearest rank: the smallest value with at least p % of values at or below it.
            let n = values.len();
            (n > 0).then(|| values[(n * p).div_ceil(100).clamp(1, n) - 1])
        };
        Self {
            count: values.len(),
            p50_ms: rank(50),
            p99_ms: rank(99),
            max_ms: values.last().copied(),
        }
    }
}

/// What a member measured of itself from its event log: the self-healing SLO figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SloReport {
    /// Events the figures come from (the log keeps the last [`MAX_EVENTS`]).
    pub events: usize,
    /// Wall-clock ms of the oldest of them, if any.
    pub since_ms: Option<u64>,
    /// From a failure (the last reply on the dead link) to traffic on the new path.
    pub failover: Percentiles,
    /// From a failure to its detection (silence before a link was declared dead).
    pub detection: Percentiles,
    /// Time to repair: how long dead links stayed dead before answering again.
    pub link_outage: Percentiles,
    /// Failures detected (`link_down`).
    pub failures: usize,
    /// Failures after which no other path was found within the log (destinations left
    /// unreachable).
    pub unreachable: usize,
}

/// Computes the SLO figures from events (oldest first).
pub fn slo(events: &[MeshEvent]) -> SloReport {
    let durations = |kind: EventKind| {
        events
            .iter()
            .filter(|e| e.kind == kind)
            .filter_map(|e| e.duration_ms)
            .collect::<Vec<_>>()
    };
    SloReport {
        events: events.len(),
        since_ms: events.first().map(|e| e.at_ms),
        failover: Percentiles::of(durations(EventKind::PathSwitched)),
        detection: Percentiles::of(durations(EventKind::LinkDown)),
        link_outage: Percentiles::of(durations(EventKind::LinkRecovered)),
        failures: events
            .iter()
            .filter(|e| e.kind == EventKind::LinkDown)
            .count(),
        unreachable: events
            .iter()
            .filter(|e| e.kind == EventKind::RouteChanged && e.detail == UNREACHABLE)
            .count(),
    }
}

/// The detail of a `route_changed` event whose destination became unreachable.
pub const UNREACHABLE: &str = "unreachable";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        assert_eq!(Percentiles::of(vec![]), Percentiles::default());
        let one = Percentiles::of(vec![7]);
        assert_eq!(
            (one.p50_ms, one.p99_ms, one.max_ms),
            (Some(7), Some(7), Some(7))
        );
        let hundred = Percentiles::of((1..=100).rev().collect());
        assert_eq!(
            (
                hundred.count,
                hundred.p50_ms,
                hundred.p99_ms,
                hundred.max_ms
            ),
            (100, Some(50), Some(99), Some(100))
        );
        let twenty = Percentiles::of((1..=20).map(|i| i * 10).collect());
        assert_eq!((twenty.p50_ms, twenty.p99_ms), (Some(100), Some(200)));
    }

    #[test]
    fn slo_figures_come_from_the_events_durations() {
        let mut log = EventLog::default();
        log.push(
            1_000,
            0,
            EventKind::LinkDown,
            None,
            String::new(),
            Some(800),
        );
        log.push(
            1_010,
            0,
            EventKind::RouteChanged,
            None,
            "via x".into(),
            None,
        );
        log.push(
            1_010,
            0,
            EventKind::PathSwitched,
            None,
            String::new(),
            Some(900),
        );
        log.push(
            2_000,
            0,
            EventKind::LinkDown,
            None,
            String::new(),
            Some(700),
        );
        log.push(
            2_000,
            0,
            EventKind::RouteChanged,
            None,
            UNREACHABLE.into(),
            None,
        );
        log.push(
            9_000,
            0,
            EventKind::LinkRecovered,
            None,
            String::new(),
            Some(7_700),
        );
        let report = slo(&log.after(0, usize::MAX));
        assert_eq!(report.events, 6);
        assert_eq!(report.since_ms, Some(1_000));
        assert_eq!((report.failures, report.unreachable), (2, 1));
        assert_eq!(report.failover.p99_ms, Some(900));
        assert_eq!(report.detection.count, 2);
        assert_eq!(report.detection.max_ms, Some(800));
        assert_eq!(report.link_outage.p50_ms, Some(7_700));
    }

    #[test]
    fn the_ring_is_bounded_and_read_after_an_id() {
        let mut log = EventLog::default();
        for i in 0..(MAX_EVENTS as u64 + 10) {
            log.push(i, i, EventKind::RouteChanged, None, String::new(), None);
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
