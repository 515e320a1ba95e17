//! Stream-stream windowed joins (Kafka Streams' `KStreamKStreamJoin`, 3.x semantics and later).
//!
//! Each side keeps its recent records in a window store (duplicates retained) for as long as a
//! record of the other side could still join them: the time difference plus the grace period.
//! A record joins every record of the other side with the same key whose timestamp lies within
//! the time difference; the result carries the later timestamp of the two.
//!
//! Left and outer joins do not emit "no partner" results at once, as Kafka Streams did before
//! 3.1: an unmatched record waits in a store shared by both sides, keyed by time and side, until
//! stream time passes its window's end plus grace; only then is it emitted with a null partner,
//! unless a partner arrived meanwhile. Stream time here is the join's own: the largest timestamp
//! either side has seen in this task. Expired records are looked for at most once per
//! `__emit.interval.ms.kstreams.outer.join.spurious.results.fix__` of wall-clock time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::processor::{Datum, ErasedRecord, Node, NodeContext, ProcessError};
use crate::state::window::{is_window_of, split_window_key, window_key_seq, window_range};
use crate::state::{StoreId, Timestamped};
use crate::sync::Unpoisoned;
use crate::windows::JoinWindows;

use super::common::{
    ErasedSerde, TableJoiner, info_of, is_null, key_bytes, require_store, resolve_store,
    store_error,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Left,
    Right,
}

impl Side {
    fn byte(self) -> u8 {
        // Kafka Streams' TimestampedKeyAndJoinSide: 1 for the left side.
        match self {
            Side::Left => 1,
            Side::Right => 0,
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

/// Time bookkeeping shared by the two sides of one join within one task.
#[derive(Debug)]
pub(crate) struct JoinTimes {
    /// The largest timestamp either side has seen.
    stream_time: i64,
    /// A lower bound of the timestamps waiting in the shared store (`i64::MAX`: none known).
    min_time: i64,
    /// Wall-clock milliseconds before which no expired records are looked for.
    next_emit_ms: i64,
}

impl Default for JoinTimes {
    fn default() -> Self {
        JoinTimes {
            stream_time: -1,
            min_time: i64::MAX,
            next_emit_ms: 0,
        }
    }
}

/// The join times of every task, by task id: both sides' nodes of a task find the same entry.
pub(crate) type JoinTimesByTask = Arc<Mutex<HashMap<String, Arc<Mutex<JoinTimes>>>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock_unpoisoned()
}

/// The shared store's key: `timestamp (8 bytes) ++ side (1 byte) ++ key`, so a scan meets the
/// oldest waiting records first.
fn shared_key(timestamp: i64, side: Side, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + key.len());
    out.extend_from_slice(&timestamp.max(0).to_be_bytes());
    out.push(side.byte());
    out.extend_from_slice(key);
    out
}

fn split_shared_key(stored: &[u8]) -> Option<(i64, Side, &[u8])> {
    if stored.len() < 9 {
        return None;
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&stored[..8]);
    let side = if stored[8] == 1 {
        Side::Left
    } else {
        Side::Right
    };
    Some((i64::from_be_bytes(ts), side, &stored[9..]))
}

/// Several records may wait under one key (same key, time and side): their values are stored
/// as a list of length-prefixed byte strings.
fn push_value(list: &mut Vec<u8>, value: &[u8]) {
    list.extend_from_slice(&(value.len() as u32).to_be_bytes());
    list.extend_from_slice(value);
}

fn split_values(mut list: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while list.len() >= 4 {
        let mut n = [0u8; 4];
        n.copy_from_slice(&list[..4]);
        let n = (u32::from_be_bytes(n) as usize).min(list.len() - 4);
        out.push(&list[4..4 + n]);
        list = &list[4 + n..];
    }
    out
}

/// Keeps a side's records in its window store (Kafka Streams' `KStreamJoinWindow`).
pub(crate) struct JoinWindowNode {
    pub(crate) store_name: String,
    pub(crate) store: Option<StoreId>,
    pub(crate) key: ErasedSerde,
    pub(crate) value: ErasedSerde,
    /// Tells apart records with the same key and timestamp.
    pub(crate) seq: u32,
}

impl Node for JoinWindowNode {
    fn init(&mut self, ctx: &mut NodeContext) {
        self.store = resolve_store(ctx, &self.store_name);
    }

    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let store = require_store(self.store, &self.store_name)?;
        ctx.forward(record.clone(), None);
        // A record without key or value never joins; it need not wait for a partner.
        if is_null(&record.value) {
            return Ok(());
        }
        let (Some(kb), Some(vb)) = (
            key_bytes(&self.key, &record.key)?,
            self.value.bytes(&record.value)?,
        ) else {
            return Ok(());
        };
        self.seq = self.seq.wrapping_add(1);
        ctx.stores
            .put(
                store,
                window_key_seq(&kb, record.timestamp, self.seq),
                Some(&vb),
                record.timestamp,
            )
            .map_err(store_error)
    }
}

