//! Broken local state, detected and rebuilt (issue 15): a changelog recreated under a
//! checkpoint, a store RocksDB cannot open, a full state volume, and a broker that goes away
//! while a store restores. Each runs the engine binary against the test broker.
//!
//! The app counts records per key into the store `counts` (one partition, so one task, `0_0`);
//! stale local state would show as counts that go on from an old value. Record caches are off,
//! so every update reaches the changelog and the output.
//!
//! Root is needed, as `make test` runs: the read-only store directory and the 2 MiB state
//! volume are tmpfs mounts (unmounted when the test ends, failed or not), and the broker's
//! disappearance is an iptables rule dropping the engine's packets to it, matched by a group id
//! only the engine process has, so nothing else loses the broker.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use freshet_tests::engine::{EngineProcess, free_port, workspace_binary};
use freshet_tests::kafka::{KeyValue, Received, consume, create_topics, produce, wait_for_leaders};
use freshet_tests::{kafka_bootstrap, unique_name};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

/// One test's application: its topics, manifest and state directory.
struct App {
    dir: tempfile::TempDir,
    id: String,
    input: String,
    output: String,
    manifest: PathBuf,
    state: PathBuf,
}

impl App {
    /// A counting app with fresh topics; `config` adds lines to the manifest's `config:`.
    fn new(prefix: &str, config: &[(&str, &str)]) -> App {
        let dir = tempfile::tempdir().expect("tempdir");
        let (input, output) = (
            unique_name(&format!("{prefix}-in")),
            unique_name(&format!("{prefix}-out")),
        );
        runtime().block_on(create_topics(&[(input.as_str(), 1), (output.as_str(), 1)]));
        let extra: String = config
            .iter()
            .map(|(k, v)| format!("\n    {k}: \"{v}\""))
            .collect();
        let text = format!(
            r#"applicationId: set-by-flag
bootstrapServers: set-by-flag
defaultKeySerde: string
defaultValueSerde: string
config:
    commit.interval.ms: "100"
    statestore.cache.max.bytes: "0"{extra}
topology:
  streams:
    - {{ name: input, topic: {input} }}
  pipelines:
    - name: counts
      from: input
      steps:
        - groupByKey: {{}}
        - count: {{ store: counts }}
        - toStream: {{}}
        - to: {{ topic: {output}, valueSerde: long }}
"#
        );
        let manifest = dir.path().join("app.yaml");
        std::fs::write(&manifest, text).expect("write manifest");
        let state = dir.path().join("state");
        App {
            id: unique_name(prefix),
            input,
            output,
            manifest,
            state,
            dir,
        }
    }

