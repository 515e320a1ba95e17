//! Tumbling and hopping window aggregation (Kafka Streams' `TimeWindows` and
//! `KStreamWindowAggregate`): each record updates every window that contains it and is still
//! open; a window closes once stream time passes its end plus the grace period, and records
//! for closed windows are dropped and counted.

use std::time::Duration;

use crate::processor::{ErasedRecord, Node, NodeContext, ProcessError};
use crate::state::StoreId;
use crate::state::window::{Window, window_key};

use super::stateful::{
    Aggregation, Emitter, WindowedKeyFn, key_bytes, require_store, resolve_store, with_info,
};

/// Fixed-size windows advancing by `advance` (tumbling when `advance == size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindows {
    pub size_ms: i64,
    pub advance_ms: i64,
    pub grace_ms: i64,
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl TimeWindows {
    /// Tumbling windows of `size` with `grace` for late records
    /// (`TimeWindows.ofSizeAndGrace`).
    pub fn tumbling(size: Duration, grace: Duration) -> Self {
        TimeWindows {
            size_ms: millis(size).max(1),
            advance_ms: millis(size).max(1),
            grace_ms: millis(grace),
        }
    }

    /// Hopping windows: `size` long, one starting every `advance`.
    pub fn hopping(size: Duration, advance: Duration, grace: Duration) -> Self {
        TimeWindows {
            size_ms: millis(size).max(1),
            advance_ms: millis(advance).clamp(1, millis(size).max(1)),
            grace_ms: millis(grace),
        }
    }

    /// How long the store keeps windows: size plus grace, as Kafka Streams keeps them.
    pub fn retention_ms(&self) -> i64 {
        self.size_ms.saturating_add(self.grace_ms)
    }

    /// The windows containing `timestamp`, earliest first (`TimeWindows.windowsFor`).
    pub fn windows_for(&self, timestamp: i64) -> impl Iterator<Item = Window> + '_ {
        let first =
            (timestamp - self.size_ms + self.advance_ms).max(0) / self.advance_ms * self.advance_ms;
        (0..)
            .map(move |i| first + i * self.advance_ms)
            .take_while(move |&start| start <= timestamp)
            .map(|start| Window {
                start,
                end: start + self.size_ms,
            })
    }
}

pub(crate) struct TimeWindowAggregateNode {
    pub aggregation: Aggregation,
    pub windows: TimeWindows,
    pub windowed_key: WindowedKeyFn,
    pub store: Option<StoreId>,
    /// The largest timestamp this processor has seen (Kafka Streams' observed stream time).
    pub observed: i64,
    pub emitter: Emitter,
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
        info: &crate::dsl::RecordInfo,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hopping_windows_are_those_containing_the_timestamp() {
        let w = TimeWindows::hopping(
            Duration::from_millis(10),
            Duration::from_millis(5),
            Duration::ZERO,
        );
        let starts: Vec<i64> = w.windows_for(12).map(|w| w.start).collect();
        assert_eq!(starts, vec![5, 10]);
        let t = TimeWindows::tumbling(Duration::from_millis(10), Duration::ZERO);
        assert_eq!(
            t.windows_for(19).collect::<Vec<_>>(),
            vec![Window { start: 10, end: 20 }]
        );
        assert_eq!(t.windows_for(3).next(), Some(Window { start: 0, end: 10 }));
    }
}
