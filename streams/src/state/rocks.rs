//! The RocksDB key-value store. It is a cache of the store's changelog topic, which is what makes
//! it durable, so writes skip RocksDB's write-ahead log; memory is bounded per process by one
//! block cache and one write-buffer budget shared by every store.

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, Cache, DB, Direction, IteratorMode, Options, WriteBufferManager,
    WriteOptions,
};

use super::{Entry, KeyValueStore, StateError};

/// The memory every RocksDB store of a process shares: block cache and memtables.
#[derive(Clone)]
pub struct StoreBudget {
    cache: Cache,
    write_buffers: WriteBufferManager,
    write_buffer_bytes: usize,
}

impl StoreBudget {
    /// `block_cache_bytes` for reads, `write_buffer_bytes` for memtables (charged to the cache
    /// too, so the total stays near their sum).
    ///
    /// RocksDB's own stall is off: with one store per task, memory held by idle stores would
    /// stall the busy one forever (RocksDB flushes only the store being written). Instead a
    /// store written while the memtables are over budget flushes itself before going on, so
    /// memory stays within the budget plus one write, however far background flushes lag.
    pub fn new(block_cache_bytes: usize, write_buffer_bytes: usize) -> Self {
        let cache = Cache::new_lru_cache(block_cache_bytes + write_buffer_bytes);
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            write_buffer_bytes,
            false,
            cache.clone(),
        );
        StoreBudget {
            cache,
            write_buffers,
            write_buffer_bytes,
        }
    }

    fn over(&self) -> bool {
        self.write_buffer_usage() > self.write_buffer_bytes
    }

    /// Bytes the memtables of all stores hold now.
    pub fn write_buffer_usage(&self) -> usize {
        self.write_buffers.get_usage()
    }

    /// Bytes the shared block cache holds now (memtable reservations included).
    pub fn cache_usage(&self) -> usize {
        self.cache.get_usage()
    }
}

/// A persistent key-value store in RocksDB (Kafka Streams' `RocksDBStore`): one database per
/// store and task, under the task directory, its memory drawn from a shared [`StoreBudget`].
/// Writes skip the write-ahead log: the changelog makes the store durable, and a store without a
/// checkpoint is rebuilt from it.
pub struct RocksDbStore {
    name: String,
    path: PathBuf,
    db: DB,
    writes: WriteOptions,
    budget: StoreBudget,
}

impl RocksDbStore {
    /// Opens the store `name` at `path`, creating it if missing, with its block cache and
    /// memtables charged to `budget`.
    pub fn open(name: &str, path: &Path, budget: &StoreBudget) -> Result<Self, StateError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_write_buffer_manager(&budget.write_buffers);
        // Memtables grow by arena blocks (1 MiB by default); a block a small fraction of the
        // budget keeps the budget's steps fine, so a store is flushed when memtables are full,
        // not on every write.
        options.set_arena_block_size((budget.write_buffer_bytes / 64).clamp(4 << 10, 1 << 20));
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&budget.cache);
        options.set_block_based_table_factory(&table);
        let db = DB::open(&options, path).map_err(|e| rocks_error(name, path, "opening", &e))?;
        let mut writes = WriteOptions::default();
        writes.disable_wal(true);
        Ok(RocksDbStore {
            name: name.to_owned(),
            path: path.to_owned(),
            db,
            writes,
            budget: budget.clone(),
        })
    }

    /// Flushes this store's memtables, waiting, when all stores together are over budget.
    fn keep_within_budget(&self) -> Result<(), StateError> {
        if self.budget.over() {
            self.db
                .flush()
                .map_err(|e| self.error("flush over the memory budget", e))?;
        }
        Ok(())
    }

    fn error(&self, what: &str, e: rocksdb::Error) -> StateError {
        rocks_error(&self.name, &self.path, what, &e)
    }
}

/// A RocksDB error of store `store` at `path` while doing `what`. RocksDB reports the OS error
/// only in its message (`IO error: No space left on device: While appending to file: ...`); a
/// full volume becomes [`StateError::VolumeFull`], which names the path and the fix, since after
/// a failed flush RocksDB refuses every write until reopened and the store would fail for good.
fn rocks_error(store: &str, path: &Path, what: &str, e: &rocksdb::Error) -> StateError {
    let message = e.to_string();
    if e.kind() == rocksdb::ErrorKind::IOError
        && (message.contains("No space left on device") || message.contains("Disk quota exceeded"))
    {
        return StateError::VolumeFull {
            path: path.display().to_string(),
            message: format!("state store '{store}', {what}: {message}"),
        };
    }
    StateError::Store {
        store: store.to_owned(),
        message: format!("{what} {}: {message}", path.display()),
    }
}

impl KeyValueStore for RocksDbStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.db.get(key).map_err(|e| self.error("get", e))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.db
            .put_opt(key, value, &self.writes)
            .map_err(|e| self.error("put", e))?;
        self.keep_within_budget()
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StateError> {
        self.db
            .delete_opt(key, &self.writes)
            .map_err(|e| self.error("delete", e))
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<Vec<Entry>, StateError> {
        let mode = match from {
            Some(f) => IteratorMode::From(f, Direction::Forward),
            None => IteratorMode::Start,
        };
        let mut out = Vec::new();
        for item in self.db.iterator(mode) {
            let (k, v) = item.map_err(|e| self.error("range", e))?;
            if to.is_some_and(|t| &*k >= t) {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    fn write_batch(&mut self, entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<(), StateError> {
        let mut batch = rocksdb::WriteBatch::default();
        for (k, v) in entries {
            match v {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        self.db
            .write_opt(batch, &self.writes)
            .map_err(|e| self.error("write", e))?;
        self.keep_within_budget()
    }

    fn flush(&mut self) -> Result<(), StateError> {
        // Without a WAL, only a memtable flush puts the data in the store's files.
        self.db.flush().map_err(|e| self.error("flush", e))
    }
}
