//! The node's wall clock, as the control plane and the data plane read it.

use x0t_types::Timestamp;

/// How far before now a certificate's validity starts, and how far a peer's clock may be
/// behind ours when its certificate is checked: clocks of different machines disagree.
pub(crate) const CERTIFICATE_BACKDATE_MS: u64 = 60_000;

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it). The leader
/// stamps it into proposals; `apply` never reads a clock.
pub(crate) fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Timestamp(millis)
}
