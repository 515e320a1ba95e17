//! Opening a task's state stores and restoring them from their changelogs before the task
//! processes anything (Kafka Streams' restoration phase).
//!
//! A store restores from the offset after its checkpointed one when the task directory holds a
//! valid checkpoint, else from the changelog's start into an emptied store; in-memory stores
//! always restore from the start. The restore consumer reads each changelog partition up to the
//! end offset seen when restoration began.
//!
//! [`StateRestorer`] is the seam between the tasks and their restoration (Kafka Streams'
//! `StoreChangelogReader`): the task manager registers the tasks whose stores need restoring,
//! steps the restorer, and takes the restored stores back when it is done. Today each step
//! restores one task on the stream thread; the interface is what a restorer on its own thread
//! (Kafka Streams' `StateUpdater`) would keep.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::Shared;
use super::error::{ReadError, RestoreError};
use crate::config::ProcessingGuarantee;
use crate::state::{
    Checkpoint, InMemoryStore, KeyValueStore, Offsets, RocksDbStore, StateDirectory, StateError,
    StoreBudget, TaskDirectory, TaskStores,
};
use crate::topology::{SubTopology, Topology};

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
}

/// Opens and restores the stores of registered tasks, one task per [`StateRestorer::restore_step`]
/// (Kafka Streams' `ChangelogReader`): the task manager registers tasks on assignment, steps the
/// restorer until [`StateRestorer::is_done`], and takes each task's stores, or the reason they
/// could not be restored, from [`StateRestorer::take_restored`].
pub(crate) struct StateRestorer {
    shared: Arc<Shared>,
    topology: Arc<Topology>,
    pending: VecDeque<RestoreRequest>,
    restored: Vec<(RestoreRequest, Result<RestoredStores, RestoreError>)>,
}

impl StateRestorer {
    pub fn new(shared: Arc<Shared>, topology: Arc<Topology>) -> Self {
        StateRestorer {
            shared,
            topology,
            pending: VecDeque::new(),
            restored: Vec::new(),
        }
    }

    /// Queues a task's stores for restoration; a task already queued is not queued twice.
    pub fn register(&mut self, request: RestoreRequest) {
        if !self.pending.iter().any(|r| r.task == request.task) {
            self.pending.push_back(request);
        }
    }

    /// Opens and restores the stores of the next registered task (blocking until its changelogs
    /// are read to their end).
    pub fn restore_step(&mut self) {
        let Some(request) = self.pending.pop_front() else {
            return;
        };
        let result = match self
            .topology
            .subtopologies()
            .iter()
            .find(|s| s.id == request.subtopology)
        {
            Some(sub) => open_and_restore(
                &self.topology,
                sub,
                request.partition,
                &request.task,
                &self.shared,
            ),
            None => Err(RestoreError::UnknownSubtopology(request.subtopology)),
        };
        self.restored.push((request, result));
    }

    /// Whether every registered task has been restored (or failed to be).
    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// The tasks restored (or failed) since the last call, in the order they were registered.
    pub fn take_restored(&mut self) -> Vec<(RestoreRequest, Result<RestoredStores, RestoreError>)> {
        std::mem::take(&mut self.restored)
    }
}

const RESTORE_BATCH: usize = 10_000;
/// How long restoration may see no progress before it gives up.
const RESTORE_STALL: Duration = Duration::from_secs(60);
/// How long a task waits for a directory another thread of this process still holds while it
/// closes the task in the same rebalance.
const LOCK_WAIT: Duration = Duration::from_secs(30);

