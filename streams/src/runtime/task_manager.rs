//! The tasks of one stream thread (Kafka Streams' `TaskManager`): by id, and by the partitions
//! they read, so a fetched record finds its task with one lookup; their creation (stores restored
//! off the stream thread by the [`StateUpdater`], the task created when they come back:
//! `checkStateUpdater`), commit, and closing on revocation, recovery and shutdown; and the
//! thread's [`StandbyTasks`], promoted to active tasks when the group makes them so.
//!
//! A task whose stores are restoring is assigned (the group counts it as this member's) but its
//! input partitions are paused on the main consumer until it is created, so the thread goes on
//! processing, committing and heartbeating for its other tasks meanwhile.

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
use super::restore::{RestoreProgress, RestoreRequest, RestoredStores};
use super::standby::StandbyTasks;
use super::state_updater::StateUpdater;
use super::task::{RawRecord, Task};
use crate::config::StreamsConfig;
use crate::topology::Topology;
use freshet_streams_group::Member;

/// Positions per changelog partition, as a task reports them in its task offsets.
type ChangelogPositions = Vec<((String, i32), i64)>;

/// A task whose stores are restoring: its input partitions (paused meanwhile), where they
/// resume, and records fetched for them before the pause took hold.
struct Waiting {
    inputs: Vec<(String, i32)>,
    /// The changelog partitions of its logged stores.
    changelogs: Vec<(String, i32)>,
    /// Where its restore stands in them.
    progress: Arc<RestoreProgress>,
    committed: HashMap<(String, i32), i64>,
    held: Vec<RawRecord>,
}

/// A thread's tasks, with the partition → task map kept in step with them.
pub(crate) struct TaskManager {
    thread: usize,
    shared: Arc<Shared>,
    topology: Arc<Topology>,
    tasks: BTreeMap<String, Task>,
    /// (topic, partition) → id of the task that reads it.
    by_partition: HashMap<(String, i32), String>,
    /// Restores the stores of the tasks being created, off the stream thread.
    updater: StateUpdater,
    /// The tasks `updater` restores: what creating each needs once its stores are back.
    restoring: BTreeMap<String, Waiting>,
    /// The standby (and warm-up) tasks the streams group assigned this thread.
    pub standbys: StandbyTasks,
}

