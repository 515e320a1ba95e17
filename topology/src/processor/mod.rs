//! The Processor API: user processors that see one record at a time, forward to their children,
//! read record metadata and schedule punctuations — Kafka Streams' `Processor` and
//! `ProcessorContext`, in Rust.
//!
//! Records travel between processors type-erased ([`Datum`]), as they do between Kafka Streams'
//! nodes; the typed DSL and [`Processor`] wrap them so user code sees its own types.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::serdes::Serde;

mod node;
pub mod nodes;

pub use crate::record::{Headers, ProduceRequest};

pub use node::{Forward, Node, NodeContext, RecordMeta, ScheduledPunctuation, WallClock};

/// A key or value in flight: shared, immutable, of whatever type its stream has.
pub type Datum = Arc<dyn Any + Send + Sync>;

/// Bytes (or a null) to a key or value.
pub type Deserializer = Arc<dyn Fn(Option<&[u8]>) -> Result<Datum, String> + Send + Sync>;
/// A key or value to bytes (or a null).
pub type Serializer = Arc<dyn Fn(&Datum) -> Result<Option<Vec<u8>>, ProcessError> + Send + Sync>;
/// Chooses a record's output topic (Kafka Streams' `TopicNameExtractor`).
pub type TopicExtractor = Arc<dyn Fn(&ErasedRecord) -> Result<String, ProcessError> + Send + Sync>;

/// Where a sink writes.
#[derive(Clone)]
pub enum SinkTarget {
    /// A fixed topic (Kafka Streams' `to(topic)`); an internal one is prefixed with the application
    /// id when the task is built.
    Topic(crate::naming::TopicName),
    /// A topic chosen per record; the label names the extractor in descriptions.
    Extractor {
        /// Returns the topic for each record; an empty name is an error.
        extractor: TopicExtractor,
        /// What `describe()` prints in place of a topic name.
        label: String,
    },
}

/// Wraps a value as a [`Datum`].
pub fn datum<T: Any + Send + Sync>(value: T) -> Datum {
    Arc::new(value)
}

/// A record between processors: key, value, timestamp and headers.
#[derive(Clone)]
pub struct ErasedRecord {
    /// The key, as the type the forwarding node's stream has.
    pub key: Datum,
    /// The value, as the type the forwarding node's stream has.
    pub value: Datum,
    /// Timestamp in ms since the Unix epoch; drives stream time, windows and the output record's
    /// timestamp.
    pub timestamp: i64,
    /// Headers, shared between the records a node forwards so forwarding does not copy them.
    pub headers: Arc<Headers>,
}

impl fmt::Debug for ErasedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErasedRecord")
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// A typed record a [`Processor`] forwards.
#[derive(Clone, Debug)]
pub struct Record<K, V> {
    /// The record's key.
    pub key: K,
    /// The record's value.
    pub value: V,
    /// Timestamp in ms since the Unix epoch; a sink writes it as the Kafka record's timestamp.
    pub timestamp: i64,
    /// Headers, written with the record by a sink.
    pub headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record with no headers (Kafka Streams' `new Record<>(key, value, timestamp)`); `timestamp`
    /// in ms since the Unix epoch.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record {
            key,
            value,
            timestamp,
            headers: Headers::default(),
        }
    }
}

/// Whether a punctuation follows stream time (record timestamps) or the wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PunctuationType {
    /// Fires as the task's stream time (the largest record timestamp seen) passes each interval, so
    /// only when records arrive (Kafka Streams' `PunctuationType.STREAM_TIME`).
    StreamTime,
    /// Fires on the wall clock, whether or not records arrive (Kafka Streams'
    /// `PunctuationType.WALL_CLOCK_TIME`).
    WallClockTime,
}

/// What a processor returns when it cannot process a record: the task stops with it, naming the
/// record's topic, partition and offset.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProcessError(pub String);

impl ProcessError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        ProcessError(message.into())
    }
}

/// A user processor, as Kafka Streams' `Processor<KIn, VIn, KOut, VOut>`.
///
/// Punctuations are requested with [`ProcessorContext::schedule`] and delivered to
/// [`Processor::punctuate`] with the id the schedule returned.
pub trait Processor<KIn, VIn, KOut, VOut>: Send {
    /// Called once per task before the first record (Kafka Streams' `Processor.init`): resolve
    /// stores and schedule punctuations here; the runtime registers the schedules made during
    /// `init`.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_, KOut, VOut>) {}

