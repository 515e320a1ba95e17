//! Stateful applications against the real broker: the count-of-the-last-10-minutes example,
//! state restored after restarts (from the checkpoint, or from the changelog when the state
//! directory is lost), and late records dropped and counted.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::{Received, base_timestamp, consume, create_topics, produce_each_at};
use freshet_tests::{repo_root, unique_name};

const TEN_MINUTES: i64 = 600_000;

/// `(customer, window start)` → count, the last value per windowed key.
fn final_counts(records: &[Received]) -> BTreeMap<(String, i64), i64> {
    let mut out = BTreeMap::new();
    for r in records {
        let key = r.key.as_deref().expect("windowed key");
        let (customer, start) = key.split_at(key.len() - 8);
        let start = i64::from_be_bytes(start.try_into().expect("8-byte window start"));
        let value = r.value.as_deref().expect("count");
        let count = i64::from_be_bytes(value.try_into().expect("8-byte long"));
        out.insert(
            (
                String::from_utf8(customer.to_vec()).expect("UTF-8 customer"),
                start,
            ),
            count,
        );
    }
    out
}

/// The example's manifest with its topics renamed, so runs never share topics.
fn manifest(dir: &Path, input: &str, output: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_root().join("examples/per-customer-10m/app.yaml"))
        .expect("example manifest");
    let text = text
        .replace("topic: customer-orders", &format!("topic: {input}"))
        .replace("topic: customer-counts", &format!("topic: {output}"));
    let path = dir.join("app.yaml");
    std::fs::write(&path, text).expect("write manifest");
    path
}

