//! JSON bytes to CEL values and back, canonically.
//!
//! Reading goes straight from the bytes to [`cel::Value`] through a serde visitor: building a
//! `serde_json::Value` first and converting it was measured as the cost of the whole pipeline
//! (parse alone ~1.3M/s, parse plus conversion ~380k/s).
//!
//! Writing is canonical so that the bytes Freshet produces never depend on a hash seed: a CEL
//! map is a `HashMap`, whose iteration order changes from one process to the next, and the same
//! record must give the same output bytes on every replica and after every restart (compacted
//! topics, exactly-once comparisons, tests).

use cel::objects::{Key, Map, Value};
use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Why JSON could not be read, or a value could not be written as JSON.
#[derive(thiserror::Error, Debug)]
pub enum JsonError {
    /// The bytes are not one well-formed JSON value. Displayed as serde_json's message alone
    /// ("expected value at line 1 column 7"): callers add what was being read.
    #[error("{0}")]
    Parse(#[from] serde_json::Error),
    /// The value has no JSON form: a NaN or infinite double, a function, an opaque value, or a
    /// map whose keys collide once written as strings.
    #[error("cannot write as JSON: {0}")]
    Unrepresentable(String),
}

/// Parses one JSON document into a CEL value.
///
/// Objects become maps with string keys, arrays lists; an integer becomes an `int` when it fits
/// an `i64`, else a `uint` when it fits a `u64`, else a `double`; a number with a fraction or an
/// exponent is a `double`; `null` is `null`. A repeated object key keeps its last value, as
/// `serde_json` does. Nesting is limited to 128 levels (serde_json's recursion limit).
pub fn json_to_value(bytes: &[u8]) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = de.deserialize_any(ValueVisitor)?;
    de.end()?;
    Ok(value)
}

struct ValueVisitor;

impl<'de> DeserializeSeed<'de> for ValueVisitor {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        // serde_json reports every non-negative integer as u64: most fit an int, and an int is
        // what CEL literals are, so `value.id == 7` and `value.id * 2` need no conversion.
        Ok(match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(v),
        })
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(Arc::new(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(Arc::new(v)))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(ValueVisitor)? {
            items.push(item);
        }
        Ok(Value::List(Arc::new(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = HashMap::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value_seed(ValueVisitor)?;
            entries.insert(Key::String(key), value);
        }
        Ok(Value::Map(Map {
            map: Arc::new(entries),
        }))
    }
}

/// An object key, shared with the earlier records that had it.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Arc<String>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Arc<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Arc<String>, E> {
        Ok(intern(v))
    }
}

/// Most interned keys a thread keeps, and the longest: enough for the field names of a few
/// schemas, bounded when keys are data (ids as keys) rather than names.
const MAX_INTERNED: usize = 4096;
const MAX_INTERNED_LEN: usize = 64;

thread_local! {
    static KEYS: RefCell<HashMap<Box<str>, Arc<String>>> = RefCell::new(HashMap::new());
}

/// The shared `Arc<String>` for an object key.
///
/// Records of a topic repeat the same field names; a CEL map key is an `Arc<String>`, two
/// allocations (and two frees) per key per record, which was the largest cost of parsing. A
/// cached key costs a hash lookup and a reference count instead.
fn intern(key: &str) -> Arc<String> {
    if key.len() > MAX_INTERNED_LEN {
        return Arc::new(key.to_owned());
    }
    KEYS.try_with(|keys| {
        // Not re-entered: nothing below calls back into deserialization.
        let mut keys = keys.borrow_mut();
        if let Some(shared) = keys.get(key) {
            return Arc::clone(shared);
        }
        let shared = Arc::new(key.to_owned());
        if keys.len() < MAX_INTERNED {
            keys.insert(key.into(), Arc::clone(&shared));
        }
        shared
    })
    // The thread is exiting and its cache is gone.
    .unwrap_or_else(|_| Arc::new(key.to_owned()))
}

