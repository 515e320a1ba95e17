//! A stream thread: one consumer and one producer, the tasks of the partitions assigned to it,
//! and a synchronous poll → process → produce → commit loop (Kafka Streams' `StreamThread`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{BorrowedMessage, Header, Headers as _, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use super::task::{FailureKind, Outputs, RawRecord, RecordFailure, Task};
use super::{Shared, ThreadState};
use crate::config::{ErrorHandler, StreamsConfig};
use crate::processor::{Headers, ProduceRequest};
use crate::topology::Topology;

/// Everything a thread owns that the rebalance callbacks also need.
struct Core {
    tasks: BTreeMap<String, Task>,
    producer: BaseProducer<DeliveryContext>,
}

/// Records the first failed delivery; the thread stops on it (production.exception.handler=fail).
/// Also notes the offsets of delivered changelog records, which checkpoints record.
#[derive(Default)]
pub(crate) struct DeliveryContext {
    failure: Mutex<Option<String>>,
    changelog_offsets: Mutex<HashMap<(String, i32), i64>>,
    /// Partition counts of the topics windowed keys went to, for choosing their partitions.
    partition_counts: Mutex<HashMap<String, i32>>,
}

/// The delivery opaque of a changelog record.
const CHANGELOG: usize = 1;

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, kind: usize) {
        if let (Ok(msg), CHANGELOG) = (result, kind) {
            let mut offsets = self
                .changelog_offsets
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let entry = offsets
                .entry((msg.topic().to_owned(), msg.partition()))
                .or_insert(msg.offset());
            *entry = (*entry).max(msg.offset());
        }
        if let Err((err, msg)) = result {
            let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            failure.get_or_insert_with(|| {
                format!(
                    "producing to {}-{} failed: {err}",
                    msg.topic(),
                    msg.partition()
                )
            });
        }
    }
}

/// The consumer's context: creates and closes tasks as partitions come and go.
pub(crate) struct RebalanceContext {
    thread: usize,
    shared: Arc<Shared>,
    topology: Arc<Topology>,
    core: Mutex<Option<Core>>,
    failure: Mutex<Option<String>>,
}

impl ClientContext for RebalanceContext {}

