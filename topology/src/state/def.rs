//! State store definitions: what a store holds and whether it is logged.

use crate::naming::TopicName;

/// What a state store holds, which decides its key layout and its changelog's cleanup policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// Key-value: one value per key (Kafka Streams' `KeyValueStore`); its changelog is compacted.
    KeyValue,
    /// Windows of time; entries older than `retention_ms` behind stream time expire.
    Window {
        /// How long windows are kept behind stream time, in ms.
        retention_ms: i64,
    },
    /// Sessions, keyed by their end and start.
    Session {
        /// How long sessions are kept behind stream time, in ms.
        retention_ms: i64,
    },
}

/// A state store that processors connect to by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreDef {
    /// The store's name, unique in the topology; processors name it to use it, and it names the
    /// changelog `<application.id>-<name>-changelog` and the store's directory.
    pub name: String,
    /// What the store holds: key-value, windows or sessions.
    pub kind: StoreKind,
    /// Written to the changelog `<application.id>-<name>-changelog`, which restores it.
    pub logged: bool,
    /// Kept in memory rather than RocksDB (restored from the changelog on every start).
    pub in_memory: bool,
    /// What the stored bytes mean: the key and value serdes and, for windows, their size and
    /// grace (`key=string value=long windows size=600000ms ...`). State written under one format
    /// is misread under another, so a change of it is a change of the application's state.
    /// Empty where the DSL does not know it (a store added by hand).
    pub format: String,
}

impl StoreDef {
    /// A logged, persistent (RocksDB) key-value store named `name`, as Kafka Streams'
    /// `Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(name), ..)` builds one; for
    /// [`crate::dsl::StreamsBuilder::add_state_store`].
    pub fn key_value(name: impl Into<String>) -> Self {
        StoreDef {
            name: name.into(),
            kind: StoreKind::KeyValue,
            logged: true,
            in_memory: false,
            format: String::new(),
        }
    }

    /// The store with its [`StoreDef::format`].
    pub fn with_format(mut self, format: impl Into<String>) -> Self {
        self.format = format.into();
        self
    }

    /// The changelog topic, named as Kafka Streams names it.
    pub fn changelog(&self) -> TopicName {
        TopicName::Internal(format!("{}-changelog", self.name))
    }

    /// Retention of the changelog of a window or session store: the store's retention plus
    /// `additional_ms`, as Kafka Streams sets it; `None` for key-value stores (compacted only).
    pub fn changelog_retention_ms(&self, additional_ms: i64) -> Option<i64> {
        match self.kind {
            StoreKind::KeyValue => None,
            StoreKind::Window { retention_ms } | StoreKind::Session { retention_ms } => {
                Some(retention_ms.saturating_add(additional_ms))
            }
        }
    }
}
