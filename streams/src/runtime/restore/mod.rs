//! Opening a task's state stores and restoring them from their changelogs before the task
//! processes anything (Kafka Streams' restoration phase).
//!
//! A store restores from the offset after its checkpointed one when the task directory holds a
//! valid checkpoint, else from the changelog's start into an emptied store; in-memory stores
//! always restore from the start. The restore consumer reads each changelog partition up to the
//! end offset seen when restoration began.
//!
//! Local state that cannot be trusted is thrown away rather than served (Kafka Streams'
//! `TaskCorruptedException`): a checkpoint beyond its changelog's end (the changelog was
//! truncated or recreated) or older than the changelog's start, or an `OFFSET_OUT_OF_RANGE`
//! while restoring, wipes the task's stores and restores them from what the changelog holds; a
//! store RocksDB cannot open is wiped and restored once. Each is logged and counted in
//! `freshet_task_corrupted_total`. A broker that is away is waited for up to `task.timeout.ms`
//! without progress ([`read`]).
//!
//! The stream thread does not call this itself for a new active task: its
//! [`StateUpdater`](super::state_updater::StateUpdater) runs [`open_and_restore`] off the stream
//! thread and hands the restored stores back. A restore can be stopped midway (the task was
//! revoked): [`TaskContext::cancel`].

pub(crate) mod read;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use freshet_topology::sync::Unpoisoned;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::Shared;
use super::error::{Corruption, CorruptionReason, ReadError, RestoreError, Unopenable};
use crate::config::ProcessingGuarantee;
use crate::state::{
    Checkpoint, InMemoryStore, KeyValueStore, Offsets, RocksDbStore, StateDirectory, StateError,
    StoreBudget, StoreDef, TaskDirectory, TaskStores,
};
use crate::topology::{SubTopology, Topology};
use read::Patience;

/// What every task of the process shares for its state: the directory and RocksDB's memory.
pub(crate) struct StateContext {
    pub directory: StateDirectory,
    pub budget: StoreBudget,
}

/// A task's opened, restored stores with their directory lock and changelog offsets.
pub(crate) struct RestoredStores {
    pub stores: TaskStores,
    pub directory: Option<TaskDirectory>,
    /// The offset of the last changelog record each store reflects (the checkpoint's content).
    pub offsets: Offsets,
    /// The process's global tables, which the task's processors read.
    pub globals: Option<std::sync::Arc<crate::state::GlobalStores>>,
    /// Under exactly_once_v2: checkpoints only on a clean close.
    pub exactly_once: bool,
}

/// A task whose stores are to be opened and restored: partition `partition` of sub-topology
/// `subtopology`.
#[derive(Clone, Debug)]
pub(crate) struct RestoreRequest {
    pub task: String,
    pub subtopology: usize,
    pub partition: i32,
    /// Where the restore stands, which the stream thread reports meanwhile.
    pub progress: Arc<RestoreProgress>,
}

/// Where a restoring task's changelogs stand: per changelog partition, the offset after the last
/// record its store reflects. The restore thread writes it; the stream thread reads it for the
/// task offsets it reports to a streams group while the task restores (Kafka Streams reports a
/// restoring task's offsets too), from which the broker tells how far each member is behind.
#[derive(Debug, Default)]
pub(crate) struct RestoreProgress {
    positions: std::sync::Mutex<HashMap<(String, i32), i64>>,
}

impl RestoreProgress {
    fn record(&self, topic: &str, partition: i32, position: i64) {
        self.positions
            .lock_unpoisoned()
            .insert((topic.to_owned(), partition), position);
    }

    /// The position of changelog `topic`-`partition`: 0 before its restore started.
    pub(crate) fn position(&self, topic: &str, partition: i32) -> i64 {
        self.positions
            .lock_unpoisoned()
            .get(&(topic.to_owned(), partition))
            .copied()
            .unwrap_or(0)
    }
}

const RESTORE_BATCH: usize = 10_000;
/// How many times a task's stores are wiped for corruption in one restoration before it fails:
/// a changelog that keeps moving under the restore (retention deleting what it reads) must not
/// loop forever.
pub(crate) const MAX_WIPES: usize = 3;
/// How long a task waits for a directory another thread of this process still holds while it
/// closes the task in the same rebalance.
const LOCK_WAIT: Duration = Duration::from_secs(30);

