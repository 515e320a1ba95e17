//! Producing, consuming and running applications against the test broker.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use freshet_streams::config::{Layer, LayerSource, StreamsConfig};
use freshet_streams::runtime::{KafkaStreams, State};
use freshet_streams::topology::Topology;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::kafka_bootstrap;

/// A record to produce: key and value bytes, either of which may be null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// A record read back from a topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Received {
    pub topic: String,
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Received {
    pub fn key_str(&self) -> &str {
        std::str::from_utf8(self.key.as_deref().unwrap_or_default()).expect("UTF-8 key")
    }

    pub fn value_str(&self) -> &str {
        std::str::from_utf8(self.value.as_deref().unwrap_or_default()).expect("UTF-8 value")
    }
}

/// Creates topics (name, partitions) and waits until the broker reports them.
pub async fn create_topics(topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("admin client");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    wait_for_leaders(topics);
}

/// Creates one topic with topic configs (`max.message.bytes`...) and waits for its leaders.
pub async fn create_topic_with_config(topic: &str, partitions: i32, config: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("admin client");
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in config {
        new = new.set(k, v);
    }
    let results = admin
        .create_topics(
            &[new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    wait_for_leaders(&[(topic, partitions)]);
}

/// Waits until the broker's metadata shows every partition of `topics` with a leader, so a
/// producer started next does not race the new topics' propagation.
pub fn wait_for_leaders(topics: &[(&str, i32)]) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(30);
    for (topic, partitions) in topics {
        loop {
            let ready = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .ok()
                .and_then(|m| {
                    m.topics().first().map(|t| {
                        t.error().is_none()
                            && t.partitions().len() == *partitions as usize
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    })
                })
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "topic {topic} has no leaders after 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Record timestamps in tests are relative to one base an hour before the test run started, so
/// they are realistic: records stamped near 1970 would be deleted by the broker's 7-day retention
/// as soon as its retention check runs.
pub fn base_timestamp() -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64;
        now - 3_600_000
    })
}

/// Borrows owned (key, value) pairs as the [`KeyValue`]s the produce functions take.
pub fn key_values(owned: &[(Vec<u8>, Vec<u8>)]) -> Vec<KeyValue<'_>> {
    owned
        .iter()
        .map(|(k, v)| (Some(k.as_slice()), Some(v.as_slice())))
        .collect()
}

/// Produces (key, value) pairs with Java's partitioner; timestamps `base_timestamp() + first_ts`
/// onwards, 1 ms apart.
pub fn produce(topic: &str, records: &[KeyValue<'_>], first_ts: i64) {
    produce_with_headers(topic, records, first_ts, &[]);
}

pub fn produce_with_headers(
    topic: &str,
    records: &[KeyValue<'_>],
    first_ts: i64,
    headers: &[(&str, &[u8])],
) {
    produce_configured(topic, records, first_ts, headers, &[]);
}

/// As [`produce_with_headers`], with producer properties on top (`batch.size` to write small
/// batches, so that reading them back takes many fetches).
pub fn produce_configured(
    topic: &str,
    records: &[KeyValue<'_>],
    first_ts: i64,
    headers: &[(&str, &[u8])],
    config: &[(&str, &str)],
) {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", kafka_bootstrap())
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random");
    for (k, v) in config {
        client.set(*k, *v);
    }
    let producer: ThreadedProducer<DefaultProducerContext> = client.create().expect("producer");
    for (i, (k, v)) in records.iter().enumerate() {
        let mut r: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(topic).timestamp(base_timestamp() + first_ts + i as i64);
        if let Some(k) = k {
            r = r.key(*k);
        }
        if let Some(v) = v {
            r = r.payload(*v);
        }
        if !headers.is_empty() {
            let mut hs = OwnedHeaders::new();
            for (hk, hv) in headers {
                hs = hs.insert(Header {
                    key: hk,
                    value: Some(*hv),
                });
            }
            r = r.headers(hs);
        }
        enqueue(&producer, r);
    }
    // Generous: on a busy machine many small batches take a while; it returns once all are in.
    producer.flush(Duration::from_secs(120)).expect("flush");
}

/// Sends one record; a full queue drains as deliveries complete (the threaded producer polls),
/// so it waits for room.
fn enqueue<'a>(
    producer: &ThreadedProducer<DefaultProducerContext>,
    mut record: BaseRecord<'a, [u8], [u8]>,
) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((e, back))
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                std::thread::sleep(Duration::from_millis(10));
                record = back;
            }
            Err((e, _)) => panic!("enqueue: {e}"),
        }
    }
}

