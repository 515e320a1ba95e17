//! `freshet-engine reset` (issue 21) against the real broker: a counting app with a repartition
//! topic and a changelog runs, is reset to earliest, and runs again with outputs equal to the
//! first run's; `--dry-run` changes nothing (the group's offsets, the topics and the state
//! directory compared before and after); the reset refuses while the app runs.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use freshet_tests::apps::{BY_KEY, counting_app, read_counts, send_batch};
use freshet_tests::engine::{EngineProcess, engine_binary};
use freshet_tests::kafka::{Received, consume, create_topics};
use freshet_tests::{kafka_bootstrap, unique_name};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const KEYS: usize = 4;
const EACH: usize = 5;

/// `freshet-engine reset -f manifest --state-dir dir args...`: (exit code, stdout, stderr).
fn reset(manifest: &Path, state: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(engine_binary())
        .arg("reset")
        .arg("-f")
        .arg(manifest)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .env("FRESHET_LOG", "warn")
        .output()
        .expect("run freshet-engine reset");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The group's committed offsets on `topic` (partitions 0..partitions).
fn committed(group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("group client");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets")
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .collect()
}

/// The topics whose name starts with `prefix`, sorted.
fn topics_with(prefix: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("metadata client");
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    let mut out: Vec<String> = md
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|t| t.starts_with(prefix))
        .collect();
    out.sort();
    out
}

/// Every file under `dir` with its size, for "nothing changed".
fn files(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                out.insert(path.display().to_string(), size);
            }
        }
    }
    out
}

/// The count records per key, in order: with the cache off, every update is written.
fn per_key(records: &[Received]) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in records {
        let v = r.value.as_deref().expect("count");
        out.entry(r.key_str().to_owned())
            .or_default()
            .push(i64::from_be_bytes(v.try_into().expect("8-byte long")));
    }
    out
}

/// Records in the single-partition `output` (its end offset).
fn output_end(output: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("metadata client");
    consumer
        .fetch_watermarks(output, 0, Duration::from_secs(10))
        .expect("watermarks")
        .1
}

/// The end offset of partition `p` of `topic`.
fn partition_end(topic: &str, p: i32) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("metadata client");
    consumer
        .fetch_watermarks(topic, p, Duration::from_secs(10))
        .expect("watermarks")
        .1
}