/// The (topic, partition) pairs of a partition list.
fn topic_partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.shared
            .set_thread_state(self.thread, ThreadState::Rebalancing);
        self.shared.metrics.rebalances.inc();
        if let Rebalance::Revoke(revoked) = rebalance {
            let mut guard = self.core.lock().unwrap_or_else(|p| p.into_inner());
            let Some(core) = guard.as_mut() else { return };
            let revoked = topic_partitions(revoked);
            // Outputs first, then offsets: nothing committed before what it produced is durable.
            if let Err(e) = commit(consumer, core, &self.shared.config, false) {
                warn!(thread = self.thread, error = %e, "commit before revocation failed; the new owner reprocesses from the last commit");
            }
            let closing: Vec<String> = core
                .tasks
                .iter()
                .filter(|(_, t)| {
                    t.inputs()
                        .any(|(topic, p)| revoked.iter().any(|(rt, rp)| rt == topic && *rp == p))
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in closing {
                if let Some(mut task) = core.tasks.remove(&id) {
                    if let Err(e) = task.maybe_checkpoint(true) {
                        warn!(thread = self.thread, task = %id, error = %e, "no checkpoint on revocation; the next owner restores from the changelog");
                    }
                    task.close();
                    info!(thread = self.thread, task = %id, "task closed (partitions revoked)");
                }
            }
            self.shared
                .publish_tasks(self.thread, core.tasks.keys().cloned().collect());
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                // Where each partition resumes: what lets a task tell a caught-up partition from
                // one whose records are still to be fetched.
                let committed: HashMap<(String, i32), i64> = consumer
                    .committed_offsets((*assigned).clone(), Duration::from_secs(10))
                    .map(|tpl| {
                        tpl.elements()
                            .iter()
                            .filter_map(|e| match e.offset() {
                                Offset::Offset(o) => {
                                    Some(((e.topic().to_owned(), e.partition()), o))
                                }
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut guard = self.core.lock().unwrap_or_else(|p| p.into_inner());
                let Some(core) = guard.as_mut() else { return };
                let assigned = topic_partitions(assigned);
                let app = &self.shared.config.application_id;
                for sub in self.topology.subtopologies() {
                    let topics: Vec<String> =
                        sub.source_topics.iter().map(|t| t.resolve(app)).collect();
                    let mut partitions: Vec<i32> = assigned
                        .iter()
                        .filter(|(t, _)| topics.contains(t))
                        .map(|(_, p)| *p)
                        .collect();
                    partitions.sort_unstable();
                    partitions.dedup();
                    for p in partitions {
                        let id = crate::topology::task_id(sub.id, p);
                        if core.tasks.contains_key(&id) {
                            continue;
                        }
                        let restored = match super::restore::open_and_restore(
                            &self.topology,
                            sub,
                            p,
                            &id,
                            &self.shared,
                        ) {
                            Ok(r) => r,
                            Err(e) => {
                                error!(thread = self.thread, task = %id, error = %e, "opening the task's stores failed");
                                *self.failure.lock().unwrap_or_else(|p| p.into_inner()) =
                                    Some(format!("task {id}: {e}"));
                                continue;
                            }
                        };
                        info!(thread = self.thread, task = %id, "task created");
                        let mut task = Task::new(
                            &self.topology,
                            sub,
                            p,
                            &assigned,
                            app,
                            &committed,
                            &self.shared.metrics,
                            restored,
                        );
                        task.configure(&self.shared.config);
                        core.tasks.insert(id, task);
                    }
                }
                self.shared
                    .publish_tasks(self.thread, core.tasks.keys().cloned().collect());
                self.shared
                    .set_thread_state(self.thread, ThreadState::Running);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                error!(thread = self.thread, error = %e, "rebalance failed");
                *self.failure.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("rebalance failed: {e}"));
            }
        }
    }
}

/// Commits: record caches written out, outputs and changelogs flushed, offsets committed, then
/// checkpoints where due (`force_checkpoint`: every task's, as on a clean close).
fn commit(
    consumer: &BaseConsumer<RebalanceContext>,
    core: &mut Core,
    config: &StreamsConfig,
    force_checkpoint: bool,
) -> Result<usize, String> {
    let mut outputs = Vec::new();
    for task in core.tasks.values_mut() {
        task.prepare_commit(&mut outputs)?;
        for out in outputs.drain(..) {
            send(&core.producer, &out)?;
        }
    }
    let mut tpl = TopicPartitionList::new();
    for task in core.tasks.values() {
        for (topic, partition, offset) in task.committable() {
            tpl.add_partition_offset(&topic, partition, Offset::Offset(offset))
                .map_err(|e| e.to_string())?;
        }
    }
    core.producer
        .flush(config.commit_interval.max(Duration::from_secs(30)))
        .map_err(|e| format!("flushing the producer: {e}"))?;
    if tpl.count() > 0 {
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| format!("committing offsets: {e}"))?;
    }
    let delivered = std::mem::take(
        &mut *core
            .producer
            .context()
            .changelog_offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    for task in core.tasks.values_mut() {
        for ((topic, partition), offset) in &delivered {
            if task.owns_changelog(topic, *partition) {
                task.changelog_delivered(topic, *partition, *offset);
            }
        }
        task.maybe_checkpoint(force_checkpoint)?;
    }
    Ok(tpl.count())
}

/// The low and high watermarks librdkafka last saw in fetch responses: free to ask, no request.
fn cached_watermarks(
    consumer: &BaseConsumer<RebalanceContext>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle is valid while `consumer` is borrowed, `topic` is a NUL-terminated
    // string that outlives the call, and librdkafka only writes the two out-parameters.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR).then_some((low, high))
}

fn to_raw(msg: &BorrowedMessage<'_>) -> RawRecord {
    let headers = msg
        .headers()
        .map(|hs| {
            Headers(
                hs.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect(),
            )
        })
        .unwrap_or_default();
    RawRecord {
        topic: msg.topic().to_owned(),
        partition: msg.partition(),
        offset: msg.offset(),
        timestamp: msg.timestamp().to_millis().unwrap_or(0),
        key: msg.key().map(<[u8]>::to_vec),
        value: msg.payload().map(<[u8]>::to_vec),
        headers,
    }
}

fn owned_headers(headers: &Headers) -> Option<OwnedHeaders> {
    if headers.0.is_empty() {
        return None;
    }
    let mut out = OwnedHeaders::new_with_capacity(headers.0.len());
    for (k, v) in &headers.0 {
        out = out.insert(Header {
            key: k,
            value: v.as_deref(),
        });
    }
    Some(out)
}

/// Sends one record, waiting for queue space rather than dropping it.
/// The partition Java's partitioner gives the first `hash_len` bytes of the record's key.
fn partition_by_prefix(
    producer: &BaseProducer<DeliveryContext>,
    out: &ProduceRequest,
) -> Result<Option<i32>, String> {
    let (Some(len), Some(key)) = (out.hash_len, &out.key) else {
        return Ok(None);
    };
    let mut counts = producer
        .context()
        .partition_counts
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let count = match counts.get(&out.topic) {
        Some(c) => *c,
        None => {
            let metadata = producer
                .client()
                .fetch_metadata(Some(&out.topic), Duration::from_secs(15))
                .map_err(|e| format!("reading the partitions of {}: {e}", out.topic))?;
            let c = metadata
                .topics()
                .first()
                .filter(|t| t.error().is_none())
                .map(|t| t.partitions().len() as i32)
                .filter(|c| *c > 0)
                .ok_or_else(|| {
                    format!(
                        "topic {} does not exist: create it (Freshet never creates output topics)",
                        out.topic
                    )
                })?;
            counts.insert(out.topic.clone(), c);
            c
        }
    };
    Ok(Some(super::partitioner::partition_for(
        &key[..len.min(key.len())],
        count,
    )))
}

fn send(producer: &BaseProducer<DeliveryContext>, out: &ProduceRequest) -> Result<(), String> {
    let partition = match out.partition {
        Some(p) => Some(p),
        None => partition_by_prefix(producer, out)?,
    };
    loop {
        let opaque = if out.changelog { CHANGELOG } else { 0 };
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&out.topic, opaque).timestamp(out.timestamp);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(k) = &out.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &out.value {
            record = record.payload(v.as_slice());
        }
        if let Some(h) = owned_headers(&out.headers) {
            record = record.headers(h);
        }
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                producer.poll(Duration::from_millis(50));
            }
            Err((e, _)) => return Err(format!("producing to {}: {e}", out.topic)),
        }
    }
}