/// Appends the canonical JSON of `value` to `out`.
///
/// Canonical: object keys sorted by their UTF-8 bytes, no whitespace, strings escaped as
/// serde_json escapes them, `int`/`uint` as integers, doubles as serde_json writes an `f64`
/// (shortest round-trip form, `150.0` for an integral one). Bytes become a standard base64
/// string (with padding), timestamps an RFC 3339 string in UTC with a trimmed fraction
/// (`2024-05-01T12:00:00.5Z`, CEL's `string(ts)`), durations seconds with a trimmed fraction
/// (`1.5s`, CEL's `string(d)`), an `optional` its value or `null`. Map keys that are not
/// strings are written as their decimal or `true`/`false` text.
///
/// On error `out` may hold part of the value: truncate it to its previous length to retry.
pub fn value_to_json(value: &Value, out: &mut Vec<u8>) -> Result<(), JsonError> {
    write_value(value, out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), JsonError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => write_json(out, i)?,
        Value::UInt(u) => write_json(out, u)?,
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(JsonError::Unrepresentable(format!(
                    "the double {f} has no JSON form"
                )));
            }
            write_json(out, f)?;
        }
        Value::String(s) => write_json(out, s.as_str())?,
        Value::Bytes(b) => {
            out.push(b'"');
            base64_into(b, out);
            out.push(b'"');
        }
        Value::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Map(map) => write_map(map, out)?,
        Value::Timestamp(ts) => {
            let nanos = ts.timestamp_subsec_nanos() % 1_000_000_000;
            let base = ts.naive_utc().format("%Y-%m-%dT%H:%M:%S");
            let text = if nanos == 0 {
                format!("{base}Z")
            } else {
                let frac = format!("{nanos:09}");
                format!("{base}.{}Z", frac.trim_end_matches('0'))
            };
            write_json(out, text.as_str())?;
        }
        Value::Duration(d) => {
            let secs = d.num_seconds();
            let nanos = d.subsec_nanos();
            let sign = if secs < 0 || nanos < 0 { "-" } else { "" };
            let (secs, nanos) = (secs.unsigned_abs(), nanos.unsigned_abs());
            let text = if nanos == 0 {
                format!("{sign}{secs}s")
            } else {
                let frac = format!("{nanos:09}");
                format!("{sign}{secs}.{}s", frac.trim_end_matches('0'))
            };
            write_json(out, text.as_str())?;
        }
        Value::Opaque(opaque) => {
            if let Some(optional) = opaque.downcast_ref::<cel::objects::OptionalValue>() {
                match optional.value() {
                    Some(inner) => write_value(inner, out)?,
                    None => out.extend_from_slice(b"null"),
                }
            } else {
                return Err(JsonError::Unrepresentable(format!(
                    "a value of type '{}' has no JSON form",
                    opaque.runtime_type_name()
                )));
            }
        }
        Value::Function(name, _) => {
            return Err(JsonError::Unrepresentable(format!(
                "the function '{name}' has no JSON form"
            )));
        }
        Value::Struct(_) => {
            return Err(JsonError::Unrepresentable(
                "a struct value has no JSON form".to_owned(),
            ));
        }
    }
    Ok(())
}

