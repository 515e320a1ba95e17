//! Sliding window aggregation (Kafka Streams' `SlidingWindows` and
//! `KStreamSlidingWindowAggregate`): windows `[start, start + time difference]`, both ends
//! inclusive, exist only where records are. A record updates the windows that contain it and
//! creates its own left window (ending at its timestamp) and, when a later record exists within
//! the time difference, its right window (starting just after it), plus the right window of the
//! record before it. The same windows, with the same contents, as Kafka Streams creates.
//!
//! Records earlier than the time difference (timestamps in `[0, time difference)`) would get
//! left windows starting before 0, which Kafka Streams does not create: they all share the
//! window `[0, time difference]` instead, and get right windows as later records arrive, as
//! Kafka Streams' `processEarly` does.

use std::collections::HashSet;

use crate::processor::{Datum, ErasedRecord, Node, NodeContext, ProcessError};
use crate::state::StoreId;
use crate::state::window::{Window, split_window_key, window_key, window_range};
use crate::windows::SlidingWindows;

use super::common::{
    Aggregation, Change, RecordInfo, WindowedKeyFn, forward_change, is_null, key_bytes,
    require_store, resolve_store, store_error, with_info,
};

pub(crate) struct SlidingWindowAggregateNode {
    pub(crate) aggregation: Aggregation,
    pub(crate) windows: SlidingWindows,
    pub(crate) windowed_key: WindowedKeyFn,
    pub(crate) store: Option<StoreId>,
    pub(crate) observed: i64,
}

/// An aggregate and its timestamp (the latest record folded into it).
type Stamped = (Datum, i64);

/// One window update to apply: the window, the aggregate it starts from (`None`: the
/// initializer) and that aggregate's timestamp.
struct Update {
    window: Window,
    base: Option<(Datum, i64)>,
}

impl SlidingWindowAggregateNode {
    fn window(&self, start: i64) -> Window {
        Window {
            start,
            end: start + self.windows.time_difference_ms,
        }
    }

    /// Folds the record into `update`'s window and emits it, unless the window has closed.
    #[allow(clippy::too_many_arguments)]
    fn update_and_forward(
        &self,
        ctx: &mut NodeContext,
        store: StoreId,
        kb: &[u8],
        info: &RecordInfo,
        record: &ErasedRecord,
        update: Update,
        close: i64,
    ) -> Result<(), ProcessError> {
        let a = &self.aggregation;
        if update.window.end <= close {
            ctx.late_dropped += 1;
            return Ok(());
        }
        let (base, timestamp) = match update.base {
            Some((agg, ts)) => (Some(agg), ts.max(record.timestamp)),
            None => (None, record.timestamp),
        };
        let new = a.fold(info, &record.key, &record.value, base.as_ref())?;
        a.save(
            ctx,
            store,
            window_key(kb, update.window.start),
            Some(&new),
            timestamp,
        )?;
        let key = (self.windowed_key)(&record.key, update.window);
        let change = Change {
            new: Some(new),
            old: base,
        };
        forward_change(ctx, key, change, timestamp, record);
        Ok(())
    }
}

impl Node for SlidingWindowAggregateNode {
    fn init(&mut self, ctx: &mut NodeContext) {
        self.store = resolve_store(ctx, &self.aggregation.store);
    }

    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let store = require_store(self.store, &self.aggregation.store)?;
        // Kafka Streams' sliding aggregation skips null keys and null values.
        if is_null(&record.value) {
            return Ok(());
        }
        let Some(kb) = key_bytes(&self.aggregation.key, &record.key)? else {
            return Ok(());
        };
        let ts = record.timestamp;
        let td = self.windows.time_difference_ms;
        self.observed = self.observed.max(ts);
        let close = self.observed.saturating_sub(self.windows.grace_ms);
        if ts + 1 + td <= close {
            ctx.late_dropped += 1;
            return Ok(());
        }
        if ts < td {
            return with_info(ctx, record, |ctx, info| {
                self.slide_early(ctx, info, record, store, &kb, close)
            });
        }
        with_info(ctx, record, |ctx, info| {
            self.slide(ctx, info, record, store, &kb, close)
        })
    }
}

impl SlidingWindowAggregateNode {
    fn slide(
        &self,
        ctx: &mut NodeContext,
        info: &RecordInfo,
        record: &ErasedRecord,
        store: StoreId,
        kb: &[u8],
        close: i64,
    ) -> Result<(), ProcessError> {
        let ts = record.timestamp;
        let td = self.windows.time_difference_ms;
        let kb = kb.to_vec();
        let existing = self.stored_windows(ctx, store, &kb, (ts - 2 * td).max(0), ts + 1)?;

        let mut starts = HashSet::new();
        let mut left_agg: Option<(Datum, i64)> = None;
        let mut right_agg: Option<(Datum, i64)> = None;
        let mut left_exists = false;
        let mut right_exists = false;
        let mut previous: Option<i64> = None;
        let mut updates = Vec::new();
        for (start, agg) in existing {
            starts.insert(start);
            let end = start + td;
            let max_ts = agg.1;
            if end < ts {
                // A window before the record: its contents seed the record's left window.
                left_agg = Some(agg);
                if previous.is_none_or(|p| max_ts > p) {
                    previous = Some(max_ts);
                }
            } else if end == ts {
                left_exists = true;
                if max_ts < ts {
                    previous = Some(max_ts);
                }
                updates.push(Update {
                    window: self.window(start),
                    base: Some(agg),
                });
            } else if start <= ts {
                right_agg = Some(agg.clone());
                updates.push(Update {
                    window: self.window(start),
                    base: Some(agg),
                });
            } else if start == ts + 1 {
                right_exists = true;
            } else {
                return Err(ProcessError::new(format!(
                    "sliding window starting at {start} is outside the range of the record at {ts}: the store is inconsistent"
                )));
            }
        }
        for u in updates {
            self.update_and_forward(ctx, store, &kb, info, record, u, close)?;
        }
        // The right window of the record before this one, if it now has this record in it.
        if let Some(prev) = previous {
            let start = prev + 1;
            if !starts.contains(&start) && start + td >= ts {
                let u = Update {
                    window: self.window(start),
                    base: None,
                };
                self.update_and_forward(ctx, store, &kb, info, record, u, close)?;
            }
        }
        // The record's own left window.
        if !left_exists {
            let base = match (previous, left_agg) {
                (Some(p), Some((agg, _))) if ts - td <= p => Some((agg, ts)),
                _ => None,
            };
            let u = Update {
                window: Window {
                    start: ts - td,
                    end: ts,
                },
                base,
            };
            self.update_and_forward(ctx, store, &kb, info, record, u, close)?;
        }
        // The record's right window, holding the later records within the time difference.
        if !right_exists {
            self.create_right_window(ctx, store, &kb, record, right_agg, close)?;
        }
        Ok(())
    }

