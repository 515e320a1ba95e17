//! Declarative apps (StreamsApp manifests) run by the `TopologyTestDriver`, without a broker:
//! the examples with their input and expected output, windowed counts, suppression and joins.
//! This is how a user tests a YAML app in CI (see docs/testing.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use freshet_spec::{Defaults, compile, parse_manifest, resolve_config};
use freshet_streams::TopologyTestDriver;
use freshet_streams::processor::Headers;

fn repo_root() -> PathBuf {
    // The directory cargo runs the test in, not the one it was compiled in: a build reused from
    // another checkout (CI shares the target cache) bakes that checkout's path into env!().
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .parent()
    .expect("the crate is in the workspace")
    .to_owned()
}

/// A driver running the manifest `text`, with its own configuration.
fn driver_for(text: &str) -> TopologyTestDriver {
    let spec = parse_manifest(text).expect("manifest parses");
    let config = resolve_config(
        &spec,
        Vec::new(),
        Vec::new(),
        &freshet_spec::secrets::Placeholders,
    )
    .expect("config resolves");
    let defaults = Defaults::from_config(&config);
    let topology = compile(&spec.topology, defaults).expect("topology compiles");
    TopologyTestDriver::with_resolved_config(topology, config, 0)
}

/// A record as compared: key and value as text.
type KeyValue = (Option<String>, Option<String>);

