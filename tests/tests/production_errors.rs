//! Records the broker refuses follow `production.exception.handler`: an input whose output is
//! larger than the output topic's `max.message.bytes`, among normal ones. `log-and-continue`
//! skips that one output (its input record goes to the dead-letter topic with KIP-1034's headers)
//! while every other output arrives, once; `fail` stops the application naming the input record
//! (topic, partition, offset) in `/readyz`, its log and its exit. Under at_least_once and
//! exactly_once_v2, where the refusal also breaks the open transaction.
//!
//! The StreamsApp status of a failed pod: `failed_record_status.rs`.
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::{
    Received, base_timestamp, consume, create_topic_with_config, create_topics, key_values, produce,
};
use freshet_tests::{kafka_bootstrap, unique_name};

/// The output topic's `max.message.bytes`.
const LIMIT: usize = 10_000;
/// Records sent; the one at [`BIG_AT`] has a value twice the limit.
const RECORDS: usize = 300;
const BIG_AT: usize = 150;
/// The first input record's timestamp, after `base_timestamp()`.
const FIRST_TS: i64 = 1_000;

fn manifest(input: &str, output: &str, guarantee: &str, config: &str) -> tempfile::NamedTempFile {
    let text = format!(
        r#"
applicationId: {app}
bootstrapServers: {bootstrap}
processingGuarantee: {guarantee}
defaultKeySerde: string
defaultValueSerde: bytes
config:
  commit.interval.ms: "200"
{config}
topology:
  streams:
    - {{ name: input, topic: {input} }}
  pipelines:
    - name: copy
      from: input
      steps:
        - to: {{ topic: {output} }}
"#,
        app = unique_name("refused"),
        bootstrap = kafka_bootstrap(),
    );
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn big_value() -> Vec<u8> {
    vec![b'x'; 2 * LIMIT]
}

/// Input and output topics (the output with the small limit), the records sent: `k<i>` keys,
/// one value too large for the output at offset [`BIG_AT`].
async fn setup(prefix: &str) -> (String, String) {
    let (input, output) = (
        unique_name(&format!("{prefix}-in")),
        unique_name(&format!("{prefix}-out")),
    );
    create_topics(&[(&input, 1)]).await;
    create_topic_with_config(&output, 1, &[("max.message.bytes", &LIMIT.to_string())]).await;
    let big = big_value();
    let owned: Vec<(Vec<u8>, Vec<u8>)> = (0..RECORDS)
        .map(|i| {
            let value = if i == BIG_AT {
                big.clone()
            } else {
                format!("v{i}").into_bytes()
            };
            (format!("k{i}").into_bytes(), value)
        })
        .collect();
    let records = key_values(&owned);
    produce(&input, &records, FIRST_TS);
    (input, output)
}

fn header(record: &Received, name: &str) -> String {
    record
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_else(|| panic!("no {name} header in {:?}", record.headers))
}

async fn log_and_continue_skips_only_the_refused_record(guarantee: &str) {
    let started = Instant::now();
    let (input, output) = setup("skip").await;
    let dlq = unique_name("skip-dlq");
    create_topics(&[(&dlq, 1)]).await;
    let config = format!(
        "  production.exception.handler: log-and-continue\n  errors.dead.letter.queue.topic.name: {dlq}\n"
    );
    let file = manifest(&input, &output, guarantee, &config);
    let mut engine = EngineProcess::start(file.path(), &[], &[]);
    engine.wait_ready(Duration::from_secs(60));

    // Every other output arrives, once (read_committed under exactly-once), the refused one not.
    let out = consume(
        &output,
        RECORDS - 1,
        Duration::from_secs(90),
        Duration::from_secs(2),
    );
    let keys: BTreeSet<&str> = out.iter().map(Received::key_str).collect();
    let expected: BTreeSet<String> = (0..RECORDS)
        .filter(|i| *i != BIG_AT)
        .map(|i| format!("k{i}"))
        .collect();
    let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(keys, expected, "{guarantee}: outputs missing or extra");
    assert_eq!(
        out.len(),
        RECORDS - 1,
        "{guarantee}: duplicated outputs; log:\n{}",
        engine.log_text()
    );
    for r in &out {
        let i: i64 = r.key_str()[1..].parse().expect("k<i>");
        assert_eq!(
            r.timestamp,
            base_timestamp() + FIRST_TS + i,
            "{guarantee}: {} kept its input's timestamp (records sent again too)",
            r.key_str()
        );
    }
    if guarantee == "exactly_once_v2" {
        // The transaction the refusal broke was aborted and replayed without the record.
        let log = engine.log_text();
        assert!(
            log.contains("the broker refused records of the transaction"),
            "{log}"
        );
    }

    // The input record in the dead-letter topic, with KIP-1034's headers naming its place.
    let dead = consume(&dlq, 1, Duration::from_secs(30), Duration::from_secs(1));
    assert_eq!(dead.len(), 1, "{guarantee}: {dead:?}");
    assert_eq!(dead[0].key_str(), format!("k{BIG_AT}"));
    assert_eq!(dead[0].value.as_deref(), Some(&big_value()[..]));
    assert_eq!(header(&dead[0], "__streams.errors.topic"), input);
    assert_eq!(header(&dead[0], "__streams.errors.partition"), "0");
    assert_eq!(
        header(&dead[0], "__streams.errors.offset"),
        BIG_AT.to_string()
    );
    assert_eq!(
        header(&dead[0], "__streams.errors.exception"),
        "org.apache.kafka.common.errors.RecordTooLargeException"
    );
    assert!(header(&dead[0], "__streams.errors.message").contains(&output));

    let (_, metrics) = engine.get("/metrics").expect("metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == "freshet_records_dropped_total{task=\"0_0\"} 1"),
        "{guarantee}: the skipped record is not counted:\n{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "freshet_dead_letter_records_total{task=\"0_0\"} 1"),
        "{guarantee}: the dead letter is not counted:\n{metrics}"
    );
    assert_eq!(
        engine.get("/readyz").map(|r| r.0),
        Some(200),
        "{guarantee}: still running"
    );
    assert!(
        engine
            .log_text()
            .contains("skipping the record (log-and-continue)"),
        "no warning"
    );
    assert!(
        engine.terminate(Duration::from_secs(60)).success(),
        "{}",
        engine.log_text()
    );
    println!(
        "{guarantee}: log-and-continue checked in {} ms",
        started.elapsed().as_millis()
    );
}

async fn fail_stops_naming_the_input_record(guarantee: &str) {
    let (input, output) = setup("fail").await;
    let dlq = unique_name("fail-dlq");
    create_topics(&[(&dlq, 1)]).await;
    let config = format!(
        "  production.exception.handler: fail\n  errors.dead.letter.queue.topic.name: {dlq}\n"
    );
    let file = manifest(&input, &output, guarantee, &config);
    let mut engine = EngineProcess::start(file.path(), &["--error-linger-seconds", "30"], &[]);
    let deadline = Instant::now() + Duration::from_secs(90);
    let body = loop {
        if let Some((503, body)) = engine.get("/readyz").filter(|(_, b)| b.contains("ERROR")) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "{guarantee}: never reported ERROR; log:\n{}",
            engine.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let readyz: serde_json::Value = serde_json::from_str(&body).expect("/readyz is JSON");
    let record = &readyz["record"];
    assert_eq!(readyz["state"], "ERROR", "{body}");
    assert_eq!(record["kind"], "production", "{body}");
    assert_eq!(record["topic"], input.as_str(), "{body}");
    assert_eq!(record["partition"], 0, "{body}");
    assert_eq!(record["offset"], BIG_AT as i64, "{body}");
    assert!(
        record["message"]
            .as_str()
            .is_some_and(|m| m.contains(&output)),
        "the output topic is named: {body}"
    );
    let status = engine.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "exit status names the failure");
    let log = engine.log_text();
    let place = format!("{input}-0 offset {BIG_AT}");
    assert!(log.contains(&place), "the log lacks {place}:\n{log}");
    // Whatever went out before the failure, never the refused record.
    let out = consume(&output, 0, Duration::from_secs(10), Duration::from_secs(2));
    assert!(
        out.iter().all(|r| r.key_str() != format!("k{BIG_AT}")),
        "{guarantee}: the refused record was written"
    );
    // As Kafka Streams' DefaultProductionExceptionHandler with a dead-letter topic: the dead
    // letter is written, then the thread fails; under exactly-once the failure aborts the
    // transaction, and the dead letter with it.
    let dead = consume(&dlq, 0, Duration::from_secs(10), Duration::from_secs(2));
    let keys: Vec<&str> = dead.iter().map(Received::key_str).collect();
    let expected = format!("k{BIG_AT}");
    match guarantee {
        "exactly_once_v2" => assert!(keys.is_empty(), "{guarantee}: {keys:?}"),
        _ => assert_eq!(keys, [expected.as_str()], "{guarantee}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_log_and_continue_skips_only_the_refused_record() {
    log_and_continue_skips_only_the_refused_record("at_least_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_log_and_continue_skips_only_the_refused_record() {
    log_and_continue_skips_only_the_refused_record("exactly_once_v2").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_fail_stops_naming_the_input_record() {
    fail_stops_naming_the_input_record("at_least_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_fail_stops_naming_the_input_record() {
    fail_stops_naming_the_input_record("exactly_once_v2").await;
}
