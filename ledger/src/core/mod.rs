//! What every domain shares, kept by the ledger core: the audit chains (one per mesh and one
//! for the cluster, an entry per applied command) and the remembered results of requests (so
//! a write retried after a leader change applies once). Both store their records like a
//! domain does ([`crate::domain::Domain`]).

pub(crate) mod audit;
pub(crate) mod requests;
