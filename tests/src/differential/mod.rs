//! The differential harness: the same generated input through Java Kafka Streams (the oracle,
//! tests/reference/streams) and through Freshet, against the same broker, and the outputs
//! compared: a table's final value per key, a stream's records as a multiset (see `compare`).
//!
//! Each case is `tests/differential/<case>/app.yaml` plus its Java twin in the oracle's
//! `Cases.java`. A case reads one or more sources (a stream, a table, a global table), each under a
//! role (`${INPUT}`, `${TABLE}`, `${GLOBAL}`, `${LEFT}`, `${RIGHT}` in the manifest) with its own
//! generated input and partition count. For every case the harness creates fresh topics, produces
//! every input before either side starts, runs both sides on it with their own application ids and
//! output topics, waits until both are done (`progress`), reads both outputs and compares them.
//! All cases run at once: one JVM holds a KafkaStreams instance per case, and each Freshet case is
//! one engine process.
//!
//! The join cases' inputs are shaped so that no join decision depends on arrival order (see
//! `input`): table rows are stamped before every stream record, and the stream-stream joins'
//! records come in epochs far apart.
//!
//! `run(Contender::Java)` runs the oracle against a second oracle run: the harness's own check,
//! which also holds the oracle to the input's expected results where `model` has them.

pub mod compare;
pub mod input;
pub mod model;
pub mod process;
pub mod progress;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::kafka::Received;
use crate::{kafka_bootstrap, repo_root, unique_name};
use compare::{
    FinalTable, Multiset, compare, compare_multisets, final_values, multiset, render,
    render_multiset, repeated_keys, without_partitions,
};
use input::{InputRecord, PARTITIONS};
use model::Expected;
use process::{AppRun, Runner};
use progress::Progress;

/// What a source's generated input is (see `input`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A stream; tombstones only where the case's expressions can take a null value
    /// (`value.amount` cannot, in Java as in CEL).
    Stream {
        tombstones: bool,
    },
    /// A table: updates and deletes.
    Table,
    /// The orders stream of the stream-table and stream-globalTable joins.
    Orders,
    /// The users table those orders join (and the right side of the foreign-key joins).
    Users,
    /// The orders table of the foreign-key joins (`value.user` is the foreign key).
    OrderRows,
    /// The left or right table of the table-table joins (overlapping key ranges).
    LeftRows,
    RightRows,
    /// The left or right stream of the stream-stream joins (generated together, in epochs).
    LeftEpochs,
    RightEpochs,
}

/// One topic a case reads, under a role: `${ROLE}` in the manifest (upper case), `role=topic` in
/// the oracle's topic map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    pub role: &'static str,
    pub input: Input,
    pub partitions: i32,
    /// A global table: read by the global thread, which commits no offsets. It is loaded whole
    /// before processing starts (in Java as in Freshet) and produced before either side starts,
    /// so no progress is waited for on it.
    pub global: bool,
}

const fn source(role: &'static str, input: Input, partitions: i32) -> Source {
    Source {
        role,
        input,
        partitions,
        global: false,
    }
}

/// The output key's serde.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFormat {
    /// `string`.
    String,
    /// `windowed-string`: key bytes, 8-byte big-endian window start.
    Windowed,
    /// `session-string`: key bytes, 8-byte end, 8-byte start.
    Session,
}

/// The output value's serde.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueFormat {
    /// `long`: compared as bytes.
    Long,
    /// `json`: compared parsed.
    Json,
}

/// How two outputs are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// A table's changelog: the final value per key (see `compare`).
    FinalValue,
    /// A stream: the records as a multiset of (key, value, partition), whatever their order.
    Multiset,
}

/// Which of the join kinds a join case runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Outer,
}