/// One side's join processor (Kafka Streams' `KStreamKStreamJoinLeftSide` / `RightSide`).
pub(crate) struct StreamJoinNode {
    pub(crate) side: Side,
    /// Records of this side without a partner are emitted (the left side of a left join, both
    /// sides of an outer join).
    pub(crate) outer: bool,
    pub(crate) windows: JoinWindows,
    pub(crate) other_store_name: String,
    pub(crate) other_store: Option<StoreId>,
    /// The store of unmatched records waiting for their window to close (left and outer joins).
    pub(crate) shared_store_name: Option<String>,
    pub(crate) shared_store: Option<StoreId>,
    pub(crate) key: ErasedSerde,
    pub(crate) left_value: ErasedSerde,
    pub(crate) right_value: ErasedSerde,
    pub(crate) joiner: TableJoiner,
    pub(crate) by_task: JoinTimesByTask,
    pub(crate) times: Option<Arc<Mutex<JoinTimes>>>,
}

impl StreamJoinNode {
    /// How far before and after a record of this side the other side's partners may lie.
    fn before_after(&self) -> (i64, i64) {
        match self.side {
            Side::Left => (self.windows.before_ms, self.windows.after_ms),
            Side::Right => (self.windows.after_ms, self.windows.before_ms),
        }
    }

    fn value_serde(&self, side: Side) -> &ErasedSerde {
        match side {
            Side::Left => &self.left_value,
            Side::Right => &self.right_value,
        }
    }

    /// Joins `value` of `side` with `partner` of the other side.
    fn join(
        &self,
        ctx: &NodeContext,
        record: &ErasedRecord,
        key: &Datum,
        side: Side,
        value: &Datum,
        partner: Option<&Datum>,
    ) -> Result<Datum, ProcessError> {
        let info = info_of(ctx, record);
        match side {
            Side::Left => (self.joiner)(&info, key, Some(value), partner),
            Side::Right => (self.joiner)(&info, key, partner, Some(value)),
        }
    }

    fn forward(ctx: &mut NodeContext, record: &ErasedRecord, key: Datum, value: Datum, ts: i64) {
        ctx.forward(
            ErasedRecord {
                key,
                value,
                timestamp: ts,
                headers: record.headers.clone(),
            },
            None,
        );
    }

    /// Emits, with a null partner, the waiting records whose window has closed.
    fn emit_expired(
        &self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
        times: &Mutex<JoinTimes>,
        shared: StoreId,
    ) -> Result<(), ProcessError> {
        let grace = self.windows.grace_ms;
        let stream_time = {
            let mut t = lock(times);
            let (_, after) = self.before_after();
            // Nothing can have expired yet: skip the scan.
            if t.min_time.saturating_add(after).saturating_add(grace) >= t.stream_time {
                return Ok(());
            }
            let now = ctx.wall_clock.now_ms();
            if now < t.next_emit_ms {
                return Ok(());
            }
            if t.next_emit_ms == 0 {
                t.next_emit_ms = now;
            }
            t.next_emit_ms = t
                .next_emit_ms
                .saturating_add(ctx.outer_join_emit_interval_ms);
            t.min_time = i64::MAX;
            t.stream_time
        };
        let waiting = ctx.stores.all(shared).map_err(store_error)?;
        let (mut left_open, mut right_open) = (false, false);
        let mut emitted = Vec::new();
        for (stored_key, Timestamped { value, .. }) in waiting {
            if left_open && right_open {
                break;
            }
            let Some((ts, side, kb)) = split_shared_key(&stored_key) else {
                continue;
            };
            lock(times).min_time = ts;
            let look_back = match side {
                Side::Left => self.windows.after_ms,
                Side::Right => self.windows.before_ms,
            };
            if ts.saturating_add(look_back).saturating_add(grace) >= stream_time {
                match side {
                    Side::Left => left_open = true,
                    Side::Right => right_open = true,
                }
                continue;
            }
            let key = self.key.read(kb, "a join key")?;
            for bytes in split_values(&value) {
                let v = self
                    .value_serde(side)
                    .read(bytes, "a record awaiting a join")?;
                let joined = self.join(ctx, record, &key, side, &v, None)?;
                Self::forward(ctx, record, key.clone(), joined, ts);
            }
            emitted.push(stored_key);
        }
        for stored_key in emitted {
            ctx.stores
                .put(shared, stored_key, None, stream_time)
                .map_err(store_error)?;
        }
        Ok(())
    }
}

