//! The member's event log: what its MAPE-K loop saw and did, in order, with timestamps —
//! Monitor (probes: a link went silent), Analyze (a link is down, or back), Plan (routes
//! recomputed: a destination's next hop changed), Execute (a peer's frames switched to the
//! new next hop). Kept in a bounded ring; `x0t events`
//! reads it (`--follow` keeps reading), so failover times are measured by the system itself.

use std::collections::VecDeque;

use tokio::sync::watch;

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

/// A live event stream: what `fetch` answers after `after`, then, each time `changed`
/// moves, what came since; ends when `shutdown` turns true or the reader goes away.
pub(crate) fn follow_events(
    fetch: impl Fn(u64) -> Vec<MeshEvent> + Send + 'static,
    mut after: u64,
    mut changed: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) -> impl futures::Stream<Item = MeshEvent> {
    async_stream(move |send| async move {
        loop {
            let batch = fetch(after);
            if batch.is_empty() {
                tokio::select! {
                    changed = changed.changed() => if changed.is_err() { return },
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    () = send.closed() => return,
                }
                continue;
            }
            for event in batch {
                after = event.id;
                if send.send(event).await.is_err() {
                    return;
                }
            }
        }
    })
}

/// An event as its gRPC message.
pub fn event_message(event: MeshEvent) -> x0t_proto::pb::MeshEvent {
    let kind = serde_json::to_value(event.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    x0t_proto::pb::MeshEvent {
        id: event.id,
        at_ms: event.at_ms,
        uptime_us: event.uptime_us,
        kind,
        node: event.node.unwrap_or_default(),
        detail: event.detail,
        duration_ms: event.duration_ms,
    }
}

/// A stream fed by a task: `body` gets a bounded sender; the stream ends when it returns
/// (or the client goes away and the sender fails).
fn async_stream<T, F, Fut>(body: F) -> impl futures::Stream<Item = T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(body(tx));
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// An event as a server-sent event: its id, its kind as the event name, its JSON as data.
pub(crate) fn sse_event(event: &MeshEvent) -> Option<axum::response::sse::Event> {
    let kind = serde_json::to_value(event.kind).ok()?;
    axum::response::sse::Event::default()
        .id(event.id.to_string())
        .event(kind.as_str()?)
        .json_data(event)
        .ok()
}

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
