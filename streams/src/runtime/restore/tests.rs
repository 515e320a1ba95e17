//! Opening and restoring a task's stores: checkpoints, corruption, unopenable stores, a broker
//! that is away.

use std::collections::BTreeMap;

use super::*;
use crate::config::{Layer, LayerSource, StreamsConfig};
use freshet_spec::{Defaults, compile, parse_manifest};

/// An application whose one task has a RocksDB store that is not logged: opening it needs
/// no broker.
pub(crate) fn unlogged_app(
    guarantee: &str,
    dir: &tempfile::TempDir,
) -> crate::runtime::KafkaStreams {
    let spec = parse_manifest(
        r#"
applicationId: ckpt
bootstrapServers: 127.0.0.1:1
topology:
  streams: [{ name: input, topic: input }]
  pipelines:
    - name: counts
      from: input
      steps:
        - groupByKey: {}
        - count: { store: counts, logging: false }
"#,
    )
    .unwrap();
    let topology = compile(
        &spec.topology,
        Defaults {
            key_serde: "string".into(),
            value_serde: "string".into(),
            registry: None,
            application_id: "ckpt".into(),
        },
    )
    .unwrap();
    let entries: BTreeMap<String, String> = [
        ("application.id", "ckpt"),
        ("bootstrap.servers", "127.0.0.1:1"),
        ("processing.guarantee", guarantee),
        ("state.dir", dir.path().to_str().unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = StreamsConfig::resolve(&[Layer::new(LayerSource::Config, entries)]).unwrap();
    crate::runtime::KafkaStreams::new(topology, config, None)
}

fn open_with_checkpoint(guarantee: &str) -> (tempfile::TempDir, Offsets, Offsets) {
    let dir = tempfile::tempdir().unwrap();
    let app = unlogged_app(guarantee, &dir);
    let sub = &app.topology.subtopologies()[0];
    let task_dir = dir.path().join("ckpt").join("0_0");
    std::fs::create_dir_all(&task_dir).unwrap();
    let checkpoint = Checkpoint::in_directory(&task_dir);
    let mut offsets = Offsets::new();
    offsets.insert(("ckpt-other-changelog".into(), 0), 7);
    checkpoint.write(&offsets).unwrap();
    let restored = open_and_restore(&app.topology, sub, 0, "0_0", &app.shared, None, None).unwrap();
    let left = checkpoint.read().unwrap();
    drop(restored);
    (dir, offsets, left)
}

#[test]
fn exactly_once_deletes_the_checkpoint_before_processing() {
    let (_dir, _written, left) = open_with_checkpoint("exactly_once_v2");
    assert!(
        left.is_empty(),
        "a crash from here on must restore from the changelog"
    );
}

#[test]
fn at_least_once_keeps_the_checkpoint() {
    let (_dir, written, left) = open_with_checkpoint("at_least_once");
    assert_eq!(left, written);
}

/// Fills `dir` with files RocksDB cannot make sense of, as a crash mid-write or a bad disk
/// leaves them.
fn garbage_store(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    for file in ["CURRENT", "MANIFEST-000005", "000004.sst", "OPTIONS-000007"] {
        std::fs::write(dir.join(file), b"\x00garbage, not RocksDB\xff").unwrap();
    }
}

#[test]
fn a_store_rocksdb_cannot_open_is_wiped_forgotten_by_the_checkpoint_and_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let app = unlogged_app("at_least_once", &dir);
    let sub = &app.topology.subtopologies()[0];
    let defs = app.topology.stores_of(sub);
    let state = app.shared.stores.as_ref().unwrap();
    let task_dir = state.directory.lock_task("0_0").unwrap();
    let path = task_dir.path().join("rocksdb").join("counts");
    garbage_store(&path);
    let checkpoint = Checkpoint::in_directory(task_dir.path());
    let mut checkpointed = Offsets::new();
    checkpointed.insert(("ckpt-counts-changelog".into(), 0), 41);
    checkpointed.insert(("ckpt-other-changelog".into(), 0), 7);
    checkpoint.write(&checkpointed).unwrap();
    let task = TaskContext {
        id: "0_0",
        partition: 0,
        shared: &app.shared,
        cancel: None,
        progress: None,
    };
    let store = open_rocksdb(
        &task,
        defs[0],
        &path,
        Some("ckpt-counts-changelog"),
        state,
        &checkpoint,
        &mut checkpointed,
    )
    .expect("wiped and opened again");
    assert_eq!(store.get(b"anything").unwrap(), None, "an empty store");
    let mut left = Offsets::new();
    left.insert(("ckpt-other-changelog".into(), 0), 7);
    assert_eq!(checkpointed, left);
    assert_eq!(
        checkpoint.read().unwrap(),
        left,
        "the checkpoint on disk no longer vouches for the wiped store"
    );
    let metrics = app.shared.metrics.encode();
    assert!(
        metrics.contains(
            r#"freshet_task_corrupted_total{task="0_0",store="counts",reason="store_unopenable"} 1"#
        ),
        "{metrics}"
    );
}

#[test]
fn a_store_without_changelog_that_cannot_open_is_left_alone_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let app = unlogged_app("at_least_once", &dir);
    let sub = &app.topology.subtopologies()[0];
    let path = dir
        .path()
        .join("ckpt")
        .join("0_0")
        .join("rocksdb")
        .join("counts");
    garbage_store(&path);
    let Err(e) = open_and_restore(&app.topology, sub, 0, "0_0", &app.shared, None, None) else {
        panic!("a store RocksDB cannot open was opened");
    };
    assert!(
        matches!(e, RestoreError::UnloggedUnopenable { .. }),
        "{e:?}"
    );
    let message = e.to_string();
    assert!(
        message.contains("state store 'counts'")
            && message.contains(&path.display().to_string())
            && message.contains("logging: false"),
        "{message}"
    );
    assert!(path.join("CURRENT").exists(), "its files are kept");
}

