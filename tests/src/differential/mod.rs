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

mod cases;
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
use crate::{kafka_bootstrap, unique_name};
use compare::{
    FinalTable, Multiset, compare, compare_multisets, final_values, multiset, render,
    render_multiset, repeated_keys, without_partitions,
};
use input::{InputRecord, PARTITIONS};
use model::Expected;
use process::{AppRun, Runner};
use progress::Progress;

pub use cases::{
    CASES, Case, Comparison, Input, JoinKind, KeyFormat, Model, Source, ValueFormat, case, inputs,
    manifest, selected_cases,
};

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
