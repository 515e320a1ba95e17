//! Broker faults under a running engine, modelled on Kafka Streams' own system tests (broker
//! bounce, broker down, broker down at start): each runs against brokers of its own (see
//! `freshet_tests::brokers`) so it can stop, kill and freeze them, while a feeder writes steady
//! input and the engine counts it through a repartition topic.
//!
//! What every test asserts: the engine's process never changes (no exit, no restart), it never
//! goes to ERROR, and the output is right: under exactly_once_v2, read with read_committed, each
//! key's counts are exactly 1, 2, ... n with n its true count (nothing lost, nothing counted
//! twice, never decreasing); under at_least_once, no key's last count is below its true count.
//!
//! `make test` runs short outages; `make chaos` (FRESHET_CHAOS=1) runs the system tests' own
//! lengths: 70 s for a stopped or killed leader, 30 s frozen.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use freshet_tests::brokers::Brokers;
use freshet_tests::differential::progress::read_all_at;
use freshet_tests::engine::EngineProcess;
use freshet_tests::unique_name;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

const PARTITIONS: i32 = 3;
/// Distinct values of the input, the keys of the counts after the repartition.
const GROUPS: usize = 40;

/// Tests holding brokers of their own at once: two cores run two of them well; more, and the
/// brokers' and engines' timing is the test's subject no more.
const AT_ONCE: usize = 2;

/// A place among the [`AT_ONCE`] tests that may run; held until dropped.
struct Heavy;

static RUNNING: Mutex<usize> = Mutex::new(0);
static FREED: std::sync::Condvar = std::sync::Condvar::new();

fn heavy() -> Heavy {
    let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    while *running >= AT_ONCE {
        running = FREED.wait(running).unwrap_or_else(|e| e.into_inner());
    }
    *running += 1;
    Heavy
}

impl Drop for Heavy {
    fn drop(&mut self) {
        *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        FREED.notify_one();
    }
}

/// The long forms (`make chaos`).
fn chaos() -> bool {
    std::env::var("FRESHET_CHAOS").is_ok_and(|v| v == "1")
}

/// A short or a long outage.
fn outage(short_secs: u64, long_secs: u64) -> Duration {
    Duration::from_secs(if chaos() { long_secs } else { short_secs })
}

/// Counts the records the brokers acknowledged, per value: the true input.
#[derive(Default)]
struct Acknowledged {
    per_value: Mutex<BTreeMap<String, i64>>,
    failed: Mutex<Vec<String>>,
}

impl ClientContext for Acknowledged {}

impl ProducerContext for Acknowledged {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                *self
                    .per_value
                    .lock()
                    .expect("counts")
                    .entry(value)
                    .or_default() += 1;
            }
            Err((e, _)) => self.failed.lock().expect("failures").push(e.to_string()),
        }
    }
}

/// Steady input: `per_second` records a second until stopped, with an idempotent producer that
/// waits out outages (acks=all, no delivery timeout shorter than the longest outage).
struct Feeder {
    stop: Arc<AtomicBool>,
    /// Set while the only broker is down: upstream producers hold their records meanwhile.
    paused: Arc<AtomicBool>,
    handle: JoinHandle<BTreeMap<String, i64>>,
}