    fn args(&self) -> Vec<String> {
        [
            "--bootstrap-servers",
            &kafka_bootstrap(),
            "--application-id",
            &self.id,
            "--state-dir",
            self.state.to_str().expect("UTF-8 path"),
            "--error-linger-seconds",
            "0",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn start(&self) -> EngineProcess {
        let args = self.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        EngineProcess::start(&self.manifest, &args, &[])
    }

    /// Starts the engine with `gid` as its group, which the network partition matches.
    fn start_in_group(&self, gid: u32) -> EngineProcess {
        let http_port = free_port();
        let log = self
            .dir
            .path()
            .join(format!("engine-{}.log", unique_name("gid")));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(workspace_binary("freshet-engine"))
            .arg("run")
            .arg("-f")
            .arg(&self.manifest)
            .args([
                "--http-port",
                &http_port.to_string(),
                "--http-address",
                "127.0.0.1",
            ])
            .args(self.args())
            .env("FRESHET_LOG", "info,librdkafka=warn")
            .gid(gid)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn the engine");
        EngineProcess {
            child,
            log,
            http_port,
        }
    }

    /// `state.dir/<application.id>/0_0`: the task's directory.
    fn task_dir(&self) -> PathBuf {
        self.state.join(&self.id).join("0_0")
    }

    fn changelog(&self) -> String {
        format!("{}-counts-changelog", self.id)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

/// `n` records of `key`.
fn records(key: &str, n: usize) -> Vec<KeyValue<'_>> {
    vec![(Some(key.as_bytes()), Some(&b"x"[..])); n]
}

/// (key, count) of count records, in order.
fn counts(records: &[Received]) -> Vec<(String, i64)> {
    records
        .iter()
        .map(|r| {
            let v: [u8; 8] = r
                .value
                .as_deref()
                .and_then(|v| v.try_into().ok())
                .unwrap_or_else(|| panic!("{r:?}: not a long"));
            (r.key_str().to_owned(), i64::from_be_bytes(v))
        })
        .collect()
}

/// The value of the sample of `/metrics` whose name and labels are `series`.
fn metric(engine: &EngineProcess, series: &str) -> Option<f64> {
    let (_, body) = engine.get("/metrics")?;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Waits for the engine to exit (it must, within `timeout`) and returns whether it failed.
fn wait_exit(engine: &mut EngineProcess, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = engine.child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the engine still runs after {timeout:?}; log:\n{}",
            engine.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the app until it has counted `a` ten times and `b` five times, then stops it cleanly:
/// its task directory then holds the store and a checkpoint.
fn first_run(app: &App) {
    let mut engine = app.start();
    engine.wait_ready(Duration::from_secs(60));
    produce(&app.input, &records("a", 10), 0);
    produce(&app.input, &records("b", 5), 10);
    let out = consume(
        &app.output,
        15,
        Duration::from_secs(60),
        Duration::from_millis(300),
    );
    let last: std::collections::BTreeMap<_, _> = counts(&out).into_iter().collect();
    assert_eq!(last["a"], 10, "{out:?}");
    assert_eq!(last["b"], 5, "{out:?}");
    let status = engine.terminate(Duration::from_secs(60));
    assert!(status.success(), "log:\n{}", engine.log_text());
    let checkpoint = std::fs::read_to_string(app.task_dir().join(".checkpoint"))
        .expect("a clean stop leaves a checkpoint");
    assert!(checkpoint.contains(&app.changelog()), "{checkpoint}");
}

/// Deletes `topic` and creates it again, compacted like a changelog, with one partition.
fn recreate_changelog(topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let rt = runtime();
    let deleted = rt
        .block_on(admin.delete_topics(&[topic], &opts))
        .expect("delete_topics request");
    for r in deleted {
        r.unwrap_or_else(|(t, e)| panic!("deleting {t}: {e}"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    loop {
        let created = rt
            .block_on(admin.create_topics([&new], &opts))
            .expect("create_topics request")
            .remove(0);
        match created {
            Ok(_) => break,
            // The deletion is still being applied.
            Err((_, e)) => {
                assert!(Instant::now() < deadline, "cannot recreate {topic}: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    wait_for_leaders(&[(topic, 1)]);
}

/// Deletes the records of `topic`-0 before offset `before` (Kafka's `DeleteRecords`).
fn delete_records(topic: &str, before: i64) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("admin client");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Offset(before))
        .expect("offset");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let done = runtime()
        .block_on(admin.delete_records(&tpl, &opts))
        .expect("delete_records request");
    for e in done.elements() {
        e.error()
            .unwrap_or_else(|err| panic!("deleting records of {topic}: {err}"));
    }
}

/// A tmpfs mounted at a directory for the test's length: unmounted when dropped, so a failing
/// test leaves no mount behind.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, options: &str) -> Mount {
        std::fs::create_dir_all(at).expect("mount point");
        run(
            "mount",
            &["-t", "tmpfs", "-o", options, "tmpfs", path_str(at)],
        );
        Mount(at.to_owned())
    }

    fn remount_read_only(&self) {
        run("mount", &["-o", "remount,ro", path_str(&self.0)]);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed (these tests need root, as make test runs): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What happens to the changelog under the stopped app's checkpoint.
#[derive(Clone, Copy, Debug)]
enum ChangelogFault {
    /// Deleted and created again, holding one record: the checkpoint is past its end.
    Recreated,
    /// Records after the checkpoint deleted (`DeleteRecords`, allowed as the changelog is
    /// created with `cleanup.policy=delete` here): the checkpoint is before its start.
    Truncated,
}

/// Stops the app with a checkpoint, breaks its changelog as `fault` says, leaving only records
/// that say a = 2, and restarts it: the corruption is logged and counted, and the counts go on
/// from the changelog (a = 2, no b), never from the stale store (a = 10, b = 5).
fn corrupted_changelog(fault: ChangelogFault) {
    let started = Instant::now();
    let app = App::new("corrupt-changelog", &[]);
    if let ChangelogFault::Truncated = fault {
        let topic = app.changelog();
        runtime().block_on(create_topics(&[(topic.as_str(), 1)]));
    }
    first_run(&app);
    // The changelog's record of a's second update seeds the broken changelog: the rebuilt
    // store must say a = 2 and know nothing of b, where the stale one says a = 10, b = 5.
    let changelog = consume(
        &app.changelog(),
        15,
        Duration::from_secs(30),
        Duration::ZERO,
    );
    let seed = changelog
        .iter()
        .filter(|r| r.key.as_deref() == Some(b"a"))
        .nth(1)
        .expect("a's second update in the changelog")
        .clone();
    let checkpointed: i64 = std::fs::read_to_string(app.task_dir().join(".checkpoint"))
        .expect("checkpoint")
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{} 0 ", app.changelog()))?
                .parse()
                .ok()
        })
        .expect("the changelog's offset in the checkpoint");
    let seed = (seed.key.as_deref(), seed.value.as_deref());
    let (range, reason, why) = match fault {
        ChangelogFault::Recreated => {
            recreate_changelog(&app.changelog());
            produce(&app.changelog(), &[seed], 0);
            (
                "holds offsets 0 to 1".to_owned(),
                "checkpoint_beyond_changelog_end",
                "checkpoint is beyond the changelog's end",
            )
        }
        ChangelogFault::Truncated => {
            // Five more records after the checkpoint, the first two of them deleted.
            produce(&app.changelog(), &[seed; 5], 100);
            let start = checkpointed + 3;
            delete_records(&app.changelog(), start);
            (
                format!("holds offsets {start} to {}", checkpointed + 6),
                "offset_out_of_range",
                "records the store needs were deleted from the changelog",
            )
        }
    };

    let mut engine = app.start();
    engine.wait_ready(Duration::from_secs(60));
    let log = engine.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("task 0_0 corrupted"))
        .unwrap_or_else(|| panic!("no corruption logged; log:\n{log}"));
    println!("logged: {line}");
    for part in [
        "WARN",
        "store 'counts'",
        &format!("{}-0", app.changelog()),
        &format!("its checkpoint says offset {checkpointed}"),
        &range,
        why,
    ] {
        assert!(line.contains(part), "{part:?} missing from: {line}");
    }
    assert_eq!(
        metric(
            &engine,
            &format!(
                r#"freshet_task_corrupted_total{{task="0_0",store="counts",reason="{reason}"}}"#
            )
        ),
        Some(1.0),
        "{:?}",
        engine.get("/metrics")
    );
    produce(&app.input, &records("a", 1), 100);
    produce(&app.input, &records("b", 1), 101);
    let out = consume(
        &app.output,
        17,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let after = counts(&out[15..]);
    assert_eq!(
        after,
        [("a".to_owned(), 3), ("b".to_owned(), 1)],
        "{fault:?}: counts after the restart must go on from the changelog (a = 2, no b), never from the stale store (a = 10, b = 5); log:\n{}",
        engine.log_text()
    );
    assert!(engine.terminate(Duration::from_secs(60)).success());
    println!(
        "{fault:?} changelog: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_recreated_changelog_marks_the_task_corrupted_and_no_stale_count_reaches_the_output() {
    corrupted_changelog(ChangelogFault::Recreated);
}

#[test]
fn records_deleted_after_the_checkpoint_mark_the_task_corrupted_and_no_stale_count_reaches_the_output()
 {
    corrupted_changelog(ChangelogFault::Truncated);
}

#[test]
fn a_store_rocksdb_cannot_open_is_wiped_and_restored_once_and_one_that_cannot_be_wiped_is_fatal() {
    let started = Instant::now();
    let app = App::new("corrupt-store", &[]);
    first_run(&app);
    let store = app.task_dir().join("rocksdb").join("counts");
    let mut overwritten = 0;
    for entry in std::fs::read_dir(&store).expect("the store's files") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::write(&path, b"\x00not RocksDB any more\xff").expect("overwrite");
            overwritten += 1;
        }
    }
    assert!(
        overwritten > 2,
        "{overwritten} files in {}",
        store.display()
    );

    let mut engine = app.start();
    engine.wait_ready(Duration::from_secs(60));
    let log = engine.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("state store 'counts' cannot be opened"))
        .unwrap_or_else(|| panic!("no wipe logged; log:\n{log}"));
    println!("logged: {line}");
    assert!(
        line.contains("WARN") && line.contains(path_str(&store)),
        "{line}"
    );
    assert_eq!(
        metric(
            &engine,
            r#"freshet_task_corrupted_total{task="0_0",store="counts",reason="store_unopenable"}"#
        ),
        Some(1.0)
    );
    produce(&app.input, &records("a", 1), 100);
    let out = consume(
        &app.output,
        16,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    assert_eq!(
        counts(&out[15..]),
        [("a".to_owned(), 11)],
        "the store is restored from its changelog: nothing lost; log:\n{}",
        engine.log_text()
    );
    assert!(engine.terminate(Duration::from_secs(60)).success());

    // A store on a volume gone read-only: it cannot be opened, nor wiped. Fatal, saying so.
    let mount = Mount::tmpfs(&store, "size=1m");
    std::fs::write(store.join("CURRENT"), b"garbage").expect("garbage CURRENT");
    mount.remount_read_only();
    let mut engine = app.start();
    let status = wait_exit(&mut engine, Duration::from_secs(60));
    let log = engine.log_text();
    assert!(!status.success(), "log:\n{log}");
    let expected = format!(
        "state store 'counts' in {} cannot be opened",
        store.display()
    );
    let line = log
        .lines()
        .find(|l| l.contains(&expected) && l.contains("wiping it failed"))
        .unwrap_or_else(|| panic!("no clear fatal error; log:\n{log}"));
    println!("fatal: {line}");
    drop(engine);
    drop(mount);
    println!("corrupted store: {:.1} s", started.elapsed().as_secs_f64());
}

/// Fills a 2 MiB state volume under processing handler `handler`; the engine must stop with an
/// error naming the directory and the fix, and commit nothing past the records whose writes
/// failed.
fn fill_the_state_volume(handler: &str) {
    let started = Instant::now();
    // Memtables of 256 KiB flush early, so the 2 MiB volume fills while records flow.
    let app = App::new(
        "full-volume",
        &[
            ("freshet.rocksdb.write.buffer.bytes", "262144"),
            ("processing.exception.handler", handler),
        ],
    );
    let _volume = Mount::tmpfs(&app.state, "size=2m");
    let mut engine = app.start();
    engine.wait_ready(Duration::from_secs(60));
    // 8,000 distinct 1 KiB keys (hex: at most halved by compression): 8 MB for the store.
    const RECORDS: usize = 8_000;
    let keys: Vec<String> = (0..RECORDS as u64)
        .map(|i| {
            let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("{x:016x}")
                })
                .collect()
        })
        .collect();
    let batch: Vec<KeyValue<'_>> = keys
        .iter()
        .map(|k| (Some(k.as_bytes()), Some(&b"x"[..])))
        .collect();
    produce(&app.input, &batch, 0);
    let status = wait_exit(&mut engine, Duration::from_secs(60));
    let log = engine.log_text();
    assert!(!status.success(), "{handler}: log:\n{log}");
    let line = log
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("the state volume is full"))
        .unwrap_or_else(|| panic!("{handler}: no clear error; log:\n{log}"));
    println!("{handler}: {line}");
    assert!(
        line.contains(path_str(&app.state)) && line.contains("spec.storage.size"),
        "{handler}: the error names the directory and the fix: {line}"
    );
    // Every output is a first count: the records after the failed write were not counted, so
    // their offsets must not be committed either.
    let group: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", &app.id)
        .create()
        .expect("offsets reader");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(&app.input, 0);
    let committed =
        rdkafka::consumer::Consumer::committed_offsets(&group, tpl, Duration::from_secs(10))
            .expect("committed offsets")
            .elements()[0]
            .offset()
            .to_raw()
            .unwrap_or(-1);
    assert!(
        committed < RECORDS as i64,
        "{handler}: offsets committed past records whose writes failed: {committed}"
    );
    drop(engine);
    println!(
        "{handler}: full volume after {:.1} s, committed offset {committed} of {RECORDS}",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_full_state_volume_is_an_error_naming_the_directory() {
    fill_the_state_volume("fail");
}

/// A handler that skips failed records must not skip records for a full volume.
#[test]
fn a_full_state_volume_stops_the_app_under_log_and_continue_too() {
    fill_the_state_volume("log-and-continue");
}

/// How the broker goes away for the engine.
#[derive(Clone, Copy, Debug)]
enum Away {
    /// Packets dropped: a frozen broker or a network partition. Requests hang, no error.
    Frozen,
    /// Connections reset and refused: a stopped broker. librdkafka reports transport errors.
    Stopped,
}

/// An iptables rule for what processes of group `gid` send to the broker's port: the broker
/// gone for the engine, and for no other client. Removed when dropped.
struct Partition {
    rule: Vec<String>,
}

impl Partition {
    fn new(gid: u32, away: Away) -> Partition {
        let target: &[&str] = match away {
            Away::Frozen => &["DROP"],
            Away::Stopped => &["REJECT", "--reject-with", "tcp-reset"],
        };
        let port = kafka_bootstrap()
            .rsplit(':')
            .next()
            .expect("host:port")
            .to_owned();
        let rule: Vec<String> = [
            "OUTPUT",
            "-p",
            "tcp",
            "--dport",
            &port,
            "-m",
            "owner",
            "--gid-owner",
            &gid.to_string(),
            "-j",
        ]
        .iter()
        .chain(target)
        .map(|a| (*a).to_owned())
        .collect();
        let mut args = vec!["-A"];
        args.extend(rule.iter().map(String::as_str));
        run("iptables", &args);
        Partition { rule }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        let mut args = vec!["-D"];
        args.extend(self.rule.iter().map(String::as_str));
        let _ = Command::new("iptables").args(&args).status();
    }
}

/// Restores a changelog of 400,000 counts while the broker goes `away` for 8 s: the restore
/// waits, says what it waits for, and finishes once the broker is back, with every count.
fn broker_away_during_restoration(away: Away) {
    let started = Instant::now();
    let app = App::new("restore-partition", &[]);
    // A changelog of 400,000 counts restores for seconds, long enough to cut the broker off in
    // the middle.
    const KEYS: usize = 400_000;
    runtime().block_on(create_topics(&[(app.changelog().as_str(), 1)]));
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k-{i:06}")).collect();
    let values: Vec<[u8; 8]> = (0..KEYS as i64).map(i64::to_be_bytes).collect();
    let batch: Vec<KeyValue<'_>> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| (Some(k.as_bytes()), Some(&v[..])))
        .collect();
    produce(&app.changelog(), &batch, 0);
    println!(
        "changelog written after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let gid = 40_000 + std::process::id() % 10_000;
    let mut engine = app.start_in_group(gid);
    let restored = r#"freshet_restored_records_total{store="counts",partition="0"}"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&engine, restored).unwrap_or(0.0) == 0.0 {
        assert!(
            engine.child.try_wait().ok().flatten().is_none(),
            "the engine exited; log:\n{}",
            engine.log_text()
        );
        assert!(
            Instant::now() < deadline,
            "no restoration; log:\n{}",
            engine.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let partition = Partition::new(gid, away);
    let cut_at = metric(&engine, restored).unwrap_or(0.0);
    assert!(
        cut_at < KEYS as f64,
        "restoration finished before the broker was cut off ({cut_at} records): make the changelog longer"
    );
    println!("{away:?}: broker cut off after {cut_at} records restored");
    // Past the restore's 5 s before it says it waits (restore/read.rs WARN_AFTER).
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        engine.child.try_wait().ok().flatten().is_none(),
        "the engine gave up while the broker was away; log:\n{}",
        engine.log_text()
    );
    drop(partition);
    engine.wait_ready(Duration::from_secs(90));
    let log = engine.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("no progress, waiting for the broker"))
        .unwrap_or_else(|| panic!("the wait was not logged; log:\n{log}"));
    println!("{away:?}: logged: {line}");
    assert!(
        line.contains("restoring store 'counts' of task 0_0")
            && line.contains(&format!("{}-0", app.changelog()))
            && line.contains("task.timeout.ms"),
        "{line}"
    );
    assert_eq!(metric(&engine, restored), Some(KEYS as f64));
    // The store holds what the changelog said: k-000007 counted 7 times before, 8 now.
    produce(&app.input, &records("k-000007", 1), 0);
    let out = consume(
        &app.output,
        1,
        Duration::from_secs(60),
        Duration::from_millis(300),
    );
    assert_eq!(counts(&out), [("k-000007".to_owned(), 8)]);
    assert!(engine.terminate(Duration::from_secs(60)).success());
    println!(
        "{away:?}: restore with the broker away: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_broker_frozen_during_restoration_is_waited_for() {
    broker_away_during_restoration(Away::Frozen);
}

/// A stopped broker: librdkafka reports transport errors, which the restore waits out, and
/// so does the stream thread's poll loop once the restore is done.
#[test]
fn a_broker_stopped_during_restoration_is_waited_for() {
    broker_away_during_restoration(Away::Stopped);
}
