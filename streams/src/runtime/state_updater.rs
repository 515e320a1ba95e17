//! Restoration off the stream thread (Kafka Streams' `DefaultStateUpdater`): a new active task's
//! stores are opened and restored from their changelogs on a restore thread of the task's own
//! while the stream thread goes on processing its running tasks, committing and heartbeating;
//! the stream thread drains the restored tasks each loop and creates them then.
//!
//! Java runs one updater thread per stream thread, reading every restoring task's changelogs
//! through one consumer in bounded batches. Here each restoring task gets its own thread and
//! restore consumer (`<stream thread>-restore-<task>`), running the same `open_and_restore` as
//! before: one task's restore never waits for another's, and the restore code keeps its single,
//! tested path (wipes on corruption, broker outages waited out). The stores move to the stream
//! thread once restored (`TaskStores` is `Send`).
//!
//! A task revoked while it restores is removed: its restore stops at its next poll, its stores
//! are flushed and checkpointed at the offsets reached (Kafka Streams' `RemovedTaskResult`: the
//! next restore here continues from there), and its directory lock is released before
//! [`StateUpdater::remove`] returns, so a new owner in this process can take it at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use tracing::{info, warn};

use super::Shared;
use super::error::RestoreError;
use super::restore::{RestoreRequest, RestoredStores, open_and_restore};
use crate::state::Checkpoint;
use crate::topology::Topology;

/// What a restore thread hands back: its task, and the restored stores or why there are none.
pub(crate) type Restored = (RestoreRequest, Result<RestoredStores, RestoreError>);

/// One task being restored.
struct Restoring {
    request: RestoreRequest,
    /// Stops the restore (the task was revoked).
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The tasks of one stream thread whose stores are being restored, each on its own thread.
pub(crate) struct StateUpdater {
    thread: usize,
    shared: Arc<Shared>,
    topology: Arc<Topology>,
    restoring: BTreeMap<String, Restoring>,
    done_tx: Sender<Restored>,
    done_rx: Receiver<Restored>,
}

impl StateUpdater {
    /// No task restoring yet; `thread` is the stream thread's index.
    pub fn new(thread: usize, shared: Arc<Shared>, topology: Arc<Topology>) -> Self {
        let (done_tx, done_rx) = channel();
        StateUpdater {
            thread,
            shared,
            topology,
            restoring: BTreeMap::new(),
            done_tx,
            done_rx,
        }
    }

