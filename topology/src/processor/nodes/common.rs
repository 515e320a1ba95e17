//! What the node implementations share: table updates ([`Change`]), erased serdes and
//! aggregation functions, the record info user functions see, store access helpers, the
//! emitter that holds table updates while a store caches, and the joiner types.

use std::sync::Arc;

use crate::processor::{
    Datum, Deserializer, ErasedRecord, Node, NodeContext, ProcessError, RecordMeta, Serializer,
    datum,
};
use crate::state::window::Window;
use crate::state::{StoreId, Timestamped};

/// A table update as it travels between table operations: the new value and the one it
/// replaces (`None`: absent, or deleted). Kafka Streams' `Change`.
#[derive(Clone)]
pub struct Change {
    /// The value after the update; `None` for a deletion.
    pub new: Option<Datum>,
    /// The value before it, for operations that must take it back out (table aggregations, joins);
    /// `None` if the key was absent, or where the emitting operation does not carry it.
    pub old: Option<Datum>,
}

/// A serde over erased data, as operations that store or ship data need both directions.
#[derive(Clone)]
pub struct ErasedSerde {
    /// The serde's manifest name (`string`, `long`, `json`...): what the bytes mean, for the
    /// state signature.
    pub name: String,
    /// Datum to bytes.
    pub ser: Serializer,
    /// Bytes to datum.
    pub de: Deserializer,
}

impl ErasedSerde {
    /// Bytes of a key or value; `None` for a null.
    pub fn bytes(&self, d: &Datum) -> Result<Option<Vec<u8>>, ProcessError> {
        (self.ser)(d)
    }

    /// The row stored under `store_key`, read back with this serde, and its timestamp.
    pub fn load(
        &self,
        ctx: &NodeContext,
        store: StoreId,
        store_key: &[u8],
        what: &str,
    ) -> Result<Option<(Datum, i64)>, ProcessError> {
        match ctx.stores.get(store, store_key).map_err(store_error)? {
            Some(Timestamped { value, timestamp }) => {
                Ok(Some((self.read(&value, what)?, timestamp)))
            }
            None => Ok(None),
        }
    }

    /// Reads a stored `what` back from `bytes`; a failure says the serde probably changed since the
    /// store was written.
    pub fn read(&self, bytes: &[u8], what: &str) -> Result<Datum, ProcessError> {
        (self.de)(Some(bytes)).map_err(|e| {
            ProcessError::new(format!(
                "{what} in the store cannot be read back: {e} (was the serde changed? reset the application)"
            ))
        })
    }
}

/// A new aggregate from nothing (Kafka Streams' `Initializer`).
pub type Initializer = Arc<dyn Fn() -> Result<Datum, ProcessError> + Send + Sync>;
/// Folds a value into an aggregate: `(record, key, value, aggregate) -> aggregate`.
pub type Aggregator =
    Arc<dyn Fn(&RecordInfo, &Datum, &Datum, &Datum) -> Result<Datum, ProcessError> + Send + Sync>;
/// Builds the key a windowed operation emits from the record key and its window.
pub type WindowedKeyFn = Arc<dyn Fn(&Datum, Window) -> Datum + Send + Sync>;

/// A null value read from a table's topic: a deletion, whatever the value type.
pub struct Tombstone;

/// Recognises the null of a value type this library does not know (the CEL values of
/// declarative topologies); set once, read on every record, hence a lock-free cell.
static FOREIGN_NULL: std::sync::OnceLock<fn(&Datum) -> bool> = std::sync::OnceLock::new();

/// Teaches [`is_null`] the null of a value type defined outside this crate. The first check set
/// stays: one process has one such type (the spec compiler sets it for CEL values).
pub fn set_foreign_null(check: fn(&Datum) -> bool) {
    let _ = FOREIGN_NULL.set(check);
}

