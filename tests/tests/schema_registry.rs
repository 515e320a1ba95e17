//! The `avro` serde against a real schema registry (Apicurio's Confluent-compatible API, `make
//! registry-up`) and a real broker, checked with an independent implementation of Confluent's
//! wire format: confluent-kafka's Python `AvroSerializer` writes the input, Freshet reads and
//! transforms it, `AvroDeserializer` reads Freshet's output back, field for field.
//! Bad input follows the deserialization handler with the topic, partition, offset and schema id.
use std::process::Command;
use std::time::{Duration, Instant};

use freshet_tests::confluent::{registry_url, serdes};
use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::{consume, create_topics, produce};
use freshet_tests::{kafka_bootstrap, unique_name};
use serde_json::{Value, json};

/// How long one Python serializer run may take: a produce, or a consume of a few records.
const PYTHON_DEADLINE: Duration = Duration::from_secs(120);

/// How long the Python consumer reads before it reports the records it is missing.
const CONSUME_SECS: &str = "60";

const INPUT_SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"id","type":"long"},
  {"name":"customer","type":"string"},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID","SHIPPED"]}},
  {"name":"note","type":["null","string"],"default":null},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
  {"name":"tags","type":{"type":"array","items":"string"}},
  {"name":"attrs","type":{"type":"map","values":"int"}}]}"#;

const OUTPUT_SCHEMA: &str = r#"{"type":"record","name":"Shipment","namespace":"shop","fields":[
  {"name":"order","type":"long"},
  {"name":"who","type":"string"},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID","SHIPPED"]}},
  {"name":"note","type":["null","string"],"default":null},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
  {"name":"tags","type":{"type":"array","items":"string"}},
  {"name":"qty","type":"int"}]}"#;

