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

fn order(customer: &str) -> String {
    format!(r#"{{"customer":"{customer}","amount":10}}"#)
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

    let mut engine = EngineProcess::start_ready(&manifest, &app, &state);
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
        engine.metric("freshet_late_records_dropped_total"),
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
    let mut engine = EngineProcess::start_ready(&manifest, &app, &state);
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
        engine.metric("freshet_restored_records_total"),
        0.0,
        "a checkpointed store restores nothing; log:\n{}",
        engine.log_text()
    );
    assert!(engine.terminate(Duration::from_secs(60)).success());

    // The state directory is lost: the store is rebuilt from its changelog.
    std::fs::remove_dir_all(&state).expect("remove the state directory");
    let mut engine = EngineProcess::start_ready(&manifest, &app, &state);
    assert!(
        engine.metric("freshet_restored_records_total") >= 4.0,
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
    let mut engine = EngineProcess::start_ready(
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
    let mut engine = EngineProcess::start_ready(
        &manifest,
        &unique_name("distinct"),
        &dir.path().join("state"),
    );
    let (mut memtables, mut cache) = (0.0f64, 0.0f64);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while engine.metric("freshet_records_processed_total") < KEYS as f64 {
        assert!(
            std::time::Instant::now() < deadline,
            "not all records processed; log:\n{}",
            engine.log_text()
        );
        memtables = memtables.max(engine.metric("freshet_rocksdb_memtable_bytes"));
        cache = cache.max(engine.metric("freshet_rocksdb_block_cache_bytes"));
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
    let mut engine = EngineProcess::start_ready(&manifest, &app, &state);
    engine.wait_for_metric("freshet_records_processed_total", 3.0);
    assert!(engine.terminate(Duration::from_secs(60)).success());

    // The window closes only now, after the restart: its counts come from the restored buffer.
    let mut engine = EngineProcess::start_ready(&manifest, &app, &state);
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
