//! What every domain shares, kept by the ledger core: the audit chains (one per mesh and one
//! for the cluster, an entry per applied command) and the remembered results of requests (so
//! a write retried after a leader change applies once). Both store their records like a
//! domain does ([`crate::domain::Domain`]). It also still reads what storage format 4 wrote
//! with one flat enum of every domain (`format4`): audit statements signed over a command's
//! format-4 bytes, and remembered results of format 4.

pub(crate) mod audit;
pub mod format4;
pub(crate) mod requests;
