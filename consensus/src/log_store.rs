//! The Raft log and vote, in one tree.
//!
//! Keys: `e` + index (u64 big-endian) → bincode entry; `m/vote`, `m/committed`, `m/purged`;
//! `m/format` → the tree's format (u32 big-endian, [`LOG_TREE_FORMAT`]). Big-endian indices
//! keep the entries in log order, so the last entry is one range lookup.
//!
//! A tree without a format marker that holds entries was written by storage format 4 or
//! earlier, whose commands were one flat enum: opening it rewrites every entry in the current
//! encoding (through `x0t_ledger::migrations::format4`) and marks the tree, in one atomic
//! batch, so a crash leaves the log old or new, never half.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Weak};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, Entry, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageError,
    StorageIOError, Vote,
};
use tokio::sync::mpsc;

use crate::codec::{decode, encode};
use crate::kv::{Batch, KeyValueTree, StoreError};
use crate::{LogId, TypeConfig};

const ENTRY_PREFIX: u8 = b'e';
const VOTE_KEY: &[u8] = b"m/vote";
const COMMITTED_KEY: &[u8] = b"m/committed";
const PURGED_KEY: &[u8] = b"m/purged";
const FORMAT_KEY: &[u8] = b"m/format";
/// The log tree's format: log entries whose commands are one type per ledger domain.
pub const LOG_TREE_FORMAT: u32 = 5;

fn entry_key(index: u64) -> [u8; 9] {
    let mut key = [ENTRY_PREFIX; 9];
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

/// One past the greatest entry key.
const ENTRIES_END: [u8; 1] = [ENTRY_PREFIX + 1];

fn io_error(subject: ErrorSubject<u64>, verb: ErrorVerb, error: StoreError) -> StorageError<u64> {
    StorageIOError::new(subject, verb, AnyError::new(&error)).into()
}

fn read_logs(error: StoreError) -> StorageError<u64> {
    io_error(ErrorSubject::Logs, ErrorVerb::Read, error)
}

fn write_logs(error: StoreError) -> StorageError<u64> {
    io_error(ErrorSubject::Logs, ErrorVerb::Write, error)
}

/// Group commit: flushes once for every append that is waiting, then tells each of them.
/// Appends that arrive during a flush share the next one, so under load the log costs one
/// fsync per burst of appends, not one per append.
fn group_commit(
    tree: &Weak<dyn KeyValueTree>,
    mut waiting: mpsc::Receiver<LogFlushed<TypeConfig>>,
) {
    let mut group = Vec::new();
    while let Some(first) = waiting.blocking_recv() {
        group.push(first);
        while let Ok(next) = waiting.try_recv() {
            group.push(next);
        }
        // Every append in `group` wrote its entries before sending its callback, so this
        // flush, which starts after all of them were received, covers them all.
        let result = match tree.upgrade() {
            Some(tree) => tree.flush(),
            None => Err(StoreError::Engine("the log store was closed".to_owned())),
        };
        for callback in group.drain(..) {
            callback.log_io_completed(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            });
        }
    }
}

/// Runs a blocking flush off the async runtime's worker threads.
async fn flush(tree: &Arc<dyn KeyValueTree>) -> Result<(), StoreError> {
    let tree = tree.clone();
    tokio::task::spawn_blocking(move || tree.flush())
        .await
        .map_err(|e| StoreError::Engine(format!("flush task failed: {e}")))?
}

/// Brings the log tree to [`LOG_TREE_FORMAT`]: entries of an unmarked tree are format-4
/// entries, re-encoded here with the marker set in the same atomic batch; an empty tree is
/// just marked; a tree of another format is refused.
fn upgrade_log_tree(tree: &dyn KeyValueTree) -> Result<(), StoreError> {
    if let Some(bytes) = tree.get(FORMAT_KEY)? {
        let found = <[u8; 4]>::try_from(bytes.as_slice())
            .map(u32::from_be_bytes)
            .map_err(|_| StoreError::Corrupt {
                what: "log format marker",
                detail: format!("{} bytes", bytes.len()),
            })?;
        if found == LOG_TREE_FORMAT {
            return Ok(());
        }
        return Err(StoreError::IncompatibleFormat {
            found,
            dir: "the Raft log tree".to_owned(),
        });
    }
    let old = tree.range(&[ENTRY_PREFIX], &ENTRIES_END)?;
    if !old.is_empty() {
        tracing::info!(
            entries = old.len(),
            "migrating the Raft log from storage format 4"
        );
    }
    let mut batch = Batch::new();
    for (key, value) in old {
        let entry = crate::records::decode_format4_log_entry(&value)?;
        batch.insert(key, encode(&entry)?);
    }
    batch.insert(FORMAT_KEY, LOG_TREE_FORMAT.to_be_bytes().to_vec());
    tree.apply(batch)
}

