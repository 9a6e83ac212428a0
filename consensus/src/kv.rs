//! The storage seam: a tree of sorted byte keys with atomic batches and a durable flush.

use std::path::Path;
use std::sync::Arc;

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The engine failed (I/O, corruption detected by sled itself).
    #[error("storage engine: {0}")]
    Engine(String),
    /// Stored bytes do not decode.
    #[error("corrupt {what} in storage: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Why it failed.
        detail: String,
    },
    /// A value could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// The database was written in a layout this build does not read: too old to migrate,
    /// or written by a newer release.
    #[error(
        "storage format {found} in {dir}{}: this build reads formats \
         {OLDEST_MIGRATED_FORMAT} to {STORAGE_FORMAT_VERSION} (older ones are migrated on open); \
         {}",
        if *found > STORAGE_FORMAT_VERSION { ", written by a newer release" } else { "" },
        if *found > STORAGE_FORMAT_VERSION {
            "run that release (or newer) on it, or move the data dir aside"
        } else {
            "move the data dir aside and start afresh (or rejoin the cluster)"
        }
    )]
    IncompatibleFormat {
        /// The format found (1: unmarked, written by early development builds).
        found: u32,
        /// The database directory.
        dir: String,
    },
}

/// Version of the on-disk layout (trees, keys and encodings of log entries, state records
/// and snapshots) this build reads and writes; kept under [`FORMAT_KEY`] in sled's default
/// tree. Format 2 introduced batched proposals; format 3 node lifecycle records, audit chains
/// and anchor identity keys; format 4 stores ledger records as (domain, key) → value, the
/// ledger's domains owning their encodings; format 5 gives each ledger domain its own command
/// type inside log entries (the state tree is unchanged); format 1 databases carry no marker.
pub const STORAGE_FORMAT_VERSION: u32 = 5;
/// The oldest format this build migrates on open (the stores rewrite each tree they own in
/// the current format, see `StateMachineStore::open`).
pub const OLDEST_MIGRATED_FORMAT: u32 = 3;
/// How long [`SledStorage::open`] waits for a database lock held by a closing handle.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Where the format version is kept.
const FORMAT_KEY: &[u8] = b"x0t/storage-format";

/// Writes applied atomically by [`KeyValueTree::apply`]: all or none after a crash.
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), Some(value.into())));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), None));
    }

    /// Whether the batch does nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// One ordered key space. Implementations must make `apply` atomic and `flush` durable.
pub trait KeyValueTree: Send + Sync + 'static {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every pair with `start <= key < end`, in key order.
    fn range(&self, start: &[u8], end: &[u8]) -> Result<Vec<KeyValue>, StoreError>;
    /// Every key with `start <= key < end`, in key order.
    fn keys(&self, start: &[u8], end: &[u8]) -> Result<Vec<Vec<u8>>, StoreError>;
    /// The greatest pair with `start <= key < end`.
    fn last(&self, start: &[u8], end: &[u8]) -> Result<Option<KeyValue>, StoreError>;
    /// Applies every write of `batch`, atomically.
    fn apply(&self, batch: Batch) -> Result<(), StoreError>;
    /// Blocks until everything applied so far is on stable storage (fsync).
    fn flush(&self) -> Result<(), StoreError>;
}

fn engine(error: sled::Error) -> StoreError {
    StoreError::Engine(error.to_string())
}

/// A sled database holding the trees of one node.
#[derive(Clone)]
pub struct SledStorage {
    db: sled::Db,
}

impl SledStorage {
    /// Opens (or creates) the database in `dir`.
    ///
    /// sled holds an exclusive file lock while a database is open, and releases it only when
    /// its last IO job of a just-closed handle is done; a lock held by a closing handle in
    /// this process is waited for (up to 2 s), one held longer gets a clear error.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            let opened = sled::Config::new()
                .path(dir)
                // We flush explicitly where durability matters; the background flush only
                // bounds how much unflushed state-machine work a crash can lose (it is
                // replayed from the log).
                .flush_every_ms(Some(1_000))
                .open();
            match opened {
                Ok(db) => break db,
                // sled reports a held lock as an I/O error wrapping EWOULDBLOCK.
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.to_string().contains("could not acquire lock") =>
                {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Engine(format!(
                            "{} is in use (is another x0t running with this data dir?)",
                            dir.display()
                        )));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(engine(e)),
            }
        };
        check_format(&db, dir)?;
        Ok(Self { db })
    }

    /// A named tree of this database.
    pub fn tree(&self, name: &str) -> Result<Arc<dyn KeyValueTree>, StoreError> {
        Ok(Arc::new(SledTree(self.db.open_tree(name).map_err(engine)?)))
    }
}

/// Refuses a database of another format; marks a new one with ours.
fn check_format(db: &sled::Db, dir: &Path) -> Result<(), StoreError> {
    let incompatible = |found| StoreError::IncompatibleFormat {
        found,
        dir: dir.display().to_string(),
    };
    match db.get(FORMAT_KEY).map_err(engine)? {
        Some(bytes) => {
            let found = <[u8; 4]>::try_from(bytes.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    what: "storage format marker",
                    detail: format!("{} bytes", bytes.len()),
                })?;
            if found == STORAGE_FORMAT_VERSION {
                Ok(())
            } else if (OLDEST_MIGRATED_FORMAT..STORAGE_FORMAT_VERSION).contains(&found) {
                // Each store migrates the trees it owns when it opens them, each in one atomic
                // batch with a marker of its own, so a crash mid-way leaves every tree either
                // old or new, and the next open finishes the job. The database's marker says
                // only which formats may be inside.
                tracing::info!(found, to = STORAGE_FORMAT_VERSION, dir = %dir.display(), "migrating storage format");
                db.insert(FORMAT_KEY, &STORAGE_FORMAT_VERSION.to_be_bytes())
                    .map_err(engine)?;
                db.flush().map_err(engine)?;
                Ok(())
            } else {
                Err(incompatible(found))
            }
        }
        None => {
            // Without a marker, any data at all means an early (format 1) database.
            for name in db.tree_names() {
                if !db.open_tree(&name).map_err(engine)?.is_empty() {
                    return Err(incompatible(1));
                }
            }
            db.insert(FORMAT_KEY, &STORAGE_FORMAT_VERSION.to_be_bytes())
                .map_err(engine)?;
            db.flush().map_err(engine)?;
            Ok(())
        }
    }
}

struct SledTree(sled::Tree);

impl KeyValueTree for SledTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(key).map_err(engine)?.map(|v| v.to_vec()))
    }

    fn range(&self, start: &[u8], end: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.0
            .range(start..end)
            .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(engine))
            .collect()
    }

    fn keys(&self, start: &[u8], end: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.0
            .range(start..end)
            .keys()
            .map(|item| item.map(|k| k.to_vec()).map_err(engine))
            .collect()
    }

    fn last(&self, start: &[u8], end: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        self.0
            .range(start..end)
            .next_back()
            .transpose()
            .map(|pair| pair.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .map_err(engine)
    }

    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch.ops {
            match value {
                Some(value) => sled_batch.insert(key, value),
                None => sled_batch.remove(key),
            }
        }
        self.0.apply_batch(sled_batch).map_err(engine)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.0.flush().map(|_| ()).map_err(engine)
    }
}
