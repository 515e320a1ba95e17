//! group.protocol=streams (KIP-1071) against the real broker: Freshet's stream threads are
//! members of a Kafka streams group, the broker assigns their tasks, Kafka's own
//! `kafka-streams-groups` tool (StreamsGroupCommand) lists each of them with its active tasks,
//! and a count stays exact (at-least-once, no failure) while a second instance joins and takes
//! tasks over.
use std::collections::BTreeSet;
use std::time::Duration;
use std::time::Instant;

use freshet_tests::apps::send_batch;
use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::create_topics;
use freshet_tests::streams_groups::{
    MemberRow, describe_members, engine_threads, wait_counts_exact, wait_engine_matches,
    wait_stable, write_count_manifest, write_count_manifest_as,
};
use freshet_tests::unique_name;

const KEYS: usize = 8;
const EACH: usize = 50;
const PARTITIONS: i32 = 4;

#[tokio::test(flavor = "multi_thread")]
async fn freshet_threads_are_streams_group_members_kafka_tools_list() {
    members_share_tasks_and_count_exactly("at_least_once").await;
}

/// Under exactly_once_v2 the consumed offsets go with each transaction as the member (its id
/// and epoch, which the coordinator checks): the counts are exact, none duplicated.
#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_commits_as_the_streams_group_member() {
    members_share_tasks_and_count_exactly("exactly_once_v2").await;
}

async fn members_share_tasks_and_count_exactly(guarantee: &str) {
    let app = unique_name("sgroup");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS)]).await;
    let state = tempfile::tempdir().unwrap();
    let manifest = |threads: usize, instance: &str| {
        let state_dir = state.path().join(instance);
        let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        write_count_manifest(
            file.path(),
            &app,
            (&input, &output),
            guarantee,
            threads,
            &state_dir,
        );
        file
    };
    let all_tasks: BTreeSet<String> = (0..PARTITIONS).map(|p| format!("0_{p}")).collect();

    let (ma, mb) = (manifest(2, "a"), manifest(1, "b"));
    let started = Instant::now();
    send_batch(&input, KEYS, EACH, false);
    let mut a = EngineProcess::start(ma.path(), &[], &[]);
    a.wait_ready(Duration::from_secs(60));
    wait_counts_exact(&output, KEYS, EACH as i64);
    let rows = wait_stable(&app, 2, &all_tasks);
    let process_a = rows[0].process.clone();
    for r in &rows {
        assert_eq!(r.protocol, "streams", "{r:?}");
        assert_eq!(
            r.process, process_a,
            "one process for both threads: {rows:#?}"
        );
        assert!(!r.active.is_empty(), "a thread without tasks: {rows:#?}");
    }
    // Kafka Streams' client ids: `<application.id>-<process id>-StreamThread-<n>-consumer`.
    let clients: BTreeSet<&str> = rows.iter().map(|r| r.client_id.as_str()).collect();
    assert_eq!(
        clients,
        BTreeSet::from([
            format!("{app}-{process_a}-StreamThread-1-consumer").as_str(),
            format!("{app}-{process_a}-StreamThread-2-consumer").as_str()
        ])
    );
    // The engine's /topology lists each thread with the same client id and the tasks the
    // group gives it.
    wait_engine_matches(&a, &rows);

    // A second instance joins: the broker moves tasks to it, the revoked ones committed first,
    // and the count stays exact.
    let mut b = EngineProcess::start(mb.path(), &[], &[]);
    b.wait_ready(Duration::from_secs(60));
    let rows = wait_stable(&app, 3, &all_tasks);
    let b_rows: Vec<&MemberRow> = rows.iter().filter(|r| r.process != process_a).collect();
    assert_eq!(b_rows.len(), 1, "{rows:#?}");
    assert_eq!(
        b_rows[0].client_id,
        format!("{app}-{}-StreamThread-1-consumer", b_rows[0].process)
    );
    assert!(
        !b_rows[0].active.is_empty(),
        "the new instance got no task: {rows:#?}"
    );
    let members: BTreeSet<&str> = rows.iter().map(|r| r.member.as_str()).collect();
    assert_eq!(members.len(), 3, "{rows:#?}");
    // Each member reported its tasks' offsets with the heartbeat acknowledging its last
    // assignment (per task: changelog position and end offset sums), and the coordinator keeps
    // them: every active task of every member, no end offset below its position.
    for m in describe_members(&app) {
        eprintln!(
            "{}: task offsets {:?}, end offsets {:?}",
            m.client_id, m.task_offsets, m.task_end_offsets
        );
        let reported: BTreeSet<String> = m.task_offsets.keys().cloned().collect();
        assert_eq!(reported, m.active, "task offsets of {m:#?}");
        for (task, offset) in &m.task_offsets {
            let end = m.task_end_offsets.get(task);
            assert!(
                *offset >= 0 && end.is_some_and(|e| e >= offset),
                "task {task}: offset {offset}, end {end:?}: {m:#?}"
            );
        }
    }
    wait_engine_matches(&a, &rows);
    wait_engine_matches(&b, &rows);
    send_batch(&input, KEYS, EACH, false);
    wait_counts_exact(&output, KEYS, 2 * EACH as i64);
    // The tasks each engine runs are those the broker lists for it.
    let b_log = b.log_text();
    for task in &b_rows[0].active {
        assert!(
            b_log.contains(&format!("task={task}")),
            "instance B runs no task {task}: {b_log}"
        );
    }
    eprintln!(
        "streams group ({guarantee}): 2 then 3 members, counts exact, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    a.terminate(Duration::from_secs(30));
    b.terminate(Duration::from_secs(30));
}

