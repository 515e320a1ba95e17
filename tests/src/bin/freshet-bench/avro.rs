//! The `avro` workload's input: the benchmark's records in Avro, in Confluent's wire format,
//! with their schema registered in the schema registry.

use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::producer::Producer;

use crate::data::{self, Generator};
use crate::harness::Settings;
use crate::kafka_io::{create_topics, producer, send};

/// Registers the `avro` workload's schema under `<topic>-value` and writes the same records as
/// `prepare` wrote (same seed, keys and timestamps) in Avro to a topic of their own.
pub fn write_avro_input(s: &Settings, id: &str, base: i64) -> String {
    let registry = s.registry.as_deref().expect(
        "the avro workload needs --registry (the schema registry's Confluent-compatible API)",
    );
    let topic = format!("bench-avro-in-{id}");
    create_topics(&[&topic]);
    let body = serde_json::json!({ "schema": data::AVRO_SCHEMA }).to_string();
    let url = format!("{registry}/subjects/{topic}-value/versions");
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "10", "-X", "POST"])
        .args(["-H", "Content-Type: application/vnd.schemaregistry.v1+json"])
        .args(["-d", &body, &url])
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "registering the avro workload's schema: POST {url} failed"
    );
    let answer: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the registry answers JSON");
    let schema_id = answer["id"]
        .as_u64()
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or_else(|| panic!("no schema id in the registry's answer {answer}"));
    let t0 = Instant::now();
    let p = producer(&s.bootstrap, "20");
    for r in Generator::new(42, 0, s.n, true, Box::new(move |i| base + i as i64)) {
        send(
            &p,
            &topic,
            data::key_name(r.key).as_bytes(),
            &r.avro(schema_id),
            r.timestamp,
        );
    }
    p.flush(Duration::from_secs(120))
        .expect("flush the avro input");
    eprintln!(
        "[bench] wrote the same {} records in Avro (schema id {schema_id}) to {topic} in {:.1} s",
        s.n,
        t0.elapsed().as_secs_f64()
    );
    topic
}
