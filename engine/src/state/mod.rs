//! State stores: key-value stores on RocksDB (a cache of the changelog, so without a WAL) or in
//! memory, the per-process memory budget they share, and the state directory with its task locks.
//!
//! [`TaskStores`] are a task's stores as its processors see them: values carry their timestamp,
//! writes go through a record cache, and whatever reaches the store also goes to its changelog.

mod checkpoint;
mod directory;
mod global;
mod memory;
mod rocks;
mod stores;
pub mod window;

pub use checkpoint::{Checkpoint, Offsets};
pub use directory::{ProcessId, StateDirectory, TaskDirectory, random_id};
pub use global::{GlobalStores, Row};
pub use memory::InMemoryStore;
pub use rocks::{RocksDbStore, StoreBudget};
pub use stores::{StoreId, TaskStores, Timestamped};

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A store that cannot do what was asked, with the store's name.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store '{store}': {message}")]
    Store { store: String, message: String },
    #[error("state directory {path}: {message}")]
    Directory { path: String, message: String },
    #[error(
        "task directory {path} is locked by another thread or process: two instances of one application share a state.dir; give each its own"
    )]
    Locked { path: String },
}

/// Kafka Streams' `KeyValueStore` over raw bytes: keys order lexicographically, as RocksDB
/// orders them.
pub trait KeyValueStore: Send {
    fn name(&self) -> &str;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError>;
    fn delete(&mut self, key: &[u8]) -> Result<(), StateError>;
    /// Every entry with `from <= key < to` (`None`: unbounded), in key order.
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<Vec<Entry>, StateError>;
    /// Makes what was written durable in the store's own files (a no-op in memory).
    fn flush(&mut self) -> Result<(), StateError>;
    /// Writes (`Some`) and deletes (`None`) in one go; RocksDB applies them as one batch.
    fn write_batch(&mut self, entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<(), StateError> {
        for (k, v) in entries {
            match v {
                Some(v) => self.put(k, v)?,
                None => self.delete(k)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The behaviour every store shares.
    fn exercise(store: &mut dyn KeyValueStore) {
        assert_eq!(store.get(b"a").unwrap(), None);
        store.put(b"b", b"2").unwrap();
        store.put(b"a", b"1").unwrap();
        store.put(b"c", b"3").unwrap();
        store.put(b"b", b"22").unwrap();
        assert_eq!(store.get(b"b").unwrap().as_deref(), Some(&b"22"[..]));
        store.delete(b"c").unwrap();
        assert_eq!(store.get(b"c").unwrap(), None);
        let all = store.range(None, None).unwrap();
        assert_eq!(
            all,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"22".to_vec())
            ]
        );
        assert_eq!(store.range(Some(b"b"), None).unwrap().len(), 1);
        assert_eq!(store.range(None, Some(b"b")).unwrap().len(), 1);
        store.flush().unwrap();
    }

    #[test]
    fn in_memory_and_rocksdb_stores_behave_alike() {
        exercise(&mut InMemoryStore::new("mem"));
        let dir = tempfile::tempdir().unwrap();
        let budget = StoreBudget::new(8 << 20, 8 << 20);
        let mut store = RocksDbStore::open("rocks", &dir.path().join("rocks"), &budget).unwrap();
        exercise(&mut store);
    }

    #[test]
    fn a_flushed_rocksdb_store_keeps_its_data_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let budget = StoreBudget::new(8 << 20, 8 << 20);
        {
            let mut store =
                RocksDbStore::open("counts", &dir.path().join("counts"), &budget).unwrap();
            store.put(b"k", b"v").unwrap();
            store.flush().unwrap();
        }
        let store = RocksDbStore::open("counts", &dir.path().join("counts"), &budget).unwrap();
        assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn memtables_stay_inside_the_shared_budget() {
        let dir = tempfile::tempdir().unwrap();
        let budget = StoreBudget::new(4 << 20, 4 << 20);
        let mut a = RocksDbStore::open("a", &dir.path().join("a"), &budget).unwrap();
        let mut b = RocksDbStore::open("b", &dir.path().join("b"), &budget).unwrap();
        let value = vec![7u8; 200];
        let mut peak = 0;
        for i in 0u32..100_000 {
            a.put(&i.to_be_bytes(), &value).unwrap();
            b.put(&i.to_be_bytes(), &value).unwrap();
            peak = peak.max(budget.write_buffer_usage());
        }
        // 40 MB went through 4 MiB of memtables, however slowly background flushes ran.
        assert!(
            peak <= 5 << 20,
            "memtables reached {peak} bytes, budget 4 MiB (+ one arena block)"
        );
        assert_eq!(
            a.get(&99_999u32.to_be_bytes()).unwrap().as_deref(),
            Some(&value[..])
        );
    }
}