/// `group.protocol=auto` against the project's broker (Kafka 4.4, whose ApiVersions list
/// StreamsGroupHeartbeat): the engine says it chose streams, Kafka's tool lists its thread as a
/// streams member with every task, and the count is exact.
#[tokio::test(flavor = "multi_thread")]
async fn auto_chooses_streams_where_the_broker_runs_streams_groups() {
    let app = unique_name("sgroup-auto");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS)]).await;
    let state = tempfile::tempdir().unwrap();
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    write_count_manifest_as(
        file.path(),
        &app,
        (&input, &output),
        "at_least_once",
        1,
        state.path(),
        "auto",
    );
    send_batch(&input, KEYS, EACH, false);
    let mut engine = EngineProcess::start(file.path(), &[], &[]);
    engine.wait_ready(Duration::from_secs(60));
    wait_counts_exact(&output, KEYS, EACH as i64);
    let all_tasks: BTreeSet<String> = (0..PARTITIONS).map(|p| format!("0_{p}")).collect();
    let rows = wait_stable(&app, 1, &all_tasks);
    assert_eq!(rows[0].protocol, "streams", "{rows:#?}");
    let threads = wait_engine_matches(&engine, &rows);
    assert_eq!(engine_threads(&engine), threads);
    let log = engine.log_text();
    assert!(
        log.contains("group.protocol=auto: using streams"),
        "no INFO line saying auto chose streams:\n{log}"
    );
    engine.terminate(Duration::from_secs(30));
}