pub(crate) fn lock_with_retry(
    directory: &StateDirectory,
    task_id: &str,
) -> Result<TaskDirectory, RestoreError> {
    let started = Instant::now();
    loop {
        match directory.lock_task(task_id) {
            Ok(dir) => return Ok(dir),
            Err(StateError::Locked { .. }) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The cache each store of a task gets from `statestore.cache.max.bytes`.
fn cache_limit(shared: &Shared, stores: usize) -> usize {
    let config = &shared.config;
    if stores == 0 {
        return 0;
    }
    // Kafka Streams splits statestore.cache.max.bytes among threads; each thread's share is
    // split again among the stores of a task, assuming a handful of tasks per thread.
    (config.cache_max_bytes as usize / config.num_stream_threads.max(1) / 4 / stores)
        .max(if config.cache_max_bytes == 0 { 0 } else { 4096 })
}

/// The state directory of task `task_id`, locked, with its checkpoint file and the offsets
/// that holds: none when it cannot be read (warned, saying what the task does instead:
/// `instead`), since the changelogs then give the whole state.
pub(crate) fn open_task_directory<'s>(
    shared: &'s Shared,
    task_id: &str,
    instead: &str,
) -> Result<(&'s StateContext, TaskDirectory, Checkpoint, Offsets), RestoreError> {
    let Some(state) = shared.stores.as_ref() else {
        return Err(RestoreError::NoStateDirectory);
    };
    let dir = lock_with_retry(&state.directory, task_id)?;
    let checkpoint = Checkpoint::in_directory(dir.path());
    let checkpointed = checkpoint.read().unwrap_or_else(|e| {
        warn!(task = task_id, error = %e, "ignoring an unreadable checkpoint; {instead}");
        Offsets::new()
    });
    Ok((state, dir, checkpoint, checkpointed))
}

/// Opens the stores of task `task_id` (partition `partition` of `sub`) and restores them.
/// `cancel`, once set, ends the restore early: the stores come back reflecting the offsets
/// they reached (which the caller checkpoints), not the changelogs' ends.
pub(crate) fn open_and_restore(
    topology: &Topology,
    sub: &SubTopology,
    partition: i32,
    task_id: &str,
    shared: &Shared,
    cancel: Option<&AtomicBool>,
    progress: Option<&RestoreProgress>,
) -> Result<RestoredStores, RestoreError> {
    let defs = topology.stores_of(sub);
    let exactly_once = shared.config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2;
    if defs.is_empty() {
        return Ok(RestoredStores {
            stores: TaskStores::new(partition, 0),
            directory: None,
            offsets: Offsets::new(),
            globals: shared.globals.get().cloned(),
            exactly_once,
        });
    }
    let (state, dir, checkpoint, mut checkpointed) =
        open_task_directory(shared, task_id, "restoring from the changelogs' start")?;
    let task = TaskContext {
        id: task_id,
        partition,
        shared,
        cancel,
        progress,
    };
    let mut wipes = 0;
    let (stores, offsets) = loop {
        let stores = open_stores(&task, &defs, &dir, state, &checkpoint, &mut checkpointed)?;
        // On an error the stores are dropped, which closes them, before anything is wiped.
        match restore_stores(&task, stores, &checkpointed, false) {
            Ok(restored) => break restored,
            Err(RestoreError::Corrupted(found)) => {
                shared
                    .metrics
                    .task_corrupted(task_id, &found.store, found.reason.label())
                    .inc();
                if wipes >= MAX_WIPES {
                    return Err(RestoreError::StillCorrupted { wipes, last: found });
                }
                wipes += 1;
                warn!(
                    task = task_id,
                    store = %found.store,
                    changelog = %format!("{}-{}", found.topic, found.partition),
                    checkpointed_offset = found.checkpointed.map_or_else(|| "none".to_owned(), |c| c.to_string()),
                    changelog_start = found.start,
                    changelog_end = found.end,
                    reason = found.reason.label(),
                    "task {task_id} corrupted: {found}; wiping its stores and restoring them from what the changelog holds"
                );
                // Checkpoint included: a crash from here on finds nothing to trust.
                dir.wipe()?;
                checkpointed.clear();
            }
            Err(e) => return Err(e),
        }
    };
    if exactly_once {
        // Kafka Streams' exactly-once rule: from now on the stores take writes of transactions
        // that may abort, so a crash must find no checkpoint and restore from the (read_committed)
        // changelog; a clean close writes it again.
        checkpoint
            .delete()
            .map_err(|e| RestoreError::DeleteCheckpoint(Arc::new(e)))?;
    }
    // The stores now reflect `offsets`; a checkpoint written later only moves forward from here.
    Ok(RestoredStores {
        stores,
        directory: Some(dir),
        offsets,
        globals: shared.globals.get().cloned(),
        exactly_once,
    })
}

/// The task being restored, for logs, metrics and settings.
pub(crate) struct TaskContext<'a> {
    pub id: &'a str,
    pub partition: i32,
    pub shared: &'a Shared,
    /// Set by the state updater when the task is revoked while it restores: each changelog's
    /// read stops at its next poll, keeping what it applied.
    pub cancel: Option<&'a AtomicBool>,
    /// Where the state updater's restore stands, for the task offsets the thread reports.
    pub progress: Option<&'a RestoreProgress>,
}

impl TaskContext<'_> {
    /// Whether the restore was asked to stop.
    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// Notes that the store of changelog `topic` reflects it up to before `position`.
    fn progressed(&self, topic: &str, position: i64) {
        if let Some(progress) = self.progress {
            progress.record(topic, self.partition, position);
        }
    }
}

