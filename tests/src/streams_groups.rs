//! Streams groups (KIP-1071) as Kafka's own tool shows them: `StreamsGroupCommand --describe
//! --members --verbose` run through scripts/kafka.sh and parsed row by row; shared by the
//! streams-group suites.
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::apps::read_counts;
use crate::{kafka_bootstrap, repo_root};

/// One member row of `StreamsGroupCommand --describe --members --verbose`.
#[derive(Debug, Clone)]
pub struct MemberRow {
    /// The member id.
    pub member: String,
    /// `streams` or `classic`.
    pub protocol: String,
    /// The process id of the member's instance.
    pub process: String,
    /// The member's client id.
    pub client_id: String,
    /// Its active tasks, `<subtopology>_<partition>`.
    pub active: BTreeSet<String>,
    /// Its target active tasks.
    pub target_active: BTreeSet<String>,
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
pub fn describe(app: &str) -> Vec<MemberRow> {
    describe_at(&kafka_bootstrap(), app)
}

/// The member rows of group `app` on the brokers at `bootstrap` (a plaintext listener).
pub fn describe_at(bootstrap: &str, app: &str) -> Vec<MemberRow> {
    let out = Command::new(repo_root().join("scripts/kafka.sh"))
        .args([
            "tool",
            "org.apache.kafka.tools.streams.StreamsGroupCommand",
            "--bootstrap-server",
            bootstrap,
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
pub fn wait_stable(app: &str, members: usize, tasks: &BTreeSet<String>) -> Vec<MemberRow> {
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

/// Sets a config of group `app` with Kafka's kafka-configs tool.
pub fn set_group_config(app: &str, config: &str) {
    crate::kafka::add_config("groups", app, config);
}

/// Waits until each of `keys` keys is counted `expected` times in `output`; a count past it
/// (a record counted twice) fails at once.
pub fn wait_counts_exact(output: &str, keys: usize, expected: i64) -> BTreeMap<String, i64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = read_counts(output);
        if c.len() == keys && c.values().all(|&n| n >= expected) {
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

/// Writes to `path` the manifest the streams-group suites run: a count by key of `input` into
/// `output` (a `long` per key), as a member of the streams group `app` under `guarantee`, with
/// `threads` stream threads and its state in `state_dir`.
pub fn write_count_manifest(
    path: &std::path::Path,
    app: &str,
    topics: (&str, &str),
    guarantee: &str,
    threads: usize,
    state_dir: &std::path::Path,
) {
    write_count_manifest_as(path, app, topics, guarantee, threads, state_dir, "streams");
}

/// [`write_count_manifest`] with `group.protocol` set to `protocol`.
pub fn write_count_manifest_as(
    path: &std::path::Path,
    app: &str,
    (input, output): (&str, &str),
    guarantee: &str,
    threads: usize,
    state_dir: &std::path::Path,
    protocol: &str,
) {
    let text = format!(
        r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: string
config:
  commit.interval.ms: "200"
  group.protocol: {protocol}
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
    );
    std::fs::write(path, text).expect("write the manifest");
}

/// What the group coordinator holds of one member, read with StreamsGroupDescribe (Freshet's
/// codec of it): what Kafka's tool does not print.
#[derive(Debug, Clone)]
pub struct DescribedMember {
    /// The member id.
    pub member: String,
    /// The member's client id.
    pub client_id: String,
    /// Its static instance id (`group.instance.id`), if it has one.
    pub instance_id: Option<String>,
    /// Its active tasks, `<subtopology>_<partition>`.
    pub active: BTreeSet<String>,
    /// Its standby (and warm-up) tasks.
    pub standby: BTreeSet<String>,
    /// The task offsets it reported last, per task.
    pub task_offsets: BTreeMap<String, i64>,
    /// The task end offsets it reported last, per task.
    pub task_end_offsets: BTreeMap<String, i64>,
}

/// The members of streams group `app` as its coordinator describes them.
pub fn describe_members(app: &str) -> Vec<DescribedMember> {
    use freshet_streams_group::{Connection, Security, coordinator, describe};
    let timeout = Duration::from_secs(10);
    let address = coordinator::find_coordinator(
        &kafka_bootstrap(),
        app,
        "freshet-tests",
        timeout,
        &Security::plaintext(),
    )
    .expect("the group coordinator");
    let mut conn = Connection::connect(&address, "freshet-tests", timeout).expect("connecting");
    let group = describe::describe_group(&mut conn, app).expect("StreamsGroupDescribe");
    let offsets = |list: &[freshet_streams_group::messages::streams_group_describe_response::TaskOffset]| {
        list.iter()
            .map(|o| (format!("{}_{}", o.subtopology_id.as_str(), o.partition), o.offset))
            .collect()
    };
    let tasks =
        |list: &[freshet_streams_group::messages::streams_group_describe_response::TaskIds]| {
            list.iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| format!("{}_{p}", t.subtopology_id.as_str()))
                })
                .collect::<BTreeSet<String>>()
        };
    group
        .members
        .iter()
        .map(|m| DescribedMember {
            member: m.member_id.as_str().to_owned(),
            client_id: m.client_id.as_str().to_owned(),
            instance_id: m.instance_id.as_ref().map(|i| i.as_str().to_owned()),
            active: tasks(&m.assignment.active_tasks),
            standby: tasks(&m.assignment.standby_tasks)
                .into_iter()
                .chain(tasks(&m.assignment.warmup_tasks))
                .collect(),
            task_offsets: offsets(&m.task_offsets),
            task_end_offsets: offsets(&m.task_end_offsets),
        })
        .collect()
}

/// An engine's stream threads as its `/topology?format=json` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineThreads {
    /// The process id it reports to the streams group (`processId`).
    pub process: String,
    /// Client id → active tasks, per stream thread.
    pub threads: BTreeMap<String, BTreeSet<String>>,
}

/// What `engine` says it runs (`/topology?format=json`, `live`).
pub fn engine_threads(engine: &crate::engine::EngineProcess) -> EngineThreads {
    let (status, body) = engine
        .get("/topology?format=json")
        .expect("the engine's /topology answers");
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let live = &json["live"];
    EngineThreads {
        process: live["processId"]
            .as_str()
            .unwrap_or_else(|| panic!("no processId in {live:#}"))
            .to_owned(),
        threads: live["threads"]
            .as_array()
            .unwrap_or_else(|| panic!("no threads in {live:#}"))
            .iter()
            .map(|t| {
                let tasks = t["activeTasks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                (t["clientId"].as_str().unwrap_or_default().to_owned(), tasks)
            })
            .collect(),
    }
}

/// Waits until `engine`'s `/topology` lists, per thread, the active tasks the group's `rows`
/// give the member with that client id (the engine publishes its tasks after reconciling).
pub fn wait_engine_matches(
    engine: &crate::engine::EngineProcess,
    rows: &[MemberRow],
) -> EngineThreads {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let threads = engine_threads(engine);
        let expected: BTreeMap<String, BTreeSet<String>> = rows
            .iter()
            .filter(|r| r.process == threads.process)
            .map(|r| (r.client_id.clone(), r.active.clone()))
            .collect();
        if !expected.is_empty() && expected == threads.threads {
            return threads;
        }
        assert!(
            Instant::now() < deadline,
            "the engine's /topology {threads:#?} does not match the group's rows {rows:#?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
