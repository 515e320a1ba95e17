//! Aggregations over a key-value store: of a grouped stream (count, reduce, aggregate; Kafka
//! Streams' `KStreamAggregate` and `KStreamReduce`) and of a grouped table, where an update
//! takes the old value out with the subtractor before adding the new one (`KTableAggregate`).

use crate::processor::{ErasedRecord, Node, NodeContext, ProcessError, typed};
use crate::state::StoreId;

use super::stateful::{
    Aggregation, Change, Emitter, info_of, is_null, key_bytes, require_store, resolve_store,
    with_info,
};

/// Folds each record of a grouped stream into its key's aggregate and emits the new aggregate.
pub(crate) struct StreamAggregateNode {
    pub aggregation: Aggregation,
    pub store: Option<StoreId>,
    pub emitter: Emitter,
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

/// Aggregates a grouped table: each update arrives as a [`Change`]; the old value is subtracted
/// and the new one added.
pub(crate) struct TableAggregateNode {
    pub aggregation: Aggregation,
    pub store: Option<StoreId>,
    pub emitter: Emitter,
}

impl Node for TableAggregateNode {
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
        let Some(kb) = key_bytes(&a.key, &record.key)? else {
            return Ok(());
        };
        let change = typed::<Change>(&record.value, "table update")?;
        let info = info_of(ctx, record);
        let old = a.load(ctx, store, &kb)?;
        let mut timestamp = record.timestamp;
        let mut agg = old.as_ref().map(|(agg, _)| agg.clone());
        if let (Some(old_value), Some((old_agg, old_ts))) = (&change.old, &old) {
            let subtract = a
                .subtract
                .as_ref()
                .ok_or_else(|| ProcessError::new("a table aggregation needs a subtractor"))?;
            agg = Some(subtract(&info, &record.key, old_value, old_agg)?);
            timestamp = timestamp.max(*old_ts);
        }
        if let Some(new_value) = &change.new {
            agg = Some(a.fold(&info, &record.key, new_value, agg.as_ref())?);
            if let Some((_, old_ts)) = &old {
                timestamp = timestamp.max(*old_ts);
            }
        }
        a.save(ctx, store, kb.clone(), agg.as_ref(), timestamp)?;
        let change = Change {
            new: agg,
            old: old.map(|(agg, _)| agg),
        };
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
