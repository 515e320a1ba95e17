//! The tasks of one stream thread (Kafka Streams' `TaskManager`): by id, and by the partitions
//! they read, so a fetched record finds its task with one lookup; their creation (stores restored
//! through the [`StateRestorer`]), commit, and closing on revocation, recovery and shutdown; and
//! the thread's [`StandbyTasks`], promoted to active tasks when the group makes them so.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use freshet_topology::sync::Unpoisoned;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{error, info, warn};

use super::Shared;
use super::error::RuntimeError;
use super::failure::Failure;
use super::member_offsets::MemberIdentity;
use super::producer::StreamsProducer;
use super::refusal::Origin;
use super::restore::{RestoreRequest, RestoredStores, StateRestorer};
use super::standby::StandbyTasks;
use super::task::Task;
use crate::config::StreamsConfig;
use crate::topology::Topology;
use freshet_streams_group::Member;

/// A thread's tasks, with the partition → task map kept in step with them.
pub(crate) struct TaskManager {
    thread: usize,
    shared: Arc<Shared>,
    topology: Arc<Topology>,
    tasks: BTreeMap<String, Task>,
    /// (topic, partition) → id of the task that reads it.
    by_partition: HashMap<(String, i32), String>,
    /// Restores the stores of the tasks being created.
    restorer: StateRestorer,
    /// The standby (and warm-up) tasks the streams group assigned this thread.
    pub standbys: StandbyTasks,
}

impl TaskManager {
    /// No tasks yet; `thread` is the stream thread's index (for logs and published task lists).
    pub fn new(thread: usize, shared: Arc<Shared>, topology: Arc<Topology>) -> Self {
        TaskManager {
            thread,
            restorer: StateRestorer::new(shared.clone(), topology.clone()),
            standbys: StandbyTasks::new(thread, shared.clone(), topology.clone()),
            shared,
            topology,
            tasks: BTreeMap::new(),
            by_partition: HashMap::new(),
        }
    }

    /// Adds a created task; its input partitions now route to it.
    fn insert(&mut self, id: String, task: Task) {
        for (topic, partition) in task.inputs() {
            self.by_partition
                .insert((topic.to_owned(), partition), id.clone());
        }
        self.tasks.insert(id, task);
    }

    /// Takes a task out (to close it); its partitions route nowhere until reassigned.
    fn remove(&mut self, id: &str) -> Option<Task> {
        let task = self.tasks.remove(id)?;
        self.by_partition.retain(|_, owner| owner != id);
        Some(task)
    }

    /// Creates the tasks of `assigned` partitions that have none yet, their stores opened and
    /// restored first (Kafka Streams' `handleAssignment`); `committed` says where each partition
    /// resumes, which lets a task tell a caught-up partition from one whose records are still to
    /// be fetched. A task this thread keeps as a standby is promoted: its stores are only caught
    /// up from where the standby stands. A task whose stores cannot be restored is left out; the
    /// first such failure is returned after the others were created.
    pub fn create_tasks(
        &mut self,
        assigned: &[(String, i32)],
        committed: &HashMap<(String, i32), i64>,
    ) -> Result<(), RuntimeError> {
        let app = self.shared.config.application_id.clone();
        let topology = self.topology.clone();
        let mut first_failure = None;
        for sub in topology.subtopologies() {
            let topics: Vec<String> = sub.source_topics.iter().map(|t| t.resolve(&app)).collect();
            let mut partitions: Vec<i32> = assigned
                .iter()
                .filter(|(t, _)| topics.contains(t))
                .map(|(_, p)| *p)
                .collect();
            partitions.sort_unstable();
            partitions.dedup();
            for partition in partitions {
                let task = crate::topology::task_id(sub.id, partition);
                if self.tasks.contains_key(&task) {
                    continue;
                }
                let request = RestoreRequest {
                    task,
                    subtopology: sub.id,
                    partition,
                };
                match self.standbys.take_for_promotion(&request.task) {
                    Some(standby) => {
                        info!(thread = self.thread, task = %request.task, "promoting the standby task to active");
                        let restored = standby.promote(&topology, sub, &self.shared);
                        self.adopt(request, restored, assigned, committed, &mut first_failure);
                    }
                    None => self.restorer.register(request),
                }
            }
        }
        while !self.restorer.is_done() {
            self.restorer.restore_step();
            for (request, restored) in self.restorer.take_restored() {
                self.adopt(request, restored, assigned, committed, &mut first_failure);
            }
        }
        self.publish();
        first_failure.map_or(Ok(()), Err)
    }

