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

/// The application's metrics; cheap to update from the stream threads.
pub struct Metrics {
    pub registry: Registry,
    pub records_consumed: Family<PartitionLabels, Counter>,
    pub records_processed: Family<TaskLabels, Counter>,
    pub records_produced: Family<TaskLabels, Counter>,
    pub records_dropped: Family<TaskLabels, Counter>,
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    pub commit_latency: Histogram,
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

    pub fn consumed(&self, topic: &str, partition: i32) {
        self.records_consumed
            .get_or_create(&PartitionLabels {
                topic: topic.to_owned(),
                partition,
            })
            .inc();
    }

    pub fn processed(&self, task: &str) {
        self.records_processed
            .get_or_create(&TaskLabels {
                task: task.to_owned(),
            })
            .inc();
    }

    pub fn produced(&self, task: &str) {
        self.records_produced
            .get_or_create(&TaskLabels {
                task: task.to_owned(),
            })
            .inc();
    }

    pub fn dropped(&self, task: &str) {
        self.records_dropped
            .get_or_create(&TaskLabels {
                task: task.to_owned(),
            })
            .inc();
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