/// Which expectation `model` computes for a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    None,
    Count,
    Sum,
    Totals,
    CountByCategory,
    TableTotals,
    TableOps,
    Tumbling,
    Hopping,
    Suppressed,
    /// Orders re-keyed by user joined with the users table's final rows.
    StreamTable(JoinKind),
    /// Orders joined with the users global table's final rows on `value.user`.
    StreamGlobal(JoinKind),
    /// Every pair of a key's records within an epoch; unmatched ones as the kind keeps them.
    StreamStream(JoinKind),
    /// The final rows of both tables joined on the key.
    TableTable(JoinKind),
    /// Each order's final row joined with its user's final row.
    ForeignKey(JoinKind),
}

/// One differential case.
#[derive(Debug)]
pub struct Case {
    pub name: &'static str,
    pub sources: &'static [Source],
    /// The internal topics it reads (repartition topics, a foreign-key join's subscription
    /// topics), after `<applicationId>-`: Freshet's naming rule and the Java twin's names give
    /// the same. Their offsets must be committed too.
    pub internal: &'static [&'static str],
    pub key: KeyFormat,
    pub value: ValueFormat,
    pub comparison: Comparison,
    /// Each output key is written once (suppress emits final results only).
    pub emits_once: bool,
    pub model: Model,
}

const fn case_of(
    name: &'static str,
    sources: &'static [Source],
    key: KeyFormat,
    value: ValueFormat,
    model: Model,
) -> Case {
    Case {
        name,
        sources,
        internal: &[],
        key,
        value,
        comparison: Comparison::FinalValue,
        emits_once: false,
        model,
    }
}

/// A join case: JSON values.
const fn join_case(
    name: &'static str,
    sources: &'static [Source],
    internal: &'static [&'static str],
    comparison: Comparison,
    model: Model,
) -> Case {
    Case {
        name,
        sources,
        internal,
        key: KeyFormat::String,
        value: ValueFormat::Json,
        comparison,
        emits_once: false,
        model,
    }
}

const TOMBSTONES: &[Source] = &[source(
    "input",
    Input::Stream { tombstones: true },
    PARTITIONS,
)];
const NO_TOMBSTONES: &[Source] = &[source(
    "input",
    Input::Stream { tombstones: false },
    PARTITIONS,
)];
const TABLE: &[Source] = &[source("table", Input::Table, PARTITIONS)];
/// Orders (3 partitions) re-keyed into a repartition topic that takes the users table's 4.
const ORDERS_3_USERS_4: &[Source] = &[
    source("input", Input::Orders, 3),
    source("table", Input::Users, 4),
];
const ORDERS_USERS: &[Source] = &[
    source("input", Input::Orders, PARTITIONS),
    source("table", Input::Users, PARTITIONS),
];
/// The global table has another partition count than the stream: no co-partitioning needed.
const ORDERS_GLOBAL_USERS: &[Source] = &[
    source("input", Input::Orders, PARTITIONS),
    Source {
        global: true,
        ..source("global", Input::Users, 3)
    },
];
const EPOCH_STREAMS: &[Source] = &[
    source("left", Input::LeftEpochs, PARTITIONS),
    source("right", Input::RightEpochs, PARTITIONS),
];
const TWO_TABLES: &[Source] = &[
    source("left", Input::LeftRows, PARTITIONS),
    source("right", Input::RightRows, PARTITIONS),
];
const ORDER_ROWS_USERS: &[Source] = &[
    source("left", Input::OrderRows, PARTITIONS),
    source("right", Input::Users, PARTITIONS),
];
const ENRICH: &[&str] = &["enrich-repartition"];
const ORDER_USER: &[&str] = &[
    "order-user-subscription-registration-topic",
    "order-user-subscription-response-topic",
];

