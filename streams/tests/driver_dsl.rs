//! The DSL's operations run in-process by the `TopologyTestDriver`: stateless steps,
//! aggregations, windows, suppression and joins, output checked record by record. What needs a
//! broker (partitioning as Java does it, rebalances, restore, exactly-once) is tested in
//! `tests/tests/` against a real one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use freshet_streams::TopologyTestDriver;
use freshet_streams::dsl::{
    Consumed, Grouped, JoinKind, JoinWindows, Materialized, Produced, Repartitioned, StreamJoined,
    StreamsBuilder,
};
use freshet_streams::processor::{
    ProcessError, Processor, ProcessorContext, PunctuationId, PunctuationType, Record,
};
use freshet_streams::serdes::{DefaultSerde, LongSerde, StringSerde};
use freshet_streams::test_driver::{TestInputTopic, TestOutputTopic};

type Strings = TestInputTopic<String, String>;

fn strings_in(topic: &str) -> Strings {
    TestInputTopic::new(topic)
}

fn strings_out(topic: &str) -> TestOutputTopic<String, String> {
    TestOutputTopic::new(topic)
}

fn longs_out(topic: &str) -> TestOutputTopic<String, i64> {
    TestOutputTopic::new(topic)
}

fn pipe_all(driver: &mut TopologyTestDriver, input: &Strings, records: &[(&str, &str)]) {
    for (i, (k, v)) in records.iter().enumerate() {
        driver
            .pipe(input, (*k).to_owned(), (*v).to_owned(), 1_000 + i as i64)
            .expect("processed");
    }
}

fn pairs<V: Clone>(
    driver: &mut TopologyTestDriver,
    out: &TestOutputTopic<String, V>,
) -> Vec<(String, V)> {
    driver.read_key_values(out).expect("readable output")
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn filter_and_filter_not_keep_the_right_records() {
    let b = StreamsBuilder::new();
    let s = b.stream::<String, String>("in");
    s.filter(|_, v| v.starts_with('a')).to("kept");
    s.filter_not(|_, v| v.starts_with('a')).to("rejected");
    let mut driver = TopologyTestDriver::new(b.build().unwrap());
    pipe_all(
        &mut driver,
        &strings_in("in"),
        &[("1", "apple"), ("2", "banana"), ("3", "avocado")],
    );
    assert_eq!(
        pairs(&mut driver, &strings_out("kept")),
        owned(&[("1", "apple"), ("3", "avocado")])
    );
    assert_eq!(
        pairs(&mut driver, &strings_out("rejected")),
        owned(&[("2", "banana")])
    );
}

#[test]
fn map_values_writes_the_new_type_with_its_serde() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .map_values(|v| v.len() as i64)
        .to("out");
    let mut driver = TopologyTestDriver::new(b.build().unwrap());
    pipe_all(&mut driver, &strings_in("in"), &[("a", "xyz"), ("b", "")]);
    let raw: Vec<_> = driver
        .read_raw("out")
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(
        raw,
        [3i64.to_be_bytes().to_vec(), 0i64.to_be_bytes().to_vec()]
    );
}

#[test]
fn flat_map_and_flat_map_values_emit_every_element_in_order() {
    let b = StreamsBuilder::new();
    let s = b.stream::<String, String>("in");
    s.flat_map(|k, v| {
        v.split(' ')
            .map(|w| (format!("{k}:{w}"), w.len() as i64))
            .collect()
    })
    .to("flat");
    s.flat_map_values(|v| v.split(' ').map(str::to_owned).collect::<Vec<String>>())
        .to("words");
    let mut driver = TopologyTestDriver::new(b.build().unwrap());
    pipe_all(
        &mut driver,
        &strings_in("in"),
        &[("s1", "the quick fox"), ("s2", "hi")],
    );
    assert_eq!(
        pairs(&mut driver, &longs_out("flat")),
        [
            ("s1:the".to_owned(), 3),
            ("s1:quick".to_owned(), 5),
            ("s1:fox".to_owned(), 3),
            ("s2:hi".to_owned(), 2)
        ]
    );
    assert_eq!(
        pairs(&mut driver, &strings_out("words")),
        owned(&[("s1", "the"), ("s1", "quick"), ("s1", "fox"), ("s2", "hi")])
    );
}

