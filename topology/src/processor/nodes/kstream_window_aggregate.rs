//! Tumbling and hopping window aggregation (Kafka Streams' `TimeWindows` and
//! `KStreamWindowAggregate`): each record updates every window that contains it and is still
//! open; a window closes once stream time passes its end plus the grace period, and records
//! for closed windows are dropped and counted.

use crate::processor::{ErasedRecord, Node, NodeContext, ProcessError};
use crate::state::StoreId;
use crate::state::window::{Window, window_key};
use crate::windows::TimeWindows;

use super::common::{
    Aggregation, Emitter, RecordInfo, WindowedKeyFn, key_bytes, require_store, resolve_store,
    with_info,
};

pub(crate) struct TimeWindowAggregateNode {
    pub(crate) aggregation: Aggregation,
    pub(crate) windows: TimeWindows,
    pub(crate) windowed_key: WindowedKeyFn,
    pub(crate) store: Option<StoreId>,
    /// The largest timestamp this processor has seen (Kafka Streams' observed stream time).
    pub(crate) observed: i64,
    pub(crate) emitter: Emitter,
}

impl Node for TimeWindowAggregateNode {
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
        // Only a null key is skipped: Kafka Streams' windowed aggregations fold null values too.
        let Some(kb) = key_bytes(&a.key, &record.key)? else {
            return Ok(());
        };
        self.observed = self.observed.max(record.timestamp);
        let close = self.observed.saturating_sub(self.windows.grace_ms);
        let windows: Vec<Window> = self.windows.windows_for(record.timestamp).collect();
        with_info(ctx, record, |ctx, info| {
            self.update(ctx, info, record, store, &kb, windows, close)
        })
    }

    fn flush(&mut self, ctx: &mut NodeContext) -> Result<(), ProcessError> {
        self.emitter.flush(ctx);
        Ok(())
    }
}

impl TimeWindowAggregateNode {
    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        ctx: &mut NodeContext,
        info: &RecordInfo,
        record: &ErasedRecord,
        store: StoreId,
        kb: &[u8],
        windows: Vec<Window>,
        close: i64,
    ) -> Result<(), ProcessError> {
        let a = &self.aggregation;
        for window in windows {
            if window.end <= close {
                ctx.late_dropped += 1;
                continue;
            }
            let sk = window_key(kb, window.start);
            let (change, timestamp) = a.fold_stored(
                ctx,
                info,
                store,
                sk.clone(),
                &record.key,
                &record.value,
                record.timestamp,
            )?;
            let key = (self.windowed_key)(&record.key, window);
            self.emitter
                .emit(ctx, store, sk, key, change, timestamp, record);
        }
        Ok(())
    }
}
