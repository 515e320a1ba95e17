//! A mixed streams group (KIP-1071): a Java Kafka Streams 4.4 instance
//! (tests/tests/streams_group/MixedCount.java, on the reference classpath) and a Freshet engine
//! with the same topology and application id share the tasks; when the Java instance leaves its
//! tasks move to Freshet, restored from the changelog Java wrote, and when a Java instance joins
//! again tasks move back, restored from Freshet's changelog. Every count is exact, under
//! at-least-once and exactly_once_v2.
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use freshet_tests::apps::send_batch;
use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::create_topics;
use freshet_tests::streams_groups::{
    engine_threads, wait_counts_exact, wait_stable, write_count_manifest,
};
use freshet_tests::{kafka_bootstrap, repo_root, unique_name};

const KEYS: usize = 8;
const EACH: usize = 50;
const PARTITIONS: i32 = 4;

/// A Java Kafka Streams instance of the count; it closes when its standard input closes.
fn java_instance(app: &str, state_dir: &std::path::Path, guarantee: &str) -> Child {
    let classpath = std::env::var("FRESHET_REFERENCE_CLASSPATH").expect(
        "FRESHET_REFERENCE_CLASSPATH (source /work/env.sh, or `make test`, which builds the reference)",
    );
    let log = std::fs::File::create(std::env::temp_dir().join(format!("{app}-java.log"))).unwrap();
    Command::new("java")
        .args(["-Xmx256m", "-cp", &classpath])
        .arg(repo_root().join("tests/tests/streams_group/MixedCount.java"))
        .args([
            &kafka_bootstrap(),
            app,
            &format!("{app}-in"),
            &format!("{app}-out"),
            &state_dir.display().to_string(),
            guarantee,
        ])
        .stdin(Stdio::piped())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("java")
}

/// Closes a Java instance cleanly (its tasks committed, the group left) and waits for it.
fn close_java(mut child: Child) {
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.flush();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("java status").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the Java instance did not close"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn java_and_freshet_share_a_streams_group_and_hand_tasks_over() {
    hand_over("at_least_once").await;
}

/// The same under exactly_once_v2 on both sides: none duplicated.
#[tokio::test(flavor = "multi_thread")]
async fn java_and_freshet_hand_tasks_over_exactly_once() {
    hand_over("exactly_once_v2").await;
}

async fn hand_over(guarantee: &str) {
    let app = unique_name("sgmixed");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(&[(&input, PARTITIONS), (&output, PARTITIONS)]).await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("app.yaml");
    write_count_manifest(
        &manifest,
        &app,
        (&input, &output),
        guarantee,
        1,
        &dir.path().join("freshet"),
    );
    let all: BTreeSet<String> = (0..PARTITIONS).map(|p| format!("0_{p}")).collect();
    let started = std::time::Instant::now();

    let java = java_instance(&app, &dir.path().join("java-1"), guarantee);
    let mut freshet = EngineProcess::start(&manifest, &[], &[]);
    freshet.wait_ready(Duration::from_secs(60));
    let rows = wait_stable(&app, 2, &all);
    // Both name their clients as Kafka Streams does; Freshet's process id is on its /topology.
    let freshet_process = engine_threads(&freshet).process;
    let freshet_client = format!("{app}-{freshet_process}-StreamThread-1-consumer");
    let freshet_row = rows
        .iter()
        .find(|r| r.client_id == freshet_client)
        .unwrap_or_else(|| panic!("no Freshet member {freshet_client}: {rows:#?}"));
    let java_tasks: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.member != freshet_row.member)
        .flat_map(|r| r.active.iter().cloned())
        .collect();
    assert!(!java_tasks.is_empty(), "Java got no task: {rows:#?}");
    assert!(
        !freshet_row.active.is_empty(),
        "Freshet got no task: {rows:#?}"
    );
    send_batch(&input, KEYS, EACH, false);
    wait_counts_exact(&output, KEYS, EACH as i64);

    // Java leaves: its tasks move to Freshet, which restores them from Java's changelog.
    close_java(java);
    let rows = wait_stable(&app, 1, &all);
    assert_eq!(rows[0].client_id, freshet_client);
    send_batch(&input, KEYS, EACH, false);
    wait_counts_exact(&output, KEYS, 2 * EACH as i64);
    let log = freshet.log_text();
    for task in &java_tasks {
        assert!(
            log.contains(&format!("task={task}")),
            "Freshet never ran {task}"
        );
    }

    // A Java instance joins again: tasks move back, restored from Freshet's changelog.
    let java = java_instance(&app, &dir.path().join("java-2"), guarantee);
    let rows = wait_stable(&app, 2, &all);
    let back: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.client_id != freshet_client)
        .flat_map(|r| r.active.iter().cloned())
        .collect();
    assert!(!back.is_empty(), "no task moved back to Java: {rows:#?}");
    send_batch(&input, KEYS, EACH, false);
    wait_counts_exact(&output, KEYS, 3 * EACH as i64);
    eprintln!(
        "mixed streams group ({guarantee}): Java {java_tasks:?} -> Freshet -> Java {back:?}, counts exact, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    close_java(java);
    freshet.terminate(Duration::from_secs(30));
}