/// Every case; each has `tests/differential/<name>/app.yaml` and a Java twin of that name.
pub const CASES: &[Case] = &[
    case_of(
        "count",
        TOMBSTONES,
        KeyFormat::String,
        ValueFormat::Long,
        Model::Count,
    ),
    case_of(
        "reduce",
        NO_TOMBSTONES,
        KeyFormat::String,
        ValueFormat::Long,
        Model::Sum,
    ),
    case_of(
        "aggregate",
        TOMBSTONES,
        KeyFormat::String,
        ValueFormat::Json,
        Model::Totals,
    ),
    Case {
        internal: &["per-category-repartition"],
        ..case_of(
            "groupby-count",
            NO_TOMBSTONES,
            KeyFormat::String,
            ValueFormat::Long,
            Model::CountByCategory,
        )
    },
    Case {
        internal: &["category-totals-repartition"],
        ..case_of(
            "table-aggregate",
            TABLE,
            KeyFormat::String,
            ValueFormat::Long,
            Model::TableTotals,
        )
    },
    case_of(
        "tumbling-count",
        TOMBSTONES,
        KeyFormat::Windowed,
        ValueFormat::Long,
        Model::Tumbling,
    ),
    case_of(
        "hopping-count",
        TOMBSTONES,
        KeyFormat::Windowed,
        ValueFormat::Long,
        Model::Hopping,
    ),
    case_of(
        "sliding-count",
        TOMBSTONES,
        KeyFormat::Windowed,
        ValueFormat::Long,
        Model::None,
    ),
    case_of(
        "session-count",
        TOMBSTONES,
        KeyFormat::Session,
        ValueFormat::Long,
        Model::None,
    ),
    Case {
        emits_once: true,
        ..case_of(
            "suppress",
            TOMBSTONES,
            KeyFormat::Windowed,
            ValueFormat::Long,
            Model::Suppressed,
        )
    },
    case_of(
        "table-ops",
        TABLE,
        KeyFormat::String,
        ValueFormat::Long,
        Model::TableOps,
    ),
    join_case(
        "stream-table-join",
        ORDERS_3_USERS_4,
        ENRICH,
        Comparison::Multiset,
        Model::StreamTable(JoinKind::Inner),
    ),
    join_case(
        "stream-table-left-join",
        ORDERS_USERS,
        ENRICH,
        Comparison::Multiset,
        Model::StreamTable(JoinKind::Left),
    ),
    join_case(
        "stream-global-join",
        ORDERS_GLOBAL_USERS,
        &[],
        Comparison::Multiset,
        Model::StreamGlobal(JoinKind::Inner),
    ),
    join_case(
        "stream-global-left-join",
        ORDERS_GLOBAL_USERS,
        &[],
        Comparison::Multiset,
        Model::StreamGlobal(JoinKind::Left),
    ),
    join_case(
        "stream-stream-join",
        EPOCH_STREAMS,
        &[],
        Comparison::Multiset,
        Model::StreamStream(JoinKind::Inner),
    ),
    join_case(
        "stream-stream-left-join",
        EPOCH_STREAMS,
        &[],
        Comparison::Multiset,
        Model::StreamStream(JoinKind::Left),
    ),
    join_case(
        "stream-stream-outer-join",
        EPOCH_STREAMS,
        &[],
        Comparison::Multiset,
        Model::StreamStream(JoinKind::Outer),
    ),
    join_case(
        "table-table-join",
        TWO_TABLES,
        &[],
        Comparison::FinalValue,
        Model::TableTable(JoinKind::Inner),
    ),
    join_case(
        "table-table-left-join",
        TWO_TABLES,
        &[],
        Comparison::FinalValue,
        Model::TableTable(JoinKind::Left),
    ),
    join_case(
        "table-table-outer-join",
        TWO_TABLES,
        &[],
        Comparison::FinalValue,
        Model::TableTable(JoinKind::Outer),
    ),
    join_case(
        "fk-join",
        ORDER_ROWS_USERS,
        ORDER_USER,
        Comparison::FinalValue,
        Model::ForeignKey(JoinKind::Inner),
    ),
    join_case(
        "fk-left-join",
        ORDER_ROWS_USERS,
        ORDER_USER,
        Comparison::FinalValue,
        Model::ForeignKey(JoinKind::Left),
    ),
];

/// The case named `name`; panics if there is none.
pub fn case(name: &str) -> &'static Case {
    CASES
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no differential case named {name}"))
}