impl Feeder {
    fn start(bootstrap: &str, topic: &str, per_second: u64) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let producer: ThreadedProducer<Acknowledged> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "600000")
            .set("linger.ms", "5")
            .set("partitioner", "murmur2_random")
            .create_with_context(Acknowledged::default())
            .expect("feeder producer");
        let paused = Arc::new(AtomicBool::new(false));
        let (topic, flag, held) = (topic.to_owned(), stop.clone(), paused.clone());
        let handle = std::thread::spawn(move || {
            let begun = Instant::now();
            let mut sent = 0u64;
            while !flag.load(Ordering::Relaxed) {
                if held.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                // After a pause, what was due meanwhile goes at once, as held records do.
                let due = begun.elapsed().as_millis() as u64 * per_second / 1000;
                while sent < due {
                    let key = format!("k-{sent}");
                    let value = format!("g-{:02}", sent as usize % GROUPS);
                    let mut record: BaseRecord<'_, str, str> = BaseRecord::to(&topic)
                        .key(key.as_str())
                        .payload(value.as_str());
                    loop {
                        match producer.send(record) {
                            Ok(()) => break,
                            // The queue fills while the brokers are away: wait for room.
                            Err((_, r)) => {
                                record = r;
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            producer
                .flush(Duration::from_secs(600))
                .expect("every input record acknowledged");
            let context = producer.context();
            let failed = context.failed.lock().expect("failures").clone();
            assert!(
                failed.is_empty(),
                "input records failed, so the true counts are unknown: {failed:?}"
            );
            let counts = context.per_value.lock().expect("counts").clone();
            assert_eq!(
                counts.values().sum::<i64>() as u64,
                sent,
                "every record sent is acknowledged"
            );
            counts
        });
        Feeder {
            stop,
            paused,
            handle,
        }
    }

    /// Holds the records from now until [`Feeder::resume`]: with the only broker down none
    /// could be written, and librdkafka's idempotent producer once left records queued across
    /// such an outage undelivered until `message.timeout.ms` (10 minutes, on a busy machine),
    /// which fails the harness, not the engine under test.
    fn pause(&self) {
        self.paused.store(true, Ordering::Relaxed);
        // The records sent so far are acknowledged (linger.ms 5, a local broker) before the
        // caller takes the broker down.
        std::thread::sleep(Duration::from_millis(500));
    }

    /// Sends what was held, then feeds at the steady rate again.
    fn resume(&self) {
        self.paused.store(false, Ordering::Relaxed);
    }

    /// Stops feeding; returns the true counts once every record is acknowledged.
    fn finish(self) -> BTreeMap<String, i64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the feeder thread")
    }
}

/// A count per input value, through a repartition topic (`selectKey` then `groupByKey`); no
/// record cache, so every input record makes exactly one output record.
fn manifest(dir: &Path, guarantee: &str, input: &str, output: &str) -> PathBuf {
    let commit = if guarantee == "at_least_once" {
        "\n    commit.interval.ms: \"1000\""
    } else {
        ""
    };
    let text = format!(
        r#"applicationId: set-by-flag
bootstrapServers: set-by-flag
processingGuarantee: {guarantee}
defaultKeySerde: string
defaultValueSerde: string
config:
    statestore.cache.max.bytes: "0"{commit}
topology:
  streams:
    - {{ name: input, topic: {input} }}
  pipelines:
    - name: counts
      from: input
      steps:
        - selectKey: "value"
        - groupByKey: {{}}
        - count: {{ store: counts }}
        - toStream: {{}}
        - to: {{ topic: {output}, valueSerde: long }}
"#
    );
    let path = dir.join(format!("{guarantee}.yaml"));
    std::fs::write(&path, text).expect("write manifest");
    path
}

/// One engine under faults: started once, checked to stay the same process and out of ERROR.
struct Watched {
    engine: EngineProcess,
    pid: u32,
    name: String,
}

impl Watched {
    fn start(name: &str, manifest: &Path, bootstrap: &str, app: &str, state: &Path) -> Watched {
        let args = [
            "--bootstrap-servers",
            bootstrap,
            "--application-id",
            app,
            "--state-dir",
            state.to_str().expect("UTF-8 path"),
        ];
        let engine = EngineProcess::start(manifest, &args, &[("POD_NAME", "faults-0")]);
        let pid = engine.child.id();
        Watched {
            engine,
            pid,
            name: name.to_owned(),
        }
    }

    /// Panics if the engine exited or went to ERROR; `when` says at which step.
    fn check(&mut self, when: &str) {
        if let Ok(Some(status)) = self.engine.child.try_wait() {
            panic!(
                "{}: the engine (pid {}) exited ({status}) {when}; log:\n{}",
                self.name,
                self.pid,
                self.engine.log_text()
            );
        }
        assert_eq!(self.engine.child.id(), self.pid, "the same process");
        let log = self.engine.log_text();
        assert!(
            !log.contains("to=PENDING_ERROR") && !log.contains("to=ERROR"),
            "{}: the engine went to ERROR {when}; log:\n{log}",
            self.name
        );
        if let Some((status, body)) = self.engine.get("/healthz") {
            assert_eq!(status, 200, "{}: /healthz {when}: {body}", self.name);
        }
    }

    /// Sleeps `total`, checking the engine every second.
    fn watch(&mut self, total: Duration, when: &str) {
        let end = Instant::now() + total;
        while Instant::now() < end {
            self.check(when);
            std::thread::sleep(Duration::from_secs(1).min(end - Instant::now()));
        }
    }
}

/// The counts the output shows per key, in offset order.
fn output_sequences(
    bootstrap: &str,
    output: &str,
    isolation: &str,
) -> Result<BTreeMap<String, Vec<i64>>, String> {
    let mut seqs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (offset, r) in read_all_at(bootstrap, output, isolation)? {
        let count = r
            .value
            .as_deref()
            .and_then(|v| <[u8; 8]>::try_from(v).ok())
            .map(i64::from_be_bytes)
            .ok_or_else(|| format!("{}-{offset}: not a long", r.partition))?;
        seqs.entry(r.key_str().to_owned()).or_default().push(count);
    }
    Ok(seqs)
}

/// Waits until the output holds the true counts, then checks it as the module says.
fn verify(
    watched: &mut Watched,
    bootstrap: &str,
    output: &str,
    exactly_once: bool,
    truth: &BTreeMap<String, i64>,
) {
    let name = watched.name.clone();
    let diagnosis = watched.engine.diagnosis();
    verify_output(
        &name,
        &mut |when| watched.check(when),
        &|| diagnosis.text(),
        bootstrap,
        output,
        exactly_once,
        truth,
    );
}

/// Waits until the output holds the true counts, calling `check` between reads, then checks it
/// as the module says; `logs` adds the engines' logs to a failure.
fn verify_output(
    name: &str,
    check: &mut dyn FnMut(&str),
    logs: &dyn Fn() -> String,
    bootstrap: &str,
    output: &str,
    exactly_once: bool,
    truth: &BTreeMap<String, i64>,
) {
    let isolation = if exactly_once {
        "read_committed"
    } else {
        "read_uncommitted"
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    let seqs = loop {
        check("while finishing the input");
        let seqs = output_sequences(bootstrap, output, isolation).unwrap_or_default();
        let done = truth.iter().all(|(k, n)| {
            seqs.get(k)
                .and_then(|s| s.last())
                .is_some_and(|last| last >= n)
        });
        if done {
            break seqs;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: the output does not reach the true counts 180 s after the input ended; the engines:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let total: i64 = truth.values().sum();
    if exactly_once {
        for (key, n) in truth {
            let expected: Vec<i64> = (1..=*n).collect();
            let got = &seqs[key];
            assert!(
                *got == expected,
                "{name}: key {key}: counts must be exactly 1..={n} under exactly-once; got {} updates, first differences at {:?}",
                got.len(),
                got.iter()
                    .zip(&expected)
                    .position(|(a, b)| a != b)
                    .map(|i| (i, got[i], expected[i]))
            );
        }
        println!("{name}: {total} records, every key's counts exactly 1..n under read_committed");
    } else {
        let extra: i64 = truth
            .iter()
            .map(|(k, n)| seqs[k].last().copied().unwrap_or(0) - n)
            .sum();
        println!(
            "{name}: {total} records, nothing lost ({extra} counted twice, allowed at least once)"
        );
    }
}

/// `make kafka-down`, 30 s (15 s in the short form), `make kafka-up` under a running
/// exactly_once_v2 count with a repartition step and steady input.
#[test]
fn exactly_once_rides_out_its_only_broker_going_down_and_up() {
    let _heavy = heavy();
    let brokers = Brokers::start(1);
    let bootstrap = brokers.bootstrap();
    let (input, output) = (unique_name("bounce-in"), unique_name("bounce-out"));
    brokers.create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = manifest(dir.path(), "exactly_once_v2", &input, &output);
    let app = unique_name("bounce");
    let feeder = Feeder::start(&bootstrap, &input, 200);
    let mut watched = Watched::start(
        "single broker down",
        &manifest,
        &bootstrap,
        &app,
        &dir.path().join("state"),
    );
    watched.engine.wait_ready(Duration::from_secs(60));
    watched.watch(outage(3, 5), "before the broker went down");
    feeder.pause();
    brokers.down();
    // Longer than transaction.timeout.ms (10 s) in either form: the open transaction times out.
    watched.watch(outage(15, 30), "while the broker was down");
    brokers.up();
    feeder.resume();
    watched.watch(outage(5, 10), "after the broker came back");
    let truth = feeder.finish();
    verify(&mut watched, &bootstrap, &output, true, &truth);
    watched.check("at the end");
}

/// Kafka Streams' broker-bounce test on three brokers: the leader of a source partition stopped
/// (SIGTERM) and restarted, then killed (SIGKILL) and restarted, then frozen (SIGSTOP) and
/// thawed, under steady input, with an exactly_once_v2 and an at_least_once application side by
/// side on the same brokers (each with its own input, output and feeder).
#[test]
fn both_guarantees_ride_out_a_source_leader_stopped_killed_and_frozen() {
    let _heavy = heavy();
    let brokers = Brokers::start(3);
    let bootstrap = brokers.bootstrap();
    let dir = tempfile::tempdir().expect("tempdir");
    struct Run {
        guarantee: &'static str,
        output: String,
        feeder: Feeder,
        watched: Watched,
    }
    let mut runs: Vec<Run> = Vec::new();
    let mut inputs = Vec::new();
    for guarantee in ["exactly_once_v2", "at_least_once"] {
        let short = guarantee.replace('_', "-");
        let (input, output) = (
            unique_name(&format!("bb-{short}-in")),
            unique_name(&format!("bb-{short}-out")),
        );
        brokers.create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS)]);
        let manifest = manifest(dir.path(), guarantee, &input, &output);
        let app = unique_name(&format!("bb-{short}"));
        let feeder = Feeder::start(&bootstrap, &input, 150);
        let watched = Watched::start(
            &format!("{guarantee} broker bounce"),
            &manifest,
            &bootstrap,
            &app,
            &dir.path().join(format!("state-{short}")),
        );
        inputs.push(input);
        runs.push(Run {
            guarantee,
            output,
            feeder,
            watched,
        });
    }
    for run in &mut runs {
        run.watched.engine.wait_ready(Duration::from_secs(90));
    }
    // Both applications watched together, a second at a time.
    let watch = |runs: &mut Vec<Run>, total: Duration, when: &str| {
        let end = Instant::now() + total;
        while Instant::now() < end {
            for run in runs.iter_mut() {
                run.watched.check(when);
            }
            std::thread::sleep(Duration::from_secs(1).min(end - Instant::now()));
        }
    };
    watch(&mut runs, outage(3, 5), "before the first fault");
    let leader_of_source = || {
        brokers
            .leader(&inputs[0], 0)
            .expect("partition 0 of the input has a leader") as usize
    };
    let down = outage(6, 70);
    for (fault, signal) in [("stopped", "SIGTERM"), ("killed", "SIGKILL")] {
        let leader = leader_of_source();
        println!(
            "broker bounce: broker {leader} (leader of {}-0) {fault} ({signal}) for {down:?}",
            inputs[0]
        );
        if signal == "SIGTERM" {
            brokers.stop(leader);
        } else {
            brokers.kill(leader);
        }
        watch(
            &mut runs,
            down,
            &format!("while broker {leader} was {fault}"),
        );
        brokers.restart(leader);
        watch(
            &mut runs,
            outage(4, 10),
            &format!("after broker {leader} came back"),
        );
    }
    let frozen = outage(5, 30);
    let leader = leader_of_source();
    println!(
        "broker bounce: broker {leader} (leader of {}-0) frozen for {frozen:?}",
        inputs[0]
    );
    brokers.freeze(leader);
    watch(
        &mut runs,
        frozen,
        &format!("while broker {leader} was frozen"),
    );
    brokers.thaw(leader);
    watch(
        &mut runs,
        outage(4, 10),
        &format!("after broker {leader} thawed"),
    );
    for run in runs {
        let Run {
            guarantee,
            output,
            feeder,
            mut watched,
        } = run;
        let truth = feeder.finish();
        verify(
            &mut watched,
            &bootstrap,
            &output,
            guarantee == "exactly_once_v2",
            &truth,
        );
        watched.check("at the end");
    }
}

/// A pod deleted while its engine waits for brokers that do not answer ends at once: the engine
/// does not first sit out a try of 15 s (librdkafka's metadata timeout), and says why it exits.
#[test]
fn an_engine_waiting_for_its_broker_stops_at_once_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = manifest(dir.path(), "exactly_once_v2", "never-in", "never-out");
    // A port nothing listens on: every try of the brokers fails after librdkafka's timeout.
    let nowhere = format!("127.0.0.1:{}", freshet_tests::engine::free_port());
    let state = dir.path().join("state");
    let args = [
        "--bootstrap-servers",
        &nowhere,
        "--state-dir",
        state.to_str().expect("UTF-8 path"),
    ];
    let mut engine = EngineProcess::start(&manifest, &args, &[]);
    // Its HTTP endpoints answer once the first try of the brokers is under way.
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine.get("/healthz").is_none() {
        assert!(
            Instant::now() < deadline,
            "no /healthz within 30 s; log:\n{}",
            engine.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let asked = Instant::now();
    let status = engine.terminate(Duration::from_secs(30));
    let took = asked.elapsed();
    let log = engine.log_text();
    assert!(
        took < Duration::from_secs(3),
        "SIGTERM took {took:?} to end an engine waiting for Kafka; log:\n{log}"
    );
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert!(
        log.contains("signal received while waiting for Kafka: exiting"),
        "the log does not say why the engine exits:\n{log}"
    );
}

/// Kafka Streams' "broker down at start": the engine starts with no broker up, then its source
/// topics are created only after the broker comes up. It waits, saying so on /readyz and in its
/// log, and processes within 20 s of the topics existing, in the same process.
#[test]
fn an_engine_started_before_its_broker_and_topics_waits_for_them() {
    let _heavy = heavy();
    let brokers = Brokers::new(1);
    let bootstrap = brokers.bootstrap();
    let (input, output) = (unique_name("early-in"), unique_name("early-out"));
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = manifest(dir.path(), "exactly_once_v2", &input, &output);
    let app = unique_name("early");
    let mut watched = Watched::start(
        "started before its broker",
        &manifest,
        &bootstrap,
        &app,
        &dir.path().join("state"),
    );
    let readyz = |watched: &Watched| watched.engine.get("/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        watched.check("while no broker was up");
        if let Some((503, body)) = readyz(&watched)
            && body.contains("waiting")
            && body.contains("cannot reach Kafka")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz does not say the engine waits for Kafka: {:?}",
            readyz(&watched)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    watched.watch(Duration::from_secs(5), "while no broker was up");
    brokers.up();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        watched.check("while the source topics did not exist");
        if let Some((503, body)) = readyz(&watched)
            && body.contains(&format!("source topic '{input}' does not exist"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz does not say the engine waits for {input}: {:?}",
            readyz(&watched)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = watched.engine.log_text();
    assert!(
        log.contains("waiting: cannot reach Kafka") && log.contains("does not exist"),
        "the log names what the engine waits for:\n{log}"
    );
    brokers.create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS)]);
    let created = Instant::now();
    let feeder = Feeder::start(&bootstrap, &input, 100);
    // The engine sees the topics at its next check, then joins its group, whose first assignment
    // a streams group holds back by the broker's initial rebalance delay (3 s by default; once
    // seen at 4.8 s): the first output came 10.8 s after the topics on a busy machine.
    let deadline = created + Duration::from_secs(20);
    let first_output = loop {
        watched.check("after the topics were created");
        let seqs = output_sequences(&bootstrap, &output, "read_committed").unwrap_or_default();
        if !seqs.is_empty() {
            break created.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "no output within 20 s of the source topics existing; log:\n{}",
            watched.engine.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "started before its broker: first output {:.1} s after the topics were created",
        first_output.as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(3));
    let truth = feeder.finish();
    verify(&mut watched, &bootstrap, &output, true, &truth);
}

/// Kafka Streams' EOS system test: three instances of an exactly_once_v2 application with a
/// repartition step and state, killed (SIGKILL) one at a time and restarted while data flows.
/// The output, read with read_committed, is exact: every key's counts are 1, 2, ... n.
#[test]
fn exactly_once_holds_across_three_instances_killed_and_restarted() {
    let _heavy = heavy();
    let brokers = Brokers::start(1);
    let bootstrap = brokers.bootstrap();
    let (input, output) = (unique_name("eos3-in"), unique_name("eos3-out"));
    brokers.create_topics(&[(&input, 6), (&output, PARTITIONS)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = manifest(dir.path(), "exactly_once_v2", &input, &output);
    let app = unique_name("eos3");
    let start = |i: usize| {
        let state = dir.path().join(format!("state-{i}"));
        let args = [
            "--bootstrap-servers",
            bootstrap.as_str(),
            "--application-id",
            app.as_str(),
            "--state-dir",
            state.to_str().expect("UTF-8 path"),
        ];
        let pod = format!("eos3-{i}");
        EngineProcess::start(&manifest, &args, &[("POD_NAME", pod.as_str())])
    };
    let mut instances: Vec<EngineProcess> = (0..3).map(start).collect();
    let feeder = Feeder::start(&bootstrap, &input, 300);
    let kills = if chaos() { 30 } else { 3 };
    // A seeded choice of victim and timing, printed so a failure can be repeated.
    let seed = std::env::var("FRESHET_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| std::process::id() as u64 * 2_654_435_761 % 1_000_003);
    println!("three instances: {kills} kills, seed {seed} (FRESHET_CRASH_SEED repeats it)");
    let mut rng = seed;
    let mut next = || {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        rng >> 33
    };
    std::thread::sleep(Duration::from_secs(5));
    for kill in 1..=kills {
        std::thread::sleep(Duration::from_millis(2000 + next() % 3000));
        let victim = (next() % 3) as usize;
        for (i, engine) in instances.iter_mut().enumerate() {
            if let Ok(Some(status)) = engine.child.try_wait() {
                panic!(
                    "instance {i} exited by itself ({status}); log:\n{}",
                    engine.log_text()
                );
            }
        }
        instances[victim].kill();
        println!("three instances: kill {kill}: instance {victim}");
        std::thread::sleep(Duration::from_millis(500 + next() % 1500));
        instances[victim] = start(victim);
    }
    let truth = feeder.finish();
    let logs = |instances: &[EngineProcess]| {
        instances
            .iter()
            .enumerate()
            .map(|(i, e)| format!("--- instance {i}:\n{}", e.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let snapshot = std::cell::RefCell::new(String::new());
    verify_output(
        "three instances",
        &mut |when| {
            for (i, engine) in instances.iter_mut().enumerate() {
                if let Ok(Some(status)) = engine.child.try_wait() {
                    panic!(
                        "instance {i} exited ({status}) {when}; log:\n{}",
                        engine.log_text()
                    );
                }
            }
            *snapshot.borrow_mut() = logs(&instances);
        },
        &|| snapshot.borrow().clone(),
        &bootstrap,
        &output,
        true,
        &truth,
    );
}

/// SIGTERM while the only broker is down: the engine exits — within its own 60 s close deadline,
/// inside the pods' termination grace period — without waiting out `task.timeout.ms`, and nothing
/// is lost, as the restart shows. (Usually within seconds; librdkafka's
/// `send_offsets_to_transaction` can block past its timeout while no coordinator is known, and
/// then the close deadline ends it.)
#[test]
fn an_engine_stopped_while_its_broker_is_down_exits_and_loses_nothing() {
    let _heavy = heavy();
    let brokers = Brokers::start(1);
    let bootstrap = brokers.bootstrap();
    let (input, output) = (unique_name("stop-in"), unique_name("stop-out"));
    brokers.create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = manifest(dir.path(), "exactly_once_v2", &input, &output);
    let app = unique_name("stop");
    let state = dir.path().join("state");
    let feeder = Feeder::start(&bootstrap, &input, 200);
    let mut watched = Watched::start("stopped while down", &manifest, &bootstrap, &app, &state);
    watched.engine.wait_ready(Duration::from_secs(60));
    watched.watch(Duration::from_secs(3), "before the broker went down");
    feeder.pause();
    brokers.down();
    watched.watch(Duration::from_secs(15), "while the broker was down");
    let asked = Instant::now();
    // Past the engine's 60 s close deadline: EngineProcess::wait panics with the log.
    let status = watched.engine.terminate(Duration::from_secs(75));
    println!(
        "stopped while down: exited {status} {:.1} s after SIGTERM",
        asked.elapsed().as_secs_f64()
    );
    brokers.up();
    feeder.resume();
    let mut watched = Watched::start(
        "restarted after the stop",
        &manifest,
        &bootstrap,
        &app,
        &state,
    );
    let truth = feeder.finish();
    verify(&mut watched, &bootstrap, &output, true, &truth);
}
