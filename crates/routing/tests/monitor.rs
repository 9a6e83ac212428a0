//! Link monitoring on a made-up clock: steady links, lossy links, a link that dies and comes
//! back, and replies that answer nothing.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use x0t_routing::{LinkMonitor, MonitorConfig, Transition};

const MS: u64 = 1_000;

/// Runs probes every interval from `from` for `count` probes; each is answered after
/// `rtt` unless `lost(i)`. Returns the transitions seen, with their times.
fn drive(
    monitor: &mut LinkMonitor,
    from: u64,
    count: u64,
    rtt: u64,
    lost: impl Fn(u64) -> bool,
) -> Vec<(u64, Transition)> {
    let interval = monitor.config().probe_interval_us;
    let mut seen = Vec::new();
    for i in 0..count {
        let at = from + i * interval;
        if let Some(t) = monitor.poll(at) {
            seen.push((at, t));
        }
        let sequence = monitor.probe(at);
        if !lost(i)
            && let (true, Some(t)) = monitor.reply(sequence, at + rtt)
        {
            seen.push((at + rtt, t));
        }
    }
    seen
}

#[test]
fn a_steady_link_is_up_with_its_round_trip_and_no_loss() {
    let mut m = LinkMonitor::new(MonitorConfig::default());
    assert!(!m.health().alive, "no reply yet: not alive");
    let seen = drive(&mut m, 0, 50, 3 * MS, |_| false);
    assert_eq!(seen, vec![(3 * MS, Transition::Up)]);
    let h = m.health();
    assert!(h.alive);
    assert_eq!(h.rtt_micros, Some(3_000));
    assert_eq!(h.loss_permille, 0);
}

#[test]
fn loss_is_measured_over_the_window() {
    let mut m = LinkMonitor::new(MonitorConfig::default());
    // One probe in five lost (20 %), the window is 25 probes.
    drive(&mut m, 0, 100, MS, |i| i % 5 == 0);
    let end = 100 * m.config().probe_interval_us;
    m.poll(end + m.config().probe_timeout_us);
    let h = m.health();
    assert!((150..=250).contains(&h.loss_permille), "{h:?}");
    assert!(h.alive || h.loss_permille > 0);
}

#[test]
fn a_dead_link_is_known_within_a_second_and_comes_back() {
    let config = MonitorConfig::default();
    let mut m = LinkMonitor::new(config);
    drive(&mut m, 0, 10, MS, |_| false);
    let last_reply = 9 * config.probe_interval_us + MS;
    // From here nothing answers.
    let from = 10 * config.probe_interval_us;
    let seen = drive(&mut m, from, 20, MS, |_| true);
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (down_at, t) = seen[0];
    assert_eq!(t, Transition::Down);
    let detection = down_at - last_reply;
    assert!(detection >= config.dead_after_us);
    assert!(
        detection <= config.dead_after_us + config.probe_interval_us,
        "detected after {detection} µs"
    );
    assert!(detection <= 1_000 * MS, "within about a second");
    assert!(!m.health().alive);
    // It answers again: recovered at the first reply, and loss shows what happened.
    let back = from + 20 * config.probe_interval_us;
    let seen = drive(&mut m, back, 3, MS, |_| false);
    assert_eq!(seen, vec![(back + MS, Transition::Recovered)]);
    assert!(m.health().loss_permille > 0);
}

#[test]
fn replies_that_answer_nothing_change_nothing() {
    let mut m = LinkMonitor::new(MonitorConfig::default());
    let sequence = m.probe(0);
    assert_eq!(m.reply(sequence + 7, MS), (false, None), "never sent");
    assert_eq!(m.reply(sequence, MS), (true, Some(Transition::Up)));
    assert_eq!(m.reply(sequence, 2 * MS), (false, None), "a duplicate");
    // A reply to a newer probe settles the older unanswered ones as lost.
    let (older, newer) = (m.probe(3 * MS), m.probe(4 * MS));
    assert_eq!(m.reply(newer, 5 * MS), (true, None));
    assert_eq!(m.reply(older, 6 * MS), (false, None), "too late");
    assert_eq!(m.health().loss_permille, 333);
    // A probe that timed out cannot be answered late.
    let late = m.probe(10 * MS);
    m.poll(10 * MS + m.config().probe_timeout_us);
    assert_eq!(
        m.reply(late, 10 * MS + m.config().probe_timeout_us + 1),
        (false, None)
    );
    assert_eq!(m.health().rtt_micros, Some(1_000)); // smoothed: (7 × 1 ms + 1 ms) / 8
    // Outstanding probes stay bounded when nobody polls.
    for i in 0..10_000 {
        m.probe(20 * MS + i);
    }
    assert!(m.health().loss_permille > 900);
}