/// The cases to run: all, or those listed in `FRESHET_DIFFERENTIAL_CASES` (comma-separated).
pub fn selected_cases() -> Vec<&'static Case> {
    match std::env::var("FRESHET_DIFFERENTIAL_CASES") {
        Ok(list) if !list.trim().is_empty() => list.split(',').map(|n| case(n.trim())).collect(),
        _ => CASES.iter().collect(),
    }
}

/// A source's placeholder in a manifest: `${INPUT}` for the role `input`.
fn placeholder(role: &str) -> String {
    format!("${{{}}}", role.to_uppercase())
}

/// The case's manifest with its placeholders replaced; `topics` holds one topic per source, in
/// the order of `case.sources`.
pub fn manifest(case: &Case, app: &str, topics: &[String], output: &str) -> String {
    let path = repo_root()
        .join("tests/differential")
        .join(case.name)
        .join("app.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = text.replace("${APP}", app).replace("${OUTPUT}", output);
    for (s, topic) in case.sources.iter().zip(topics) {
        let role = placeholder(s.role);
        assert!(
            text.contains(&role),
            "{} does not read its source {role}",
            path.display()
        );
        text = text.replace(&role, topic);
    }
    let filled: Vec<String> = case.sources.iter().map(|s| placeholder(s.role)).collect();
    assert!(
        !text
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("${")),
        "{} has a placeholder the harness does not fill (it fills ${{APP}}, ${{OUTPUT}} and {filled:?})",
        path.display()
    );
    text
}

/// The generated input of every source of `case`, in the order of `case.sources`.
pub fn inputs(case: &Case) -> Vec<Vec<InputRecord>> {
    let seed = input::seed_for(case.name);
    case.sources
        .iter()
        .map(|s| {
            // Each role its own sequence; the two epoch streams come from one generator.
            let own = seed ^ input::seed_for(s.role);
            match s.input {
                Input::Stream { tombstones } => input::stream_input(seed, tombstones),
                Input::Table => input::table_input(seed),
                Input::Orders => input::orders(own),
                Input::Users => input::users(own),
                Input::OrderRows => input::order_rows(own),
                Input::LeftRows => input::side_rows(own, "left", 0),
                Input::RightRows => input::side_rows(own, "right", 2),
                Input::LeftEpochs => input::epochs(seed, s.partitions).0,
                Input::RightEpochs => input::epochs(seed, s.partitions).1,
            }
        })
        .collect()
}

/// What runs against the oracle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    /// A second run of the oracle: the harness's self-check.
    Java,
    /// freshet-engine, one process per case.
    Freshet,
}

impl Contender {
    fn label(self) -> &'static str {
        match self {
            Contender::Java => "java-2",
            Contender::Freshet => "freshet",
        }
    }
}

/// One side of one case.
struct Side {
    app: String,
    output: String,
    progress: Progress,
    done: bool,
    /// Why it will never be done (its process exited).
    failure: Option<String>,
    /// Index into the runners.
    runner: usize,
}

/// One source of a prepared case: its topic, its input and where each record landed.
pub struct Produced {
    pub source: &'static Source,
    pub topic: String,
    pub input: Vec<InputRecord>,
    pub partitions: Vec<i32>,
}

/// One case, prepared: topics created and input produced.
struct Prepared {
    case: &'static Case,
    sources: Vec<Produced>,
    sides: [Side; 2],
}

impl Prepared {
    fn topics(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.topic.clone()).collect()
    }

    fn topic_map(&self, side: usize) -> String {
        let mut map: Vec<String> = self
            .sources
            .iter()
            .map(|s| format!("{}={}", s.source.role, s.topic))
            .collect();
        map.push(format!("output={}", self.sides[side].output));
        map.join(",")
    }
}

/// How long both sides of every case may take, start-up included.
const DEADLINE: Duration = Duration::from_secs(150);

