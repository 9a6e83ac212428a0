//! The state machine: [`Ledger`] in memory, its records in one tree, snapshots in another.
//!
//! State tree keys: `m/applied` → (last applied log id, membership); `m/format` → the tree's
//! storage format (u32, big-endian); `r/` + domain name + `/` + key bytes → value bytes, as
//! the ledger hands them over ([`x0t_ledger::StoredRecord`]): this store never learns a record
//! type, so adding a ledger domain changes nothing here. Snapshot tree keys: `meta` → snapshot
//! meta, `data` → snapshot bytes, written in one batch and flushed.
//!
//! Snapshot bytes, format v2:
//! `"X0TN" | u8 version=2 | blake3(payload) (32) | u64 payload_len | payload`, payload =
//! bincode of (last applied, membership, every stored record). The checksum is verified
//! before anything is decoded, so a damaged or truncated snapshot is refused rather than
//! installed. Version 1 (storage format 3) held the records as one enum of all domains; it is
//! read through `x0t_ledger::migrations::format3` and rewritten as v2 on open.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use x0t_ledger::migrations::format3;
use x0t_ledger::{ApplyMeta, Ledger, StoredRecord};

use crate::codec::{decode, decode_large, encode, encode_large};
use crate::kv::{Batch, KeyValueTree, StoreError};
use crate::{AnchorNode, LogId, Response, TypeConfig};

/// Version of the snapshot byte format this build writes (it also reads version 1).
pub const SNAPSHOT_FORMAT_VERSION: u8 = 2;
const SNAPSHOT_MAGIC: &[u8; 4] = b"X0TN";
const APPLIED_KEY: &[u8] = b"m/applied";
const FORMAT_KEY: &[u8] = b"m/format";
/// The state tree's own format: records as (domain, key) → value since storage format 4
/// (format 5 changed only the log). A tree is rewritten when this changes, never before.
const STATE_TREE_FORMAT: u32 = 4;
const RECORD_PREFIX: &[u8] = b"r/";
const RECORDS_END: &[u8] = b"r0"; // '0' follows '/' in ASCII
const SNAPSHOT_META_KEY: &[u8] = b"meta";
const SNAPSHOT_DATA_KEY: &[u8] = b"data";

pub(crate) type Membership = StoredMembership<u64, AnchorNode>;

/// The in-memory state, shared with readers (the API) through [`StateMachineStore::read`].
#[derive(Debug, Default)]
pub struct AppliedState {
    /// The ledger.
    pub ledger: Ledger,
    /// The last log entry applied.
    pub last_applied: Option<LogId>,
    /// The last membership applied.
    pub membership: Membership,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotPayload {
    pub(crate) last_applied: Option<LogId>,
    pub(crate) membership: Membership,
    pub(crate) records: Vec<StoredRecord>,
}

/// A version 1 snapshot's payload (storage format 3).
#[derive(Deserialize)]
struct SnapshotPayloadV1 {
    last_applied: Option<LogId>,
    membership: Membership,
    records: Vec<format3::Record>,
}

fn load_error(error: x0t_ledger::LoadError) -> StoreError {
    StoreError::Corrupt {
        what: "ledger record",
        detail: error.to_string(),
    }
}

/// The ledger of stored records (or why they do not make one).
pub(crate) fn ledger_of(records: Vec<StoredRecord>) -> Result<Ledger, StoreError> {
    Ledger::from_records(records).map_err(load_error)
}

fn sm_error(verb: ErrorVerb, error: StoreError) -> StorageError<u64> {
    StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::new(&error)).into()
}

fn snapshot_error(verb: ErrorVerb, error: StoreError) -> StorageError<u64> {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, AnyError::new(&error)).into()
}

/// The state-tree key of a record: `r/` + domain + `/` + its key.
fn record_key(domain: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_PREFIX.len() + domain.len() + 1 + key.len());
    out.extend_from_slice(RECORD_PREFIX);
    out.extend_from_slice(domain.as_bytes());
    out.push(b'/');
    out.extend_from_slice(key);
    out
}

