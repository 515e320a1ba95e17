//! The `json-schema` and `protobuf` serdes against a real schema registry (Apicurio's
//! Confluent-compatible API, `make registry-up`) and a real broker, checked with an independent
//! implementation of Confluent's wire format: confluent-kafka's Python `JSONSerializer` /
//! `ProtobufSerializer` write the input, Freshet reads and transforms it, `JSONDeserializer` /
//! `ProtobufDeserializer` read Freshet's output back, field for field. (The `avro` serde's suite
//! is schema_registry.rs.)
use std::process::Command;
use std::time::{Duration, Instant};

use freshet_tests::confluent::{registry_url, serdes};
use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::create_topics;
use freshet_tests::{kafka_bootstrap, unique_name};
use serde_json::{Value, json};

/// How long one Python serializer run may take: a produce, or a consume of a few records.
const PYTHON_DEADLINE: Duration = Duration::from_secs(120);

/// How long the Python consumer reads before it reports the records it is missing.
const CONSUME_SECS: &str = "60";

fn write_temp(suffix: &str, text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

/// A manifest reading `input` and writing `output` with `serde` values; `schema_yaml` is the `to`
/// step's valueSchema as YAML (indented for its place).
fn manifest(app: &str, serde: &str, input: &str, output: &str, schema_yaml: &str) -> String {
    format!(
        r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: {serde}
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
        - mapValues: >-
            {{'order': value.id, 'who': value.customer + '@' + key, 'status': 'SHIPPED',
              'lines': value.lines, 'qty': value.attrs['qty'] * 2}}
        - to:
            topic: {output}
            valueSchema: {schema_yaml}
"#,
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
    )
}

/// The records the Python serializers write (JSON values for both formats).
fn orders() -> Vec<Value> {
    vec![
        json!({"key": "k1", "value": {"id": 1, "customer": "ann", "status": "PAID",
            "lines": [{"sku": "a", "qty": 1}], "attrs": {"qty": 3}}}),
        json!({"key": "k2", "value": {"id": 2, "customer": "bob", "status": "NEW",
            "lines": [], "attrs": {"qty": 1}}}),
        json!({"key": "k3", "value": {"id": 3, "customer": "cy", "status": "PAID",
            "lines": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 5}], "attrs": {"qty": 7, "w": 2}}}),
    ]
}

/// Writes `orders()` to `input` with Python's serializer of `format`.
fn produce(format: &str, input: &str, schema_file: &str, message: Option<&str>) {
    let lines: Vec<String> = orders().iter().map(Value::to_string).collect();
    let records = write_temp(".jsonl", &lines.join("\n"));
    let records = records.path().display().to_string();
    let bootstrap = kafka_bootstrap();
    let registry = registry_url();
    let mut args = vec![
        "produce",
        &bootstrap,
        &registry,
        input,
        schema_file,
        &records,
    ];
    args.extend(message);
    serdes(format, &args, PYTHON_DEADLINE);
}

/// Reads `count` records of `output` with Python's deserializer of `format`.
fn read_back(format: &str, output: &str, count: usize, extra: &[&str]) -> Vec<Value> {
    let bootstrap = kafka_bootstrap();
    let registry = registry_url();
    let count = count.to_string();
    let mut args = vec![
        "consume",
        &bootstrap,
        &registry,
        output,
        &count,
        CONSUME_SECS,
    ];
    args.extend(extra);
    serdes(format, &args, PYTHON_DEADLINE)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The registry's latest version of `subject`.
fn latest(subject: &str) -> Value {
    let url = format!("{}/subjects/{subject}/versions/latest", registry_url());
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "10", &url])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "GET {url} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs the manifest until Python has read `count` records of `output`.
fn run_engine<T>(manifest: &str, read: impl FnOnce() -> T) -> T {
    let file = write_temp(".yaml", manifest);
    let mut engine = EngineProcess::start(file.path(), &[], &[]);
    engine.wait_ready(Duration::from_secs(60));
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read));
    engine.terminate(Duration::from_secs(30));
    match got {
        Ok(got) => got,
        Err(panic) => {
            eprintln!("engine log:\n{}", engine.log_text());
            std::panic::resume_unwind(panic)
        }
    }
}