fn metric(engine: &EngineProcess, name: &str) -> f64 {
    let (_, body) = engine.get("/metrics").expect("metrics answer");
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits (a minute at most) until the metric `name` reaches `at_least`.
fn wait_for_metric(engine: &EngineProcess, name: &str, at_least: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while metric(engine, name) < at_least {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} stayed below {at_least}; log:\n{}",
            engine.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last value of each key (`None`: deleted).
fn final_values(records: &[Received]) -> BTreeMap<String, Option<String>> {
    records
        .iter()
        .map(|r| {
            (
                r.key_str().to_owned(),
                r.value.as_ref().map(|_| r.value_str().to_owned()),
            )
        })
        .collect()
}

fn order(customer: &str) -> String {
    format!(r#"{{"customer":"{customer}","amount":10}}"#)
}

fn start(manifest: &Path, app: &str, state_dir: &Path) -> EngineProcess {
    let mut engine = EngineProcess::start(
        manifest,
        &[
            "--bootstrap-servers",
            &freshet_tests::kafka_bootstrap(),
            "--application-id",
            app,
            "--state-dir",
            state_dir.to_str().expect("UTF-8 path"),
        ],
        &[],
    );
    engine.wait_ready(Duration::from_secs(60));
    engine
}

#[tokio::test(flavor = "multi_thread")]
async fn count_of_the_last_10_minutes_survives_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let (input, output) = (
        unique_name("customer-orders"),
        unique_name("customer-counts"),
    );
    create_topics(&[(&input, 1), (&output, 1)]).await;
    let manifest = manifest(dir.path(), &input, &output);
    let app = unique_name("per-customer-10m");

    // Offsets from the test's time base that fall on a 10-minute boundary.
    let base = base_timestamp();
    let w0 = (base / TEN_MINUTES + 1) * TEN_MINUTES - base;
    let at = |minutes: f64| w0 + (minutes * 60_000.0) as i64;
    let orders = [
        ("alice", at(1.0)),
        ("bob", at(2.0)),
        ("alice", at(5.0)),
        ("alice", at(10.5)),
        // Out of order but within the minute of grace: counted in the first window.
        ("bob", at(9.0)),
        ("carol", at(25.0)),
        // Stream time is 25 minutes: the first window closed at 11. Dropped and counted.
        ("alice", at(8.0)),
    ];
    let values: Vec<String> = orders.iter().map(|(c, _)| order(c)).collect();
    let records: Vec<_> = values
        .iter()
        .map(|v| (Some(&b"order"[..]), Some(v.as_bytes())))
        .collect();
    let timestamps: Vec<i64> = orders.iter().map(|(_, t)| *t).collect();
    produce_each_at(&input, &records, &timestamps);

    let mut engine = start(&manifest, &app, &state);
    // The record cache forwards each window's latest count per commit: at least one per window.
    let got = consume(&output, 4, Duration::from_secs(60), Duration::from_secs(1));
    let w = |minutes: i64| base + w0 + minutes * 60_000;
    let expected: BTreeMap<(String, i64), i64> = [
        (("alice".to_owned(), w(0)), 2),
        (("bob".to_owned(), w(0)), 2),
        (("alice".to_owned(), w(10)), 1),
        (("carol".to_owned(), w(20)), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(final_counts(&got), expected, "log:\n{}", engine.log_text());
    assert_eq!(
        metric(&engine, "freshet_late_records_dropped_total"),
        1.0,
        "the late order is dropped and counted"
    );
    let status = engine.terminate(Duration::from_secs(60));
    assert!(status.success(), "log:\n{}", engine.log_text());

    // A clean stop leaves a checkpoint: the restart restores nothing.
    let task_dir = state.join(&app).join("1_0");
    let checkpoint = std::fs::read_to_string(task_dir.join(".checkpoint"))
        .unwrap_or_else(|e| panic!("no checkpoint in {}: {e}", task_dir.display()));
    assert!(
        checkpoint.contains(&format!("{app}-orders-per-customer-changelog 0 ")),
        "{checkpoint}"
    );
    let mut engine = start(&manifest, &app, &state);
    let one_more = order("carol");
    produce_each_at(
        &input,
        &[(Some(b"order"), Some(one_more.as_bytes()))],
        &[at(26.0)],
    );
    let got = consume(&output, 5, Duration::from_secs(60), Duration::from_secs(1));
    assert_eq!(
        final_counts(&got).get(&("carol".to_owned(), w(20))),
        Some(&2),
        "the count continues from the restored state; log:\n{}",
        engine.log_text()
    );
    assert_eq!(
        metric(&engine, "freshet_restored_records_total"),
        0.0,
        "a checkpointed store restores nothing; log:\n{}",
        engine.log_text()
    );
    assert!(engine.terminate(Duration::from_secs(60)).success());

    // The state directory is lost: the store is rebuilt from its changelog.
    std::fs::remove_dir_all(&state).expect("remove the state directory");
    let mut engine = start(&manifest, &app, &state);
    assert!(
        metric(&engine, "freshet_restored_records_total") >= 4.0,
        "every windowed count is restored from the changelog; log:\n{}",
        engine.log_text()
    );
    let last = order("carol");
    produce_each_at(
        &input,
        &[(Some(b"order"), Some(last.as_bytes()))],
        &[at(27.0)],
    );
    let got = consume(&output, 6, Duration::from_secs(60), Duration::from_secs(1));
    let counts = final_counts(&got);
    assert_eq!(
        counts.get(&("carol".to_owned(), w(20))),
        Some(&3),
        "the restored count goes on; log:\n{}",
        engine.log_text()
    );
    assert_eq!(counts.get(&("alice".to_owned(), w(10))), Some(&1));
    assert!(engine.terminate(Duration::from_secs(60)).success());
}

/// `cogroup`: deposits and withdrawals of two streams fold into one balance per account.
#[tokio::test(flavor = "multi_thread")]
async fn cogroup_folds_two_streams_into_one_balance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (deposits, withdrawals, balances) = (
        unique_name("deposits"),
        unique_name("withdrawals"),
        unique_name("balances"),
    );
    create_topics(&[(&deposits, 2), (&withdrawals, 2), (&balances, 1)]).await;
    let manifest = dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"
applicationId: balances
bootstrapServers: 127.0.0.1:9092
defaultKeySerde: string
defaultValueSerde: json
config: {{ commit.interval.ms: "100" }}
topology:
  streams:
    - {{ name: deposits, topic: {deposits} }}
    - {{ name: withdrawals, topic: {withdrawals} }}
  pipelines:
    - name: balances
      from: deposits
      steps:
        - groupByKey: {{}}
        - cogroup:
            initializer: "0"
            aggregator: "agg + value.amount"
            with:
              - {{ stream: withdrawals, aggregator: "agg - value.amount" }}
            store: balances
            valueSerde: long
        - toStream: {{}}
        - to: {{ topic: {balances}, valueSerde: long }}
"#
        ),
    )
    .expect("write manifest");
    let amount = |a: i64| format!(r#"{{"amount":{a}}}"#);
    let (d1, d2, w1) = (amount(100), amount(50), amount(30));
    produce_each_at(
        &deposits,
        &[
            (Some(b"acct-1"), Some(d1.as_bytes())),
            (Some(b"acct-2"), Some(d2.as_bytes())),
        ],
        &[0, 1],
    );
    produce_each_at(
        &withdrawals,
        &[(Some(b"acct-1"), Some(w1.as_bytes()))],
        &[2],
    );
    let mut engine = start(
        &manifest,
        &unique_name("balances"),
        &dir.path().join("state"),
    );
    let got = consume(
        &balances,
        3,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let finals: BTreeMap<String, i64> = got
        .iter()
        .map(|r| {
            let v = r.value.as_deref().expect("balance");
            (
                r.key_str().to_owned(),
                i64::from_be_bytes(v.try_into().expect("long")),
            )
        })
        .collect();
    assert_eq!(
        finals,
        [("acct-1".to_owned(), 70), ("acct-2".to_owned(), 50)]
            .into_iter()
            .collect(),
        "log:\n{}",
        engine.log_text()
    );
    assert!(engine.terminate(Duration::from_secs(60)).success());
}

/// RocksDB's own memory (memtables and block cache, from its usage properties) stays inside the
/// configured budget while a count goes through many distinct keys. (`bench/stateful-context.sh`
/// does the same with a million keys.)
#[tokio::test(flavor = "multi_thread")]
async fn rocksdb_memory_stays_inside_its_budget() {
    const KEYS: usize = 150_000;
    const BLOCK_CACHE: f64 = 2.0 * 1048576.0;
    const WRITE_BUFFERS: f64 = 1048576.0;
    let dir = tempfile::tempdir().expect("tempdir");
    let (input, output) = (unique_name("distinct-in"), unique_name("distinct-out"));
    create_topics(&[(&input, 2), (&output, 2)]).await;
    let manifest = dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"
applicationId: distinct
bootstrapServers: 127.0.0.1:9092
defaultKeySerde: string
defaultValueSerde: string
config:
  commit.interval.ms: "100"
  # Every update goes straight to RocksDB: the record cache would hide the memtables' growth.
  statestore.cache.max.bytes: "0"
  freshet.rocksdb.block.cache.bytes: "{BLOCK_CACHE}"
  freshet.rocksdb.write.buffer.bytes: "{WRITE_BUFFERS}"
topology:
  streams:
    - {{ name: input, topic: {input} }}
  pipelines:
    - name: distinct
      from: input
      steps:
        - groupByKey: {{}}
        - count: {{ store: distinct-counts }}
        - toStream: {{}}
        - to: {{ topic: {output}, valueSerde: long }}
"#
        ),
    )
    .expect("write manifest");
    let keys: Vec<String> = (0..KEYS).map(|i| format!("key-{i:08}")).collect();
    let records: Vec<_> = keys
        .iter()
        .map(|k| (Some(k.as_bytes()), Some(&b"x"[..])))
        .collect();
    freshet_tests::kafka::produce(&input, &records, 0);
    let mut engine = start(
        &manifest,
        &unique_name("distinct"),
        &dir.path().join("state"),
    );
    let (mut memtables, mut cache) = (0.0f64, 0.0f64);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while metric(&engine, "freshet_records_processed_total") < KEYS as f64 {
        assert!(
            std::time::Instant::now() < deadline,
            "not all records processed; log:\n{}",
            engine.log_text()
        );
        memtables = memtables.max(metric(&engine, "freshet_rocksdb_memtable_bytes"));
        cache = cache.max(metric(&engine, "freshet_rocksdb_block_cache_bytes"));
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("RocksDB peaks: memtables {memtables} bytes, block cache {cache} bytes");
    assert!(
        memtables > WRITE_BUFFERS / 4.0,
        "the memtable gauge reports RocksDB's usage as it fills"
    );
    // One memtable arena block (1 MiB at most) may be allocated past the budget before the
    // flush that brings it back.
    assert!(
        memtables <= WRITE_BUFFERS + 1048576.0,
        "memtables reached {memtables} bytes, budget {WRITE_BUFFERS}"
    );
    assert!(
        cache <= (BLOCK_CACHE + WRITE_BUFFERS) * 1.1,
        "the block cache reached {cache} bytes, budget {}",
        BLOCK_CACHE + WRITE_BUFFERS
    );
    assert!(engine.terminate(Duration::from_secs(60)).success());
}

/// Windows held by `suppress` when the application stops are emitted after the restart: the
/// suppression buffer is restored from its changelog.
#[tokio::test(flavor = "multi_thread")]
async fn suppressed_windows_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let (input, output) = (unique_name("visits"), unique_name("final-counts"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    let manifest = dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"
applicationId: final-counts
bootstrapServers: 127.0.0.1:9092
defaultKeySerde: string
defaultValueSerde: string
config: {{ commit.interval.ms: "100" }}
topology:
  streams:
    - {{ name: visits, topic: {input} }}
  pipelines:
    - name: final-counts
      from: visits
      steps:
        - groupByKey: {{}}
        - windowedBy: {{ tumbling: 10m, grace: 1m }}
        - count: {{ store: visit-counts }}
        - suppress: {{ untilWindowCloses: true }}
        - toStream: {{}}
        - to: {{ topic: {output}, keySerde: windowed-string, valueSerde: long }}
"#
        ),
    )
    .expect("write manifest");
    let app = unique_name("final-counts");
    let base = base_timestamp();
    let w0 = (base / TEN_MINUTES + 1) * TEN_MINUTES - base;
    let at = |minutes: i64| w0 + minutes * 60_000;
    produce_each_at(
        &input,
        &[
            (Some(b"alice"), Some(b"v")),
            (Some(b"bob"), Some(b"v")),
            (Some(b"alice"), Some(b"v")),
        ],
        &[at(1), at(2), at(3)],
    );
    let mut engine = start(&manifest, &app, &state);
    wait_for_metric(&engine, "freshet_records_processed_total", 3.0);
    assert!(engine.terminate(Duration::from_secs(60)).success());

    // The window closes only now, after the restart: its counts come from the restored buffer.
    let mut engine = start(&manifest, &app, &state);
    produce_each_at(&input, &[(Some(b"carol"), Some(b"v"))], &[at(15)]);
    let got = consume(&output, 2, Duration::from_secs(60), Duration::from_secs(1));
    let start_ms = base + w0;
    let expected: BTreeMap<(String, i64), i64> = [
        (("alice".to_owned(), start_ms), 2),
        (("bob".to_owned(), start_ms), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(final_counts(&got), expected, "log:\n{}", engine.log_text());
    assert_eq!(got.len(), 2, "each window emitted once");
    assert!(engine.terminate(Duration::from_secs(60)).success());
}

fn join_manifest(orders: &str, customers: &str, out: &str, steps: &str) -> String {
    format!(
        r#"
applicationId: enrich
bootstrapServers: 127.0.0.1:9092
defaultKeySerde: string
defaultValueSerde: json
config: {{ commit.interval.ms: "100" }}
topology:
  streams:
    - {{ name: orders, topic: {orders} }}
  tables:
    - {{ name: customers, topic: {customers} }}
  pipelines:
    - name: enriched
      from: orders
      steps:
{steps}
        - to: {{ topic: {out} }}
"#
    )
}

/// design.md's `enriched` pipeline: orders re-keyed by customer join the customers table. The
/// re-keyed side goes through a repartition topic sized like the table's topic (3 partitions,
/// where the orders have 2); a left join keeps orders of unknown customers.
#[tokio::test(flavor = "multi_thread")]
async fn a_rekeyed_stream_joins_a_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (orders, customers, out) = (
        unique_name("orders"),
        unique_name("customers"),
        unique_name("enriched"),
    );
    create_topics(&[(&orders, 3), (&customers, 4), (&out, 1)]).await;
    let manifest = dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        join_manifest(
            &orders,
            &customers,
            &out,
            r#"        - selectKey: "value.customer"
        - leftJoin: { table: customers, value: "{'order': left.id, 'name': right == null ? 'unknown' : right.name}" }"#,
        ),
    )
    .expect("write manifest");
    produce_each_at(
        &customers,
        &[
            (Some(b"c1"), Some(br#"{"name":"Ada"}"#)),
            (Some(b"c2"), Some(br#"{"name":"Bob"}"#)),
        ],
        &[0, 1],
    );
    let app = unique_name("enrich");
    let mut engine = start(&manifest, &app, &dir.path().join("state"));
    // The table is read before later orders (KIP-695: the task waits for both inputs).
    produce_each_at(
        &orders,
        &[
            (Some(b"o1"), Some(br#"{"id":1,"customer":"c1"}"#)),
            (Some(b"o2"), Some(br#"{"id":2,"customer":"c2"}"#)),
            (Some(b"o3"), Some(br#"{"id":3,"customer":"c9"}"#)),
        ],
        &[10, 11, 12],
    );
    let got = consume(&out, 3, Duration::from_secs(60), Duration::from_secs(1));
    let mut joined: Vec<(String, String)> = got
        .iter()
        .map(|r| (r.key_str().to_owned(), r.value_str().to_owned()))
        .collect();
    joined.sort();
    assert_eq!(
        joined,
        vec![
            ("c1".to_owned(), r#"{"name":"Ada","order":1}"#.to_owned()),
            ("c2".to_owned(), r#"{"name":"Bob","order":2}"#.to_owned()),
            (
                "c9".to_owned(),
                r#"{"name":"unknown","order":3}"#.to_owned()
            ),
        ],
        "log:\n{}",
        engine.log_text()
    );
    assert_eq!(
        freshet_tests::kafka::partition_count(&format!("{app}-enriched-2-repartition")),
        4,
        "the re-keyed side takes the table's partition count"
    );
    assert!(engine.terminate(Duration::from_secs(60)).success());
}

/// A join of topics with different partition counts and no re-keying cannot be co-partitioned:
/// the engine refuses to start and names the topics and their counts.
#[tokio::test(flavor = "multi_thread")]
async fn a_join_of_topics_with_different_partition_counts_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (orders, customers, out) = (
        unique_name("orders"),
        unique_name("customers"),
        unique_name("enriched"),
    );
    // 3 and 4 partitions: the same topics that join after selectKey in the test above.
    create_topics(&[(&orders, 3), (&customers, 4), (&out, 1)]).await;
    let manifest = dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        join_manifest(
            &orders,
            &customers,
            &out,
            r#"        - join: { table: customers, value: "left" }"#,
        ),
    )
    .expect("write manifest");
    let mut engine = EngineProcess::start(
        &manifest,
        &[
            "--bootstrap-servers",
            &freshet_tests::kafka_bootstrap(),
            "--application-id",
            &unique_name("enrich"),
            "--state-dir",
            dir.path().join("state").to_str().expect("UTF-8 path"),
        ],
        &[],
    );
    let status = engine.wait(Duration::from_secs(60));
    assert!(!status.success());
    let log = engine.log_text();
    let expected = [
        "equal partition counts".to_owned(),
        format!("{orders} (3)"),
        format!("{customers} (4)"),
    ];
    for e in &expected {
        assert!(log.contains(e.as_str()), "{e:?} missing from:\n{log}");
    }
    // `validate` against the broker says the same before anything runs.
    let validate = std::process::Command::new(freshet_tests::engine::engine_binary())
        .args(["validate", "-f", manifest.to_str().expect("UTF-8 path")])
        .args(["--bootstrap-servers", &freshet_tests::kafka_bootstrap()])
        .output()
        .expect("run validate");
    let stderr = String::from_utf8_lossy(&validate.stderr);
    assert!(!validate.status.success(), "{stderr}");
    for e in &expected {
        assert!(stderr.contains(e.as_str()), "{e:?} missing from:\n{stderr}");
    }
}

/// design.md's `with-product` pipeline: orders join the products global table on a key taken
/// from the order's value, with no co-partitioning (the products topic has one partition, the
/// orders two); the global thread keeps the table current after start.
#[tokio::test(flavor = "multi_thread")]
async fn orders_join_a_global_table_on_a_key_from_their_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (orders, products, out) = (
        unique_name("orders"),
        unique_name("products"),
        unique_name("orders-with-product"),
    );
    create_topics(&[(&orders, 2), (&products, 1), (&out, 1)]).await;
    let manifest = dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"
applicationId: with-product
bootstrapServers: 127.0.0.1:9092
defaultKeySerde: string
defaultValueSerde: json
config: {{ commit.interval.ms: "100" }}
topology:
  streams:
    - {{ name: orders, topic: {orders} }}
  globalTables:
    - {{ name: products, topic: {products} }}
  pipelines:
    - name: with-product
      from: orders
      steps:
        - join: {{ globalTable: products, key: "value.product", value: "{{'order': left.id, 'product': right.name}}" }}
        - to: {{ topic: {out} }}
"#
        ),
    )
    .expect("write manifest");
    produce_each_at(
        &products,
        &[
            (Some(b"p1"), Some(br#"{"name":"pen"}"#)),
            (Some(b"p2"), Some(br#"{"name":"ink"}"#)),
        ],
        &[0, 1],
    );
    let mut engine = start(
        &manifest,
        &unique_name("with-product"),
        &dir.path().join("state"),
    );
    produce_each_at(
        &orders,
        &[
            (Some(b"o1"), Some(br#"{"id":1,"product":"p1"}"#)),
            (Some(b"o2"), Some(br#"{"id":2,"product":"p2"}"#)),
            // No such product: an inner join drops the order.
            (Some(b"o3"), Some(br#"{"id":3,"product":"p9"}"#)),
        ],
        &[10, 11, 12],
    );
    let got = consume(&out, 2, Duration::from_secs(60), Duration::from_secs(1));
    let mut joined: Vec<String> = got.iter().map(|r| r.value_str().to_owned()).collect();
    joined.sort();
    assert_eq!(
        joined,
        vec![
            r#"{"order":1,"product":"pen"}"#.to_owned(),
            r#"{"order":2,"product":"ink"}"#.to_owned()
        ],
        "log:\n{}",
        engine.log_text()
    );
    // A product added after start reaches the table through the global thread.
    produce_each_at(
        &products,
        &[(Some(b"p9"), Some(br#"{"name":"pad"}"#))],
        &[20],
    );
    wait_for_metric(&engine, "freshet_global_records_total", 3.0);
    produce_each_at(
        &orders,
        &[(Some(b"o4"), Some(br#"{"id":4,"product":"p9"}"#))],
        &[21],
    );
    let got = consume(&out, 3, Duration::from_secs(60), Duration::from_secs(1));
    assert!(
        got.iter()
            .any(|r| r.value_str() == r#"{"order":4,"product":"pad"}"#),
        "{got:?}\nlog:\n{}",
        engine.log_text()
    );
    assert!(engine.terminate(Duration::from_secs(60)).success());
}

/// Two tables joined on their key: an outer join keeps rows of either side; an update on either
/// side changes the joined row, and deleting both sides deletes it.
#[tokio::test(flavor = "multi_thread")]
async fn two_tables_outer_joined() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (users, scores, out) = (
        unique_name("users"),
        unique_name("scores"),
        unique_name("user-scores"),
    );
    create_topics(&[(&users, 2), (&scores, 2), (&out, 1)]).await;
    let manifest = dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"
applicationId: user-scores
bootstrapServers: 127.0.0.1:9092
defaultKeySerde: string
defaultValueSerde: json
config: {{ commit.interval.ms: "100", statestore.cache.max.bytes: "0" }}
topology:
  tables:
    - {{ name: users, topic: {users} }}
    - {{ name: scores, topic: {scores} }}
  pipelines:
    - name: user-scores
      from: users
      steps:
        - outerJoin: {{ table: scores, value: "{{'name': left == null ? 'none' : left.name, 'points': right == null ? 0 : right.points}}" }}
        - toStream: {{}}
        - to: {{ topic: {out} }}
"#
        ),
    )
    .expect("write manifest");
    produce_each_at(
        &users,
        &[
            (Some(b"u1"), Some(br#"{"name":"Ada"}"#)),
            (Some(b"u2"), Some(br#"{"name":"Bob"}"#)),
        ],
        &[0, 1],
    );
    produce_each_at(
        &scores,
        &[
            (Some(b"u1"), Some(br#"{"points":5}"#)),
            (Some(b"u3"), Some(br#"{"points":7}"#)),
            (Some(b"u2"), Some(br#"{"points":1}"#)),
        ],
        &[2, 3, 4],
    );
    produce_each_at(&scores, &[(Some(b"u2"), None)], &[5]);
    produce_each_at(
        &users,
        &[(Some(b"u1"), Some(br#"{"name":"Ada L."}"#))],
        &[6],
    );
    let mut engine = start(
        &manifest,
        &unique_name("user-scores"),
        &dir.path().join("state"),
    );
    let got = consume(&out, 3, Duration::from_secs(60), Duration::from_secs(2));
    let finals = final_values(&got);
    let want: BTreeMap<String, Option<String>> = [
        ("u1", r#"{"name":"Ada L.","points":5}"#),
        ("u2", r#"{"name":"Bob","points":0}"#),
        ("u3", r#"{"name":"none","points":7}"#),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Some(v.to_owned())))
    .collect();
    assert_eq!(finals, want, "log:\n{}", engine.log_text());
    assert!(engine.terminate(Duration::from_secs(60)).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn impressions_and_clicks_outer_joined_within_five_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (views, clicks, out) = (
        unique_name("views"),
        unique_name("clicks"),
        unique_name("view-clicks"),
    );
    create_topics(&[(&views, 1), (&clicks, 1), (&out, 1)]).await;
    let manifest = dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"
applicationId: view-clicks
bootstrapServers: 127.0.0.1:9092
defaultKeySerde: string
defaultValueSerde: json
config:
  commit.interval.ms: "100"
  __emit.interval.ms.kstreams.outer.join.spurious.results.fix__: "0"
topology:
  streams:
    - {{ name: views, topic: {views} }}
    - {{ name: clicks, topic: {clicks} }}
  pipelines:
    - name: view-clicks
      from: views
      steps:
        - outerJoin:
            stream: clicks
            window: {{ within: 5s, grace: 0s }}
            value: "{{'view': left == null ? 'none' : left.ad, 'click': right == null ? 'none' : right.ad}}"
        - to: {{ topic: {out} }}
"#
        ),
    )
    .expect("write manifest");
    let at = |s: f64| (s * 1000.0) as i64;
    produce_each_at(
        &views,
        &[
            (Some(b"a"), Some(br#"{"ad":"a"}"#)),
            (Some(b"b"), Some(br#"{"ad":"b"}"#)),
            (Some(b"c"), Some(br#"{"ad":"c"}"#)),
            (Some(b"z"), Some(br#"{"ad":"z"}"#)),
        ],
        &[at(0.0), at(1.0), at(2.0), at(30.0)],
    );
    produce_each_at(
        &clicks,
        &[
            (Some(b"a"), Some(br#"{"ad":"a"}"#)),
            (Some(b"d"), Some(br#"{"ad":"d"}"#)),
            (Some(b"z"), Some(br#"{"ad":"z"}"#)),
        ],
        &[at(3.0), at(4.0), at(31.0)],
    );
    let mut engine = start(
        &manifest,
        &unique_name("view-clicks"),
        &dir.path().join("state"),
    );
    let got = consume(&out, 5, Duration::from_secs(60), Duration::from_secs(3));
    let mut records: Vec<(String, String, i64)> = got
        .iter()
        .map(|r| {
            (
                r.key_str().to_owned(),
                r.value_str().to_owned(),
                r.timestamp - base_timestamp(),
            )
        })
        .collect();
    records.sort();
    // a joins at once (with the later timestamp); b, c and d wait until stream time passes
    // their window's end, then go out alone with their own timestamps; z waits and joins.
    let want: Vec<(String, String, i64)> = [
        ("a", r#"{"click":"a","view":"a"}"#, at(3.0)),
        ("b", r#"{"click":"none","view":"b"}"#, at(1.0)),
        ("c", r#"{"click":"none","view":"c"}"#, at(2.0)),
        ("d", r#"{"click":"d","view":"none"}"#, at(4.0)),
        ("z", r#"{"click":"z","view":"z"}"#, at(31.0)),
    ]
    .into_iter()
    .map(|(k, v, t)| (k.to_owned(), v.to_owned(), t))
    .collect();
    assert_eq!(records, want, "log:\n{}", engine.log_text());
    assert!(engine.terminate(Duration::from_secs(60)).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_join_their_customer_by_a_foreign_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (orders, customers, out) = (
        unique_name("fk-orders"),
        unique_name("fk-customers"),
        unique_name("fk-out"),
    );
    // Not co-partitioned: a foreign-key join does not need it.
    create_topics(&[(&orders, 3), (&customers, 2), (&out, 1)]).await;
    let manifest = dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"
applicationId: fk-orders
bootstrapServers: 127.0.0.1:9092
defaultKeySerde: string
defaultValueSerde: json
config: {{ commit.interval.ms: "100", statestore.cache.max.bytes: "0" }}
topology:
  tables:
    - {{ name: orders, topic: {orders}, store: orders-store }}
    - {{ name: customers, topic: {customers}, store: customers-store }}
  pipelines:
    - name: order-customers
      from: orders
      steps:
        - name: order-customer
          leftJoin: {{ table: customers, foreignKey: "value.customer", value: "{{'order': key, 'name': right == null ? 'none' : right.name}}" }}
        - toStream: {{}}
        - to: {{ topic: {out} }}
"#
        ),
    )
    .expect("write manifest");
    produce_each_at(
        &customers,
        &[
            (Some(b"c1"), Some(br#"{"name":"Ada"}"#)),
            (Some(b"c2"), Some(br#"{"name":"Bob"}"#)),
        ],
        &[0, 1],
    );
    produce_each_at(
        &orders,
        &[
            (Some(b"o1"), Some(br#"{"customer":"c1"}"#)),
            (Some(b"o2"), Some(br#"{"customer":"c2"}"#)),
            (Some(b"o3"), Some(br#"{"customer":"c3"}"#)),
        ],
        &[2, 3, 4],
    );
    let app = unique_name("fk-orders");
    let mut engine = start(&manifest, &app, &dir.path().join("state"));
    let first = consume(&out, 3, Duration::from_secs(60), Duration::from_secs(1));
    // Then: o1 moves to c2, c2 is renamed, o2 is deleted, c3 appears.
    produce_each_at(
        &orders,
        &[
            (Some(b"o1"), Some(br#"{"customer":"c2"}"#)),
            (Some(b"o2"), None),
        ],
        &[5, 6],
    );
    produce_each_at(
        &customers,
        &[
            (Some(b"c2"), Some(br#"{"name":"Bobby"}"#)),
            (Some(b"c3"), Some(br#"{"name":"Cy"}"#)),
        ],
        &[7, 8],
    );
    let got = consume(
        &out,
        first.len() + 4,
        Duration::from_secs(60),
        Duration::from_secs(3),
    );
    let finals = final_values(&got);
    let want: BTreeMap<String, Option<String>> = [
        ("o1", Some(r#"{"name":"Bobby","order":"o1"}"#)),
        ("o2", None),
        ("o3", Some(r#"{"name":"Cy","order":"o3"}"#)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
    .collect();
    assert_eq!(finals, want, "log:\n{}", engine.log_text());
    for suffix in [
        "order-customer-subscription-registration-topic",
        "order-customer-subscription-response-topic",
    ] {
        assert!(
            freshet_tests::kafka::partition_count(&format!("{app}-{suffix}")) > 0,
            "{suffix} was not created"
        );
    }
    assert!(engine.terminate(Duration::from_secs(60)).success());
}