/// Whether a key or value is null: a table tombstone, a JSON null, the null of the type given to
/// [`set_foreign_null`], or an `Option` that is `None` for the types the DSL's serdes know.
pub fn is_null(d: &Datum) -> bool {
    if d.is::<Tombstone>() {
        return true;
    }
    if FOREIGN_NULL.get().is_some_and(|check| check(d)) {
        return true;
    }
    d.downcast_ref::<serde_json::Value>()
        .is_some_and(serde_json::Value::is_null)
        || d.downcast_ref::<Option<String>>()
            .is_some_and(Option::is_none)
        || d.downcast_ref::<Option<i64>>().is_some_and(Option::is_none)
        || d.downcast_ref::<Option<Vec<u8>>>()
            .is_some_and(Option::is_none)
}

/// What an aggregation does: the store, its serdes and the functions.
#[derive(Clone)]
pub struct Aggregation {
    /// Name of the store the aggregates are kept in.
    pub store: String,
    /// Serde of the grouping key, for the store's keys.
    pub key: ErasedSerde,
    /// Serde of the aggregates, for the store's values.
    pub agg: ErasedSerde,
    /// `None` for a reduce: the first value is the aggregate.
    pub init: Option<Initializer>,
    /// Folds a new value into the aggregate (Kafka Streams' aggregator, or adder for tables).
    pub add: Aggregator,
    /// Table aggregations: takes an old value back out (Kafka Streams' subtractor).
    pub subtract: Option<Aggregator>,
}

impl Aggregation {
    /// `add` over `agg`, or the initial aggregate when there is none (for a reduce, the value).
    pub fn fold(
        &self,
        info: &RecordInfo,
        key: &Datum,
        value: &Datum,
        agg: Option<&Datum>,
    ) -> Result<Datum, ProcessError> {
        match (agg, &self.init) {
            (Some(a), _) => (self.add)(info, key, value, a),
            (None, Some(init)) => (self.add)(info, key, value, &init()?),
            (None, None) => Ok(value.clone()),
        }
    }

    /// The stored aggregate of `store_key`, read back, with its timestamp.
    pub fn load(
        &self,
        ctx: &NodeContext,
        store: StoreId,
        store_key: &[u8],
    ) -> Result<Option<(Datum, i64)>, ProcessError> {
        self.agg.load(ctx, store, store_key, "an aggregate")
    }

    /// Folds `value` into the aggregate stored under `store_key` and writes the result back,
    /// stamped with the later of the stored and the record's timestamp; returns the change and
    /// that timestamp.
    #[allow(clippy::too_many_arguments)]
    pub fn fold_stored(
        &self,
        ctx: &mut NodeContext,
        info: &RecordInfo,
        store: StoreId,
        store_key: Vec<u8>,
        key: &Datum,
        value: &Datum,
        record_timestamp: i64,
    ) -> Result<(Change, i64), ProcessError> {
        let old = self.load(ctx, store, &store_key)?;
        let new = self.fold(info, key, value, old.as_ref().map(|(agg, _)| agg))?;
        let timestamp = old
            .as_ref()
            .map_or(record_timestamp, |(_, ts)| (*ts).max(record_timestamp));
        self.save(ctx, store, store_key, Some(&new), timestamp)?;
        let change = Change {
            new: Some(new),
            old: old.map(|(agg, _)| agg),
        };
        Ok((change, timestamp))
    }

    /// Writes `agg` (a null deletes) under `store_key`.
    pub fn save(
        &self,
        ctx: &mut NodeContext,
        store: StoreId,
        store_key: Vec<u8>,
        agg: Option<&Datum>,
        timestamp: i64,
    ) -> Result<(), ProcessError> {
        let bytes = match agg {
            Some(a) => self.agg.bytes(a)?,
            None => None,
        };
        ctx.stores
            .put(store, store_key, bytes.as_deref(), timestamp)
            .map_err(store_error)
    }
}

pub(crate) fn store_error(e: crate::state::StateError) -> ProcessError {
    ProcessError::new(e.to_string())
}

/// Resolves a store by name at init; processing before init is a bug reported, not a panic.
pub(crate) fn resolve_store(ctx: &NodeContext, name: &str) -> Option<StoreId> {
    ctx.stores.id(name)
}