/// Runs every selected case on the oracle and on `contender`, and panics with a report of every
/// difference (or of what did not finish).
pub async fn run(contender: Contender) {
    let started = Instant::now();
    let cases = selected_cases();
    let classpath = process::oracle_classpath();
    let names = ["java", contender.label()];

    // Topics: one per source, and one output per side.
    let mut prepared = Vec::new();
    let mut topics: Vec<(String, i32)> = Vec::new();
    for case in &cases {
        let sources: Vec<Produced> = case
            .sources
            .iter()
            .zip(inputs(case))
            .map(|(source, input)| Produced {
                source,
                topic: unique_name(&format!("diff-{}-{}", case.name, source.role)),
                input,
                partitions: Vec::new(),
            })
            .collect();
        let outputs = names.map(|n| unique_name(&format!("diff-{}-out-{n}", case.name)));
        topics.extend(
            sources
                .iter()
                .map(|s| (s.topic.clone(), s.source.partitions)),
        );
        topics.extend(outputs.iter().map(|o| (o.clone(), PARTITIONS)));
        let sides = [0, 1].map(|i| {
            let app = unique_name(&format!("diff-{}-{}", case.name, names[i]));
            // Global tables commit no offsets (see `Source::global`).
            let mut read: Vec<String> = sources
                .iter()
                .filter(|s| !s.source.global)
                .map(|s| s.topic.clone())
                .collect();
            read.extend(case.internal.iter().map(|t| format!("{app}-{t}")));
            Side {
                progress: Progress::new(&app, read, &outputs[i]),
                app,
                output: outputs[i].clone(),
                done: false,
                failure: None,
                runner: 0,
            }
        });
        prepared.push(Prepared {
            case,
            sources,
            sides,
        });
    }
    let with_partitions: Vec<(&str, i32)> = topics.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    crate::kafka::create_topics(&with_partitions).await;
    let topics: Vec<String> = topics.into_iter().map(|(t, _)| t).collect();
    let created = started.elapsed();
    // Side by side: each producer spends most of its time waiting for acknowledgements. Every
    // input is in its topic before either side starts.
    std::thread::scope(|scope| {
        for p in &mut prepared {
            for s in &mut p.sources {
                scope.spawn(|| {
                    s.partitions = input::produce(&s.topic, s.source.partitions, &s.input)
                });
            }
        }
    });
    let produced = started.elapsed();

    // The oracle: every case in one JVM. The contender: a second JVM, or an engine per case.
    let mut runners = Vec::new();
    let java_runs: Vec<AppRun> = prepared
        .iter()
        .map(|p| AppRun {
            case: p.case.name,
            application_id: p.sides[0].app.clone(),
            topic_map: p.topic_map(0),
        })
        .collect();
    runners.push(Runner::oracle(&classpath, &java_runs));
    match contender {
        Contender::Java => {
            let runs: Vec<AppRun> = prepared
                .iter()
                .map(|p| AppRun {
                    case: p.case.name,
                    application_id: p.sides[1].app.clone(),
                    topic_map: p.topic_map(1),
                })
                .collect();
            runners.push(Runner::oracle(&classpath, &runs));
            for p in &mut prepared {
                p.sides[1].runner = 1;
            }
        }
        Contender::Freshet => {
            for p in &mut prepared {
                let m = manifest(p.case, &p.sides[1].app, &p.topics(), &p.sides[1].output);
                runners.push(Runner::engine(&m, &p.sides[1].app));
                p.sides[1].runner = runners.len() - 1;
            }
        }
    }

    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("metadata client");
    let mut dead = String::new();
    let waited = wait_for_all(&mut prepared, &mut runners, &client, &names, &mut dead);
    let settled = started.elapsed();

    // Compare.
    let mut report = dead;
    let mut failed = Vec::new();
    if let Err(e) = &waited {
        failed.push("(waiting)".to_owned());
        report.push_str(e);
    }
    // Reading the outputs is mostly waiting for the broker: all cases side by side.
    let checked: Vec<Option<Result<String, String>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = prepared
            .iter()
            .map(|p| {
                let (client, names) = (&client, &names);
                scope.spawn(move || {
                    p.sides
                        .iter()
                        .all(|s| s.done)
                        .then(|| check_case(p, contender, client, names))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("comparing a case panicked"))
            .collect()
    });
    let compared = started.elapsed();
    for (p, result) in prepared.iter().zip(checked) {
        let failures: Vec<&str> = p
            .sides
            .iter()
            .filter_map(|s| s.failure.as_deref())
            .collect();
        let result = match result {
            Some(r) => r,
            None if !failures.is_empty() => Err(failures.join("; ")),
            None => continue,
        };
        match result {
            Ok(summary) => {
                let _ = writeln!(report, "{:<16} ok: {summary}", p.case.name);
            }
            Err(problem) => {
                failed.push(p.case.name.to_owned());
                let _ = writeln!(report, "{:<16} FAILED: {problem}", p.case.name);
            }
        }
    }
    // Both sides must also stop cleanly on SIGTERM, as a deployment stops them.
    for r in runners.iter_mut() {
        let log = r.log_path().display().to_string();
        if let Some(why) = r.exited() {
            // An early exit is reported above, with its log; a later one is news.
            if !report.contains(&log) {
                failed.push("(exited)".to_owned());
                let _ = writeln!(report, "{log}: the process {why} before it was stopped");
            }
            continue;
        }
        if let Err(e) = r.terminate(Duration::from_secs(40)) {
            failed.push("(stopping)".to_owned());
            let _ = writeln!(report, "{} {e}", r.log_path().display());
        }
    }
    let timing = format!(
        "{} cases, java vs {}: topics created after {:.1} s, input produced after {:.1} s, all settled after {:.1} s, compared after {:.1} s, done after {:.1} s",
        prepared.len(),
        names[1],
        created.as_secs_f64(),
        produced.as_secs_f64(),
        settled.as_secs_f64(),
        compared.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        println!("{report}{timing}");
        // The broker outlives test runs: drop what this run created. A failed run keeps its
        // topics for a look at them.
        let apps: Vec<&str> = prepared
            .iter()
            .flat_map(|p| p.sides.iter().map(|s| s.app.as_str()))
            .collect();
        delete_topics(&client, topics, &apps).await;
    }
    assert!(
        failed.is_empty(),
        "differential cases failed: {failed:?}\n{report}{timing}"
    );
}

/// Deletes `topics` and every internal topic (`<app>-...`) of `apps`. Best effort: a leftover
/// topic costs nothing but space.
async fn delete_topics(client: &BaseConsumer, mut topics: Vec<String>, apps: &[&str]) {
    if let Ok(md) = client.fetch_metadata(None, Duration::from_secs(10)) {
        topics.extend(
            md.topics()
                .iter()
                .map(|t| t.name())
                .filter(|n| apps.iter().any(|a| n.starts_with(&format!("{a}-"))))
                .map(str::to_owned),
        );
    }
    let admin: AdminClient<DefaultClientContext> = match ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("not deleting the differential topics: {e}");
            return;
        }
    };
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    if let Err(e) = admin.delete_topics(&names, &AdminOptions::new()).await {
        eprintln!("deleting the differential topics: {e}");
    }
}