#[test]
fn peek_sees_every_record_and_passes_it_on() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .peek(move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .to("out");
    let mut driver = TopologyTestDriver::new(b.build().unwrap());
    pipe_all(
        &mut driver,
        &strings_in("in"),
        &[("a", "1"), ("b", "2"), ("c", "3")],
    );
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert_eq!(
        pairs(&mut driver, &strings_out("out")),
        owned(&[("a", "1"), ("b", "2"), ("c", "3")])
    );
}

#[test]
fn split_sends_each_record_to_its_first_matching_branch() {
    let b = StreamsBuilder::new();
    let branches: BTreeMap<_, _> = b
        .stream::<String, i64>("in")
        .split(Some("size-"))
        .branch("small", |_, v| *v < 10)
        .branch("medium", |_, v| *v < 100)
        .default_branch("rest");
    assert_eq!(
        branches.keys().collect::<Vec<_>>(),
        ["size-medium", "size-rest", "size-small"]
    );
    branches["size-small"].to("small");
    branches["size-medium"].map_values(|v| v * 2).to("medium");
    branches["size-rest"].to("rest");
    let mut driver = TopologyTestDriver::new(b.build().unwrap());
    let input = TestInputTopic::<String, i64>::new("in");
    for (i, v) in [5i64, 50, 500, 9, 99].into_iter().enumerate() {
        driver.pipe(&input, format!("r{i}"), v, 1_000).unwrap();
    }
    let values = |driver: &mut TopologyTestDriver, topic: &str| -> Vec<i64> {
        pairs(driver, &longs_out(topic))
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    };
    assert_eq!(values(&mut driver, "small"), [5, 9]);
    assert_eq!(values(&mut driver, "medium"), [100, 198]);
    assert_eq!(values(&mut driver, "rest"), [500]);
}

#[test]
fn merge_passes_both_inputs_on() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("left")
        .merge(&b.stream::<String, String>("right"))
        .to("out");
    let mut driver = TopologyTestDriver::new(b.build().unwrap());
    let (left, right) = (strings_in("left"), strings_in("right"));
    for i in 0..3 {
        driver
            .pipe(&left, format!("l{i}"), format!("{}", 2 * i), 1_000 + 2 * i)
            .unwrap();
        driver
            .pipe(
                &right,
                format!("r{i}"),
                format!("{}", 2 * i + 1),
                1_001 + 2 * i,
            )
            .unwrap();
    }
    let order: Vec<String> = pairs(&mut driver, &strings_out("out"))
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(order, ["0", "1", "2", "3", "4", "5"]);
}

#[test]
fn repartition_moves_records_through_the_named_internal_topic() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .select_key(|_, v| v.clone())
        .repartition(
            Repartitioned::default()
                .named("by-value")
                .with_partitions(3),
        )
        .to("out");
    let mut driver = TopologyTestDriver::new(b.build().unwrap());
    pipe_all(
        &mut driver,
        &strings_in("in"),
        &[("1", "x"), ("2", "y"), ("3", "x")],
    );
    assert_eq!(
        pairs(&mut driver, &strings_out("out")),
        owned(&[("x", "x"), ("y", "y"), ("x", "x")])
    );
    let internal = format!(
        "{}-by-value-repartition",
        freshet_streams::test_driver::DEFAULT_APPLICATION_ID
    );
    assert_eq!(
        driver.read_raw(&internal).len(),
        3,
        "went through {internal}"
    );
}

#[test]
fn to_dynamic_chooses_the_topic_per_record() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").to_dynamic(
        "first-letter",
        move |_, v, _| Ok(format!("route-{}", &v[..1])),
        Produced::with(String::default_serde(), String::default_serde()),
    );
    let mut driver = TopologyTestDriver::new(b.build().unwrap());
    pipe_all(
        &mut driver,
        &strings_in("in"),
        &[("1", "apple"), ("2", "zebra"), ("3", "avocado")],
    );
    assert_eq!(
        pairs(&mut driver, &strings_out("route-a")),
        owned(&[("1", "apple"), ("3", "avocado")])
    );
    assert_eq!(
        pairs(&mut driver, &strings_out("route-z")),
        owned(&[("2", "zebra")])
    );
}