/// One line of an example's `input.jsonl` or `expected.jsonl`: a JSON value is written as its
/// compact text, a string as it is.
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
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display()));
            let text = |f: &str| match &v[f] {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
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

fn run_example(name: &str) {
    let dir = repo_root().join("examples").join(name);
    let manifest = std::fs::read_to_string(dir.join("app.yaml")).expect("example manifest");
    let mut driver = driver_for(&manifest);
    for (i, l) in read_lines(&dir.join("input.jsonl")).into_iter().enumerate() {
        driver
            .pipe_raw(
                &l.topic,
                l.key.map(String::into_bytes),
                l.value.map(String::into_bytes),
                1_000 + i as i64,
                Headers::default(),
            )
            .unwrap_or_else(|e| panic!("example {name}: {e}"));
    }
    let mut want: BTreeMap<String, Vec<KeyValue>> = BTreeMap::new();
    for l in read_lines(&dir.join("expected.jsonl")) {
        want.entry(l.topic).or_default().push((l.key, l.value));
    }
    for (topic, want) in want {
        let text = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
        let got: Vec<_> = driver
            .read_raw(&topic)
            .into_iter()
            .map(|r| (text(r.key), text(r.value)))
            .collect();
        assert_eq!(got, want, "example {name}, topic {topic}");
    }
}

#[test]
fn branch_by_region() {
    run_example("branch-by-region");
}

#[test]
fn route_by_type() {
    run_example("route-by-type");
}

#[test]
fn enriched_orders() {
    run_example("enriched-orders");
}

#[test]
fn orders_with_product() {
    run_example("orders-with-product");
}

const TEN_MINUTES: i64 = 600_000;

/// `(key, window start)` → value, from windowed-string keys and long values.
fn windowed_longs(
    records: Vec<freshet_streams::test_driver::OutputRecord>,
) -> Vec<((String, i64), i64)> {
    records
        .into_iter()
        .map(|r| {
            let key = r.key.expect("windowed key");
            let (inner, start) = key.split_at(key.len() - 8);
            let start = i64::from_be_bytes(start.try_into().expect("8-byte window start"));
            let value = r.value.expect("count");
            let count = i64::from_be_bytes(value.as_slice().try_into().expect("8-byte long"));
            (
                (String::from_utf8(inner.to_vec()).expect("UTF-8"), start),
                count,
            )
        })
        .collect()
}

#[test]
fn count_of_the_last_10_minutes_per_customer() {
    let manifest = std::fs::read_to_string(repo_root().join("examples/per-customer-10m/app.yaml"))
        .expect("example manifest");
    let mut driver = driver_for(&manifest);
    let order = |driver: &mut TopologyTestDriver, customer: &str, at: i64| {
        let value = format!(r#"{{"customer":"{customer}"}}"#);
        driver
            .pipe_raw(
                "customer-orders",
                Some(b"o".to_vec()),
                Some(value.into_bytes()),
                at,
                Headers::default(),
            )
            .unwrap();
    };
    order(&mut driver, "ann", 60_000);
    order(&mut driver, "bob", 120_000);
    order(&mut driver, "ann", 180_000);
    order(&mut driver, "ann", TEN_MINUTES + 1_000); // the next window
    order(&mut driver, "ann", TEN_MINUTES + 90_000); // stream time past the first window's grace
    order(&mut driver, "bob", 300_000); // late: its window closed a minute after it ended
    assert_eq!(
        windowed_longs(driver.read_raw("customer-counts")),
        [
            (("ann".to_owned(), 0), 1),
            (("bob".to_owned(), 0), 1),
            (("ann".to_owned(), 0), 2),
            (("ann".to_owned(), TEN_MINUTES), 1),
            (("ann".to_owned(), TEN_MINUTES), 2),
        ]
    );
    assert!(
        !driver
            .store_entries("orders-per-customer")
            .unwrap()
            .is_empty(),
        "the counts are in the store"
    );
}

#[test]
fn suppressed_windows_emit_once_when_they_close() {
    let mut driver = driver_for(
        r#"
applicationId: final-counts
bootstrapServers: unused:9092
defaultKeySerde: string
defaultValueSerde: string
topology:
  streams:
    - { name: visits, topic: visits }
  pipelines:
    - name: final-counts
      from: visits
      steps:
        - groupByKey: {}
        - windowedBy: { tumbling: 10m, grace: 1m }
        - count: { store: visit-counts }
        - suppress: { untilWindowCloses: true }
        - toStream: {}
        - to: { topic: final-counts, keySerde: windowed-string, valueSerde: long }
"#,
    );
    let visit = |driver: &mut TopologyTestDriver, who: &str, at: i64| {
        driver
            .pipe_raw(
                "visits",
                Some(who.as_bytes().to_vec()),
                Some(b"v".to_vec()),
                at,
                Headers::default(),
            )
            .unwrap();
    };
    visit(&mut driver, "alice", 60_000);
    visit(&mut driver, "bob", 120_000);
    visit(&mut driver, "alice", 180_000);
    assert!(
        driver.read_raw("final-counts").is_empty(),
        "the window is open"
    );
    visit(&mut driver, "carol", TEN_MINUTES + 30_000);
    assert!(
        driver.read_raw("final-counts").is_empty(),
        "still in its grace"
    );
    visit(&mut driver, "carol", TEN_MINUTES + 60_000);
    assert_eq!(
        windowed_longs(driver.read_raw("final-counts")),
        [(("alice".to_owned(), 0), 2), (("bob".to_owned(), 0), 1)]
    );
}

/// Records earlier than the time difference share the window `[0, time difference]` and get
/// right windows as later records come, as Kafka Streams' `processEarly` makes them (no window
/// starts before 0); a record after the time difference slides as usual. The expected records
/// are what Kafka Streams 4.4's own `TopologyTestDriver` emits for the same topology and input
/// (sliding count, 5 s, cache off).
#[test]
fn sliding_windows_of_early_records_start_at_zero() {
    let mut driver = driver_for(
        r#"
applicationId: sliding-early
bootstrapServers: unused:9092
defaultKeySerde: string
defaultValueSerde: string
config:
  statestore.cache.max.bytes: "0"
topology:
  streams:
    - { name: clicks, topic: clicks }
  pipelines:
    - name: recent
      from: clicks
      steps:
        - groupByKey: {}
        - windowedBy: { sliding: 5s, grace: 1d }
        - count: { store: recent-clicks }
        - toStream: {}
        - to: { topic: recent-counts, keySerde: windowed-string, valueSerde: long }
"#,
    );
    let click = |driver: &mut TopologyTestDriver, who: &str, at: i64| {
        driver
            .pipe_raw(
                "clicks",
                Some(who.as_bytes().to_vec()),
                Some(b"c".to_vec()),
                at,
                Headers::default(),
            )
            .unwrap();
    };
    let window = |who: &str, start: i64, count: i64| ((who.to_owned(), start), count);
    click(&mut driver, "a", 1_000);
    click(&mut driver, "a", 4_000);
    click(&mut driver, "a", 7_000);
    assert_eq!(
        windowed_longs(driver.read_raw("recent-counts")),
        [
            window("a", 0, 1),
            // 1000's right window, now holding 4000; the shared window holds both.
            window("a", 1_001, 1),
            window("a", 0, 2),
            // 7000 is not early: 4000's right window, then 7000's left window [2000, 7000].
            window("a", 4_001, 1),
            window("a", 2_000, 2),
        ]
    );
    // Out of order: the later early record first. The earlier one's right window holds the
    // later one.
    click(&mut driver, "b", 4_000);
    click(&mut driver, "b", 1_000);
    assert_eq!(
        windowed_longs(driver.read_raw("recent-counts")),
        [window("b", 0, 1), window("b", 1_001, 1), window("b", 0, 2)]
    );
}

#[test]
fn a_rekeyed_stream_joins_a_table() {
    let mut driver = driver_for(
        r#"
applicationId: rekeyed-join
bootstrapServers: unused:9092
defaultKeySerde: string
defaultValueSerde: json
topology:
  streams:
    - { name: orders, topic: orders }
  tables:
    - { name: customers, topic: customers }
  pipelines:
    - name: enrich
      from: orders
      steps:
        - selectKey: "value.customer"
        - leftJoin: { table: customers, value: "{'order': left.id, 'name': right == null ? 'unknown' : right.name}" }
        - to: { topic: enriched }
"#,
    );
    let pipe = |driver: &mut TopologyTestDriver, topic: &str, key: &str, value: &str| {
        driver
            .pipe_raw(
                topic,
                Some(key.as_bytes().to_vec()),
                Some(value.as_bytes().to_vec()),
                1_000,
                Headers::default(),
            )
            .unwrap();
    };
    pipe(&mut driver, "customers", "c1", r#"{"name":"Ada"}"#);
    pipe(&mut driver, "orders", "o1", r#"{"id":1,"customer":"c1"}"#);
    pipe(&mut driver, "orders", "o2", r#"{"id":2,"customer":"c9"}"#);
    let got: Vec<(String, String)> = driver
        .read_raw("enriched")
        .into_iter()
        .map(|r| {
            (
                String::from_utf8(r.key.unwrap()).unwrap(),
                String::from_utf8(r.value.unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("c1".to_owned(), r#"{"name":"Ada","order":1}"#.to_owned()),
            (
                "c9".to_owned(),
                r#"{"name":"unknown","order":2}"#.to_owned()
            )
        ]
    );
}