/// A consumer of a broker address where nothing listens: every request fails as when the
/// broker is away.
fn consumer_without_broker() -> BaseConsumer {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("group.id", "restore-test")
        .set("auto.offset.reset", "error")
        .create()
        .unwrap()
}

#[test]
fn a_broker_that_is_away_is_waited_for_up_to_the_limit() {
    let consumer = consumer_without_broker();
    let patience = Patience {
        limit: Duration::from_secs(2),
        limit_name: "task.timeout.ms",
        what: "restoring store 'counts' of task 0_0",
        stop: None,
    };
    let started = Instant::now();
    let e = read::watermarks(&consumer, "app-counts-changelog", 0, &patience).unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(e, ReadError::TimedOut { .. }),
        "a transient error ends only after the limit: {e:?}"
    );
    assert!(waited >= Duration::from_secs(2), "gave up after {waited:?}");
    assert!(e.to_string().contains("(task.timeout.ms)"), "{e}");

    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("app-counts-changelog", 0, Offset::Offset(0))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let started = Instant::now();
    let ends = HashMap::from([(("app-counts-changelog".to_owned(), 0), 10)]);
    let e = read::read_to_end(&consumer, ends, &patience, |_| Ok(())).unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(e, ReadError::Stalled(_)), "{e:?}");
    assert!(waited >= Duration::from_secs(2), "gave up after {waited:?}");
    assert!(
        matches!(&e, ReadError::Stalled(stall) if stall.last_error.is_some()),
        "the broker's absence showed as errors, which were waited out: {e:?}"
    );
    let message = e.to_string();
    assert!(
        message.contains("(task.timeout.ms)")
            && message.contains("app-counts-changelog-0 up to offset 10"),
        "{message}"
    );
}

#[test]
fn with_no_task_timeout_the_first_transient_error_fails_the_read() {
    let consumer = consumer_without_broker();
    let patience = Patience {
        limit: Duration::ZERO,
        limit_name: "task.timeout.ms",
        what: "restoring store 'counts' of task 0_0",
        stop: None,
    };
    let e = read::watermarks(&consumer, "app-counts-changelog", 0, &patience).unwrap_err();
    assert!(matches!(e, ReadError::TimedOut { .. }), "{e:?}");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("app-counts-changelog", 0, Offset::Offset(0))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let started = Instant::now();
    let ends = HashMap::from([(("app-counts-changelog".to_owned(), 0), 10)]);
    let e = read::read_to_end(&consumer, ends, &patience, |_| Ok(())).unwrap_err();
    assert!(matches!(e, ReadError::Consume(_)), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