    /// The key's windows starting in `[from, to]`, in start order, each with its aggregate and
    /// that aggregate's timestamp (the latest record in it).
    fn stored_windows(
        &self,
        ctx: &mut NodeContext,
        store: StoreId,
        kb: &[u8],
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Stamped)>, ProcessError> {
        let (lo, hi) = window_range(kb, from, to);
        let mut windows = Vec::new();
        for (sk, stored) in ctx.stores.range(store, &lo, &hi).map_err(store_error)? {
            let Some((k, start)) = split_window_key(&sk) else {
                continue;
            };
            if k != kb {
                continue;
            }
            let agg = self.aggregation.agg.read(&stored.value, "an aggregate")?;
            windows.push((start, (agg, stored.timestamp)));
        }
        Ok(windows)
    }

    /// The record's right window `[ts + 1, ts + 1 + time difference]`, when later records fall
    /// in it: it holds exactly their aggregate (`right_agg`, whose timestamp is the latest of
    /// them). Nothing when no later record exists or the window has closed.
    fn create_right_window(
        &self,
        ctx: &mut NodeContext,
        store: StoreId,
        kb: &[u8],
        record: &ErasedRecord,
        right_agg: Option<(Datum, i64)>,
        close: i64,
    ) -> Result<(), ProcessError> {
        let Some((agg, agg_ts)) = right_agg.filter(|(_, agg_ts)| *agg_ts > record.timestamp) else {
            return Ok(());
        };
        let window = self.window(record.timestamp + 1);
        if window.end <= close {
            return Ok(());
        }
        self.aggregation
            .save(ctx, store, window_key(kb, window.start), Some(&agg), agg_ts)?;
        let key = (self.windowed_key)(&record.key, window);
        let change = Change {
            new: Some(agg),
            old: None,
        };
        forward_change(ctx, key, change, agg_ts, record);
        Ok(())
    }

    /// A record earlier than the time difference (Kafka Streams' `processEarly`): it goes into
    /// the one window `[0, time difference]` all early records share, updates the right windows
    /// of earlier records it falls in, and creates its own right window and the previous
    /// record's when they are missing.
    fn slide_early(
        &self,
        ctx: &mut NodeContext,
        info: &RecordInfo,
        record: &ErasedRecord,
        store: StoreId,
        kb: &[u8],
        close: i64,
    ) -> Result<(), ProcessError> {
        let ts = record.timestamp;
        let existing = self.stored_windows(ctx, store, kb, 0, ts + 1)?;

        let mut starts = HashSet::new();
        let mut combined: Option<(Datum, i64)> = None;
        let mut right_agg: Option<(Datum, i64)> = None;
        let mut right_exists = false;
        let mut previous: Option<i64> = None;
        let mut updates = Vec::new();
        for (start, agg) in existing {
            starts.insert(start);
            if start == 0 {
                // A previous record's right window exists already when the shared window's
                // latest record is at or after this one.
                if agg.1 < ts {
                    previous = Some(agg.1);
                }
                combined = Some(agg);
            } else if start <= ts {
                right_agg = Some(agg.clone());
                updates.push(Update {
                    window: self.window(start),
                    base: Some(agg),
                });
            } else if start == ts + 1 {
                right_exists = true;
            } else {
                return Err(ProcessError::new(format!(
                    "sliding window starting at {start} is outside the range of the early record at {ts}: the store is inconsistent"
                )));
            }
        }
        for u in updates {
            self.update_and_forward(ctx, store, kb, info, record, u, close)?;
        }
        // Without a right window found, the later records are all in the shared window: when it
        // holds a record after this one, its aggregate is this record's right window's.
        if right_agg.is_none() {
            right_agg = combined.clone().filter(|(_, agg_ts)| *agg_ts > ts);
        }
        if !right_exists {
            self.create_right_window(ctx, store, kb, record, right_agg, close)?;
        }
        if let Some(prev) = previous
            && !starts.contains(&(prev + 1))
        {
            let u = Update {
                window: self.window(prev + 1),
                base: None,
            };
            self.update_and_forward(ctx, store, kb, info, record, u, close)?;
        }
        let shared = Update {
            window: self.window(0),
            base: combined,
        };
        self.update_and_forward(ctx, store, kb, info, record, shared, close)
    }
}
