//! Records that do not deserialize follow the configured handler; nothing is skipped silently.
use std::time::Duration;

use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::{consume, create_topics, produce};
use freshet_tests::{kafka_bootstrap, unique_name};

fn manifest(input: &str, output: &str, config: &str) -> tempfile::NamedTempFile {
    let text = format!(
        r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: json
config:
  commit.interval.ms: "100"
{config}
topology:
  streams:
    - {{ name: input, topic: {input} }}
  pipelines:
    - name: copy
      from: input
      steps:
        - mapValues: "{{'n': value.n}}"
        - to: {{ topic: {output} }}
"#,
        app = unique_name("errors"),
        bootstrap = kafka_bootstrap(),
    );
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

const BAD: &[u8] = b"{not json";

#[tokio::test(flavor = "multi_thread")]
async fn log_and_continue_skips_the_record_into_the_dead_letter_topic() {
    let (input, output, dlq) = (
        unique_name("err-in"),
        unique_name("err-out"),
        unique_name("err-dlq"),
    );
    create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]).await;
    produce(
        &input,
        &[
            (Some(b"a"), Some(br#"{"n":1}"#)),
            (Some(b"b"), Some(BAD)),
            (Some(b"c"), Some(br#"{"n":3}"#)),
        ],
        1_000,
    );
    let config = format!(
        "  deserialization.exception.handler: log-and-continue\n  errors.dead.letter.queue.topic.name: {dlq}\n"
    );
    let file = manifest(&input, &output, &config);
    let mut engine = EngineProcess::start(file.path(), &[], &[]);
    engine.wait_ready(Duration::from_secs(60));
    let out = consume(
        &output,
        2,
        Duration::from_secs(60),
        Duration::from_millis(500),
    );
    let values: Vec<&str> = out.iter().map(|r| r.value_str()).collect();
    assert_eq!(values, [r#"{"n":1}"#, r#"{"n":3}"#]);
    let dead = consume(&dlq, 1, Duration::from_secs(60), Duration::from_millis(500));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key.as_deref(), Some(&b"b"[..]));
    assert_eq!(
        dead[0].value.as_deref(),
        Some(BAD),
        "the dead letter carries the original bytes"
    );
    let header = |name: &str| {
        dead[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", dead[0].headers))
    };
    assert_eq!(header("__streams.errors.topic"), input);
    assert_eq!(header("__streams.errors.partition"), "0");
    assert_eq!(header("__streams.errors.offset"), "1");
    assert!(header("__streams.errors.exception").contains("SerializationException"));
    assert!(header("__streams.errors.message").contains("invalid JSON"));
    let (_, metrics) = engine.get("/metrics").expect("metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("freshet_records_dropped_total{task=\"0_0\"} 1")),
        "dropped record not counted:\n{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("freshet_dead_letter_records_total{task=\"0_0\"} 1")),
        "dead letter not counted:\n{metrics}"
    );
    assert!(
        engine.terminate(Duration::from_secs(60)).success(),
        "{}",
        engine.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_handler_stops_the_app_naming_the_record() {
    let (input, output) = (unique_name("fail-in"), unique_name("fail-out"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    produce(
        &input,
        &[
            (Some(b"a"), Some(br#"{"n":1}"#)),
            (Some(b"b"), Some(BAD)),
            (Some(b"c"), Some(br#"{"n":3}"#)),
        ],
        1_000,
    );
    let file = manifest(&input, &output, "");
    let mut engine = EngineProcess::start(file.path(), &["--error-linger-seconds", "30"], &[]);
    let where_ = format!("{input}-0 offset 1");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let readyz = loop {
        if let Some((503, body)) = engine.get("/readyz").filter(|(_, b)| b.contains("ERROR")) {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reported ERROR; log:\n{}",
            engine.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        readyz.contains(&where_) && readyz.contains("deserialization"),
        "{readyz}"
    );
    let status = engine.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "exit status names the failure");
    let log = engine.log_text();
    assert!(
        log.contains(&where_),
        "log lacks the record's place:\n{log}"
    );
    // The record before the bad one was processed; the one after was not.
    let out = consume(
        &output,
        1,
        Duration::from_secs(30),
        Duration::from_millis(1500),
    );
    let values: Vec<&str> = out.iter().map(|r| r.value_str()).collect();
    assert_eq!(values, [r#"{"n":1}"#]);
}