/// `spec.schemaRegistry` instead of `config`: the URL from the spec, the basic-auth user and
/// password from a Secret (read here from FRESHET_SECRET_* variables, as locally; the operator
/// mounts the Secret in pods). Apicurio runs without auth, so this checks the wiring: the engine
/// reaches the registry the spec names, with the Secret's credentials resolved and redacted.
#[tokio::test(flavor = "multi_thread")]
async fn spec_schema_registry_names_the_registry_and_its_credentials() {
    let (input, output) = (unique_name("jsreg-in"), unique_name("jsreg-out"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    let schema = write_temp(".json", INPUT_JSON_SCHEMA);
    produce("json", &input, &schema.path().display().to_string(), None);
    let output_schema = format!(
        "'{}'",
        json!({"title": "Shipment", "type": "object", "properties": {"order": {"type": "integer"}}})
    );
    let text = manifest(
        &unique_name("jsreg"),
        "json-schema",
        &input,
        &output,
        &output_schema,
    )
    .replace(&format!("  schema.registry.url: {}\n", registry_url()), "")
    .replace(
        "config:\n",
        &format!(
            "schemaRegistry:\n  url: {}\n  basicAuth: {{ secretName: registry-creds }}\nconfig:\n",
            registry_url()
        ),
    );
    assert!(!text.contains("schema.registry.url"), "{text}");
    let file = write_temp(".yaml", &text);
    let env = [
        ("FRESHET_SECRET_REGISTRY_CREDS_USERNAME", "freshet"),
        ("FRESHET_SECRET_REGISTRY_CREDS_PASSWORD", "s3cret-value"),
    ];
    let mut engine = EngineProcess::start(file.path(), &[], &env);
    engine.wait_ready(Duration::from_secs(60));
    let got = std::panic::catch_unwind(|| read_back("json", &output, 2, &[]));
    engine.terminate(Duration::from_secs(30));
    let log = engine.log_text();
    let got = got.unwrap_or_else(|_| panic!("engine log:\n{log}"));
    assert_eq!(got[1]["value"]["who"], "cy@k3", "{got:?}");
    assert!(
        !log.contains("s3cret-value"),
        "the password reached the log:\n{log}"
    );
    // Without the Secret, the engine stops naming the field, the Secret and the key.
    let mut engine = EngineProcess::start(file.path(), &[], &[]);
    let status = engine.wait(Duration::from_secs(30));
    let log = engine.log_text();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("spec.schemaRegistry.basicAuth.usernameKey") && log.contains("registry-creds"),
        "{log}"
    );
}

const INPUT_JSON_SCHEMA: &str = r#"{"title":"Order","type":"object","properties":{
  "id":{"type":"integer"},"customer":{"type":"string"},
  "status":{"type":"string","enum":["NEW","PAID","SHIPPED"]},
  "lines":{"type":"array","items":{"type":"object","properties":{"sku":{"type":"string"},"qty":{"type":"integer"}},"required":["sku","qty"]}},
  "attrs":{"type":"object","additionalProperties":{"type":"integer"}}},
  "required":["id","customer","status","lines","attrs"]}"#;

