//! Standby tasks (Kafka Streams' `StandbyTask`): copies of another instance's task state, kept
//! current from the task's changelogs so that this instance can take the task over without a
//! full restore. Under `group.protocol=streams` the broker assigns them (the group's
//! `streams.num.standby.replicas`), and warm-up tasks too, which are kept the same way.
//!
//! A thread's standbys share one consumer of their own, which is `assign`ed the changelog
//! partitions (never subscribed: it joins no group), with the restore consumer's properties
//! (`read_committed` under exactly_once_v2: a standby holds committed data only) and
//! `auto.offset.reset=error` (a changelog that lost the records after a standby's position means
//! its state is wiped and read again from the changelog's start). The stream thread calls
//! [`StandbyTasks::update`] once per loop: it applies what the consumer has fetched meanwhile,
//! without waiting. Standbys checkpoint with the active tasks' commits, every 10 000 records
//! applied (Kafka Streams' threshold), under exactly-once too, and always when they close, so a
//! revoked standby leaves a checkpoint the next owner of the task starts from.
//!
//! A standby that becomes active is promoted ([`StandbyTask::promote`]): its open stores are
//! caught up from its offsets to the changelog's end (only what it had not read yet, through the
//! ordinary restore path and its metrics; nothing at all when its consumer had passed the end of
//! its changelogs) and handed to the new active task.
//!
//! Java's counterparts: `StandbyTask`, `StoreChangelogReader` in its standby mode, and
//! `TaskManager.handleAssignment`'s standby side.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::Shared;
use super::error::{Corruption, CorruptionReason, ErrorClass, RestoreError};
use super::repeats::Repeats;
use super::restore::read::{self, Patience};
use super::restore::{
    MAX_WIPES, RestoredStores, TaskContext, open_and_restore, open_stores, open_task_directory,
    restore_stores,
};
use crate::config::ProcessingGuarantee;
use crate::state::{Checkpoint, Offsets, StoreId, TaskDirectory, TaskStores};
use crate::topology::{SubTopology, Topology};

/// A changelog record as the stores apply it: key, value (`None`: deleted), timestamp.
type Changelog = (Vec<u8>, Option<Vec<u8>>, i64);

/// At most this many changelog records are applied per [`StandbyTasks::update`], so a standby
/// far behind does not hold up the thread's active tasks.
const UPDATE_BATCH: usize = 10_000;
/// Records applied to a standby after which a commit also checkpoints it (as active tasks).
const CHECKPOINT_AFTER_RECORDS: u64 = 10_000;
/// How often the same standby error is logged again while it goes on.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(30);

/// One standby task: its open stores, the lock on its directory and the offset of the last
/// changelog record each store reflects.
pub(crate) struct StandbyTask {
    /// `<subtopology>_<partition>`.
    pub id: String,
    subtopology: usize,
    partition: i32,
    stores: TaskStores,
    directory: Option<TaskDirectory>,
    offsets: Offsets,
    written_since_checkpoint: u64,
    /// Per logged store: its id, changelog topic and the counter of records applied to it.
    changelogs: Vec<(StoreId, String, Counter)>,
    /// Set when taken out for promotion: its consumer had passed the end of every changelog, so
    /// the stores hold all there is and need no catch-up.
    caught_up: bool,
}

impl StandbyTask {
    /// Flushes the stores and writes the checkpoint, when enough was applied since the last one
    /// or when `force`d.
    fn maybe_checkpoint(&mut self, force: bool) -> Result<(), crate::state::StateError> {
        let Some(dir) = &self.directory else {
            return Ok(());
        };
        let due = self.written_since_checkpoint >= CHECKPOINT_AFTER_RECORDS
            || (force && self.written_since_checkpoint > 0);
        if !due || self.offsets.is_empty() {
            return Ok(());
        }
        self.stores.flush()?;
        Checkpoint::in_directory(dir.path()).write(&self.offsets)?;
        self.written_since_checkpoint = 0;
        Ok(())
    }

    /// Each changelog partition with the position the standby's state reflects (the offset after
    /// the last record applied, 0 when none), for the task offsets the member reports.
    pub fn changelog_positions(&self) -> Vec<((String, i32), i64)> {
        self.changelogs
            .iter()
            .map(|(_, topic, _)| {
                let key = (topic.clone(), self.partition);
                let position = self.offsets.get(&key).map_or(0, |o| o + 1);
                (key, position)
            })
            .collect()
    }

