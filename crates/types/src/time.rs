use std::fmt;

use serde::{Deserialize, Serialize};

/// A point in time as milliseconds since the Unix epoch (UTC).
///
/// Pure crates never read a clock: the leader stamps a `Timestamp` into each command and
/// verifiers are handed "now" by their caller.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Milliseconds in one second.
    pub const SECOND: u64 = 1_000;
    /// Milliseconds in one hour.
    pub const HOUR: u64 = 3_600 * Self::SECOND;
    /// Milliseconds in one day.
    pub const DAY: u64 = 24 * Self::HOUR;

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This time plus `millis`, saturating at the far future instead of wrapping.
    pub const fn saturating_add(self, millis: u64) -> Self {
        Self(self.0.saturating_add(millis))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1_000, self.0 % 1_000)
    }
}