#[test]
fn group_by_and_count_keeps_counts_in_the_store() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("words")
        .group_by(|_, word| word.clone(), Grouped::default().named("by-word"))
        .count(Materialized::default().named("word-counts"))
        .to_stream()
        .to("counts");
    let mut driver = TopologyTestDriver::new(builder.build().unwrap());
    pipe_all(
        &mut driver,
        &strings_in("words"),
        &[
            ("1", "apple"),
            ("2", "pear"),
            ("3", "apple"),
            ("4", "fig"),
            ("5", "apple"),
        ],
    );
    // One update per input: the driver commits after every record, as Kafka's does.
    assert_eq!(
        pairs(&mut driver, &longs_out("counts")),
        [
            ("apple".to_owned(), 1),
            ("pear".to_owned(), 1),
            ("apple".to_owned(), 2),
            ("fig".to_owned(), 1),
            ("apple".to_owned(), 3)
        ]
    );
    let store = driver
        .key_value_store("word-counts", &StringSerde, &LongSerde)
        .unwrap();
    let want: BTreeMap<String, i64> = [("apple", 3), ("fig", 1), ("pear", 1)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(store, want);
}

#[test]
fn a_table_regrouped_and_counted_subtracts_moved_rows() {
    let builder = StreamsBuilder::new();
    builder
        .table::<String, String>(
            "user-regions",
            Consumed::with(Arc::new(StringSerde), Arc::new(StringSerde)),
            Materialized::default().named("users"),
        )
        .group_by(
            |user, region| (region.clone(), user.clone()),
            Grouped::default(),
        )
        .count(Materialized::default().named("users-per-region"))
        .to_stream()
        .to("per-region");
    let mut driver = TopologyTestDriver::new(builder.build().unwrap());
    // ann moves from eu to us; bob is deleted.
    pipe_all(
        &mut driver,
        &strings_in("user-regions"),
        &[("ann", "eu"), ("bob", "eu"), ("cat", "us"), ("ann", "us")],
    );
    driver
        .pipe_raw(
            "user-regions",
            Some(b"bob".to_vec()),
            None,
            2_000,
            Default::default(),
        )
        .unwrap();
    let last: BTreeMap<String, i64> = pairs(&mut driver, &longs_out("per-region"))
        .into_iter()
        .collect();
    let want: BTreeMap<String, i64> = [("eu", 0), ("us", 2)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(last, want);
}

#[test]
fn a_stream_left_joins_a_table() {
    let builder = StreamsBuilder::new();
    let names = builder.table::<String, String>(
        "users",
        Consumed::with(Arc::new(StringSerde), Arc::new(StringSerde)),
        Materialized::default().named("user-names"),
    );
    builder
        .stream::<String, String>("clicks")
        .left_join(&names, Arc::new(StringSerde), |page, name| {
            format!("{} saw {page}", name.map_or("someone", String::as_str))
        })
        .expect("the table is materialized")
        .to("out");
    let mut driver = TopologyTestDriver::new(builder.build().unwrap());
    pipe_all(&mut driver, &strings_in("users"), &[("u1", "Ada")]);
    pipe_all(
        &mut driver,
        &strings_in("clicks"),
        &[("u1", "home"), ("u2", "docs")],
    );
    assert_eq!(
        pairs(&mut driver, &strings_out("out")),
        owned(&[("u1", "Ada saw home"), ("u2", "someone saw docs")])
    );
}

#[test]
fn two_streams_join_within_a_window() {
    let builder = StreamsBuilder::new();
    let string = || Arc::new(StringSerde);
    builder
        .stream::<String, String>("views")
        .join_windowed(
            &builder.stream::<String, String>("clicks"),
            JoinKind::Inner,
            JoinWindows::of_time_difference_and_grace(Duration::from_secs(5), Duration::ZERO),
            StreamJoined::with(string(), string(), string()),
            |view, click| format!("{}+{}", view.expect("inner"), click.expect("inner")),
        )
        .to("out");
    let mut driver = TopologyTestDriver::new(builder.build().unwrap());
    let (views, clicks) = (strings_in("views"), strings_in("clicks"));
    // Views at 1 s and 20 s, clicks at 3 s and 40 s, piped in time order (as a task takes them
    // from its partitions): only the first pair lies within 5 s.
    driver
        .pipe(&views, "u1".into(), "home".into(), 1_000)
        .unwrap();
    driver
        .pipe(&clicks, "u1".into(), "buy".into(), 3_000)
        .unwrap();
    driver
        .pipe(&views, "u1".into(), "docs".into(), 20_000)
        .unwrap();
    driver
        .pipe(&clicks, "u1".into(), "late".into(), 40_000)
        .unwrap();
    assert_eq!(
        pairs(&mut driver, &strings_out("out")),
        owned(&[("u1", "home+buy")])
    );
}

/// Counts per key and emits them on punctuations: stream time or wall-clock time.
struct CountAndEmit {
    kind: PunctuationType,
    counts: BTreeMap<String, i64>,
}

impl Processor<String, String, String, i64> for CountAndEmit {
    fn init(&mut self, ctx: &mut ProcessorContext<String, i64>) {
        ctx.schedule(Duration::from_secs(10), self.kind);
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<String, i64>,
        key: &String,
        _value: &String,
    ) -> Result<(), ProcessError> {
        *self.counts.entry(key.clone()).or_default() += 1;
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<String, i64>,
        _punctuation: PunctuationId,
        timestamp: i64,
    ) -> Result<(), ProcessError> {
        for (k, v) in std::mem::take(&mut self.counts) {
            ctx.forward(Record::new(k, v, timestamp));
        }
        Ok(())
    }
}

fn punctuating(kind: PunctuationType) -> TopologyTestDriver {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .process(None, move || CountAndEmit {
            kind,
            counts: BTreeMap::new(),
        })
        .to("out");
    TopologyTestDriver::with_config(b.build().unwrap(), &[], 0).unwrap()
}

#[test]
fn stream_time_punctuation_fires_as_records_move_stream_time() {
    let mut driver = punctuating(PunctuationType::StreamTime);
    let input = strings_in("in");
    driver.pipe(&input, "a".into(), "x".into(), 0).unwrap();
    driver.pipe(&input, "a".into(), "x".into(), 5_000).unwrap();
    assert!(
        driver.read_raw("out").is_empty(),
        "10 s of stream time have not passed"
    );
    driver.pipe(&input, "b".into(), "x".into(), 10_000).unwrap();
    assert_eq!(
        pairs(&mut driver, &longs_out("out")),
        [("a".to_owned(), 2), ("b".to_owned(), 1)]
    );
    // Wall-clock time does not fire stream-time punctuations.
    driver.pipe(&input, "c".into(), "x".into(), 10_001).unwrap();
    driver
        .advance_wall_clock_time(Duration::from_secs(60))
        .unwrap();
    assert!(driver.read_raw("out").is_empty());
}

#[test]
fn wall_clock_punctuation_fires_only_when_the_clock_moves() {
    let mut driver = punctuating(PunctuationType::WallClockTime);
    let input = strings_in("in");
    driver.pipe(&input, "a".into(), "x".into(), 0).unwrap();
    driver
        .pipe(&input, "a".into(), "x".into(), 1_000_000)
        .unwrap();
    assert!(
        driver.read_raw("out").is_empty(),
        "stream time does not fire it"
    );
    // Scheduled when the driver started (wall clock 0): it fires every 10 s from then on.
    driver
        .advance_wall_clock_time(Duration::from_secs(9))
        .unwrap();
    assert!(driver.read_raw("out").is_empty());
    driver
        .advance_wall_clock_time(Duration::from_secs(1))
        .unwrap();
    let got = driver.read(&longs_out("out")).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].key.as_str(), got[0].value), ("a", 2));
    assert_eq!(got[0].timestamp, 10_000, "stamped with the wall clock");
    driver.pipe(&input, "b".into(), "x".into(), 0).unwrap();
    driver
        .advance_wall_clock_time(Duration::from_secs(10))
        .unwrap();
    assert_eq!(pairs(&mut driver, &longs_out("out")), [("b".to_owned(), 1)]);
}

#[test]
fn a_failing_operation_names_the_record() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .try_map_values(None, |_, _, v: &String| {
            v.parse::<i64>()
                .map_err(|e| ProcessError::new(format!("not a number: {e}")))
        })
        .to("out");
    let mut driver = TopologyTestDriver::new(b.build().unwrap());
    let input = strings_in("in");
    driver.pipe(&input, "a".into(), "1".into(), 0).unwrap();
    let err = driver
        .pipe(&input, "b".into(), "one".into(), 0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("in-0 offset 1") && err.contains("not a number"),
        "{err}"
    );
}
