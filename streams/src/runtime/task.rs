//! A task: one partition of one sub-topology, with its own processor instances.
//!
//! Records wait in a queue per input partition; the task takes next the head record with the
//! lowest timestamp, and holds back while a partition that still has data to fetch is empty
//! (Kafka Streams' KIP-695), so a merge sees its inputs in time order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::TaskError;
use super::metrics::{Metrics, PartitionMetrics, TaskMetrics};
use super::restore::RestoredStores;
use crate::processor::nodes::SinkNode;
use crate::processor::{
    ErasedRecord, Forward, Headers, Node, NodeContext, ProcessError, ProduceRequest, PunctuationId,
    PunctuationType, RecordMeta,
};
use crate::state::{Checkpoint, Offsets, TaskDirectory};
use crate::topology::{Deserializer, NodeKind, SinkTarget, SubTopology, Topology};

/// A record as fetched, before deserialization.
#[derive(Clone, Debug)]
pub struct RawRecord {
    /// The topic it was read from, as named in Kafka (internal topics with their prefix).
    pub topic: String,
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its timestamp, in ms since the epoch: what stream time and windows go by.
    pub timestamp: i64,
    /// The key's bytes; `None` is a null key.
    pub key: Option<Vec<u8>>,
    /// The value's bytes; `None` is a null value (a tombstone for tables).
    pub value: Option<Vec<u8>>,
    /// The record's headers.
    pub headers: Headers,
}

/// Why a record could not be processed or its result written: where the input record was (Kafka
/// Streams' `ErrorHandlerContext`), and what went wrong.
#[derive(Clone, Debug, thiserror::Error)]
pub struct RecordFailure {
    /// The id of the task that read it, `<subtopology>_<partition>`.
    pub task: String,
    /// Whether it failed to deserialize, in a processor, or when its result was produced.
    pub kind: FailureKind,
    /// The topic the record was read from; empty when no input record is known (a production
    /// failure of a punctuation's or a cache flush's output).
    pub topic: String,
    /// Its partition (-1 when no input record is known).
    pub partition: i32,
    /// Its offset (-1 when no input record is known).
    pub offset: i64,
    /// What went wrong: the serde's error (prefixed `key: ` or `value: `), the failing node's, or
    /// the producer's (naming the output topic).
    pub message: String,
}

impl RecordFailure {
    /// Whether the input record is known (always but for the outputs of punctuations and cache
    /// flushes, which no single input record produced).
    pub fn has_input(&self) -> bool {
        self.offset >= 0
    }
}

impl std::fmt::Display for RecordFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let RecordFailure {
            task,
            kind,
            topic,
            partition,
            offset,
            message,
        } = self;
        if self.has_input() {
            write!(
                f,
                "task {task}: {kind} failed for the record at {topic}-{partition} offset {offset}: {message}"
            )
        } else {
            write!(
                f,
                "task {task}: {kind} failed for a record of a punctuation or a cache flush (no input record): {message}"
            )
        }
    }
}

/// Which step a record failed in, which decides the handler asked: Kafka Streams'
/// `deserialization.exception.handler` or `processing.exception.handler`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Its key or value did not deserialize with the source's serde (a dead-letter record says
    /// `SerializationException`).
    Deserialization,
    /// A processor, or a stream-time punctuation it triggered, failed on it (a dead-letter
    /// record says `StreamsException`).
    Processing,
    /// A record it produced was refused by the broker or the producer (too large, an invalid
    /// timestamp): `production.exception.handler` decides (a dead-letter record names the Kafka
    /// exception, such as `RecordTooLargeException`).
    Production,
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailureKind::Deserialization => "deserialization",
            FailureKind::Processing => "processing",
            FailureKind::Production => "production",
        })
    }
}

struct TaskNode {
    name: String,
    /// `None` for source nodes: the task deserializes and hands their children the record.
    instance: Option<Box<dyn Node>>,
    children: Vec<usize>,
    /// Records the node received (a source: records it read), for the topology page; only this
    /// task's thread adds to it.
    records: prometheus_client::metrics::counter::Counter,
}

struct Partition {
    topic: String,
    partition: i32,
    source: usize,
    key_de: Deserializer,
    value_de: Deserializer,
    queue: VecDeque<RawRecord>,
    /// Offset after the last record fetched (known once one arrived).
    fetched_next: Option<i64>,
    /// Offset after the last record processed: what a commit stores.
    processed_next: Option<i64>,
    metrics: PartitionMetrics,
}

