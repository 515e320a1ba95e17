//! State stores: key-value stores on RocksDB (a cache of the changelog, so without a WAL) or in
//! memory, the per-process memory budget they share, and the state directory with its task locks.
//!
//! The interfaces and in-memory parts come from `freshet-topology` and are re-exported here.

mod checkpoint;
mod directory;
mod rocks;

pub use checkpoint::{Checkpoint, Offsets};
pub use directory::{ProcessId, StateDirectory, TaskDirectory, random_id};
pub use freshet_topology::state::*;
pub use rocks::{RocksDbStore, StoreBudget};

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
