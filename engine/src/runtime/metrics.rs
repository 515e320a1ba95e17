//! Prometheus metrics of a running application, in the registry `/metrics` serves.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: i32,
}

/// A task's handles into the registry.
#[derive(Clone)]
pub struct TaskMetrics {
    pub processed: Counter,
    pub produced: Counter,
    pub dropped: Counter,
    pub latency: Histogram,
}

/// An input partition's handles into the registry.
#[derive(Clone)]
pub struct PartitionMetrics {
    pub consumed: Counter,
    pub lag: Gauge,
}

/// The application's metrics; cheap to update from the stream threads.
pub struct Metrics {
    pub registry: Registry,
    pub records_consumed: Family<PartitionLabels, Counter>,
    pub records_processed: Family<TaskLabels, Counter>,
    pub records_produced: Family<TaskLabels, Counter>,
    pub records_dropped: Family<TaskLabels, Counter>,
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    pub commit_latency: Histogram,
    pub process_latency: Histogram,
    pub rebalances: Counter,
    /// The application state as its ordinal: 0 CREATED, 1 REBALANCING, 2 RUNNING,
    /// 3 PENDING_SHUTDOWN, 4 PENDING_ERROR, 5 ERROR, 6 NOT_RUNNING.
    pub state: Gauge,
}

impl Metrics {
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
            rebalances: Counter::default(),
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
            "state",
            "Application state (0 CREATED .. 6 NOT_RUNNING)",
            m.state.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The counters of one task, looked up once so the hot path only increments.
    pub fn task(&self, task: &str) -> TaskMetrics {
        let labels = TaskLabels {
            task: task.to_owned(),
        };
        TaskMetrics {
            processed: self.records_processed.get_or_create(&labels).clone(),
            produced: self.records_produced.get_or_create(&labels).clone(),
            dropped: self.records_dropped.get_or_create(&labels).clone(),
            latency: self.process_latency.clone(),
        }
    }

    /// The consumed counter and lag gauge of one input partition.
    pub fn partition(&self, topic: &str, partition: i32) -> PartitionMetrics {
        let labels = PartitionLabels {
            topic: topic.to_owned(),
            partition,
        };
        PartitionMetrics {
            consumed: self.records_consumed.get_or_create(&labels).clone(),
            lag: self.consumer_lag.get_or_create(&labels).clone(),
        }
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