/// Opens every store of the task. A logged RocksDB store without a checkpoint entry is deleted
/// first (its files may hold anything written up to a crash); one that RocksDB cannot open is
/// wiped, its checkpoint entry dropped, and opened once more.
pub(crate) fn open_stores(
    task: &TaskContext<'_>,
    defs: &[&StoreDef],
    dir: &TaskDirectory,
    state: &StateContext,
    checkpoint: &Checkpoint,
    checkpointed: &mut Offsets,
) -> Result<TaskStores, RestoreError> {
    let app = &task.shared.config.application_id;
    let mut stores = TaskStores::new(task.partition, cache_limit(task.shared, defs.len()));
    for def in defs {
        let changelog = def.logged.then(|| def.changelog().resolve(app));
        let inner: Box<dyn KeyValueStore> = if def.in_memory {
            Box::new(InMemoryStore::new(&def.name))
        } else {
            let path = dir.path().join("rocksdb").join(&def.name);
            if let Some(topic) = &changelog
                && !checkpointed.contains_key(&(topic.clone(), task.partition))
                && path.exists()
            {
                // Deleting is faster than emptying.
                remove_store(&path)?;
            }
            Box::new(open_rocksdb(
                task,
                def,
                &path,
                changelog.as_deref(),
                state,
                checkpoint,
                checkpointed,
            )?)
        };
        stores.add((*def).clone(), inner, changelog);
    }
    Ok(stores)
}

fn remove_store(path: &Path) -> Result<(), RestoreError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RestoreError::RemoveStore {
            path: path.display().to_string(),
            source: Arc::new(e),
        }),
    }
}

/// Opens a RocksDB store; one whose files RocksDB refuses (corrupt, half-written) is wiped and
/// opened once more, to be restored from its changelog's start. A full volume is reported as
/// it is: wiping would not make room, and the next start would restore everything again.
fn open_rocksdb(
    task: &TaskContext<'_>,
    def: &StoreDef,
    path: &Path,
    changelog: Option<&str>,
    state: &StateContext,
    checkpoint: &Checkpoint,
    checkpointed: &mut Offsets,
) -> Result<RocksDbStore, RestoreError> {
    let first = match RocksDbStore::open(&def.name, path, &state.budget) {
        Ok(store) => return Ok(store),
        Err(e @ StateError::VolumeFull { .. }) => return Err(e.into()),
        Err(e) => Arc::new(e),
    };
    let unopenable = |then, source: StateError| {
        RestoreError::Unopenable(Box::new(Unopenable {
            store: def.name.clone(),
            path: path.display().to_string(),
            first: first.clone(),
            then,
            source: Arc::new(source),
        }))
    };
    let Some(changelog) = changelog else {
        return Err(RestoreError::UnloggedUnopenable {
            store: def.name.clone(),
            path: path.display().to_string(),
            source: first,
        });
    };
    warn!(
        task = task.id, store = %def.name, path = %path.display(), error = %first,
        "task {} corrupted: state store '{}' cannot be opened; wiping it and restoring it from its changelog's start",
        task.id, def.name
    );
    task.shared
        .metrics
        .task_corrupted(task.id, &def.name, "store_unopenable")
        .inc();
    // The checkpoint forgets the store before its files go: a crash in between must not find
    // an entry that vouches for an empty or half-restored store.
    if checkpointed
        .remove(&(changelog.to_owned(), task.partition))
        .is_some()
    {
        checkpoint
            .write(checkpointed)
            .map_err(|e| unopenable("rewriting the checkpoint without it failed", e))?;
    }
    if let Err(e) = std::fs::remove_dir_all(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(unopenable("wiping it failed", StateError::io(path, &e)));
    }
    match RocksDbStore::open(&def.name, path, &state.budget) {
        Ok(store) => Ok(store),
        Err(e @ StateError::VolumeFull { .. }) => Err(e.into()),
        Err(e) => Err(unopenable("wiped, it still cannot be opened", e)),
    }
}

