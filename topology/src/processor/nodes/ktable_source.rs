//! Materializing a topic or stream as a table (Kafka Streams' `KTableSource`): the latest value
//! per key in a store, each update emitted as a [`Change`] with the value it replaces.

use crate::processor::{ErasedRecord, Node, NodeContext, ProcessError};
use crate::state::StoreId;

use super::common::{
    Change, Emitter, ErasedSerde, is_null, key_bytes, require_store, resolve_store, store_error,
};

/// Keeps the latest value per key in a store and emits each update with the value it replaces;
/// a null value deletes the key.
pub(crate) struct TableSourceNode {
    pub(crate) store_name: String,
    pub(crate) key: ErasedSerde,
    pub(crate) value: ErasedSerde,
    pub(crate) store: Option<StoreId>,
    pub(crate) emitter: Emitter,
}

impl Node for TableSourceNode {
    fn flush(&mut self, ctx: &mut NodeContext) -> Result<(), ProcessError> {
        self.emitter.flush(ctx);
        Ok(())
    }

    fn init(&mut self, ctx: &mut NodeContext) {
        self.store = resolve_store(ctx, &self.store_name);
    }

    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let store = require_store(self.store, &self.store_name)?;
        let Some(kb) = key_bytes(&self.key, &record.key)? else {
            return Ok(());
        };
        let old = self
            .value
            .load(ctx, store, &kb, "a table value")?
            .map(|(row, _)| row);
        let new = (!is_null(&record.value)).then(|| record.value.clone());
        let bytes = match &new {
            Some(v) => self.value.bytes(v)?,
            None => None,
        };
        ctx.stores
            .put(store, kb.clone(), bytes.as_deref(), record.timestamp)
            .map_err(store_error)?;
        self.emitter.emit(
            ctx,
            store,
            kb,
            record.key.clone(),
            Change { new, old },
            record.timestamp,
            record,
        );
        Ok(())
    }
}
