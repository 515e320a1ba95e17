//! A stream thread: one consumer and one producer, the tasks of the partitions assigned to it,
//! and a synchronous poll → process → produce → commit loop (Kafka Streams' `StreamThread`).
//!
//! Under exactly_once_v2 the producer is transactional (`transactional.id` per instance and
//! thread, Kafka Streams' EOS v2): a transaction begins with the first output after a commit, and
//! outputs, repartition records and changelog records all go through it; a commit sends the
//! consumed offsets to the transaction with the consumer's group metadata and commits it, with no
//! separate offset commit. A transaction that fails (a send, a delivery, the commit itself, or a
//! fenced producer) is aborted where possible, the thread's tasks are closed dirty with their
//! stores wiped, and they start again from the last committed offsets with their stores restored
//! from the changelogs, which read_committed makes consistent with those offsets.
//!
//! The thread owns the loop; its tasks live in the [`TaskManager`], its producer is the
//! [`StreamsProducer`], and partitions come and go through the consumer's [`RebalanceContext`].

use freshet_topology::sync::Unpoisoned;
use std::cell::OnceCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers as _, Message};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use super::client_stats;
use super::error::{ErrorClass, RuntimeError};
use super::failure::Failure;
use super::positions::{COMMITTED_TIMEOUT, committed_offsets, reset_offset};
use super::producer::StreamsProducer;
use super::rebalance::{Core, RebalanceContext, topic_partitions};
use super::refusal::{Origin, ProductionHandler};
use super::repeats::Repeats;
use super::streams_group::GroupMember;
use super::task::{FailureKind, Outputs, RawRecord, RecordFailure, Task};
use super::task_manager::TaskManager;
use super::task_timeout::TaskTimeout;
use super::{Shared, ThreadState};
use crate::config::{ErrorHandler, ProcessingGuarantee};
use crate::processor::Headers;
use crate::topology::Topology;

/// Recoveries from failed transactions within [`RECOVERY_WINDOW`] after which the thread gives up:
/// a failure that recurs at once (two live instances with one transactional id fencing each
/// other, a broker refusing transactions) would otherwise loop forever.
const MAX_RECOVERIES: usize = 5;
const RECOVERY_WINDOW: Duration = Duration::from_secs(60);
/// Aborts for records the broker refused, within [`RECOVERY_WINDOW`]: each teaches which record
/// to send alone or hand to the handler (see `refusal`), so they get a budget of their own.
const MAX_REFUSAL_RECOVERIES: usize = 50;

/// Notes one more recovery in `recent`; false once more than `max` fell within
/// [`RECOVERY_WINDOW`] (the failure recurs at once: give up).
fn within_budget(recent: &mut Vec<Instant>, max: usize) -> bool {
    recent.retain(|t| t.elapsed() < RECOVERY_WINDOW);
    recent.push(Instant::now());
    recent.len() <= max
}

/// How soon work that failed for a retriable reason (a commit while the brokers are away) is
/// tried again.
const RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// How often the same retriable consumer error is logged again while it goes on.
const CONSUMER_ERROR_LOG_EVERY: Duration = Duration::from_secs(30);

/// The consumer's retriable errors (a broker unreachable, every broker down), logged when they
/// begin and every [`CONSUMER_ERROR_LOG_EVERY`] while they go on, not once a poll.
struct ConsumerErrors(Repeats);

impl Default for ConsumerErrors {
    fn default() -> Self {
        ConsumerErrors(Repeats::every(CONSUMER_ERROR_LOG_EVERY))
    }
}