    /// Makes a task of restored stores (or records why they could not be restored).
    fn adopt(
        &mut self,
        request: RestoreRequest,
        restored: Result<RestoredStores, super::error::RestoreError>,
        assigned: &[(String, i32)],
        committed: &HashMap<(String, i32), i64>,
        first_failure: &mut Option<RuntimeError>,
    ) {
        let id = request.task;
        let restored = match restored {
            Ok(r) => r,
            Err(e) => {
                error!(thread = self.thread, task = %id, error = %e, "opening the task's stores failed");
                first_failure.get_or_insert(RuntimeError::Restore {
                    task: id,
                    source: e,
                });
                return;
            }
        };
        let topology = self.topology.clone();
        let Some(sub) = topology
            .subtopologies()
            .iter()
            .find(|s| s.id == request.subtopology)
        else {
            return;
        };
        info!(thread = self.thread, task = %id, "task created");
        let mut task = Task::new(
            &topology,
            sub,
            request.partition,
            assigned,
            &self.shared.config.application_id,
            committed,
            &self.shared.metrics,
            restored,
        );
        task.configure(&self.shared.config);
        self.insert(id, task);
    }

    /// Tells the application which tasks this thread runs now, and which it keeps as standbys.
    pub fn publish(&self) {
        self.shared.publish_tasks(
            self.thread,
            self.tasks.keys().cloned().collect(),
            self.standbys.ids(),
        );
    }

    /// The task reading `partition` of `topic`.
    pub fn for_partition(&mut self, topic: &str, partition: i32) -> Option<&mut Task> {
        let id = self.by_partition.get(&(topic.to_owned(), partition))?;
        self.tasks.get_mut(id)
    }