/// A state-tree entry under `r/` as the stored record it holds.
pub(crate) fn stored_record(key: &[u8], value: Vec<u8>) -> Result<StoredRecord, StoreError> {
    let corrupt = |detail: &str| StoreError::Corrupt {
        what: "ledger record key",
        detail: detail.to_owned(),
    };
    let rest = key
        .strip_prefix(RECORD_PREFIX)
        .ok_or_else(|| corrupt("not under r/"))?;
    let slash = rest
        .iter()
        .take(64)
        .position(|&b| b == b'/')
        .ok_or_else(|| corrupt("no domain name of at most 64 bytes"))?;
    let domain = std::str::from_utf8(&rest[..slash])
        .ok()
        .filter(|d| {
            !d.is_empty()
                && d.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
        .ok_or_else(|| corrupt("the domain name is not lowercase ASCII"))?;
    Ok(StoredRecord {
        domain: domain.to_owned(),
        key: rest[slash + 1..].to_vec(),
        value,
    })
}

/// Brings the state tree to the current format: a tree without a format marker that holds
/// records is format 3 (one enum of all domains under `r/` + bincode of its key); its records
/// are rewritten as (domain, key) → value, old keys removed and the marker set in one atomic
/// batch, so a crash leaves it old or new, never half. An empty tree is just marked.
fn upgrade_state_tree(tree: &dyn KeyValueTree) -> Result<(), StoreError> {
    if let Some(bytes) = tree.get(FORMAT_KEY)? {
        let found = <[u8; 4]>::try_from(bytes.as_slice())
            .map(u32::from_be_bytes)
            .map_err(|_| StoreError::Corrupt {
                what: "state format marker",
                detail: format!("{} bytes", bytes.len()),
            })?;
        if found == STATE_TREE_FORMAT {
            return Ok(());
        }
        return Err(StoreError::IncompatibleFormat {
            found,
            dir: "the state tree".to_owned(),
        });
    }
    let old = tree.range(RECORD_PREFIX, RECORDS_END)?;
    let mut batch = Batch::new();
    if !old.is_empty() {
        tracing::info!(
            records = old.len(),
            "migrating ledger records from storage format 3"
        );
    }
    for (key, value) in old {
        let record = format3::decode_record(&value).map_err(load_error)?;
        let stored = format3::upgrade(record);
        batch.remove(key);
        batch.insert(record_key(&stored.domain, &stored.key), stored.value);
    }
    batch.insert(FORMAT_KEY, STATE_TREE_FORMAT.to_be_bytes().to_vec());
    tree.apply(batch)
}

fn encode_snapshot(payload: &SnapshotPayload) -> Result<Vec<u8>, StoreError> {
    let body = encode_large(payload)?;
    let mut out = Vec::with_capacity(45 + body.len());
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.push(SNAPSHOT_FORMAT_VERSION);
    out.extend_from_slice(blake3::hash(&body).as_bytes());
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend(body);
    Ok(out)
}

pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<SnapshotPayload, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "snapshot",
        detail,
    };
    if bytes.len() < 45 {
        return Err(corrupt(format!(
            "{} bytes is shorter than the header",
            bytes.len()
        )));
    }
    if &bytes[..4] != SNAPSHOT_MAGIC {
        return Err(corrupt("bad magic".to_owned()));
    }
    let version = bytes[4];
    if version != SNAPSHOT_FORMAT_VERSION && version != 1 {
        return Err(corrupt(format!(
            "format version {version}{}, this build reads 1 and {SNAPSHOT_FORMAT_VERSION}",
            if version > SNAPSHOT_FORMAT_VERSION {
                " (from a newer release)"
            } else {
                ""
            }
        )));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[37..45]);
    let body = &bytes[45..];
    if u64::from_be_bytes(len) != body.len() as u64 {
        return Err(corrupt(format!(
            "header says {} payload bytes, found {}",
            u64::from_be_bytes(len),
            body.len()
        )));
    }
    if blake3::hash(body).as_bytes() != &bytes[5..37] {
        return Err(corrupt("checksum mismatch".to_owned()));
    }
    if version == 1 {
        let old: SnapshotPayloadV1 = decode_large("snapshot", body)?;
        return Ok(SnapshotPayload {
            last_applied: old.last_applied,
            membership: old.membership,
            records: old.records.into_iter().map(format3::upgrade).collect(),
        });
    }
    decode_large("snapshot", body)
}

/// Applied changes are written to the state tree at most this long after they were applied
/// (checked on every apply, and by [`StateMachineStore::persist`]).
pub const PERSIST_INTERVAL: Duration = Duration::from_millis(100);
/// ... or as soon as this many records are waiting.
pub const PERSIST_AFTER_RECORDS: usize = 10_000;

