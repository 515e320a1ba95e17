//! Freshet against Java Kafka Streams on Avro in Confluent's wire format (issue 23's differential
//! case): the same Avro input, written by confluent-kafka's Python `AvroSerializer` through the
//! real registry (Apicurio's Confluent-compatible API), runs through a stream-table join and an
//! aggregation in Java Kafka Streams 4.4 with Apicurio's Kafka serdes (configured for Confluent's
//! framing: no headers, magic byte, 4-byte content id; tests/reference/streams AvroCases.java) and
//! in Freshet (the manifest below, step for step the same). Both outputs are read back with the
//! Python `AvroDeserializer` and compared field for field (final value per key, the number of
//! updates per key, the partition), and byte for byte: the Avro datum after the 5-byte header
//! always, the whole record where both writers' schema ids agree. Both are also held to the
//! totals computed here from the input, so a fault shared by both sides fails too. Last, Freshet
//! reads Kafka Streams' output, whose schema Apicurio's serializer registered with a schema
//! reference (its enum in a subject of its own), and writes it again with that schema
//! (`use.latest.version`).
use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use freshet_tests::confluent::{registry_url, serdes};
use freshet_tests::differential::process::{oracle_classpath, oracle_command};
use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::{base_timestamp, consume, create_topics};
use freshet_tests::{kafka_bootstrap, unique_name};
use serde_json::{Value, json};

const CUSTOMER_SCHEMA: &str = r#"{"type":"record","name":"Customer","namespace":"shop","fields":[
  {"name":"name","type":"string"},
  {"name":"region","type":"string"},
  {"name":"since","type":{"type":"int","logicalType":"date"}}]}"#;

const ORDER_SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"id","type":"long"},
  {"name":"customer","type":"string"},
  {"name":"amount","type":"long"},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},
  {"name":"note","type":["null","string"],"default":null}]}"#;

const OUTPUT_SCHEMA: &str = r#"{"type":"record","name":"RegionTotal","namespace":"shop.out","fields":[
  {"name":"region","type":"string"},
  {"name":"total","type":"long"},
  {"name":"orders","type":"int"},
  {"name":"biggest","type":"long"},
  {"name":"paid","type":"long"},
  {"name":"size","type":{"type":"enum","name":"Size","symbols":["SMALL","LARGE"]}},
  {"name":"note","type":["null","string"],"default":null}]}"#;

/// How long one Python serializer run may take.
const PYTHON_DEADLINE: Duration = Duration::from_secs(180);

/// How long each side has to write all its output (both start cold: a JVM and an engine).
const OUTPUT_SECS: &str = "120";

/// The customers: (id, name, region). `c2` moves from `us` to `apac` before any order; `c11`
/// gets one order only, so its region's `note` stays null; orders of `c9` and `c10` find no
/// customer and the inner join drops them.
fn customers() -> Vec<(String, &'static str, &'static str)> {
    [
        ("c1", "ann", "eu"),
        ("c2", "bob", "us"),
        ("c3", "cy", "apac"),
        ("c4", "di", "eu"),
        ("c5", "ed", "us"),
        ("c6", "flo", "apac"),
        ("c7", "gus", "eu"),
        ("c8", "hal", "latam"),
        ("c2", "bob", "apac"),
        ("c11", "ida", "mena"),
    ]
    .into_iter()
    .map(|(id, name, region)| (id.to_owned(), name, region))
    .collect()
}

/// The orders: (id, customer, amount, status, note).
fn orders() -> Vec<(i64, String, i64, &'static str, Option<&'static str>)> {
    let mut out: Vec<_> = (0..48_i64)
        .map(|i| {
            let customer = format!("c{}", (i * 7) % 10 + 1);
            let amount = (i * 37) % 97 * 3 + 3;
            let status = if i % 3 == 0 { "NEW" } else { "PAID" };
            let note = (i % 5 == 0).then_some("gift");
            (i, customer, amount, status, note)
        })
        .collect();
    out.push((48, "c11".to_owned(), 7, "PAID", None));
    out
}