/// Runs the app until `output` holds `total` records and every key's count reached [`EACH`],
/// then stops it with SIGTERM.
fn run_until_counted(manifest: &Path, state: &Path, output: &str, total: i64) {
    let state_arg = state.display().to_string();
    let mut engine = EngineProcess::start(manifest, &["--state-dir", &state_arg], &[]);
    engine.wait_ready(Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = read_counts(output);
        if output_end(output) >= total && c.len() == KEYS && c.values().all(|&n| n >= EACH as i64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "counts not reached: {c:?}; log:\n{}",
            engine.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = engine.terminate(Duration::from_secs(60));
    assert!(status.success(), "engine exit: {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_to_earliest_reproduces_the_first_run_and_dry_run_changes_nothing() {
    let started = Instant::now();
    let app_id = unique_name("reset");
    let input = unique_name("reset-in");
    let output = unique_name("reset-out");
    create_topics(&[(&input, 2), (&output, 1)]).await;
    // A repartition topic (groupBy) and a changelog: both internal topics the reset deletes.
    let app = counting_app(&app_id, &input, &output, "", "          - groupBy: \"key\"");
    let mut spec = serde_json::to_value(&app.spec).expect("spec");
    spec["config"]["statestore.cache.max.bytes"] = "0".into();
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = dir.path().join("app.yaml");
    std::fs::write(&manifest, serde_yaml_ng::to_string(&spec).expect("yaml")).expect("write");
    let state = dir.path().join("state");
    send_batch(&input, KEYS, EACH, false);

    // First run.
    run_until_counted(&manifest, &state, &output, (KEYS * EACH) as i64);
    let first = consume(
        &output,
        KEYS * EACH,
        Duration::from_secs(30),
        Duration::from_millis(500),
    );
    assert_eq!(first.len(), KEYS * EACH, "one update per record");
    let internal = topics_with(&format!("{app_id}-"));
    assert_eq!(
        internal.len(),
        2,
        "a repartition topic and a changelog: {internal:?}"
    );
    let offsets_before = committed(&app_id, &input, 2);
    assert_eq!(
        offsets_before.iter().flatten().sum::<i64>(),
        (KEYS * EACH) as i64,
        "the first run committed every input record"
    );
    let state_before = files(&state.join(&app_id));
    assert!(!state_before.is_empty(), "the first run left local state");

    // Refused while a member is active.
    let state_arg = state.display().to_string();
    let mut running = EngineProcess::start(&manifest, &["--state-dir", &state_arg], &[]);
    running.wait_ready(Duration::from_secs(60));
    let (code, _, err) = reset(&manifest, &state, &["--to-earliest"]);
    assert_eq!(code, 1, "refused while running: {err}");
    assert!(
        err.contains("active members") && err.contains("stop every instance"),
        "the refusal says why and what to do: {err}"
    );
    assert_eq!(
        topics_with(&format!("{app_id}-")),
        internal,
        "refused: nothing deleted"
    );
    let status = running.terminate(Duration::from_secs(60));
    assert!(status.success(), "engine exit: {status}");
    let offsets_stopped = committed(&app_id, &input, 2);
    let state_stopped = files(&state.join(&app_id));

    // Dry run: prints the plan, changes nothing.
    let (code, out, err) = reset(&manifest, &state, &["--to-earliest", "--dry-run"]);
    assert_eq!(code, 0, "dry run: {err}");
    println!("{out}");
    for t in &internal {
        assert!(
            out.contains(&format!("internal topic {t}: delete")),
            "dry run names {t}: {out}"
        );
    }
    assert!(
        out.contains(&format!("input topic {input} partition 0: offset")),
        "{out}"
    );
    assert!(out.contains("local state"), "{out}");
    assert!(out.contains("dry run: nothing changed"), "{out}");
    // The other modes, dry: where each input partition would go.
    let ends: Vec<i64> = (0..2).map(|p| partition_end(&input, p)).collect();
    for (args, want) in [
        (vec!["--to-latest"], ends.clone()),
        (vec!["--to-offset", "3"], vec![3, 3]),
        (vec!["--to-offset", "1000000"], ends.clone()),
        (
            vec!["--to-datetime", "2100-01-01T00:00:00.000Z"],
            ends.clone(),
        ),
        (
            vec!["--to-datetime", "2000-01-01T00:00:00.000Z"],
            vec![0, 0],
        ),
    ] {
        let mut all = args.clone();
        all.push("--dry-run");
        let (code, out, err) = reset(&manifest, &state, &all);
        assert_eq!(code, 0, "{args:?}: {err}");
        for (p, want) in want.iter().enumerate() {
            let line = format!("input topic {input} partition {p}: offset");
            let got = out
                .lines()
                .find(|l| l.contains(&line))
                .and_then(|l| l.rsplit("-> ").next())
                .and_then(|n| n.trim().parse::<i64>().ok());
            assert_eq!(got, Some(*want), "{args:?} partition {p}: {out}");
        }
    }
    let (code, _, err) = reset(&manifest, &state, &["--to-datetime", "yesterday"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--to-datetime") && err.contains("2026-12-07T04:30:00.000"),
        "{err}"
    );
    assert_eq!(
        committed(&app_id, &input, 2),
        offsets_stopped,
        "offsets kept"
    );
    assert_eq!(topics_with(&format!("{app_id}-")), internal, "topics kept");
    assert_eq!(files(&state.join(&app_id)), state_stopped, "state kept");

    // The reset.
    let (code, out, err) = reset(&manifest, &state, &["--to-earliest"]);
    assert_eq!(code, 0, "reset: {out}\n{err}");
    println!("{out}");
    assert_eq!(
        committed(&app_id, &input, 2),
        vec![Some(0), Some(0)],
        "input offsets at the log start"
    );
    assert!(
        topics_with(&format!("{app_id}-")).is_empty(),
        "internal topics deleted"
    );
    assert!(!state.join(&app_id).exists(), "local state wiped");

    // Second run: the same counts again, from 1, not added to the first run's.
    run_until_counted(&manifest, &state, &output, (2 * KEYS * EACH) as i64);
    let all = consume(
        &output,
        2 * KEYS * EACH,
        Duration::from_secs(30),
        Duration::from_millis(500),
    );
    assert_eq!(all.len(), 2 * KEYS * EACH, "the second run wrote as many");
    let second = &all[first.len()..];
    assert_eq!(
        per_key(second),
        per_key(&first),
        "outputs equal the first run"
    );
    println!("reset test took {:?}", started.elapsed());
}

/// `reset --dry-run` is refused while an engine of the app runs under `group.protocol=protocol`
/// (whose members librdkafka's classic describe may not see), and allowed once it stopped.
async fn refused_while_a_member_is_active(protocol: &str, prefix: &str) {
    let app_id = unique_name(prefix);
    let input = unique_name(&format!("{prefix}-in"));
    let output = unique_name(&format!("{prefix}-out"));
    create_topics(&[(&input, 2), (&output, 1)]).await;
    let app = counting_app(&app_id, &input, &output, "", BY_KEY);
    let mut spec = serde_json::to_value(&app.spec).expect("spec");
    spec["config"]["group.protocol"] = protocol.into();
    spec["config"]
        .as_object_mut()
        .expect("config")
        .remove("session.timeout.ms");
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = dir.path().join("app.yaml");
    std::fs::write(&manifest, serde_yaml_ng::to_string(&spec).expect("yaml")).expect("write");
    let state = dir.path().join("state");
    send_batch(&input, KEYS, EACH, false);
    run_until_counted(&manifest, &state, &output, KEYS as i64);
    let state_arg = state.display().to_string();
    let mut running = EngineProcess::start(&manifest, &["--state-dir", &state_arg], &[]);
    running.wait_ready(Duration::from_secs(60));
    let (code, _, err) = reset(&manifest, &state, &["--dry-run"]);
    assert_eq!(code, 1, "refused while running: {err}");
    assert!(err.contains("active members"), "{err}");
    let status = running.terminate(Duration::from_secs(60));
    assert!(status.success(), "engine exit: {status}");
    // A member that left is gone from the group at once (no session to wait out).
    let (code, out, err) = reset(&manifest, &state, &["--dry-run"]);
    assert_eq!(code, 0, "after the stop: {out}\n{err}");
    assert!(out.contains("dry run: nothing changed"), "{out}");
}

/// The new consumer group protocol (KIP-848): describe finds the active members there too.
#[tokio::test(flavor = "multi_thread")]
async fn reset_refuses_while_a_consumer_protocol_member_is_active() {
    refused_while_a_member_is_active("consumer", "reset-848").await;
}

/// A streams group (KIP-1071): librdkafka does not know it; StreamsGroupDescribe finds its
/// active members.
#[tokio::test(flavor = "multi_thread")]
async fn reset_refuses_while_a_streams_group_member_is_active() {
    refused_while_a_member_is_active("streams", "reset-1071").await;
}