/// The state machine store. Cheap to clone: clones share state and trees.
///
/// Applied state reaches the state tree in checkpoints — every [`PERSIST_INTERVAL`] or
/// [`PERSIST_AFTER_RECORDS`] changed records, whichever comes first — each one atomic batch
/// of the changed records and the matching `last_applied` (the write-behind etcd's backend
/// does with its batch interval). The Raft log, flushed before every acknowledgement, holds
/// whatever the last checkpoint lacks: after a crash openraft re-applies it from the
/// checkpoint's `last_applied`. Records changed several times between checkpoints are
/// written once.
#[derive(Clone)]
pub struct StateMachineStore {
    state: Arc<RwLock<AppliedState>>,
    tree: Arc<dyn KeyValueTree>,
    snapshots: Arc<dyn KeyValueTree>,
    snapshot_counter: Arc<AtomicU64>,
    last_persist: Arc<Mutex<Instant>>,
}

impl StateMachineStore {
    /// Loads the state from `tree`; if the stored snapshot is newer than the stored state
    /// (the state's writes had not reached disk before a crash), restores the snapshot.
    pub fn open(
        tree: Arc<dyn KeyValueTree>,
        snapshots: Arc<dyn KeyValueTree>,
    ) -> Result<Self, StoreError> {
        upgrade_state_tree(tree.as_ref())?;
        let (last_applied, membership): (Option<LogId>, Membership) = match tree.get(APPLIED_KEY)? {
            Some(bytes) => decode("applied state", &bytes)?,
            None => (None, Membership::default()),
        };
        let records = tree
            .range(RECORD_PREFIX, RECORDS_END)?
            .into_iter()
            .map(|(key, value)| stored_record(&key, value))
            .collect::<Result<Vec<_>, _>>()?;
        let store = Self {
            state: Arc::new(RwLock::new(AppliedState {
                ledger: ledger_of(records)?,
                last_applied,
                membership,
            })),
            tree,
            snapshots,
            snapshot_counter: Arc::new(AtomicU64::new(0)),
            last_persist: Arc::new(Mutex::new(Instant::now())),
        };
        if let Some(data) = store.snapshots.get(SNAPSHOT_DATA_KEY)? {
            let payload = decode_snapshot(&data)?;
            if data.get(4) != Some(&SNAPSHOT_FORMAT_VERSION) {
                // An older snapshot: rewritten in the current format (same meta), so that
                // followers are sent what this build writes.
                if let Some(meta) = store.snapshots.get(SNAPSHOT_META_KEY)? {
                    let meta: SnapshotMeta<u64, AnchorNode> = decode("snapshot meta", &meta)?;
                    store.store_snapshot(&meta, &encode_snapshot(&payload)?)?;
                }
            }
            if payload.last_applied > last_applied {
                tracing::info!(?payload.last_applied, ?last_applied, "state behind the stored snapshot; restoring it");
                store.replace_state(payload)?;
            }
        }
        Ok(store)
    }

    /// Runs `f` with read access to the applied state (for API reads).
    pub fn read<R>(&self, f: impl FnOnce(&AppliedState) -> R) -> R {
        f(&self.lock_read())
    }

    fn lock_read(&self) -> RwLockReadGuard<'_, AppliedState> {
        // A panic while holding the lock cannot leave the state half-applied (apply mutates a
        // clone-free ledger only through methods that change nothing on error), so poisoning
        // carries no information here.
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes every change applied since the last checkpoint, with `last_applied`, as one
    /// atomic batch (not flushed: the Raft log is the durable record). Called on shutdown;
    /// applies call it on their own schedule.
    pub fn persist(&self) -> Result<(), StoreError> {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        self.persist_locked(&mut state)
    }

