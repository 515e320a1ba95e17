//! Committed offsets held by another producer's open transaction (KIP-447): a read_committed
//! consumer cannot read them (`UNSTABLE_OFFSET_COMMIT`) until that transaction ends. An engine
//! assigned such partitions must say why it is not consuming, wait, and start them at the
//! committed offsets once they are readable: nothing skipped, nothing copied twice. Before, the
//! rebalance callback dropped the failed read and the thread reported RUNNING on positions it did
//! not know (after a broker restart, the fault suites saw it fetch nothing for minutes).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::{consume, create_topics, key_values, produce};
use freshet_tests::{kafka_bootstrap, unique_name};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const PARTITIONS: i32 = 3;
const BATCH: usize = 30;

fn manifest(dir: &std::path::Path, input: &str, output: &str) -> std::path::PathBuf {
    let text = format!(
        r#"applicationId: set-by-flag
bootstrapServers: set-by-flag
processingGuarantee: exactly_once_v2
defaultKeySerde: string
defaultValueSerde: string
topology:
  streams:
    - {{ name: input, topic: {input} }}
  pipelines:
    - name: copy
      from: input
      steps:
        - to: {{ topic: {output} }}
"#
    );
    let path = dir.join("copy.yaml");
    std::fs::write(&path, text).expect("write manifest");
    path
}

fn engine(
    manifest: &std::path::Path,
    app: &str,
    state: &std::path::Path,
    protocol: &str,
) -> EngineProcess {
    let bootstrap = kafka_bootstrap();
    let args = [
        "--bootstrap-servers",
        bootstrap.as_str(),
        "--application-id",
        app,
        "--state-dir",
        state.to_str().expect("UTF-8 path"),
    ];
    EngineProcess::start(
        manifest,
        &args,
        &[
            ("POD_NAME", "pending-0"),
            ("FRESHET_CONFIG_GROUP_PROTOCOL", protocol),
        ],
    )
}

/// Records `v{from}`… `v{to - 1}`, keyed by their number.
fn send(topic: &str, range: std::ops::Range<usize>) {
    let owned: Vec<(Vec<u8>, Vec<u8>)> = range
        .map(|i| (format!("k{i}").into_bytes(), format!("v{i}").into_bytes()))
        .collect();
    let refs = key_values(&owned);
    produce(topic, &refs, 0);
}

/// How many times each value is in `output`, once `count` records are there.
fn copies(output: &str, count: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for r in consume(
        output,
        count,
        Duration::from_secs(60),
        Duration::from_secs(2),
    ) {
        let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
        *seen.entry(value).or_insert(0) += 1;
    }
    seen
}

/// Opens a transaction of another producer that commits offsets for `group` on every input
/// partition (where they are now) and leaves it open: read_committed fetches of the group's
/// offsets get `UNSTABLE_OFFSET_COMMIT` until it ends.
fn hold_offsets(group: &str, input: &str) -> BaseProducer {
    let bootstrap = kafka_bootstrap();
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer for the group's metadata");
    let mut wanted = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        wanted.add_partition(input, p);
    }
    let committed = reader
        .committed_offsets(wanted, Duration::from_secs(10))
        .expect("the committed offsets before the hold");
    for e in committed.elements() {
        assert!(
            matches!(e.offset(), Offset::Offset(_)),
            "partition {} has no committed offset: {:?}",
            e.partition(),
            e.offset()
        );
    }
    let metadata = reader.group_metadata().expect("group metadata");
    let holder: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", unique_name("offset-holder"))
        .set("transaction.timeout.ms", "120000")
        .create()
        .expect("transactional producer");
    let timeout = Duration::from_secs(30);
    holder
        .init_transactions(timeout)
        .expect("init_transactions");
    holder.begin_transaction().expect("begin_transaction");
    holder
        .send_offsets_to_transaction(&committed, &metadata, timeout)
        .expect("send_offsets_to_transaction");
    holder
}

#[test]
fn committed_offsets_held_by_an_open_transaction_are_waited_for() {
    held_offsets_are_waited_for("classic");
}

/// The same under group.protocol=streams: the tasks the broker assigns wait for their offsets
/// while the member keeps heartbeating.
#[test]
fn a_streams_group_member_waits_for_offsets_held_by_an_open_transaction() {
    held_offsets_are_waited_for("streams");
}

fn held_offsets_are_waited_for(protocol: &str) {
    let (input, output) = (unique_name("pending-in"), unique_name("pending-out"));
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(create_topics(&[(&input, PARTITIONS), (&output, 1)]));
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = manifest(dir.path(), &input, &output);
    let app = unique_name("pending");
    let state = dir.path().join("state");

    // A first run copies and commits the first batch, then stops cleanly.
    send(&input, 0..BATCH);
    let mut first = engine(&manifest, &app, &state, protocol);
    first.wait_ready(Duration::from_secs(60));
    assert_eq!(
        copies(&output, BATCH).len(),
        BATCH,
        "the first batch copied"
    );
    let status = first.terminate(Duration::from_secs(60));
    assert!(status.success(), "the first run exited {status}");

    // Another producer holds the group's offsets in an open transaction.
    let holder = hold_offsets(&app, &input);
    send(&input, BATCH..2 * BATCH);
    let mut second = engine(&manifest, &app, &state, protocol);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !second.log_text().contains("could not be read") {
        assert!(
            Instant::now() < deadline,
            "no warning about the unreadable committed offsets; log:\n{}",
            second.log_text()
        );
        if let Ok(Some(status)) = second.child.try_wait() {
            panic!("the engine exited ({status}); log:\n{}", second.log_text());
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    // The transaction ends: the engine starts where the first run committed.
    holder
        .abort_transaction(Duration::from_secs(30))
        .expect("abort the holding transaction");
    let seen = copies(&output, 2 * BATCH);
    // librdkafka may have started some partitions itself once the offsets became stable; the
    // loop's next read (every 3 s) restarts the rest and says so (under group.protocol=streams,
    // the tasks start then: "... started at them").
    let restarted = "committed offsets read; the assigned partitions";
    let deadline = Instant::now() + Duration::from_secs(20);
    while !second.log_text().contains(restarted) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = second.log_text();
    let wrong: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        seen.len() == 2 * BATCH && wrong.is_empty(),
        "{} distinct values of {}, copied other than once: {wrong:?}; log:\n{log}",
        seen.len(),
        2 * BATCH
    );
    assert!(
        log.contains(restarted),
        "no restart at the committed offsets logged; log:\n{log}"
    );
    assert!(
        second.child.try_wait().ok().flatten().is_none(),
        "the engine exited; log:\n{log}"
    );
}
