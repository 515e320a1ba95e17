//! librdkafka's own statistics (`statistics.interval.ms`) as Prometheus metrics: broker
//! round-trip times and request queues, the consumer's lag and fetch queue per partition, the
//! producer's queue. Named after the Java clients' JMX metrics they correspond to
//! (`request-latency-avg`, `records-lag`, ...), under `freshet_kafka_`.
//!
//! Each client (a stream thread's consumer or producer) reports every `statistics.interval.ms`
//! on its own thread; a report replaces that client's series, so a partition revoked or a
//! broker gone leaves no stale value behind.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use freshet_topology::sync::Unpoisoned;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rdkafka::Statistics;

/// How often a stream thread's clients report their statistics unless
/// `statistics.interval.ms` is set: often enough for a 30 s scrape interval.
pub const DEFAULT_STATISTICS_INTERVAL_MS: &str = "10000";

/// One client.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientLabels {
    /// The client's `client.id`, e.g. `app-StreamThread-1-consumer`.
    pub client_id: String,
}

/// One client's connection to one broker.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BrokerLabels {
    /// The client's `client.id`.
    pub client_id: String,
    /// The broker's node id.
    pub node_id: String,
}

/// One partition a client fetches.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientPartitionLabels {
    /// The client's `client.id`.
    pub client_id: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

/// A gauge of seconds.
type Seconds = Gauge<f64, AtomicU64>;

/// The series one client's last report set, removed when the next one lacks them.
#[derive(Default)]
struct Reported {
    brokers: HashSet<BrokerLabels>,
    partitions: HashSet<ClientPartitionLabels>,
}

/// The metrics librdkafka's statistics feed; shared by every client of the process.
#[derive(Default)]
pub struct ClientStatsMetrics {
    /// `freshet_kafka_request_latency_avg_seconds`: the broker round-trip time, average over
    /// the last interval (Java: `request-latency-avg` of `*-node-metrics`).
    pub request_latency_avg: Family<BrokerLabels, Seconds>,
    /// `freshet_kafka_request_latency_max_seconds`: the longest broker round-trip time in the
    /// last interval (Java: `request-latency-max`).
    pub request_latency_max: Family<BrokerLabels, Seconds>,
    /// `freshet_kafka_requests_in_flight`: requests sent to the broker awaiting its response
    /// (Java: `requests-in-flight`).
    pub requests_in_flight: Family<BrokerLabels, Gauge>,
    /// `freshet_kafka_request_queue`: requests waiting to be sent to the broker.
    pub request_queue: Family<BrokerLabels, Gauge>,
    /// `freshet_kafka_records_lag`: the consumer's lag per partition, the high watermark
    /// minus its position (Java: `records-lag` of `consumer-fetch-manager-metrics`).
    pub records_lag: Family<ClientPartitionLabels, Gauge>,
    /// `freshet_kafka_fetch_queue_records`: records fetched and not yet handed to the
    /// application, per partition.
    pub fetch_queue_records: Family<ClientPartitionLabels, Gauge>,
    /// `freshet_kafka_producer_queue_records`: records in the producer's queues, not yet
    /// acknowledged (Java: `buffer-total-bytes` minus `buffer-available-bytes`, in records).
    pub producer_queue_records: Family<ClientLabels, Gauge>,
    /// `freshet_kafka_producer_queue_bytes`: bytes of those records.
    pub producer_queue_bytes: Family<ClientLabels, Gauge>,
    /// `freshet_kafka_reply_queue`: callbacks (deliveries, rebalances, errors) waiting for the
    /// application to poll.
    pub reply_queue: Family<ClientLabels, Gauge>,
    reported: Mutex<HashMap<String, Reported>>,
}