/// The output's final value per region, computed from the input as both topologies should.
fn expected() -> BTreeMap<String, Value> {
    let mut region_of = BTreeMap::new();
    for (id, _, region) in customers() {
        region_of.insert(id, region);
    }
    let mut totals: BTreeMap<String, (i64, i64, i64, i64)> = BTreeMap::new();
    for (_, customer, amount, status, _) in orders() {
        let Some(region) = region_of.get(&customer) else {
            continue;
        };
        let t = totals.entry((*region).to_owned()).or_default();
        t.0 += amount;
        t.1 += 1;
        t.2 = t.2.max(amount);
        t.3 += if status == "PAID" { amount } else { 0 };
    }
    totals
        .into_iter()
        .map(|(region, (total, orders, biggest, paid))| {
            let value = json!({"region": region, "total": total, "orders": orders,
                "biggest": biggest, "paid": paid,
                "size": if total >= 1000 { "LARGE" } else { "SMALL" },
                "note": if orders >= 3 { Some("busy") } else { None }});
            (region, value)
        })
        .collect()
}

/// How many records each side writes: one aggregate update per joined order (no record cache).
fn joined_orders() -> usize {
    let known: Vec<String> = customers().into_iter().map(|c| c.0).collect();
    orders().iter().filter(|o| known.contains(&o.1)).count()
}

fn write_temp(suffix: &str, text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new()
        .suffix(suffix)
        .tempfile()
        .expect("temp file");
    std::fs::write(file.path(), text).expect("write temp file");
    file
}

/// Writes `records` (JSON lines with key, value, timestamp) to `topic` with the Python
/// `AvroSerializer` and `schema`.
fn produce(topic: &str, schema: &str, records: &[Value]) {
    let schema = write_temp(".avsc", schema);
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    let file = write_temp(".jsonl", &lines.join("\n"));
    serdes(
        "avro",
        &[
            "produce",
            &kafka_bootstrap(),
            &registry_url(),
            topic,
            &schema.path().display().to_string(),
            &file.path().display().to_string(),
        ],
        PYTHON_DEADLINE,
    );
}

/// The input: every customer row stamped before every order, so each order meets the table's
/// final rows in both implementations, whatever order the tasks read their partitions in.
fn produce_input(customers_topic: &str, orders_topic: &str) {
    let base = base_timestamp();
    let rows: Vec<Value> = customers()
        .into_iter()
        .enumerate()
        .map(|(i, (id, name, region))| {
            json!({"key": id, "timestamp": base + i as i64,
                "value": {"name": name, "region": region, "since": 19_000 + i}})
        })
        .collect();
    produce(customers_topic, CUSTOMER_SCHEMA, &rows);
    let records: Vec<Value> = orders()
        .into_iter()
        .map(|(id, customer, amount, status, note)| {
            json!({"key": format!("o{id}"), "timestamp": base + 10_000 + id * 10,
                "value": {"id": id, "customer": customer, "amount": amount, "status": status, "note": note}})
        })
        .collect();
    produce(orders_topic, ORDER_SCHEMA, &records);
}

fn manifest(app: &str, customers: &str, orders: &str, output: &str) -> String {
    // The output schema inline, as JSON text in YAML (one line, so no indentation matters).
    let schema: Value = serde_json::from_str(OUTPUT_SCHEMA).expect("output schema");
    format!(
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
    - {{ name: customer-rows, topic: {customers}, valueSerde: avro }}
    - {{ name: orders, topic: {orders}, valueSerde: avro }}
  pipelines:
    - name: customers
      from: customer-rows
      steps:
        - mapValues: "{{'name': value.name, 'region': value.region}}"
        - toTable: {{ store: customers }}
    - name: order-totals
      from: orders
      steps:
        - selectKey: "value.customer"
        - name: enrich
          join: {{ table: customers, value: "{{'region': right.region, 'customer': right.name, 'amount': left.amount, 'status': left.status}}" }}
        - name: by-region
          groupBy: {{ key: "value.region", keySerde: string, valueSerde: json }}
        - aggregate:
            initializer: "{{'total': 0, 'orders': 0, 'biggest': 0, 'paid': 0}}"
            aggregator: >-
              {{'total': agg.total + value.amount, 'orders': agg.orders + 1,
                'biggest': value.amount > agg.biggest ? value.amount : agg.biggest,
                'paid': agg.paid + (value.status == 'PAID' ? value.amount : 0)}}
            store: region-totals
        - toStream: {{}}
        - mapValues: >-
            {{'region': key, 'total': value.total, 'orders': value.orders,
              'biggest': value.biggest, 'paid': value.paid,
              'size': value.total >= 1000 ? 'LARGE' : 'SMALL',
              'note': value.orders >= 3 ? 'busy' : null}}
        - to: {{ topic: {output}, valueSerde: avro, valueSchema: '{schema}' }}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
    )
}

