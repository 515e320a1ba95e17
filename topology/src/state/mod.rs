//! State stores as processors see them: the key-value store interface, stores in memory, the
//! window and session key layout, and the global tables' stores. RocksDB stores, checkpoints and
//! task directories belong to the runtime (`freshet-streams`).
//!
//! [`TaskStores`] are a task's stores as its processors see them: values carry their timestamp,
//! writes go through a record cache, and whatever reaches the store also goes to its changelog.

mod def;
mod global;
mod memory;
mod stores;
pub mod window;

pub use def::{StoreDef, StoreKind};
pub use global::{GlobalStores, Row};
pub use memory::InMemoryStore;
pub use stores::{StoreId, TaskStores, Timestamped};

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A store that cannot do what was asked, with the store's name.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A store operation failed (RocksDB error, unreadable value, unknown store).
    #[error("state store '{store}': {message}")]
    Store {
        /// The store's name.
        store: String,
        /// What went wrong.
        message: String,
    },
    /// The state directory or a task's directory under `state.dir` cannot be created, read or
    /// removed.
    #[error("state directory {path}: {message}")]
    Directory {
        /// The directory's path.
        path: String,
        /// What went wrong.
        message: String,
    },
    #[error(
        "task directory {path} is locked by another thread or process: two instances of one application share a state.dir; give each its own"
    )]
    /// A task's directory is locked by another stream thread or process.
    Locked {
        /// The task directory's path.
        path: String,
    },
    /// The filesystem under `state.dir` has no space left (`ENOSPC`, or a quota's `EDQUOT`) for
    /// a store's files or a checkpoint. Wiping or retrying cannot help: only more space can.
    #[error(
        "the state volume is full: writing {path} failed ({message}); free space on the volume that holds state.dir or grow it (on Kubernetes: the StreamsApp's spec.storage.size, and each existing PersistentVolumeClaim; see docs/runbooks/state-corruption.md)"
    )]
    VolumeFull {
        /// The file or store directory that could not be written, under `state.dir`.
        path: String,
        /// The operating system's (or RocksDB's) error.
        message: String,
    },
}

impl StateError {
    /// The error for an I/O failure on `path` under `state.dir`: [`StateError::VolumeFull`] when
    /// the filesystem is out of space or quota, else [`StateError::Directory`].
    pub fn io(path: &std::path::Path, e: &std::io::Error) -> StateError {
        let path = path.display().to_string();
        let message = e.to_string();
        // ENOSPC (28) and EDQUOT (122 on Linux): the two ways a volume is full.
        if e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28 | 122))
        {
            StateError::VolumeFull { path, message }
        } else {
            StateError::Directory { path, message }
        }
    }
}

/// Kafka Streams' `KeyValueStore` over raw bytes: keys order lexicographically, as RocksDB
/// orders them.
pub trait KeyValueStore: Send {
    /// The store's name, as in its [`StoreDef`].
    fn name(&self) -> &str;
    /// The value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// Stores `value` under `key`, replacing any previous value.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError>;
    /// Removes `key`; deleting an absent key is not an error.
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
    use super::StateError;

    #[test]
    fn a_full_volume_is_named_as_such_and_other_io_errors_are_not() {
        let path = std::path::Path::new("/data/app/0_1/.checkpoint.tmp");
        for code in [28, 122] {
            let e = StateError::io(path, &std::io::Error::from_raw_os_error(code));
            assert!(matches!(e, StateError::VolumeFull { .. }), "{e:?}");
            let message = e.to_string();
            assert!(
                message.contains("state volume is full")
                    && message.contains("/data/app/0_1/.checkpoint.tmp")
                    && message.contains("spec.storage.size"),
                "{message}"
            );
        }
        let denied = StateError::io(path, &std::io::Error::from_raw_os_error(13));
        assert!(matches!(denied, StateError::Directory { .. }), "{denied:?}");
    }
}
