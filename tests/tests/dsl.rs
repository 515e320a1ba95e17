//! DSL operations against the real broker, where the broker matters: partitioning as Java does
//! it, repartition topics' partition counts, fetch order across partitions (KIP-695), the state
//! listener. Each operation's results are tested in-process by the TopologyTestDriver
//! (`streams/tests/driver_dsl.rs`).
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use freshet_streams::dsl::{Repartitioned, StreamsBuilder};
use freshet_streams::serdes::{LongSerde, Serde, StringSerde};
use freshet_tests::kafka::{Received, consume, create_topics, produce, start, test_config};
use freshet_tests::unique_name;

const WAIT: Duration = Duration::from_secs(60);
const QUIET: Duration = Duration::from_millis(500);

fn kv(k: &str, v: &str) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    (Some(k.as_bytes().to_vec()), Some(v.as_bytes().to_vec()))
}

fn send(topic: &str, records: &[(&str, &str)]) {
    let owned: Vec<_> = records.iter().map(|(k, v)| kv(k, v)).collect();
    let refs: Vec<_> = owned
        .iter()
        .map(|(k, v)| (k.as_deref(), v.as_deref()))
        .collect();
    produce(topic, &refs, 1_000);
}

fn pairs(records: &[Received]) -> Vec<(String, String)> {
    let mut out: Vec<_> = records
        .iter()
        .map(|r| (r.key_str().to_owned(), r.value_str().to_owned()))
        .collect();
    out.sort();
    out
}

async fn topics(prefix: &str, partitions: i32) -> (String, String) {
    let (input, output) = (
        unique_name(&format!("{prefix}-in")),
        unique_name(&format!("{prefix}-out")),
    );
    create_topics(&[(&input, partitions), (&output, partitions)]).await;
    (input, output)
}

/// Kafka's `Utils.murmur2` and `toPositive(hash) % partitions`: where Java puts a keyed record.
fn java_partition(key: &[u8], partitions: i32) -> i32 {
    let (m, r) = (0x5bd1e995u32, 24);
    let mut h = 0x9747b28cu32 ^ key.len() as u32;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(m);
        k ^= k >> r;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m) ^ k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(m);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(m);
    h ^= h >> 15;
    ((h & 0x7fff_ffff) % partitions as u32) as i32
}