/// Restores every logged store of `stores` from its changelog, from after its checkpointed
/// offset (or the start); returns the stores with the offset each now reflects. `live`: the
/// stores were kept open and reflect `checkpointed` exactly (a standby being promoted), so
/// in-memory stores continue from there too instead of from the changelog's start.
pub(crate) fn restore_stores(
    task: &TaskContext<'_>,
    mut stores: TaskStores,
    checkpointed: &Offsets,
    live: bool,
) -> Result<(TaskStores, Offsets), RestoreError> {
    let mut offsets = Offsets::new();
    let logged: Vec<_> = stores
        .changelogs()
        .map(|(id, topic)| (id, topic.to_owned()))
        .collect();
    if logged.is_empty() {
        return Ok((stores, offsets));
    }
    let config = &task.shared.config;
    let mut consumer_config = super::assigning_consumer_config(
        config,
        "restore-consumer",
        "restore-consumer",
        &config.restore_consumer,
    );
    // Kafka Streams' restore consumer has auto.offset.reset=none: an offset the changelog no
    // longer holds is an error (the store is corrupted), never a silent jump.
    consumer_config.set("auto.offset.reset", "error");
    let consumer: BaseConsumer = consumer_config.create().map_err(RestoreError::Consumer)?;
    let partition = task.partition;
    for (id, topic) in logged {
        let in_memory = stores.def(id).in_memory;
        // In memory nothing survived; on disk an unchecked store was deleted before opening.
        let from = match checkpointed.get(&(topic.clone(), partition)) {
            Some(&offset) if !in_memory || live => Some(offset),
            _ => None,
        };
        let last = restore_partition(task, &consumer, &mut stores, id, &topic, from).map_err(
            |e| match e {
                RestoreError::Corrupted(_) => e,
                e => RestoreError::Store {
                    store: stores.def(id).name.clone(),
                    topic: topic.clone(),
                    partition,
                    source: Box::new(e),
                },
            },
        )?;
        if let Some(last) = last.or(from) {
            offsets.insert((topic, partition), last);
        }
    }
    Ok((stores, offsets))
}

/// Whether a read failed because the offset asked for is not in the partition any more (the
/// broker's `OFFSET_OUT_OF_RANGE`, which `auto.offset.reset=error` reports as a failed reset).
fn out_of_range(e: &ReadError) -> bool {
    matches!(
        e,
        ReadError::Consume(k) if matches!(
            k.rdkafka_error_code(),
            Some(RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset)
        )
    )
}