fn write_temp(suffix: &str, text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn manifest(
    input: &str,
    output: &str,
    config: &str,
    output_schema: &str,
) -> tempfile::NamedTempFile {
    // The output schema inline, as JSON text in YAML (one line, so no indentation matters).
    let schema: Value = serde_json::from_str(output_schema).unwrap();
    let text = format!(
        r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: avro
config:
  commit.interval.ms: "100"
  schema.registry.url: {registry}
{config}
topology:
  streams:
    - {{ name: orders, topic: {input} }}
  pipelines:
    - name: ship
      from: orders
      steps:
        - filter: "value.status != 'NEW'"
        - mapValues: >-
            {{'order': value.id, 'who': value.customer + '@' + key, 'status': 'SHIPPED',
              'note': value.note, 'at': value.at, 'price': value.price,
              'tags': value.tags + ['shipped'], 'qty': value.attrs['qty'] * 2}}
        - to: {{ topic: {output}, valueSchema: '{schema}' }}
"#,
        app = unique_name("avro"),
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
        schema = schema,
    );
    write_temp(".yaml", &text)
}

fn orders() -> Vec<Value> {
    vec![
        json!({"key": "k1", "value": {"id": 1, "customer": "ann", "status": "PAID", "note": null,
            "at": 1_700_000_000_123_i64, "price": "12.34", "tags": ["a"], "attrs": {"qty": 3}}}),
        json!({"key": "k2", "value": {"id": 2, "customer": "bob", "status": "NEW", "note": "skip me",
            "at": 1_700_000_001_000_i64, "price": "0.01", "tags": [], "attrs": {"qty": 1}}}),
        json!({"key": "k3", "value": {"id": 3, "customer": "cy", "status": "PAID", "note": "fragile",
            "at": 1_700_000_002_005_i64, "price": "-98765432.10", "tags": ["x", "y"], "attrs": {"qty": 7, "w": 2}}}),
    ]
}

fn produce_orders(input: &str) {
    let schema = write_temp(".avsc", INPUT_SCHEMA);
    let lines: Vec<String> = orders().iter().map(Value::to_string).collect();
    let records = write_temp(".jsonl", &lines.join("\n"));
    serdes(
        "avro",
        &[
            "produce",
            &kafka_bootstrap(),
            &registry_url(),
            input,
            &schema.path().display().to_string(),
            &records.path().display().to_string(),
        ],
        PYTHON_DEADLINE,
    );
}

fn read_back(output: &str, count: usize) -> Vec<Value> {
    serdes(
        "avro",
        &[
            "consume",
            &kafka_bootstrap(),
            &registry_url(),
            output,
            &count.to_string(),
            CONSUME_SECS,
        ],
        PYTHON_DEADLINE,
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn confluent_python_writes_freshet_transforms_confluent_python_reads() {
    let t0 = Instant::now();
    let (input, output) = (unique_name("avro-in"), unique_name("avro-out"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    produce_orders(&input);
    let file = manifest(&input, &output, "", OUTPUT_SCHEMA);
    let mut engine = EngineProcess::start(file.path(), &[], &[]);
    engine.wait_ready(Duration::from_secs(60));
    let got = read_back(&output, 2);
    engine.terminate(Duration::from_secs(30));
    let values: Vec<&Value> = got.iter().map(|r| &r["value"]).collect();
    assert_eq!(
        values,
        [
            &json!({"order": 1, "who": "ann@k1", "status": "SHIPPED", "note": null,
                "at": 1_700_000_000_123_i64, "price": "12.34", "tags": ["a", "shipped"], "qty": 6}),
            &json!({"order": 3, "who": "cy@k3", "status": "SHIPPED", "note": "fragile",
                "at": 1_700_000_002_005_i64, "price": "-98765432.10", "tags": ["x", "y", "shipped"], "qty": 14}),
        ],
        "engine log:\n{}",
        engine.log_text()
    );
    let keys: Vec<&Value> = got.iter().map(|r| &r["key"]).collect();
    assert_eq!(keys, [&json!("k1"), &json!("k3")]);
    // Freshet registered its output schema under TopicNameStrategy's subject: the id in the
    // records is the one the registry gives that subject's latest version.
    let latest: Value = ureq_get(&format!(
        "{}/subjects/{output}-value/versions/latest",
        registry_url()
    ));
    assert_eq!(got[0]["schema_id"], latest["id"], "{latest}");
    eprintln!("avro round trip in {:?}", t0.elapsed());
}

fn ureq_get(url: &str) -> Value {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "10", url])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "GET {url} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_schema_id_goes_to_the_deserialization_handler_naming_it() {
    let (input, output, dlq) = (
        unique_name("avro-bad-in"),
        unique_name("avro-bad-out"),
        unique_name("avro-bad-dlq"),
    );
    create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]).await;
    // A record framed with a schema id no registry has given out, then a good one.
    let unknown: &[u8] = &[0, 0x7f, 0xff, 0xff, 0x01, 2, 4];
    produce(&input, &[(Some(b"bad"), Some(unknown))], 1_000);
    produce_orders(&input);
    let config = format!(
        "  deserialization.exception.handler: log-and-continue\n  errors.dead.letter.queue.topic.name: {dlq}\n"
    );
    let file = manifest(&input, &output, &config, OUTPUT_SCHEMA);
    let mut engine = EngineProcess::start(file.path(), &[], &[]);
    engine.wait_ready(Duration::from_secs(60));
    let got = read_back(&output, 2);
    assert_eq!(got.len(), 2, "the good records pass");
    let dead = consume(&dlq, 1, Duration::from_secs(60), Duration::from_millis(300));
    assert_eq!(
        dead[0].value.as_deref(),
        Some(unknown),
        "the dead letter carries the bytes"
    );
    engine.terminate(Duration::from_secs(30));
    let log = engine.log_text();
    let id = u32::from_be_bytes([0x7f, 0xff, 0xff, 0x01]);
    let line = log
        .lines()
        .find(|l| l.contains(&format!("schema id {id}")))
        .unwrap_or_else(|| panic!("no log line names schema id {id}:\n{log}"));
    // The handler's log line carries the record's place as fields.
    assert!(
        line.contains(&format!("topic={input} partition=0 offset=0")),
        "{line}"
    );
    assert!(line.contains("40403") || line.contains("404"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schema_incompatible_with_the_subject_is_refused_naming_subject_and_409() {
    // validate-time check of the manifest's output schema against what the steps write lives in
    // spec's tests; here the registry's own compatibility rule refuses the engine's schema.
    let (input, output) = (unique_name("avro-inc-in"), unique_name("avro-inc-out"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    // The subject's first version has a required field the engine's schema lacks: BACKWARD
    // compatibility refuses the engine's schema (its readers could not read old records).
    let first = r#"{"type":"record","name":"Shipment","namespace":"shop","fields":[{"name":"order","type":"long"},{"name":"weight","type":"int"}]}"#;
    let body = json!({ "schema": first }).to_string();
    let out = Command::new("curl")
        .args([
            "-sf",
            "--max-time",
            "10",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/vnd.schemaregistry.v1+json",
            "-d",
            &body,
        ])
        .arg(format!(
            "{}/subjects/{output}-value/versions",
            registry_url()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "registering the first version");
    produce_orders(&input);
    let file = manifest(&input, &output, "", OUTPUT_SCHEMA);
    let mut engine = EngineProcess::start(file.path(), &[], &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log = engine.log_text();
        if log.contains(&format!("subject '{output}-value'")) || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    engine.kill();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("subject '{output}-value'")))
        .unwrap_or_else(|| panic!("no log line names the subject:\n{log}"));
    assert!(line.contains("409"), "{line}");
    assert!(line.contains(&format!("{input}-0 offset")), "{line}");
}

#[test]
fn validate_catches_a_step_writing_a_field_the_output_schema_lacks() {
    // As the round trip's manifest, with one more field in mapValues than Shipment has.
    let good = manifest("in", "out", "", OUTPUT_SCHEMA);
    let text = std::fs::read_to_string(good.path()).unwrap().replace(
        "'qty': value.attrs['qty'] * 2}",
        "'qty': value.attrs['qty'] * 2, 'colour': 'red'}",
    );
    let bad = write_temp(".yaml", &text);
    let validate = |file: &tempfile::NamedTempFile| {
        Command::new(freshet_tests::engine::engine_binary())
            .args(["validate", "-f"])
            .arg(file.path())
            .output()
            .expect("freshet-engine validate runs")
    };
    let ok = validate(&good);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = validate(&bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "validate passed a field the schema lacks"
    );
    assert!(
        stderr
            .contains("writes field 'colour', which the valueSchema's record shop.Shipment lacks"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_registry_is_retried_within_task_timeout_then_fails_naming_it() {
    let input = unique_name("avro-down-in");
    create_topics(&[(&input, 1)]).await;
    produce_orders(&input);
    // The same records, read through a registry URL where nothing listens.
    let dead = format!(
        "http://127.0.0.1:{}/apis/ccompat/v7",
        freshet_tests::engine::free_port()
    );
    let text = std::fs::read_to_string(manifest(&input, "unused", "", OUTPUT_SCHEMA).path())
        .unwrap()
        .replace(&registry_url(), &dead)
        .replace(
            "commit.interval.ms: \"100\"",
            "commit.interval.ms: \"100\"\n  task.timeout.ms: 3s",
        );
    let file = write_temp(".yaml", &text);
    let started = Instant::now();
    let mut engine = EngineProcess::start(file.path(), &[], &[]);
    let status = engine.wait(Duration::from_secs(60));
    let waited = started.elapsed();
    let log = engine.log_text();
    assert!(!status.success(), "the engine should stop: {log}");
    assert!(
        log.contains("schema registry unreachable; retrying"),
        "no retry logged:\n{log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("was unreachable for"))
        .unwrap_or_else(|| panic!("no error names the outage:\n{log}"));
    assert!(line.contains(&dead) && line.contains("schema id"), "{line}");
    assert!(
        line.contains(&format!("{input}-0 offset 0")) || line.contains(&format!("topic={input}")),
        "{line}"
    );
    assert!(waited >= Duration::from_secs(3), "gave up after {waited:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repartition_topic_carries_avro_under_its_own_subject() {
    let app = unique_name("avro-rep");
    let (input, output) = (unique_name("avro-rep-in"), unique_name("avro-rep-out"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    produce_orders(&input);
    let schema: Value = serde_json::from_str(OUTPUT_SCHEMA).unwrap();
    let text = format!(
        r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: avro
config:
  commit.interval.ms: "100"
  schema.registry.url: {registry}
topology:
  streams:
    - {{ name: orders, topic: {input} }}
  pipelines:
    - name: ship
      from: orders
      steps:
        - filter: "value.status != 'NEW'"
        - selectKey: "value.customer"
        - mapValues: >-
            {{'order': value.id, 'who': value.customer, 'status': 'SHIPPED', 'note': value.note,
              'at': value.at, 'price': value.price, 'tags': value.tags, 'qty': value.attrs['qty']}}
        - repartition: {{ name: by-customer, valueSchema: '{schema}' }}
        - to: {{ topic: {output}, valueSchema: '{schema}' }}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
    );
    let file = write_temp(".yaml", &text);
    let mut engine = EngineProcess::start(file.path(), &[], &[]);
    engine.wait_ready(Duration::from_secs(60));
    let repartition = format!("{app}-by-customer-repartition");
    let through = read_back(&repartition, 2);
    let got = read_back(&output, 2);
    engine.terminate(Duration::from_secs(30));
    let expected = [
        json!({"key": "ann", "value": {"order": 1, "who": "ann", "status": "SHIPPED", "note": null,
            "at": 1_700_000_000_123_i64, "price": "12.34", "tags": ["a"], "qty": 3}}),
        json!({"key": "cy", "value": {"order": 3, "who": "cy", "status": "SHIPPED", "note": "fragile",
            "at": 1_700_000_002_005_i64, "price": "-98765432.10", "tags": ["x", "y"], "qty": 7}}),
    ];
    let key_values = |records: &[Value]| -> Vec<Value> {
        records
            .iter()
            .map(|r| json!({"key": r["key"], "value": r["value"]}))
            .collect()
    };
    assert_eq!(
        key_values(&through),
        expected,
        "engine log:\n{}",
        engine.log_text()
    );
    assert_eq!(key_values(&got), expected);
    // The repartition topic's records carry the id registered under its own subject.
    let latest = ureq_get(&format!(
        "{}/subjects/{repartition}-value/versions/latest",
        registry_url()
    ));
    assert_eq!(through[0]["schema_id"], latest["id"], "{latest}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_group_by_writes_its_repartition_topic_in_avro() {
    let app = unique_name("avro-grp");
    let (input, output) = (unique_name("avro-grp-in"), unique_name("avro-grp-out"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    produce_orders(&input);
    let schema: Value = serde_json::from_str(OUTPUT_SCHEMA).unwrap();
    let text = format!(
        r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: avro
config:
  commit.interval.ms: "100"
  statestore.cache.max.bytes: "0"
  schema.registry.url: {registry}
topology:
  streams:
    - {{ name: orders, topic: {input} }}
  pipelines:
    - name: per-status
      from: orders
      steps:
        - mapValues: >-
            {{'order': value.id, 'who': value.customer, 'status': value.status, 'note': value.note,
              'at': value.at, 'price': value.price, 'tags': value.tags, 'qty': value.attrs['qty']}}
        - name: by-status
          groupBy: {{ key: "value.status", valueSerde: avro, valueSchema: '{schema}' }}
        - count: {{ store: per-status }}
        - toStream: {{}}
        - to: {{ topic: {output}, valueSerde: long }}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
    );
    let file = write_temp(".yaml", &text);
    let mut engine = EngineProcess::start(file.path(), &[], &[]);
    engine.wait_ready(Duration::from_secs(60));
    let repartition = format!("{app}-by-status-repartition");
    let through = read_back(&repartition, 3);
    let counts = consume(
        &output,
        3,
        Duration::from_secs(60),
        Duration::from_millis(300),
    );
    engine.terminate(Duration::from_secs(30));
    let keys: Vec<&Value> = through.iter().map(|r| &r["key"]).collect();
    assert_eq!(
        keys,
        [&json!("PAID"), &json!("NEW"), &json!("PAID")],
        "engine log:\n{}",
        engine.log_text()
    );
    assert_eq!(
        through[1]["value"],
        json!({"order": 2, "who": "bob", "status": "NEW", "note": "skip me",
            "at": 1_700_000_001_000_i64, "price": "0.01", "tags": [], "qty": 1})
    );
    let latest = ureq_get(&format!(
        "{}/subjects/{repartition}-value/versions/latest",
        registry_url()
    ));
    assert_eq!(through[0]["schema_id"], latest["id"], "{latest}");
    let last: Vec<(String, i64)> = counts
        .iter()
        .map(|r| {
            let v: [u8; 8] = r.value.as_deref().unwrap().try_into().unwrap();
            (r.key_str().to_owned(), i64::from_be_bytes(v))
        })
        .collect();
    assert_eq!(
        last,
        [
            ("PAID".to_owned(), 1),
            ("NEW".to_owned(), 1),
            ("PAID".to_owned(), 2)
        ]
    );
}
