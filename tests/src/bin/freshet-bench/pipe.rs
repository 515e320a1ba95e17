//! The raw pipe contender: a plain librdkafka consume-then-produce loop with no processing, the
//! ceiling for stateless work. Each thread owns the input partitions `p % threads == thread`
//! (assigned, no group rebalances), copies every record (key, value, timestamp) to the same
//! partition of the output and commits on the interval: after a producer flush under
//! at-least-once, in a transaction with the offsets under exactly_once_v2.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

#[derive(Clone)]
pub struct PipeArgs {
    pub bootstrap: String,
    pub group: String,
    pub input: String,
    pub output: String,
    pub partitions: i32,
    pub threads: i32,
    pub commit_ms: u64,
    pub eos: bool,
}

pub fn run(a: PipeArgs) -> anyhow::Result<()> {
    let handles: Vec<_> = (0..a.threads)
        .map(|t| {
            let mine: Vec<i32> = (0..a.partitions).filter(|p| p % a.threads == t).collect();
            let a = a.clone();
            std::thread::spawn(move || thread(&a, t, &mine))
        })
        .collect();
    println!("RUNNING");
    for h in handles {
        h.join().expect("pipe thread")?;
    }
    Ok(())
}

fn thread(a: &PipeArgs, index: i32, partitions: &[i32]) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("group.id", &a.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "isolation.level",
            if a.eos {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()?;
    let mut producer = ClientConfig::new();
    producer
        .set("bootstrap.servers", &a.bootstrap)
        // Kafka Streams' producer default, which Freshet follows.
        .set("linger.ms", "100");
    if a.eos {
        producer.set("transactional.id", format!("{}-{index}", a.group));
    }
    let producer: BaseProducer = producer.create()?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(&a.input, *p, Offset::Stored)?;
    }
    consumer.assign(&tpl)?;
    if a.eos {
        producer.init_transactions(Duration::from_secs(30))?;
        producer.begin_transaction()?;
    }
    let interval = Duration::from_millis(a.commit_ms);
    let mut next_commit = Instant::now() + interval;
    let mut dirty = false;
    loop {
        if let Some(m) = consumer.poll(Duration::from_millis(20)) {
            let m = m?;
            let mut record = BaseRecord::<[u8], [u8]>::to(&a.output).partition(m.partition());
            if let Some(k) = m.key() {
                record = record.key(k);
            }
            if let Some(v) = m.payload() {
                record = record.payload(v);
            }
            if let Some(ts) = m.timestamp().to_millis() {
                record = record.timestamp(ts);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
            dirty = true;
        }
        producer.poll(Duration::ZERO);
        if Instant::now() >= next_commit {
            if dirty {
                let mut positions = TopicPartitionList::new();
                for e in consumer.position()?.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        positions.add_partition_offset(
                            e.topic(),
                            e.partition(),
                            Offset::Offset(o),
                        )?;
                    }
                }
                if a.eos {
                    let metadata = consumer
                        .group_metadata()
                        .ok_or_else(|| anyhow::anyhow!("no group metadata"))?;
                    producer.send_offsets_to_transaction(
                        &positions,
                        &metadata,
                        Duration::from_secs(30),
                    )?;
                    producer.commit_transaction(Duration::from_secs(30))?;
                    producer.begin_transaction()?;
                } else {
                    producer.flush(Duration::from_secs(30))?;
                    consumer.commit(&positions, CommitMode::Sync)?;
                }
                dirty = false;
            }
            next_commit = Instant::now() + interval;
        }
    }
}
