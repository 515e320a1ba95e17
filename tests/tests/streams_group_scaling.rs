//! Scaling a stateful app 2 -> 3 -> 2 instances under steady input with group.protocol=streams:
//! the broker's assignor moves some tasks to the new instance and back, and Freshet closes and
//! creates exactly the tasks it moves, no others (no eager revoke-all); every count is exact,
//! under at-least-once and exactly_once_v2 (none duplicated).
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::create_topics;
use freshet_tests::streams_groups::{
    MemberRow, wait_counts_exact, wait_stable, write_count_manifest,
};
use freshet_tests::{kafka_bootstrap, unique_name};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

const KEYS: usize = 24;
const PARTITIONS: i32 = 12;

/// Sends one record per key a round, every 20 ms, until `stop`; returns the rounds sent.
fn steady_input(topic: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<i64> {
    std::thread::spawn(move || {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", kafka_bootstrap())
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        let mut rounds = 0;
        while !stop.load(Ordering::Relaxed) {
            for k in 0..KEYS {
                let key = format!("k{k}");
                producer
                    .send(BaseRecord::<str, str>::to(&topic).key(&key).payload("x"))
                    .map_err(|(e, _)| e)
                    .expect("send");
            }
            rounds += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
        rounds
    })
}

fn occurrences(engines: &[&EngineProcess], what: &str) -> usize {
    engines
        .iter()
        .map(|e| e.log_text().lines().filter(|l| l.contains(what)).count())
        .sum()
}

/// Waits until `engines` logged `what` `expected` more times than `before` (the broker lists a
/// task as assigned when it sends it; the engine logs it once created or closed), then checks
/// it is no more.
fn wait_logged(engines: &[&EngineProcess], what: &str, before: usize, expected: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = occurrences(engines, what) - before;
        if n >= expected {
            std::thread::sleep(Duration::from_secs(1));
            let n = occurrences(engines, what) - before;
            assert_eq!(
                n, expected,
                "`{what}` logged {n} times for {expected} tasks moved"
            );
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`{what}` logged {n} times, not {expected}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Tasks per process id.
fn owners(rows: &[MemberRow]) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let mut out: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for r in rows {
        out.entry(r.process.clone())
            .or_default()
            .extend(r.active.iter().cloned());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn scaling_two_three_two_moves_only_the_assigned_tasks() {
    scale("at_least_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scaling_two_three_two_exactly_once() {
    scale("exactly_once_v2").await;
}

async fn scale(guarantee: &str) {
    let app = unique_name("sgscale");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS)]).await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = |name: &str| {
        let path = dir.path().join(format!("{name}.yaml"));
        write_count_manifest(
            &path,
            &app,
            (&input, &output),
            guarantee,
            1,
            &dir.path().join(name),
        );
        path
    };
    let all: BTreeSet<String> = (0..PARTITIONS).map(|p| format!("0_{p}")).collect();
    let started = std::time::Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = steady_input(input.clone(), stop.clone());

    let (ma, mb, mc) = (manifest("a"), manifest("b"), manifest("c"));
    let mut a = EngineProcess::start(&ma, &[], &[]);
    let mut b = EngineProcess::start(&mb, &[], &[]);
    a.wait_ready(Duration::from_secs(60));
    b.wait_ready(Duration::from_secs(60));
    let two = owners(&wait_stable(&app, 2, &all));
    let closed_before = occurrences(&[&a, &b], "task closed");

    // 2 -> 3: the new instance gets tasks; the others close exactly those, no more.
    let mut c = EngineProcess::start(&mc, &[], &[]);
    c.wait_ready(Duration::from_secs(60));
    let three = owners(&wait_stable(&app, 3, &all));
    let new_process: Vec<&String> = three.keys().filter(|p| !two.contains_key(*p)).collect();
    assert_eq!(new_process.len(), 1, "{three:?}");
    let to_c = &three[new_process[0]];
    assert!(
        !to_c.is_empty(),
        "the third instance got no task: {three:?}"
    );
    let moved: usize = two
        .iter()
        .map(|(p, tasks)| {
            tasks
                .difference(three.get(p).unwrap_or(&BTreeSet::new()))
                .count()
        })
        .sum();
    assert_eq!(
        moved,
        to_c.len(),
        "tasks moved other than to the new instance: {two:?} -> {three:?}"
    );
    wait_logged(&[&a, &b], "task closed", closed_before, to_c.len());
    wait_logged(&[&c], "task created", 0, to_c.len());

    // 3 -> 2: the leaving instance's tasks go back; the others keep theirs.
    let created_before = occurrences(&[&a, &b], "task created");
    c.terminate(Duration::from_secs(30));
    wait_stable(&app, 2, &all);
    wait_logged(&[&a, &b], "task created", created_before, to_c.len());

    stop.store(true, Ordering::Relaxed);
    let rounds = writer.join().expect("writer");
    wait_counts_exact(&output, KEYS, rounds);
    eprintln!(
        "scaling 2 -> 3 -> 2 ({guarantee}): {} of {} tasks moved each way, {rounds} records per key counted exactly, in {:.1} s",
        to_c.len(),
        all.len(),
        started.elapsed().as_secs_f64()
    );
    a.terminate(Duration::from_secs(30));
    b.terminate(Duration::from_secs(30));
}
