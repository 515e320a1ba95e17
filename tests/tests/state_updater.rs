//! Restoration off the stream thread (issue 20, part 3) against the real broker, with engine
//! processes: a count over 2 input partitions whose task 0_0 holds a large state (KEYS keys)
//! and 0_1 a few keys. A second engine starts with an EMPTY state directory, so both tasks
//! restore from their changelogs. While 0_0 is still restoring (its store's
//! `freshet_restore_remaining_records` is above 0 and `/readyz` lists it), records produced to
//! partition 1 come out within 1 s each, before 0_0's restore ends, and `/readyz` stays 200;
//! afterwards every count is exact. Under at_least_once and exactly_once_v2, with
//! group.protocol=classic and streams.
//!
//! A local broker hands a restore its 200 000 records in a fraction of a second: the test puts
//! a broker quota (Kafka's `consumer_byte_rate`, set with kafka-configs) on the restore
//! consumers' client id, as a busy network or a remote broker would, so 0_0's restore takes
//! several seconds.
//!
//! A restore stopped midway (the engine stops) is checkpointed where it stood: the next start
//! restores only the rest, and the counts stay exact.
//!
//! Before the state updater the stream thread restored 0_0 to its end before it did anything
//! else, so the probes waited for the whole restore.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use freshet_tests::apps::read_counts;
use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::create_topics;
use freshet_tests::streams_groups::{describe_members, set_group_config};
use freshet_tests::{kafka_bootstrap, unique_name};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// Distinct keys counted by task 0_0 (partition 0): its changelog's size.
const KEYS: usize = 200_000;
/// Distinct keys of task 0_1 before the restart.
const SMALL_KEYS: usize = 20;
/// Probe records produced to partition 1 while 0_0 restores.
const PROBES: usize = 5;
/// The restore consumers' fetch quota, bytes/s: 0_0's changelog (about 6 MB) takes ~15 s.
const RESTORE_BYTE_RATE: usize = 400_000;
/// The end-to-end latency each probe must stay under.
const MAX_LATENCY: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread")]
async fn classic_at_least_once() {
    run("classic", "at_least_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn classic_exactly_once() {
    run("classic", "exactly_once_v2").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_at_least_once() {
    run("streams", "at_least_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_exactly_once() {
    run("streams", "exactly_once_v2").await;
}

fn write_manifest(
    path: &std::path::Path,
    app: &str,
    topics: (&str, &str),
    protocol: &str,
    guarantee: &str,
    state_dir: &std::path::Path,
) {
    let (input, output) = topics;
    let text = format!(
        r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: string
config:
  commit.interval.ms: "100"
  group.protocol: {protocol}
  processing.guarantee: {guarantee}
  state.dir: {state_dir}
topology:
  streams:
    - {{ name: events, topic: {input} }}
  pipelines:
    - name: count
      from: events
      steps:
        - groupByKey: {{}}
        - count: {{ store: counts }}
        - toStream: {{}}
        - to: {{ topic: {output}, valueSerde: long }}
"#,
        bootstrap = kafka_bootstrap(),
        state_dir = state_dir.display(),
    );
    std::fs::write(path, text).expect("write the manifest");
}

fn producer() -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .create()
        .expect("producer")
}

/// Sends `keys` (value "v") to `partition` of `topic`, waiting for room when the queue is full.
fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    partition: i32,
    keys: impl IntoIterator<Item = String>,
) {
    for key in keys {
        let mut record: BaseRecord<'_, str, str> = BaseRecord::to(topic)
            .partition(partition)
            .key(key.as_str())
            .payload("v");
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                    record = back;
                }
                Err((e, _)) => panic!("producing to {topic}-{partition}: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
}

/// `freshet_restore_remaining_records` of store `counts`, partition `partition` (None before
/// the series exists).
fn remaining(engine: &EngineProcess, partition: i32) -> Option<i64> {
    let (_, body) = engine.get("/metrics")?;
    body.lines()
        .filter(|l| l.starts_with("freshet_restore_remaining_records{"))
        .filter(|l| {
            l.contains("store=\"counts\"") && l.contains(&format!("partition=\"{partition}\""))
        })
        .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as i64)
}

/// A sample of metric `name` without labels.
fn gauge(engine: &EngineProcess, name: &str) -> Option<f64> {
    let (_, body) = engine.get("/metrics")?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until `output` holds exactly `expected` as its latest counts.
fn wait_counts(output: &str, expected: &BTreeMap<String, i64>, engine: &EngineProcess) {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let got = read_counts(output);
        if &got == expected {
            return;
        }
        if Instant::now() >= deadline {
            let wrong: Vec<_> = expected
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(v))
                .take(5)
                .map(|(k, v)| format!("{k}: expected {v}, got {:?}", got.get(k)))
                .collect();
            panic!(
                "counts not exact: {} keys, {} expected; e.g. {wrong:?}\nlog:\n{}",
                got.len(),
                expected.len(),
                engine.log_text()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn big(i: usize) -> String {
    format!("big-{i:06}")
}

fn small(i: usize) -> String {
    format!("small-{i:03}")
}

/// An application whose first engine built the state: 0_0's changelog holds KEYS records,
/// 0_1's SMALL_KEYS; the engine stopped cleanly.
struct Built {
    app: String,
    input: String,
    output: String,
    protocol: &'static str,
    guarantee: &'static str,
    dir: tempfile::TempDir,
    producer: ThreadedProducer<DefaultProducerContext>,
    /// The latest count per key the output must hold.
    expected: BTreeMap<String, i64>,
}

impl Built {
    async fn new(protocol: &'static str, guarantee: &'static str) -> Built {
        let app = unique_name("updater");
        let (input, output) = (format!("{app}-in"), format!("{app}-out"));
        create_topics(&[(&input, 2), (&output, 2)]).await;
        if protocol == "streams" {
            // Task offsets every second (the broker's default is a minute), for
            // reports_restore_progress; the test broker allows it.
            set_group_config(&app, "streams.task.offset.interval.ms=1000");
        }
        let built = Built {
            dir: tempfile::tempdir().expect("temp dir"),
            producer: producer(),
            expected: (0..KEYS)
                .map(big)
                .chain((0..SMALL_KEYS).map(small))
                .map(|k| (k, 1))
                .collect(),
            app,
            input,
            output,
            protocol,
            guarantee,
        };
        send(&built.producer, &built.input, 0, (0..KEYS).map(big));
        send(&built.producer, &built.input, 1, (0..SMALL_KEYS).map(small));
        let mut a = EngineProcess::start(&built.manifest("a"), &[], &[]);
        a.wait_ready(Duration::from_secs(120));
        wait_counts(&built.output, &built.expected, &a);
        assert!(
            a.terminate(Duration::from_secs(60)).success(),
            "{}",
            a.log_text()
        );
        built
    }

    /// The manifest of an engine whose state directory is `<dir>/<name>`.
    fn manifest(&self, name: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(format!("{name}.yaml"));
        write_manifest(
            &path,
            &self.app,
            (&self.input, &self.output),
            self.protocol,
            self.guarantee,
            &self.dir.path().join(name),
        );
        path
    }

    /// Holds the restore consumers to RESTORE_BYTE_RATE from now on.
    fn throttle_restores(&self) {
        freshet_tests::kafka::add_config(
            "clients",
            &format!("{}-restore-consumer", self.app),
            &format!("consumer_byte_rate={RESTORE_BYTE_RATE}"),
        );
    }

    /// One more record for the first 1 000 big keys and every small one: counted on from the
    /// restored state, each must come out one higher.
    fn count_on(&mut self) {
        send(&self.producer, &self.input, 0, (0..1_000).map(big));
        send(&self.producer, &self.input, 1, (0..SMALL_KEYS).map(small));
        for k in (0..1_000).map(big).chain((0..SMALL_KEYS).map(small)) {
            *self.expected.entry(k).or_default() += 1;
        }
    }
}

/// The sum of `freshet_restored_records_total` of store `counts`, partition `partition`.
fn restored(engine: &EngineProcess, partition: i32) -> f64 {
    let Some((_, body)) = engine.get("/metrics") else {
        return 0.0;
    };
    body.lines()
        .filter(|l| l.starts_with("freshet_restored_records_total{"))
        .filter(|l| {
            l.contains("store=\"counts\"") && l.contains(&format!("partition=\"{partition}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn run(protocol: &'static str, guarantee: &'static str) {
    let mut built = Built::new(protocol, guarantee).await;
    let (input, output) = (built.input.clone(), built.output.clone());
    let probe = |i: usize| format!("probe-{i}");
    let producer = producer();

    // Where the output ends now: the probes' outputs come after.
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", unique_name("probe-reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(&output, p, Offset::End)
            .expect("tpl");
    }
    reader.assign(&tpl).expect("assign");
    let _ = reader.poll(Duration::from_millis(500));

    // A second engine with an empty state directory: both tasks restore, 0_0 at the quota.
    built.throttle_restores();
    let b = EngineProcess::start(&built.manifest("b"), &[], &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if remaining(&b, 0).is_some_and(|r| r > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "0_0 never seen restoring; log:\n{}",
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // 0_1's 20 records restore at once (before, it waited for 0_0: then nothing lists it).
    let deadline = Instant::now() + Duration::from_secs(10);
    while b
        .get("/readyz")
        .is_some_and(|(_, body)| body.contains("\"task\":\"0_1\""))
    {
        assert!(Instant::now() < deadline, "0_1 still restoring after 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Probes on partition 1 while 0_0 restores: each comes out before the restore ends, and
    // within MAX_LATENCY. The first only starts 0_1's fetching (its partition was just resumed,
    // a fetch session to set up): its latency is shown but not bounded.
    let mut latencies = Vec::new();
    let mut warm_up = None;
    for i in 0..=PROBES {
        let sent = Instant::now();
        send(&producer, &input, 1, [probe(i)]);
        let received = loop {
            if let Some(Ok(m)) = reader.poll(Duration::from_millis(10))
                && m.key() == Some(probe(i).as_bytes())
            {
                break sent.elapsed();
            }
            assert!(
                sent.elapsed() < Duration::from_secs(60),
                "probe {i} not output within 60 s; log:\n{}",
                b.log_text()
            );
        };
        let left = remaining(&b, 0).unwrap_or(0);
        let (status, body) = b.get("/readyz").expect("/readyz answers");
        assert!(
            left > 0,
            "probe {i} came out after {received:?}, but only once 0_0's restore had ended (the stream thread restored before processing); log:\n{}",
            b.log_text()
        );
        assert_eq!(status, 200, "/readyz while 0_0 restores: {body}");
        assert!(
            body.contains("\"task\":\"0_0\"") && body.contains("restoringTasks"),
            "/readyz lists 0_0 as restoring: {body}"
        );
        assert!(
            gauge(&b, "freshet_restoring_tasks").is_some_and(|g| g >= 1.0),
            "freshet_restoring_tasks counts 0_0"
        );
        if i == 0 {
            warm_up = Some(received);
        } else {
            latencies.push(received);
        }
        built.expected.insert(probe(i), 1);
    }
    if protocol == "streams" {
        reports_restore_progress(&built.app, &b);
    }
    let worst = latencies.iter().max().copied().unwrap_or_default();
    println!(
        "{protocol}/{guarantee}: probe latencies during 0_0's restore: {latencies:?} (first record after 0_1 started: {warm_up:?})"
    );
    assert!(
        worst < MAX_LATENCY,
        "a probe took {worst:?} end to end while 0_0 restored (latencies {latencies:?})"
    );

    // After the restore: both tasks count on from the restored state, exactly.
    let deadline = Instant::now() + Duration::from_secs(240);
    while remaining(&b, 0) != Some(0) || gauge(&b, "freshet_restoring_tasks") != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "0_0 never restored; log:\n{}",
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    built.count_on();
    wait_counts(&output, &built.expected, &b);
    let (status, body) = b.get("/readyz").expect("/readyz answers");
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("restoringTasks"), "{body}");
    let mut b = b;
    assert!(
        b.terminate(Duration::from_secs(60)).success(),
        "{}",
        b.log_text()
    );
}

/// While 0_0 restores, the member reports how far its restore got in the task offsets it sends
/// the streams group (Kafka Streams reports a restoring task's changelog offsets too; the broker
/// reads from them how far a member is behind): the coordinator's description shows 0_0 with an
/// offset above 0 while `freshet_restore_remaining_records` is still above 0. Before, a restoring
/// task reported 0 until its restore ended.
fn reports_restore_progress(app: &str, engine: &EngineProcess) {
    let deadline = Instant::now() + Duration::from_secs(12);
    loop {
        let members = describe_members(app);
        let reported = members
            .iter()
            .find_map(|m| m.task_offsets.get("0_0").copied());
        let left = remaining(engine, 0).unwrap_or(0);
        if reported.is_some_and(|o| o > 0) && left > 0 {
            println!("0_0 reported at offset {reported:?} with {left} records left to restore");
            return;
        }
        assert!(
            left > 0 && Instant::now() < deadline,
            "no task offset above 0 reported for 0_0 while it restored (last: {reported:?}, {left} records left); members: {members:#?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A restore stopped midway (the engine stops while 0_0 restores: the same removal from the
/// state updater as a revocation) keeps what it restored: the task's checkpoint names an offset
/// inside the changelog, the next start restores only the rest, and the counts are exact.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_restore_is_checkpointed_where_it_stood_at_least_once() {
    stopped_restore("at_least_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_restore_is_checkpointed_where_it_stood_exactly_once() {
    stopped_restore("exactly_once_v2").await;
}

async fn stopped_restore(guarantee: &'static str) {
    let mut built = Built::new("classic", guarantee).await;
    built.throttle_restores();
    let mut b = EngineProcess::start(&built.manifest("b"), &[], &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while restored(&b, 0) < 20_000.0 {
        assert!(
            Instant::now() < deadline,
            "0_0's restore never got under way; log:\n{}",
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        remaining(&b, 0).is_some_and(|r| r > 0),
        "0_0 restored before the stop: raise KEYS or lower RESTORE_BYTE_RATE"
    );
    let stopped_at = Instant::now();
    assert!(
        b.terminate(Duration::from_secs(60)).success(),
        "{}",
        b.log_text()
    );
    println!(
        "{guarantee}: stopped mid-restore in {:?}",
        stopped_at.elapsed()
    );
    let log = b.log_text();
    assert!(log.contains("restore stopped"), "{log}");
    let checkpoint_path = built
        .dir
        .path()
        .join("b")
        .join(&built.app)
        .join("0_0")
        .join(".checkpoint");
    let checkpoint = std::fs::read_to_string(&checkpoint_path)
        .unwrap_or_else(|e| panic!("no checkpoint at {}: {e}\n{log}", checkpoint_path.display()));
    let changelog = format!("{}-counts-changelog 0 ", built.app);
    let offset: i64 = checkpoint
        .lines()
        .find_map(|l| l.strip_prefix(&changelog)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no entry for {changelog} in {checkpoint}"));
    // Under exactly-once the changelog's end counts transaction markers too.
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("metadata client");
    let (_, end) = client
        .fetch_watermarks(
            &format!("{}-counts-changelog", built.app),
            0,
            Duration::from_secs(10),
        )
        .expect("the changelog's end offset");
    assert!(
        offset > 0 && offset < end - 1,
        "the checkpoint stands inside the changelog (end {end}): {offset}"
    );

    // The restart restores only what is after the checkpoint, and counts on exactly.
    let mut c = EngineProcess::start(&built.manifest("b"), &[], &[]);
    c.wait_ready(Duration::from_secs(240));
    let again = restored(&c, 0);
    println!("{guarantee}: checkpointed at {offset}, restored {again} more");
    assert!(
        again > 0.0 && again <= (end - offset - 1) as f64,
        "restored {again} after a checkpoint at {offset}, the changelog ending at {end}; log:\n{}",
        c.log_text()
    );
    built.count_on();
    wait_counts(&built.output, &built.expected, &c);
    assert!(
        c.terminate(Duration::from_secs(60)).success(),
        "{}",
        c.log_text()
    );
}
