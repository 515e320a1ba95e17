//! Output topics as tables: the final value per key, and the comparison of two of them.
//!
//! Intermediate updates depend on commit and cache timing even between two Java runs, so only the
//! final value of each key counts. A tombstone and an absent key are the same final state (as in
//! a compacted topic): whether a delete of an absent key is sent is a detail (Kafka Streams' KTable
//! filter sends a tombstone for every update it drops unless old values are at hand). Values are compared as bytes, except JSON, which is compared parsed (Kafka
//! Streams' Jackson keeps insertion order; Freshet writes sorted keys). Where both sides hold a
//! value, the key must also be in the same partition: the sinks must partition as Java does.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Case, KeyFormat, ValueFormat};
use crate::kafka::{Received, base_timestamp};

/// The last record of a key in an output topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Final {
    /// None for expectations computed without a broker.
    pub partition: Option<i32>,
    /// None: a tombstone.
    pub value: Option<Vec<u8>>,
    /// How many records the key had.
    pub updates: usize,
}

pub type FinalTable = BTreeMap<Vec<u8>, Final>;

/// The final value per key of records read in partition order. Fails when a key is null or
/// appears in two partitions (its final value would be undefined).
pub fn final_values(records: &[Received]) -> Result<FinalTable, String> {
    let mut table = FinalTable::new();
    for r in records {
        let key = r
            .key
            .clone()
            .ok_or_else(|| format!("a record with a null key in {}", r.topic))?;
        let entry = table.entry(key).or_insert(Final {
            partition: Some(r.partition),
            value: None,
            updates: 0,
        });
        if entry.partition != Some(r.partition) {
            return Err(format!(
                "key {:?} is in partitions {:?} and {} of {}",
                String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()),
                entry.partition,
                r.partition,
                r.topic
            ));
        }
        entry.value = r.value.clone();
        entry.updates += 1;
    }
    Ok(table)
}

/// One key on which two tables disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub key: Vec<u8>,
    pub left: Option<Final>,
    pub right: Option<Final>,
    pub what: &'static str,
}

fn values_equal(format: ValueFormat, a: &[u8], b: &[u8]) -> bool {
    match format {
        ValueFormat::Long => a == b,
        ValueFormat::Json => match (
            serde_json::from_slice::<serde_json::Value>(a),
            serde_json::from_slice::<serde_json::Value>(b),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        },
    }
}

