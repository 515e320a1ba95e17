//! `suppress(untilWindowCloses)` (Kafka Streams' `KTableSuppressProcessor` with final-results
//! suppression): updates of a windowed table are held, the latest per window and key, and each
//! window's final result is emitted once stream time passes the window's end plus the grace
//! period, in the order windows close.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::processor::{Datum, ErasedRecord, Node, NodeContext, ProcessError};
use crate::state::window::Window;
use crate::topology::Serializer;

/// The window of a windowed key.
pub type WindowOf = Arc<dyn Fn(&Datum) -> Result<Window, ProcessError> + Send + Sync>;

pub(crate) struct SuppressNode {
    pub grace_ms: i64,
    pub key_bytes: Serializer,
    pub window_of: WindowOf,
    pub observed: i64,
    /// Held updates by (window end, key bytes): the order they are released in.
    pub buffer: BTreeMap<(i64, Vec<u8>), ErasedRecord>,
    pub held_at: HashMap<Vec<u8>, i64>,
}

impl SuppressNode {
    pub fn new(grace_ms: i64, key_bytes: Serializer, window_of: WindowOf) -> Self {
        SuppressNode {
            grace_ms,
            key_bytes,
            window_of,
            observed: i64::MIN,
            buffer: BTreeMap::new(),
            held_at: HashMap::new(),
        }
    }
}

impl Node for SuppressNode {
    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        self.observed = self.observed.max(record.timestamp);
        let window = (self.window_of)(&record.key)?;
        let kb = (self.key_bytes)(&record.key)?.unwrap_or_default();
        if let Some(previous) = self.held_at.insert(kb.clone(), window.end) {
            self.buffer.remove(&(previous, kb.clone()));
        }
        self.buffer.insert((window.end, kb), record.clone());
        let expiry = self.observed.saturating_sub(self.grace_ms);
        while let Some(entry) = self.buffer.first_entry() {
            if entry.key().0 > expiry {
                break;
            }
            let ((_, kb), held) = entry.remove_entry();
            self.held_at.remove(&kb);
            ctx.forward(held, None);
        }
        Ok(())
    }
}