#[tokio::test(flavor = "multi_thread")]
async fn json_schema_python_writes_freshet_transforms_python_reads() {
    let t0 = Instant::now();
    let (input, output) = (unique_name("jsons-in"), unique_name("jsons-out"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    let schema = write_temp(".json", INPUT_JSON_SCHEMA);
    produce("json", &input, &schema.path().display().to_string(), None);
    // The output schema, JSON text in a YAML string; closed, so Python's deserializer (which
    // validates) would refuse a field it does not declare.
    let output_schema = json!({
        "title": "Shipment", "type": "object", "additionalProperties": false,
        "required": ["order", "who", "status", "lines", "qty"],
        "properties": {
            "order": {"type": "integer"}, "who": {"type": "string"},
            "status": {"type": "string", "enum": ["SHIPPED"]},
            "lines": {"type": "array", "items": {"type": "object"}},
            "qty": {"type": "integer"}}});
    let output_schema = format!("'{output_schema}'");
    let text = manifest(
        &unique_name("jsons"),
        "json-schema",
        &input,
        &output,
        &output_schema,
    );
    let got = run_engine(&text, || read_back("json", &output, 2, &[]));
    let values: Vec<&Value> = got.iter().map(|r| &r["value"]).collect();
    assert_eq!(
        values,
        [
            &json!({"order": 1, "who": "ann@k1", "status": "SHIPPED",
                "lines": [{"sku": "a", "qty": 1}], "qty": 6}),
            &json!({"order": 3, "who": "cy@k3", "status": "SHIPPED",
                "lines": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 5}], "qty": 14}),
        ]
    );
    let keys: Vec<&Value> = got.iter().map(|r| &r["key"]).collect();
    assert_eq!(keys, [&json!("k1"), &json!("k3")]);
    // Registered under TopicNameStrategy's subject as a JSON schema; the records carry its id.
    let registered = latest(&format!("{output}-value"));
    assert_eq!(registered["schemaType"], "JSON", "{registered}");
    assert_eq!(got[0]["schema_id"], registered["id"], "{registered}");
    eprintln!("json-schema round trip in {:?}", t0.elapsed());
}

/// Two top-level messages, so Python's `Order` is framed with message indexes [1]; `Order` nests
/// an enum, a message (repeated and single) and a map.
const INPUT_PROTO: &str = r#"syntax = "proto3";
package shop;

message Envelope {
  string note = 1;
}