    /// Turns the standby into the stores of an active task: what the changelogs hold beyond the
    /// standby's offsets is restored (counted in `freshet_restored_records`; no read when it was
    /// [`StandbyTasks::take_for_promotion`] found it caught up), then, under
    /// exactly-once, the checkpoint is deleted as for every active task. A standby whose state
    /// the changelog cannot continue is wiped and restored in full.
    pub fn promote(
        self,
        topology: &Topology,
        sub: &SubTopology,
        shared: &Shared,
    ) -> Result<RestoredStores, RestoreError> {
        let exactly_once = shared.config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2;
        let StandbyTask {
            id,
            partition,
            stores,
            directory,
            offsets,
            changelogs,
            caught_up,
            ..
        } = self;
        let Some(dir) = directory else {
            // No state: the task is created as any stateless one.
            return open_and_restore(topology, sub, partition, &id, shared, None, None);
        };
        let ctx = TaskContext {
            id: &id,
            partition,
            shared,
            cancel: None,
            progress: None,
        };
        let restored = if caught_up {
            // Nothing to read: the restore series still exist, at zero, as after any restore.
            for (store, _, _) in &changelogs {
                let (_, _, remaining) = shared.metrics.restore(&stores.def(*store).name, partition);
                remaining.set(0);
            }
            info!(task = %id, "standby task caught up: promoted without reading its changelogs");
            Ok((stores, offsets))
        } else {
            restore_stores(&ctx, stores, &offsets, true)
        };
        let (stores, offsets) = match restored {
            Ok(restored) => restored,
            Err(RestoreError::Corrupted(found)) => {
                shared
                    .metrics
                    .task_corrupted(&id, &found.store, found.reason.label())
                    .inc();
                warn!(task = %id, store = %found.store, reason = found.reason.label(), "standby task {id} corrupted at promotion: {found}; wiping its stores and restoring them from the changelog's start");
                dir.wipe()?;
                drop(dir);
                return open_and_restore(topology, sub, partition, &id, shared, None, None);
            }
            Err(e) => return Err(e),
        };
        if exactly_once {
            // As open_and_restore: from now on the stores take writes of transactions that may
            // abort, so a crash must find no checkpoint.
            Checkpoint::in_directory(dir.path())
                .delete()
                .map_err(|e| RestoreError::DeleteCheckpoint(Arc::new(e)))?;
        }
        Ok(RestoredStores {
            stores,
            directory: Some(dir),
            offsets,
            globals: shared.globals.get().cloned(),
            exactly_once,
        })
    }
}

/// The standby tasks of one stream thread and their consumer.
pub(crate) struct StandbyTasks {
    thread: usize,
    shared: Arc<Shared>,
    topology: Arc<Topology>,
    consumer: Option<BaseConsumer>,
    tasks: BTreeMap<String, StandbyTask>,
    /// (changelog topic, partition) → the standby and store it feeds.
    by_changelog: HashMap<(String, i32), (String, StoreId)>,
    errors: Repeats,
}

impl StandbyTasks {
    /// No standbys yet; the consumer is created with the first.
    pub fn new(thread: usize, shared: Arc<Shared>, topology: Arc<Topology>) -> Self {
        StandbyTasks {
            thread,
            shared,
            topology,
            consumer: None,
            tasks: BTreeMap::new(),
            by_changelog: HashMap::new(),
            errors: Repeats::every(ERROR_LOG_EVERY),
        }
    }

    /// The ids of the standby tasks, in order.
    pub fn ids(&self) -> Vec<String> {
        self.tasks.keys().cloned().collect()
    }

    /// Whether `id` is one of the standbys.
    pub fn contains(&self, id: &str) -> bool {
        self.tasks.contains_key(id)
    }

    /// Every standby, in id order.
    pub fn values(&self) -> impl Iterator<Item = &StandbyTask> {
        self.tasks.values()
    }

    /// The standbys' consumer, created on first use.
    fn consumer(&mut self) -> Result<&BaseConsumer, RestoreError> {
        let consumer = match self.consumer.take() {
            Some(c) => c,
            None => {
                let config = &self.shared.config;
                let mut consumer_config = super::assigning_consumer_config(
                    config,
                    &format!("StreamThread-{}-standby-consumer", self.thread + 1),
                    "restore-consumer",
                    &config.restore_consumer,
                );
                consumer_config.set("auto.offset.reset", "error");
                consumer_config.create().map_err(RestoreError::Consumer)?
            }
        };
        Ok(self.consumer.insert(consumer))
    }

