//! Each DSL operation, run by the engine against the real broker, output checked byte for byte.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use freshet_engine::dsl::{Produced, Repartitioned, StreamsBuilder};
use freshet_engine::serdes::{DefaultSerde, LongSerde, Serde, StringSerde};
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
async fn filter_and_filter_not_keep_the_right_records() {
    let (input, output) = topics("filter", 1).await;
    let rejected = unique_name("filter-rejected");
    create_topics(&[(&rejected, 1)]).await;
    let b = StreamsBuilder::new();
    let s = b.stream::<String, String>(&input);
    s.filter(|_, v| v.starts_with('a')).to(&output);
    s.filter_not(|_, v| v.starts_with('a')).to(&rejected);
    let mut app = start(b.build().unwrap(), test_config("filter", &[]));
    send(&input, &[("1", "apple"), ("2", "banana"), ("3", "avocado")]);
    let kept = consume(&output, 2, WAIT, QUIET);
    let dropped = consume(&rejected, 1, WAIT, QUIET);
    assert!(app.close(Duration::from_secs(30)));
    assert_eq!(
        pairs(&kept),
        [("1".into(), "apple".into()), ("3".into(), "avocado".into())]
    );
    assert_eq!(pairs(&dropped), [("2".into(), "banana".into())]);
}

