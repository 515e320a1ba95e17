//! Session window aggregation (Kafka Streams' `SessionWindows` and
//! `KStreamSessionWindowAggregate`): a record joins every session of its key that ends within
//! the inactivity gap before it or starts within the gap after it; those sessions merge into one.
//! The merged-away sessions are emitted as deletions, then the merged session with its aggregate.

use crate::processor::{Datum, ErasedRecord, Node, NodeContext, ProcessError};
use crate::state::StoreId;
use crate::state::window::{Window, session_key, session_range, split_session_key};
use crate::windows::SessionWindows;

use super::common::{
    Aggregation, Change, WindowedKeyFn, forward_change, info_of, key_bytes, require_store,
    resolve_store, store_error,
};

/// Merges two session aggregates (Kafka Streams' `Merger`).
pub type Merger =
    std::sync::Arc<dyn Fn(&Datum, &Datum, &Datum) -> Result<Datum, ProcessError> + Send + Sync>;

pub(crate) struct SessionWindowAggregateNode {
    pub(crate) aggregation: Aggregation,
    pub(crate) merger: Merger,
    pub(crate) windows: SessionWindows,
    pub(crate) windowed_key: WindowedKeyFn,
    pub(crate) store: Option<StoreId>,
    pub(crate) observed: i64,
}

impl Node for SessionWindowAggregateNode {
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
        // Only a null key is skipped, as in Kafka Streams.
        let Some(kb) = key_bytes(&a.key, &record.key)? else {
            return Ok(());
        };
        let ts = record.timestamp;
        let gap = self.windows.gap_ms;
        self.observed = self.observed.max(ts);
        let close = self.observed.saturating_sub(self.windows.grace_ms);
        let (from, to) = session_range(&kb, ts - gap);
        let found = ctx.stores.range(store, &from, &to).map_err(store_error)?;
        let init = a
            .init
            .as_ref()
            .ok_or_else(|| ProcessError::new("a session aggregation needs an initializer"))?;
        let mut agg = init()?;
        let mut merged_window = Window { start: ts, end: ts };
        let mut merged = Vec::new();
        for (sk, stored) in found {
            let Some((k, window)) = split_session_key(&sk) else {
                continue;
            };
            // Sessions ending at or after ts - gap and starting at or before ts + gap.
            if k != kb.as_slice() || window.start > ts + gap {
                continue;
            }
            let session_agg = a.agg.read(&stored.value, "a session aggregate")?;
            agg = (self.merger)(&record.key, &agg, &session_agg)?;
            merged_window = Window {
                start: merged_window.start.min(window.start),
                end: merged_window.end.max(window.end),
            };
            merged.push((sk, window, session_agg));
        }
        if merged_window.end < close {
            ctx.late_dropped += 1;
            return Ok(());
        }
        if merged_window != (Window { start: ts, end: ts }) {
            for (sk, window, session_agg) in merged {
                ctx.stores
                    .put(store, sk, None, window.end)
                    .map_err(store_error)?;
                let key = (self.windowed_key)(&record.key, window);
                let gone = Change {
                    new: None,
                    old: Some(session_agg),
                };
                forward_change(ctx, key, gone, window.end, record);
            }
        }
        let agg = (a.add)(&info_of(ctx, record), &record.key, &record.value, &agg)?;
        a.save(
            ctx,
            store,
            session_key(&kb, merged_window.start, merged_window.end),
            Some(&agg),
            merged_window.end,
        )?;
        let key = (self.windowed_key)(&record.key, merged_window);
        let change = Change {
            new: Some(agg),
            old: None,
        };
        forward_change(ctx, key, change, merged_window.end, record);
        Ok(())
    }
}
