//! A commit sends what the producer holds at once, as Kafka Streams' does: the records of a
//! pipeline reach its output within about the commit interval, whatever `linger.ms` is.
//!
//! Before, the engine flushed with rust-rdkafka's `BaseProducer::flush`, which waits in steps of
//! 100 ms and lets `linger.ms` hold the records meanwhile: every exactly-once commit took 100 to
//! 200 ms, and the scale-out measurement's p99 latency was about 510 ms against Java Kafka
//! Streams' 130 ms. Here `linger.ms` is 1 s, so a commit that waited for it shows at once.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::create_topics;
use freshet_tests::{kafka_bootstrap, unique_name};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{Offset, TopicPartitionList};

/// The records sent, one every [`INTERVAL`].
const RECORDS: usize = 30;
const INTERVAL: Duration = Duration::from_millis(100);
/// The producer's `linger.ms` in the engine: what a commit must not wait for.
const LINGER_MS: u64 = 1_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn manifest(dir: &std::path::Path, app: &str, guarantee: &str) -> std::path::PathBuf {
    let path = dir.join("copy.yaml");
    std::fs::write(
        &path,
        format!(
            r#"applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: string
config:
  processing.guarantee: {guarantee}
  commit.interval.ms: "100"
  producer.linger.ms: "{LINGER_MS}"
topology:
  streams:
    - {{ name: input, topic: {app}-in }}
  pipelines:
    - name: copy
      from: input
      steps:
        - to: {{ topic: {app}-out }}
"#,
            bootstrap = kafka_bootstrap()
        ),
    )
    .expect("write manifest");
    path
}

/// Sends [`RECORDS`] records through a copy pipeline under `guarantee`, one every [`INTERVAL`],
/// and returns each one's latency (its arrival in the output, read_committed, less its
/// timestamp), in ms, sorted.
async fn latencies(guarantee: &str) -> Vec<i64> {
    let app = unique_name("commit-flush");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = manifest(dir.path(), &app, guarantee);
    let mut engine = EngineProcess::start_ready(&manifest, &app, &dir.path().join("state"));

    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", unique_name("commit-flush-reader"))
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&output, 0, Offset::Beginning)
        .expect("partition");
    reader.assign(&tpl).expect("assign");
    let writer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("linger.ms", "0")
        .create()
        .expect("writer");

    let mut latencies = Vec::new();
    let mut next_send = Instant::now();
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while latencies.len() < RECORDS {
        assert!(
            Instant::now() < deadline,
            "{guarantee}: {} of {RECORDS} records arrived in 60 s; engine log:\n{}",
            latencies.len(),
            engine.log_text()
        );
        if sent < RECORDS && Instant::now() >= next_send {
            let key = format!("k{sent}");
            writer
                .send(
                    BaseRecord::to(&input)
                        .key(&key)
                        .payload("v")
                        .timestamp(now_ms()),
                )
                .expect("send");
            // Served, not flushed: a flush would keep the reader waiting.
            writer.poll(Duration::ZERO);
            sent += 1;
            next_send += INTERVAL;
        }
        while let Some(Ok(m)) = reader.poll(Duration::from_millis(1)) {
            if let Timestamp::CreateTime(ts) = m.timestamp() {
                latencies.push(now_ms() - ts);
            }
        }
    }
    let status = engine.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}: {}", engine.log_text());
    latencies.sort_unstable();
    latencies
}

/// Asserts the median latency is far below `linger.ms`: the commit sent the records.
async fn commits_send_at_once(guarantee: &str) {
    let latencies = latencies(guarantee).await;
    let median = latencies[latencies.len() / 2];
    println!(
        "{guarantee}: latency median {median} ms, max {} ms, of {} records (linger.ms {LINGER_MS})",
        latencies[latencies.len() - 1],
        latencies.len()
    );
    assert!(
        median < (LINGER_MS / 2) as i64,
        "{guarantee}: the median latency is {median} ms (all: {latencies:?}): the commit waited \
         for linger.ms ({LINGER_MS} ms) rather than sending what the producer held"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_at_least_once_commit_sends_what_lingers() {
    commits_send_at_once("at_least_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exactly_once_commit_sends_what_lingers() {
    commits_send_at_once("exactly_once_v2").await;
}