/// Every key whose final state differs between `left` and `right`.
pub fn compare(case: &Case, left: &FinalTable, right: &FinalTable) -> Vec<Mismatch> {
    let mut keys: Vec<&Vec<u8>> = left.keys().chain(right.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for key in keys {
        let (l, r) = (left.get(key), right.get(key));
        let what = match (
            l.and_then(|f| f.value.as_ref()),
            r.and_then(|f| f.value.as_ref()),
        ) {
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => Some("only one side has a value"),
            (Some(a), Some(b)) if !values_equal(case.value, a, b) => Some("values differ"),
            (Some(_), Some(_)) => {
                match (l.and_then(|f| f.partition), r.and_then(|f| f.partition)) {
                    (Some(a), Some(b)) if a != b => Some("partitions differ"),
                    _ => None,
                }
            }
        };
        if let Some(what) = what {
            out.push(Mismatch {
                key: key.clone(),
                left: l.cloned(),
                right: r.cloned(),
                what,
            });
        }
    }
    out
}

/// Keys with more than one record, where the case promises one (suppress emits final results
/// only).
pub fn repeated_keys(case: &Case, table: &FinalTable) -> Vec<String> {
    table
        .iter()
        .filter(|(_, f)| f.updates > 1)
        .map(|(k, f)| format!("{} ({} records)", decode_key(case.key, k), f.updates))
        .collect()
}

fn relative(ts: i64) -> String {
    format!("{:+.3} s", (ts - base_timestamp()) as f64 / 1000.0)
}

fn be_i64(bytes: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(bytes);
    i64::from_be_bytes(b)
}

/// A readable key: windows shown by their bounds relative to the input's time base.
pub fn decode_key(format: KeyFormat, key: &[u8]) -> String {
    let text = |b: &[u8]| format!("{:?}", String::from_utf8_lossy(b));
    match format {
        KeyFormat::String => text(key),
        KeyFormat::Windowed if key.len() >= 8 => {
            let (inner, start) = key.split_at(key.len() - 8);
            format!("{} window start {}", text(inner), relative(be_i64(start)))
        }
        KeyFormat::Session if key.len() >= 16 => {
            let (inner, times) = key.split_at(key.len() - 16);
            let (end, start) = times.split_at(8);
            format!(
                "{} session [{}, {}]",
                text(inner),
                relative(be_i64(start)),
                relative(be_i64(end))
            )
        }
        _ => format!("{key:02x?} (too short for a {format:?} key)"),
    }
}

/// A readable final state.
pub fn decode_final(format: ValueFormat, f: Option<&Final>) -> String {
    let Some(f) = f else {
        return "absent".to_owned();
    };
    let value = match (&f.value, format) {
        (None, _) => "tombstone".to_owned(),
        (Some(v), ValueFormat::Long) if v.len() == 8 => be_i64(v).to_string(),
        (Some(v), ValueFormat::Long) => format!("{v:02x?} (not an 8-byte long)"),
        (Some(v), ValueFormat::Json) => String::from_utf8_lossy(v).into_owned(),
    };
    match f.partition {
        Some(p) => format!("{value} (partition {p}, {} records)", f.updates),
        None => value,
    }
}

/// At most this many mismatches are shown per case; a wholesale difference shows its pattern in
/// far fewer.
const SHOWN: usize = 40;

/// The mismatches as a table to read: key, then each side's final state.
pub fn render(case: &Case, left: &str, right: &str, mismatches: &[Mismatch]) -> String {
    let mut out = String::new();
    if mismatches.len() > SHOWN {
        let _ = writeln!(out, "  (the first {SHOWN} of {})", mismatches.len());
    }
    for m in mismatches.iter().take(SHOWN) {
        let _ = writeln!(
            out,
            "  {}: {}\n      {left}: {}\n      {right}: {}",
            decode_key(case.key, &m.key),
            m.what,
            decode_final(case.value, m.left.as_ref()),
            decode_final(case.value, m.right.as_ref()),
        );
    }
    out
}

/// One record of a stream output, as an element of a multiset: key, value (see `value_text`;
/// None: a tombstone), partition (None in expectations computed without a broker).
pub type Element = (Option<Vec<u8>>, Option<String>, Option<i32>);

/// A stream output as a multiset: how many times each (key, value, partition) was written.
/// Stream outputs are compared this way: every record counts, in whatever order the tasks wrote
/// them (interleaving across partitions, and between a stream-stream join's two inputs, depends on
/// timing).
pub type Multiset = BTreeMap<Element, usize>;

/// JSON with object keys sorted and no whitespace, so equal JSON compares equal as text.
fn canonical_json(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

/// A value as compared: canonical JSON (bytes that are not JSON shown as such), a `long` as its
/// number (other lengths as bytes).
pub fn value_text(format: ValueFormat, bytes: &[u8]) -> String {
    match format {
        ValueFormat::Json => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(v) => canonical_json(&v),
            Err(_) => format!("(not JSON) {:?}", String::from_utf8_lossy(bytes)),
        },
        ValueFormat::Long if bytes.len() == 8 => be_i64(bytes).to_string(),
        ValueFormat::Long => format!("{bytes:02x?} (not an 8-byte long)"),
    }
}

/// The records of an output topic as a multiset.
pub fn multiset(format: ValueFormat, records: &[Received]) -> Multiset {
    let mut out = Multiset::new();
    for r in records {
        let value = r.value.as_deref().map(|v| value_text(format, v));
        *out.entry((r.key.clone(), value, Some(r.partition)))
            .or_default() += 1;
    }
    out
}

/// The same records with their partitions forgotten (to hold them to a model, which has none).
pub fn without_partitions(m: &Multiset) -> Multiset {
    let mut out = Multiset::new();
    for ((k, v, _), n) in m {
        *out.entry((k.clone(), v.clone(), None)).or_default() += n;
    }
    out
}

/// An element written a different number of times by the two sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountMismatch {
    pub element: Element,
    pub left: usize,
    pub right: usize,
}

