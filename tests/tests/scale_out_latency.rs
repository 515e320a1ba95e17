//! Issue 20's scale-out, measured: an application holding the latest value of about 1 KB for each
//! of [`keys`] keys (`reduce`, a changelogged store; 12 partitions) runs on two instances under
//! `group.protocol=streams`; a third joins while a steady input of [`RATE`] records/s flows.
//! Measured: the end-to-end latency of every record (its arrival in the output topic less its
//! input timestamp) in the [`BEFORE`] before the join and the [`DURING`] after it, overall and
//! for the partitions that did not move; the tasks that moved and the records the newcomer
//! restored. Asserted: every key's last value exact, the newcomer restored what it took (and no
//! more than the state), and the partitions that did not move kept a p99 under 1 s. Java Kafka
//! Streams 4.4 (bench/kstreams, the same topology) then runs the same scale-out, side by side.
//!
//! `make test` runs 50,000 keys; `make soak` (FRESHET_SOAK=1) 1,000,000 (about 1 GB of state).
//! A task that moves to the newcomer stops until the newcomer restored it: the latency of the
//! moved partitions during the join is what the test reports, not what it holds to a bound: Kafka
//! 4.4 has the warm-up settings (`group.streams.num.warmup.replicas`), but the step that would
//! apply them (`AssignmentRefiner.refine`) returns the assignor's assignment unchanged (see
//! docs/design/standbys-and-restoration.md).
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use freshet_tests::engine::{EngineProcess, tasks_created};
use freshet_tests::kafka::create_topics;
use freshet_tests::{kafka_bootstrap, repo_root, unique_name};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 12;
/// The steady input rate, records per second.
const RATE: u64 = 500;
/// How long the steady input runs before the third instance joins.
const BEFORE: Duration = Duration::from_secs(20);
/// How long it runs after the join.
const DURING: Duration = Duration::from_secs(30);
/// The bytes of padding in each value: with its key and sequence number, about 1 KB.
const PADDING: usize = 1_000;

/// The keys of the state: 50,000, or 1,000,000 under `make soak`.
fn keys() -> usize {
    if std::env::var_os("FRESHET_SOAK").is_some() {
        1_000_000
    } else {
        50_000
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn value(seq: u64) -> String {
    format!("{seq:012}|{}", "x".repeat(PADDING))
}

fn producer() -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer")
}

fn send(producer: &ThreadedProducer<DefaultProducerContext>, topic: &str, key: &str, value: &str) {
    let mut record: BaseRecord<'_, str, str> = BaseRecord::to(topic)
        .key(key)
        .payload(value)
        .timestamp(now_ms());
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((e, back))
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                std::thread::sleep(Duration::from_millis(5));
                record = back;
            }
            Err((e, _)) => panic!("send: {e}"),
        }
    }
}

/// Writes [`RATE`] records a second over the keys, each value carrying a sequence number, until
/// stopped; returns the last value it wrote for each key, and how many records it wrote.
struct Feeder {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(BTreeMap<String, u64>, u64)>,
}

impl Feeder {
    fn start(topic: &str, keys: usize, first_seq: u64) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, topic) = (stop.clone(), topic.to_owned());
        let handle = std::thread::spawn(move || {
            let producer = producer();
            let mut last = BTreeMap::new();
            let begun = Instant::now();
            let mut sent = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let due = begun.elapsed().as_millis() as u64 * RATE / 1000;
                while sent < due {
                    // A stride through the keys that visits each partition in turn.
                    let key = format!("k{:07}", (sent * 7_919) as usize % keys);
                    let seq = first_seq + sent;
                    send(&producer, &topic, &key, &value(seq));
                    last.insert(key, seq);
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            producer.flush(Duration::from_secs(60)).expect("flush");
            (last, sent)
        });
        Feeder { stop, handle }
    }

    fn stop(self) -> (BTreeMap<String, u64>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("feeder")
    }
}

/// One output record's latency: when it arrived, its partition, arrival less input timestamp.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    partition: i32,
    latency_ms: i64,
}

