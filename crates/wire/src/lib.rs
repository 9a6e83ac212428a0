//! x0t's node-to-node wire formats, apart from the swarm that carries them.
//!
//! - [`control`]: the messages of the control protocol (`/x0t/control/1`): Raft RPCs between
//!   anchors, forwarded writes, enrollment, and the mesh protocol members gossip over
//!   (certificates, mesh state, link states, session handshakes).
//! - [`frame`]: their length-prefixed bincode frames, every decode bounded.
//! - [`packet`]: the IPv4 fields the data plane reads from a decrypted packet to enforce the
//!   policy, and the flow table that lets replies through.
//!
//! Signed envelopes (certificates, link states, tokens) are `x0t-crypto`'s; this crate
//! carries them as opaque bytes.
//!
//! **Architecture Invariant:** pure: no I/O, no clock, no randomness. Every decoder takes a
//! byte slice, bounds what it allocates, and answers an error for any input (the fuzz
//! targets in `fuzz/` hold it to that).

pub mod control;
pub mod frame;
pub mod packet;
