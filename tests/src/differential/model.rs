//! What Kafka Streams must output for the simpler cases, computed from the input alone.
//!
//! The Java-vs-Java self-check holds the oracle to these expectations too, so a case that both
//! Java runs get equally wrong (a topology that is not what the manifest says, a harness that
//! reads nothing) cannot pass. They also write down the semantics Freshet must match: stream
//! aggregations skip tombstones; time-window counts count them (Kafka Streams skips only null
//! keys there) and drop a record for each window whose end plus grace is not after the
//! partition's stream time; suppress emits exactly the windows whose end plus grace the stream
//! time has reached. Sliding and session windows are left to the Java-vs-Java comparison.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::compare::{Final, FinalTable, Multiset, value_text};
use super::input::{InputRecord, PARTITIONS};
use super::{Case, JoinKind, Model, Produced, ValueFormat};

const SIZE_MS: i64 = 10_000;
const ADVANCE_MS: i64 = 5_000;
const GRACE_MS: i64 = 5_000;

fn json(r: &InputRecord) -> Option<Value> {
    r.value
        .as_deref()
        .map(|v| serde_json::from_str(v).expect("generated JSON"))
}

fn amount(v: &Value) -> i64 {
    v["amount"].as_i64().expect("generated amount")
}

fn category(v: &Value) -> String {
    v["category"]
        .as_str()
        .expect("generated category")
        .to_owned()
}

fn table<K: Into<Vec<u8>>>(entries: impl IntoIterator<Item = (K, Vec<u8>)>) -> FinalTable {
    entries
        .into_iter()
        .map(|(k, v)| {
            (
                k.into(),
                Final {
                    partition: None,
                    value: Some(v),
                    updates: 1,
                },
            )
        })
        .collect()
}