impl Node for StreamJoinNode {
    fn init(&mut self, ctx: &mut NodeContext) {
        self.other_store = resolve_store(ctx, &self.other_store_name);
        self.shared_store = self
            .shared_store_name
            .as_deref()
            .and_then(|n| resolve_store(ctx, n));
        let mut by_task = lock(&self.by_task);
        self.times = Some(by_task.entry(ctx.task_id.clone()).or_default().clone());
    }

    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let other_store = require_store(self.other_store, &self.other_store_name)?;
        let shared = match &self.shared_store_name {
            Some(name) => Some(require_store(self.shared_store, name)?),
            None => None,
        };
        let times = self
            .times
            .clone()
            .ok_or_else(|| ProcessError::new("the join processed a record before init"))?;
        let ts = record.timestamp;
        let (before, after) = self.before_after();
        let from = ts.saturating_sub(before).max(0);
        let to = ts.saturating_add(after).max(0);
        let stream_time = {
            let mut t = lock(&times);
            t.stream_time = t.stream_time.max(ts);
            t.stream_time
        };
        if is_null(&record.value) {
            return Ok(());
        }
        // A record without a key joins nothing; an outer side emits it at once (KIP-962).
        let Some(kb) = key_bytes(&self.key, &record.key)? else {
            if self.outer {
                let joined = self.join(ctx, record, &record.key, self.side, &record.value, None)?;
                Self::forward(ctx, record, record.key.clone(), joined, ts);
            }
            return Ok(());
        };
        if let Some(shared) = shared
            && ts == stream_time
        {
            self.emit_expired(ctx, record, &times, shared)?;
        }
        let (lo, hi) = window_range(&kb, from, to);
        let partners = ctx
            .stores
            .range(other_store, &lo, &hi)
            .map_err(store_error)?;
        let mut matched = false;
        for (stored_key, partner) in partners {
            if !is_window_of(&stored_key, &kb) {
                continue;
            }
            let Some((_, partner_ts)) = split_window_key(&stored_key) else {
                continue;
            };
            matched = true;
            if let Some(shared) = shared {
                // The partner no longer waits for a null join.
                ctx.stores
                    .put(
                        shared,
                        shared_key(partner_ts, self.side.other(), &kb),
                        None,
                        partner_ts,
                    )
                    .map_err(store_error)?;
            }
            let other = self
                .value_serde(self.side.other())
                .read(&partner.value, "a record awaiting a join")?;
            let joined = self.join(
                ctx,
                record,
                &record.key,
                self.side,
                &record.value,
                Some(&other),
            )?;
            Self::forward(ctx, record, record.key.clone(), joined, ts.max(partner_ts));
        }
        if matched || !self.outer {
            return Ok(());
        }
        match shared {
            // Its window is still open: it waits for a partner until the window closes.
            Some(shared) if to >= stream_time => {
                {
                    let mut t = lock(&times);
                    t.min_time = t.min_time.min(ts);
                }
                let key = shared_key(ts, self.side, &kb);
                let mut list = ctx
                    .stores
                    .get(shared, &key)
                    .map_err(store_error)?
                    .map(|t| t.value)
                    .unwrap_or_default();
                let Some(vb) = self.value_serde(self.side).bytes(&record.value)? else {
                    return Ok(());
                };
                push_value(&mut list, &vb);
                ctx.stores
                    .put(shared, key, Some(&list), ts)
                    .map_err(store_error)
            }
            // Out of order: its window has already passed, so no partner can come any more.
            _ => {
                let joined = self.join(ctx, record, &record.key, self.side, &record.value, None)?;
                Self::forward(ctx, record, record.key.clone(), joined, ts);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_keys_order_by_time_then_side() {
        let a = shared_key(5, Side::Left, b"zz");
        let b = shared_key(6, Side::Right, b"a");
        assert!(a < b);
        assert_eq!(split_shared_key(&a), Some((5, Side::Left, &b"zz"[..])));
        assert!(shared_key(5, Side::Right, b"zz") < a);
    }

    #[test]
    fn waiting_values_round_trip_as_a_list() {
        let mut list = Vec::new();
        push_value(&mut list, b"one");
        push_value(&mut list, b"");
        push_value(&mut list, b"three");
        assert_eq!(split_values(&list), vec![&b"one"[..], b"", b"three"]);
    }
}