    /// Called for each record that reaches the processor (Kafka Streams' `Processor.process`);
    /// forward results with `ctx`. An error fails the record: the task stops, naming it, unless
    /// `processing.exception.handler` is log-and-continue.
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        key: &KIn,
        value: &VIn,
    ) -> Result<(), ProcessError>;

    /// Called when a punctuation scheduled in [`Processor::init`] is due (Kafka Streams'
    /// `Punctuator.punctuate`): `punctuation` is the id the schedule returned, `timestamp` the
    /// stream time or wall-clock time (ms) it fired at. There is no current record, so
    /// [`ProcessorContext::record_meta`] is `None`.
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, KOut, VOut>,
        _punctuation: PunctuationId,
        _timestamp: i64,
    ) -> Result<(), ProcessError> {
        Ok(())
    }

    /// Called when the task closes (Kafka Streams' `Processor.close`), to release what the
    /// processor holds; it can no longer forward.
    fn close(&mut self) {}
}

/// Identifies a scheduled punctuation; returned by [`ProcessorContext::schedule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PunctuationId(pub usize);

/// What a [`Processor`] can do: forward records, read the current record's metadata, schedule
/// punctuations, request a commit.
pub struct ProcessorContext<'a, KOut, VOut> {
    inner: &'a mut NodeContext,
    _types: PhantomData<fn(KOut, VOut)>,
}

impl<'a, KOut, VOut> ProcessorContext<'a, KOut, VOut>
where
    KOut: Any + Send + Sync,
    VOut: Any + Send + Sync,
{
    pub(crate) fn new(inner: &'a mut NodeContext) -> Self {
        ProcessorContext {
            inner,
            _types: PhantomData,
        }
    }

    /// Forwards to every child.
    pub fn forward(&mut self, record: Record<KOut, VOut>) {
        self.inner.forward(erase(record), None);
    }

    /// Forwards to the child processor named `child` only.
    pub fn forward_to(&mut self, child: &str, record: Record<KOut, VOut>) {
        self.inner.forward(erase(record), Some(child));
    }

    /// Topic, partition, offset, timestamp and headers of the record being processed (during a
    /// punctuation there is none).
    pub fn record_meta(&self) -> Option<&RecordMeta> {
        self.inner.meta.as_ref()
    }

    /// The task's stream time: the largest record timestamp it has seen.
    pub fn stream_time(&self) -> i64 {
        self.inner.stream_time
    }

    /// The id of the task this processor instance belongs to, `<subtopology>_<partition>`.
    pub fn task_id(&self) -> &str {
        &self.inner.task_id
    }

    /// Schedules [`Processor::punctuate`] every `interval`, on stream time or on the wall clock.
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> PunctuationId {
        self.inner.schedule(interval, kind)
    }

    /// Asks the runtime to commit as soon as possible rather than at the next interval.
    pub fn request_commit(&mut self) {
        self.inner.commit_requested = true;
    }

    /// The key-value store `name`, which the processor was connected to
    /// ([`crate::dsl::KStream::process_with_stores`]), read and written with these serdes.
    /// Resolve it once, in [`Processor::init`].
    pub fn key_value_store<K, V>(
        &self,
        name: &str,
        key: Arc<dyn Serde<K>>,
        value: Arc<dyn Serde<V>>,
    ) -> Result<StoreHandle<K, V>, ProcessError> {
        let id = self.inner.stores.id(name).ok_or_else(|| {
            ProcessError::new(format!(
                "state store '{name}' is not connected to this processor: name it in process_with_stores"
            ))
        })?;
        Ok(StoreHandle {
            id,
            name: name.to_owned(),
            key,
            value,
        })
    }

    /// The value stored under `key`.
    pub fn get<K, V>(&self, store: &StoreHandle<K, V>, key: &K) -> Result<Option<V>, ProcessError> {
        let kb = store.key_bytes(key)?;
        match self.inner.stores.get(store.id, &kb).map_err(store_error)? {
            Some(t) => store
                .value
                .deserialize(Some(&t.value))
                .map(Some)
                .map_err(|e| ProcessError::new(format!("store '{}': {e}", store.name))),
            None => Ok(None),
        }
    }

    /// Stores `value` under `key`, with the current record's timestamp (stream time in a
    /// punctuation); the write goes to the store's changelog too.
    pub fn put<K, V>(
        &mut self,
        store: &StoreHandle<K, V>,
        key: &K,
        value: &V,
    ) -> Result<(), ProcessError> {
        let kb = store.key_bytes(key)?;
        let vb = store
            .value
            .serialize(value)
            .map_err(|e| ProcessError::new(format!("store '{}': {e}", store.name)))?;
        let ts = self.timestamp();
        self.inner
            .stores
            .put(store.id, kb, vb.as_deref(), ts)
            .map_err(store_error)
    }

    /// Deletes `key` (writes a tombstone), with the current record's timestamp (stream time in a
    /// punctuation); the tombstone goes to the store's changelog too.
    pub fn delete<K, V>(&mut self, store: &StoreHandle<K, V>, key: &K) -> Result<(), ProcessError> {
        let kb = store.key_bytes(key)?;
        let ts = self.timestamp();
        self.inner
            .stores
            .put(store.id, kb, None, ts)
            .map_err(store_error)
    }

    /// Every entry, in the order of the keys' bytes.
    pub fn all<K, V>(&mut self, store: &StoreHandle<K, V>) -> Result<Vec<(K, V)>, ProcessError> {
        let entries = self.inner.stores.all(store.id).map_err(store_error)?;
        entries
            .into_iter()
            .map(|(k, t)| {
                let read = |e: String| ProcessError::new(format!("store '{}': {e}", store.name));
                Ok((
                    store.key.deserialize(Some(&k)).map_err(read)?,
                    store.value.deserialize(Some(&t.value)).map_err(read)?,
                ))
            })
            .collect()
    }

    fn timestamp(&self) -> i64 {
        self.inner
            .meta
            .as_ref()
            .map_or(self.inner.stream_time, |m| m.timestamp)
    }
}