impl ConsumerErrors {
    fn note(&mut self, thread: usize, error: &rdkafka::error::KafkaError) {
        let text = error.to_string();
        if self.0.should_log(&text) {
            warn!(thread, error = %text, "the consumer reports a transient error; waiting for the brokers (librdkafka reconnects by itself)");
        }
    }
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

pub(crate) struct StreamThread {
    pub index: usize,
    pub shared: Arc<Shared>,
    pub topology: Arc<Topology>,
    pub shutdown: Arc<AtomicBool>,
    /// Set when the loop ends while commits fail for want of brokers: the close then commits
    /// and aborts nothing (each would wait out its timeout in vain); what is left open is
    /// aborted by the next start's `init_transactions`, or by the coordinator after
    /// `transaction.timeout.ms`.
    pub brokers_away: std::cell::Cell<bool>,
}

impl StreamThread {
    /// Kafka Streams' client id prefix: `client.id` if set, else the application id.
    fn client_prefix(&self) -> &str {
        &self.shared.membership().thread_client_prefix
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
            .set("enable.partition.eof", "false")
            .set(
                "statistics.interval.ms",
                client_stats::DEFAULT_STATISTICS_INTERVAL_MS,
            );
        // Range assignment puts partition N of every co-partitioned topic on one member.
        match self.shared.group_protocol() {
            // `auto` became classic or streams when the application started.
            crate::config::GroupProtocol::Classic | crate::config::GroupProtocol::Auto => {
                cfg.set("partition.assignment.strategy", "range");
            }
            crate::config::GroupProtocol::Consumer => {
                cfg.set("group.protocol", "consumer")
                    .set("group.remote.assignor", "range");
            }
            // The consumer joins no group: the thread's streams-group member does, and the
            // consumer fetches what it is assigned (group.id stays, for reading committed offsets).
            crate::config::GroupProtocol::Streams => {}
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
            .set("partitioner", "murmur2_random")
            .set(
                "statistics.interval.ms",
                client_stats::DEFAULT_STATISTICS_INTERVAL_MS,
            );
        for (k, v) in &c.producer {
            cfg.set(k, v);
        }
        if let Some(instance) = self.transactional_instance() {
            cfg.set(
                "transactional.id",
                crate::config::transactional_id(&c.application_id, instance, self.index + 1),
            );
        }
        cfg
    }

    /// The instance part of the transactional id; `None` unless exactly_once_v2.
    fn transactional_instance(&self) -> Option<&str> {
        (self.shared.config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2)
            .then_some(self.shared.transactional_instance.as_deref())
            .flatten()
    }

    /// Runs until shutdown or a failure; returns the failure, if any.
    pub fn run(self) -> Result<(), RuntimeError> {
        let context = RebalanceContext::new(self.index, self.shared.clone());
        let exactly_once =
            self.shared.config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2;
        if exactly_once && self.transactional_instance().is_none() {
            return Err(RuntimeError::Other(
                "exactly_once_v2 without a transactional instance id".to_owned(),
            ));
        }
        // Under exactly-once, initialised before the consumer joins: by the time tasks restore,
        // a dead predecessor's open transaction is aborted and read_committed reads past it.
        let handler = ProductionHandler {
            handler: self.shared.config.production_handler,
            dead_letter: self.shared.config.dead_letter_topic.clone(),
            dropped: self.shared.metrics.records_dropped.clone(),
            dead_letters: self.shared.metrics.dead_letter_records.clone(),
        };
        let output = StreamsProducer::new(
            self.producer_config(),
            Some(self.shared.metrics.kafka.clone()),
            exactly_once,
            self.shared.config.task_timeout,
            self.shutdown.clone(),
            handler,
        )?;
        if exactly_once {
            info!(thread = self.index, transactional_id = ?self.producer_config().get("transactional.id"), "transactional producer initialised");
        }
        let core = Core {
            tasks: TaskManager::new(self.index, self.shared.clone(), self.topology.clone()),
            output,
            group: None,
        };
        let mut consumer = self.join(context, core)?;
        info!(thread = self.index, "stream thread started");

        let (mut recoveries, mut refusals): (Vec<Instant>, Vec<Instant>) = Default::default();
        let result = loop {
            match self.run_loop(&consumer) {
                Ok(()) => break Ok(()),
                Err(Failure::Fatal(e)) if self.fenced_by_itself(&e) => {
                    if !within_budget(&mut recoveries, MAX_RECOVERIES) {
                        break Err(e);
                    }
                    consumer = match self.rejoin(consumer, &e) {
                        Ok(c) => c,
                        // Closing meanwhile: the tasks are closed already.
                        Err(RuntimeError::Interrupted { .. }) => return Ok(()),
                        Err(e) => return Err(e),
                    };
                }
                Err(Failure::Fatal(e)) => break Err(e),
                // The loop retries commits itself; one that escapes it is handled as a failed
                // transaction: start again from the last commit.
                Err(Failure::Transaction(cause) | Failure::Retry(cause)) => {
                    let (recoveries, max) = if cause.is_refusal() {
                        (&mut refusals, MAX_REFUSAL_RECOVERIES)
                    } else {
                        (&mut recoveries, MAX_RECOVERIES)
                    };
                    if !within_budget(recoveries, max) {
                        break Err(RuntimeError::Other(format!(
                            "transactions failed {} times within {}s; the last: {cause}",
                            recoveries.len(),
                            RECOVERY_WINDOW.as_secs()
                        )));
                    }
                    match self.recover(&consumer, &cause) {
                        Ok(()) => {}
                        // The committed offsets could not be read (the brokers still away, or
                        // the aborted transaction's offsets not settled yet): a new consumer
                        // fetches them itself once its partitions come back.
                        Err(e) if e.class() == ErrorClass::Retriable => {
                            consumer = match self.rejoin(consumer, &e) {
                                Ok(c) => c,
                                Err(RuntimeError::Interrupted { .. }) => return Ok(()),
                                Err(e) => return Err(e),
                            };
                        }
                        Err(e) => break Err(e),
                    }
                }
            }
        };
        // Retries given up for a close are no failure: what was not committed is processed again
        // after the next start.
        let result = match result {
            Err(RuntimeError::Interrupted { what, source }) => {
                warn!(thread = self.index, %what, error = %source, "closing while the brokers are away");
                Ok(())
            }
            other => other,
        };
        let close_result = if self.brokers_away.get() {
            warn!(
                thread = self.index,
                "closing while the brokers are away: nothing more is committed; what was processed since the last commit is processed again after the next start"
            );
            self.close(&consumer, false)
        } else {
            self.close(&consumer, result.is_ok())
        };
        result.and(close_result)
    }

    /// Whether the thread's tasks come from a streams group (group.protocol=streams).
    fn streams_group(&self) -> bool {
        self.shared.group_protocol() == crate::config::GroupProtocol::Streams
    }

    /// Creates the thread's consumer around `core` (its tasks and producer) and subscribes it to
    /// the source topics; partitions come with the first polls. Under group.protocol=streams the
    /// consumer subscribes to nothing: the thread's streams-group member joins with the first
    /// heartbeat of the loop, and the partitions of the tasks it is assigned are `assign`ed.
    fn join(
        &self,
        context: RebalanceContext,
        mut core: Core,
    ) -> Result<BaseConsumer<RebalanceContext>, RuntimeError> {
        let consumer: BaseConsumer<RebalanceContext> = self
            .consumer_config()
            .create_with_context(context)
            .map_err(|e| RuntimeError::kafka("creating the consumer", e))?;
        if self.streams_group() {
            // Joining again (after a fenced consumer or a failed transaction): the old member
            // leaves first, so that a static member's instance id is free for the new one
            // (else the coordinator refuses it until the old one's session times out).
            if let Some(old) = core.group.as_mut() {
                old.leave();
            }
            core.group = Some(GroupMember::new(self.index, &self.shared, &self.topology));
            *consumer.context().core.lock_unpoisoned() = Some(core);
            self.shared
                .set_thread_state(self.index, ThreadState::Rebalancing);
            return Ok(consumer);
        }
        *consumer.context().core.lock_unpoisoned() = Some(core);
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
            .map_err(|e| RuntimeError::kafka(format!("subscribing to {topics:?}"), e))?;
        debug!(thread = self.index, ?topics, "subscribed");
        self.shared
            .set_thread_state(self.index, ThreadState::Rebalancing);
        Ok(consumer)
    }

    /// Whether `error` is librdkafka fencing this thread's static member after the group
    /// coordinator went away: when its session times out locally (the broker down longer than
    /// `session.timeout.ms`), librdkafka rejoins under a new member id, and the broker then
    /// fences the old one as "another consumer with the same group.instance.id" — a fatal
    /// consumer error, though no other instance exists (pods have unique names). Another
    /// instance really holding the id would fence this one again and again: [`MAX_RECOVERIES`]
    /// stops that.
    fn fenced_by_itself(&self, error: &RuntimeError) -> bool {
        self.shared.instance_base.is_some()
            && matches!(error, RuntimeError::Kafka { source, .. }
                if source.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::FencedInstanceId))
    }