/// Produces (key, value) pairs as a transactional producer does upstream of an app: committed
/// transactions of `per_transaction` records, each leaving a commit marker in every partition
/// it wrote. Timestamps are the current time.
pub fn produce_transactional(topic: &str, records: &[KeyValue<'_>], per_transaction: usize) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("transactional.id", crate::unique_name("test-upstream"))
        .set("partitioner", "murmur2_random")
        .create()
        .expect("transactional producer");
    let timeout = Duration::from_secs(30);
    producer
        .init_transactions(timeout)
        .expect("init transactions");
    for chunk in records.chunks(per_transaction.max(1)) {
        producer.begin_transaction().expect("begin a transaction");
        for (k, v) in chunk {
            let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
            if let Some(k) = k {
                r = r.key(*k);
            }
            if let Some(v) = v {
                r = r.payload(*v);
            }
            enqueue(&producer, r);
        }
        producer
            .commit_transaction(timeout)
            .expect("commit the transaction");
    }
}

/// Reads `topic` from the start until `count` records arrived (panics after `timeout`), then
/// keeps reading `quiet` longer to catch any extra record.
pub fn consume(topic: &str, count: usize, timeout: Duration, quiet: Duration) -> Vec<Received> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", crate::unique_name("reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = metadata.topics()[0].partitions().len() as i32;
    assert!(partitions > 0, "topic {topic} does not exist");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut quiet_until: Option<Instant> = None;
    loop {
        if out.len() >= count {
            let until = *quiet_until.get_or_insert_with(|| Instant::now() + quiet);
            if Instant::now() >= until {
                break;
            }
        } else {
            assert!(
                Instant::now() < deadline,
                "read {} of {count} records from {topic} within {timeout:?}: {out:?}",
                out.len()
            );
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.expect("consume");
        out.push(Received {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            timestamp: m.timestamp().to_millis().unwrap_or(-1),
            headers: m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    out
}

/// A config for a test application: the test broker, a fresh application id, fast commits and a
/// short session so a restarted member is replaced quickly (defaults users get are unchanged).
pub fn test_config(app_prefix: &str, extra: &[(&str, &str)]) -> StreamsConfig {
    let mut entries: BTreeMap<String, String> = [
        ("application.id", crate::unique_name(app_prefix)),
        ("bootstrap.servers", kafka_bootstrap()),
        ("commit.interval.ms", "100".to_owned()),
        ("session.timeout.ms", "6000".to_owned()),
        ("heartbeat.interval.ms", "500".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        entries.insert((*k).to_owned(), (*v).to_owned());
    }
    StreamsConfig::resolve(&[Layer::new(LayerSource::Config, entries)])
        .expect("test config resolves")
}

/// Starts `topology` and waits until it is RUNNING. The engine's logs go to the test's output,
/// shown when a test fails.
pub fn start(topology: Topology, config: StreamsConfig) -> KafkaStreams {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,librdkafka=info")
        .with_test_writer()
        .try_init();
    let app = KafkaStreams::new(topology, config, None);
    freshet_streams::runtime::admin::prepare_topics(app.topology(), app.config())
        .expect("prepare topics");
    app.start();
    let deadline = Instant::now() + Duration::from_secs(60);
    // RUNNING, and every assigned task restored (a restoring task leaves the state RUNNING).
    while app.state() != State::Running || !app.restoring_tasks().is_empty() {
        assert!(
            Instant::now() < deadline,
            "application not RUNNING after 60 s: {}",
            app.state()
        );
        assert!(
            app.error().is_none(),
            "application failed: {:?}",
            app.error()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    app
}

/// Produces records with the given timestamps, one each.
pub fn produce_each_at(topic: &str, records: &[KeyValue<'_>], timestamps: &[i64]) {
    for (r, ts) in records.iter().zip(timestamps) {
        produce(topic, std::slice::from_ref(r), *ts);
    }
}

/// The number of partitions of `topic`.
pub fn partition_count(topic: &str) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata.topics()[0].partitions().len()
}

/// Deletes `topics` if they exist and creates them empty, for examples whose topic names are fixed.
pub async fn recreate_topics(topics: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let _ = admin
        .delete_topics(topics, &opts)
        .await
        .expect("delete_topics request");
    let deadline = Instant::now() + Duration::from_secs(30);
    for topic in topics {
        loop {
            let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
            match admin
                .create_topics([&new], &opts)
                .await
                .expect("create_topics request")
                .remove(0)
            {
                Ok(_) => break,
                // The deletion is still being applied.
                Err((_, e)) => {
                    assert!(Instant::now() < deadline, "cannot recreate {topic}: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    let with_partitions: Vec<(&str, i32)> = topics.iter().map(|t| (*t, partitions)).collect();
    wait_for_leaders(&with_partitions);
}

/// The last value of each key in `records` (`None`: deleted), as a compacted topic keeps it.
pub fn last_values(records: &[Received]) -> std::collections::BTreeMap<String, Option<String>> {
    records
        .iter()
        .map(|r| {
            (
                r.key_str().to_owned(),
                r.value.as_ref().map(|_| r.value_str().to_owned()),
            )
        })
        .collect()
}

/// Adds `config` (`name=value`) to the broker's `entity_type` (`groups`, `clients`, `topics`...)
/// entity `name` with Kafka's own kafka-configs tool.
pub fn add_config(entity_type: &str, name: &str, config: &str) {
    let out = std::process::Command::new(crate::repo_root().join("scripts/kafka.sh"))
        .args([
            "tool",
            "org.apache.kafka.tools.ConfigCommand",
            "--bootstrap-server",
            &kafka_bootstrap(),
            "--alter",
            "--entity-type",
            entity_type,
            "--entity-name",
            name,
            "--add-config",
            config,
        ])
        .output()
        .expect("running scripts/kafka.sh tool");
    assert!(
        out.status.success(),
        "kafka-configs --add-config {config} on {entity_type} {name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
