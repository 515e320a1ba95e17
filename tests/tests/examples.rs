//! Every example in `examples/` with sample input runs with `freshet-engine run` against the real
//! broker and produces exactly its expected output, byte for byte, in order. Every input is
//! produced before the engine starts.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::{consume, produce, recreate_topics};
use freshet_tests::{repo_root, unique_name};
use serde_json::Value;

struct Line {
    topic: String,
    key: Option<String>,
    value: Option<String>,
}

fn read_lines(path: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display()));
            let text = |f: &str| match &v[f] {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            };
            Line {
                topic: v["topic"].as_str().expect("topic").to_owned(),
                key: text("key"),
                value: text("value"),
            }
        })
        .collect()
}

/// `value` with every string scalar that is one of `names` replaced by its new name.
fn rename(value: &mut serde_yaml_ng::Value, names: &BTreeMap<String, String>) {
    use serde_yaml_ng::Value as Y;
    match value {
        Y::String(s) => {
            if let Some(new) = names.get(s.as_str()) {
                *s = new.clone();
            }
        }
        Y::Sequence(items) => items.iter_mut().for_each(|v| rename(v, names)),
        Y::Mapping(map) => map.values_mut().for_each(|v| rename(v, names)),
        Y::Tagged(t) => rename(&mut t.value, names),
        _ => {}
    }
}

/// Whether a string scalar of `value` is `name`.
fn mentions(value: &serde_yaml_ng::Value, name: &str) -> bool {
    use serde_yaml_ng::Value as Y;
    match value {
        Y::String(s) => s == name,
        Y::Sequence(items) => items.iter().any(|v| mentions(v, name)),
        Y::Mapping(map) => map.values().any(|v| mentions(v, name)),
        Y::Tagged(t) => mentions(&t.value, name),
        _ => false,
    }
}

async fn run_example(name: &str) {
    let dir = repo_root().join("examples").join(name);
    let mut input = read_lines(&dir.join("input.jsonl"));
    let mut expected = read_lines(&dir.join("expected.jsonl"));
    // Topics of this run only: `make demo` leaves the example running on the same broker, and
    // it would read this run's input from the example's own topics and write a second output.
    // Only names the manifest spells out are renamed (one computed by a `topicExpr` keeps its
    // name).
    let manifest_text = std::fs::read_to_string(dir.join("app.yaml")).expect("app.yaml");
    let mut manifest: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&manifest_text).expect("app.yaml is YAML");
    let suffix = unique_name("run");
    let names: BTreeMap<String, String> = input
        .iter()
        .chain(&expected)
        .filter(|l| mentions(&manifest, &l.topic))
        .map(|l| (l.topic.clone(), format!("{}-{suffix}", l.topic)))
        .collect();
    for l in input.iter_mut().chain(expected.iter_mut()) {
        if let Some(new) = names.get(&l.topic) {
            l.topic = new.clone();
        }
    }
    rename(&mut manifest, &names);
    let scratch = tempfile::tempdir().expect("tempdir");
    let manifest_path = scratch.path().join("app.yaml");
    std::fs::write(
        &manifest_path,
        serde_yaml_ng::to_string(&manifest).expect("YAML"),
    )
    .expect("write the manifest");
    let mut topics: Vec<&str> = input
        .iter()
        .chain(&expected)
        .map(|l| l.topic.as_str())
        .collect();
    topics.sort();
    topics.dedup();
    recreate_topics(&topics, 1).await;
    // Line i is stamped 1 ms after line i - 1: a join example's table rows, listed first, are
    // older than its orders, so a task reads them first.
    for (i, l) in input.iter().enumerate() {
        produce(
            &l.topic,
            &[(
                l.key.as_deref().map(str::as_bytes),
                l.value.as_deref().map(str::as_bytes),
            )],
            1_000 + i as i64,
        );
    }
    let bootstrap = freshet_tests::kafka_bootstrap();
    let app_id = unique_name(name);
    let mut engine = EngineProcess::start(
        &manifest_path,
        &[
            "--bootstrap-servers",
            &bootstrap,
            "--application-id",
            &app_id,
        ],
        &[],
    );
    engine.wait_ready(Duration::from_secs(60));
    let mut by_topic: BTreeMap<&str, Vec<&Line>> = BTreeMap::new();
    for l in &expected {
        by_topic.entry(&l.topic).or_default().push(l);
    }
    for (topic, lines) in by_topic {
        let got = consume(
            topic,
            lines.len(),
            Duration::from_secs(60),
            Duration::from_millis(500),
        );
        let got: Vec<(Option<String>, Option<String>)> = got
            .iter()
            .map(|r| {
                (
                    r.key
                        .as_ref()
                        .map(|k| String::from_utf8_lossy(k).into_owned()),
                    r.value
                        .as_ref()
                        .map(|v| String::from_utf8_lossy(v).into_owned()),
                )
            })
            .collect();
        let want: Vec<(Option<String>, Option<String>)> = lines
            .iter()
            .map(|l| (l.key.clone(), l.value.clone()))
            .collect();
        assert_eq!(
            got,
            want,
            "example {name}, topic {topic}; engine log:\n{}",
            engine.log_text()
        );
    }
    let status = engine.terminate(Duration::from_secs(60));
    assert!(
        status.success(),
        "engine exit {status}; log:\n{}",
        engine.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn branch_by_region() {
    run_example("branch-by-region").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn route_by_type() {
    run_example("route-by-type").await;
}

/// A stream-table join after re-keying: an order meets its customer's latest row; orders of an
/// unknown or deleted customer are dropped.
#[tokio::test(flavor = "multi_thread")]
async fn enriched_orders() {
    run_example("enriched-orders").await;
}

/// A stream-globalTable join on a key from the order's value: an order meets its product's
/// latest row; orders of an unknown or deleted product are dropped.
#[tokio::test(flavor = "multi_thread")]
async fn orders_with_product() {
    run_example("orders-with-product").await;
}
