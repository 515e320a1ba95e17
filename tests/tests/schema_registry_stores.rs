//! A state store whose values go through the schema registry, against the real broker and the
//! real registry (Apicurio's Confluent-compatible API): an aggregation keeps an Avro record (with
//! a `timestamp-millis` field) in RocksDB and in its changelog in Confluent's framing, under the
//! changelog's subject. confluent-kafka's Python `AvroDeserializer` reads the changelog and the
//! output; with the state directory deleted, the engine restores the store from the changelog
//! and the aggregates go on exactly.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use freshet_tests::confluent::{registry_url, serdes};
use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::{base_timestamp, create_topics, produce};
use freshet_tests::{kafka_bootstrap, unique_name};
use serde_json::{Value, json};

/// How long one Python deserializer run may take.
const PYTHON_DEADLINE: Duration = Duration::from_secs(120);

/// How long the Python consumer reads before it reports the records it is missing.
const CONSUME_SECS: &str = "60";

/// The aggregate: a count, a sum and the timestamp of the latest order (a logical type).
const SPEND_SCHEMA: &str = r#"{"type":"record","name":"Spend","namespace":"shop","fields":[{"name":"count","type":"long"},{"name":"total","type":"long"},{"name":"last","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;

fn manifest(dir: &Path, app: &str, input: &str, output: &str) -> PathBuf {
    let text = format!(
        r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: json
config:
  commit.interval.ms: "100"
  # Every update reaches the changelog and the output, so both can be compared record by record.
  statestore.cache.max.bytes: "0"
  schema.registry.url: {registry}
topology:
  streams:
    - {{ name: orders, topic: {input} }}
  pipelines:
    - name: spend
      from: orders
      steps:
        - groupByKey: {{}}
        - aggregate:
            initializer: "{{'count': 0, 'total': 0, 'last': 0}}"
            aggregator: "{{'count': agg.count + 1, 'total': agg.total + value.amount, 'last': timestamp}}"
            store: spend
            valueSerde: avro
            valueSchema: '{SPEND_SCHEMA}'
        - toStream: {{}}
        - to: {{ topic: {output}, valueSerde: avro, valueSchema: '{SPEND_SCHEMA}' }}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
    );
    let path = dir.join("app.yaml");
    std::fs::write(&path, text).expect("write manifest");
    path
}

fn start(manifest: &Path, state: &Path) -> EngineProcess {
    let mut engine = EngineProcess::start(
        manifest,
        &["--state-dir", state.to_str().expect("UTF-8 path")],
        &[],
    );
    engine.wait_ready(Duration::from_secs(90));
    engine
}

/// Produces `orders` (key, amount) from `first_ts` (relative to the tests' time base) on, 1 ms
/// apart; returns each with its absolute timestamp.
fn produce_orders(input: &str, orders: &[(&str, i64)], first_ts: i64) -> Vec<(String, i64, i64)> {
    let values: Vec<String> = orders
        .iter()
        .map(|(_, amount)| json!({ "amount": amount }).to_string())
        .collect();
    let records: Vec<_> = orders
        .iter()
        .zip(&values)
        .map(|((key, _), v)| (Some(key.as_bytes()), Some(v.as_bytes())))
        .collect();
    produce(input, &records, first_ts);
    orders
        .iter()
        .enumerate()
        .map(|(i, (key, amount))| {
            (
                (*key).to_owned(),
                *amount,
                base_timestamp() + first_ts + i as i64,
            )
        })
        .collect()
}

/// The aggregates the application must emit, one per order, computed here from the orders.
fn expected_updates(orders: &[(String, i64, i64)]) -> Vec<Value> {
    let mut state: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    orders
        .iter()
        .map(|(key, amount, ts)| {
            let (count, total) = state.entry(key).or_default();
            *count += 1;
            *total += amount;
            json!({"key": key, "value": {"count": *count, "total": *total, "last": ts}})
        })
        .collect()
}