/// A key-value store as a [`Processor`] sees it: typed by its serdes (Kafka Streams'
/// `KeyValueStore<K, V>` from `context.getStateStore`).
pub struct StoreHandle<K, V> {
    id: crate::state::StoreId,
    name: String,
    key: Arc<dyn Serde<K>>,
    value: Arc<dyn Serde<V>>,
}

impl<K, V> StoreHandle<K, V> {
    fn key_bytes(&self, key: &K) -> Result<Vec<u8>, ProcessError> {
        match self.key.serialize(key) {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Err(ProcessError::new(format!(
                "store '{}': a null key cannot be stored",
                self.name
            ))),
            Err(e) => Err(ProcessError::new(format!("store '{}': {e}", self.name))),
        }
    }
}

fn store_error(e: crate::state::StateError) -> ProcessError {
    ProcessError::new(e.to_string())
}

fn erase<K, V>(record: Record<K, V>) -> ErasedRecord
where
    K: Any + Send + Sync,
    V: Any + Send + Sync,
{
    ErasedRecord {
        key: datum(record.key),
        value: datum(record.value),
        timestamp: record.timestamp,
        headers: Arc::new(record.headers),
    }
}

/// Views an erased key or value as the type its stream declares. The DSL's types make a mismatch
/// impossible for well-typed programs; a mismatch is reported, never a panic.
pub fn typed<'a, T: Any>(datum: &'a Datum, what: &str) -> Result<&'a T, ProcessError> {
    datum.downcast_ref::<T>().ok_or_else(|| {
        ProcessError::new(format!(
            "{what} is not a {}: the upstream step produces another type",
            std::any::type_name::<T>()
        ))
    })
}

/// Adapts a typed [`Processor`] to the erased node interface.
pub(crate) struct ProcessorNode<P, KIn, VIn, KOut, VOut> {
    pub processor: P,
    pub _types: PhantomData<fn(KIn, VIn, KOut, VOut)>,
}

impl<P, KIn, VIn, KOut, VOut> Node for ProcessorNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KIn: Any + Send + Sync,
    VIn: Any + Send + Sync,
    KOut: Any + Send + Sync,
    VOut: Any + Send + Sync,
{
    fn init(&mut self, ctx: &mut NodeContext) {
        self.processor.init(&mut ProcessorContext::new(ctx));
    }

    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let key = typed::<KIn>(&record.key, "key")?;
        let value = typed::<VIn>(&record.value, "value")?;
        self.processor
            .process(&mut ProcessorContext::new(ctx), key, value)
    }

    fn punctuate(
        &mut self,
        ctx: &mut NodeContext,
        id: PunctuationId,
        timestamp: i64,
    ) -> Result<(), ProcessError> {
        self.processor
            .punctuate(&mut ProcessorContext::new(ctx), id, timestamp)
    }

    fn close(&mut self) {
        self.processor.close();
    }
}
