//! A task's stores as its processors use them.
//!
//! Values are stored as Kafka Streams' timestamped stores store them, `timestamp (8 bytes) ++
//! value`; their changelog records carry the plain value with the timestamp as the record's.
//! Writes collect in a record cache (Kafka Streams' `statestore.cache.max.bytes`) that keeps only
//! the latest value per key, so a key updated many times between commits costs one store write and
//! one changelog record; the cache is flushed at every commit and whenever it outgrows its share.

use std::collections::BTreeMap;

use super::window::entry_time;
use super::{KeyValueStore, StateError};
use super::{StoreDef, StoreKind};
use crate::record::ProduceRequest;

/// A changelog record read back: key, value (`None`: deleted) and timestamp.
pub type ChangelogEntry = (Vec<u8>, Option<Vec<u8>>, i64);

/// A store of a task, resolved once by name so the per-record path needs no lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StoreId(pub usize);

/// A stored value and the timestamp it carries (the record timestamp of its latest update).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timestamped {
    /// The value's bytes, as its serde wrote them.
    pub value: Vec<u8>,
    /// The record timestamp of the value's latest update, in ms since the Unix epoch.
    pub timestamp: i64,
}

const TS: usize = 8;

fn encode(value: &[u8], timestamp: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(TS + value.len());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode(stored: Vec<u8>, store: &str) -> Result<Timestamped, StateError> {
    if stored.len() < TS {
        return Err(StateError::Store {
            store: store.to_owned(),
            message: format!(
                "a stored value of {} bytes has no timestamp: the store was written by something else; delete its directory to restore it from the changelog",
                stored.len()
            ),
        });
    }
    let mut ts = [0u8; TS];
    ts.copy_from_slice(&stored[..TS]);
    Ok(Timestamped {
        timestamp: i64::from_be_bytes(ts),
        value: stored[TS..].to_vec(),
    })
}

/// A dirty cache entry: the stored bytes (`None`: deleted) and the record timestamp.
struct Dirty {
    stored: Option<Vec<u8>>,
    timestamp: i64,
}

struct OpenStore {
    def: StoreDef,
    inner: Box<dyn KeyValueStore>,
    /// The resolved changelog topic, for logged stores.
    changelog: Option<String>,
    cache: BTreeMap<Vec<u8>, Dirty>,
    cache_bytes: usize,
    /// Window and session stores: the latest entry time written, which retention counts back from.
    stream_time: i64,
    purged_at: i64,
}

impl OpenStore {
    fn retention(&self) -> Option<i64> {
        match self.def.kind {
            StoreKind::KeyValue => None,
            StoreKind::Window { retention_ms } | StoreKind::Session { retention_ms } => {
                Some(retention_ms)
            }
        }
    }

    fn expired(&self, key: &[u8]) -> bool {
        match (self.retention(), entry_time(self.def.kind, key)) {
            (Some(retention), Some(t)) => t < self.stream_time.saturating_sub(retention),
            _ => false,
        }
    }
}

/// The stores of one task, and the changelog records their writes produced.
#[derive(Default)]
pub struct TaskStores {
    stores: Vec<OpenStore>,
    partition: i32,
    /// Bytes each store's record cache may hold; 0 writes through.
    cache_limit: usize,
    /// Changelog records for the producer, in write order.
    pub changelog: Vec<ProduceRequest>,
    /// Changelog records written since the last checkpoint.
    pub written_since_checkpoint: u64,
    /// A write a processor made that failed for want of space on the state volume, kept until
    /// [`TaskStores::take_volume_full`]: a handler may skip the record whose write failed, but a
    /// full volume is no fault of a record, and the task's next commit must fail on it.
    volume_full: Option<StateError>,
}

impl TaskStores {
    /// Stores of the task of `partition`; each store's cache may hold `cache_limit` bytes.
    pub fn new(partition: i32, cache_limit: usize) -> Self {
        TaskStores {
            partition,
            cache_limit,
            ..TaskStores::default()
        }
    }

    /// Adds an opened store; `changelog` is its resolved changelog topic when logged.
    pub fn add(&mut self, def: StoreDef, inner: Box<dyn KeyValueStore>, changelog: Option<String>) {
        self.stores.push(OpenStore {
            def,
            inner,
            changelog,
            cache: BTreeMap::new(),
            cache_bytes: 0,
            stream_time: i64::MIN,
            purged_at: i64::MIN,
        });
    }

    /// The store called `name`.
    pub fn id(&self, name: &str) -> Option<StoreId> {
        self.stores
            .iter()
            .position(|s| s.def.name == name)
            .map(StoreId)
    }

    /// Whether writes to the store collect in a record cache (so updates are forwarded at
    /// commit, not one by one).
    pub fn caching(&self, _id: StoreId) -> bool {
        self.cache_limit > 0
    }

    /// The definition of store `id`.
    pub fn def(&self, id: StoreId) -> &StoreDef {
        &self.stores[id.0].def
    }

    /// Every logged store with its changelog topic.
    pub fn changelogs(&self) -> impl Iterator<Item = (StoreId, &str)> {
        self.stores
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.changelog.as_deref().map(|c| (StoreId(i), c)))
    }

    /// The value of `key` in store `id` with its timestamp, from the record cache if it holds the
    /// key, else from the store.
    pub fn get(&self, id: StoreId, key: &[u8]) -> Result<Option<Timestamped>, StateError> {
        let store = &self.stores[id.0];
        let stored = match store.cache.get(key) {
            Some(dirty) => dirty.stored.clone(),
            None => store.inner.get(key)?,
        };
        stored.map(|s| decode(s, &store.def.name)).transpose()
    }

    /// Keeps a copy of a full volume's error for [`TaskStores::take_volume_full`].
    fn note<T>(&mut self, result: Result<T, StateError>) -> Result<T, StateError> {
        if let Err(StateError::VolumeFull { path, message }) = &result {
            self.volume_full
                .get_or_insert_with(|| StateError::VolumeFull {
                    path: path.clone(),
                    message: message.clone(),
                });
        }
        result
    }

    /// The first write since the last call that failed because the state volume is full.
    pub fn take_volume_full(&mut self) -> Option<StateError> {
        self.volume_full.take()
    }

    /// Writes `value` (`None` deletes) with its record timestamp. Writes to windows that have
    /// outlived the store's retention are dropped, as Kafka Streams drops them.
    pub fn put(
        &mut self,
        id: StoreId,
        key: Vec<u8>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<(), StateError> {
        let result = self.put_unnoted(id, key, value, timestamp);
        self.note(result)
    }

    fn put_unnoted(
        &mut self,
        id: StoreId,
        key: Vec<u8>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<(), StateError> {
        let limit = self.cache_limit;
        let store = &mut self.stores[id.0];
        if let Some(t) = entry_time(store.def.kind, &key) {
            store.stream_time = store.stream_time.max(t);
            if store.expired(&key) {
                return Ok(());
            }
        }
        let stored = value.map(|v| encode(v, timestamp));
        if limit == 0 {
            return self.write_through(id, key, stored, timestamp);
        }
        let size = key.len() + stored.as_ref().map_or(0, Vec::len) + 32;
        let old = store.cache.insert(key, Dirty { stored, timestamp });
        store.cache_bytes += size;
        if let Some(old) = old {
            store.cache_bytes = store
                .cache_bytes
                .saturating_sub(old.stored.map_or(0, |s| s.len()) + 32);
        }
        if store.cache_bytes > limit {
            self.flush_store_cache(id)?;
        }
        Ok(())
    }

    fn write_through(
        &mut self,
        id: StoreId,
        key: Vec<u8>,
        stored: Option<Vec<u8>>,
        timestamp: i64,
    ) -> Result<(), StateError> {
        let store = &mut self.stores[id.0];
        match &stored {
            Some(s) => store.inner.put(&key, s)?,
            None => store.inner.delete(&key)?,
        }
        if let Some(topic) = &store.changelog {
            self.changelog.push(changelog_record(
                topic,
                self.partition,
                key,
                stored,
                timestamp,
            ));
            self.written_since_checkpoint += 1;
        }
        Ok(())
    }

    /// Every entry with `from <= key < to`, in key order (the cache is written out first, so the
    /// store alone answers).
    pub fn range(
        &mut self,
        id: StoreId,
        from: &[u8],
        to: &[u8],
    ) -> Result<Vec<(Vec<u8>, Timestamped)>, StateError> {
        self.scan(id, Some(from), Some(to))
    }

    /// Every entry, in key order.
    pub fn all(&mut self, id: StoreId) -> Result<Vec<(Vec<u8>, Timestamped)>, StateError> {
        self.scan(id, None, None)
    }

    fn scan(
        &mut self,
        id: StoreId,
        from: Option<&[u8]>,
        to: Option<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, Timestamped)>, StateError> {
        let flushed = self.flush_store_cache(id);
        self.note(flushed)?;
        let store = &self.stores[id.0];
        store
            .inner
            .range(from, to)?
            .into_iter()
            .filter(|(k, _)| !store.expired(k))
            .map(|(k, v)| decode(v, &store.def.name).map(|t| (k, t)))
            .collect()
    }

    /// Writes one store's cached entries to the store and its changelog.
    fn flush_store_cache(&mut self, id: StoreId) -> Result<(), StateError> {
        let store = &mut self.stores[id.0];
        if store.cache.is_empty() {
            return Ok(());
        }
        let dirty = std::mem::take(&mut store.cache);
        store.cache_bytes = 0;
        let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = dirty
            .iter()
            .map(|(k, d)| (k.clone(), d.stored.clone()))
            .collect();
        store.inner.write_batch(&batch)?;
        if let Some(topic) = &store.changelog {
            for (key, d) in dirty {
                self.changelog.push(changelog_record(
                    topic,
                    self.partition,
                    key,
                    d.stored,
                    d.timestamp,
                ));
                self.written_since_checkpoint += 1;
            }
        }
        Ok(())
    }

    /// Writes every cache out (at commit) and drops window and session entries past retention.
    pub fn flush_caches(&mut self) -> Result<(), StateError> {
        for i in 0..self.stores.len() {
            self.flush_store_cache(StoreId(i))?;
            self.purge_expired(StoreId(i))?;
        }
        Ok(())
    }

    /// Deletes expired windows or sessions once stream time has moved on by half the retention
    /// since the last purge (a full scan, so not at every commit). The changelog's own retention
    /// drops them there.
    fn purge_expired(&mut self, id: StoreId) -> Result<(), StateError> {
        let store = &mut self.stores[id.0];
        let Some(retention) = store.retention() else {
            return Ok(());
        };
        if store.stream_time == i64::MIN
            || store.stream_time.saturating_sub(store.purged_at) < retention / 2
        {
            return Ok(());
        }
        store.purged_at = store.stream_time;
        let expired: Vec<(Vec<u8>, Option<Vec<u8>>)> = store
            .inner
            .range(None, None)?
            .into_iter()
            .filter(|(k, _)| store.expired(k))
            .map(|(k, _)| (k, None))
            .collect();
        if !expired.is_empty() {
            store.inner.write_batch(&expired)?;
        }
        Ok(())
    }

    /// Makes the stores' contents durable in their files (before a checkpoint is written).
    pub fn flush(&mut self) -> Result<(), StateError> {
        self.flush_caches()?;
        for store in &mut self.stores {
            store.inner.flush()?;
        }
        Ok(())
    }

    /// Applies changelog records read back during restoration: written to the store only.
    pub fn restore(&mut self, id: StoreId, records: &[ChangelogEntry]) -> Result<(), StateError> {
        let store = &mut self.stores[id.0];
        let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = records
            .iter()
            .map(|(k, v, ts)| {
                if let Some(t) = entry_time(store.def.kind, k) {
                    store.stream_time = store.stream_time.max(t);
                }
                (k.clone(), v.as_ref().map(|v| encode(v, *ts)))
            })
            .collect();
        store.inner.write_batch(&batch)
    }
}

fn changelog_record(
    topic: &str,
    partition: i32,
    key: Vec<u8>,
    stored: Option<Vec<u8>>,
    timestamp: i64,
) -> ProduceRequest {
    ProduceRequest {
        topic: topic.to_owned(),
        partition: Some(partition),
        hash_len: None,
        changelog: true,
        key: Some(key),
        value: stored.map(|s| s[TS..].to_vec()),
        timestamp,
        headers: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::InMemoryStore;
    use crate::state::window::window_key;

    fn stores(cache: usize) -> (TaskStores, StoreId) {
        let mut s = TaskStores::new(3, cache);
        s.add(
            StoreDef::key_value("counts"),
            Box::new(InMemoryStore::new("counts")),
            Some("app-counts-changelog".into()),
        );
        let id = s.id("counts").unwrap();
        (s, id)
    }

    #[test]
    fn without_a_cache_every_write_is_logged_to_the_tasks_changelog_partition() {
        let (mut s, id) = stores(0);
        s.put(id, b"k".to_vec(), Some(b"1"), 10).unwrap();
        s.put(id, b"k".to_vec(), Some(b"2"), 20).unwrap();
        assert_eq!(
            s.get(id, b"k").unwrap(),
            Some(Timestamped {
                value: b"2".to_vec(),
                timestamp: 20
            })
        );
        assert_eq!(s.changelog.len(), 2);
        let last = &s.changelog[1];
        assert_eq!(
            (last.topic.as_str(), last.partition, last.timestamp),
            ("app-counts-changelog", Some(3), 20)
        );
        assert_eq!(last.value.as_deref(), Some(&b"2"[..]), "the plain value");
    }

    #[test]
    fn the_cache_collapses_updates_to_a_key_until_it_is_flushed() {
        let (mut s, id) = stores(1 << 20);
        for i in 0..100u8 {
            s.put(id, b"k".to_vec(), Some(&[i]), i as i64).unwrap();
        }
        s.put(id, b"gone".to_vec(), Some(b"x"), 1).unwrap();
        s.put(id, b"gone".to_vec(), None, 2).unwrap();
        assert!(s.changelog.is_empty());
        assert_eq!(s.get(id, b"k").unwrap().unwrap().value, vec![99]);
        assert_eq!(s.get(id, b"gone").unwrap(), None);
        s.flush_caches().unwrap();
        let logged: Vec<_> = s
            .changelog
            .iter()
            .map(|r| (r.key.clone().unwrap(), r.value.clone()))
            .collect();
        assert_eq!(
            logged,
            vec![(b"gone".to_vec(), None), (b"k".to_vec(), Some(vec![99]))]
        );
    }

    #[test]
    fn windows_past_retention_are_dropped_and_purged() {
        let mut s = TaskStores::new(0, 0);
        let def = StoreDef {
            name: "w".into(),
            kind: StoreKind::Window { retention_ms: 100 },
            logged: false,
            in_memory: true,
            format: String::new(),
        };
        s.add(def, Box::new(InMemoryStore::new("w")), None);
        let id = s.id("w").unwrap();
        s.put(id, window_key(b"k", 0), Some(b"old"), 0).unwrap();
        s.put(id, window_key(b"k", 1_000), Some(b"new"), 1_000)
            .unwrap();
        s.put(id, window_key(b"k", 10), Some(b"late"), 10).unwrap();
        assert_eq!(s.get(id, &window_key(b"k", 10)).unwrap(), None);
        s.flush_caches().unwrap();
        assert_eq!(s.get(id, &window_key(b"k", 0)).unwrap(), None, "purged");
        assert!(s.get(id, &window_key(b"k", 1_000)).unwrap().is_some());
    }
}