message Order {
  enum Status {
    NEW = 0;
    PAID = 1;
    SHIPPED = 2;
  }
  message Line {
    string sku = 1;
    int32 qty = 2;
  }
  int64 id = 1;
  string customer = 2;
  Status status = 3;
  repeated Line lines = 4;
  map<string, int32> attrs = 5;
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_python_writes_freshet_transforms_python_reads() {
    let t0 = Instant::now();
    let (input, output) = (unique_name("proto-in"), unique_name("proto-out"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    let dir = tempfile::tempdir().unwrap();
    let input_proto = dir.path().join("order_in.proto");
    std::fs::write(&input_proto, INPUT_PROTO).unwrap();
    let input_proto = input_proto.display().to_string();
    produce("protobuf", &input, &input_proto, Some("shop.Order"));
    // Freshet writes the first message of its schema, Shipment, whose lines are a nested message.
    let output_proto = r#"syntax = "proto3";
package ship;

message Shipment {
  message Line {
    string sku = 1;
    int32 qty = 2;
  }
  int64 order = 1;
  string who = 2;
  string status = 3;
  repeated Line lines = 4;
  int64 qty = 5;
}
"#;
    let proto_file = dir.path().join("shipment.proto");
    std::fs::write(&proto_file, output_proto).unwrap();
    let yaml = format!(
        "|\n{}",
        output_proto
            .lines()
            .map(|l| format!("              {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let text = manifest(&unique_name("proto"), "protobuf", &input, &output, &yaml);
    let proto_path = proto_file.display().to_string();
    let got = run_engine(&text, || {
        read_back("protobuf", &output, 2, &[&proto_path, "ship.Shipment"])
    });
    let values: Vec<&Value> = got.iter().map(|r| &r["value"]).collect();
    assert_eq!(
        values,
        [
            &json!({"order": 1, "who": "ann@k1", "status": "SHIPPED",
                "lines": [{"sku": "a", "qty": 1}], "qty": 6}),
            &json!({"order": 3, "who": "cy@k3", "status": "SHIPPED",
                "lines": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 5}], "qty": 14}),
        ]
    );
    // Freshet's records name the first message: Confluent's one-byte [0] (read back as []).
    assert_eq!(got[0]["message_indexes"], json!([]), "{:?}", got[0]);
    let registered = latest(&format!("{output}-value"));
    assert_eq!(registered["schemaType"], "PROTOBUF", "{registered}");
    assert_eq!(got[0]["schema_id"], registered["id"], "{registered}");
    // And Python framed its Order, the second message, with indexes [1], which Freshet followed
    // (it read id, customer, status, lines and attrs from the right message above).
    let input_records = read_back("protobuf", &input, 1, &[&input_proto, "shop.Order"]);
    assert_eq!(input_records[0]["message_indexes"], json!([1]));
    eprintln!("protobuf round trip in {:?}", t0.elapsed());
}

/// Two top-level messages and a nested one: `valueMessage` picks which one Freshet writes.
const NAMED_PROTO: &str = r#"syntax = "proto3";
package ship;

message Envelope {
  string note = 1;
}

message Shipment {
  message Line {
    string sku = 1;
    int32 qty = 2;
  }
  int64 order = 1;
  string who = 2;
  repeated Line lines = 3;
}
"#;

/// A manifest whose two pipelines write `ship.Shipment` (the file's second message) to
/// `shipments` and `Shipment.Line` (nested, named within the package) to `lines`.
fn named_message_manifest(input: &str, shipments: &str, lines: &str, line_message: &str) -> String {
    let schema = NAMED_PROTO
        .lines()
        .map(|l| format!("              {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: protobuf
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
        - mapValues: "{{'order': value.id, 'who': value.customer + '@' + key, 'lines': value.lines}}"
        - to:
            topic: {shipments}
            valueMessage: ship.Shipment
            valueSchema: |
{schema}
    - name: first-lines
      from: orders
      steps:
        - filter: "size(value.lines) > 0"
        - mapValues: "value.lines[0]"
        - to:
            topic: {lines}
            valueMessage: {line_message}
            valueSchema: |
{schema}
"#,
        app = unique_name("proto-named"),
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_freshet_writes_the_message_the_manifest_names_nested_ones_included() {
    let t0 = Instant::now();
    let (input, shipments, lines) = (
        unique_name("proto-named-in"),
        unique_name("proto-named-ship"),
        unique_name("proto-named-lines"),
    );
    create_topics(&[(&input, 1), (&shipments, 1), (&lines, 1)]).await;
    let dir = tempfile::tempdir().unwrap();
    let input_proto = dir.path().join("order_in.proto");
    std::fs::write(&input_proto, INPUT_PROTO).unwrap();
    produce(
        "protobuf",
        &input,
        &input_proto.display().to_string(),
        Some("shop.Order"),
    );
    let proto_file = dir.path().join("shipment_named.proto");
    std::fs::write(&proto_file, NAMED_PROTO).unwrap();
    let proto_path = proto_file.display().to_string();

    // validate refuses a message the schema does not have, naming the step and the messages.
    let bad = write_temp(
        ".yaml",
        &named_message_manifest(&input, &shipments, &lines, "Shipment.Lines"),
    );
    let out = Command::new(freshet_tests::engine::engine_binary())
        .args(["validate", "-f"])
        .arg(bad.path())
        .output()
        .expect("freshet-engine validate runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "validate passed an unknown message");
    assert!(
        stderr.contains("valueMessage: the schema has no message 'Shipment.Lines' (its messages: ship.Envelope, ship.Shipment, ship.Shipment.Line)"),
        "{stderr}"
    );

    let text = named_message_manifest(&input, &shipments, &lines, "Shipment.Line");
    let (ship, first) = run_engine(&text, || {
        (
            read_back("protobuf", &shipments, 2, &[&proto_path, "ship.Shipment"]),
            read_back("protobuf", &lines, 2, &[&proto_path, "ship.Shipment.Line"]),
        )
    });
    let values: Vec<&Value> = ship.iter().map(|r| &r["value"]).collect();
    assert_eq!(
        values,
        [
            &json!({"order": 1, "who": "ann@k1", "lines": [{"sku": "a", "qty": 1}]}),
            &json!({"order": 3, "who": "cy@k3", "lines": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 5}]}),
        ]
    );
    // The second top-level message is framed [1], the first nested in it [1, 0]: Python's
    // deserializer of that very class read them, and the indexes are those Confluent writes.
    assert_eq!(ship[0]["message_indexes"], json!([1]), "{:?}", ship[0]);
    let values: Vec<&Value> = first.iter().map(|r| &r["value"]).collect();
    assert_eq!(
        values,
        [
            &json!({"sku": "a", "qty": 1}),
            &json!({"sku": "x", "qty": 2})
        ]
    );
    assert_eq!(first[0]["message_indexes"], json!([1, 0]), "{:?}", first[0]);
    // One schema, registered under each topic's subject.
    for (topic, records) in [(&shipments, &ship), (&lines, &first)] {
        let registered = latest(&format!("{topic}-value"));
        assert_eq!(records[0]["schema_id"], registered["id"], "{registered}");
    }
    eprintln!("protobuf named messages in {:?}", t0.elapsed());
}

/// A file another imports: Python's serializer registers it under its own subject and the
/// importing schema refers to it (Confluent's schema `references`).
const MONEY_PROTO: &str = r#"syntax = "proto3";
package common;

message Money {
  int64 cents = 1;
  string currency = 2;
}
"#;

const PAYMENT_PROTO: &str = r#"syntax = "proto3";
package shop;

import "money.proto";

message Payment {
  int64 id = 1;
  common.Money amount = 2;
  string customer = 3;
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_imports_are_read_from_the_schema_references() {
    let t0 = Instant::now();
    let (input, output) = (unique_name("proto-ref-in"), unique_name("proto-ref-out"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("money.proto"), MONEY_PROTO).unwrap();
    let payment = dir.path().join("payment.proto");
    std::fs::write(&payment, PAYMENT_PROTO).unwrap();
    let lines = [
        json!({"key": "p1", "value": {"id": 1, "amount": {"cents": 1250, "currency": "EUR"}, "customer": "ann"}}),
        json!({"key": "p2", "value": {"id": 2, "amount": {"cents": 99, "currency": "USD"}, "customer": "bob"}}),
    ];
    let lines: Vec<String> = lines.iter().map(Value::to_string).collect();
    let records = write_temp(".jsonl", &lines.join("\n"));
    serdes(
        "protobuf",
        &[
            "produce",
            &kafka_bootstrap(),
            &registry_url(),
            &input,
            payment.to_str().unwrap(),
            records.path().to_str().unwrap(),
            "shop.Payment",
        ],
        PYTHON_DEADLINE,
    );
    // The input's schema refers to money.proto's subject rather than containing it.
    let registered = latest(&format!("{input}-value"));
    let references = registered["references"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        references.iter().any(|r| r["name"] == "money.proto"),
        "{registered}"
    );
    let text = format!(
        r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: protobuf
config:
  commit.interval.ms: "100"
  schema.registry.url: {registry}
topology:
  streams:
    - {{ name: payments, topic: {input} }}
  pipelines:
    - name: flat
      from: payments
      steps:
        - mapValues: "{{'id': value.id, 'cents': value.amount.cents, 'currency': value.amount.currency, 'who': value.customer}}"
        - to: {{ topic: {output}, valueSerde: json }}
"#,
        app = unique_name("proto-ref"),
        bootstrap = kafka_bootstrap(),
        registry = registry_url(),
    );
    let got = run_engine(&text, || {
        freshet_tests::kafka::consume(
            &output,
            2,
            Duration::from_secs(60),
            Duration::from_millis(300),
        )
    });
    let values: Vec<Value> = got
        .iter()
        .map(|r| serde_json::from_slice(r.value.as_deref().unwrap_or_default()).unwrap())
        .collect();
    assert_eq!(
        values,
        [
            json!({"id": 1, "cents": 1250, "currency": "EUR", "who": "ann"}),
            json!({"id": 2, "cents": 99, "currency": "USD", "who": "bob"}),
        ]
    );
    eprintln!("protobuf with a referenced import in {:?}", t0.elapsed());
}