    /// Opens standby `id` (partition `partition` of sub-topology `subtopology`) from its
    /// checkpoint and starts reading its changelogs after it.
    pub fn add(
        &mut self,
        id: &str,
        subtopology: usize,
        partition: i32,
    ) -> Result<(), RestoreError> {
        if self.tasks.contains_key(id) {
            return Ok(());
        }
        let topology = self.topology.clone();
        let Some(sub) = topology
            .subtopologies()
            .iter()
            .find(|s| s.id == subtopology)
        else {
            return Err(RestoreError::UnknownSubtopology(subtopology));
        };
        let task = self.open(id, sub, partition)?;
        let mut tpl = TopicPartitionList::new();
        for (store, topic, _) in &task.changelogs {
            let offset = task
                .offsets
                .get(&(topic.clone(), partition))
                .map_or(Offset::Beginning, |o| Offset::Offset(o + 1));
            tpl.add_partition_offset(topic, partition, offset)
                .map_err(RestoreError::Assign)?;
            self.by_changelog
                .insert((topic.clone(), partition), (id.to_owned(), *store));
        }
        if tpl.count() > 0 {
            self.consumer()?
                .incremental_assign(&tpl)
                .map_err(RestoreError::Assign)?;
        }
        info!(thread = self.thread, task = %id, from = ?task.offsets, "standby task created");
        self.tasks.insert(id.to_owned(), task);
        self.shared.metrics.standby_tasks.inc();
        Ok(())
    }

