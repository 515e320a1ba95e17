//! Global stores: the rows of a global table's whole topic, shared by every task of the process
//! for reading while the global thread keeps them up to date (Kafka Streams' global state).
//!
//! Rows are kept as the topic has them (key and value bytes); they live in memory and are loaded
//! from the topic again at every start.

use crate::sync::Unpoisoned;
use std::collections::HashMap;
use std::sync::Mutex;

use super::{InMemoryStore, KeyValueStore, StateError};

/// A key and its value, or `None` for a deletion, as read from a global table's topic.
pub type Row = (Vec<u8>, Option<Vec<u8>>);

/// The stores of the process's global tables (Kafka Streams' global state stores), by name: in
/// memory, written by the global thread, read by every task.
#[derive(Default)]
pub struct GlobalStores {
    stores: HashMap<String, Mutex<InMemoryStore>>,
}

impl GlobalStores {
    /// Empty stores with these names.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        GlobalStores {
            stores: names
                .into_iter()
                .map(|n| (n.to_owned(), Mutex::new(InMemoryStore::new(n))))
                .collect(),
        }
    }

    fn store(&self, name: &str) -> Result<&Mutex<InMemoryStore>, StateError> {
        self.stores.get(name).ok_or_else(|| StateError::Store {
            store: name.to_owned(),
            message: "no such global store: declare the global table".into(),
        })
    }

    /// The value of `key` in global store `name`.
    pub fn get(&self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let store = self.store(name)?;
        store.lock_unpoisoned().get(key)
    }

    /// Applies rows read from the topic: writes, and deletions for null values.
    pub fn apply(&self, name: &str, rows: &[Row]) -> Result<(), StateError> {
        let store = self.store(name)?;
        store.lock_unpoisoned().write_batch(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_written_and_deleted_by_store_name() {
        let g = GlobalStores::new(["products"]);
        g.apply(
            "products",
            &[
                (b"p1".to_vec(), Some(b"pen".to_vec())),
                (b"p2".to_vec(), Some(b"ink".to_vec())),
            ],
        )
        .unwrap();
        g.apply("products", &[(b"p2".to_vec(), None)]).unwrap();
        assert_eq!(g.get("products", b"p1").unwrap(), Some(b"pen".to_vec()));
        assert_eq!(g.get("products", b"p2").unwrap(), None);
        assert!(
            g.get("prices", b"p1").is_err(),
            "an undeclared store is an error"
        );
    }
}
