//! The state machine: [`Ledger`] in memory, its records in one tree, snapshots in another.
//!
//! State tree keys: `m/applied` → (last applied log id, membership); `r/` + bincode(record key)
//! → bincode(record). Snapshot tree keys: `meta` → snapshot meta, `data` → snapshot bytes,
//! written in one batch and flushed.
//!
//! Snapshot bytes, format v1:
//! `"X0TN" | u8 version=1 | blake3(payload) (32) | u64 payload_len | payload`, payload =
//! bincode of (last applied, membership, every record). The checksum is verified before
//! anything is decoded, so a damaged or truncated snapshot is refused rather than installed.

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
use x0t_ledger::{ApplyMeta, Ledger, Record};

use crate::codec::{decode, decode_large, encode, encode_large};
use crate::kv::{Batch, KeyValueTree, StoreError};
use crate::{AnchorNode, LogId, Response, TypeConfig};

/// Version of the snapshot byte format this build writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u8 = 1;
const SNAPSHOT_MAGIC: &[u8; 4] = b"X0TN";
const APPLIED_KEY: &[u8] = b"m/applied";
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
    pub(crate) records: Vec<Record>,
}

fn sm_error(verb: ErrorVerb, error: StoreError) -> StorageError<u64> {
    StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::new(&error)).into()
}

fn snapshot_error(verb: ErrorVerb, error: StoreError) -> StorageError<u64> {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, AnyError::new(&error)).into()
}

fn record_key(key: &x0t_ledger::RecordKey) -> Result<Vec<u8>, StoreError> {
    let mut out = RECORD_PREFIX.to_vec();
    out.extend(encode(key)?);
    Ok(out)
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
    if bytes[4] != SNAPSHOT_FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {}, this build reads {SNAPSHOT_FORMAT_VERSION}",
            bytes[4]
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
        let (last_applied, membership): (Option<LogId>, Membership) = match tree.get(APPLIED_KEY)? {
            Some(bytes) => decode("applied state", &bytes)?,
            None => (None, Membership::default()),
        };
        let records = tree
            .range(RECORD_PREFIX, RECORDS_END)?
            .into_iter()
            .map(|(_, bytes)| decode::<Record>("ledger record", &bytes))
            .collect::<Result<Vec<_>, _>>()?;
        let store = Self {
            state: Arc::new(RwLock::new(AppliedState {
                ledger: Ledger::from_records(records),
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
        for (key, record) in state.ledger.take_changes() {
            let key = record_key(&key)?;
            match record {
                Some(record) => batch.insert(key, encode(&record)?),
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
        for record in &payload.records {
            batch.insert(record_key(&record.key())?, encode(record)?);
        }
        batch.insert(
            APPLIED_KEY,
            encode(&(payload.last_applied, &payload.membership))?,
        );
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        // Under the lock, so no checkpoint of the replaced state can land after this batch.
        self.tree.apply(batch)?;
        *state = AppliedState {
            ledger: Ledger::from_records(payload.records),
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