/// Reads the output topic from its start (read_committed), keeping each key's last sequence
/// number and the latency of each record.
struct Reader {
    stop: Arc<AtomicBool>,
    last: Arc<Mutex<BTreeMap<String, u64>>>,
    samples: Arc<Mutex<Vec<Sample>>>,
    handle: JoinHandle<()>,
}

impl Reader {
    fn start(topic: &str) -> Reader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka_bootstrap())
            .set("group.id", unique_name("latency-reader"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            // Latency is the subject: fetches answer at once rather than after 500 ms.
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("reader");
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&tpl).expect("assign");
        let stop = Arc::new(AtomicBool::new(false));
        let last: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let (flag, into, timed) = (stop.clone(), last.clone(), samples.clone());
        let handle = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let arrived = (Instant::now(), now_ms());
                let (Some(key), Some(payload)) = (m.key(), m.payload()) else {
                    continue;
                };
                let seq = std::str::from_utf8(payload)
                    .ok()
                    .and_then(|v| v.split('|').next()?.parse::<u64>().ok());
                if let (Ok(key), Some(seq)) = (std::str::from_utf8(key), seq) {
                    into.lock().expect("last").insert(key.to_owned(), seq);
                }
                // The preloaded state (sequence 0) is not part of the steady flow.
                if let (Timestamp::CreateTime(ts), Some(seq)) = (m.timestamp(), seq)
                    && seq > 0
                {
                    timed.lock().expect("samples").push(Sample {
                        at: arrived.0,
                        partition: m.partition(),
                        latency_ms: arrived.1 - ts,
                    });
                }
            }
        });
        Reader {
            stop,
            last,
            samples,
            handle,
        }
    }

    fn keys_seen(&self) -> usize {
        self.last.lock().expect("last").len()
    }

    fn last(&self) -> BTreeMap<String, u64> {
        self.last.lock().expect("last").clone()
    }

    fn samples(&self) -> Vec<Sample> {
        self.samples.lock().expect("samples").clone()
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("reader");
    }
}

/// Max and p99 of some latencies, in ms.
fn max_p99(latencies: impl Iterator<Item = i64>) -> (i64, i64, usize) {
    let mut all: Vec<i64> = latencies.collect();
    all.sort_unstable();
    if all.is_empty() {
        return (0, 0, 0);
    }
    let p99 = all[((all.len() - 1) as f64 * 0.99) as usize];
    (*all.last().unwrap_or(&0), p99, all.len())
}

fn manifest(
    dir: &std::path::Path,
    app: &str,
    input: &str,
    output: &str,
    guarantee: &str,
) -> std::path::PathBuf {
    let path = dir.join("app.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: string
config:
  group.protocol: streams
  processing.guarantee: {guarantee}
  commit.interval.ms: "100"
  statestore.cache.max.bytes: "0"
topology:
  streams:
    - {{ name: readings, topic: {input} }}
  pipelines:
    - name: latest
      from: readings
      steps:
        - groupByKey: {{}}
        - reduce: {{ reducer: "value", store: latest }}
        - toStream: {{}}
        - to: {{ topic: {output} }}
"#,
            bootstrap = kafka_bootstrap()
        ),
    )
    .expect("write the manifest");
    path
}

/// The partitions of the tasks an engine's log says it created.
fn partitions_created(log: &str) -> BTreeSet<i32> {
    tasks_created(log)
        .iter()
        .filter_map(|t| t.rsplit('_').next()?.parse().ok())
        .collect()
}

/// A running instance of the application: Freshet's engine, or Java Kafka Streams' (the
/// benchmark's contender, bench/kstreams, `workload=latest`).
enum Instance {
    Freshet(EngineProcess),
    KafkaStreams(JavaProcess),
}

/// A Java Kafka Streams instance; its stderr goes to a file.
struct JavaProcess {
    child: Child,
    log: PathBuf,
}

