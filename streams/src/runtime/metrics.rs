//! Prometheus metrics of a running application, in the registry `/metrics` serves.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use freshet_topology::sync::Unpoisoned;

use super::client_stats::ClientStatsMetrics;

/// One record in this many has its processing latency observed: reading the clock twice and
/// updating a histogram on every record costs more than the histogram's shape needs.
pub const LATENCY_SAMPLE_EVERY: u64 = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    pub store: String,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CorruptionLabels {
    pub task: String,
    pub store: String,
    /// Why the store's local state was thrown away (see [`Metrics::task_corrupted`]).
    pub reason: String,
}

/// A task's handles into the registry.
#[derive(Clone)]
pub struct TaskMetrics {
    pub processed: Counter,
    pub produced: Counter,
    pub dropped: Counter,
    pub late_dropped: Counter,
    /// `freshet_process_latency_seconds`, observed for one record in [`LATENCY_SAMPLE_EVERY`].
    pub latency: Histogram,
    /// Records seen since the last sample.
    pub until_sample: u64,
}

impl TaskMetrics {
    /// Whether the next record processed is the one in [`LATENCY_SAMPLE_EVERY`] whose latency
    /// is observed: only then is the clock read before it.
    #[inline]
    pub fn sampling(&self) -> bool {
        self.until_sample + 1 >= LATENCY_SAMPLE_EVERY
    }

    /// Counts a record processed; `started`, when it was sampled, is when its processing began.
    #[inline]
    pub fn processed(&mut self, started: Option<std::time::Instant>) {
        self.processed.inc();
        self.until_sample += 1;
        if let Some(started) = started {
            self.until_sample = 0;
            self.latency.observe(started.elapsed().as_secs_f64());
        }
    }
}

/// An input partition's handles into the registry.
#[derive(Clone)]
pub struct PartitionMetrics {
    pub consumed: Counter,
    pub lag: Gauge,
}

/// Handles kept to read counts back (the same counters the registry holds).
#[derive(Default)]
struct Live {
    tasks: std::collections::BTreeMap<String, (Counter, Counter)>,
    /// Records each node of each task received, by task and node name.
    nodes: std::collections::BTreeMap<String, Vec<(String, Counter)>>,
    partitions: std::collections::BTreeMap<(String, i32), (Counter, Gauge)>,
}

/// What one input partition has seen, for the topology page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionCounts {
    /// The topic, as in Kafka.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Records fetched.
    pub consumed: u64,
    /// `freshet_consumer_lag`.
    pub lag: i64,
}