/// Polls every side until each is done or has failed: its process exited early (the process and
/// its log are named in `dead`, once per process) or the deadline passed (Err, with the state of
/// every side still pending). A failed side stops its case, not the others.
fn wait_for_all(
    prepared: &mut [Prepared],
    runners: &mut [Runner],
    client: &BaseConsumer,
    names: &[&str; 2],
    dead: &mut String,
) -> Result<(), String> {
    let deadline = Instant::now() + DEADLINE;
    let mut reported = vec![false; runners.len()];
    loop {
        for (i, r) in runners.iter_mut().enumerate() {
            if reported[i] {
                continue;
            }
            let Some(why) = r.exited() else { continue };
            reported[i] = true;
            let mut cases = Vec::new();
            for p in prepared.iter_mut() {
                for (side, s) in p.sides.iter_mut().enumerate() {
                    if s.runner == i && !s.done {
                        s.failure = Some(format!(
                            "{} {why} before it was done (log: {})",
                            names[side],
                            r.log_path().display()
                        ));
                        cases.push(p.case.name);
                    }
                }
            }
            if !cases.is_empty() {
                let _ = writeln!(
                    dead,
                    "the process running {cases:?} {why}\n{}",
                    r.log_tail(40)
                );
            }
        }
        let mut pending = 0;
        for p in prepared.iter_mut() {
            if p.sides.iter().any(|s| s.failure.is_some()) {
                continue;
            }
            for s in p.sides.iter_mut().filter(|s| !s.done) {
                // A failed query (a coordinator still loading, a timeout on a busy machine) is
                // no verdict: it is shown if the deadline passes.
                s.done = s.progress.poll(client).unwrap_or_else(|e| {
                    s.progress.last_state = format!("last query failed: {e}");
                    false
                });
                pending += usize::from(!s.done);
            }
        }
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            let mut msg = format!(
                "not done after {DEADLINE:?} (done means: committed offsets at the end of the sources and of the internal topics, then the output quiet for {:?}):\n",
                progress::QUIET
            );
            for p in prepared
                .iter()
                .filter(|p| p.sides.iter().all(|s| s.failure.is_none()))
            {
                for (i, s) in p.sides.iter().enumerate().filter(|(_, s)| !s.done) {
                    let _ = writeln!(
                        msg,
                        "  {} on {} (application id {}): {}\n{}",
                        p.case.name,
                        names[i],
                        s.app,
                        s.progress.last_state,
                        runners[s.runner].log_tail(20)
                    );
                }
            }
            return Err(msg);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Compares one finished case's outputs (and, in the self-check, the oracle with the model).
fn check_case(
    p: &Prepared,
    contender: Contender,
    client: &BaseConsumer,
    names: &[&str; 2],
) -> Result<String, String> {
    // The internal topics: as many partitions on both sides (a repartition topic before a join
    // takes the other side's count).
    for t in p.case.internal {
        let counts: Vec<Option<i32>> = p
            .sides
            .iter()
            .map(|s| progress::partitions(client, &format!("{}-{t}", s.app)))
            .collect::<Result<_, _>>()?;
        if counts[0] != counts[1] {
            return Err(format!(
                "the internal topic <app>-{t} has {:?} partitions in {} and {:?} in {}",
                counts[0], names[0], counts[1], names[1]
            ));
        }
    }
    let mut outputs = Vec::new();
    for s in &p.sides {
        outputs.push(progress::read_all(client, &s.output)?);
    }
    let expected = if contender == Contender::Java {
        model::expected(p.case, &p.sources)
    } else {
        None
    };
    let input: usize = p.sources.iter().map(|s| s.input.len()).sum();
    match p.case.comparison {
        Comparison::FinalValue => check_final(p, &outputs, expected, names, input),
        Comparison::Multiset => check_multiset(p, &outputs, expected, names, input),
    }
}

/// A table output: the final value per key.
fn check_final(
    p: &Prepared,
    outputs: &[Vec<Received>],
    expected: Option<Expected>,
    names: &[&str; 2],
    input: usize,
) -> Result<String, String> {
    let mut tables: Vec<FinalTable> = Vec::new();
    for (i, records) in outputs.iter().enumerate() {
        let table = final_values(records).map_err(|e| format!("{} output: {e}", names[i]))?;
        tables.push(table);
    }
    let (java, other) = (&tables[0], &tables[1]);
    let present = |t: &FinalTable| t.values().filter(|f| f.value.is_some()).count();
    if present(java) == 0 {
        return Err("the oracle's output holds no value: nothing would be compared".to_owned());
    }
    let mut problems = String::new();
    for (i, t) in tables.iter().enumerate() {
        let repeated = repeated_keys(p.case, t);
        if p.case.emits_once && !repeated.is_empty() {
            let _ = writeln!(
                problems,
                "{} wrote keys more than once (this case emits final results only): {repeated:?}",
                names[i]
            );
        }
    }
    let mismatches = compare(p.case, java, other);
    if !mismatches.is_empty() {
        let _ = write!(
            problems,
            "{} of {} keys differ:\n{}",
            mismatches.len(),
            java.len().max(other.len()),
            render(p.case, names[0], names[1], &mismatches)
        );
    }
    if let Some(Expected::Final(expected)) = &expected {
        let m = compare(p.case, expected, java);
        if !m.is_empty() {
            let _ = write!(
                problems,
                "the oracle disagrees with the harness's model on {} keys (a harness or model bug):\n{}",
                m.len(),
                render(p.case, "model", "java", &m)
            );
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let updates = |t: &FinalTable| t.values().map(|f| f.updates).sum::<usize>();
    Ok(format!(
        "{} keys with values, {} tombstoned; {} records from java, {} from {}; input {input} records",
        present(java),
        java.len() - present(java),
        updates(java),
        updates(other),
        names[1],
    ))
}

/// A stream output: every record, as a multiset.
fn check_multiset(
    p: &Prepared,
    outputs: &[Vec<Received>],
    expected: Option<Expected>,
    names: &[&str; 2],
    input: usize,
) -> Result<String, String> {
    let sets: Vec<Multiset> = outputs
        .iter()
        .map(|records| multiset(p.case.value, records))
        .collect();
    let (java, other) = (&sets[0], &sets[1]);
    if java.is_empty() {
        return Err("the oracle's output holds no record: nothing would be compared".to_owned());
    }
    let mut problems = String::new();
    let mismatches = compare_multisets(java, other);
    if !mismatches.is_empty() {
        let _ = write!(
            problems,
            "{} of {} distinct records are written a different number of times:\n{}",
            mismatches.len(),
            java.len().max(other.len()),
            render_multiset(p.case, names[0], names[1], &mismatches)
        );
    }
    if let Some(Expected::Records(expected)) = &expected {
        let m = compare_multisets(expected, &without_partitions(java));
        if !m.is_empty() {
            let _ = write!(
                problems,
                "the oracle disagrees with the harness's model on {} records (a harness or model bug):\n{}",
                m.len(),
                render_multiset(p.case, "model", "java", &m)
            );
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let nulls = |side: &str| {
        java.iter()
            .filter(|((_, v, _), _)| {
                v.as_deref()
                    .is_some_and(|v| v.contains(&format!("\"{side}\":null")))
            })
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    let (left_only, right_only) = match p.case.model {
        Model::StreamStream(_) => (nulls("right"), nulls("left")),
        _ => (nulls("user"), 0),
    };
    Ok(format!(
        "{} records from java ({left_only} without a right side, {right_only} without a left side), {} from {}; input {input} records",
        outputs[0].len(),
        outputs[1].len(),
        names[1],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_has_a_manifest_and_every_manifest_a_case() {
        let dir = repo_root().join("tests/differential");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        on_disk.sort();
        let mut known: Vec<String> = CASES.iter().map(|c| c.name.to_owned()).collect();
        known.sort();
        assert_eq!(on_disk, known);
        for c in CASES {
            let topics: Vec<String> = c.sources.iter().map(|s| format!("{}-1", s.role)).collect();
            let m = manifest(c, "app-1", &topics, "out-1");
            assert!(m.contains("applicationId: app-1"), "{m}");
            assert!(m.contains("\"out-1\""), "{m}");
            for t in &topics {
                assert!(m.contains(&format!("\"{t}\"")), "{t} in {m}");
            }
            let spec: serde_yaml_ng::Value =
                serde_yaml_ng::from_str(&m).unwrap_or_else(|e| panic!("{}: {e}", c.name));
            assert_eq!(spec["spec"]["config"]["statestore.cache.max.bytes"], "0");
        }
    }
}