pub(crate) fn require_store(id: Option<StoreId>, name: &str) -> Result<StoreId, ProcessError> {
    id.ok_or_else(|| {
        ProcessError::new(format!(
            "state store '{name}' is not open in this task: connect the processor to it"
        ))
    })
}

/// The bytes of a record key for a store, or `None` for a null key (such records are skipped).
pub(crate) fn key_bytes(serde: &ErasedSerde, key: &Datum) -> Result<Option<Vec<u8>>, ProcessError> {
    if is_null(key) {
        return Ok(None);
    }
    serde.bytes(key)
}

/// Forwards a table update.
pub(crate) fn forward_change(
    ctx: &mut NodeContext,
    key: Datum,
    change: Change,
    timestamp: i64,
    from: &ErasedRecord,
) {
    ctx.forward(
        ErasedRecord {
            key,
            value: datum(change),
            timestamp,
            headers: from.headers.clone(),
        },
        None,
    );
}

/// A held update: the key's latest value, and the value it had when first held.
struct Held {
    key: Datum,
    change: Change,
    timestamp: i64,
    headers: Arc<crate::processor::Headers>,
}

/// Holds a table's updates while its store has a record cache, and forwards only each key's
/// latest one at the next commit (or when too many keys are held): what Kafka Streams' caching
/// store forwards. Without a cache every update goes on at once.
#[derive(Default)]
pub(crate) struct Emitter {
    held: std::collections::HashMap<Vec<u8>, usize>,
    order: Vec<Option<Held>>,
}

/// Keys held before the emitter forwards them without waiting for the commit.
const MAX_HELD: usize = 10_000;

impl Emitter {
    #[allow(clippy::too_many_arguments)]
    pub fn emit(
        &mut self,
        ctx: &mut NodeContext,
        store: StoreId,
        store_key: Vec<u8>,
        key: Datum,
        change: Change,
        timestamp: i64,
        from: &ErasedRecord,
    ) {
        if !ctx.stores.caching(store) {
            forward_change(ctx, key, change, timestamp, from);
            return;
        }
        let headers = from.headers.clone();
        match self.held.get(&store_key) {
            Some(&i) => {
                if let Some(held) = self.order[i].as_mut() {
                    // The first held update's old value is what downstream last saw.
                    held.change.new = change.new;
                    held.key = key;
                    held.timestamp = timestamp;
                    held.headers = headers;
                }
            }
            None => {
                self.held.insert(store_key, self.order.len());
                self.order.push(Some(Held {
                    key,
                    change,
                    timestamp,
                    headers,
                }));
            }
        }
        if self.held.len() >= MAX_HELD {
            self.flush(ctx);
        }
    }

    /// Forwards every held update, oldest first.
    pub fn flush(&mut self, ctx: &mut NodeContext) {
        self.held.clear();
        for held in self.order.drain(..).flatten() {
            ctx.forward(
                ErasedRecord {
                    key: held.key,
                    value: datum(held.change),
                    timestamp: held.timestamp,
                    headers: held.headers,
                },
                None,
            );
        }
    }
}

