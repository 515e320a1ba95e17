//! `suppress(untilWindowCloses)` (Kafka Streams' `KTableSuppressProcessor` with final-results
//! suppression): updates of a windowed table are held, the latest per window and key, and each
//! window's final result is emitted once stream time passes the window's end plus the grace
//! period, in the order windows close.
//!
//! The held updates are also kept in a logged store (`<name>-changelog`, as Kafka Streams logs
//! its suppression buffer), so a restart still emits the windows that were waiting.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::processor::{Datum, ErasedRecord, Node, NodeContext, ProcessError, datum, typed};
use crate::state::StoreId;
use crate::state::window::Window;

use super::common::{Change, ErasedSerde, store_error};

/// The window of a windowed key.
pub type WindowOf = Arc<dyn Fn(&Datum) -> Result<Window, ProcessError> + Send + Sync>;

pub(crate) struct SuppressNode {
    pub(crate) grace_ms: i64,
    pub(crate) key: ErasedSerde,
    pub(crate) value: ErasedSerde,
    pub(crate) window_of: WindowOf,
    pub(crate) store_name: String,
    pub(crate) store: Option<StoreId>,
    pub(crate) observed: i64,
    /// Held updates by (window end, key bytes): the order they are released in.
    pub(crate) buffer: BTreeMap<(i64, Vec<u8>), ErasedRecord>,
    pub(crate) held_at: HashMap<Vec<u8>, i64>,
}

/// The store key of a held update: the window's end first, so the store reads back in the
/// order windows close.
fn store_key(end: i64, kb: &[u8]) -> Vec<u8> {
    let mut out = end.to_be_bytes().to_vec();
    out.extend_from_slice(kb);
    out
}

impl SuppressNode {
    pub fn new(
        grace_ms: i64,
        key: ErasedSerde,
        value: ErasedSerde,
        window_of: WindowOf,
        store_name: String,
    ) -> Self {
        SuppressNode {
            grace_ms,
            key,
            value,
            window_of,
            store_name,
            store: None,
            observed: i64::MIN,
            buffer: BTreeMap::new(),
            held_at: HashMap::new(),
        }
    }

    /// Reads back the updates held before a restart.
    fn reload(&mut self, ctx: &mut NodeContext) -> Result<(), ProcessError> {
        let Some(store) = self.store else {
            return Ok(());
        };
        for (sk, stored) in ctx.stores.all(store).map_err(store_error)? {
            let (Some(end), Some(kb)) = (sk.get(..8), sk.get(8..)) else {
                continue;
            };
            // The end as held: a time window's key bytes carry only its start.
            let end = i64::from_be_bytes(end.try_into().unwrap_or_default());
            let key = self.key.read(kb, "a suppressed key")?;
            let new = if stored.value.is_empty() {
                None
            } else {
                Some(self.value.read(&stored.value[1..], "a suppressed value")?)
            };
            let record = ErasedRecord {
                key,
                value: datum(Change { new, old: None }),
                timestamp: stored.timestamp,
                headers: Default::default(),
            };
            self.held_at.insert(kb.to_vec(), end);
            self.buffer.insert((end, kb.to_vec()), record);
        }
        Ok(())
    }
}

impl Node for SuppressNode {
    fn init(&mut self, ctx: &mut NodeContext) {
        self.store = ctx.stores.id(&self.store_name);
        if let Err(e) = self.reload(ctx) {
            // The first record reports it again through `process`, with its place.
            tracing::error!(store = %self.store_name, error = %e, "reading back held windows");
            self.store = None;
        }
    }

    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let store = self.store.ok_or_else(|| {
            ProcessError::new(format!(
                "the suppression buffer '{}' is not open (see the log for why)",
                self.store_name
            ))
        })?;
        self.observed = self.observed.max(record.timestamp);
        let window = (self.window_of)(&record.key)?;
        let kb = self.key.bytes(&record.key)?.unwrap_or_default();
        let change = typed::<Change>(&record.value, "table update")?;
        // A flag byte, then the new value (an empty entry: a deletion).
        let stored = match &change.new {
            Some(v) => {
                let mut out = vec![1u8];
                out.extend(self.value.bytes(v)?.unwrap_or_default());
                out
            }
            None => Vec::new(),
        };
        ctx.stores
            .put(
                store,
                store_key(window.end, &kb),
                Some(&stored),
                record.timestamp,
            )
            .map_err(store_error)?;
        if let Some(previous) = self.held_at.insert(kb.clone(), window.end) {
            self.buffer.remove(&(previous, kb.clone()));
        }
        self.buffer.insert((window.end, kb), record.clone());
        let expiry = self.observed.saturating_sub(self.grace_ms);
        while let Some(entry) = self.buffer.first_entry() {
            if entry.key().0 > expiry {
                break;
            }
            let ((end, kb), held) = entry.remove_entry();
            self.held_at.remove(&kb);
            ctx.stores
                .put(store, store_key(end, &kb), None, held.timestamp)
                .map_err(store_error)?;
            ctx.forward(held, None);
        }
        Ok(())
    }
}