impl Instance {
    fn log_text(&self) -> String {
        match self {
            Instance::Freshet(e) => e.log_text(),
            Instance::KafkaStreams(j) => std::fs::read_to_string(&j.log).unwrap_or_default(),
        }
    }

    fn stop(self) {
        match self {
            Instance::Freshet(mut e) => {
                let status = e.terminate(Duration::from_secs(60));
                assert!(status.success(), "{status}: {}", e.log_text());
            }
            Instance::KafkaStreams(mut j) => {
                let _ = Command::new("kill")
                    .args(["-TERM", &j.child.id().to_string()])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(60);
                while j.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = j.child.kill();
                let _ = j.child.wait();
            }
        }
    }
}

/// Which implementation runs the application.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Contender {
    Freshet,
    KafkaStreams,
}

/// Starts instance `n` of `contender` and waits until it is RUNNING.
fn start(contender: Contender, n: usize, app: &App) -> Instance {
    let state = app.dir.path().join(format!("state-{n}"));
    match contender {
        Contender::Freshet => {
            Instance::Freshet(EngineProcess::start_ready(&app.manifest, &app.id, &state))
        }
        Contender::KafkaStreams => {
            let classpath = kstreams_classpath();
            let log = app.dir.path().join(format!("kstreams-{n}.log"));
            let mut child = Command::new("java")
                .arg("-cp")
                .arg(&classpath)
                .arg("dev.freshet.bench.BenchApp")
                .args([
                    "workload=latest".to_owned(),
                    format!("bootstrap={}", kafka_bootstrap()),
                    format!("app={}", app.id),
                    format!("input={}", app.input),
                    format!("output={}", app.output),
                    format!("guarantee={}", app.guarantee),
                    "threads=1".to_owned(),
                    "commit=100".to_owned(),
                    format!("state={}", state.display()),
                    "cache=0".to_owned(),
                ])
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&log).expect("log file"))
                .spawn()
                .expect("java");
            let stdout = child.stdout.take().expect("stdout");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.trim() == "RUNNING" {
                        let _ = tx.send(());
                    }
                }
            });
            let running = rx.recv_timeout(Duration::from_secs(120));
            let instance = Instance::KafkaStreams(JavaProcess { child, log });
            assert!(
                running.is_ok(),
                "Kafka Streams instance {n} not RUNNING within 120 s:\n{}",
                instance.log_text()
            );
            instance
        }
    }
}

