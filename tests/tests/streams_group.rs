//! group.protocol=streams (KIP-1071) against the real broker: Freshet's stream threads are
//! members of a Kafka streams group, the broker assigns their tasks, Kafka's own
//! `kafka-streams-groups` tool (StreamsGroupCommand) lists each of them with its active tasks,
//! and a count stays exact (at-least-once, no failure) while a second instance joins and takes
//! tasks over.
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use freshet_tests::apps::{read_counts, send_batch};
use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::create_topics;
use freshet_tests::{kafka_bootstrap, repo_root, unique_name};

const KEYS: usize = 8;
const EACH: usize = 50;
const PARTITIONS: i32 = 4;

/// One member row of `StreamsGroupCommand --describe --members --verbose`.
#[derive(Debug, Clone)]
struct MemberRow {
    member: String,
    protocol: String,
    process: String,
    client_id: String,
    active: BTreeSet<String>,
    target_active: BTreeSet<String>,
}

/// Tasks as the tool prints them, `0:[1,3]; 1:[0];` → {"0_1", "0_3", "1_0"}.
fn parse_tasks(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((sub, list)) = part.split_once(':') else {
            continue;
        };
        for p in list
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            out.insert(format!("{}_{p}", sub.trim()));
        }
    }
    out
}

/// The text after `label` up to the next label (`ACTIVE:`, `TARGET-ACTIVE:`, `STANDBY:`...).
fn section<'a>(assignments: &'a str, label: &str) -> &'a str {
    let Some(start) = assignments
        .split_whitespace()
        .position(|w| w == label)
        .map(|_| assignments.find(&format!("{label} ")).unwrap_or(0) + label.len() + 1)
    else {
        return "";
    };
    let rest = &assignments[start.min(assignments.len())..];
    let end = rest
        .split_whitespace()
        .find(|w| w.ends_with(':') && w.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .and_then(|w| rest.find(&format!(" {w}")))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The member rows of group `app`, read with Kafka's own tool.
fn describe(app: &str) -> Vec<MemberRow> {
    let out = Command::new(repo_root().join("scripts/kafka.sh"))
        .args([
            "tool",
            "org.apache.kafka.tools.streams.StreamsGroupCommand",
            "--bootstrap-server",
            &kafka_bootstrap(),
            "--describe",
            "--group",
            app,
            "--members",
            "--verbose",
        ])
        .output()
        .expect("running scripts/kafka.sh tool");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // GROUP TARGET-ASSIGNMENT-EPOCH TOPOLOGY-EPOCH MEMBER MEMBER-PROTOCOL MEMBER-EPOCH
        // PROCESS CLIENT-ID ASSIGNMENTS...
        if words.len() < 9 || words[0] != app {
            continue;
        }
        let assignments = words[8..].join(" ");
        rows.push(MemberRow {
            member: words[3].to_owned(),
            protocol: words[4].to_owned(),
            process: words[6].to_owned(),
            client_id: words[7].to_owned(),
            active: parse_tasks(section(&assignments, "ACTIVE:")),
            target_active: parse_tasks(section(&assignments, "TARGET-ACTIVE:")),
        });
    }
    rows
}

/// Waits until the tool lists `members` members whose active tasks are their target ones and
/// together all tasks, each once.
fn wait_stable(app: &str, members: usize, tasks: &BTreeSet<String>) -> Vec<MemberRow> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = describe(app);
        let mut seen = Vec::new();
        for r in &rows {
            seen.extend(r.active.iter().cloned());
        }
        let union: BTreeSet<String> = seen.iter().cloned().collect();
        if rows.len() == members
            && rows.iter().all(|r| r.active == r.target_active)
            && seen.len() == tasks.len()
            && &union == tasks
        {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "the streams group did not settle on {members} members sharing {tasks:?}: {rows:#?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn wait_counts_exact(output: &str, expected: i64) -> BTreeMap<String, i64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = read_counts(output);
        if c.len() == KEYS && c.values().all(|&n| n >= expected) {
            assert!(
                c.values().all(|&n| n == expected),
                "counts went past {expected} (a record counted twice): {c:?}"
            );
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "counts did not reach {expected}: {c:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

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
        std::fs::write(
            file.path(),
            format!(
                r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: string
config:
  commit.interval.ms: "200"
  group.protocol: streams
  processing.guarantee: {guarantee}
  num.stream.threads: "{threads}"
  state.dir: {state_dir}
topology:
  streams:
    - {{ name: events, topic: {input} }}
  pipelines:
    - name: count
      from: events
      steps:
        - groupByKey: {{}}
        - count: {{ store: counts }}
        - toStream: {{}}
        - to: {{ topic: {output}, valueSerde: long }}
"#,
                bootstrap = kafka_bootstrap(),
                state_dir = state_dir.display(),
            ),
        )
        .unwrap();
        file
    };
    let all_tasks: BTreeSet<String> = (0..PARTITIONS).map(|p| format!("0_{p}")).collect();

    let (ma, mb) = (manifest(2, "a"), manifest(1, "b"));
    let started = Instant::now();
    send_batch(&input, KEYS, EACH, false);
    let mut a = EngineProcess::start(ma.path(), &[], &[]);
    a.wait_ready(Duration::from_secs(60));
    wait_counts_exact(&output, EACH as i64);
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
    let clients: BTreeSet<&str> = rows.iter().map(|r| r.client_id.as_str()).collect();
    assert_eq!(
        clients,
        BTreeSet::from([
            format!("{app}-StreamThread-1-consumer").as_str(),
            format!("{app}-StreamThread-2-consumer").as_str()
        ])
    );

    // A second instance joins: the broker moves tasks to it, the revoked ones committed first,
    // and the count stays exact.
    let mut b = EngineProcess::start(mb.path(), &[], &[]);
    b.wait_ready(Duration::from_secs(60));
    let rows = wait_stable(&app, 3, &all_tasks);
    let b_rows: Vec<&MemberRow> = rows.iter().filter(|r| r.process != process_a).collect();
    assert_eq!(b_rows.len(), 1, "{rows:#?}");
    assert_eq!(
        b_rows[0].client_id,
        format!("{app}-StreamThread-1-consumer")
    );
    assert!(
        !b_rows[0].active.is_empty(),
        "the new instance got no task: {rows:#?}"
    );
    let members: BTreeSet<&str> = rows.iter().map(|r| r.member.as_str()).collect();
    assert_eq!(members.len(), 3, "{rows:#?}");
    send_batch(&input, KEYS, EACH, false);
    wait_counts_exact(&output, 2 * EACH as i64);
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