/// `count` records of `topic` read with confluent-kafka's `AvroDeserializer`.
fn read_avro(topic: &str, count: usize) -> Vec<Value> {
    serdes(
        "avro",
        &[
            "consume",
            &kafka_bootstrap(),
            &registry_url(),
            topic,
            &count.to_string(),
            CONSUME_SECS,
        ],
        PYTHON_DEADLINE,
    )
    .lines()
    .map(|l| serde_json::from_str(l).expect("a JSON line"))
    .collect()
}

fn key_values(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .map(|r| json!({"key": r["key"], "value": r["value"]}))
        .collect()
}

fn registry_get(path: &str) -> Value {
    let url = format!("{}{path}", registry_url());
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "10", &url])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "GET {url} failed");
    serde_json::from_slice(&out.stdout).expect("JSON from the registry")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_avro_store_counts_exactly_its_changelog_reads_in_python_and_restores() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let app = unique_name("avro-store");
    let (input, output) = (unique_name("avro-store-in"), unique_name("avro-store-out"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    let manifest = manifest(dir.path(), &app, &input, &output);
    let changelog = format!("{app}-spend-changelog");

    let mut orders = produce_orders(
        &input,
        &[
            ("ann", 5),
            ("bob", 7),
            ("ann", 3),
            ("cy", 1),
            ("bob", 2),
            ("ann", 10),
        ],
        0,
    );
    let mut engine = start(&manifest, &state);
    let expected = expected_updates(&orders);
    let out = read_avro(&output, orders.len());
    assert_eq!(
        key_values(&out),
        expected,
        "engine log:\n{}",
        engine.log_text()
    );
    // The changelog holds the same aggregates, each a Confluent-framed Avro record of the
    // schema registered under the changelog's subject.
    let logged = read_avro(&changelog, orders.len());
    assert_eq!(key_values(&logged), expected);
    let latest = registry_get(&format!("/subjects/{changelog}-value/versions/latest"));
    for record in &logged {
        assert_eq!(record["schema_id"], latest["id"], "{record} vs {latest}");
    }
    let registered: Value =
        serde_json::from_str(latest["schema"].as_str().expect("schema text")).unwrap();
    assert_eq!(
        registered["fields"][2]["type"]["logicalType"], "timestamp-millis",
        "{registered}"
    );
    let status = engine.terminate(Duration::from_secs(60));
    assert!(status.success(), "log:\n{}", engine.log_text());

    // The state directory is lost: the store comes back from the Avro changelog.
    std::fs::remove_dir_all(&state).expect("remove the state directory");
    orders.extend(produce_orders(
        &input,
        &[("ann", 1), ("cy", 4), ("dee", 6)],
        1_000,
    ));
    let mut engine = start(&manifest, &state);
    let restored = engine.metric("freshet_restored_records_total");
    assert!(
        restored >= 3.0,
        "one record per key at least is restored, got {restored}; log:\n{}",
        engine.log_text()
    );
    let expected = expected_updates(&orders);
    let out = read_avro(&output, orders.len());
    assert_eq!(
        key_values(&out),
        expected,
        "the aggregates go on from the restored store; engine log:\n{}",
        engine.log_text()
    );
    let logged = read_avro(&changelog, orders.len());
    assert_eq!(key_values(&logged), expected);
    assert!(engine.terminate(Duration::from_secs(60)).success());
    eprintln!("avro store, restore included, in {:?}", t0.elapsed());
}

#[test]
fn validate_holds_the_aggregate_to_the_store_schema_and_asks_for_a_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = manifest(dir.path(), "app", "in", "out");
    let text = std::fs::read_to_string(&good).unwrap();
    let validate = |text: &str| {
        let path = dir.path().join("checked.yaml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(freshet_tests::engine::engine_binary())
            .args(["validate", "-f"])
            .arg(&path)
            .output()
            .expect("freshet-engine validate runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stderr) = validate(&text);
    assert!(ok, "{stderr}");
    // The aggregator writes a field the store's record lacks.
    let (ok, stderr) =
        validate(&text.replace("'last': timestamp}", "'last': timestamp, 'colour': 'red'}"));
    assert!(!ok, "validate passed a field the store's schema lacks");
    assert!(
        stderr.contains(
            "aggregator writes field 'colour', which the valueSchema's record shop.Spend lacks"
        ),
        "{stderr}"
    );
    // Without a registry, the store's serde says what to set.
    let without: String = text
        .lines()
        .filter(|l| !l.contains("schema.registry.url"))
        .collect::<Vec<_>>()
        .join("\n");
    let (ok, stderr) = validate(&without);
    assert!(!ok, "validate passed an avro store without a registry");
    assert!(
        stderr.contains("step 2 (aggregate)") && stderr.contains("set schema.registry.url"),
        "{stderr}"
    );
}

/// The aggregate as a nested Protobuf message (`valueMessage`), written with message indexes
/// `[0, 0]`.
const TALLY_PROTO: &str = r#"syntax = "proto3";
package shop;

message Tally {
  message Sum {
    int64 count = 1;
    int64 total = 2;
  }
  string note = 1;
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_protobuf_store_writes_its_changelog_as_confluents_serializer_does() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let app = unique_name("proto-store");
    let (input, output) = (
        unique_name("proto-store-in"),
        unique_name("proto-store-out"),
    );
    create_topics(&[(&input, 1), (&output, 1)]).await;
    let schema: String = TALLY_PROTO
        .lines()
        .map(|l| format!("              {l}\n"))
        .collect();
    let text = format!(
        r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: json
config:
  commit.interval.ms: "100"
  statestore.cache.max.bytes: "0"
  schema.registry.url: {registry}
topology:
  streams:
    - {{ name: orders, topic: {input} }}
  pipelines:
    - name: tally
      from: orders
      steps:
        - groupByKey: {{}}
        - aggregate:
            initializer: "{{'count': 0, 'total': 0}}"
            aggregator: "{{'count': agg.count + 1, 'total': agg.total + value.amount}}"
            store: tally
            valueSerde: protobuf
            valueMessage: shop.Tally.Sum
            valueSchema: |
{schema}        - toStream: {{}}
        - to: {{ topic: {output} }}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
    );
    let path = dir.path().join("app.yaml");
    std::fs::write(&path, text).unwrap();
    let orders = produce_orders(&input, &[("ann", 5), ("bob", 7), ("ann", 3)], 0);
    let mut engine = start(&path, &dir.path().join("state"));
    let proto = dir.path().join("tally.proto");
    std::fs::write(&proto, TALLY_PROTO).unwrap();
    let changelog = format!("{app}-tally-changelog");
    let logged: Vec<Value> = serdes(
        "protobuf",
        &[
            "consume",
            &kafka_bootstrap(),
            &registry_url(),
            &changelog,
            &orders.len().to_string(),
            CONSUME_SECS,
            proto.to_str().unwrap(),
            "shop.Tally.Sum",
        ],
        PYTHON_DEADLINE,
    )
    .lines()
    .map(|l| serde_json::from_str(l).expect("a JSON line"))
    .collect();
    assert!(engine.terminate(Duration::from_secs(60)).success());
    let sums: Vec<Value> = logged
        .iter()
        .map(|r| json!({"key": r["key"], "value": r["value"]}))
        .collect();
    assert_eq!(
        sums,
        [
            json!({"key": "ann", "value": {"count": 1, "total": 5}}),
            json!({"key": "bob", "value": {"count": 1, "total": 7}}),
            json!({"key": "ann", "value": {"count": 2, "total": 8}}),
        ],
        "engine log:\n{}",
        engine.log_text()
    );
    // Framed as the nested message, under the changelog's subject, as a PROTOBUF schema.
    assert_eq!(logged[0]["message_indexes"], json!([0, 0]), "{}", logged[0]);
    let latest = registry_get(&format!("/subjects/{changelog}-value/versions/latest"));
    assert_eq!(latest["schemaType"], "PROTOBUF", "{latest}");
    assert_eq!(logged[0]["schema_id"], latest["id"], "{latest}");
    eprintln!("protobuf store in {:?}", t0.elapsed());
}