    /// Opens the stores of a standby; a checkpoint its changelog cannot continue from wipes
    /// them (as for active tasks), to be read from the changelog's start.
    fn open(
        &mut self,
        id: &str,
        sub: &SubTopology,
        partition: i32,
    ) -> Result<StandbyTask, RestoreError> {
        let shared = self.shared.clone();
        let topology = self.topology.clone();
        let defs = topology.stores_of(sub);
        let changelogs_of = |stores: &TaskStores| -> Vec<(StoreId, String, Counter)> {
            stores
                .changelogs()
                .map(|(store, topic)| {
                    let name = &stores.def(store).name;
                    (
                        store,
                        topic.to_owned(),
                        shared.metrics.standby_records(name, partition),
                    )
                })
                .collect()
        };
        if defs.is_empty() {
            let stores = TaskStores::new(partition, 0);
            return Ok(StandbyTask {
                id: id.to_owned(),
                subtopology: sub.id,
                partition,
                changelogs: changelogs_of(&stores),
                stores,
                directory: None,
                offsets: Offsets::new(),
                written_since_checkpoint: 0,
                caught_up: false,
            });
        }
        let (state, dir, checkpoint, mut checkpointed) = open_task_directory(
            &shared,
            id,
            "the standby reads its changelogs from the start",
        )?;
        let ctx = TaskContext {
            id,
            partition,
            shared: &shared,
            cancel: None,
            progress: None,
        };
        let mut wipes = 0;
        loop {
            let stores = open_stores(&ctx, &defs, &dir, state, &checkpoint, &mut checkpointed)?;
            match self.continuable(&ctx, &stores, &checkpointed) {
                Ok(offsets) => {
                    return Ok(StandbyTask {
                        id: id.to_owned(),
                        subtopology: sub.id,
                        partition,
                        changelogs: changelogs_of(&stores),
                        stores,
                        directory: Some(dir),
                        offsets,
                        written_since_checkpoint: 0,
                        caught_up: false,
                    });
                }
                Err(RestoreError::Corrupted(found)) => {
                    shared
                        .metrics
                        .task_corrupted(id, &found.store, found.reason.label())
                        .inc();
                    if wipes >= MAX_WIPES {
                        return Err(RestoreError::StillCorrupted { wipes, last: found });
                    }
                    wipes += 1;
                    warn!(task = id, store = %found.store, reason = found.reason.label(), "standby task {id} corrupted: {found}; wiping its stores and reading the changelog from its start");
                    drop(stores);
                    dir.wipe()?;
                    checkpointed.clear();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The checkpointed offsets of the persistent logged stores, each checked against its
    /// changelog's watermarks (in-memory stores start from the changelog's start).
    fn continuable(
        &mut self,
        ctx: &TaskContext<'_>,
        stores: &TaskStores,
        checkpointed: &Offsets,
    ) -> Result<Offsets, RestoreError> {
        let mut offsets = Offsets::new();
        let partition = ctx.partition;
        for (store, topic) in stores.changelogs() {
            let def = stores.def(store);
            let key = (topic.to_owned(), partition);
            let Some(&from) = checkpointed.get(&key).filter(|_| !def.in_memory) else {
                continue;
            };
            let what = format!("opening standby store '{}' of task {}", def.name, ctx.id);
            let patience = Patience {
                limit: ctx.shared.config.task_timeout,
                limit_name: "task.timeout.ms",
                what: &what,
                stop: None,
            };
            let (low, high) = read::watermarks(self.consumer()?, topic, partition, &patience)
                .map_err(RestoreError::EndOffset)?;
            let reason = if from >= high {
                Some(CorruptionReason::CheckpointBeyondEnd)
            } else if from + 1 < low {
                Some(CorruptionReason::OffsetOutOfRange)
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(RestoreError::Corrupted(Box::new(Corruption {
                    store: def.name.clone(),
                    topic: topic.to_owned(),
                    partition,
                    checkpointed: Some(from),
                    start: low,
                    end: high,
                    reason,
                })));
            }
            offsets.insert(key, from);
        }
        Ok(offsets)
    }

    /// Takes standby `id` out to promote it, noting whether its consumer has passed the end of
    /// each of its changelogs (then everything there is was applied: the stream thread polls and
    /// applies in one [`StandbyTasks::update`]), which spares the promotion any read.
    pub fn take_for_promotion(&mut self, id: &str) -> Option<StandbyTask> {
        let caught_up = self.caught_up(id);
        let mut task = self.remove(id)?;
        task.caught_up = caught_up;
        Some(task)
    }

    /// Whether the consumer's position in each changelog partition of standby `id` is at its
    /// end (under read_committed it stays before an open transaction, which must be read
    /// through once it ends).
    fn caught_up(&self, id: &str) -> bool {
        let (Some(task), Some(consumer)) = (self.tasks.get(id), &self.consumer) else {
            return false;
        };
        let Ok(positions) = consumer.position() else {
            return false;
        };
        !task.changelogs.is_empty()
            && task.changelogs.iter().all(|(_, topic, _)| {
                let position = positions
                    .find_partition(topic, task.partition)
                    .and_then(|e| e.offset().to_raw())
                    .filter(|o| *o >= 0);
                let high = consumer
                    .fetch_watermarks(topic, task.partition, Duration::from_secs(5))
                    .ok()
                    .map(|(_, high)| high);
                matches!((position, high), (Some(p), Some(h)) if p >= h)
            })
    }

    /// Takes standby `id` out (its changelogs no longer read), to promote or close it.
    pub fn remove(&mut self, id: &str) -> Option<StandbyTask> {
        let task = self.tasks.remove(id)?;
        self.by_changelog.retain(|_, (owner, _)| owner != id);
        let mut tpl = TopicPartitionList::new();
        for (_, topic, _) in &task.changelogs {
            tpl.add_partition(topic, task.partition);
        }
        if tpl.count() > 0
            && let Some(consumer) = &self.consumer
            && let Err(e) = consumer.incremental_unassign(&tpl)
        {
            warn!(thread = self.thread, task = %id, error = %e, "releasing the standby's changelog partitions");
        }
        self.shared.metrics.standby_tasks.dec();
        Some(task)
    }

    /// Closes standby `id` (no longer assigned), with a checkpoint so whoever owns the task next
    /// on this instance starts from it.
    pub fn close(&mut self, id: &str) {
        if let Some(mut task) = self.remove(id) {
            if let Err(e) = task.maybe_checkpoint(true) {
                warn!(thread = self.thread, task = %id, error = %e, "no checkpoint on closing the standby; its next owner here reads the changelog from the start");
            }
            info!(thread = self.thread, task = %id, "standby task closed");
        }
    }

    /// Closes every standby (each with its checkpoint).
    pub fn close_all(&mut self) {
        for id in self.ids() {
            self.close(&id);
        }
    }

    /// Checkpoints the standbys that applied enough since their last checkpoint (all when
    /// `force`d).
    pub fn maybe_checkpoint(&mut self, force: bool) {
        for task in self.tasks.values_mut() {
            if let Err(e) = task.maybe_checkpoint(force) {
                let text = e.to_string();
                if self.errors.should_log(&text) {
                    warn!(thread = self.thread, task = %task.id, error = %text, "checkpointing a standby task failed; it is tried again at the next commit");
                }
            }
        }
    }

    /// Applies what the consumer has fetched for the standbys (at most [`UPDATE_BATCH`]
    /// records), without waiting for more.
    pub fn update(&mut self) {
        if self.tasks.is_empty() {
            return;
        }
        let Some(consumer) = &self.consumer else {
            return;
        };
        let mut batches: HashMap<(String, i32), (Vec<Changelog>, i64)> = HashMap::new();
        let mut out_of_range = false;
        for _ in 0..UPDATE_BATCH {
            match consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(msg)) => {
                    let entry = batches
                        .entry((msg.topic().to_owned(), msg.partition()))
                        .or_insert_with(|| (Vec::new(), -1));
                    entry.1 = msg.offset();
                    if let Some(key) = msg.key() {
                        entry.0.push((
                            key.to_vec(),
                            msg.payload().map(<[u8]>::to_vec),
                            msg.timestamp().to_millis().unwrap_or(0),
                        ));
                    }
                }
                Some(Err(e)) => {
                    out_of_range |= matches!(
                        e.rdkafka_error_code(),
                        Some(
                            RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset
                        )
                    );
                    let text = e.to_string();
                    if ErrorClass::of_consumer(&e) != ErrorClass::Retriable || out_of_range {
                        warn!(thread = self.thread, error = %text, "the standby consumer failed");
                    } else if self.errors.should_log(&text) {
                        warn!(thread = self.thread, error = %text, "the standby consumer waits for the brokers");
                    }
                    break;
                }
            }
        }
        let mut failed = Vec::new();
        for ((topic, partition), (batch, last)) in batches {
            let Some((id, store)) = self.by_changelog.get(&(topic.clone(), partition)) else {
                continue;
            };
            let Some(task) = self.tasks.get_mut(id) else {
                continue;
            };
            if let Err(e) = task.stores.restore(*store, &batch) {
                warn!(thread = self.thread, task = %id, error = %e, "applying changelog records to the standby failed; closing it without a checkpoint of this");
                failed.push(id.clone());
                continue;
            }
            task.offsets.insert((topic.clone(), partition), last);
            task.written_since_checkpoint += batch.len() as u64;
            if let Some((_, _, counter)) = task.changelogs.iter().find(|(s, _, _)| s == store) {
                counter.inc_by(batch.len() as u64);
            }
        }
        for id in failed {
            // Its stores may be ahead of its last checkpoint: they are read again from it.
            self.remove(&id);
        }
        if out_of_range {
            self.reopen_out_of_range();
        }
    }

    /// After the consumer found a changelog no longer holding a standby's next records: the
    /// standbys whose position is before their changelog's start are wiped and read again from
    /// it.
    fn reopen_out_of_range(&mut self) {
        let mut stale = Vec::new();
        for task in self.tasks.values() {
            for (_, topic, _) in &task.changelogs {
                let next = task
                    .offsets
                    .get(&(topic.clone(), task.partition))
                    .map_or(0, |o| o + 1);
                let low = self
                    .consumer
                    .as_ref()
                    .and_then(|c| {
                        c.fetch_watermarks(topic, task.partition, Duration::from_secs(5))
                            .ok()
                    })
                    .map(|(low, _)| low);
                if low.is_some_and(|low| next < low) {
                    stale.push((task.id.clone(), task.subtopology, task.partition));
                    break;
                }
            }
        }
        for (id, subtopology, partition) in stale {
            let Some(task) = self.remove(&id) else {
                continue;
            };
            let StandbyTask {
                stores, directory, ..
            } = task;
            drop(stores);
            if let Some(dir) = directory
                && let Err(e) = dir.wipe()
            {
                warn!(thread = self.thread, task = %id, error = %e, "wiping the standby's stores");
                continue;
            }
            warn!(thread = self.thread, task = %id, "standby task's changelog no longer holds its next records: its stores were wiped and are read from the changelog's start");
            if let Err(e) = self.add(&id, subtopology, partition) {
                warn!(thread = self.thread, task = %id, error = %e, "reopening the standby task");
            }
        }
    }
}
