//! What the stores read back from disk, decodable on its own: the same bounded decoders the
//! log store and the state machine use when they open, for offline tools and for the fuzz
//! targets (`fuzz/fuzz_targets/ledger_entry.rs`). A damaged record is a
//! [`StoreError::Corrupt`] naming what was being read, never a panic.

use openraft::{Entry, EntryPayload};
use x0t_ledger::{Ledger, StoredRecord};

use crate::codec::decode;
use crate::kv::StoreError;
use crate::state_machine::{AppliedState, decode_snapshot, ledger_of, stored_record};
use crate::{LogId, TypeConfig};

/// Decodes one stored Raft log entry (a value of the log tree).
pub fn decode_log_entry(bytes: &[u8]) -> Result<Entry<TypeConfig>, StoreError> {
    decode("log entry", bytes)
}

/// Decodes one Raft log entry as storage format 4 wrote it (commands as one flat enum) and
/// answers it in the current encoding: what opening a format-4 log does to each entry.
pub fn decode_format4_log_entry(bytes: &[u8]) -> Result<Entry<TypeConfig>, StoreError> {
    let old: Entry<Format4Config> = decode("format 4 log entry", bytes)?;
    Ok(Entry {
        log_id: old.log_id,
        payload: match old.payload {
            EntryPayload::Blank => EntryPayload::Blank,
            EntryPayload::Normal(proposal) => EntryPayload::Normal(proposal.upgrade()),
            EntryPayload::Membership(membership) => EntryPayload::Membership(membership),
        },
    })
}

openraft::declare_raft_types!(
    /// Storage format 4's openraft configuration: its log entries carried
    /// `x0t_ledger::migrations::format4::Proposal`. Only decoded, never run.
    pub(crate) Format4Config:
        D = x0t_ledger::migrations::format4::Proposal,
        R = crate::Response,
        NodeId = u64,
        Node = crate::AnchorNode,
        Entry = openraft::Entry<Format4Config>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Decodes one stored ledger record (a key of the state tree under `r/` and its value) into
/// the one-record ledger it makes.
pub fn decode_ledger_record(key: &[u8], value: &[u8]) -> Result<Ledger, StoreError> {
    let record: StoredRecord = stored_record(key, value.to_vec())?;
    ledger_of(vec![record])
}

/// Decodes one ledger record value of storage format 3 (what the migration reads).
pub fn decode_format3_record(value: &[u8]) -> Result<(), StoreError> {
    x0t_ledger::migrations::format3::decode_record(value)
        .map(|_| ())
        .map_err(|e| StoreError::Corrupt {
            what: "format 3 ledger record",
            detail: e.to_string(),
        })
}

/// Decodes the state tree's "last applied" value: the last applied log id and membership.
pub fn decode_applied(bytes: &[u8]) -> Result<Option<LogId>, StoreError> {
    let (last_applied, _membership): (Option<LogId>, crate::state_machine::Membership) =
        decode("applied state", bytes)?;
    Ok(last_applied)
}

/// Decodes a stored or received snapshot (header, checksum, payload) into the state it
/// restores: what a follower installs and what an anchor restores at start.
pub fn decode_snapshot_state(bytes: &[u8]) -> Result<AppliedState, StoreError> {
    let payload = decode_snapshot(bytes)?;
    Ok(AppliedState {
        ledger: ledger_of(payload.records)?,
        last_applied: payload.last_applied,
        membership: payload.membership,
    })
}
