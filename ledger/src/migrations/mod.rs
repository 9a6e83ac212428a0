//! Reading what earlier releases stored, and answering it in this release's form.
//!
//! Each module reads one earlier storage format and is frozen with it: its types keep the
//! exact encoding that release wrote, so a data directory of that release opens (the stores
//! in `x0t-consensus` call these when they find the older format marker, then rewrite the
//! data in the current format and mark it). A domain that changes the encoding of one of its
//! records adds its own step here, beside the ones before it.

pub mod format3;
/// Storage format 4's flat command, outcome and refusal enums: the log is rewritten through
/// them on open; the core keeps reading them (statements over format-4 command bytes,
/// remembered results), so they live in `core::format4`.
pub use crate::core::format4;