fn write_map(map: &Map, out: &mut Vec<u8>) -> Result<(), JsonError> {
    let mut entries: Vec<(Cow<'_, str>, &Value)> = map
        .map
        .iter()
        .map(|(key, value)| {
            let key = match key {
                Key::String(s) => Cow::Borrowed(s.as_str()),
                Key::Int(i) => Cow::Owned(i.to_string()),
                Key::Uint(u) => Cow::Owned(u.to_string()),
                Key::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            };
            (key, value)
        })
        .collect();
    // `str`'s order is the order of its UTF-8 bytes.
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let repeated = entries.windows(2).find_map(|pair| match pair {
        [a, b] if a.0 == b.0 => Some(&a.0),
        _ => None,
    });
    if let Some(key) = repeated {
        return Err(JsonError::Unrepresentable(format!(
            "the map has two keys written as \"{key}\""
        )));
    }
    out.push(b'{');
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(out, key.as_ref())?;
        out.push(b':');
        write_value(value, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// serde_json's own writing of a scalar, so numbers and string escapes match what serde_json
/// (and so most of the ecosystem) produces.
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> Result<(), JsonError> {
    // Writing to a `Vec` cannot fail; a `Serialize` of a scalar has nothing else to refuse.
    serde_json::to_writer(&mut *out, v).map_err(|e| JsonError::Unrepresentable(e.to_string()))
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 section 4), the encoding protobuf's JSON mapping and
/// CEL's `base64.encode` use for bytes.
fn base64_into(bytes: &[u8], out: &mut Vec<u8>) {
    let sym = |i: u32| BASE64[(i & 0x3f) as usize];
    let mut chunks = bytes.chunks_exact(3);
    for chunk in &mut chunks {
        if let [a, b, c] = *chunk {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c);
            out.extend_from_slice(&[sym(n >> 18), sym(n >> 12), sym(n >> 6), sym(n)]);
        }
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[sym(n >> 18), sym(n >> 12), b'=', b'=']);
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.extend_from_slice(&[sym(n >> 18), sym(n >> 12), sym(n >> 6), b'=']);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn to_json(value: &Value) -> String {
        let mut out = Vec::new();
        value_to_json(value, &mut out).expect("writable");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn numbers_keep_their_kind() {
        let v = json_to_value(br#"{"id": 7, "amount": 150.0, "big": 18446744073709551615, "huge": 1e400, "neg": -3, "over": 100000000000000000000}"#);
        // 1e400 overflows f64: serde_json refuses it.
        assert!(v.is_err());
        let v = json_to_value(
            br#"{"id": 7, "amount": 150.0, "big": 18446744073709551615, "neg": -3, "over": 100000000000000000000}"#,
        )
        .expect("valid");
        let Value::Map(m) = v else {
            panic!("not a map: {v:?}")
        };
        let get = |k: &str| m.map.get(&Key::from(k)).cloned();
        assert_eq!(get("id"), Some(Value::Int(7)));
        assert!(matches!(get("amount"), Some(Value::Float(f)) if f == 150.0));
        assert!(matches!(get("big"), Some(Value::UInt(u64::MAX))));
        assert!(matches!(get("neg"), Some(Value::Int(-3))));
        assert!(matches!(get("over"), Some(Value::Float(f)) if f == 1e20));
    }

    #[test]
    fn canonical_output_sorts_keys_and_keeps_doubles_as_doubles() {
        let v = json_to_value(r#" { "b" : [1, 2.5, 150.0, true, null], "a": {"z": "x\ny", "é": "\u00e9", "A": -0.0}, "c": 18446744073709551615 } "#.as_bytes())
            .expect("valid");
        assert_eq!(
            to_json(&v),
            r#"{"a":{"A":-0.0,"z":"x\ny","é":"é"},"b":[1,2.5,150.0,true,null],"c":18446744073709551615}"#
        );
    }

    #[test]
    fn non_string_keys_are_stringified_and_sorted_as_strings() {
        let map: HashMap<Key, Value> = HashMap::from([
            (Key::Int(10), Value::Int(1)),
            (Key::Int(9), Value::Int(2)),
            (Key::Bool(true), Value::Int(3)),
            (Key::Uint(11), Value::Int(4)),
        ]);
        let v = Value::Map(Map { map: Arc::new(map) });
        assert_eq!(to_json(&v), r#"{"10":1,"11":4,"9":2,"true":3}"#);
    }

    #[test]
    fn colliding_keys_are_an_error() {
        let map: HashMap<Key, Value> = HashMap::from([
            (Key::Int(1), Value::Int(1)),
            (Key::from("1"), Value::Int(2)),
        ]);
        let v = Value::Map(Map { map: Arc::new(map) });
        let err = value_to_json(&v, &mut Vec::new()).expect_err("collision");
        assert!(err.to_string().contains("\"1\""), "{err}");
    }

    #[test]
    fn nan_and_infinity_are_errors() {
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = value_to_json(&Value::Float(f), &mut Vec::new()).expect_err("non-finite");
            assert!(matches!(err, JsonError::Unrepresentable(_)));
        }
    }

    #[test]
    fn bytes_timestamps_and_durations_have_string_forms() {
        assert_eq!(to_json(&Value::Bytes(Arc::new(b"".to_vec()))), r#""""#);
        assert_eq!(to_json(&Value::Bytes(Arc::new(b"f".to_vec()))), r#""Zg==""#);
        assert_eq!(
            to_json(&Value::Bytes(Arc::new(b"fo".to_vec()))),
            r#""Zm8=""#
        );
        assert_eq!(
            to_json(&Value::Bytes(Arc::new(b"foobar".to_vec()))),
            r#""Zm9vYmFy""#
        );
        assert_eq!(
            to_json(&Value::Bytes(Arc::new(vec![0xfb, 0xff]))),
            r#""+/8=""#
        );

        let env = crate::expr::ExprEnv::new();
        let eval = |src: &str| {
            crate::expr::Expr::compile(src, &[])
                .expect("compiles")
                .eval(&env, &crate::expr::Bindings::default())
                .expect("evaluates")
        };
        assert_eq!(
            to_json(&eval("timestamp('2024-05-01T14:00:00.500+02:00')")),
            r#""2024-05-01T12:00:00.5Z""#
        );
        assert_eq!(
            to_json(&eval("timestamp('2024-05-01T12:00:00Z')")),
            r#""2024-05-01T12:00:00Z""#
        );
        assert_eq!(to_json(&eval("duration('1.5s')")), r#""1.5s""#);
        assert_eq!(to_json(&eval("duration('-90m')")), r#""-5400s""#);
        assert_eq!(to_json(&eval("duration('-0.25s')")), r#""-0.25s""#);
        assert_eq!(to_json(&eval("optional.of(1)")), "1");
        assert_eq!(to_json(&eval("optional.none()")), "null");
    }

    #[test]
    fn trailing_data_and_bad_json_are_errors() {
        assert!(json_to_value(b"{} x").is_err());
        assert!(json_to_value(b"{\"a\":}").is_err());
        assert!(json_to_value(b"").is_err());
        assert!(json_to_value(b"\"\xff\"").is_err(), "invalid UTF-8");
        assert_eq!(json_to_value(b" 3 ").expect("scalar"), Value::Int(3));
    }

    /// Arbitrary JSON documents, written canonically by serde_json itself: its `Map` is a
    /// `BTreeMap` (sorted by `String`'s order, which is UTF-8 byte order) and `to_vec` writes no
    /// whitespace, so its output is the canonical form of the document.
    fn canonical_json() -> impl Strategy<Value = Vec<u8>> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            (-1.0e6f64..1.0e6).prop_map(|f| serde_json::Value::from(f.round())),
            ".*".prop_map(serde_json::Value::String),
        ];
        let tree = leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
        tree.prop_map(|v| serde_json::to_vec(&v).expect("serializable"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn canonical_json_round_trips_byte_for_byte(input in canonical_json()) {
            let value = json_to_value(&input).expect("valid JSON");
            let mut out = Vec::new();
            value_to_json(&value, &mut out).expect("writable");
            prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&input));
        }
    }
}