    /// Starts restoring a task's stores (Java's `StateUpdater.add`); a task already restoring
    /// is not started twice. A restore thread that cannot be spawned hands back the error.
    pub fn add(&mut self, request: RestoreRequest) {
        if self.restoring.contains_key(&request.task) {
            return;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let (shared, topology, done) = (
            self.shared.clone(),
            self.topology.clone(),
            self.done_tx.clone(),
        );
        let (job, stop) = (request.clone(), cancel.clone());
        let name = format!(
            "{}-StreamThread-{}-restore-{}",
            super::client_prefix(&self.shared.config),
            self.thread + 1,
            request.task
        );
        let spawned = std::thread::Builder::new()
            .name(name)
            .spawn(move || restore(job, &shared, &topology, &stop, &done));
        let thread = match spawned {
            Ok(handle) => Some(handle),
            Err(e) => {
                let error = RestoreError::Spawn(Arc::new(e));
                let _ = self.done_tx.send((request.clone(), Err(error)));
                None
            }
        };
        info!(thread = self.thread, task = %request.task, "restoring the task's stores off the stream thread");
        self.shared.metrics.restoring_tasks.inc();
        self.restoring.insert(
            request.task.clone(),
            Restoring {
                request,
                cancel,
                thread,
            },
        );
        self.publish();
    }

    /// Whether task `id` is restoring.
    #[cfg(test)]
    pub fn contains(&self, id: &str) -> bool {
        self.restoring.contains_key(id)
    }

    /// The tasks restoring, in id order.
    pub fn requests(&self) -> impl Iterator<Item = &RestoreRequest> {
        self.restoring.values().map(|r| &r.request)
    }

    /// The tasks whose restore ended since the last call (Java's `drainRestoredActiveTasks`
    /// and `drainExceptionsAndFailedTasks` in one): restored stores, or why there are none.
    /// Never waits.
    pub fn drain_restored(&mut self) -> Vec<Restored> {
        let mut done = Vec::new();
        while let Ok((request, result)) = self.done_rx.try_recv() {
            let Some(mut entry) = self.restoring.remove(&request.task) else {
                // Removed meanwhile: `remove` already took care of it.
                continue;
            };
            if let Some(handle) = entry.thread.take() {
                // It sent its result as its last act.
                let _ = handle.join();
            }
            self.shared.metrics.restoring_tasks.dec();
            done.push((request, result));
        }
        if !done.is_empty() {
            self.publish();
        }
        done
    }

    /// Stops restoring task `id` (revoked): its restore thread stops, checkpoints what it
    /// restored and releases the task's directory before this returns. No-op for a task that
    /// is not restoring.
    pub fn remove(&mut self, id: &str) {
        let Some(mut entry) = self.restoring.remove(id) else {
            return;
        };
        entry.cancel.store(true, Ordering::Relaxed);
        if let Some(handle) = entry.thread.take()
            && handle.join().is_err()
        {
            warn!(thread = self.thread, task = %id, "the restore thread panicked");
        }
        // Its result is dropped here, closing the stores and unlocking the directory; stores
        // restored to the end before the stop was seen are checkpointed first. Results of
        // other tasks go back in line.
        let mut others = Vec::new();
        for (request, result) in self.done_rx.try_iter() {
            if request.task != id {
                others.push((request, result));
            } else if let Ok(mut restored) = result {
                checkpoint(id, &mut restored);
            }
        }
        for other in others {
            let _ = self.done_tx.send(other);
        }
        self.shared.metrics.restoring_tasks.dec();
        info!(thread = self.thread, task = %id, "restore stopped: the task was revoked; its stores keep what was restored");
        self.publish();
    }

    /// Stops every restore (the thread closes), each checkpointed where it stands.
    pub fn remove_all(&mut self) {
        let ids: Vec<String> = self.restoring.keys().cloned().collect();
        for id in ids {
            self.remove(&id);
        }
    }

    /// Tells the application which tasks this thread restores (for `/readyz`).
    fn publish(&self) {
        self.shared
            .publish_restoring(self.thread, self.requests().cloned().collect());
    }
}

impl Drop for StateUpdater {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// A restore thread's work: open and restore the task's stores, then hand them back; stopped
/// midway, checkpoint them where they stand first.
fn restore(
    request: RestoreRequest,
    shared: &Shared,
    topology: &Topology,
    cancel: &AtomicBool,
    done: &Sender<Restored>,
) {
    let result = match topology
        .subtopologies()
        .iter()
        .find(|s| s.id == request.subtopology)
    {
        Some(sub) => open_and_restore(
            topology,
            sub,
            request.partition,
            &request.task,
            shared,
            Some(cancel),
            Some(&request.progress),
        ),
        None => Err(RestoreError::UnknownSubtopology(request.subtopology)),
    };
    let result = match result {
        Ok(mut restored) if cancel.load(Ordering::Relaxed) => {
            checkpoint(&request.task, &mut restored);
            Ok(restored)
        }
        other => other,
    };
    // Nobody listens any more only when the stream thread is gone.
    let _ = done.send((request, result));
}

/// Writes the checkpoint of a restore stopped midway: the stores hold every changelog record
/// up to `offsets` (committed data only, under exactly-once too), so the next restore of the
/// task continues from there instead of from the start.
fn checkpoint(task: &str, restored: &mut RestoredStores) {
    let Some(dir) = &restored.directory else {
        return;
    };
    let written = restored
        .stores
        .flush()
        .and_then(|()| Checkpoint::in_directory(dir.path()).write(&restored.offsets));
    if let Err(e) = written {
        warn!(task, error = %e, "no checkpoint for the stopped restore; the next one starts from the changelogs' start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_back_each_added_task_once_and_a_removed_one_never() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::restore::tests::unlogged_app("at_least_once", &dir);
        let mut updater = StateUpdater::new(0, app.shared.clone(), app.topology.clone());
        let request = |task: &str, subtopology| RestoreRequest {
            task: task.into(),
            subtopology,
            partition: 0,
            progress: Default::default(),
        };
        updater.add(request("0_0", 0));
        updater.add(request("0_0", 0));
        updater.add(request("9_0", 9));
        assert!(updater.contains("0_0") && updater.contains("9_0"));
        let mut restored = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while restored.len() < 2 && std::time::Instant::now() < deadline {
            restored.extend(updater.drain_restored());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        restored.sort_by(|a, b| a.0.task.cmp(&b.0.task));
        assert_eq!(restored.len(), 2, "a task added twice restores once");
        assert!(restored[0].1.is_ok());
        assert!(matches!(
            restored[1].1,
            Err(RestoreError::UnknownSubtopology(9))
        ));
        assert!(updater.drain_restored().is_empty());
        assert_eq!(updater.requests().count(), 0);
        drop(restored);

        updater.add(request("0_0", 0));
        updater.remove("0_0");
        assert!(!updater.contains("0_0"));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            updater.drain_restored().is_empty(),
            "a removed task is not handed back"
        );
        // Its directory was released: it can be restored again at once.
        updater.add(request("0_0", 0));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut again = Vec::new();
        while again.is_empty() && std::time::Instant::now() < deadline {
            again = updater.drain_restored();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(matches!(again.as_slice(), [(_, Ok(_))]));
    }
}
