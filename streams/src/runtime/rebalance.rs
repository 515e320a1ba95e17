//! Rebalance handling (Kafka Streams' `StreamsRebalanceListener`): the consumer's context, whose
//! callbacks commit and close the tasks of revoked partitions and create (and restore) those of
//! assigned ones, through the thread's [`TaskManager`].
//!
//! New tasks' stores restore off the stream thread (the task manager's state updater): the
//! assign callback only registers them and pauses their partitions.
//!
//! The callbacks run inside the consumer's poll on the stream thread; what they cannot handle
//! there (a failed transaction, a fatal error) they leave for the run loop, which checks after
//! each poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use freshet_topology::sync::Unpoisoned;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};
use tracing::{error, warn};

use super::Shared;
use super::ThreadState;
use super::error::RuntimeError;
use super::failure::Failure;
use super::positions::{ASSIGNED_TIMEOUT, UnknownPositions, committed_offsets};
use super::producer::StreamsProducer;
use super::task_manager::TaskManager;

/// Everything a thread owns that the rebalance callbacks also need.
pub(crate) struct Core {
    pub tasks: TaskManager,
    pub output: StreamsProducer,
    /// Under group.protocol=streams: the thread's member of the streams group, which assigns
    /// its tasks (the consumer then only fetches what it is told to `assign`).
    pub group: Option<super::streams_group::GroupMember>,
}

/// The consumer's context: creates and closes tasks as partitions come and go.
pub(crate) struct RebalanceContext {
    thread: usize,
    shared: Arc<Shared>,
    pub core: Mutex<Option<Core>>,
    /// A failure that stops the thread, left by a callback for the run loop.
    pub failure: Mutex<Option<RuntimeError>>,
    /// Under exactly_once_v2: a transaction failed inside a rebalance callback while tasks stay
    /// assigned; the loop recovers them (their stores may hold the aborted writes).
    pub recover: Mutex<Option<RuntimeError>>,
    /// Assigned partitions whose committed offsets could not be read in the callback: the run
    /// loop reads them again and starts the partitions there (see `positions`).
    pub unknown_positions: Mutex<Option<UnknownPositions>>,
}

impl ClientContext for RebalanceContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.shared.metrics.kafka.record(&statistics);
    }
}

/// The (topic, partition) pairs of a partition list.
pub(crate) fn topic_partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl RebalanceContext {
    /// A context for thread `thread`, without tasks or producer until the thread sets its core.
    pub fn new(thread: usize, shared: Arc<Shared>) -> Self {
        RebalanceContext {
            thread,
            shared,
            core: Mutex::new(None),
            failure: Mutex::new(None),
            recover: Mutex::new(None),
            unknown_positions: Mutex::new(None),
        }
    }

    fn set_failure(&self, error: RuntimeError) {
        self.failure.lock_unpoisoned().get_or_insert(error);
    }

    /// Creates (opens and restores) the tasks of `assigned` partitions that have none yet; a
    /// task that cannot be created stops the thread at the loop's next check.
    pub fn create_tasks(
        &self,
        core: &mut Core,
        assigned: &[(String, i32)],
        committed: &HashMap<(String, i32), i64>,
    ) {
        if let Err(e) = core.tasks.create_tasks(assigned, committed) {
            self.set_failure(e);
        }
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.shared
            .set_thread_state(self.thread, ThreadState::Rebalancing);
        self.shared.metrics.rebalances.inc();
        if let Rebalance::Revoke(revoked) = rebalance {
            let mut guard = self.core.lock_unpoisoned();
            let Some(core) = guard.as_mut() else { return };
            let revoked = topic_partitions(revoked);
            let exactly_once = core.output.exactly_once();
            // Outputs first, then offsets: nothing committed before what it produced is durable.
            // Under exactly-once both go in one transaction, committed before the partitions go.
            let mut dirty = false;
            match core
                .tasks
                .commit(consumer, &mut core.output, &self.shared.config, false, None)
            {
                Ok(_) => {}
                Err(Failure::Transaction(cause)) => {
                    warn!(thread = self.thread, cause = %cause, "the transaction failed before revocation; aborting it: the revoked tasks close dirty and their next owner restores them from the changelogs");
                    dirty = true;
                    if let Err(e) = core.output.reset(self.thread) {
                        self.set_failure(e);
                    }
                }
                Err(Failure::Fatal(e) | Failure::Retry(e)) if exactly_once => {
                    warn!(thread = self.thread, error = %e, "commit before revocation failed; aborting the transaction: the new owner reprocesses from the last commit");
                    dirty = true;
                    if let Err(e) = core.output.reset(self.thread) {
                        self.set_failure(e);
                    }
                }
                Err(Failure::Fatal(e) | Failure::Retry(e)) => {
                    warn!(thread = self.thread, error = %e, "commit before revocation failed; the new owner reprocesses from the last commit");
                }
            }
            let mut unknown = self.unknown_positions.lock_unpoisoned();
            if unknown.as_mut().is_some_and(|u| u.revoke(&revoked)) {
                *unknown = None;
            }
            drop(unknown);
            core.tasks.revoke(&revoked, dirty);
            core.output
                .committed
                .retain(|k, _| !revoked.iter().any(|r| r == k));
            if dirty && !core.tasks.is_empty() {
                // Tasks that stay (incremental rebalancing) had writes in the aborted transaction too.
                self.recover.lock_unpoisoned().get_or_insert_with(|| {
                    RuntimeError::Other("a transaction failed before a revocation".to_owned())
                });
            }
            core.tasks.publish();
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                // Without them the partitions may never start (see `positions`): the run loop
                // reads them again rather than leave the thread running on nothing.
                let committed = match committed_offsets(consumer, assigned, ASSIGNED_TIMEOUT) {
                    Ok(c) => c,
                    Err(e) => {
                        let partitions = topic_partitions(assigned);
                        let mut unknown = self.unknown_positions.lock_unpoisoned();
                        match unknown.as_mut() {
                            Some(u) => u.extend(partitions),
                            None => {
                                *unknown = Some(UnknownPositions::new(self.thread, partitions, &e))
                            }
                        }
                        HashMap::new()
                    }
                };
                let mut guard = self.core.lock_unpoisoned();
                let Some(core) = guard.as_mut() else { return };
                if core.output.in_transaction {
                    // Restoring new tasks can take longer than transaction.timeout.ms: commit what
                    // the tasks kept (incremental rebalancing) did first, so no transaction waits.
                    if let Err(e) = core.tasks.commit(
                        consumer,
                        &mut core.output,
                        &self.shared.config,
                        false,
                        None,
                    ) {
                        let cause = e.into_error();
                        warn!(thread = self.thread, cause = %cause, "committing before restoring new tasks failed");
                        self.recover.lock_unpoisoned().get_or_insert(cause);
                    }
                }
                let assigned = topic_partitions(assigned);
                self.create_tasks(core, &assigned, &committed);
                // The new tasks restore off this thread; their partitions wait, paused.
                core.tasks.pause_restoring(consumer);
                self.shared
                    .set_thread_state(self.thread, ThreadState::Running);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                error!(thread = self.thread, error = %e, "rebalance failed");
                self.set_failure(RuntimeError::kafka("rebalance failed", e.clone()));
            }
        }
    }
}