/// `group.protocol=auto` where the streams-group client cannot connect as the consumer is
/// configured (Kerberos): the engine says it chose classic and why, instead of refusing the
/// manifest as `streams` does. (librdkafka then fails on Kerberos itself, which is not this
/// test's point.)
#[test]
fn auto_chooses_classic_where_the_streams_group_client_cannot_connect() {
    let app = unique_name("sgroup-auto-classic");
    let state = tempfile::tempdir().unwrap();
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    write_count_manifest_as(
        file.path(),
        &app,
        (&format!("{app}-in"), &format!("{app}-out")),
        "at_least_once",
        1,
        state.path(),
        "auto",
    );
    let mut engine = EngineProcess::start(
        file.path(),
        &["--error-linger-seconds", "0"],
        &[("FRESHET_CONFIG_SECURITY_PROTOCOL", "SASL_PLAINTEXT")],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let log = loop {
        let log = engine.log_text();
        if log.contains("group.protocol=auto: using classic") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    engine.kill();
    assert!(
        log.contains("group.protocol=auto: using classic") && log.contains("sasl.mechanism=GSSAPI"),
        "no INFO line saying auto chose classic, and why:\n{log}"
    );
}

/// An application that ran in a classic group (Kafka Streams' default protocol, or Freshet
/// before `auto` became the default) and is started again under `auto`, the default: the engine
/// keeps the classic group, says so, and carries on from the offsets committed there (a count
/// exact over both runs: nothing read twice, nothing skipped).
#[tokio::test(flavor = "multi_thread")]
async fn auto_keeps_an_application_in_the_classic_group_it_ran_in() {
    let app = unique_name("sgroup-auto-keeps");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS)]).await;
    let state = tempfile::tempdir().unwrap();
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    let manifest = |protocol: &str| {
        write_count_manifest_as(
            file.path(),
            &app,
            (&input, &output),
            "at_least_once",
            1,
            state.path(),
            protocol,
        )
    };
    manifest("classic");
    send_batch(&input, KEYS, EACH, false);
    let mut first = EngineProcess::start(file.path(), &[], &[]);
    first.wait_ready(Duration::from_secs(60));
    wait_counts_exact(&output, KEYS, EACH as i64);
    first.terminate(Duration::from_secs(30));

    manifest("auto");
    send_batch(&input, KEYS, EACH, false);
    let mut second = EngineProcess::start(file.path(), &[], &[]);
    second.wait_ready(Duration::from_secs(60));
    wait_counts_exact(&output, KEYS, 2 * EACH as i64);
    let log = second.log_text();
    assert!(
        log.contains("group.protocol=auto: using classic")
            && log.contains("exists as a classic group"),
        "no INFO line saying auto kept the classic group:\n{log}"
    );
    second.terminate(Duration::from_secs(30));
}

/// A stop asked for while `group.protocol=auto` still waits for the brokers to say whether they
/// run streams groups (here a listener that takes connections and never answers) ends the wait:
/// a pod told to stop while it starts must not outlive its grace period. Before the fix the
/// start went on probing for its whole minute, and only then did the close begin.
#[test]
fn a_stop_asked_for_while_auto_waits_for_the_brokers_ends_the_start() {
    use freshet_streams::config::{Layer, LayerSource, StreamsConfig};
    use freshet_streams::runtime::{KafkaStreams, State};

    // Never accepted: the kernel completes the connections, and no answer ever comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let entries: std::collections::BTreeMap<String, String> = [
        ("application.id", unique_name("sgroup-auto-stop")),
        (
            "bootstrap.servers",
            silent.local_addr().unwrap().to_string(),
        ),
        ("group.protocol", "auto".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = StreamsConfig::resolve(&[Layer::new(LayerSource::Config, entries)]).unwrap();
    let builder = freshet_streams::dsl::StreamsBuilder::new();
    builder.stream::<String, String>("in").to("out");
    let mut app = KafkaStreams::new(builder.build().unwrap(), config, None);
    let stop = app.stop_handle();
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs(1));
            stop.request_stop();
        });
        app.start();
    });
    let took = started.elapsed();
    // One probe's own 10 s timeout may run out first; the minute of retries must not.
    assert!(
        took < Duration::from_secs(15),
        "start went on for {took:?} though the stop was asked for after 1 s"
    );
    assert!(app.close(Duration::from_secs(10)), "the close finishes");
    assert_eq!(app.state(), State::NotRunning);
    assert!(app.error().is_none(), "no error: {:?}", app.error());
    drop(silent);
}
