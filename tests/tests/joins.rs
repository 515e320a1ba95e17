//! Joins against the real broker: a re-keyed stream joins a table, topics of different
//! partition counts are refused, a global table joins on a key from the value, tables outer
//! joined, windowed stream-stream outer joins, and foreign-key joins.
use std::collections::BTreeMap;
use std::time::Duration;

use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::{base_timestamp, consume, create_topics, last_values, produce_each_at};
use freshet_tests::unique_name;

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
    let mut engine = EngineProcess::start_ready(&manifest, &app, &dir.path().join("state"));
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
    let mut engine = EngineProcess::start_ready(
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
    engine.wait_for_metric("freshet_global_records_total", 3.0);
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
    let mut engine = EngineProcess::start_ready(
        &manifest,
        &unique_name("user-scores"),
        &dir.path().join("state"),
    );
    let got = consume(&out, 3, Duration::from_secs(60), Duration::from_secs(2));
    let finals = last_values(&got);
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
    let mut engine = EngineProcess::start_ready(
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
    let mut engine = EngineProcess::start_ready(&manifest, &app, &dir.path().join("state"));
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
    let finals = last_values(&got);
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