impl TaskManager {
    /// No tasks yet; `thread` is the stream thread's index (for logs and published task lists).
    pub fn new(thread: usize, shared: Arc<Shared>, topology: Arc<Topology>) -> Self {
        TaskManager {
            thread,
            updater: StateUpdater::new(thread, shared.clone(), topology.clone()),
            restoring: BTreeMap::new(),
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

    /// Creates the tasks of `assigned` partitions that have none yet (Kafka Streams'
    /// `handleAssignment`): a task this thread keeps as a standby is promoted at once (its
    /// stores are only caught up from where the standby stands); the others go to the state
    /// updater, which restores their stores off the stream thread, and are created by
    /// [`TaskManager::check_state_updater`] once restored. The caller pauses their partitions
    /// ([`TaskManager::pause_restoring`]) once assigned. `committed` says where each partition
    /// resumes, which lets a task tell a caught-up partition from one whose records are still to
    /// be fetched. A promoted task whose stores cannot be caught up is left out; the first such
    /// failure is returned after the others were created.
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
                if self.tasks.contains_key(&task) || self.restoring.contains_key(&task) {
                    continue;
                }
                let request = RestoreRequest {
                    task,
                    subtopology: sub.id,
                    partition,
                    progress: Arc::default(),
                };
                match self.standbys.take_for_promotion(&request.task) {
                    Some(standby) => {
                        info!(thread = self.thread, task = %request.task, "promoting the standby task to active");
                        let restored = standby.promote(&topology, sub, &self.shared);
                        self.adopt(request, restored, assigned, committed, &mut first_failure);
                    }
                    None => {
                        let inputs: Vec<(String, i32)> =
                            topics.iter().map(|t| (t.clone(), partition)).collect();
                        let committed = inputs
                            .iter()
                            .filter_map(|k| committed.get(k).map(|o| (k.clone(), *o)))
                            .collect();
                        let changelogs = topology
                            .stores_of(sub)
                            .iter()
                            .filter(|d| d.logged)
                            .map(|d| (d.changelog().resolve(&app), partition))
                            .collect();
                        self.restoring.insert(
                            request.task.clone(),
                            Waiting {
                                inputs,
                                changelogs,
                                progress: Arc::clone(&request.progress),
                                committed,
                                held: Vec::new(),
                            },
                        );
                        self.updater.add(request);
                    }
                }
            }
        }
        self.publish();
        first_failure.map_or(Ok(()), Err)
    }

    /// The input partitions of the tasks whose stores are restoring.
    pub fn restoring_partitions(&self) -> Vec<(String, i32)> {
        self.restoring
            .values()
            .flat_map(|w| w.inputs.iter().cloned())
            .collect()
    }

    /// Whether `partition` of `topic` is an input of a task whose stores are restoring.
    pub fn is_restoring(&self, topic: &str, partition: i32) -> bool {
        self.restoring
            .values()
            .any(|w| w.inputs.iter().any(|(t, p)| t == topic && *p == partition))
    }

    /// The changelog positions the restoring tasks report to the streams group: 0 for each
    /// changelog (a lower bound: the restore's progress stays on its thread until it is done).
    pub fn restoring_positions(&self) -> Vec<(&str, ChangelogPositions)> {
        self.restoring
            .iter()
            .map(|(id, w)| {
                let positions = w
                    .changelogs
                    .iter()
                    .map(|(topic, partition)| {
                        let position = w.progress.position(topic, *partition);
                        ((topic.clone(), *partition), position)
                    })
                    .collect();
                (id.as_str(), positions)
            })
            .collect()
    }

    /// The ids of the tasks whose stores are restoring: assigned to this thread, not running.
    pub fn restoring_ids(&self) -> Vec<String> {
        self.restoring.keys().cloned().collect()
    }

    /// Keeps a record fetched for a restoring task before its partition was paused, for the
    /// task to process first once created (the consumer's position is already past it).
    /// Returns the record when no restoring task reads its partition.
    pub fn hold(&mut self, raw: RawRecord) -> Option<RawRecord> {
        let waiting = self.restoring.values_mut().find(|w| {
            w.inputs
                .iter()
                .any(|(t, p)| *t == raw.topic && *p == raw.partition)
        });
        match waiting {
            Some(w) => {
                w.held.push(raw);
                None
            }
            None => Some(raw),
        }
    }

    /// Pauses the input partitions of the restoring tasks on `consumer` (after they were
    /// assigned, which resumes them): nothing is fetched for a task until it exists.
    pub fn pause_restoring<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) {
        let partitions = self.restoring_partitions();
        if partitions.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in &partitions {
            tpl.add_partition(topic, *partition);
        }
        if let Err(e) = consumer.pause(&tpl) {
            warn!(thread = self.thread, error = %e, "pausing the partitions of restoring tasks failed; records fetched meanwhile wait for their task");
        }
    }

    /// After the partitions were restarted at their committed offsets (which resumes them):
    /// pauses the restoring tasks' partitions again and forgets the records held for them,
    /// which will be fetched again.
    pub fn restart_restoring<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        for waiting in self.restoring.values_mut() {
            waiting.held.clear();
        }
        self.pause_restoring(consumer);
    }

    /// Creates the tasks whose stores the state updater restored since the last call, and
    /// resumes their partitions (Kafka Streams' `checkStateUpdater`); called once per loop,
    /// never waits. Returns whether any task was created. A task whose stores could not be
    /// restored is left out and its error returned (after the others were created).
    pub fn check_state_updater<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<bool, RuntimeError> {
        let done = self.updater.drain_restored();
        if done.is_empty() {
            return Ok(false);
        }
        let mut first_failure = None;
        for (request, restored) in done {
            let Some(waiting) = self.restoring.remove(&request.task) else {
                continue;
            };
            let id = request.task.clone();
            self.adopt(
                request,
                restored,
                &waiting.inputs,
                &waiting.committed,
                &mut first_failure,
            );
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            for raw in waiting.held {
                task.enqueue(raw);
            }
            let mut tpl = TopicPartitionList::new();
            for (topic, partition) in &waiting.inputs {
                tpl.add_partition(topic, *partition);
            }
            if let Err(e) = consumer.resume(&tpl) {
                warn!(thread = self.thread, task = %id, error = %e, "resuming the restored task's partitions failed");
            }
        }
        self.publish();
        first_failure.map_or(Ok(true), Err)
    }

    /// Stops restoring the tasks reading any of `partitions` (revoked, or the thread closes):
    /// each keeps a checkpoint of what it restored.
    fn stop_restoring(&mut self, partitions: Option<&[(String, i32)]>) {
        let ids: Vec<String> = self
            .restoring
            .iter()
            .filter(|(_, w)| partitions.is_none_or(|ps| w.inputs.iter().any(|i| ps.contains(i))))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.updater.remove(&id);
            self.restoring.remove(&id);
        }
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
        // A restoring task processed nothing: its stores hold committed data, dirty or not.
        self.stop_restoring(Some(revoked));
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
        self.stop_restoring(None);
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
        self.stop_restoring(None);
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
            super::flush::flush(
                &output.producer,
                config.commit_interval.max(Duration::from_secs(30)),
            )
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