/// The application's metrics; cheap to update from the stream threads.
pub struct Metrics {
    /// The registry every metric below is registered in, under the
    /// names given with the prefix `freshet_` (counters are exposed with a `_total` suffix);
    /// [`Metrics::encode`] writes it out.
    pub registry: Registry,
    /// `freshet_records_consumed`: records fetched from Kafka, per input topic and partition.
    pub records_consumed: Family<PartitionLabels, Counter>,
    /// `freshet_records_processed`: records processed, per task (Kafka Streams'
    /// `process-total`).
    pub records_processed: Family<TaskLabels, Counter>,
    /// `freshet_records_produced`: records sent to Kafka by sinks and store changelogs, per
    /// task (dead-letter records are not counted).
    pub records_produced: Family<TaskLabels, Counter>,
    /// `freshet_records_dropped`: failed records a log-and-continue exception handler skipped,
    /// per task (Kafka Streams' `dropped-records-total`).
    pub records_dropped: Family<TaskLabels, Counter>,
    /// `freshet_consumer_lag`: per input partition, the high watermark minus the offset after
    /// the last record processed (or fetched, before any was processed), in records.
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    /// `freshet_commit_latency_seconds`: how long a commit took (flushing outputs, committing
    /// offsets or the transaction), in seconds.
    pub commit_latency: Histogram,
    /// `freshet_process_latency_seconds`: how long one record took to process and send its
    /// outputs, in seconds, sampled: one record in [`LATENCY_SAMPLE_EVERY`] per task (Kafka
    /// Streams' `process-latency-avg`/`-max`).
    pub process_latency: Histogram,
    /// `freshet_dead_letter_records`: records written to the dead-letter topic
    /// (`errors.dead.letter.queue.topic.name`) by a processing or production handler, per task.
    pub dead_letter_records: Family<TaskLabels, Counter>,
    /// `freshet_restore_remaining_records`: changelog records still to apply to a store
    /// partition being restored, per store and partition (Kafka Streams'
    /// `restore-remaining-records-total`); 0 once restored.
    pub restore_remaining_records: Family<StoreLabels, Gauge>,
    /// librdkafka's statistics of the stream threads' clients (`freshet_kafka_*`).
    pub kafka: std::sync::Arc<ClientStatsMetrics>,
    /// The handles of every task and input partition this instance has had, for the topology
    /// page (the families above cannot be read back by label).
    live: std::sync::Mutex<Live>,
    /// `freshet_rebalances`: rebalances this instance took part in.
    pub rebalances: Counter,
    /// `freshet_late_records_dropped`: records that arrived after their window closed (past
    /// the grace period), per task (Kafka Streams' `dropped-records` for expired windows).
    pub late_records_dropped: Family<TaskLabels, Counter>,
    /// Records the global thread applied to global tables (the initial load included).
    pub global_records: Counter,
    /// `freshet_restored_records`: changelog records applied while restoring a store, per store
    /// and partition (Kafka Streams' `restore-total`).
    pub restored_records: Family<StoreLabels, Counter>,
    /// `freshet_restored_bytes`: changelog bytes (keys and values) applied while restoring a
    /// store, per store and partition.
    pub restored_bytes: Family<StoreLabels, Counter>,
    /// `freshet_standby_restored_records`: changelog records applied to a standby (or warm-up)
    /// task's store, per store and partition (Kafka Streams' `update-total` of standbys).
    pub standby_restored_records: Family<StoreLabels, Counter>,
    /// `freshet_standby_tasks`: the standby and warm-up tasks this instance keeps.
    pub standby_tasks: Gauge,
    /// `freshet_restoring_tasks`: active tasks whose stores are being restored off the stream
    /// threads (their input partitions paused meanwhile).
    pub restoring_tasks: Gauge,
    /// `freshet_task_corrupted`: stores whose local state was found unusable and wiped, to be
    /// restored from the changelog's start, per task, store and reason (Kafka Streams'
    /// `TaskCorruptedException`): `checkpoint_beyond_changelog_end` (the changelog was truncated
    /// or recreated), `offset_out_of_range` (records after the checkpoint were deleted from the
    /// changelog), `store_unopenable` (RocksDB could not open the store's files).
    pub task_corrupted: Family<CorruptionLabels, Counter>,
    /// RocksDB's own memory, from its usage properties: block cache (memtable reservations
    /// included) and memtables, shared by every store of the process.
    pub rocksdb_block_cache_bytes: Gauge,
    /// `freshet_rocksdb_memtable_bytes`: bytes the memtables of every RocksDB store of the
    /// process hold, against `freshet.rocksdb.write.buffer.bytes`.
    pub rocksdb_memtable_bytes: Gauge,
    /// The application state as its ordinal: 0 CREATED, 1 REBALANCING, 2 RUNNING,
    /// 3 PENDING_SHUTDOWN, 4 PENDING_ERROR, 5 ERROR, 6 NOT_RUNNING.
    pub state: Gauge,
}