fn long(v: i64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

/// What a case must output.
pub enum Expected {
    /// The final value per key (cases compared by final value).
    Final(FinalTable),
    /// Every record, without partitions (cases compared as multisets).
    Records(Multiset),
}

/// The output of `case` for the inputs of its sources; None for cases without a model.
pub fn expected(case: &Case, sources: &[Produced]) -> Option<Expected> {
    if let Some(records) = join_records(case, sources) {
        return Some(Expected::Records(records));
    }
    if let Model::TableTable(kind) = case.model {
        return Some(Expected::Final(table_table(kind, sources)));
    }
    if let Model::ForeignKey(kind) = case.model {
        return Some(Expected::Final(foreign_key(kind, sources)));
    }
    let (input, partitions) = (&sources[0].input, &sources[0].partitions);
    single_source(case, input, partitions).map(Expected::Final)
}

/// The final row of each key of a table's input (records of a key share a partition, so input
/// order is their order); deleted keys are absent.
fn final_rows(input: &[InputRecord]) -> BTreeMap<String, Value> {
    let mut rows = BTreeMap::new();
    for r in input {
        match json(r) {
            Some(v) => rows.insert(r.key.clone(), v),
            None => rows.remove(&r.key),
        };
    }
    rows
}

fn pair(a: &str, left: Option<&Value>, b: &str, right: Option<&Value>) -> Value {
    serde_json::json!({ a: left.cloned().unwrap_or(Value::Null), b: right.cloned().unwrap_or(Value::Null) })
}

fn element(key: &str, value: &Value) -> super::compare::Element {
    (
        Some(key.as_bytes().to_vec()),
        Some(value_text(ValueFormat::Json, value.to_string().as_bytes())),
        None,
    )
}

/// The records of the stream joins. Stream-table and stream-globalTable: every table row is
/// stamped before every order, so each order meets its user's final row (absent: dropped by an
/// inner join, `null` in a left join); re-keyed by user before a table join, keyed by order
/// after a global one. Stream-stream: within a key and epoch every left record pairs with every
/// right record; a side's records without a partner in their epoch are emitted alone (`null` on
/// the other side) by a left join (left records) and an outer join (both sides).
fn join_records(case: &Case, sources: &[Produced]) -> Option<Multiset> {
    let mut out = Multiset::new();
    let mut add = |key: &str, value: Value| *out.entry(element(key, &value)).or_default() += 1;
    match case.model {
        Model::StreamTable(kind) | Model::StreamGlobal(kind) => {
            let users = final_rows(&sources[1].input);
            for order in sources[0].input.iter() {
                let v = json(order).expect("orders have values");
                let user = v["user"].as_str().expect("orders name a user");
                let row = users.get(user);
                if row.is_none() && kind == JoinKind::Inner {
                    continue;
                }
                let key = if matches!(case.model, Model::StreamTable(_)) {
                    user
                } else {
                    order.key.as_str()
                };
                add(key, pair("order", Some(&v), "user", row));
            }
        }
        Model::StreamStream(kind) => {
            // (key, epoch) -> (left values, right values)
            let mut groups: BTreeMap<(String, i64), (Vec<Value>, Vec<Value>)> = BTreeMap::new();
            for (side, s) in sources.iter().enumerate() {
                for r in &s.input {
                    let v = json(r).expect("stream-stream inputs have values");
                    let epoch = v["epoch"].as_i64().expect("epoch");
                    let g = groups.entry((r.key.clone(), epoch)).or_default();
                    if side == 0 { g.0.push(v) } else { g.1.push(v) }
                }
            }
            for ((key, _), (lefts, rights)) in &groups {
                for l in lefts {
                    for r in rights {
                        add(key, pair("left", Some(l), "right", Some(r)));
                    }
                }
                if rights.is_empty() && kind != JoinKind::Inner {
                    for l in lefts {
                        add(key, pair("left", Some(l), "right", None));
                    }
                }
                if lefts.is_empty() && kind == JoinKind::Outer {
                    for r in rights {
                        add(key, pair("left", None, "right", Some(r)));
                    }
                }
            }
        }
        _ => return None,
    }
    Some(out)
}

fn json_table(entries: impl IntoIterator<Item = (String, Value)>) -> FinalTable {
    table(
        entries
            .into_iter()
            .map(|(k, v)| (k, v.to_string().into_bytes())),
    )
}

/// Both tables' final rows joined on the key: the last update of a key, on either side, meets
/// the other side's final row.
fn table_table(kind: JoinKind, sources: &[Produced]) -> FinalTable {
    let (left, right) = (final_rows(&sources[0].input), final_rows(&sources[1].input));
    let mut keys: BTreeSet<&String> = left.keys().collect();
    if kind == JoinKind::Outer {
        keys.extend(right.keys());
    }
    json_table(keys.into_iter().filter_map(|k| {
        let (l, r) = (left.get(k), right.get(k));
        let keep = match kind {
            JoinKind::Inner => l.is_some() && r.is_some(),
            JoinKind::Left => l.is_some(),
            JoinKind::Outer => true,
        };
        keep.then(|| (k.clone(), pair("left", l, "right", r)))
    }))
}

/// Each order's final row joined with the final row of the user it names (the foreign key).
fn foreign_key(kind: JoinKind, sources: &[Produced]) -> FinalTable {
    let (orders, users) = (final_rows(&sources[0].input), final_rows(&sources[1].input));
    json_table(orders.into_iter().filter_map(|(k, order)| {
        let user = users.get(order["user"].as_str().expect("orders name a user"));
        (user.is_some() || kind == JoinKind::Left)
            .then(|| (k, pair("order", Some(&order), "user", user)))
    }))
}

/// The final output of the single-source cases for `input`, whose records landed on
/// `partitions`.
fn single_source(case: &Case, input: &[InputRecord], partitions: &[i32]) -> Option<FinalTable> {
    let values = || {
        input
            .iter()
            .filter_map(|r| json(r).map(|v| (r.key.clone(), v)))
    };
    let out = match case.model {
        Model::None
        | Model::StreamTable(_)
        | Model::StreamGlobal(_)
        | Model::StreamStream(_)
        | Model::TableTable(_)
        | Model::ForeignKey(_) => return None,
        Model::Count => {
            let mut counts: BTreeMap<String, i64> = BTreeMap::new();
            for (k, _) in values() {
                *counts.entry(k).or_default() += 1;
            }
            table(counts.into_iter().map(|(k, n)| (k, long(n))))
        }
        Model::Sum => {
            let mut sums: BTreeMap<String, i64> = BTreeMap::new();
            for (k, v) in values() {
                *sums.entry(k).or_default() += amount(&v);
            }
            table(sums.into_iter().map(|(k, n)| (k, long(n))))
        }
        Model::Totals => {
            let mut totals: BTreeMap<String, (i64, i64)> = BTreeMap::new();
            for (k, v) in values() {
                let t = totals.entry(k).or_default();
                t.0 += 1;
                t.1 += amount(&v);
            }
            table(totals.into_iter().map(|(k, (count, total))| {
                let v = serde_json::json!({ "count": count, "total": total });
                (k, v.to_string().into_bytes())
            }))
        }
        Model::CountByCategory => {
            let mut counts: BTreeMap<String, i64> = BTreeMap::new();
            for (_, v) in values() {
                *counts.entry(category(&v)).or_default() += 1;
            }
            table(counts.into_iter().map(|(k, n)| (k, long(n))))
        }
        Model::TableTotals => {
            // The table's final state (a key's records share a partition, so input order is
            // their order); every category a user was ever in keeps a total, 0 when emptied.
            let mut users: BTreeMap<String, Option<Value>> = BTreeMap::new();
            let mut touched = BTreeSet::new();
            for r in input {
                let v = json(r);
                if let Some(v) = &v {
                    touched.insert(category(v));
                }
                users.insert(r.key.clone(), v);
            }
            let mut totals: BTreeMap<String, i64> = touched.into_iter().map(|c| (c, 0)).collect();
            for v in users.values().flatten() {
                *totals.entry(category(v)).or_default() += amount(v);
            }
            table(totals.into_iter().map(|(k, n)| (k, long(n))))
        }
        Model::TableOps => {
            let mut users: BTreeMap<String, Option<Value>> = BTreeMap::new();
            for r in input {
                users.insert(r.key.clone(), json(r));
            }
            table(users.into_iter().filter_map(|(k, v)| {
                let a = amount(v.as_ref()?);
                (a > 3).then(|| (k, long(a * 10)))
            }))
        }
        Model::Tumbling | Model::Hopping | Model::Suppressed => {
            windowed_counts(case.model, input, partitions)
        }
    };
    Some(out)
}

/// Window starts of the windows containing `ts` (epoch-aligned, as Kafka Streams' TimeWindows).
fn window_starts(model: Model, ts: i64) -> Vec<i64> {
    let advance = if model == Model::Hopping {
        ADVANCE_MS
    } else {
        SIZE_MS
    };
    let mut start = ts - ts.rem_euclid(advance);
    let mut out = Vec::new();
    while start > ts - SIZE_MS && start >= 0 {
        out.push(start);
        start -= advance;
    }
    out
}

fn windowed_counts(model: Model, input: &[InputRecord], partitions: &[i32]) -> FinalTable {
    let mut counts: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let mut final_stream_time = BTreeMap::new();
    for p in 0..PARTITIONS {
        // Stream time is per task, that is per input partition; records in offset order.
        let mut stream_time = i64::MIN;
        for (r, _) in input.iter().zip(partitions).filter(|(_, q)| **q == p) {
            stream_time = stream_time.max(r.timestamp);
            for start in window_starts(model, r.timestamp) {
                if start + SIZE_MS > stream_time - GRACE_MS {
                    *counts.entry((r.key.clone(), start)).or_default() += 1;
                }
            }
        }
        final_stream_time.insert(p, stream_time);
    }
    let partition_of: BTreeMap<&str, i32> = input
        .iter()
        .zip(partitions)
        .map(|(r, p)| (r.key.as_str(), *p))
        .collect();
    table(
        counts
            .into_iter()
            .filter(|((key, start), _)| {
                // Suppress emits a window once stream time reaches its end plus grace.
                model != Model::Suppressed
                    || start + SIZE_MS + GRACE_MS <= final_stream_time[&partition_of[key.as_str()]]
            })
            .map(|((key, start), n)| {
                let mut k = key.into_bytes();
                k.extend_from_slice(&start.to_be_bytes());
                (k, long(n))
            }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_those_kafka_streams_assigns() {
        assert_eq!(window_starts(Model::Tumbling, 12_000), [10_000]);
        assert_eq!(window_starts(Model::Tumbling, 10_000), [10_000]);
        assert_eq!(window_starts(Model::Hopping, 12_000), [10_000, 5_000]);
        assert_eq!(window_starts(Model::Hopping, 10_000), [10_000, 5_000]);
        assert_eq!(window_starts(Model::Hopping, 9_999), [5_000, 0]);
    }
}