#[tokio::test(flavor = "multi_thread")]
async fn map_and_select_key_repartition_by_the_new_key_as_java_would() {
    let (input, output) = topics("map", 1).await;
    let keyed = unique_name("selectkey-out");
    create_topics(&[(&keyed, 6)]).await;
    let recreated = unique_name("map6-out");
    create_topics(&[(&recreated, 6)]).await;
    let b = StreamsBuilder::new();
    let s = b.stream::<String, String>(&input);
    s.map(|k, v| (v.clone(), k.clone())).to(&output);
    s.select_key(|_, v| format!("user-{v}")).to(&keyed);
    s.map(|k, v| (format!("{v}{k}"), v.clone())).to(&recreated);
    let mut app = start(b.build().unwrap(), test_config("map", &[]));
    let records: Vec<(String, String)> = (0..40)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let refs: Vec<(&str, &str)> = records
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    send(&input, &refs);
    let swapped = consume(&output, 40, WAIT, QUIET);
    let selected = consume(&keyed, 40, WAIT, QUIET);
    consume(&recreated, 40, WAIT, QUIET);
    app.close(Duration::from_secs(30));
    assert!(
        swapped
            .iter()
            .all(|r| r.key_str() == format!("v{}", &r.value_str()[1..]))
    );
    for r in &selected {
        assert_eq!(r.key_str(), format!("user-v{}", &r.value_str()[1..]));
        assert_eq!(
            r.partition,
            java_partition(r.key.as_deref().unwrap(), 6),
            "key {} not where Java puts it",
            r.key_str()
        );
    }
    let used: std::collections::BTreeSet<i32> = selected.iter().map(|r| r.partition).collect();
    assert!(
        used.len() > 3,
        "40 keys over 6 partitions used only {used:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_interleaves_two_topics_in_timestamp_order() {
    let (left, output) = topics("merge", 1).await;
    let right = unique_name("merge-right");
    create_topics(&[(&right, 1)]).await;
    let b = StreamsBuilder::new();
    b.stream::<String, String>(&left)
        .merge(&b.stream::<String, String>(&right))
        .to(&output);
    // Both inputs are written before the app starts, so it sees both partitions' data and must
    // interleave by timestamp (left has even timestamps, right odd).
    let l: Vec<_> = (0..5)
        .map(|i| kv(&format!("l{i}"), &format!("{}", 2 * i)))
        .collect();
    let r: Vec<_> = (0..5)
        .map(|i| kv(&format!("r{i}"), &format!("{}", 2 * i + 1)))
        .collect();
    let lr: Vec<_> = l
        .iter()
        .map(|(k, v)| (k.as_deref(), v.as_deref()))
        .collect();
    let rr: Vec<_> = r
        .iter()
        .map(|(k, v)| (k.as_deref(), v.as_deref()))
        .collect();
    freshet_tests::kafka::produce_each_at(&left, &lr, &[1000, 1002, 1004, 1006, 1008]);
    freshet_tests::kafka::produce_each_at(&right, &rr, &[1001, 1003, 1005, 1007, 1009]);
    let mut app = start(b.build().unwrap(), test_config("merge", &[]));
    let out = consume(&output, 10, WAIT, QUIET);
    app.close(Duration::from_secs(30));
    let order: Vec<&str> = out.iter().map(|r| r.value_str()).collect();
    assert_eq!(order, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn repartition_creates_the_named_topic_and_moves_records_through_it() {
    let (input, output) = topics("repart", 2).await;
    let b = StreamsBuilder::new();
    b.stream::<String, String>(&input)
        .select_key(|_, v| v.clone())
        .repartition(
            Repartitioned::default()
                .named("by-value")
                .with_partitions(3),
        )
        .to(&output);
    let config = test_config("repart", &[]);
    let internal = format!("{}-by-value-repartition", config.application_id);
    let mut app = start(b.build().unwrap(), config);
    send(&input, &[("1", "x"), ("2", "y"), ("3", "x")]);
    let out = consume(&output, 3, WAIT, QUIET);
    let through = consume(&internal, 3, WAIT, QUIET);
    app.close(Duration::from_secs(30));
    assert_eq!(
        pairs(&out),
        [
            ("x".into(), "x".into()),
            ("x".into(), "x".into()),
            ("y".into(), "y".into())
        ]
    );
    let counts = freshet_tests::kafka::partition_count(&internal);
    assert_eq!(counts, 3);
    for r in &through {
        assert_eq!(r.partition, java_partition(r.key.as_deref().unwrap(), 3));
    }
}

#[test]
fn serdes_used_by_the_dsl_are_kafkas() {
    assert_eq!(
        LongSerde.serialize(&7).unwrap().unwrap(),
        7i64.to_be_bytes()
    );
    assert_eq!(StringSerde.deserialize(Some(b"x")).unwrap(), "x");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_state_listener_sees_the_lifecycle() {
    let (input, output) = topics("states", 1).await;
    let b = StreamsBuilder::new();
    b.stream::<String, String>(&input).to(&output);
    let config = test_config("states", &[]);
    freshet_streams::runtime::admin::prepare_topics(&b.build().unwrap(), &config).unwrap();
    let mut app = freshet_streams::runtime::KafkaStreams::new(b.build().unwrap(), config, None);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    app.set_state_listener(move |new, old| log.lock().unwrap().push((old.name(), new.name())));
    app.start();
    send(&input, &[("a", "1")]);
    consume(&output, 1, WAIT, QUIET);
    assert!(app.close(Duration::from_secs(30)));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.first(), Some(&("CREATED", "REBALANCING")));
    assert!(seen.contains(&("REBALANCING", "RUNNING")), "{seen:?}");
    assert_eq!(
        &seen[seen.len() - 2..],
        [
            ("RUNNING", "PENDING_SHUTDOWN"),
            ("PENDING_SHUTDOWN", "NOT_RUNNING")
        ],
        "{seen:?}"
    );
}

/// The last value per key, as longs (a deletion is `None`).
fn final_longs(records: &[Received]) -> BTreeMap<String, Option<i64>> {
    records
        .iter()
        .map(|r| {
            let v = r
                .value
                .as_deref()
                .map(|b| i64::from_be_bytes(b.try_into().expect("8-byte long")));
            (r.key_str().to_owned(), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn group_by_and_count_in_the_typed_dsl() {
    use freshet_streams::dsl::{Grouped, Materialized};
    let (input, output) = topics("words", 2).await;
    send(
        &input,
        &[
            ("1", "apple"),
            ("2", "pear"),
            ("3", "apple"),
            ("4", "fig"),
            ("5", "apple"),
        ],
    );
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(&input)
        .group_by(|_, word| word.clone(), Grouped::default().named("by-word"))
        .count(Materialized::default().named("word-counts"))
        .to_stream()
        .to(&output);
    let config = test_config("typed-count", &[]);
    let app_id = config.application_id.clone();
    let app = start(builder.build().expect("topology"), config);
    // The record cache forwards each key's latest count per commit: at least one per word.
    let got = consume(&output, 3, WAIT, QUIET);
    drop(app);
    let want: BTreeMap<String, Option<i64>> = [("apple", 3), ("fig", 1), ("pear", 1)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Some(v)))
        .collect();
    assert_eq!(final_longs(&got), want);
    assert_eq!(
        freshet_tests::kafka::partition_count(&format!("{app_id}-by-word-repartition")),
        2,
        "the repartition topic takes the input's partition count"
    );
}