pub(crate) struct StreamThread {
    pub index: usize,
    pub shared: Arc<Shared>,
    pub topology: Arc<Topology>,
    pub shutdown: Arc<AtomicBool>,
}

impl StreamThread {
    /// Kafka Streams' client id prefix: `client.id` if set, else the application id.
    fn client_prefix(&self) -> &str {
        super::client_prefix(&self.shared.config)
    }

    fn consumer_config(&self) -> ClientConfig {
        let c = &self.shared.config;
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &c.bootstrap_servers)
            .set("group.id", &c.application_id)
            .set(
                "client.id",
                format!(
                    "{}-StreamThread-{}-consumer",
                    self.client_prefix(),
                    self.index + 1
                ),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        // Range assignment puts partition N of every co-partitioned topic on one member.
        match c.group_protocol {
            crate::config::GroupProtocol::Classic => {
                cfg.set("partition.assignment.strategy", "range");
            }
            crate::config::GroupProtocol::Consumer => {
                cfg.set("group.protocol", "consumer")
                    .set("group.remote.assignor", "range");
            }
        }
        for (k, v) in &c.consumer {
            cfg.set(k, v);
        }
        if let Some(base) = &self.shared.instance_base {
            cfg.set(
                "group.instance.id",
                crate::config::thread_instance_id(base, self.index + 1),
            );
        }
        cfg
    }