#[tokio::test(flavor = "multi_thread")]
async fn map_values_writes_the_new_type_with_its_serde() {
    let (input, output) = topics("mapvalues", 1).await;
    let b = StreamsBuilder::new();
    b.stream::<String, String>(&input)
        .map_values(|v| v.len() as i64)
        .to(&output);
    let mut app = start(b.build().unwrap(), test_config("mapvalues", &[]));
    send(&input, &[("a", "xyz"), ("b", "")]);
    let out = consume(&output, 2, WAIT, QUIET);
    app.close(Duration::from_secs(30));
    let mut values: Vec<_> = out
        .iter()
        .map(|r| (r.key_str().to_owned(), r.value.clone().unwrap()))
        .collect();
    values.sort();
    assert_eq!(
        values,
        [
            ("a".to_owned(), 3i64.to_be_bytes().to_vec()),
            ("b".to_owned(), 0i64.to_be_bytes().to_vec())
        ]
    );
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
async fn flat_map_and_flat_map_values_emit_every_element_in_order() {
    let (input, output) = topics("flatmap", 1).await;
    let values_out = unique_name("flatmapvalues-out");
    create_topics(&[(&values_out, 1)]).await;
    let b = StreamsBuilder::new();
    let s = b.stream::<String, String>(&input);
    s.flat_map(|k, v| {
        v.split(' ')
            .map(|w| (format!("{k}:{w}"), w.len() as i64))
            .collect()
    })
    .to(&output);
    s.flat_map_values(|v| v.split(' ').map(str::to_owned).collect::<Vec<String>>())
        .to(&values_out);
    let mut app = start(b.build().unwrap(), test_config("flatmap", &[]));
    send(&input, &[("s1", "the quick fox"), ("s2", "hi")]);
    let flat = consume(&output, 4, WAIT, QUIET);
    let words = consume(&values_out, 4, WAIT, QUIET);
    app.close(Duration::from_secs(30));
    let got: Vec<(String, i64)> = flat
        .iter()
        .map(|r| {
            (
                r.key_str().to_owned(),
                i64::from_be_bytes(r.value.clone().unwrap().try_into().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("s1:the".into(), 3),
            ("s1:quick".into(), 5),
            ("s1:fox".into(), 3),
            ("s2:hi".into(), 2)
        ]
    );
    let got: Vec<(&str, &str)> = words.iter().map(|r| (r.key_str(), r.value_str())).collect();
    assert_eq!(
        got,
        [("s1", "the"), ("s1", "quick"), ("s1", "fox"), ("s2", "hi")]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn peek_sees_every_record_and_passes_it_on() {
    let (input, output) = topics("peek", 1).await;
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let b = StreamsBuilder::new();
    b.stream::<String, String>(&input)
        .peek(move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .to(&output);
    let mut app = start(b.build().unwrap(), test_config("peek", &[]));
    send(&input, &[("a", "1"), ("b", "2"), ("c", "3")]);
    let out = consume(&output, 3, WAIT, QUIET);
    app.close(Duration::from_secs(30));
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert_eq!(
        pairs(&out),
        [
            ("a".into(), "1".into()),
            ("b".into(), "2".into()),
            ("c".into(), "3".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn split_sends_each_record_to_its_first_matching_branch() {
    let (input, small) = topics("split", 1).await;
    let (medium, rest) = (unique_name("split-medium"), unique_name("split-rest"));
    create_topics(&[(&medium, 1), (&rest, 1)]).await;
    let b = StreamsBuilder::new();
    let branches: BTreeMap<_, _> = b
        .stream::<String, i64>(&input)
        .split(Some("size-"))
        .branch("small", |_, v| *v < 10)
        .branch("medium", |_, v| *v < 100)
        .default_branch("rest");
    assert_eq!(
        branches.keys().collect::<Vec<_>>(),
        ["size-medium", "size-rest", "size-small"]
    );
    branches["size-small"].to(&small);
    branches["size-medium"].map_values(|v| v * 2).to(&medium);
    branches["size-rest"].to(&rest);
    let mut app = start(b.build().unwrap(), test_config("split", &[]));
    let values: Vec<(String, Vec<u8>)> = [5i64, 50, 500, 9, 99]
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("r{i}"), v.to_be_bytes().to_vec()))
        .collect();
    let refs: Vec<_> = values
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_slice())))
        .collect();
    produce(&input, &refs, 1_000);
    let long = |r: &Received| i64::from_be_bytes(r.value.clone().unwrap().try_into().unwrap());
    let s: Vec<i64> = consume(&small, 2, WAIT, QUIET).iter().map(long).collect();
    let m: Vec<i64> = consume(&medium, 2, WAIT, QUIET).iter().map(long).collect();
    let r: Vec<i64> = consume(&rest, 1, WAIT, QUIET).iter().map(long).collect();
    app.close(Duration::from_secs(30));
    assert_eq!((s, m, r), (vec![5, 9], vec![100, 198], vec![500]));
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

#[tokio::test(flavor = "multi_thread")]
async fn to_dynamic_chooses_the_topic_per_record() {
    let (input, _) = topics("dyn", 1).await;
    let prefix = unique_name("dyn-route");
    let (a, z) = (format!("{prefix}-a"), format!("{prefix}-z"));
    create_topics(&[(&a, 1), (&z, 1)]).await;
    let b = StreamsBuilder::new();
    let p = prefix.clone();
    b.stream::<String, String>(&input).to_dynamic(
        "first-letter",
        move |_, v, _| Ok(format!("{p}-{}", &v[..1])),
        Produced::with(String::default_serde(), String::default_serde()),
    );
    let mut app = start(b.build().unwrap(), test_config("dyn", &[]));
    send(&input, &[("1", "apple"), ("2", "zebra"), ("3", "avocado")]);
    let to_a = consume(&a, 2, WAIT, QUIET);
    let to_z = consume(&z, 1, WAIT, QUIET);
    app.close(Duration::from_secs(30));
    assert_eq!(
        pairs(&to_a),
        [("1".into(), "apple".into()), ("3".into(), "avocado".into())]
    );
    assert_eq!(pairs(&to_z), [("2".into(), "zebra".into())]);
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
    freshet_engine::runtime::admin::prepare_topics(&b.build().unwrap(), &config).unwrap();
    let mut app = freshet_engine::runtime::KafkaStreams::new(b.build().unwrap(), config, None);
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
    use freshet_engine::dsl::{Grouped, Materialized};
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

#[tokio::test(flavor = "multi_thread")]
async fn a_table_regrouped_and_counted_subtracts_moved_rows() {
    use freshet_engine::dsl::{Consumed, Grouped, Materialized};
    let (input, output) = topics("user-regions", 1).await;
    let builder = StreamsBuilder::new();
    builder
        .table::<String, String>(
            &input,
            Consumed::with(Arc::new(StringSerde), Arc::new(StringSerde)),
            Materialized::default().named("users"),
        )
        .group_by(
            |user, region| (region.clone(), user.clone()),
            Grouped::default(),
        )
        .count(Materialized::default().named("users-per-region"))
        .to_stream()
        .to(&output);
    let app = start(
        builder.build().expect("topology"),
        test_config("typed-table-count", &[]),
    );
    // ann moves from eu to us; bob is deleted.
    send(
        &input,
        &[("ann", "eu"), ("bob", "eu"), ("cat", "us"), ("ann", "us")],
    );
    produce(&input, &[(Some(b"bob"), None)], 2_000);
    let got = consume(&output, 2, WAIT, QUIET);
    drop(app);
    let want: BTreeMap<String, Option<i64>> = [("eu", 0), ("us", 2)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Some(v)))
        .collect();
    assert_eq!(final_longs(&got), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_joins_a_table_in_the_typed_dsl() {
    use freshet_engine::dsl::{Consumed, Materialized};
    let (input, output) = topics("clicks", 1).await;
    let users = unique_name("users");
    create_topics(&[(&users, 1)]).await;
    send(&users, &[("u1", "Ada")]);
    let builder = StreamsBuilder::new();
    let names = builder.table::<String, String>(
        &users,
        Consumed::with(Arc::new(StringSerde), Arc::new(StringSerde)),
        Materialized::default().named("user-names"),
    );
    builder
        .stream::<String, String>(&input)
        .left_join(&names, Arc::new(StringSerde), |page, name| {
            format!("{} saw {page}", name.map_or("someone", String::as_str))
        })
        .expect("the table is materialized")
        .to(&output);
    let app = start(
        builder.build().expect("topology"),
        test_config("typed-join", &[]),
    );
    std::thread::sleep(Duration::from_millis(500));
    send(&input, &[("u1", "home"), ("u2", "docs")]);
    let got = consume(&output, 2, WAIT, QUIET);
    drop(app);
    assert_eq!(
        pairs(&got),
        vec![
            ("u1".to_owned(), "Ada saw home".to_owned()),
            ("u2".to_owned(), "someone saw docs".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_streams_join_within_a_window_in_the_typed_dsl() {
    use freshet_engine::dsl::{JoinKind, JoinWindows, StreamJoined};
    let (views, output) = topics("views", 1).await;
    let clicks = unique_name("clicks");
    create_topics(&[(&clicks, 1)]).await;
    let builder = StreamsBuilder::new();
    let string = || Arc::new(StringSerde);
    builder
        .stream::<String, String>(&views)
        .join_windowed(
            &builder.stream::<String, String>(&clicks),
            JoinKind::Inner,
            JoinWindows::of_time_difference_and_grace(Duration::from_secs(5), Duration::ZERO),
            StreamJoined::with(string(), string(), string()),
            |view, click| format!("{}+{}", view.expect("inner"), click.expect("inner")),
        )
        .to(&output);
    // Views at 1 s and 20 s, clicks at 3 s and 40 s (from the test's base time): only the
    // first pair lies within 5 s.
    produce(&views, &[(Some(b"u1"), Some(b"home"))], 1_000);
    produce(&views, &[(Some(b"u1"), Some(b"docs"))], 20_000);
    produce(&clicks, &[(Some(b"u1"), Some(b"buy"))], 3_000);
    produce(&clicks, &[(Some(b"u1"), Some(b"late"))], 40_000);
    let app = start(
        builder.build().expect("topology"),
        test_config("typed-stream-join", &[]),
    );
    let got = consume(&output, 1, WAIT, Duration::from_secs(2));
    drop(app);
    assert_eq!(pairs(&got), vec![("u1".to_owned(), "home+buy".to_owned())]);
}