impl ClientStatsMetrics {
    /// Registers every metric in `registry` (whose prefix is `freshet`).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("kafka");
        r.register(
            "request_latency_avg_seconds",
            "Broker round-trip time, average over the last statistics interval",
            self.request_latency_avg.clone(),
        );
        r.register(
            "request_latency_max_seconds",
            "Longest broker round-trip time in the last statistics interval",
            self.request_latency_max.clone(),
        );
        r.register(
            "requests_in_flight",
            "Requests sent to the broker awaiting a response",
            self.requests_in_flight.clone(),
        );
        r.register(
            "request_queue",
            "Requests waiting to be sent to the broker",
            self.request_queue.clone(),
        );
        r.register(
            "records_lag",
            "Consumer lag per partition: high watermark minus the consumer's position",
            self.records_lag.clone(),
        );
        r.register(
            "fetch_queue_records",
            "Records fetched and not yet handed to the application, per partition",
            self.fetch_queue_records.clone(),
        );
        r.register(
            "producer_queue_records",
            "Records in the producer's queues, not yet acknowledged",
            self.producer_queue_records.clone(),
        );
        r.register(
            "producer_queue_bytes",
            "Bytes of the records in the producer's queues",
            self.producer_queue_bytes.clone(),
        );
        r.register(
            "reply_queue",
            "Callbacks waiting for the application to poll",
            self.reply_queue.clone(),
        );
    }

    /// Takes one client's report: sets its series and removes those it no longer reports.
    pub fn record(&self, stats: &Statistics) {
        let client = ClientLabels {
            client_id: stats.client_id.clone(),
        };
        self.reply_queue.get_or_create(&client).set(stats.replyq);
        if stats.client_type == "producer" {
            self.producer_queue_records
                .get_or_create(&client)
                .set(stats.msg_cnt as i64);
            self.producer_queue_bytes
                .get_or_create(&client)
                .set(stats.msg_size as i64);
        }
        let mut now = Reported::default();
        // Bootstrap servers and the group coordinator's logical connection have no node id of
        // their own (-1, or a duplicate of a real broker's).
        for broker in stats.brokers.values() {
            if broker.nodeid < 0 || broker.source == "logical" {
                continue;
            }
            let labels = BrokerLabels {
                client_id: stats.client_id.clone(),
                node_id: broker.nodeid.to_string(),
            };
            // librdkafka's windows are in microseconds; an empty window (no request in the
            // interval) reads 0.
            if let Some(rtt) = &broker.rtt {
                self.request_latency_avg
                    .get_or_create(&labels)
                    .set(rtt.avg as f64 / 1e6);
                self.request_latency_max
                    .get_or_create(&labels)
                    .set(rtt.max as f64 / 1e6);
            }
            self.requests_in_flight
                .get_or_create(&labels)
                .set(broker.waitresp_cnt);
            self.request_queue
                .get_or_create(&labels)
                .set(broker.outbuf_cnt);
            now.brokers.insert(labels);
        }
        if stats.client_type == "consumer" {
            for topic in stats.topics.values() {
                for p in topic.partitions.values() {
                    // -1 is librdkafka's "unassigned" partition; a lag of -1 is not known yet.
                    if p.partition < 0 || !p.desired || p.consumer_lag < 0 {
                        continue;
                    }
                    let labels = ClientPartitionLabels {
                        client_id: stats.client_id.clone(),
                        topic: topic.topic.clone(),
                        partition: p.partition,
                    };
                    self.records_lag.get_or_create(&labels).set(p.consumer_lag);
                    self.fetch_queue_records
                        .get_or_create(&labels)
                        .set(p.fetchq_cnt);
                    now.partitions.insert(labels);
                }
            }
        }
        let mut reported = self.reported.lock_unpoisoned();
        if let Some(before) = reported.get(&stats.client_id) {
            for gone in before.brokers.difference(&now.brokers) {
                self.request_latency_avg.remove(gone);
                self.request_latency_max.remove(gone);
                self.requests_in_flight.remove(gone);
                self.request_queue.remove(gone);
            }
            for gone in before.partitions.difference(&now.partitions) {
                self.records_lag.remove(gone);
                self.fetch_queue_records.remove(gone);
            }
        }
        reported.insert(stats.client_id.clone(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as librdkafka 2.x writes it (trimmed to the fields read), parsed by rdkafka's
    /// own `Statistics`.
    fn report(client_type: &str, partitions: &[(i32, i64)]) -> Statistics {
        let parts: serde_json::Map<String, serde_json::Value> = partitions
            .iter()
            .map(|(p, lag)| {
                (
                    p.to_string(),
                    serde_json::json!({"partition": p, "broker": 1, "leader": 1, "desired": true,
                        "unknown": false, "msgq_cnt": 0, "msgq_bytes": 0, "xmit_msgq_cnt": 0,
                        "xmit_msgq_bytes": 0, "fetchq_cnt": 3, "fetchq_size": 30,
                        "fetch_state": "active", "query_offset": 0, "next_offset": 10,
                        "app_offset": 10, "stored_offset": 10, "committed_offset": 10,
                        "eof_offset": 10, "lo_offset": 0, "hi_offset": 10 + lag, "ls_offset": 10 + lag,
                        "consumer_lag": lag, "consumer_lag_stored": lag, "txmsgs": 0,
                        "txbytes": 0, "rxmsgs": 10, "rxbytes": 100, "msgs": 10,
                        "rx_ver_drops": 0, "msgs_inflight": 0, "next_ack_seq": 0,
                        "next_err_seq": 0, "acked_msgid": 0}),
                )
            })
            .collect();
        let window = serde_json::json!({"min": 100, "max": 4000, "avg": 1500, "sum": 3000,
            "cnt": 2, "stddev": 0, "hdrsize": 0, "p50": 0, "p75": 0, "p90": 0, "p95": 0,
            "p99": 0, "p99_99": 0, "outofrange": 0});
        let broker = |name: &str, nodeid: i32, source: &str| {
            serde_json::json!({"name": name, "nodeid": nodeid, "nodename": "127.0.0.1:9092",
                "source": source, "state": "UP", "stateage": 1, "outbuf_cnt": 2,
                "outbuf_msg_cnt": 0, "waitresp_cnt": 1, "waitresp_msg_cnt": 0, "tx": 1,
                "txbytes": 1, "txerrs": 0, "txretries": 0, "txidle": 0, "req_timeouts": 0,
                "rx": 1, "rxbytes": 1, "rxerrs": 0, "rxcorriderrs": 0, "rxpartial": 0,
                "rxidle": 0, "zbuf_grow": 0, "buf_grow": 0, "wakeups": 0, "connects": 1,
                "disconnects": 0, "int_latency": window, "outbuf_latency": window,
                "rtt": window, "throttle": window, "req": {}, "toppars": {}})
        };
        serde_json::from_value(serde_json::json!({
            "name": "c#consumer-1", "client_id": "c", "type": client_type, "ts": 1, "time": 1,
            "age": 1, "replyq": 4, "msg_cnt": 7, "msg_size": 70, "msg_max": 100,
            "msg_size_max": 1000, "tx": 1, "tx_bytes": 1, "rx": 1, "rx_bytes": 1, "txmsgs": 1,
            "txmsg_bytes": 1, "rxmsgs": 1, "rxmsg_bytes": 1, "simple_cnt": 0,
            "metadata_cache_cnt": 1,
            "brokers": {
                "127.0.0.1:9092/1": broker("127.0.0.1:9092/1", 1, "configured"),
                "GroupCoordinator": broker("GroupCoordinator", 1, "logical"),
                "127.0.0.1:9092/bootstrap": broker("127.0.0.1:9092/bootstrap", -1, "configured"),
            },
            "topics": {"in": {"topic": "in", "age": 1, "metadata_age": 1, "batchsize": window,
                "batchcnt": window, "partitions": parts}},
        }))
        .expect("a statistics report")
    }

    #[test]
    fn a_report_sets_its_series_and_the_next_removes_what_it_lacks() {
        let m = ClientStatsMetrics::default();
        let mut registry = Registry::with_prefix("freshet");
        m.register(&mut registry);
        m.record(&report("consumer", &[(0, 5), (1, 0), (-1, 0)]));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(r#"freshet_kafka_records_lag{client_id="c",topic="in",partition="0"} 5"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"freshet_kafka_request_latency_avg_seconds{client_id="c",node_id="1"} 0.0015"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"freshet_kafka_requests_in_flight{client_id="c",node_id="1"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"node_id="-1""#), "{text}");
        assert!(!text.contains(r#"partition="-1""#), "{text}");
        m.record(&report("consumer", &[(1, 2)]));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(!text.contains(r#"partition="0""#), "revoked stays: {text}");
        assert!(text.contains(r#"partition="1"} 2"#), "{text}");
    }

    #[test]
    fn a_producer_reports_its_queue() {
        let m = ClientStatsMetrics::default();
        m.record(&report("producer", &[]));
        let c = ClientLabels {
            client_id: "c".into(),
        };
        assert_eq!(m.producer_queue_records.get_or_create(&c).get(), 7);
        assert_eq!(m.producer_queue_bytes.get_or_create(&c).get(), 70);
        assert_eq!(m.reply_queue.get_or_create(&c).get(), 4);
    }
}
