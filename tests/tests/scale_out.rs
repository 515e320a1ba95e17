//! Two `freshet-engine run` processes with one application id share a 6-partition input; killing
//! one with SIGKILL loses nothing (at-least-once: duplicates allowed, losses not).
use std::collections::BTreeMap;
use std::time::Duration;

use freshet_tests::engine::{EngineProcess, tasks_created};
use freshet_tests::kafka::{KeyValue, consume, create_topics, produce};
use freshet_tests::{kafka_bootstrap, unique_name};

const N: usize = 3_000;

fn write_records(topic: &str, from: usize, to: usize) {
    let owned: Vec<(String, String)> = (from..to)
        .map(|i| (format!("k{i}"), format!(r#"{{"i":{i}}}"#)))
        .collect();
    let refs: Vec<KeyValue<'_>> = owned
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes())))
        .collect();
    produce(topic, &refs, 1_000);
}

fn count_keys(records: &[freshet_tests::kafka::Received]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.key_str().to_owned()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_split_the_work_and_survive_a_sigkill() {
    let (input, output) = (unique_name("scale-in"), unique_name("scale-out"));
    create_topics(&[(&input, 6), (&output, 6)]).await;
    let manifest = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(
        manifest.path(),
        format!(
            r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: json
config:
  commit.interval.ms: "100"
  # Shortened for the test: a killed static member's partitions move after 6 s, not 45 s.
  session.timeout.ms: "6000"
  heartbeat.interval.ms: "1000"
topology:
  streams:
    - {{ name: input, topic: {input} }}
  pipelines:
    - name: copy
      from: input
      steps:
        - mapValues: "{{'i': value.i, 'seen': true}}"
        - to: {{ topic: {output} }}
"#,
            app = unique_name("scale"),
            bootstrap = kafka_bootstrap(),
        ),
    )
    .unwrap();

    // Nothing fails: every output exactly once.
    write_records(&input, 0, N);
    let mut a = EngineProcess::start(manifest.path(), &[], &[("POD_NAME", "engine-a")]);
    let mut b = EngineProcess::start(manifest.path(), &[], &[("POD_NAME", "engine-b")]);
    a.wait_ready(Duration::from_secs(60));
    b.wait_ready(Duration::from_secs(60));
    let first = consume(&output, N, Duration::from_secs(90), Duration::from_secs(2));
    let counts = count_keys(&first);
    assert_eq!(counts.len(), N, "every input key has its output");
    assert!(
        counts.values().all(|&c| c == 1),
        "an output was written twice without any failure"
    );

    // Both processes hold tasks, and together all six.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (ta, tb) = (tasks_created(&a.log_text()), tasks_created(&b.log_text()));
        if !ta.is_empty() && !tb.is_empty() {
            let mut all: Vec<String> = ta.iter().chain(&tb).cloned().collect();
            all.sort();
            all.dedup();
            assert_eq!(all, ["0_0", "0_1", "0_2", "0_3", "0_4", "0_5"]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tasks not split: a={ta:?} b={tb:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Kill one mid-stream: the other takes over and nothing is lost.
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || {
            for chunk in 0..10 {
                write_records(&input, N + chunk * 300, N + (chunk + 1) * 300);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    a.kill();
    writer.join().unwrap();
    let all = consume(
        &output,
        2 * N,
        Duration::from_secs(120),
        Duration::from_secs(2),
    );
    let counts = count_keys(&all);
    let missing: Vec<String> = (0..2 * N)
        .map(|i| format!("k{i}"))
        .filter(|k| !counts.contains_key(k))
        .collect();
    assert!(
        missing.is_empty(),
        "lost {} records, e.g. {:?}; survivor log:\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        b.log_text()
    );
    let survivor_tasks = tasks_created(&b.log_text());
    assert!(
        survivor_tasks.len() >= 6,
        "the survivor took over every task: {survivor_tasks:?}"
    );
    assert!(
        b.terminate(Duration::from_secs(60)).success(),
        "{}",
        b.log_text()
    );
}