fn lock_with_retry(
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

/// Opens the stores of task `task_id` (partition `partition` of `sub`) and restores them.
pub(crate) fn open_and_restore(
    topology: &Topology,
    sub: &SubTopology,
    partition: i32,
    task_id: &str,
    shared: &Shared,
) -> Result<RestoredStores, RestoreError> {
    let defs = topology.stores_of(sub);
    let config = &shared.config;
    let cache_limit = if defs.is_empty() {
        0
    } else {
        // Kafka Streams splits statestore.cache.max.bytes among threads; each thread's share
        // is split again among the stores of a task, assuming a handful of tasks per thread.
        (config.cache_max_bytes as usize / config.num_stream_threads.max(1) / 4 / defs.len())
            .max(if config.cache_max_bytes == 0 { 0 } else { 4096 })
    };
    let exactly_once = config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2;
    let mut stores = TaskStores::new(partition, cache_limit);
    if defs.is_empty() {
        return Ok(RestoredStores {
            stores,
            directory: None,
            offsets: Offsets::new(),
            globals: shared.globals.get().cloned(),
            exactly_once,
        });
    }
    let Some(state) = shared.stores.as_ref() else {
        return Err(RestoreError::NoStateDirectory);
    };
    let dir = lock_with_retry(&state.directory, task_id)?;
    let checkpoint = Checkpoint::in_directory(dir.path());
    let checkpointed = checkpoint.read().unwrap_or_else(|e| {
        warn!(task = task_id, error = %e, "ignoring an unreadable checkpoint; restoring from the changelogs' start");
        Offsets::new()
    });
    let app = &config.application_id;
    for def in defs {
        let inner: Box<dyn KeyValueStore> = if def.in_memory {
            Box::new(InMemoryStore::new(&def.name))
        } else {
            let path = dir.path().join("rocksdb").join(&def.name);
            let changelog = def.changelog().resolve(app);
            if def.logged && !checkpointed.contains_key(&(changelog, partition)) && path.exists() {
                // Without a checkpoint the files may hold anything up to a crash: the store is
                // rebuilt from the changelog's start, and deleting is faster than emptying.
                std::fs::remove_dir_all(&path).map_err(|e| RestoreError::RemoveStore {
                    path: path.display().to_string(),
                    source: Arc::new(e),
                })?;
            }
            Box::new(RocksDbStore::open(&def.name, &path, &state.budget)?)
        };
        let changelog = def.logged.then(|| def.changelog().resolve(app));
        stores.add(def.clone(), inner, changelog);
    }
    let mut offsets = Offsets::new();
    let logged: Vec<_> = stores
        .changelogs()
        .map(|(id, topic)| (id, topic.to_owned()))
        .collect();
    if !logged.is_empty() {
        let consumer: BaseConsumer = super::assigning_consumer_config(
            &shared.config,
            "restore-consumer",
            "restore-consumer",
            &shared.config.restore_consumer,
        )
        .create()
        .map_err(RestoreError::Consumer)?;
        for (id, topic) in logged {
            let in_memory = stores.def(id).in_memory;
            // In memory nothing survived; on disk an unchecked store was deleted before opening.
            let from = match checkpointed.get(&(topic.clone(), partition)) {
                Some(&offset) if !in_memory => Some(offset),
                _ => None,
            };
            let last =
                restore_partition(&consumer, &mut stores, id, &topic, partition, from, shared)
                    .map_err(|e| RestoreError::Store {
                        store: stores.def(id).name.clone(),
                        topic: topic.clone(),
                        partition,
                        source: Box::new(e),
                    })?;
            if let Some(last) = last.or(from) {
                offsets.insert((topic, partition), last);
            }
        }
    }
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

/// Applies `topic-partition` from after `from` (or its start) up to its current end; returns the
/// offset of the last record applied, if any.
/// Polls the assigned partitions until each has reached its end offset in `ends`, handing every
/// record to `apply`. A partition whose last offsets were compacted away is done once the
/// consumer's position reaches its end. Gives up after `stall` without a record.
pub(super) fn read_to_end(
    consumer: &BaseConsumer,
    mut ends: HashMap<(String, i32), i64>,
    stall: Duration,
    mut apply: impl FnMut(&BorrowedMessage<'_>) -> Result<(), StateError>,
) -> Result<(), ReadError> {
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                last_progress = Instant::now();
                apply(&msg).map_err(|e| ReadError::Apply(Arc::new(e)))?;
                let key = (msg.topic().to_owned(), msg.partition());
                if ends.get(&key).is_some_and(|end| msg.offset() + 1 >= *end) {
                    ends.remove(&key);
                }
            }
            Some(Err(e)) => return Err(ReadError::Consume(e)),
            None => {
                if let Ok(positions) = consumer.position() {
                    ends.retain(|(t, p), end| {
                        positions
                            .find_partition(t, *p)
                            .and_then(|e| e.offset().to_raw())
                            .is_none_or(|pos| pos < *end)
                    });
                }
                if last_progress.elapsed() > stall {
                    let left: Vec<String> = ends
                        .iter()
                        .map(|((t, p), end)| format!("{t}-{p} up to offset {end}"))
                        .collect();
                    return Err(ReadError::Stalled {
                        seconds: stall.as_secs(),
                        left: left.join(", "),
                    });
                }
            }
        }
    }
    Ok(())
}