/// Table updates through a repartition topic: a flag byte (1: has a new value, 2: has an old
/// one), the new value's length (4 bytes, big-endian) and bytes, then the old value's bytes.
pub fn change_serde(inner: ErasedSerde) -> ErasedSerde {
    let name = inner.name.clone();
    let ser_inner = inner.clone();
    let ser: Serializer = Arc::new(move |d: &Datum| {
        let change = crate::processor::typed::<Change>(d, "table update")?;
        let new = match &change.new {
            Some(n) => ser_inner.bytes(n)?,
            None => None,
        };
        let old = match &change.old {
            Some(o) => ser_inner.bytes(o)?,
            None => None,
        };
        let mut out = Vec::with_capacity(5 + new.as_ref().map_or(0, Vec::len));
        out.push(u8::from(new.is_some()) | (u8::from(old.is_some()) << 1));
        let new = new.unwrap_or_default();
        out.extend_from_slice(&(new.len() as u32).to_be_bytes());
        out.extend_from_slice(&new);
        out.extend_from_slice(&old.unwrap_or_default());
        Ok(Some(out))
    });
    let de: Deserializer = Arc::new(move |bytes: Option<&[u8]>| {
        let bytes = bytes.ok_or("a table update through a repartition topic cannot be null")?;
        if bytes.len() < 5 {
            return Err(format!(
                "a table update of {} bytes is too short",
                bytes.len()
            ));
        }
        let flags = bytes[0];
        let mut len = [0u8; 4];
        len.copy_from_slice(&bytes[1..5]);
        let len = u32::from_be_bytes(len) as usize;
        let new_bytes = bytes.get(5..5 + len).ok_or("a table update is truncated")?;
        let old_bytes = &bytes[5 + len..];
        let read = |b: &[u8]| (inner.de)(Some(b));
        Ok(datum(Change {
            new: (flags & 1 != 0).then(|| read(new_bytes)).transpose()?,
            old: (flags & 2 != 0).then(|| read(old_bytes)).transpose()?,
        }))
    });
    ErasedSerde {
        name: format!("change<{name}>"),
        ser,
        de,
    }
}

/// A node made from a closure, for the simple stateless table operations.
pub(crate) struct FnNode<F>(pub F);

impl<F> Node for FnNode<F>
where
    F: FnMut(&mut NodeContext, &ErasedRecord) -> Result<(), ProcessError> + Send,
{
    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        (self.0)(ctx, record)
    }
}

/// Runs `f` with the record's info for user functions while `ctx` stays free to mutate (the
/// record's metadata is lent out of the context meanwhile).
pub(crate) fn with_info<R>(
    ctx: &mut NodeContext,
    record: &ErasedRecord,
    f: impl FnOnce(&mut NodeContext, &RecordInfo) -> R,
) -> R {
    let meta = ctx.meta.take();
    let info = RecordInfo {
        timestamp: record.timestamp,
        headers: &record.headers,
        meta: meta.as_ref(),
    };
    let out = f(ctx, &info);
    ctx.meta = meta;
    out
}

/// Record info of the record being processed, for user functions.
pub(crate) fn info_of<'a>(ctx: &'a NodeContext, record: &'a ErasedRecord) -> RecordInfo<'a> {
    RecordInfo {
        timestamp: record.timestamp,
        headers: &record.headers,
        meta: ctx.meta.as_ref(),
    }
}

/// What an operation's function sees besides key and value.
pub struct RecordInfo<'a> {
    /// The record's timestamp, in ms since the Unix epoch.
    pub timestamp: i64,
    /// The record's headers.
    pub headers: &'a crate::processor::Headers,
    /// Topic, partition and offset of the input record this one derives from.
    pub meta: Option<&'a RecordMeta>,
}

/// Builds a joined value: `(record, key, left value, right value)`; `None` on the right in a
/// left join without a row.
pub type Joiner = Arc<
    dyn Fn(&RecordInfo, &Datum, &Datum, Option<&Datum>) -> Result<Datum, ProcessError>
        + Send
        + Sync,
>;

/// Forwards a stream record's joined value, with the record's key, timestamp and headers.
pub(crate) fn forward_joined(ctx: &mut NodeContext, record: &ErasedRecord, joined: Datum) {
    ctx.forward(
        ErasedRecord {
            key: record.key.clone(),
            value: joined,
            timestamp: record.timestamp,
            headers: record.headers.clone(),
        },
        None,
    );
}

/// Which rows a table-table join keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    /// Keys with a row on both sides.
    Inner,
    /// Every key of the left table; the right side may be missing.
    Left,
    /// Every key of either table; either side may be missing.
    Outer,
}

/// Joins `(record, key, left, right)` where either side may be missing (outer joins).
pub type TableJoiner = Arc<
    dyn Fn(&RecordInfo, &Datum, Option<&Datum>, Option<&Datum>) -> Result<Datum, ProcessError>
        + Send
        + Sync,
>;