/// Every element whose count differs between `left` and `right`.
pub fn compare_multisets(left: &Multiset, right: &Multiset) -> Vec<CountMismatch> {
    let mut elements: Vec<&Element> = left.keys().chain(right.keys()).collect();
    elements.sort();
    elements.dedup();
    elements
        .into_iter()
        .filter_map(|e| {
            let (l, r) = (
                left.get(e).copied().unwrap_or(0),
                right.get(e).copied().unwrap_or(0),
            );
            (l != r).then(|| CountMismatch {
                element: e.clone(),
                left: l,
                right: r,
            })
        })
        .collect()
}

/// The first differing records as a list to read: key, partition, value, each side's count.
pub fn render_multiset(
    case: &Case,
    left: &str,
    right: &str,
    mismatches: &[CountMismatch],
) -> String {
    let mut out = String::new();
    if mismatches.len() > SHOWN {
        let _ = writeln!(out, "  (the first {SHOWN} of {})", mismatches.len());
    }
    for m in mismatches.iter().take(SHOWN) {
        let (key, value, partition) = &m.element;
        let key = key
            .as_deref()
            .map_or_else(|| "null key".to_owned(), |k| decode_key(case.key, k));
        let partition = partition.map_or_else(String::new, |p| format!(" (partition {p})"));
        let _ = writeln!(
            out,
            "  {key}{partition}: {}\n      {left}: {} times, {right}: {} times",
            value.as_deref().unwrap_or("tombstone"),
            m.left,
            m.right
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::differential::case;

    fn rec(partition: i32, key: &[u8], value: Option<&[u8]>) -> Received {
        Received {
            topic: "out".into(),
            partition,
            key: Some(key.to_vec()),
            value: value.map(<[u8]>::to_vec),
            timestamp: 0,
            headers: vec![],
        }
    }

    fn long(v: i64) -> Vec<u8> {
        v.to_be_bytes().to_vec()
    }

    #[test]
    fn the_last_record_of_a_key_wins_and_a_tombstone_equals_absence() {
        let records = [
            rec(0, b"u0", Some(&long(1))),
            rec(1, b"u1", Some(&long(1))),
            rec(0, b"u0", Some(&long(2))),
            rec(1, b"u1", None),
        ];
        let table = final_values(&records).expect("valid");
        assert_eq!(table[&b"u0".to_vec()].value, Some(long(2)));
        assert_eq!(table[&b"u0".to_vec()].updates, 2);
        assert_eq!(table[&b"u1".to_vec()].value, None);
        let only_u0 = final_values(&records[..3]).expect("valid");
        let mut without_u1 = only_u0.clone();
        without_u1.remove(b"u1".as_slice());
        assert!(compare(case("count"), &table, &without_u1).is_empty());
    }

    #[test]
    fn a_key_in_two_partitions_is_refused() {
        let err = final_values(&[rec(0, b"u0", Some(b"1")), rec(1, b"u0", Some(b"2"))])
            .expect_err("two partitions");
        assert!(err.contains("partitions"), "{err}");
    }

    /// The harness must see a difference: a mutated value, a missing key, a key in another
    /// partition, and a JSON value with other content; but not JSON that differs only in layout.
    #[test]
    fn a_deliberate_mismatch_is_reported() {
        let count = case("count");
        let java = final_values(&[rec(0, b"u0", Some(&long(5))), rec(1, b"u1", Some(&long(3)))])
            .expect("valid");
        let mut mutated = java.clone();
        mutated.get_mut(b"u0".as_slice()).expect("u0").value = Some(long(6));
        let m = compare(count, &java, &mutated);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].what, "values differ");
        let text = render(count, "java", "freshet", &m);
        assert!(text.contains("\"u0\": values differ"), "{text}");
        assert!(text.contains("java: 5 (partition 0"), "{text}");
        assert!(text.contains("freshet: 6 (partition 0"), "{text}");

        let mut missing = java.clone();
        missing.remove(b"u1".as_slice());
        assert_eq!(
            compare(count, &java, &missing)[0].what,
            "only one side has a value"
        );
        let mut moved = java.clone();
        moved.get_mut(b"u1".as_slice()).expect("u1").partition = Some(0);
        assert_eq!(compare(count, &java, &moved)[0].what, "partitions differ");

        let aggregate = case("aggregate");
        let a = final_values(&[rec(0, b"u0", Some(br#"{"count":2,"total":9}"#))]).expect("valid");
        let same =
            final_values(&[rec(0, b"u0", Some(br#"{ "total": 9, "count": 2 }"#))]).expect("valid");
        let other =
            final_values(&[rec(0, b"u0", Some(br#"{"count":2,"total":9.0}"#))]).expect("valid");
        assert!(compare(aggregate, &a, &same).is_empty());
        assert_eq!(compare(aggregate, &a, &other)[0].what, "values differ");
    }

    #[test]
    fn windowed_keys_are_shown_with_their_window() {
        let base = base_timestamp();
        let mut key = b"u3".to_vec();
        key.extend_from_slice(&(base + 10_000).to_be_bytes());
        assert_eq!(
            decode_key(KeyFormat::Windowed, &key),
            "\"u3\" window start +10.000 s"
        );
        let mut session = b"u3".to_vec();
        session.extend_from_slice(&(base + 12_500).to_be_bytes());
        session.extend_from_slice(&(base + 2_000).to_be_bytes());
        assert_eq!(
            decode_key(KeyFormat::Session, &session),
            "\"u3\" session [+2.000 s, +12.500 s]"
        );
    }

    /// A stream output compared as a multiset: order does not count, but a missing, an extra
    /// or a duplicated record does, and so does a partition; JSON layout does not.
    #[test]
    fn a_deliberate_multiset_mismatch_is_reported() {
        let join = case("stream-table-join");
        let java = multiset(
            join.value,
            &[
                rec(0, b"u0", Some(br#"{"order":1,"user":null}"#)),
                rec(1, b"u1", Some(br#"{"order":2,"user":{"name":"a"}}"#)),
                rec(0, b"u0", Some(br#"{"order":1,"user":null}"#)),
            ],
        );
        let reordered = multiset(
            join.value,
            &[
                rec(1, b"u1", Some(br#"{ "user": {"name": "a"}, "order": 2 }"#)),
                rec(0, b"u0", Some(br#"{"user":null,"order":1}"#)),
                rec(0, b"u0", Some(br#"{"order":1,"user":null}"#)),
            ],
        );
        assert!(compare_multisets(&java, &reordered).is_empty());
        let once = multiset(
            join.value,
            &[
                rec(0, b"u0", Some(br#"{"order":1,"user":null}"#)),
                rec(1, b"u1", Some(br#"{"order":2,"user":{"name":"a"}}"#)),
            ],
        );
        let m = compare_multisets(&java, &once);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].left, m[0].right), (2, 1));
        let text = render_multiset(join, "java", "freshet", &m);
        assert!(
            text.contains(r#""u0" (partition 0): {"order":1,"user":null}"#)
                && text.contains("java: 2 times, freshet: 1 times"),
            "{text}"
        );
        let moved = multiset(
            join.value,
            &[
                rec(0, b"u0", Some(br#"{"order":1,"user":null}"#)),
                rec(0, b"u0", Some(br#"{"order":1,"user":null}"#)),
                rec(0, b"u1", Some(br#"{"order":2,"user":{"name":"a"}}"#)),
            ],
        );
        assert_eq!(compare_multisets(&java, &moved).len(), 2);
        assert!(
            compare_multisets(&without_partitions(&java), &without_partitions(&moved)).is_empty()
        );
        let other_value = multiset(
            join.value,
            &[
                rec(0, b"u0", Some(br#"{"order":1,"user":null}"#)),
                rec(0, b"u0", Some(br#"{"order":1.0,"user":null}"#)),
                rec(1, b"u1", Some(br#"{"order":2,"user":{"name":"a"}}"#)),
            ],
        );
        assert_eq!(compare_multisets(&java, &other_value).len(), 2);
    }

    #[test]
    fn suppress_must_emit_once() {
        let t = final_values(&[rec(0, b"u0", Some(&long(1))), rec(0, b"u0", Some(&long(2)))])
            .expect("valid");
        assert_eq!(repeated_keys(case("count"), &t), ["\"u0\" (2 records)"]);
    }
}