fn restore_partition(
    consumer: &BaseConsumer,
    stores: &mut TaskStores,
    id: crate::state::StoreId,
    topic: &str,
    partition: i32,
    from: Option<i64>,
    shared: &Shared,
) -> Result<Option<i64>, RestoreError> {
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(15))
        .map_err(RestoreError::EndOffset)?;
    let start = from.map_or(low, |f| (f + 1).max(low));
    if start >= high {
        return Ok(None);
    }
    let store_name = stores.def(id).name.clone();
    let (records_counter, bytes_counter) = shared.metrics.restore(&store_name, partition);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start))
        .map_err(RestoreError::Assign)?;
    consumer.assign(&tpl).map_err(RestoreError::Assign)?;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let (mut records, mut bytes, mut bytes_counted) = (0u64, 0u64, 0u64);
    let mut batch: Vec<(Vec<u8>, Option<Vec<u8>>, i64)> = Vec::with_capacity(RESTORE_BATCH);
    let ends = HashMap::from([((topic.to_owned(), partition), high)]);
    read_to_end(consumer, ends, RESTORE_STALL, |msg| {
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
            bytes_counted = bytes;
            batch.clear();
            if last_report.elapsed() >= Duration::from_secs(5) {
                last_report = Instant::now();
                info!(store = %store_name, topic, partition, at = msg.offset(), to = high, records, "restoring");
            }
        }
        Ok(())
    })
    .map_err(RestoreError::Read)?;
    stores.restore(id, &batch)?;
    consumer.unassign().map_err(RestoreError::Assign)?;
    records_counter.inc_by(batch.len() as u64);
    bytes_counter.inc_by(bytes - bytes_counted);
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
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{Layer, LayerSource, StreamsConfig};
    use freshet_spec::{Defaults, compile, parse_manifest};

    /// An application whose one task has a RocksDB store that is not logged: opening it needs
    /// no broker.
    fn unlogged_app(guarantee: &str, dir: &tempfile::TempDir) -> super::super::KafkaStreams {
        let spec = parse_manifest(
            r#"
applicationId: ckpt
bootstrapServers: 127.0.0.1:1
topology:
  streams: [{ name: input, topic: input }]
  pipelines:
    - name: counts
      from: input
      steps:
        - groupByKey: {}
        - count: { store: counts, logging: false }
"#,
        )
        .unwrap();
        let topology = compile(
            &spec.topology,
            Defaults {
                key_serde: "string".into(),
                value_serde: "string".into(),
            },
        )
        .unwrap();
        let entries: BTreeMap<String, String> = [
            ("application.id", "ckpt"),
            ("bootstrap.servers", "127.0.0.1:1"),
            ("processing.guarantee", guarantee),
            ("state.dir", dir.path().to_str().unwrap()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = StreamsConfig::resolve(&[Layer::new(LayerSource::Config, entries)]).unwrap();
        super::super::KafkaStreams::new(topology, config, None)
    }

    fn open_with_checkpoint(guarantee: &str) -> (tempfile::TempDir, Offsets, Offsets) {
        let dir = tempfile::tempdir().unwrap();
        let app = unlogged_app(guarantee, &dir);
        let sub = &app.topology.subtopologies()[0];
        let task_dir = dir.path().join("ckpt").join("0_0");
        std::fs::create_dir_all(&task_dir).unwrap();
        let checkpoint = Checkpoint::in_directory(&task_dir);
        let mut offsets = Offsets::new();
        offsets.insert(("ckpt-other-changelog".into(), 0), 7);
        checkpoint.write(&offsets).unwrap();
        let restored = open_and_restore(&app.topology, sub, 0, "0_0", &app.shared).unwrap();
        let left = checkpoint.read().unwrap();
        drop(restored);
        (dir, offsets, left)
    }

    #[test]
    fn exactly_once_deletes_the_checkpoint_before_processing() {
        let (_dir, _written, left) = open_with_checkpoint("exactly_once_v2");
        assert!(
            left.is_empty(),
            "a crash from here on must restore from the changelog"
        );
    }

    #[test]
    fn at_least_once_keeps_the_checkpoint() {
        let (_dir, written, left) = open_with_checkpoint("at_least_once");
        assert_eq!(left, written);
    }

    #[test]
    fn the_restorer_hands_back_each_registered_task_once() {
        let dir = tempfile::tempdir().unwrap();
        let app = unlogged_app("at_least_once", &dir);
        let mut restorer = StateRestorer::new(app.shared.clone(), app.topology.clone());
        assert!(restorer.is_done());
        let request = RestoreRequest {
            task: "0_0".into(),
            subtopology: 0,
            partition: 0,
        };
        restorer.register(request.clone());
        restorer.register(request);
        restorer.register(RestoreRequest {
            task: "9_0".into(),
            subtopology: 9,
            partition: 0,
        });
        assert!(!restorer.is_done());
        let mut restored = Vec::new();
        while !restorer.is_done() {
            restorer.restore_step();
            restored.extend(restorer.take_restored());
        }
        assert_eq!(restored.len(), 2, "a task registered twice restores once");
        assert_eq!(restored[0].0.task, "0_0");
        assert!(restored[0].1.is_ok());
        assert!(matches!(
            restored[1].1,
            Err(RestoreError::UnknownSubtopology(9))
        ));
        assert!(restorer.take_restored().is_empty());
    }
}
