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
