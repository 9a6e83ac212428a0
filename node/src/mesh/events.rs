//! The member's event log: what its MAPE-K loop saw and did, in order, with timestamps —
//! Monitor (probes: a link went silent), Analyze (a link is down, or back), Plan (routes
//! recomputed: a destination's next hop changed), Execute (a peer's frames switched to the
//! new next hop). Kept in a bounded ring; `x0t events`
//! reads it (`--follow` keeps reading), so failover times are measured by the system itself.

use std::collections::VecDeque;

pub use x0t_types::api::{EventKind, MeshEvent, Percentiles, SloReport};

/// Events kept; older ones are dropped first.
pub const MAX_EVENTS: usize = 1_024;

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