    /// Replaces a consumer that librdkafka failed (see [`Self::fenced_by_itself`]): its tasks
    /// close as after a failed transaction (dirty, stores wiped under exactly-once, as Kafka
    /// Streams closes migrated tasks), and a new consumer with the same static member id joins
    /// the group, taking its partitions back.
    fn rejoin(
        &self,
        failed: BaseConsumer<RebalanceContext>,
        cause: &RuntimeError,
    ) -> Result<BaseConsumer<RebalanceContext>, RuntimeError> {
        warn!(thread = self.index, %cause, "closing the tasks and joining the group again with a new consumer (the old one was fenced after losing the group coordinator, or cannot read its committed offsets)");
        self.shared.metrics.rebalances.inc();
        let core = failed.context().core.lock_unpoisoned().take();
        drop(failed);
        let Some(mut core) = core else {
            return Err(RuntimeError::Other(
                "the failed consumer had no tasks to hand over".to_owned(),
            ));
        };
        core.output.reset(self.index)?;
        if core.output.exactly_once() {
            core.tasks.close_all_dirty()?;
        } else {
            // At least once: their records since the last commit are processed again.
            core.tasks.close_all();
        }
        core.tasks.publish();
        self.join(RebalanceContext::new(self.index, self.shared.clone()), core)
    }

