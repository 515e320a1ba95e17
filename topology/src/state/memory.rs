//! The in-memory key-value store (Kafka Streams' `Stores.inMemoryKeyValueStore`).

use std::collections::BTreeMap;
use std::ops::Bound;

use super::{Entry, KeyValueStore, StateError};

/// A key-value store in a sorted in-memory map: nothing is written to disk, so a logged one is
/// restored from its changelog at every start.
pub struct InMemoryStore {
    name: String,
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl InMemoryStore {
    /// An empty store named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        InMemoryStore {
            name: name.into(),
            entries: BTreeMap::new(),
        }
    }
}

impl KeyValueStore for InMemoryStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.entries.get(key).cloned())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.entries.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StateError> {
        self.entries.remove(key);
        Ok(())
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<Vec<Entry>, StateError> {
        let lower = from.map_or(Bound::Unbounded, |f| Bound::Included(f.to_vec()));
        let upper = to.map_or(Bound::Unbounded, |t| Bound::Excluded(t.to_vec()));
        Ok(self
            .entries
            .range((lower, upper))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn flush(&mut self) -> Result<(), StateError> {
        Ok(())
    }
}