    fn persist_locked(&self, state: &mut AppliedState) -> Result<(), StoreError> {
        let mut batch = Batch::new();
        for change in state.ledger.take_changes() {
            let key = record_key(change.domain, &change.key);
            match change.value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        batch.insert(
            APPLIED_KEY,
            encode(&(state.last_applied, &state.membership))?,
        );
        self.tree.apply(batch)?;
        *self.last_persist.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        Ok(())
    }

    /// Replaces the whole state with a snapshot's, in memory and on disk (one batch).
    fn replace_state(&self, payload: SnapshotPayload) -> Result<(), StoreError> {
        let mut batch = Batch::new();
        for key in self.tree.keys(RECORD_PREFIX, RECORDS_END)? {
            batch.remove(key);
        }
        let ledger = ledger_of(payload.records)?;
        for record in ledger.records() {
            batch.insert(record_key(&record.domain, &record.key), record.value);
        }
        batch.insert(
            APPLIED_KEY,
            encode(&(payload.last_applied, &payload.membership))?,
        );
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        // Under the lock, so no checkpoint of the replaced state can land after this batch.
        self.tree.apply(batch)?;
        *state = AppliedState {
            ledger,
            last_applied: payload.last_applied,
            membership: payload.membership,
        };
        Ok(())
    }

    fn payload(&self) -> SnapshotPayload {
        let state = self.lock_read();
        SnapshotPayload {
            last_applied: state.last_applied,
            membership: state.membership.clone(),
            records: state.ledger.records().collect(),
        }
    }

    fn store_snapshot(
        &self,
        meta: &SnapshotMeta<u64, AnchorNode>,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let mut batch = Batch::new();
        batch.insert(SNAPSHOT_META_KEY, encode(meta)?);
        batch.insert(SNAPSHOT_DATA_KEY, data.to_vec());
        self.snapshots.apply(batch)?;
        self.snapshots.flush()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let payload = self.payload();
        let data = encode_snapshot(&payload).map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
        let counter = self.snapshot_counter.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match payload.last_applied {
            Some(id) => format!("{}-{}-{counter}", id.leader_id, id.index),
            None => format!("empty-{counter}"),
        };
        let meta = SnapshotMeta {
            last_log_id: payload.last_applied,
            last_membership: payload.membership,
            snapshot_id,
        };
        let store = self.clone();
        let (meta, data) = tokio::task::spawn_blocking(move || {
            store.store_snapshot(&meta, &data).map(|_| (meta, data))
        })
        .await
        .map_err(|e| snapshot_error(ErrorVerb::Write, StoreError::Engine(e.to_string())))?
        .map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError<u64>> {
        let state = self.lock_read();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let mut responses = Vec::new();
        let mut membership_changed = false;
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Response::Internal,
                EntryPayload::Membership(membership) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), membership);
                    membership_changed = true;
                    Response::Internal
                }
                EntryPayload::Normal(proposal) => Response::Commands(
                    proposal
                        .commands
                        .iter()
                        .zip(0u32..)
                        .map(|(proposed, position)| {
                            let meta = ApplyMeta {
                                index: entry.log_id.index,
                                position,
                                timestamp: proposal.proposed_at,
                            };
                            state.ledger.apply(proposed, meta)
                        })
                        .collect(),
                ),
            };
            responses.push(response);
        }
        // Changed records and last_applied go to disk together, atomically, at the next
        // checkpoint. Membership changes are checkpointed at once: they are rare, and a node
        // should restart knowing its latest cluster.
        let due = state.ledger.changes_pending() >= PERSIST_AFTER_RECORDS
            || membership_changed
            || self
                .last_persist
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed()
                >= PERSIST_INTERVAL;
        if due {
            self.persist_locked(&mut state)
                .map_err(|e| sm_error(ErrorVerb::Write, e))?;
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, AnchorNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let read = |e| snapshot_error(ErrorVerb::Read, e);
        let payload = decode_snapshot(&data).map_err(read)?;
        if payload.last_applied != meta.last_log_id {
            return Err(read(StoreError::Corrupt {
                what: "snapshot",
                detail: format!(
                    "meta says last log id {:?}, data holds {:?}",
                    meta.last_log_id, payload.last_applied
                ),
            }));
        }
        let store = self.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || {
            store.store_snapshot(&meta, &data)?;
            store.replace_state(payload)?;
            store.tree.flush()
        })
        .await
        .map_err(|e| snapshot_error(ErrorVerb::Write, StoreError::Engine(e.to_string())))?
        .map_err(|e| snapshot_error(ErrorVerb::Write, e))
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let read = |e| snapshot_error(ErrorVerb::Read, e);
        let Some(meta) = self.snapshots.get(SNAPSHOT_META_KEY).map_err(read)? else {
            return Ok(None);
        };
        let meta: SnapshotMeta<u64, AnchorNode> = decode("snapshot meta", &meta).map_err(read)?;
        let data = self
            .snapshots
            .get(SNAPSHOT_DATA_KEY)
            .map_err(read)?
            .ok_or_else(|| {
                read(StoreError::Corrupt {
                    what: "snapshot",
                    detail: "meta present, data missing".to_owned(),
                })
            })?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