    /// Recovers from a failed transaction as Kafka Streams does from a corrupted or migrated
    /// task under exactly-once: the transaction is aborted (or the producer replaced), every task
    /// of the thread is closed dirty with its stores wiped (they hold the aborted writes), and
    /// the tasks of the current assignment start again from the committed offsets, their stores
    /// restored from the changelogs.
    fn recover(
        &self,
        consumer: &BaseConsumer<RebalanceContext>,
        cause: &RuntimeError,
    ) -> Result<(), RuntimeError> {
        error!(
            thread = self.index,
            %cause,
            "exactly-once transaction failed: aborting it, closing the tasks dirty, wiping their stores and restarting them from the last commit"
        );
        self.shared.metrics.rebalances.inc();
        let context = consumer.context();
        let mut guard = context.core.lock_unpoisoned();
        let Some(core) = guard.as_mut() else {
            return Ok(());
        };
        core.output.reset(self.index)?;
        core.tasks.close_all_dirty()?;
        context.recover.lock_unpoisoned().take();
        let assignment = consumer
            .assignment()
            .map_err(|e| RuntimeError::kafka("reading the assignment", e))?;
        let committed = committed_offsets(consumer, &assignment, COMMITTED_TIMEOUT)?;
        // Records fetched after the last commit are fetched again; a partition without a
        // committed offset starts where auto.offset.reset says.
        let reset = reset_offset(&self.shared.config);
        let assigned = topic_partitions(&assignment);
        if !assigned.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (topic, partition) in &assigned {
                let offset = committed
                    .get(&(topic.clone(), *partition))
                    .map_or(reset, |o| Offset::Offset(*o));
                tpl.add_partition_offset(topic, *partition, offset)
                    .map_err(|e| RuntimeError::kafka("listing the offsets to seek to", e))?;
            }
            let sought = consumer
                .seek_partitions(tpl, Duration::from_secs(10))
                .map_err(|e| RuntimeError::kafka("seeking to the committed offsets", e))?;
            for e in sought.elements() {
                e.error().map_err(|err| {
                    RuntimeError::kafka(
                        format!(
                            "seeking {}-{} to the committed offset",
                            e.topic(),
                            e.partition()
                        ),
                        err,
                    )
                })?;
            }
            // The loop forgot which partitions it had paused; every task starts empty anyway.
            consumer
                .resume(&assignment)
                .map_err(|e| RuntimeError::kafka("resuming the partitions", e))?;
        }
        context.create_tasks(core, &assigned, &committed);
        core.tasks.pause_restoring(consumer);
        info!(
            thread = self.index,
            tasks = core.tasks.len(),
            "tasks restarted from the last commit"
        );
        Ok(())
    }