/// The classpath of the Java contender, which `make test` builds (bench/kstreams.sh build).
fn kstreams_classpath() -> String {
    let out = Command::new(repo_root().join("bench/kstreams.sh"))
        .arg("path")
        .output()
        .expect("bench/kstreams.sh path");
    assert!(
        out.status.success(),
        "the Kafka Streams contender is not built: run bench/kstreams.sh build ({})",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .trim()
        .to_owned()
}

/// One application's topics, manifest and state directories.
struct App {
    id: String,
    input: String,
    output: String,
    guarantee: String,
    dir: tempfile::TempDir,
    manifest: PathBuf,
}

/// What one scale-out measured.
struct Figures {
    before: (i64, i64, usize),
    during: (i64, i64, usize),
}

impl Figures {
    fn line(&self) -> String {
        let ((max_b, p99_b, n_b), (max_d, p99_d, n_d)) = (self.before, self.during);
        format!(
            "before the join max {max_b} ms, p99 {p99_b} ms ({n_b} records); during max {max_d} ms, \
             p99 {p99_d} ms ({n_d}); max ratio {:.2}, p99 ratio {:.2}",
            max_d as f64 / max_b.max(1) as f64,
            p99_d as f64 / p99_b.max(1) as f64,
        )
    }
}

/// One scale-out at a time: each runs three instances, and latency is what it measures.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Loads the state into two instances of `contender`, runs the steady input, lets a third join,
/// checks every key's last value, and measures.
async fn scale_out(contender: Contender, guarantee: &str) -> Figures {
    let keys = keys();
    let id = unique_name("scaleout");
    let (input, output) = (format!("{id}-in"), format!("{id}-out"));
    create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = manifest(dir.path(), &id, &input, &output, guarantee);
    let app = App {
        id,
        input,
        output,
        guarantee: guarantee.to_owned(),
        dir,
        manifest,
    };
    let label = format!("{contender:?}, {guarantee}, {keys} keys");
    // The state: every key once, sequence 0.
    let loaded = Instant::now();
    let preload = producer();
    for k in 0..keys {
        send(&preload, &app.input, &format!("k{k:07}"), &value(0));
    }
    preload.flush(Duration::from_secs(300)).expect("flush");
    drop(preload);
    let first = [start(contender, 0, &app), start(contender, 1, &app)];
    let reader = Reader::start(&app.output);
    let deadline = Instant::now() + Duration::from_secs(if keys > 100_000 { 1_800 } else { 300 });
    while reader.keys_seen() < keys {
        assert!(
            Instant::now() < deadline,
            "{label}: the state was not built: {} of {keys} keys in the output",
            reader.keys_seen()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("{label}: loaded and processed in {:?}", loaded.elapsed());

    let feeder = Feeder::start(&app.input, keys, 1);
    std::thread::sleep(BEFORE);
    let joined = Instant::now();
    let newcomer = start(contender, 2, &app);
    std::thread::sleep(DURING);
    let (last_written, fed) = feeder.stop();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let last = reader.last();
        let behind: Vec<_> = last_written
            .iter()
            .filter(|(k, seq)| last.get(*k) != Some(seq))
            .take(3)
            .collect();
        if behind.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{label}: the output's last values differ from the input's, e.g. {behind:?}; newcomer log:\n{}",
            newcomer.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let samples = reader.samples();
    reader.stop();
    let (before, during): (Vec<Sample>, Vec<Sample>) = samples.iter().partition(|s| s.at < joined);
    let figures = Figures {
        before: max_p99(before.iter().map(|s| s.latency_ms)),
        during: max_p99(during.iter().map(|s| s.latency_ms)),
    };
    if let Instance::Freshet(engine) = &newcomer {
        let moved = partitions_created(&engine.log_text());
        let restored = engine.metric("freshet_restored_records_total");
        let (max_still, p99_still, n_still) = max_p99(
            during
                .iter()
                .filter(|s| !moved.contains(&s.partition))
                .map(|s| s.latency_ms),
        );
        println!(
            "{label}: partitions that did not move: max {max_still} ms, p99 {p99_still} ms ({n_still} records); \
             moved to the newcomer: {moved:?}, restored {restored} records"
        );
        assert!(
            !moved.is_empty(),
            "{label}: no task moved to the newcomer:\n{}",
            engine.log_text()
        );
        assert!(
            // Each input record is one changelog record (no cache): the changelogs hold no more.
            restored > 0.0 && restored <= (keys as u64 + fed) as f64,
            "{label}: the newcomer restored {restored} records for tasks {moved:?}; the changelogs hold at most {} records",
            keys as u64 + fed
        );
        assert!(
            p99_still < 1_000,
            "{label}: the partitions that did not move had a p99 latency of {p99_still} ms during the join"
        );
    }
    println!("{label}: {}", figures.line());
    for instance in first.into_iter().chain([newcomer]) {
        instance.stop();
    }
    figures
}

/// Freshet, then Java Kafka Streams 4.4 (its default classic protocol, whose assignor keeps a
/// task where it is while a warm-up replica restores it), on the same data.
async fn side_by_side(guarantee: &str) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let freshet = scale_out(Contender::Freshet, guarantee).await;
    let java = scale_out(Contender::KafkaStreams, guarantee).await;
    println!(
        "side by side, {guarantee}, {} keys:\n  Freshet (streams group): {}\n  Kafka Streams (classic): {}",
        keys(),
        freshet.line(),
        java.line()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_third_instance_joins_under_load_at_least_once() {
    side_by_side("at_least_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_third_instance_joins_under_load_exactly_once() {
    side_by_side("exactly_once_v2").await;
}
