//! The benchmark's Kafka plumbing: topics made and deleted, the input producer.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};

use crate::harness::PARTITIONS;

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

pub fn create_topics(topics: &[&str]) {
    let owned: Vec<(&str, i32)> = topics.iter().map(|t| (*t, PARTITIONS)).collect();
    block_on(freshet_tests::kafka::create_topics(&owned));
}

/// Deletes `topics` and every topic named `<prefix>-...` for each of `prefixes` (internal topics).
pub fn delete_topics(bootstrap: &str, topics: &[String], prefixes: &[String]) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    // Each name once: rdkafka crashes on a response to a request naming a topic twice.
    let mut names: std::collections::BTreeSet<String> = topics.iter().cloned().collect();
    if let Ok(m) = consumer.fetch_metadata(None, Duration::from_secs(10)) {
        for t in m.topics() {
            if prefixes
                .iter()
                .any(|p| t.name().starts_with(&format!("{p}-")))
            {
                names.insert(t.name().to_owned());
            }
        }
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    if let Err(e) = block_on(admin.delete_topics(&refs, &AdminOptions::new())) {
        eprintln!("[bench] deleting topics {refs:?}: {e}");
    }
}

pub fn producer(bootstrap: &str, linger_ms: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", linger_ms)
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .expect("producer")
}

pub fn send(
    p: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &[u8],
    value: &[u8],
    ts: i64,
) {
    let mut record = BaseRecord::to(topic).key(key).payload(value).timestamp(ts);
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((e, r)) => {
                if !matches!(
                    e,
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull
                    )
                ) {
                    panic!("producing to {topic}: {e}");
                }
                record = r;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
