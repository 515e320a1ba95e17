//! Keys and values of declarative topologies: CEL values, read and written with the serdes
//! manifests name.

use std::sync::Arc;

use cel::Value;

use crate::expr::{json_to_value, value_to_json};
use crate::serdes::{
    Serde, SerdeKind, decode_double, decode_int, decode_long, decode_session, decode_string,
    decode_windowed, encode_session, encode_windowed,
};

/// A windowed key as declarative topologies see it: `{'key': ..., 'start': ..., 'end': ...}`.
/// The value a deletion becomes in a stream of CEL values.
pub fn cel_null() -> crate::dsl::NullFn {
    std::sync::Arc::new(|| crate::processor::datum(Value::Null))
}

/// Whether a datum is a CEL null: taught to the DSL, which does not know CEL's types.
pub fn is_cel_null(d: &crate::processor::Datum) -> bool {
    d.downcast_ref::<Value>()
        .is_some_and(|v| matches!(v, Value::Null))
}

pub fn windowed_value(key: Value, start: i64, end: i64) -> Value {
    let mut map = std::collections::HashMap::new();
    map.insert(
        cel::objects::Key::String(std::sync::Arc::new("key".to_owned())),
        key,
    );
    map.insert(
        cel::objects::Key::String(std::sync::Arc::new("start".to_owned())),
        Value::Int(start),
    );
    map.insert(
        cel::objects::Key::String(std::sync::Arc::new("end".to_owned())),
        Value::Int(end),
    );
    Value::Map(cel::objects::Map {
        map: std::sync::Arc::new(map),
    })
}

/// A serde over CEL values, chosen by name (`string`, `long`, `json`, ...).
pub struct DynSerde(pub SerdeKind);

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "list",
        Value::Map(_) => "map",
        Value::Int(_) => "int",
        Value::UInt(_) => "uint",
        Value::Float(_) => "double",
        Value::String(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "bool",
        Value::Null => "null",
        _ => "an unsupported type",
    }
}

impl Serde<Value> for DynSerde {
    fn name(&self) -> String {
        self.0.to_string()
    }

    fn serialize(&self, value: &Value) -> Result<Option<Vec<u8>>, String> {
        if matches!(value, Value::Null) {
            return Ok(None);
        }
        let wrong = |hint: &str| {
            format!(
                "a {} cannot be written with the {} serde; {hint}",
                type_name(value),
                self.0
            )
        };
        match (&self.0, value) {
            (SerdeKind::String, Value::String(s)) => Ok(Some(s.as_bytes().to_vec())),
            (SerdeKind::String, _) => Err(wrong(
                "convert it with string(...) or choose a matching serde",
            )),
            (SerdeKind::Long, Value::Int(i)) => Ok(Some(i.to_be_bytes().to_vec())),
            (SerdeKind::Long, Value::UInt(u)) => i64::try_from(*u)
                .map(|i| Some(i.to_be_bytes().to_vec()))
                .map_err(|_| format!("{u} does not fit the long serde")),
            (SerdeKind::Int, Value::Int(i)) => i32::try_from(*i)
                .map(|i| Some(i.to_be_bytes().to_vec()))
                .map_err(|_| format!("{i} does not fit the int serde (4 bytes); use long")),
            (SerdeKind::Int, Value::UInt(u)) => i32::try_from(*u)
                .map(|i| Some(i.to_be_bytes().to_vec()))
                .map_err(|_| format!("{u} does not fit the int serde (4 bytes); use long")),
            (SerdeKind::Long | SerdeKind::Int, _) => {
                Err(wrong("convert it with int(...) or choose a matching serde"))
            }
            (SerdeKind::Double, Value::Float(f)) => Ok(Some(f.to_bits().to_be_bytes().to_vec())),
            (SerdeKind::Double, Value::Int(i)) => {
                Ok(Some((*i as f64).to_bits().to_be_bytes().to_vec()))
            }
            (SerdeKind::Double, Value::UInt(u)) => {
                Ok(Some((*u as f64).to_bits().to_be_bytes().to_vec()))
            }
            (SerdeKind::Double, _) => Err(wrong(
                "convert it with double(...) or choose a matching serde",
            )),
            (SerdeKind::Bytes, Value::Bytes(b)) => Ok(Some(b.to_vec())),
            (SerdeKind::Bytes, Value::String(s)) => Ok(Some(s.as_bytes().to_vec())),
            (SerdeKind::Bytes, _) => Err(wrong(
                "convert it with bytes(...) or choose a matching serde",
            )),
            (SerdeKind::Json, v) => {
                let mut out = Vec::with_capacity(64);
                value_to_json(v, &mut out).map_err(|e| e.to_string())?;
                Ok(Some(out))
            }
            (SerdeKind::Avro | SerdeKind::JsonSchema | SerdeKind::Protobuf, _) => {
                Err(crate::registry::UNBOUND.to_owned())
            }
            (SerdeKind::Windowed(inner) | SerdeKind::Session(inner), Value::Map(_)) => {
                let field = |name: &str| map_field(value, name);
                let (Some(key), Some(Value::Int(start)), Some(Value::Int(end))) =
                    (field("key"), field("start"), field("end"))
                else {
                    return Err(wrong(
                        "a windowed key is a map {'key': ..., 'start': ..., 'end': ...}",
                    ));
                };
                let kb = DynSerde((**inner).clone())
                    .serialize(key)?
                    .unwrap_or_default();
                Ok(Some(match &self.0 {
                    SerdeKind::Session(_) => encode_session(&kb, *start, *end),
                    _ => encode_windowed(&kb, *start),
                }))
            }
            (SerdeKind::Windowed(_) | SerdeKind::Session(_), _) => Err(format!(
                "the {} serde needs a windowed aggregation upstream",
                self.0
            )),
        }
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Value, String> {
        let Some(bytes) = bytes else {
            return Ok(Value::Null);
        };
        let e = |err: crate::serdes::DecodeError| err.to_string();
        Ok(match &self.0 {
            SerdeKind::String => Value::String(decode_string(bytes).map_err(e)?.to_owned().into()),
            SerdeKind::Long => Value::Int(decode_long(bytes).map_err(e)?),
            SerdeKind::Int => Value::Int(decode_int(bytes).map_err(e)? as i64),
            SerdeKind::Double => Value::Float(decode_double(bytes).map_err(e)?),
            SerdeKind::Bytes => Value::Bytes(bytes.to_vec().into()),
            SerdeKind::Json => {
                json_to_value(bytes).map_err(|err| format!("invalid JSON: {err}"))?
            }
            SerdeKind::Avro | SerdeKind::JsonSchema | SerdeKind::Protobuf => {
                return Err(crate::registry::UNBOUND.to_owned());
            }
            SerdeKind::Windowed(inner) => {
                let (kb, start) = decode_windowed(bytes).map_err(e)?;
                // The window's end is not in the bytes (Kafka Streams' format leaves it out).
                windowed_value(
                    DynSerde((**inner).clone()).deserialize(Some(kb))?,
                    start,
                    start,
                )
            }
            SerdeKind::Session(inner) => {
                let (kb, start, end) = decode_session(bytes).map_err(e)?;
                windowed_value(
                    DynSerde((**inner).clone()).deserialize(Some(kb))?,
                    start,
                    end,
                )
            }
        })
    }
}

/// Field `field` of a CEL map value.
pub(crate) fn map_field<'a>(v: &'a Value, field: &str) -> Option<&'a Value> {
    match v {
        Value::Map(m) => m.get(&cel::objects::Key::String(Arc::new(field.to_owned()))),
        _ => None,
    }
}