/// The Java oracle running the case; killed when dropped.
struct Oracle {
    child: Child,
    log: std::path::PathBuf,
    _state: tempfile::TempDir,
}

impl Oracle {
    fn start(app: &str, topic_map: &str, schema_file: &std::path::Path) -> Oracle {
        let state = tempfile::tempdir().expect("oracle state dir");
        let log = std::env::temp_dir().join(format!("{}.log", unique_name("oracle-avro")));
        let file = std::fs::File::create(&log).expect("oracle log file");
        let child = oracle_command(&oracle_classpath())
            .args(["order-totals-avro", &kafka_bootstrap(), app])
            .arg(state.path())
            .args([topic_map, &registry_url()])
            .arg(schema_file)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the oracle (java): {e}"));
        Oracle {
            child,
            log,
            _state: state,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One side's output as the Python `AvroDeserializer` reads it.
struct Output {
    /// Each region's records, in offset order.
    by_key: BTreeMap<String, Vec<Value>>,
}

impl Output {
    fn read(topic: &str, count: usize) -> Output {
        let text = serdes(
            "avro",
            &[
                "consume",
                &kafka_bootstrap(),
                &registry_url(),
                topic,
                &count.to_string(),
                OUTPUT_SECS,
            ],
            PYTHON_DEADLINE,
        );
        let mut by_key: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for line in text.lines() {
            let record: Value = serde_json::from_str(line).expect("a JSON line");
            let key = record["key"].as_str().expect("a string key").to_owned();
            by_key.entry(key).or_default().push(record);
        }
        for records in by_key.values_mut() {
            records.sort_by_key(|r| r["offset"].as_i64());
        }
        Output { by_key }
    }

    fn last(&self, key: &str) -> &Value {
        self.by_key[key].last().expect("a record")
    }

    fn finals(&self) -> BTreeMap<String, Value> {
        self.by_key
            .keys()
            .map(|k| (k.clone(), self.last(k)["value"].clone()))
            .collect()
    }
}

fn hex_payload(record: &Value) -> &str {
    // The Avro datum: the hex after the magic byte and the 4-byte id (10 hex digits).
    record["raw"].as_str().map(|h| &h[10..]).unwrap_or_default()
}

/// GET `path` of the registry's Confluent-compatible API.
fn registry_get(path: &str) -> Value {
    let url = format!("{}{path}", registry_url());
    let out = std::process::Command::new("curl")
        .args(["-sf", "--max-time", "10", &url])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "GET {url} failed");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// POST `body` to `path` of the registry's Confluent-compatible API.
fn registry_post(path: &str, body: &Value) -> Value {
    let url = format!("{}{path}", registry_url());
    let out = std::process::Command::new("curl")
        .args(["-sf", "--max-time", "10", "-X", "POST"])
        .args(["-H", "Content-Type: application/vnd.schemaregistry.v1+json"])
        .args(["-d", &body.to_string(), &url])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "POST {url} failed: {body}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn latest_id(subject: &str) -> Value {
    registry_get(&format!("/subjects/{subject}/versions/latest"))["id"].clone()
}

/// A manifest copying the Avro records of `from` (Kafka Streams' output) to `to` as JSON, and
/// to `again` in Avro with the latest schema of `again`'s subject (`use.latest.version`).
fn copy_manifest(from: &str, to: &str, again: &str) -> String {
    format!(
        r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: avro
config:
  commit.interval.ms: "100"
  schema.registry.url: {registry}
  use.latest.version: "true"
  auto.register.schemas: "false"
topology:
  streams:
    - {{ name: java-output, topic: {from} }}
  pipelines:
    - name: copy
      from: java-output
      steps:
        - to: {{ topic: {to}, valueSerde: json }}
    - name: again
      from: java-output
      steps:
        - to: {{ topic: {again} }}
"#,
        app = unique_name("avro-copy"),
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn freshet_matches_kafka_streams_with_apicurio_avro_serdes_on_a_join_and_an_aggregation() {
    let t0 = Instant::now();
    let customers_topic = unique_name("avro-diff-customers");
    let orders_topic = unique_name("avro-diff-orders");
    let (java_out, freshet_out) = (
        unique_name("avro-diff-java"),
        unique_name("avro-diff-freshet"),
    );
    // The orders have 3 partitions, the customers 2: the join's repartition topic takes the
    // table's 2 (in both).
    create_topics(&[
        (&customers_topic, 2),
        (&orders_topic, 3),
        (&java_out, 2),
        (&freshet_out, 2),
    ])
    .await;
    produce_input(&customers_topic, &orders_topic);
    let produced = t0.elapsed();

    let schema_file = write_temp(".avsc", OUTPUT_SCHEMA);
    let topic_map = format!("customers={customers_topic},orders={orders_topic},output={java_out}");
    let oracle = Oracle::start(&unique_name("avro-java"), &topic_map, schema_file.path());
    let file = write_temp(
        ".yaml",
        &manifest(
            &unique_name("avro-freshet"),
            &customers_topic,
            &orders_topic,
            &freshet_out,
        ),
    );
    let mut engine = EngineProcess::start(file.path(), &[], &[]);
    engine.wait_ready(Duration::from_secs(60));

    let count = joined_orders();
    let read = |topic: &str, who: &str| {
        std::panic::catch_unwind(|| Output::read(topic, count)).unwrap_or_else(|e| {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!(
                "{who} did not write {count} records: {why}\n--- oracle log ---\n{}\n--- engine log ---\n{}",
                oracle.log_text(),
                engine.log_text()
            )
        })
    };
    let java = read(&java_out, "Kafka Streams");
    let freshet = read(&freshet_out, "Freshet");
    let outputs_read = t0.elapsed();
    // Nothing beyond one update per joined order (a duplicate would be a difference too).
    for topic in [&java_out, &freshet_out] {
        let all = consume(
            topic,
            count,
            Duration::from_secs(30),
            Duration::from_secs(3),
        );
        assert_eq!(all.len(), count, "records in {topic}");
    }
    engine.terminate(Duration::from_secs(30));

    let want = expected();
    assert!(
        want.values().any(|v| v["size"] == "LARGE") && want.values().any(|v| v["size"] == "SMALL"),
        "the input should give both enum symbols: {want:?}"
    );
    assert!(
        want.values().any(|v| v["note"].is_null()) && want.values().any(|v| !v["note"].is_null()),
        "the input should give both union branches: {want:?}"
    );
    assert_eq!(
        java.finals(),
        want,
        "Kafka Streams' final values (left) vs the totals of the input; oracle log:\n{}",
        oracle.log_text()
    );
    assert_eq!(
        freshet.finals(),
        java.finals(),
        "Freshet's final values (left) vs Kafka Streams'; engine log:\n{}",
        engine.log_text()
    );
    let mut ids = Vec::new();
    for (key, records) in &java.by_key {
        let theirs = &freshet.by_key[key];
        assert_eq!(
            theirs.len(),
            records.len(),
            "updates of key {key}: Freshet (left) vs Kafka Streams"
        );
        let (j, f) = (java.last(key), freshet.last(key));
        assert_eq!(
            f["partition"], j["partition"],
            "partition of key {key}: Freshet (left) vs Kafka Streams"
        );
        assert_eq!(
            hex_payload(f),
            hex_payload(j),
            "the Avro datum of key {key}'s final record: Freshet (left) vs Kafka Streams"
        );
        if f["schema_id"] == j["schema_id"] {
            assert_eq!(
                f["raw"], j["raw"],
                "key {key}'s final record, byte for byte"
            );
        }
        ids.push((j["schema_id"].clone(), f["schema_id"].clone()));
    }
    // Each writer's id is the one the Confluent-compatible API gives its subject
    // (TopicNameStrategy): Apicurio's serializer, registering through Apicurio's own API, writes
    // the content id, which is Confluent's `id` there.
    let (java_id, freshet_id) = ids[0].clone();
    assert!(
        ids.iter().all(|(j, f)| *j == java_id && *f == freshet_id),
        "one schema id per writer: {ids:?}"
    );
    assert_eq!(java_id, latest_id(&format!("{java_out}-value")));
    assert_eq!(freshet_id, latest_id(&format!("{freshet_out}-value")));

    // Apicurio's serializer registered the output's enum as a schema of a subject of its own and
    // the record with a reference to it (Confluent's schema references): Freshet reads those
    // records too, every field as Python's deserializer read it.
    let java_schema = registry_get(&format!("/schemas/ids/{java_id}"));
    assert!(
        java_schema["references"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "Apicurio's serializer no longer registers the enum as a reference; this part then tests nothing new: {java_schema}"
    );
    let (copy, again) = (
        unique_name("avro-diff-copy"),
        unique_name("avro-diff-again"),
    );
    create_topics(&[(&copy, 2), (&again, 2)]).await;
    // `again`'s subject gets Java's schema, references and all: Freshet writes with it.
    let again_id = registry_post(
        &format!("/subjects/{again}-value/versions"),
        &json!({"schema": java_schema["schema"], "references": java_schema["references"]}),
    )["id"]
        .clone();
    let file = write_temp(".yaml", &copy_manifest(&java_out, &copy, &again));
    let mut reader = EngineProcess::start(file.path(), &[], &[]);
    reader.wait_ready(Duration::from_secs(60));
    let copied = std::panic::catch_unwind(|| {
        (
            consume(
                &copy,
                count,
                Duration::from_secs(60),
                Duration::from_secs(2),
            ),
            Output::read(&again, count),
        )
    });
    reader.terminate(Duration::from_secs(30));
    let copied = copied.unwrap_or_else(|_| {
        panic!(
            "Freshet did not copy Java's output; its log:\n{}",
            reader.log_text()
        )
    });
    let (copied, written_again) = copied;
    let mut copied_finals = BTreeMap::new();
    for r in &copied {
        let value: Value =
            serde_json::from_slice(r.value.as_deref().unwrap_or_default()).expect("a JSON value");
        copied_finals.insert(r.key_str().to_owned(), value);
    }
    assert_eq!(
        copied_finals,
        java.finals(),
        "Java's output as Freshet reads it (left) and as Python's AvroDeserializer does"
    );
    // Written back with the schema that refers (use.latest.version): Python reads the same
    // values, and the datums are Java's, byte for byte (whole records where the ids agree).
    assert_eq!(
        written_again.finals(),
        java.finals(),
        "Java's output written again by Freshet with Java's schema (left)"
    );
    for key in java.by_key.keys() {
        let (j, f) = (java.last(key), written_again.last(key));
        assert_eq!(f["schema_id"], again_id, "{f}");
        assert_eq!(hex_payload(f), hex_payload(j), "key {key}");
        if again_id == java_id {
            assert_eq!(f["raw"], j["raw"], "key {key}");
        }
    }
    eprintln!(
        "avro differential: {count} records per side, schema ids Java {java_id} / Freshet {freshet_id} ({}), Freshet with Java's schema {again_id}; input produced after {produced:?}, outputs read after {outputs_read:?}, done in {:?}",
        if java_id == freshet_id {
            "equal: whole records compared byte for byte"
        } else {
            "differ: the Avro datums compared byte for byte"
        },
        t0.elapsed()
    );
}
