//! Aggregation of a grouped table (Kafka Streams' `KTableAggregate` and `KTableReduce`): an
//! update takes the old value out with the subtractor before adding the new one.

use crate::processor::{ErasedRecord, Node, NodeContext, ProcessError, typed};
use crate::state::StoreId;

use super::common::{
    Aggregation, Change, Emitter, info_of, key_bytes, require_store, resolve_store,
};

/// Aggregates a grouped table: each update arrives as a [`Change`]; the old value is subtracted
/// and the new one added.
pub(crate) struct TableAggregateNode {
    pub(crate) aggregation: Aggregation,
    pub(crate) store: Option<StoreId>,
    pub(crate) emitter: Emitter,
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