    /// The ids of the tasks that read any of `partitions`.
    fn reading_any(&self, partitions: &[(String, i32)]) -> Vec<String> {
        let mut ids: Vec<String> = partitions
            .iter()
            .filter_map(|p| self.by_partition.get(p).cloned())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Closes the tasks reading any of the `revoked` partitions (Kafka Streams'
    /// `handleRevocation`): cleanly, with a checkpoint, after a successful commit; `dirty` after
    /// a failed transaction, their stores wiped so that their next owner restores them from the
    /// changelogs.
    pub fn revoke(&mut self, revoked: &[(String, i32)], dirty: bool) {
        for id in self.reading_any(revoked) {
            let Some(mut task) = self.remove(&id) else {
                continue;
            };
            let thread = self.thread;
            if dirty {
                if let Err(e) = task.close_dirty() {
                    warn!(thread, task = %id, error = %e, "closing the task dirty");
                }
                info!(thread, task = %id, "task closed dirty (partitions revoked after a failed transaction)");
                continue;
            }
            if let Err(e) = task.maybe_checkpoint(true) {
                warn!(thread, task = %id, error = %e, "no checkpoint on revocation; the next owner restores from the changelog");
            }
            task.close();
            info!(thread, task = %id, "task closed (partitions revoked)");
        }
    }

    /// Closes every task dirty, its stores wiped (they hold the writes of an aborted
    /// transaction); a store that cannot be wiped stops the thread rather than keep them.
    pub fn close_all_dirty(&mut self) -> Result<(), RuntimeError> {
        self.by_partition.clear();
        for (id, task) in std::mem::take(&mut self.tasks) {
            task.close_dirty().map_err(RuntimeError::Task)?;
            info!(thread = self.thread, task = %id, "task closed dirty");
        }
        Ok(())
    }

    /// Closes every task (after the final commit, or without one after a failure) and forgets
    /// them; the standbys close too, each with its checkpoint (they hold committed data only).
    pub fn close_all(&mut self) {
        for task in self.tasks.values_mut() {
            task.close();
        }
        self.by_partition.clear();
        self.tasks.clear();
        self.standbys.close_all();
    }

    /// Commits (Kafka Streams' `TaskManager.commit`): record caches written out, outputs and
    /// changelogs flushed, offsets committed (under exactly-once: the transaction with its
    /// offsets), then checkpoints where due (`force_checkpoint`: every task's, as on a clean
    /// close). Returns the number of partitions committed. Under group.protocol=streams the
    /// offsets go as the thread's streams-group `member` (its id and epoch), not through the
    /// consumer, which is no group member.
    pub fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        output: &mut StreamsProducer,
        config: &StreamsConfig,
        force_checkpoint: bool,
        member: Option<&mut Member>,
    ) -> Result<usize, Failure> {
        let mut outputs = Vec::new();
        // A transaction whose commit timed out takes no more records: retry just the commit
        // (the caches were written out before it).
        if !output.is_committing() {
            for task in self.tasks.values_mut() {
                task.prepare_commit(&mut outputs)?;
                if outputs.is_empty() {
                    continue;
                }
                // What caches and held-back updates release has no single input record.
                let origin = Origin::new(&Arc::from(task.id.as_str()), None);
                for out in outputs.drain(..) {
                    output.send(&out, &origin)?;
                }
            }
        }
        let committed = if output.exactly_once() {
            let member = member.map(|m| MemberIdentity {
                group_id: m.group_id().to_owned(),
                member_id: m.member_id().to_owned(),
                epoch: m.epoch(),
                instance_id: m.instance_id().map(str::to_owned),
            });
            let offsets: Vec<(String, i32, i64)> =
                self.tasks.values().flat_map(|t| t.committable()).collect();
            output.commit_transaction(consumer, &offsets, member)?
        } else {
            let mut tpl = TopicPartitionList::new();
            for task in self.tasks.values() {
                for (topic, partition, offset) in task.committable() {
                    tpl.add_partition_offset(&topic, partition, Offset::Offset(offset))
                        .map_err(|e| RuntimeError::kafka("listing the offsets to commit", e))?;
                }
            }
            // A flush or an offset commit that fails while the brokers are away is tried again
            // later (Failure::Retry): the offsets stay where they were, nothing is lost.
            output
                .producer
                .flush(config.commit_interval.max(Duration::from_secs(30)))
                .map_err(|e| {
                    Failure::of_commit(RuntimeError::kafka("flushing the producer", e), false)
                })?;
            // Offsets only after every output is delivered, or handled if refused: a failed
            // delivery commits nothing, and its input is processed again after a restart.
            output.check_deliveries()?;
            if tpl.count() > 0 {
                match member {
                    Some(member) => {
                        let offsets: Vec<(String, i32, i64)> =
                            self.tasks.values().flat_map(|t| t.committable()).collect();
                        member.commit_offsets(&offsets).map_err(|e| {
                            Failure::of_commit(
                                RuntimeError::streams_group("committing offsets", e),
                                false,
                            )
                        })?;
                    }
                    None => {
                        consumer.commit(&tpl, CommitMode::Sync).map_err(|e| {
                            Failure::of_commit(RuntimeError::kafka("committing offsets", e), false)
                        })?;
                    }
                }
            }
            tpl.count()
        };
        let delivered = std::mem::take(
            &mut *output
                .producer
                .context()
                .changelog_offsets
                .lock_unpoisoned(),
        );
        for task in self.tasks.values_mut() {
            for ((topic, partition), offset) in &delivered {
                if task.owns_changelog(topic, *partition) {
                    task.changelog_delivered(topic, *partition, *offset);
                }
            }
            task.maybe_checkpoint(force_checkpoint)?;
        }
        self.standbys.maybe_checkpoint(force_checkpoint);
        Ok(committed)
    }

    /// The task `id`, to process its records.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Task> {
        self.tasks.get_mut(id)
    }

    /// The ids of the tasks, in order (a copy: the loop processes them one by one).
    pub fn ids(&self) -> Vec<String> {
        self.tasks.keys().cloned().collect()
    }

    /// Every task, in id order.
    pub fn values(&self) -> impl Iterator<Item = &Task> {
        self.tasks.values()
    }

    /// Whether the thread has no task.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// How many tasks the thread has.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }
}