struct Punctuation {
    node: usize,
    id: PunctuationId,
    interval_ms: i64,
    kind: PunctuationType,
    next: Option<i64>,
}

/// A partition's fetch lag from the broker's watermarks, given the offset after the last record
/// fetched (`None`: not known yet).
pub type LagOf<'a> = dyn Fn(&str, i32, Option<i64>) -> Option<i64> + 'a;

/// A record that could not be processed, with its original bytes for a dead-letter topic.
pub type Failed = Box<(RawRecord, RecordFailure)>;

/// The entries of a store: key bytes and timestamped value.
pub(crate) type StoreEntries = Vec<(Vec<u8>, crate::state::Timestamped)>;

/// What one processed record or punctuation produced for the thread to send.
pub type Outputs = Vec<ProduceRequest>;

/// A task: one partition of one sub-topology, with its own processor instances, input queues,
/// stores and punctuation schedules (Kafka Streams' `StreamTask`). The stream threads create and
/// drive them; the [`TopologyTestDriver`](crate::TopologyTestDriver) runs one per sub-topology.
pub struct Task {
    /// The task id, `<subtopology>_<partition>` (Kafka Streams' `TaskId`, as `0_1`).
    pub id: String,
    /// The partition this task is for (its changelogs' partition).
    partition: i32,
    nodes: Vec<TaskNode>,
    partitions: Vec<Partition>,
    ctx: NodeContext,
    punctuations: Vec<Punctuation>,
    stream_time: i64,
    idle_since: Option<Instant>,
    spare_forwards: Vec<Vec<Forward>>,
    /// The task's handles into the application's [`Metrics`] (processed, produced, dropped...).
    pub metrics: TaskMetrics,
    /// Held while the task lives: no other thread or process opens its stores.
    directory: Option<TaskDirectory>,
    /// The offset of the last changelog record each store reflects.
    changelog_offsets: Offsets,
    /// Under exactly_once_v2 checkpoints are written only on a clean close (see
    /// [`checkpoint_due`]).
    exactly_once: bool,
}

/// Changelog records written after which a commit also checkpoints (Kafka Streams' threshold):
/// a checkpoint needs a flush of every store, too costly for every commit.
const CHECKPOINT_AFTER_RECORDS: u64 = 10_000;

/// Whether a commit writes the checkpoint, as Kafka Streams decides: under at-least-once after
/// enough changelog records, or when `force`d (clean close, revocation); under exactly-once only
/// when forced, since between commits the stores hold writes of a transaction that may still
/// abort, and a checkpoint would make a crash keep them.
pub(crate) fn checkpoint_due(exactly_once: bool, force: bool, written_since: u64) -> bool {
    force || (!exactly_once && written_since >= CHECKPOINT_AFTER_RECORDS)
}

impl Task {
    /// Settings the nodes read from the application's config.
    pub(crate) fn configure(&mut self, config: &crate::config::StreamsConfig) {
        self.ctx.outer_join_emit_interval_ms = config
            .outer_join_emit_interval
            .as_millis()
            .min(i64::MAX as u128) as i64;
    }