    fn producer_config(&self) -> ClientConfig {
        let c = &self.shared.config;
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &c.bootstrap_servers)
            .set(
                "client.id",
                format!(
                    "{}-StreamThread-{}-producer",
                    self.client_prefix(),
                    self.index + 1
                ),
            )
            // Java's default partitioner: keys land where Java clients and Kafka Streams put them.
            .set("partitioner", "murmur2_random");
        for (k, v) in &c.producer {
            cfg.set(k, v);
        }
        cfg
    }

    /// Runs until shutdown or a failure; returns the failure, if any.
    pub fn run(self) -> Result<(), String> {
        let context = RebalanceContext {
            thread: self.index,
            shared: self.shared.clone(),
            topology: self.topology.clone(),
            core: Mutex::new(None),
            failure: Mutex::new(None),
        };
        let producer: BaseProducer<DeliveryContext> = self
            .producer_config()
            .create_with_context(DeliveryContext::default())
            .map_err(|e| format!("creating the producer: {e}"))?;
        let consumer: BaseConsumer<RebalanceContext> = self
            .consumer_config()
            .create_with_context(context)
            .map_err(|e| format!("creating the consumer: {e}"))?;
        *consumer
            .context()
            .core
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Core {
            tasks: BTreeMap::new(),
            producer,
        });
        let app = self.shared.config.application_id.clone();
        let topics: Vec<String> = self
            .topology
            .source_topics()
            .iter()
            .map(|t| t.resolve(&app))
            .collect();
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topic_refs)
            .map_err(|e| format!("subscribing to {topics:?}: {e}"))?;
        info!(thread = self.index, ?topics, "stream thread started");
        self.shared
            .set_thread_state(self.index, ThreadState::Rebalancing);

        let result = self.run_loop(&consumer);
        let close_result = self.close(&consumer, result.is_ok());
        result.and(close_result)
    }

    fn run_loop(&self, consumer: &BaseConsumer<RebalanceContext>) -> Result<(), String> {
        let config = &self.shared.config;
        let mut last_commit = Instant::now();
        let mut last_memory_sample = Instant::now();
        let mut paused: Vec<(String, i32)> = Vec::new();
        let mut outputs: Outputs = Vec::new();
        let max_buffer = config.buffered_records_per_partition.max(1);
        while !self.shutdown.load(Ordering::Relaxed) {
            // Fetch: one blocking poll, then drain what is already there.
            let mut timeout = config.poll;
            let mut batch: Vec<RawRecord> = Vec::new();
            while batch.len() < 10_000 {
                let Some(msg) = consumer.poll(timeout) else {
                    break;
                };
                timeout = Duration::ZERO;
                let msg = msg.map_err(|e| format!("consuming: {e}"))?;
                batch.push(to_raw(&msg));
            }
            if !batch.is_empty() {
                let mut guard = consumer
                    .context()
                    .core
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let Some(core) = guard.as_mut() else { break };
                for raw in batch {
                    let owner = core.tasks.values_mut().find(|t| {
                        t.inputs()
                            .any(|(tt, p)| tt == raw.topic && p == raw.partition)
                    });
                    match owner {
                        Some(task) => task.enqueue(raw),
                        None => {
                            debug!(topic = %raw.topic, partition = raw.partition, "record for a partition without a task (revoked meanwhile)")
                        }
                    }
                }
            }
            if let Some(f) = consumer
                .context()
                .failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                return Err(f);
            }

            let mut guard = consumer
                .context()
                .core
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let Some(core) = guard.as_mut() else { break };
            let mut commit_requested = false;
            let lag_of = |topic: &str, partition: i32, fetched_next: Option<i64>| -> Option<i64> {
                let (low, high) = cached_watermarks(consumer, topic, partition)?;
                if high < 0 {
                    return None;
                }
                match fetched_next {
                    Some(next) => Some((high - next).max(0)),
                    None if low == high => Some(0),
                    None => None,
                }
            };
            let ids: Vec<String> = core.tasks.keys().cloned().collect();
            for id in &ids {
                let Some(task) = core.tasks.get_mut(id) else {
                    continue;
                };
                loop {
                    let started = Instant::now();
                    let step = task.process_next(config.max_task_idle, &lag_of, &mut outputs);
                    // Outputs of what was processed go out even if the next record fails.
                    for out in outputs.drain(..) {
                        send(&core.producer, &out)?;
                        task.metrics.produced.inc();
                    }
                    match step {
                        Ok(Some(_)) => {
                            task.metrics.processed.inc();
                            task.metrics
                                .latency
                                .observe(started.elapsed().as_secs_f64());
                        }
                        Ok(None) => break,
                        Err(failed) => {
                            let (raw, failure) = *failed;
                            self.handle_failure(&core.producer, task, &raw, failure)?;
                        }
                    }
                }
                task.wall_clock_punctuate(&mut outputs)
                    .map_err(|e| format!("task {}: {e}", task.id))?;
                for out in outputs.drain(..) {
                    send(&core.producer, &out)?;
                    task.metrics.produced.inc();
                }
                commit_requested |= task.take_commit_request();
            }
            core.producer.poll(Duration::ZERO);
            if let Some(f) = core
                .producer
                .context()
                .failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                return Err(f);
            }
            // A task that waits for another partition (KIP-695) leaves records queued: stop
            // fetching a partition whose queue is full, resume it once it has drained.
            for task in core.tasks.values() {
                for (topic, partition) in task.inputs() {
                    let key = (topic.to_owned(), partition);
                    if task.buffered(topic, partition) >= max_buffer && !paused.contains(&key) {
                        let mut tpl = TopicPartitionList::new();
                        tpl.add_partition(topic, partition);
                        if consumer.pause(&tpl).is_ok() {
                            paused.push(key);
                        }
                    }
                }
            }
            paused.retain(|(topic, partition)| {
                let still_full = core
                    .tasks
                    .values()
                    .any(|t| t.buffered(topic, *partition) >= max_buffer / 2);
                if !still_full {
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition(topic, *partition);
                    let _ = consumer.resume(&tpl);
                }
                still_full
            });
            let committing = commit_requested || last_commit.elapsed() >= config.commit_interval;
            if committing || last_memory_sample.elapsed() >= Duration::from_secs(1) {
                last_memory_sample = Instant::now();
                if let Some(state) = &self.shared.stores {
                    let m = &self.shared.metrics;
                    m.rocksdb_block_cache_bytes
                        .set(state.budget.cache_usage() as i64);
                    m.rocksdb_memtable_bytes
                        .set(state.budget.write_buffer_usage() as i64);
                }
            }
            if committing {
                let high = |topic: &str, partition: i32| {
                    cached_watermarks(consumer, topic, partition)
                        .map(|(_, h)| h)
                        .filter(|h| *h >= 0)
                };
                for task in core.tasks.values() {
                    task.update_lag(&high);
                }
                let started = Instant::now();
                let n = commit(consumer, core, config, false)?;
                self.shared
                    .metrics
                    .commit_latency
                    .observe(started.elapsed().as_secs_f64());
                if n > 0 {
                    debug!(thread = self.index, partitions = n, "committed");
                }
                last_commit = Instant::now();
            }
        }
        Ok(())
    }

    /// Applies the configured handler to a failed record; an error return stops the thread.
    fn handle_failure(
        &self,
        producer: &BaseProducer<DeliveryContext>,
        task: &mut Task,
        raw: &RawRecord,
        failure: RecordFailure,
    ) -> Result<(), String> {
        let config = &self.shared.config;
        let handler = match failure.kind {
            FailureKind::Deserialization => config.deserialization_handler,
            FailureKind::Processing => config.processing_handler,
        };
        if let Some(dlq) = &config.dead_letter_topic {
            send(producer, &super::dead_letter(dlq, raw, &failure))?;
            producer
                .flush(Duration::from_secs(30))
                .map_err(|e| format!("writing to the dead-letter topic {dlq}: {e}"))?;
        }
        match handler {
            ErrorHandler::LogAndContinue => {
                warn!(
                    task = %failure.task, topic = %failure.topic, partition = failure.partition, offset = failure.offset,
                    error = %failure.message, "{} failed; skipping the record (log-and-continue)", failure.kind
                );
                task.metrics.dropped.inc();
                task.skip(raw);
                Ok(())
            }
            ErrorHandler::Fail => {
                self.shared.record_failure(&failure);
                Err(failure.to_string())
            }
        }
    }

    fn close(&self, consumer: &BaseConsumer<RebalanceContext>, clean: bool) -> Result<(), String> {
        let mut guard = consumer
            .context()
            .core
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut result = Ok(());
        if let Some(core) = guard.as_mut() {
            // After a failure nothing is committed: the failed record and those after it are read
            // again on restart, never skipped.
            if clean {
                result = commit(consumer, core, &self.shared.config, true).map(|_| ());
            } else if let Err(e) = core.producer.flush(Duration::from_secs(10)) {
                // Outputs of records processed before the failure still go out; their offsets are
                // not committed, so they are processed (and written) again after a restart.
                warn!(thread = self.index, error = %e, "flushing outputs after a failure");
            }
            for task in core.tasks.values_mut() {
                task.close();
            }
            core.tasks.clear();
            self.shared.publish_tasks(self.index, Vec::new());
        }
        *guard = None;
        drop(guard);
        // A static member does not leave the group on close: its restart takes its place at once.
        consumer.unsubscribe();
        result
    }
}