impl Metrics {
    /// A registry with every metric registered, at zero; the state gauge reads 0 (CREATED).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("freshet");
        let m = Metrics {
            records_consumed: Family::default(),
            records_processed: Family::default(),
            records_produced: Family::default(),
            records_dropped: Family::default(),
            consumer_lag: Family::default(),
            commit_latency: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            process_latency: Histogram::new(exponential_buckets(0.000_001, 4.0, 12)),
            dead_letter_records: Family::default(),
            restore_remaining_records: Family::default(),
            kafka: std::sync::Arc::default(),
            live: std::sync::Mutex::default(),
            rebalances: Counter::default(),
            late_records_dropped: Family::default(),
            global_records: Counter::default(),
            restored_records: Family::default(),
            restored_bytes: Family::default(),
            standby_restored_records: Family::default(),
            standby_tasks: Gauge::default(),
            restoring_tasks: Gauge::default(),
            task_corrupted: Family::default(),
            rocksdb_block_cache_bytes: Gauge::default(),
            rocksdb_memtable_bytes: Gauge::default(),
            state: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "records_consumed",
            "Records fetched from Kafka",
            m.records_consumed.clone(),
        );
        registry.register(
            "records_processed",
            "Records processed per task",
            m.records_processed.clone(),
        );
        registry.register(
            "records_produced",
            "Records sent to Kafka per task",
            m.records_produced.clone(),
        );
        registry.register(
            "records_dropped",
            "Records skipped by a log-and-continue handler, per task",
            m.records_dropped.clone(),
        );
        registry.register(
            "consumer_lag",
            "Records between the fetch position and the log end",
            m.consumer_lag.clone(),
        );
        registry.register(
            "commit_latency_seconds",
            "Time to flush outputs and commit offsets",
            m.commit_latency.clone(),
        );
        registry.register(
            "rebalances",
            "Rebalances this instance took part in",
            m.rebalances.clone(),
        );
        registry.register(
            "late_records_dropped",
            "Records that arrived after their window closed (past the grace period), per task",
            m.late_records_dropped.clone(),
        );
        registry.register(
            "global_records",
            "Records applied to global tables, the initial load included",
            m.global_records.clone(),
        );
        registry.register(
            "restored_records",
            "Changelog records applied while restoring a store",
            m.restored_records.clone(),
        );
        registry.register(
            "restored_bytes",
            "Changelog bytes (keys and values) applied while restoring a store",
            m.restored_bytes.clone(),
        );
        registry.register(
            "standby_restored_records",
            "Changelog records applied to a standby or warm-up task's store",
            m.standby_restored_records.clone(),
        );
        registry.register(
            "standby_tasks",
            "Standby and warm-up tasks this instance keeps",
            m.standby_tasks.clone(),
        );
        registry.register(
            "restoring_tasks",
            "Active tasks whose stores are being restored (their input partitions paused meanwhile)",
            m.restoring_tasks.clone(),
        );
        registry.register(
            "task_corrupted",
            "Stores whose local state was found unusable, wiped and restored from the changelog",
            m.task_corrupted.clone(),
        );
        registry.register(
            "rocksdb_block_cache_bytes",
            "Bytes RocksDB's shared block cache holds (memtable reservations included)",
            m.rocksdb_block_cache_bytes.clone(),
        );
        registry.register(
            "rocksdb_memtable_bytes",
            "Bytes the memtables of every RocksDB store hold",
            m.rocksdb_memtable_bytes.clone(),
        );
        registry.register(
            "state",
            "Application state (0 CREATED .. 6 NOT_RUNNING)",
            m.state.clone(),
        );
        registry.register(
            "process_latency_seconds",
            "Time to process one record and send its outputs, sampled",
            m.process_latency.clone(),
        );
        registry.register(
            "dead_letter_records",
            "Records written to the dead-letter topic, per task",
            m.dead_letter_records.clone(),
        );
        registry.register(
            "restore_remaining_records",
            "Changelog records still to apply to a store partition being restored",
            m.restore_remaining_records.clone(),
        );
        m.kafka.register(&mut registry);
        Metrics { registry, ..m }
    }

    /// The counters of one task, looked up once so the hot path only increments.
    pub fn task(&self, task: &str) -> TaskMetrics {
        let labels = TaskLabels {
            task: task.to_owned(),
        };
        // At zero from the task's start, so that the first dead letter is an increase.
        let _ = self.dead_letter_records.get_or_create(&labels);
        let processed = self.records_processed.get_or_create(&labels).clone();
        let produced = self.records_produced.get_or_create(&labels).clone();
        self.live
            .lock_unpoisoned()
            .tasks
            .insert(task.to_owned(), (processed.clone(), produced.clone()));
        TaskMetrics {
            processed,
            produced,
            dropped: self.records_dropped.get_or_create(&labels).clone(),
            late_dropped: self.late_records_dropped.get_or_create(&labels).clone(),
            latency: self.process_latency.clone(),
            until_sample: 0,
        }
    }

    /// The consumed counter and lag gauge of one input partition.
    pub fn partition(&self, topic: &str, partition: i32) -> PartitionMetrics {
        let labels = PartitionLabels {
            topic: topic.to_owned(),
            partition,
        };
        let consumed = self.records_consumed.get_or_create(&labels).clone();
        let lag = self.consumer_lag.get_or_create(&labels).clone();
        self.live.lock_unpoisoned().partitions.insert(
            (topic.to_owned(), partition),
            (consumed.clone(), lag.clone()),
        );
        PartitionMetrics { consumed, lag }
    }

    /// The counter of records node `node` of task `task` receives (Kafka Streams'
    /// processor-node `process-total`); read back by [`Metrics::node_counts`], not exported to
    /// Prometheus (one series per node and task would be too many).
    pub fn node(&self, task: &str, node: &str) -> Counter {
        let mut live = self.live.lock_unpoisoned();
        let nodes = live.nodes.entry(task.to_owned()).or_default();
        if let Some((_, c)) = nodes.iter().find(|(n, _)| n == node) {
            return c.clone();
        }
        let c = Counter::default();
        nodes.push((node.to_owned(), c.clone()));
        c
    }

    /// Records each node of task `task` received so far, by node name.
    pub fn node_counts(&self, task: &str) -> Vec<(String, u64)> {
        self.live
            .lock_unpoisoned()
            .nodes
            .get(task)
            .map(|nodes| nodes.iter().map(|(n, c)| (n.clone(), c.get())).collect())
            .unwrap_or_default()
    }

    /// Records processed and produced by task `task` so far, if it ever ran here.
    pub fn task_counts(&self, task: &str) -> Option<(u64, u64)> {
        self.live
            .lock_unpoisoned()
            .tasks
            .get(task)
            .map(|(processed, produced)| (processed.get(), produced.get()))
    }

    /// What every input partition this instance has had has seen.
    pub fn partition_counts(&self) -> Vec<PartitionCounts> {
        self.live
            .lock_unpoisoned()
            .partitions
            .iter()
            .map(|((topic, partition), (consumed, lag))| PartitionCounts {
                topic: topic.clone(),
                partition: *partition,
                consumed: consumed.get(),
                lag: lag.get(),
            })
            .collect()
    }

    /// The restored-records and restored-bytes counters and the remaining-records gauge of one
    /// store partition.
    pub fn restore(&self, store: &str, partition: i32) -> (Counter, Counter, Gauge) {
        let labels = StoreLabels {
            store: store.to_owned(),
            partition,
        };
        (
            self.restored_records.get_or_create(&labels).clone(),
            self.restored_bytes.get_or_create(&labels).clone(),
            self.restore_remaining_records
                .get_or_create(&labels)
                .clone(),
        )
    }

    /// The changelog records still to apply to store `store` of `partition`, as last set.
    pub fn restore_remaining(&self, store: &str, partition: i32) -> i64 {
        self.restore_remaining_records
            .get_or_create(&StoreLabels {
                store: store.to_owned(),
                partition,
            })
            .get()
    }

    /// The counter of changelog records applied to store `store` of a standby of `partition`.
    pub fn standby_records(&self, store: &str, partition: i32) -> Counter {
        self.standby_restored_records
            .get_or_create(&StoreLabels {
                store: store.to_owned(),
                partition,
            })
            .clone()
    }

    /// The counter of store `store` of task `task` being found corrupted for `reason`.
    pub fn task_corrupted(&self, task: &str, store: &str, reason: &str) -> Counter {
        self.task_corrupted
            .get_or_create(&CorruptionLabels {
                task: task.to_owned(),
                store: store.to_owned(),
                reason: reason.to_owned(),
            })
            .clone()
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
