//! The differential cases: each case's sources and their generated input, how its outputs are
//! compared, and its manifest (`tests/differential/<case>/app.yaml` with the roles' topics
//! filled in). The Java twin of each is in the oracle's `Cases.java`.

use super::input::{self, InputRecord, PARTITIONS};
use crate::repo_root;

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
