//! Link liveness and quality from probes: the Monitor and Analyze steps of the MAPE-K loop.
//!
//! The node side sends a probe to each neighbour every `probe_interval` (on the data path, so
//! it measures what packets see) and reports the replies; a [`LinkMonitor`] turns that into a
//! smoothed round trip, the loss over a window, and whether the link is alive. A link with no
//! reply for `dead_after` is dead: with probes every 200 ms and `dead_after` at 800 ms, a
//! dead next hop is known within about a second, where libp2p's ping (15 s interval, 20 s
//! timeout) would take twenty.

use std::collections::VecDeque;

/// Probing parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Time between probes, microseconds.
    pub probe_interval_us: u64,
    /// No reply for this long (microseconds) and the link is dead.
    pub dead_after_us: u64,
    /// A probe unanswered for this long (microseconds) counts as lost.
    pub probe_timeout_us: u64,
    /// How many recent probes the loss figure covers.
    pub window: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            probe_interval_us: 200_000,
            dead_after_us: 800_000,
            probe_timeout_us: 1_000_000,
            window: 25,
        }
    }
}

/// A change in a link's liveness: the Analyze step's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The first reply the link ever gave.
    Up,
    /// A reply after the link was down.
    Recovered,
    /// No reply for `dead_after` after the link was up.
    Down,
}

/// What a link looks like now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkHealth {
    /// Whether a reply came within `dead_after`.
    pub alive: bool,
    /// Smoothed round trip (microseconds), if any reply came yet.
    pub rtt_micros: Option<u32>,
    /// Probes lost among the last `window` decided ones, per thousand.
    pub loss_permille: u16,
}

/// Probe bookkeeping for one link.
#[derive(Clone, Debug)]
pub struct LinkMonitor {
    config: MonitorConfig,
    next_sequence: u64,
    /// Probes sent and not yet answered or timed out: (sequence, sent at).
    outstanding: VecDeque<(u64, u64)>,
    /// Recent decided probes: answered (true) or lost (false).
    decided: VecDeque<bool>,
    srtt_us: Option<u64>,
    last_reply_us: Option<u64>,
    alive: bool,
    ever_up: bool,
}

impl LinkMonitor {
    /// A monitor for a new link.
    pub fn new(config: MonitorConfig) -> Self {
        Self {
            config,
            next_sequence: 1,
            outstanding: VecDeque::new(),
            decided: VecDeque::new(),
            srtt_us: None,
            last_reply_us: None,
            alive: false,
            ever_up: false,
        }
    }

    /// Records a probe sent at `now_us`; returns its sequence number (to put in the probe).
    pub fn probe(&mut self, now_us: u64) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.outstanding.push_back((sequence, now_us));
        // Bounded: probes older than the timeout are decided in `poll`; this guards a
        // caller that never polls.
        while self.outstanding.len() > self.config.window.max(1) * 4 {
            self.outstanding.pop_front();
            self.decide(false);
        }
        sequence
    }

    /// Records the reply to probe `sequence` at `now_us`. Returns whether it was the answer
    /// to an outstanding probe (a duplicate, late or invented reply changes nothing), and the
    /// transition it caused.
    pub fn reply(&mut self, sequence: u64, now_us: u64) -> (bool, Option<Transition>) {
        let Some(at) = self.outstanding.iter().position(|(s, _)| *s == sequence) else {
            return (false, None);
        };
        // Probes sent before this one and still unanswered are lost: probes leave 200 ms
        // apart, and a path does not reorder packets that far.
        for _ in 0..at {
            self.outstanding.pop_front();
            self.decide(false);
        }
        let Some((_, sent)) = self.outstanding.pop_front() else {
            return (false, None);
        };
        let rtt = now_us.saturating_sub(sent);
        // The usual smoothing (RFC 6298's 1/8): one slow reply does not move routes.
        self.srtt_us = Some(match self.srtt_us {
            None => rtt,
            Some(srtt) => (7 * srtt + rtt) / 8,
        });
        self.last_reply_us = Some(now_us);
        self.decide(true);
        let transition = match (self.alive, self.ever_up) {
            (true, _) => None,
            (false, false) => Some(Transition::Up),
            (false, true) => Some(Transition::Recovered),
        };
        self.alive = true;
        self.ever_up = true;
        (true, transition)
    }

    /// Times out old probes and checks liveness at `now_us`; returns a transition if the
    /// link just died.
    pub fn poll(&mut self, now_us: u64) -> Option<Transition> {
        while let Some(&(_, sent)) = self.outstanding.front() {
            if now_us.saturating_sub(sent) < self.config.probe_timeout_us {
                break;
            }
            self.outstanding.pop_front();
            self.decide(false);
        }
        // Only a link that was up can go down; one never answered was never alive.
        let since = self.last_reply_us?;
        if self.alive && now_us.saturating_sub(since) >= self.config.dead_after_us {
            self.alive = false;
            return Some(Transition::Down);
        }
        None
    }

    /// The link's health now.
    pub fn health(&self) -> LinkHealth {
        let lost = self.decided.iter().filter(|answered| !**answered).count();
        let loss_permille = if self.decided.is_empty() {
            0
        } else {
            (lost * 1_000 / self.decided.len()) as u16
        };
        LinkHealth {
            alive: self.alive,
            rtt_micros: self.srtt_us.map(|us| u32::try_from(us).unwrap_or(u32::MAX)),
            loss_permille,
        }
    }

    /// When the last reply arrived (the monitor's clock), if one ever did: a link that dies
    /// died after it.
    pub fn last_reply(&self) -> Option<u64> {
        self.last_reply_us
    }

    /// The probing parameters.
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    fn decide(&mut self, answered: bool) {
        self.decided.push_back(answered);
        while self.decided.len() > self.config.window.max(1) {
            self.decided.pop_front();
        }
    }
}