/// Appends waiting for their flush at once; beyond this, `append` waits (back-pressure).
const MAX_WAITING_FLUSHES: usize = 1024;

/// The Raft log store. Cheap to clone: clones share the tree and its flusher.
#[derive(Clone)]
pub struct LogStore {
    tree: Arc<dyn KeyValueTree>,
    flushes: mpsc::Sender<LogFlushed<TypeConfig>>,
}

impl LogStore {
    /// Wraps a tree (see [`crate::SledStorage::tree`]) and starts its flusher thread, which
    /// ends when the last clone of this store is dropped.
    pub fn new(tree: Arc<dyn KeyValueTree>) -> Result<Self, StoreError> {
        upgrade_log_tree(tree.as_ref())?;
        let (flushes, waiting) = mpsc::channel(MAX_WAITING_FLUSHES);
        // The flusher holds the tree weakly, so dropping the store releases the database
        // (and its file lock) at once, not whenever the thread notices.
        let flushed = Arc::downgrade(&tree);
        std::thread::Builder::new()
            .name("x0t-log-flush".to_owned())
            .spawn(move || group_commit(&flushed, waiting))
            .map_err(|e| StoreError::Engine(format!("starting the log flusher: {e}")))?;
        Ok(Self { tree, flushes })
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<T>, StoreError> {
        self.tree
            .get(key)?
            .map(|bytes| decode(what, &bytes))
            .transpose()
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => i.checked_add(1).map(entry_key).map(|k| k.to_vec()),
            Bound::Excluded(i) => Some(entry_key(*i).to_vec()),
            Bound::Unbounded => None,
        }
        .unwrap_or_else(|| ENTRIES_END.to_vec());
        self.tree
            .range(&entry_key(start), &end)
            .map_err(read_logs)?
            .into_iter()
            .map(|(_, bytes)| decode("log entry", &bytes))
            .collect::<Result<_, _>>()
            .map_err(read_logs)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let last_purged_log_id: Option<LogId> = self
            .get_meta(PURGED_KEY, "purged log id")
            .map_err(read_logs)?;
        let last = self
            .tree
            .last(&entry_key(0), &ENTRIES_END)
            .map_err(read_logs)?
            .map(|(_, bytes)| decode::<Entry<TypeConfig>>("log entry", &bytes))
            .transpose()
            .map_err(read_logs)?;
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.map(|e| e.log_id).or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let write_vote = |e| io_error(ErrorSubject::Vote, ErrorVerb::Write, e);
        let mut batch = Batch::new();
        batch.insert(VOTE_KEY, encode(vote).map_err(write_vote)?);
        self.tree.apply(batch).map_err(write_vote)?;
        // A vote must survive a crash before we answer the candidate.
        flush(&self.tree).await.map_err(write_vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        self.get_meta(VOTE_KEY, "vote")
            .map_err(|e| io_error(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError<u64>> {
        let mut batch = Batch::new();
        match committed {
            Some(log_id) => batch.insert(COMMITTED_KEY, encode(&log_id).map_err(write_logs)?),
            None => batch.remove(COMMITTED_KEY),
        }
        self.tree.apply(batch).map_err(write_logs)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError<u64>> {
        self.get_meta(COMMITTED_KEY, "committed log id")
            .map_err(read_logs)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = Batch::new();
        for entry in entries {
            batch.insert(
                entry_key(entry.log_id.index).to_vec(),
                encode(&entry).map_err(write_logs)?,
            );
        }
        self.tree.apply(batch).map_err(write_logs)?;
        // openraft learns the entries are durable only once a flush that started after this
        // write has finished; the flusher thread does it while the Raft core goes on.
        self.flushes
            .send(callback)
            .await
            .map_err(|_| write_logs(StoreError::Engine("the log flusher has stopped".to_owned())))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError<u64>> {
        let keys = self
            .tree
            .keys(&entry_key(log_id.index), &ENTRIES_END)
            .map_err(write_logs)?;
        let mut batch = Batch::new();
        for key in keys {
            batch.remove(key);
        }
        self.tree.apply(batch).map_err(write_logs)?;
        // Conflicting entries must not come back after a crash.
        flush(&self.tree).await.map_err(write_logs)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError<u64>> {
        let end = log_id
            .index
            .checked_add(1)
            .map(|i| entry_key(i).to_vec())
            .unwrap_or_else(|| ENTRIES_END.to_vec());
        let keys = self.tree.keys(&entry_key(0), &end).map_err(write_logs)?;
        // The purge marker and the removal go in one atomic batch.
        let mut batch = Batch::new();
        batch.insert(PURGED_KEY, encode(&log_id).map_err(write_logs)?);
        for key in keys {
            batch.remove(key);
        }
        self.tree.apply(batch).map_err(write_logs)
    }
}