/// Applies `topic`-`partition` from after `from` (or its start) up to its current end; returns
/// the offset of the last record applied, if any. A checkpoint the changelog cannot continue
/// from is [`RestoreError::Corrupted`].
fn restore_partition(
    task: &TaskContext<'_>,
    consumer: &BaseConsumer,
    stores: &mut TaskStores,
    id: crate::state::StoreId,
    topic: &str,
    from: Option<i64>,
) -> Result<Option<i64>, RestoreError> {
    let partition = task.partition;
    if task.cancelled() {
        return Ok(None);
    }
    let store_name = stores.def(id).name.clone();
    let what = format!("restoring store '{store_name}' of task {}", task.id);
    let patience = Patience {
        limit: task.shared.config.task_timeout,
        limit_name: "task.timeout.ms",
        what: &what,
        stop: task.cancel,
    };
    let (low, high) =
        read::watermarks(consumer, topic, partition, &patience).map_err(RestoreError::EndOffset)?;
    let corrupted = |reason, start, end| {
        RestoreError::Corrupted(Box::new(Corruption {
            store: store_name.clone(),
            topic: topic.to_owned(),
            partition,
            checkpointed: from,
            start,
            end,
            reason,
        }))
    };
    if let Some(checkpointed) = from {
        if checkpointed >= high {
            return Err(corrupted(CorruptionReason::CheckpointBeyondEnd, low, high));
        }
        if checkpointed + 1 < low {
            return Err(corrupted(CorruptionReason::OffsetOutOfRange, low, high));
        }
    }
    let start = from.map_or(low, |f| f + 1);
    task.progressed(topic, from.map_or(0, |f| f + 1));
    // The series exist (at zero) for every store partition, restored or not.
    let (records_counter, bytes_counter, remaining) =
        task.shared.metrics.restore(&store_name, partition);
    remaining.set((high - start).max(0));
    if start >= high {
        return Ok(None);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start))
        .map_err(RestoreError::Assign)?;
    consumer.assign(&tpl).map_err(RestoreError::Assign)?;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let (mut records, mut bytes, mut bytes_counted) = (0u64, 0u64, 0u64);
    // The offset of the last record read: where a stopped restore stands.
    let mut last_read: Option<i64> = None;
    let mut batch: Vec<(Vec<u8>, Option<Vec<u8>>, i64)> = Vec::with_capacity(RESTORE_BATCH);
    let ends = HashMap::from([((topic.to_owned(), partition), high)]);
    let read = read::read_to_end(consumer, ends, &patience, |msg| {
        last_read = Some(msg.offset());
        let Some(key) = msg.key() else {
            return Ok(());
        };
        let value = msg.payload().map(<[u8]>::to_vec);
        bytes += (key.len() + value.as_ref().map_or(0, Vec::len)) as u64;
        records += 1;
        let ts = msg.timestamp().to_millis().unwrap_or(0);
        batch.push((key.to_vec(), value, ts));
        if batch.len() >= RESTORE_BATCH {
            stores.restore(id, &batch)?;
            // Progress shows in /metrics while a long restore runs.
            records_counter.inc_by(batch.len() as u64);
            bytes_counter.inc_by(bytes - bytes_counted);
            remaining.set((high - msg.offset() - 1).max(0));
            task.progressed(topic, msg.offset() + 1);
            bytes_counted = bytes;
            batch.clear();
            if last_report.elapsed() >= Duration::from_secs(5) {
                last_report = Instant::now();
                info!(store = %store_name, topic, partition, at = msg.offset(), to = high, records, "restoring");
            }
        }
        Ok(())
    });
    match read {
        Ok(()) => {}
        Err(e) if out_of_range(&e) => {
            // The changelog's start moved past what is being read (retention, deleted records).
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(5))
                .unwrap_or((low, high));
            return Err(corrupted(CorruptionReason::OffsetOutOfRange, low, high));
        }
        Err(e) => return Err(RestoreError::Read(e)),
    }
    stores.restore(id, &batch)?;
    if let Some(last) = last_read {
        task.progressed(topic, last + 1);
    }
    consumer.unassign().map_err(RestoreError::Assign)?;
    records_counter.inc_by(batch.len() as u64);
    bytes_counter.inc_by(bytes - bytes_counted);
    remaining.set(0);
    if task.cancelled() {
        // Every record up to `last_read` is in the store: the caller checkpoints there.
        info!(
            store = %store_name, topic, partition, from = start, reached = ?last_read, to = high, records,
            "restore stopped (the task was revoked); the store keeps what it restored"
        );
        return Ok(last_read);
    }
    let secs = started.elapsed().as_secs_f64();
    info!(
        store = %store_name, topic, partition, from = start, to = high, records, bytes,
        seconds = format!("{secs:.3}"),
        mb_per_s = format!("{:.1}", bytes as f64 / 1e6 / secs.max(1e-9)),
        "store restored from its changelog"
    );
    Ok(Some(high - 1))
}

#[cfg(test)]
pub(crate) mod tests;