    /// Reads again the committed offsets the rebalance callback could not, when due, and
    /// starts the partitions there (see `positions`); true when it restarted them.
    fn resolve_positions(
        &self,
        consumer: &BaseConsumer<RebalanceContext>,
    ) -> Result<bool, Failure> {
        let context = consumer.context();
        let mut unknown = context.unknown_positions.lock_unpoisoned();
        let Some(positions) = unknown.as_mut().filter(|u| u.due()) else {
            return Ok(false);
        };
        let resolved = positions
            .resolve(
                self.index,
                consumer,
                &self.shared.config,
                self.shared.group_protocol(),
            )
            .map_err(Failure::Retry)?;
        if resolved {
            *unknown = None;
        }
        Ok(resolved)
    }

    fn run_loop(&self, consumer: &BaseConsumer<RebalanceContext>) -> Result<(), Failure> {
        let config = &self.shared.config;
        let mut last_commit = Instant::now();
        let mut last_memory_sample = Instant::now();
        let mut paused: Vec<(String, i32)> = Vec::new();
        let mut outputs: Outputs = Vec::new();
        let max_buffer = config.buffered_records_per_partition.max(1);
        let mut commit_timeout = TaskTimeout::new("committing", config.task_timeout);
        let mut consumer_errors = ConsumerErrors::default();
        while !self.shutdown.load(Ordering::Relaxed) {
            // Fetch: one blocking poll, then drain what is already there.
            let mut timeout = config.poll;
            let mut batch: Vec<RawRecord> = Vec::new();
            while batch.len() < 10_000 {
                let Some(msg) = consumer.poll(timeout) else {
                    break;
                };
                timeout = Duration::ZERO;
                match msg {
                    Ok(msg) => batch.push(to_raw(&msg)),
                    Err(e) if ErrorClass::of_consumer(&e) == ErrorClass::Retriable => {
                        // The Java consumer rides these out inside poll: so does the thread.
                        consumer_errors.note(self.index, &e);
                        break;
                    }
                    Err(e) => {
                        let topics: Vec<String> = self
                            .topology
                            .source_topics()
                            .iter()
                            .map(|t| t.resolve(&config.application_id))
                            .collect();
                        let error =
                            RuntimeError::consuming(&config.application_id, &topics, e, |e| {
                                RuntimeError::kafka("consuming", e)
                            });
                        return Err(Failure::Fatal(error));
                    }
                }
            }
            if !batch.is_empty() {
                let mut guard = consumer.context().core.lock_unpoisoned();
                let Some(core) = guard.as_mut() else { break };
                for raw in batch {
                    match core.tasks.for_partition(&raw.topic, raw.partition) {
                        Some(task) => task.enqueue(raw),
                        // Fetched just before its restoring task's partition was paused.
                        None => {
                            if let Some(raw) = core.tasks.hold(raw) {
                                debug!(topic = %raw.topic, partition = raw.partition, "record for a partition without a task (revoked meanwhile)")
                            }
                        }
                    }
                }
            }
            if let Some(f) = consumer.context().failure.lock_unpoisoned().take() {
                return Err(Failure::Fatal(f));
            }
            if let Some(cause) = consumer.context().recover.lock_unpoisoned().take() {
                return Err(Failure::Transaction(cause));
            }
            let restarted = self.resolve_positions(consumer)?;
            if restarted {
                // The restart resumed every partition: the loop pauses the full ones again.
                paused.clear();
            }

            let mut guard = consumer.context().core.lock_unpoisoned();
            let Some(core) = guard.as_mut() else { break };
            if restarted {
                core.tasks.restart_restoring(consumer);
            }
            // Tasks whose stores the state updater restored meanwhile start now.
            let started = core
                .tasks
                .check_state_updater(consumer)
                .map_err(Failure::Fatal)?;
            if started && let Some(group) = core.group.as_mut() {
                // The assignment's acknowledgement reported none of them: they did not run yet.
                group.report_task_offsets(consumer, &core.tasks);
            }
            if let Some(group) = core.group.as_mut() {
                group.maintain(consumer, &mut core.tasks, &mut core.output, &self.shared)?;
                // Standbys apply what their consumer fetched meanwhile, without waiting.
                core.tasks.standbys.update();
            }
            let mut commit_requested = false;
            let exactly_once = core.output.exactly_once();
            let positions: OnceCell<Option<TopicPartitionList>> = OnceCell::new();
            let lag_of = |topic: &str, partition: i32, fetched_next: Option<i64>| -> Option<i64> {
                let (low, high) = cached_watermarks(consumer, topic, partition)?;
                if high < 0 {
                    return None;
                }
                // Under exactly-once a topic written by transactions ends in a commit marker that
                // is never handed out as a record: the consumer's position steps past it, the
                // offset after the last record fetched does not, and would look one behind forever.
                let fetched_next = if exactly_once {
                    positions
                        .get_or_init(|| consumer.position().ok())
                        .as_ref()
                        .and_then(|tpl| tpl.find_partition(topic, partition))
                        .and_then(|e| e.offset().to_raw())
                        .filter(|o| *o >= 0)
                        .max(fetched_next)
                } else {
                    fetched_next
                };
                match fetched_next {
                    Some(next) => Some((high - next).max(0)),
                    None if low == high => Some(0),
                    None => None,
                }
            };
            // A transaction whose commit timed out takes nothing more until the commit goes
            // through: records wait in the tasks' queues (fetching pauses when they fill).
            let ids = if core.output.is_committing() {
                Vec::new()
            } else {
                core.tasks.ids()
            };
            for id in &ids {
                let Some(task) = core.tasks.get_mut(id) else {
                    continue;
                };
                let task_id: Arc<str> = Arc::from(id.as_str());
                loop {
                    let started = task.metrics.sampling().then(Instant::now);
                    let step = task.process_next(config.max_task_idle, &lag_of, &mut outputs);
                    // Outputs of what was processed go out even if the next record fails; each
                    // knows its input record, for production.exception.handler.
                    let (step, origin) = Origin::of_step(&task_id, step);
                    for out in outputs.drain(..) {
                        core.output.send(&out, &origin)?;
                        task.metrics.produced.inc();
                    }
                    match step {
                        Ok(true) => task.metrics.processed(started),
                        Ok(false) => break,
                        Err(failed) => {
                            let (raw, failure) = *failed;
                            self.handle_failure(&mut core.output, task, &raw, failure, &origin)?;
                        }
                    }
                }
                task.wall_clock_punctuate(&mut outputs)
                    .map_err(|e| e.in_task(&task.id))?;
                if !outputs.is_empty() {
                    let origin = Origin::new(&task_id, None);
                    for out in outputs.drain(..) {
                        core.output.send(&out, &origin)?;
                        task.metrics.produced.inc();
                    }
                }
                commit_requested |= task.take_commit_request();
            }
            core.output.poll()?;
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
                if core.tasks.is_restoring(topic, *partition) {
                    // Stays paused for its restoring task, which resumes it once created.
                    return false;
                }
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
            let committing = commit_requested
                || last_commit.elapsed() >= config.commit_interval
                || (commit_timeout.is_failing() && last_commit.elapsed() >= RETRY_BACKOFF);
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
                let member = core.group.as_mut().map(|g| &mut g.member);
                match core
                    .tasks
                    .commit(consumer, &mut core.output, config, false, member)
                {
                    Ok(n) => {
                        commit_timeout.succeeded();
                        self.shared
                            .metrics
                            .commit_latency
                            .observe(started.elapsed().as_secs_f64());
                        if n > 0 {
                            debug!(thread = self.index, partitions = n, "committed");
                        }
                    }
                    // Tried again after RETRY_BACKOFF, until task.timeout.ms.
                    Err(Failure::Retry(e)) => commit_timeout.retry(e)?,
                    Err(failure) => return Err(failure),
                }
                last_commit = Instant::now();
            }
        }
        self.brokers_away.set(commit_timeout.is_failing());
        Ok(())
    }

    /// Applies the configured handler to a failed record; an error return stops the thread.
    fn handle_failure(
        &self,
        output: &mut StreamsProducer,
        task: &mut Task,
        raw: &RawRecord,
        failure: RecordFailure,
        origin: &Arc<Origin>,
    ) -> Result<(), Failure> {
        let config = &self.shared.config;
        let handler = match failure.kind {
            FailureKind::Deserialization => config.deserialization_handler,
            FailureKind::Processing => config.processing_handler,
            FailureKind::Production => config.production_handler,
        };
        if let Some(dlq) = &config.dead_letter_topic {
            output.write_dead_letter(&super::dead_letter(dlq, raw, &failure), origin)?;
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
                Err(Failure::Fatal(RuntimeError::Record(failure)))
            }
        }
    }

    fn close(
        &self,
        consumer: &BaseConsumer<RebalanceContext>,
        clean: bool,
    ) -> Result<(), RuntimeError> {
        let mut guard = consumer.context().core.lock_unpoisoned();
        let mut result = Ok(());
        if let Some(core) = guard.as_mut() {
            // After a failure nothing is committed: the failed record and those after it are read
            // again on restart, never skipped.
            if clean {
                let member = core.group.as_mut().map(|g| &mut g.member);
                match core.tasks.commit(
                    consumer,
                    &mut core.output,
                    &self.shared.config,
                    true,
                    member,
                ) {
                    Ok(_) => {}
                    Err(Failure::Fatal(e)) if !core.output.exactly_once() => result = Err(e),
                    Err(Failure::Fatal(e) | Failure::Transaction(e) | Failure::Retry(e)) => {
                        // Nothing of the transaction is visible and no checkpoint was written:
                        // the next start restores from the changelogs and redoes this work.
                        warn!(thread = self.index, error = %e, "the last transaction failed on close; aborting it");
                        if let Err(e) = core.output.reset(self.index) {
                            warn!(thread = self.index, error = %e, "aborting the last transaction");
                        }
                    }
                }
            } else if core.output.exactly_once() {
                // Outputs of records processed before the failure are aborted with their offsets:
                // they are processed (and written) again after a restart, exactly once.
                if core.output.in_transaction && !self.brokers_away.get() {
                    core.output.in_transaction = false;
                    // The abort waits for the delivery reports of what it purges, which only
                    // polls serve: without them it would time out.
                    let deadline = Instant::now() + Duration::from_secs(1);
                    while core.output.producer.in_flight_count() > 0 && Instant::now() < deadline {
                        core.output.producer.poll(Duration::from_millis(5));
                    }
                    if let Err(e) = core
                        .output
                        .producer
                        .abort_transaction(Duration::from_secs(10))
                    {
                        warn!(thread = self.index, error = %e, "aborting the open transaction after a failure");
                    }
                }
            } else if let Err(e) =
                super::flush::flush(&core.output.producer, Duration::from_secs(10))
            {
                // Outputs of records processed before the failure still go out; their offsets are
                // not committed, so they are processed (and written) again after a restart.
                warn!(thread = self.index, error = %e, "flushing outputs after a failure");
            }
            core.tasks.close_all();
            core.tasks.publish();
            if let Some(group) = core.group.as_mut() {
                group.leave();
            }
        }
        *guard = None;
        drop(guard);
        // A static member does not leave the group on close: its restart takes its place at once.
        consumer.unsubscribe();
        result
    }
}
