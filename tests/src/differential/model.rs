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

use super::compare::{Final, FinalTable};
use super::input::{InputRecord, PARTITIONS};
use super::{Case, Model};

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

/// The final output of `case` for `input`, whose records landed on `partitions`; None for cases
/// without a model.
pub fn expected(case: &Case, input: &[InputRecord], partitions: &[i32]) -> Option<FinalTable> {
    let values = || {
        input
            .iter()
            .filter_map(|r| json(r).map(|v| (r.key.clone(), v)))
    };
    let out = match case.model {
        Model::None => return None,
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
