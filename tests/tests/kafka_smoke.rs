//! The real broker works for what the engine needs: topics created through the admin API, keyed
//! records produced and read back with per-partition order kept.
use std::collections::HashMap;
use std::time::Duration;

use freshet_tests::{kafka_bootstrap, unique_name};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, TopicPartitionList};

const RECORDS: usize = 1_000;
const PARTITIONS: i32 = 3;

#[tokio::test]
async fn keyed_records_round_trip_through_a_three_partition_topic() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_name("smoke");

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let created = admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics request");
    assert_eq!(created, vec![Ok(topic.clone())]);

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    for i in 0..RECORDS {
        let key = format!("key-{}", i % 37);
        let value = i.to_string();
        producer
            .send(BaseRecord::to(&topic).key(&key).payload(&value))
            .map_err(|(e, _)| e)
            .expect("enqueue");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", unique_name("smoke-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(&topic, p, rdkafka::Offset::Beginning)
            .expect("assignment");
    }
    consumer.assign(&assignment).expect("assign");

    let mut partition_of_key: HashMap<String, i32> = HashMap::new();
    let mut last_value_in_partition: HashMap<i32, usize> = HashMap::new();
    let mut seen = vec![false; RECORDS];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut count = 0;
    while count < RECORDS {
        assert!(
            std::time::Instant::now() < deadline,
            "read only {count} of {RECORDS} records"
        );
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg.expect("consume");
        let key = String::from_utf8(msg.key().expect("key").to_vec()).expect("utf-8 key");
        let value: usize = std::str::from_utf8(msg.payload().expect("value"))
            .expect("utf-8 value")
            .parse()
            .expect("numeric value");
        let partition = msg.partition();
        assert_eq!(
            *partition_of_key.entry(key.clone()).or_insert(partition),
            partition,
            "{key} landed in two partitions"
        );
        if let Some(prev) = last_value_in_partition.insert(partition, value) {
            assert!(
                value > prev,
                "partition {partition}: {value} read after {prev}"
            );
        }
        assert!(!seen[value], "record {value} read twice");
        seen[value] = true;
        count += 1;
    }
    assert!(seen.iter().all(|s| *s));
    let used: std::collections::HashSet<_> = partition_of_key.values().collect();
    assert_eq!(
        used.len(),
        PARTITIONS as usize,
        "37 keys should spread over all partitions"
    );

    admin
        .delete_topics(&[&topic], &AdminOptions::new())
        .await
        .expect("delete topic");
}
