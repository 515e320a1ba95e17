//! The word counts the secured tests run: records whose values are `KEYS` words, counted by a
//! `groupBy` (so through a repartition topic and a changelog, every kind of internal topic),
//! written and read through a broker's PLAINTEXT listener.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::unique_name;

/// Distinct words.
pub const KEYS: usize = 10;
/// Records per word in one [`produce_words`].
pub const PER_KEY: usize = 20;
/// How long a count may take.
pub const WAIT: Duration = Duration::from_secs(60);

/// `KEYS * PER_KEY` records whose values are `KEYS` distinct words, through the super user's
/// PLAINTEXT listener.
pub fn produce_words(bootstrap: &str, topic: &str) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    for i in 0..KEYS * PER_KEY {
        let key = format!("k{i}");
        let value = format!("word{}", i % KEYS);
        producer
            .send(BaseRecord::to(topic).key(&key).payload(&value))
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Reads `topic` (one partition) from the start until every word's count is `per_word`;
/// returns the number of updates read and the last count per word.
pub fn read_word_counts(
    bootstrap: &str,
    topic: &str,
    per_word: i64,
) -> (usize, BTreeMap<String, i64>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("secured-reader"))
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let (mut updates, mut counts) = (0, BTreeMap::new());
    let deadline = Instant::now() + WAIT;
    let mut quiet_until: Option<Instant> = None;
    loop {
        let done = counts.len() == KEYS && counts.values().all(|c| *c == per_word);
        if done {
            // A little longer, to catch an update too many.
            let until = *quiet_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(2));
            if Instant::now() >= until {
                return (updates, counts);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {updates} updates after {WAIT:?}, counts {counts:?}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            let value: [u8; 8] = m
                .payload()
                .and_then(|p| p.try_into().ok())
                .expect("an 8-byte long");
            counts.insert(key, i64::from_be_bytes(value));
            updates += 1;
        }
    }
}
