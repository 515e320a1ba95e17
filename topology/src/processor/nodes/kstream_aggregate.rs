//! Aggregation of a grouped stream over a key-value store (Kafka Streams' `KStreamAggregate`
//! and `KStreamReduce`): count, reduce and aggregate.

use crate::processor::{ErasedRecord, Node, NodeContext, ProcessError};
use crate::state::StoreId;

use super::common::{
    Aggregation, Emitter, is_null, key_bytes, require_store, resolve_store, with_info,
};

/// Folds each record of a grouped stream into its key's aggregate and emits the new aggregate.
pub(crate) struct StreamAggregateNode {
    pub(crate) aggregation: Aggregation,
    pub(crate) store: Option<StoreId>,
    pub(crate) emitter: Emitter,
}

impl Node for StreamAggregateNode {
    fn init(&mut self, ctx: &mut NodeContext) {
        self.store = resolve_store(ctx, &self.aggregation.store);
    }

    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let a = &self.aggregation;
        let store = require_store(self.store, &a.store)?;
        // Kafka Streams skips records with a null key or value here.
        if is_null(&record.value) {
            return Ok(());
        }
        let Some(kb) = key_bytes(&a.key, &record.key)? else {
            return Ok(());
        };
        let (change, timestamp) = with_info(ctx, record, |ctx, info| {
            a.fold_stored(
                ctx,
                info,
                store,
                kb.clone(),
                &record.key,
                &record.value,
                record.timestamp,
            )
        })?;
        self.emitter.emit(
            ctx,
            store,
            kb,
            record.key.clone(),
            change,
            timestamp,
            record,
        );
        Ok(())
    }

    fn flush(&mut self, ctx: &mut NodeContext) -> Result<(), ProcessError> {
        self.emitter.flush(ctx);
        Ok(())
    }
}