    /// Instantiates the sub-topology's nodes for `partition`; `inputs` are the assigned
    /// (resolved topic, partition) pairs it reads.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        topology: &Topology,
        sub: &SubTopology,
        partition: i32,
        inputs: &[(String, i32)],
        application_id: &str,
        committed: &HashMap<(String, i32), i64>,
        metrics: &Metrics,
        restored: RestoredStores,
    ) -> Task {
        let id = crate::topology::task_id(sub.id, partition);
        let local: HashMap<usize, usize> =
            sub.nodes.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        let mut nodes = Vec::with_capacity(sub.nodes.len());
        let mut partitions = Vec::new();
        for &n in &sub.nodes {
            let def = &topology.nodes()[n];
            let instance: Option<Box<dyn Node>> = match &def.kind {
                NodeKind::Source { topics, key, value } => {
                    for t in topics {
                        let resolved = t.resolve(application_id);
                        if inputs
                            .iter()
                            .any(|(topic, p)| *topic == resolved && *p == partition)
                        {
                            partitions.push(Partition {
                                fetched_next: committed
                                    .get(&(resolved.clone(), partition))
                                    .copied(),
                                metrics: metrics.partition(&resolved, partition),
                                topic: resolved,
                                partition,
                                source: local[&n],
                                key_de: key.clone(),
                                value_de: value.clone(),
                                queue: VecDeque::new(),
                                processed_next: None,
                            });
                        }
                    }
                    None
                }
                NodeKind::Processor { factory, .. } => Some(factory()),
                NodeKind::Sink {
                    target,
                    key,
                    value,
                    window_suffix,
                } => Some(Box::new(SinkNode {
                    window_suffix: *window_suffix,
                    resolved_topic: match target {
                        SinkTarget::Topic(t) => Some(t.resolve(application_id)),
                        SinkTarget::Extractor { .. } => None,
                    },
                    target: target.clone(),
                    key: key.clone(),
                    value: value.clone(),
                })),
            };
            nodes.push(TaskNode {
                records: metrics.node(&id, &def.name),
                name: def.name.clone(),
                instance,
                children: def
                    .children
                    .iter()
                    .filter_map(|c| local.get(c).copied())
                    .collect(),
            });
        }
        let mut ctx = NodeContext::new(id.clone());
        ctx.stores = restored.stores;
        ctx.globals = restored.globals;
        let mut task = Task {
            ctx,
            partition,
            directory: restored.directory,
            changelog_offsets: restored.offsets,
            exactly_once: restored.exactly_once,
            nodes,
            partitions,
            punctuations: Vec::new(),
            stream_time: i64::MIN,
            idle_since: None,
            spare_forwards: Vec::new(),
            metrics: metrics.task(&id),
            id,
        };
        task.init();
        task
    }

    fn init(&mut self) {
        for i in 0..self.nodes.len() {
            if let Some(node) = self.nodes[i].instance.as_mut() {
                node.init(&mut self.ctx);
            }
            for s in self.ctx.scheduled.drain(..) {
                self.punctuations.push(Punctuation {
                    node: i,
                    id: s.id,
                    interval_ms: s.interval.as_millis().max(1) as i64,
                    kind: s.kind,
                    next: None,
                });
            }
        }
    }

    /// The (topic, partition) pairs this task reads.
    pub fn inputs(&self) -> impl Iterator<Item = (&str, i32)> {
        self.partitions
            .iter()
            .map(|p| (p.topic.as_str(), p.partition))
    }

    /// Adds a fetched record to its partition's queue; a record of a partition the task does not
    /// read is ignored.
    pub fn enqueue(&mut self, record: RawRecord) {
        if let Some(p) = self
            .partitions
            .iter_mut()
            .find(|p| p.partition == record.partition && p.topic == record.topic)
        {
            p.fetched_next = Some(record.offset + 1);
            p.metrics.consumed.inc();
            p.queue.push_back(record);
        }
    }

    /// How many records of `topic`-`partition` wait in the task's queue (0 for a partition it
    /// does not read); the thread pauses a partition whose queue is full (Kafka Streams'
    /// `buffered.records.per.partition`).
    pub fn buffered(&self, topic: &str, partition: i32) -> usize {
        self.partitions
            .iter()
            .find(|p| p.partition == partition && p.topic == topic)
            .map_or(0, |p| p.queue.len())
    }

    /// Whether any input partition has records waiting.
    pub fn has_buffered(&self) -> bool {
        self.partitions.iter().any(|p| !p.queue.is_empty())
    }

    /// Updates each input partition's lag gauge: records between the last processed one and the
    /// log end, per `watermarks` (high watermark, when known).
    pub fn update_lag(&self, watermarks: &dyn Fn(&str, i32) -> Option<i64>) {
        for p in &self.partitions {
            if let (Some(high), Some(next)) = (
                watermarks(&p.topic, p.partition),
                p.processed_next.or(p.fetched_next),
            ) {
                p.metrics.lag.set((high - next).max(0));
            }
        }
    }

    /// Offsets to commit: the next offset after the last processed record, per partition.
    pub fn committable(&self) -> Vec<(String, i32, i64)> {
        self.partitions
            .iter()
            .filter_map(|p| p.processed_next.map(|o| (p.topic.clone(), p.partition, o)))
            .collect()
    }

    /// Picks the partition whose head record goes next, or `None` when the task must wait.
    ///
    /// Kafka Streams' KIP-695 rule: an empty partition that still has records to fetch (known lag
    /// above zero), or whose lag is not known yet, may hold an earlier record, so the task waits
    /// for it; an empty partition that is caught up is waited for `max.task.idle.ms` at most.
    /// `lag_of` gives a partition's fetch lag from the broker's watermarks (`None`: unknown).
    fn next_partition(&mut self, max_idle: Duration, lag_of: &LagOf<'_>) -> Option<usize> {
        let mut best: Option<(i64, usize)> = None;
        let mut caught_up_but_empty = false;
        for (i, p) in self.partitions.iter().enumerate() {
            match p.queue.front() {
                Some(r) => {
                    if best.is_none_or(|(ts, _)| r.timestamp < ts) {
                        best = Some((r.timestamp, i));
                    }
                }
                None if self.partitions.len() == 1 => {}
                None => match lag_of(&p.topic, p.partition, p.fetched_next) {
                    Some(0) => caught_up_but_empty = true,
                    _ => return None,
                },
            }
        }
        let (_, chosen) = best?;
        if caught_up_but_empty && !max_idle.is_zero() {
            let since = *self.idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() < max_idle {
                return None;
            }
        }
        self.idle_since = None;
        Some(chosen)
    }

    /// Processes the next record if one may go. Returns `Ok(None)` when nothing may be processed.
    pub fn process_next(
        &mut self,
        max_idle: Duration,
        lag_of: &LagOf<'_>,
        outputs: &mut Outputs,
    ) -> Result<Option<RawRecord>, Failed> {
        let Some(pi) = self.next_partition(max_idle, lag_of) else {
            return Ok(None);
        };
        let Some(raw) = self.partitions[pi].queue.pop_front() else {
            return Ok(None);
        };
        let source = self.partitions[pi].source;
        self.stream_time = self.stream_time.max(raw.timestamp);
        self.ctx.stream_time = self.stream_time;
        let fail = |kind, message: String, raw: &RawRecord, id: &str| RecordFailure {
            task: id.to_owned(),
            kind,
            topic: raw.topic.clone(),
            partition: raw.partition,
            offset: raw.offset,
            message,
        };
        let (key_de, value_de) = (
            self.partitions[pi].key_de.clone(),
            self.partitions[pi].value_de.clone(),
        );
        let key = match key_de(raw.key.as_deref()) {
            Ok(k) => k,
            Err(e) => {
                let f = fail(
                    FailureKind::Deserialization,
                    format!("key: {e}"),
                    &raw,
                    &self.id,
                );
                return Err(Box::new((raw, f)));
            }
        };
        let value = match value_de(raw.value.as_deref()) {
            Ok(v) => v,
            Err(e) => {
                let f = fail(
                    FailureKind::Deserialization,
                    format!("value: {e}"),
                    &raw,
                    &self.id,
                );
                return Err(Box::new((raw, f)));
            }
        };
        let record = ErasedRecord {
            key,
            value,
            timestamp: raw.timestamp,
            headers: Arc::new(raw.headers.clone()),
        };
        self.ctx.meta = Some(RecordMeta {
            topic: raw.topic.clone(),
            partition: raw.partition,
            offset: raw.offset,
            timestamp: raw.timestamp,
            headers: raw.headers.clone(),
        });
        self.nodes[source].records.inc();
        for i in 0..self.nodes[source].children.len() {
            let child = self.nodes[source].children[i];
            if let Err(e) = self.run_node(child, &record) {
                self.ctx.forwards.clear();
                self.ctx.produced.clear();
                let f = fail(FailureKind::Processing, e.to_string(), &raw, &self.id);
                return Err(Box::new((raw, f)));
            }
        }
        self.collect_outputs(outputs);
        self.partitions[pi].processed_next = Some(raw.offset + 1);
        if let Err(e) = self.punctuate(PunctuationType::StreamTime, self.stream_time, outputs) {
            let f = fail(FailureKind::Processing, e.to_string(), &raw, &self.id);
            return Err(Box::new((raw, f)));
        }
        Ok(Some(raw))
    }

    /// A record that failed but whose handler says continue: count it as processed.
    pub fn skip(&mut self, raw: &RawRecord) {
        if let Some(p) = self
            .partitions
            .iter_mut()
            .find(|p| p.partition == raw.partition && p.topic == raw.topic)
        {
            p.processed_next = Some(raw.offset + 1);
        }
    }

    fn run_node(&mut self, node: usize, record: &ErasedRecord) -> Result<(), TaskError> {
        self.nodes[node].records.inc();
        let Some(instance) = self.nodes[node].instance.as_mut() else {
            return Ok(());
        };
        instance
            .process(&mut self.ctx, record)
            .map_err(|source| TaskError::Process {
                node: self.nodes[node].name.clone(),
                source,
            })?;
        self.deliver(node)
    }

    /// Sends what `node` forwarded to its children, depth first as Kafka Streams does.
    fn deliver(&mut self, node: usize) -> Result<(), TaskError> {
        if self.ctx.forwards.is_empty() {
            return Ok(());
        }
        // Forward lists are recycled: no allocation per record and node once warmed up.
        let spare = self.spare_forwards.pop().unwrap_or_default();
        let mut forwards = std::mem::replace(&mut self.ctx.forwards, spare);
        for f in forwards.drain(..) {
            for i in 0..self.nodes[node].children.len() {
                let child = self.nodes[node].children[i];
                if f.child
                    .as_deref()
                    .is_none_or(|name| self.nodes[child].name == name)
                {
                    self.run_node(child, &f.record)?;
                }
            }
        }
        self.spare_forwards.push(forwards);
        Ok(())
    }

    /// Fires the punctuations of `kind` that are due at `now` (stream time or wall clock).
    pub fn punctuate(
        &mut self,
        kind: PunctuationType,
        now: i64,
        outputs: &mut Outputs,
    ) -> Result<(), TaskError> {
        for i in 0..self.punctuations.len() {
            let p = &mut self.punctuations[i];
            if p.kind != kind || now == i64::MIN {
                continue;
            }
            // The first schedule fires one interval after the time it is first seen.
            let next = *p.next.get_or_insert(now + p.interval_ms);
            if now < next {
                continue;
            }
            p.next = Some(now + p.interval_ms);
            let (node, id) = (p.node, p.id);
            self.ctx.meta = None;
            if let Some(instance) = self.nodes[node].instance.as_mut() {
                instance
                    .punctuate(&mut self.ctx, id, now)
                    .map_err(|source: ProcessError| TaskError::Punctuate {
                        node: self.nodes[node].name.clone(),
                        source,
                    })?;
            }
            self.deliver(node)?;
            self.collect_outputs(outputs);
        }
        Ok(())
    }

    /// Moves what the nodes produced, changelog records included, to `outputs`.
    fn collect_outputs(&mut self, outputs: &mut Outputs) {
        outputs.append(&mut self.ctx.produced);
        outputs.append(&mut self.ctx.stores.changelog);
        if self.ctx.late_dropped > 0 {
            self.metrics
                .late_dropped
                .inc_by(std::mem::take(&mut self.ctx.late_dropped));
        }
    }

    /// Before a commit: forwards the updates nodes held back, then writes the record caches
    /// out, so their changelog records go with the commit.
    pub fn prepare_commit(&mut self, outputs: &mut Outputs) -> Result<(), TaskError> {
        // A write that found the state volume full fails the commit, before any offset is
        // committed, even when a handler skipped its record: records are never skipped for it.
        if let Some(full) = self.ctx.stores.take_volume_full() {
            return Err(TaskError::Store(Arc::new(full)).in_task(&self.id));
        }
        self.ctx.meta = None;
        for i in 0..self.nodes.len() {
            if let Some(instance) = self.nodes[i].instance.as_mut() {
                instance.flush(&mut self.ctx).map_err(|source| {
                    TaskError::Process {
                        node: self.nodes[i].name.clone(),
                        source,
                    }
                    .in_task(&self.id)
                })?;
            }
            self.deliver(i).map_err(|e| e.in_task(&self.id))?;
        }
        self.ctx
            .stores
            .flush_caches()
            .map_err(|e| TaskError::Store(Arc::new(e)).in_task(&self.id))?;
        self.collect_outputs(outputs);
        Ok(())
    }

    /// The changelog topics this task writes, for delivery tracking.
    pub fn owns_changelog(&self, topic: &str, partition: i32) -> bool {
        partition == self.partition && self.ctx.stores.changelogs().any(|(_, t)| t == topic)
    }

    /// Each changelog partition of the task's logged stores with the position its local state
    /// reflects: the offset after the last changelog record restored or delivered, 0 when none
    /// (what Kafka Streams sums into a task's offset for the group's assignor).
    pub fn changelog_positions(&self) -> Vec<((String, i32), i64)> {
        let topics: std::collections::BTreeSet<&str> =
            self.ctx.stores.changelogs().map(|(_, t)| t).collect();
        topics
            .into_iter()
            .map(|topic| {
                let key = (topic.to_owned(), self.partition);
                let position = self.changelog_offsets.get(&key).map_or(0, |o| o + 1);
                (key, position)
            })
            .collect()
    }

    /// Records the offset of the last changelog record delivered for one of this task's stores.
    pub fn changelog_delivered(&mut self, topic: &str, partition: i32, offset: i64) {
        let entry = self
            .changelog_offsets
            .entry((topic.to_owned(), partition))
            .or_insert(offset);
        *entry = (*entry).max(offset);
    }

    /// After a commit: flushes the stores and writes the checkpoint when enough was written
    /// since the last one, or always when `force` (a clean close).
    pub fn maybe_checkpoint(&mut self, force: bool) -> Result<(), TaskError> {
        let Some(dir) = &self.directory else {
            return Ok(());
        };
        if !checkpoint_due(
            self.exactly_once,
            force,
            self.ctx.stores.written_since_checkpoint,
        ) {
            return Ok(());
        }
        let fail =
            |e: crate::state::StateError| TaskError::Checkpoint(Arc::new(e)).in_task(&self.id);
        self.ctx.stores.flush().map_err(fail)?;
        Checkpoint::in_directory(dir.path())
            .write(&self.changelog_offsets)
            .map_err(fail)?;
        self.ctx.stores.written_since_checkpoint = 0;
        Ok(())
    }

    /// Fires the wall-clock punctuations due at the task's wall-clock time (Kafka Streams'
    /// `PunctuationType.WALL_CLOCK_TIME`); does nothing when none is scheduled.
    pub fn wall_clock_punctuate(&mut self, outputs: &mut Outputs) -> Result<(), TaskError> {
        if self
            .punctuations
            .iter()
            .any(|p| p.kind == PunctuationType::WallClockTime)
        {
            let now = self.ctx.wall_clock.now_ms();
            self.punctuate(PunctuationType::WallClockTime, now, outputs)
        } else {
            Ok(())
        }
    }

    /// Where the task's nodes read wall-clock time (the test driver moves its own clock).
    pub(crate) fn set_wall_clock(&mut self, clock: crate::processor::WallClock) {
        self.ctx.wall_clock = clock;
    }

    /// Every entry of store `name`, or `None` when this task has no such store.
    pub(crate) fn store_entries(
        &mut self,
        name: &str,
    ) -> Result<Option<StoreEntries>, crate::state::StateError> {
        let Some(id) = self.ctx.stores.id(name) else {
            return Ok(None);
        };
        self.ctx.stores.all(id).map(Some)
    }

    /// Whether a processor asked for a commit (`ProcessorContext::request_commit`, Kafka
    /// Streams' `context.commit()`) since the last call; the request is cleared.
    pub fn take_commit_request(&mut self) -> bool {
        std::mem::take(&mut self.ctx.commit_requested)
    }

    /// Closes every processor (`Processor::close`); the stores and the directory lock stay
    /// until the task is dropped.
    pub fn close(&mut self) {
        for n in &mut self.nodes {
            if let Some(i) = n.instance.as_mut() {
                i.close();
            }
        }
    }

    /// Closes the task without a checkpoint and deletes its local stores (Kafka Streams' dirty
    /// close of a corrupted task under exactly-once): its stores may hold writes of an aborted
    /// transaction, so the next owner (this thread, at once) restores them from the changelog.
    pub fn close_dirty(mut self) -> Result<(), TaskError> {
        self.close();
        // The stores close (RocksDB releases its files) before their directory is deleted; the
        // task directory stays locked meanwhile so no other thread opens it half-deleted.
        self.ctx.stores = crate::state::TaskStores::new(self.partition, 0);
        if let Some(dir) = self.directory.take() {
            dir.wipe()
                .map_err(|e| TaskError::Wipe(Arc::new(e)).in_task(&self.id))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::checkpoint_due;

    #[test]
    fn exactly_once_checkpoints_only_when_forced() {
        assert!(!checkpoint_due(false, false, 9_999));
        assert!(
            checkpoint_due(false, false, 10_000),
            "at-least-once: every 10k records"
        );
        assert!(checkpoint_due(false, true, 0));
        assert!(
            !checkpoint_due(true, false, 10_000_000),
            "never mid-transaction"
        );
        assert!(
            checkpoint_due(true, true, 0),
            "clean close and revocation after a commit"
        );
    }
}
