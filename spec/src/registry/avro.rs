//! The `avro` serde: Avro data in Confluent's wire format, read into CEL values and written from
//! them (docs/manifest-reference.md lists the CEL type of each Avro type).
//!
//! Reading: the writer schema is fetched by the id in the record (and cached); with a reader
//! schema given, the datum is resolved against it (Avro's schema evolution). Writing: the schema
//! is the one the manifest gives, or the subject's latest (`use.latest.version`); its id comes from
//! registering it under the subject (`auto.register.schemas`) or looking it up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use apache_avro::Schema;
use apache_avro::schema::{Name, RecordSchema, UnionSchema};
use apache_avro::types::Value as Avro;
use cel::Value;
use cel::objects::Key;

use super::{RegistryClient, frame, type_name, unframe};
use crate::serdes::Serde;

/// Where an `avro` serde writes, and with which schema.
#[derive(Clone, Debug)]
pub struct AvroTarget {
    /// The topic written (for the subject), `None` for a serde that only reads.
    pub topic: Option<String>,
    /// Whether it serializes keys (`<topic>-key`) or values.
    pub is_key: bool,
    /// The schema given in the manifest: the writer schema of a sink, the reader schema of a
    /// source.
    pub schema: Option<Arc<Schema>>,
}

/// A schema with its named types, worked out once: building the names clones every named
/// schema, which per record cost as much as the decoding itself.
struct Named {
    schema: Arc<Schema>,
    /// The schemas it refers to (registry schema references), which define some of its names.
    referenced: Vec<Schema>,
    names: Names,
}

impl Named {
    fn new(schema: Arc<Schema>) -> Arc<Named> {
        Named::with_references(schema, Vec::new())
    }

    fn with_references(schema: Arc<Schema>, referenced: Vec<Schema>) -> Arc<Named> {
        let mut names = names_of(&schema);
        for r in &referenced {
            names.extend(names_of(r));
        }
        Arc::new(Named {
            schema,
            referenced,
            names,
        })
    }

    /// Encodes `datum` (a datum of this schema).
    fn encode(&self, datum: Avro) -> apache_avro::AvroResult<Vec<u8>> {
        if self.referenced.is_empty() {
            return apache_avro::to_avro_datum(&self.schema, datum);
        }
        apache_avro::to_avro_datum_schemata(&self.schema, self.schemata(), datum)
    }

    /// The referenced schemas, then this one: apache-avro resolves names in list order.
    fn schemata(&self) -> Vec<&Schema> {
        let mut schemata: Vec<&Schema> = self.referenced.iter().collect();
        schemata.push(&self.schema);
        schemata
    }

    /// Decodes `payload`, resolved against `reader` when given.
    fn decode(
        &self,
        payload: &mut &[u8],
        reader: Option<&Schema>,
    ) -> apache_avro::AvroResult<Avro> {
        if self.referenced.is_empty() {
            return apache_avro::from_avro_datum(&self.schema, payload, reader);
        }
        apache_avro::from_avro_datum_schemata(&self.schema, self.schemata(), payload, reader)
    }
}

/// The `avro` serde over CEL values.
pub struct AvroSerde {
    client: Arc<RegistryClient>,
    target: AvroTarget,
    /// The manifest's schema (a source's reader schema) with its names.
    given: Option<Arc<Named>>,
    /// Writer schemas by id, parsed once.
    parsed: Mutex<HashMap<u32, Arc<Named>>>,
    /// The schema and id a sink writes with, once known.
    writer: Mutex<Option<(Arc<Named>, u32)>>,
    /// Writer schema ids that are the manifest's schema itself ([`AvroSerde::is_given`]).
    same_as_given: Mutex<HashMap<u32, bool>>,
}

impl AvroSerde {
    /// An `avro` serde over `client`'s registry.
    pub fn new(client: Arc<RegistryClient>, target: AvroTarget) -> AvroSerde {
        AvroSerde {
            client,
            given: target.schema.clone().map(Named::new),
            target,
            parsed: Mutex::new(HashMap::new()),
            writer: Mutex::new(None),
            same_as_given: Mutex::new(HashMap::new()),
        }
    }

    fn writer_schema(&self, id: u32) -> Result<Arc<Named>, String> {
        if let Some(s) = lock(&self.parsed).get(&id) {
            return Ok(s.clone());
        }
        let registered = super::fetch_by_id(&self.client, id, "AVRO", "avro")?;
        let schema = self.parse_registered(&registered, id)?;
        lock(&self.parsed).insert(id, schema.clone());
        Ok(schema)
    }

    /// A registry's schema (id `id`) parsed, with the types it takes from other subjects
    /// (schema references).
    fn parse_registered(
        &self,
        registered: &super::RegisteredSchema,
        id: u32,
    ) -> Result<Arc<Named>, String> {
        let referenced = super::referenced_texts(&self.client, registered, id)
            .map_err(|e| format!("avro: {e}"))?;
        if referenced.is_empty() {
            let schema = Schema::parse_str(&registered.schema)
                .map_err(|e| format!("avro: schema id {id} does not parse: {e}"))?;
            return Ok(Named::new(Arc::new(schema)));
        }
        let (schema, referenced) = Schema::parse_str_with_list(&registered.schema, &referenced)
            .map_err(|e| {
                format!("avro: schema id {id} does not parse with the schemas it refers to: {e}")
            })?;
        Ok(Named::with_references(Arc::new(schema), referenced))
    }

    /// Whether the writer schema with id `id` is the manifest's schema itself, as for a store,
    /// a repartition topic or a topic the application writes and reads again: such records
    /// decode without resolution, which would gain nothing, and which apache-avro refuses for a
    /// `bytes` decimal shorter than its precision could need ("Precision 12 too small to hold
    /// decimal values with 2 bytes"). Decided once per id.
    fn is_given(&self, id: u32, writer: &Named, given: &Named) -> bool {
        if let Some(same) = lock(&self.same_as_given).get(&id) {
            return *same;
        }
        // The schemas as written, logical types included (the canonical form drops them).
        let same =
            serde_json::to_value(&*writer.schema).ok() == serde_json::to_value(&*given.schema).ok();
        lock(&self.same_as_given).insert(id, same);
        same
    }

    fn sink_schema(&self) -> Result<(Arc<Named>, u32), String> {
        if let Some(w) = lock(&self.writer).as_ref() {
            return Ok(w.clone());
        }
        let record_name = self.target.schema.as_ref().and_then(|s| full_name(s));
        let subject = super::sink_subject(
            &self.client,
            "avro",
            self.target.topic.as_deref(),
            self.target.is_key,
            record_name.as_deref(),
        )?;
        let pair = if self.client.settings().use_latest_version {
            let latest = super::latest_of(&self.client, "avro", &subject)?;
            let named = self.parse_registered(&latest, latest.id).map_err(|e| {
                format!("{e} (the latest schema of subject '{subject}', for use.latest.version)")
            })?;
            (named, latest.id)
        } else {
            let schema = self.target.schema.clone().ok_or_else(|| {
                format!(
                    "avro: no schema to write topic '{}' with: give the step's {} (an Avro schema) or set use.latest.version=true",
                    self.target.topic.as_deref().unwrap_or_default(),
                    if self.target.is_key { "keySchema" } else { "valueSchema" }
                )
            })?;
            // The schema as given (logical types, defaults and docs included), not its
            // canonical form, which drops them.
            let text = serde_json::to_string(&*schema).map_err(|e| format!("avro: {e}"))?;
            let id = super::register(&self.client, "avro", &subject, &text, "AVRO")?;
            let named = match &self.given {
                Some(given) => given.clone(),
                None => Named::new(schema),
            };
            (named, id)
        };
        *lock(&self.writer) = Some(pair.clone());
        Ok(pair)
    }
}

impl Serde<Value> for AvroSerde {
    fn name(&self) -> String {
        "avro".to_owned()
    }

    fn serialize(&self, value: &Value) -> Result<Option<Vec<u8>>, String> {
        if matches!(value, Value::Null) {
            return Ok(None);
        }
        let (named, id) = self.sink_schema()?;
        let datum = to_avro(value, &named.schema, &named.names, "")
            .map_err(|e| format!("avro (schema id {id}): {e}"))?;
        let payload = named
            .encode(datum)
            .map_err(|e| format!("avro (schema id {id}): {e}"))?;
        Ok(Some(frame(id, &payload)))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Value, String> {
        let Some(bytes) = bytes else {
            return Ok(Value::Null);
        };
        let (id, mut payload) = unframe(bytes).map_err(|e| format!("avro: {e}"))?;
        let writer = self.writer_schema(id)?;
        let reader = self
            .given
            .as_ref()
            .filter(|given| !self.is_given(id, &writer, given))
            .map(|g| &*g.schema);
        let datum = writer
            .decode(&mut payload, reader)
            .map_err(|e| format!("avro: the record does not decode with schema id {id}: {e}"))?;
        let named = self.given.as_ref().unwrap_or(&writer);
        Ok(to_cel(datum, &named.schema, &named.names))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

type Names = HashMap<Name, Schema>;

/// The named types of `schema`, for resolving references (`Schema::Ref`).
fn names_of(schema: &Schema) -> Names {
    fn walk(s: &Schema, out: &mut Names) {
        match s {
            Schema::Record(r) => {
                out.insert(r.name.clone(), s.clone());
                for f in &r.fields {
                    walk(&f.schema, out);
                }
            }
            Schema::Enum(e) => {
                out.insert(e.name.clone(), s.clone());
            }
            Schema::Fixed(f) => {
                out.insert(f.name.clone(), s.clone());
            }
            Schema::Array(a) => walk(&a.items, out),
            Schema::Map(m) => walk(&m.types, out),
            Schema::Union(u) => u.variants().iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = HashMap::new();
    walk(schema, &mut out);
    out
}

fn full_name(schema: &Schema) -> Option<String> {
    match schema {
        Schema::Record(RecordSchema { name, .. }) => Some(name.fullname(None)),
        Schema::Enum(e) => Some(e.name.fullname(None)),
        Schema::Fixed(f) => Some(f.name.fullname(None)),
        _ => None,
    }
}

fn key(s: &str) -> Key {
    Key::String(Arc::new(s.to_owned()))
}

fn resolve<'a>(schema: &'a Schema, names: &'a Names) -> &'a Schema {
    match schema {
        Schema::Ref { name } => names.get(name).unwrap_or(schema),
        other => other,
    }
}

/// An Avro datum as expressions see it.
fn to_cel(datum: Avro, schema: &Schema, names: &Names) -> Value {
    let schema = resolve(schema, names);
    match datum {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Bool(b),
        Avro::Int(i) | Avro::Date(i) | Avro::TimeMillis(i) => Value::Int(i.into()),
        Avro::Long(i) | Avro::TimeMicros(i) => Value::Int(i),
        Avro::Float(f) => Value::Float(f.into()),
        Avro::Double(f) => Value::Float(f),
        Avro::Bytes(b) | Avro::Fixed(_, b) => Value::Bytes(Arc::new(b)),
        Avro::String(s) | Avro::Enum(_, s) => Value::String(Arc::new(s)),
        Avro::Uuid(u) => Value::String(Arc::new(u.to_string())),
        // The schemas below are borrowed, never cloned: this runs for every record.
        Avro::Union(i, inner) => {
            let branch = match schema {
                Schema::Union(u) => u.variants().get(i as usize),
                _ => None,
            };
            to_cel(*inner, branch.unwrap_or(schema), names)
        }
        Avro::Array(items) => {
            let item_schema: &Schema = match schema {
                Schema::Array(a) => &a.items,
                other => other,
            };
            Value::List(Arc::new(
                items
                    .into_iter()
                    .map(|v| to_cel(v, item_schema, names))
                    .collect(),
            ))
        }
        Avro::Map(m) => {
            let value_schema: &Schema = match schema {
                Schema::Map(m) => &m.types,
                other => other,
            };
            let map: HashMap<Key, Value> = m
                .into_iter()
                .map(|(k, v)| (Key::String(Arc::new(k)), to_cel(v, value_schema, names)))
                .collect();
            Value::Map(cel::objects::Map { map: Arc::new(map) })
        }
        Avro::Record(fields) => {
            let record = match schema {
                Schema::Record(r) => Some(r),
                _ => None,
            };
            let map: HashMap<Key, Value> = fields
                .into_iter()
                .enumerate()
                .map(|(i, (name, v))| {
                    // The datum's fields come in the schema's order: the i-th is the i-th.
                    let s = record
                        .and_then(|r| {
                            r.fields
                                .get(i)
                                .filter(|f| f.name == name)
                                .or_else(|| r.fields.iter().find(|f| f.name == name))
                        })
                        .map_or(schema, |f| &f.schema);
                    let v = to_cel(v, s, names);
                    (Key::String(Arc::new(name)), v)
                })
                .collect();
            Value::Map(cel::objects::Map { map: Arc::new(map) })
        }
        Avro::TimestampMillis(ms) | Avro::LocalTimestampMillis(ms) => timestamp(ms, 1_000_000),
        Avro::TimestampMicros(us) | Avro::LocalTimestampMicros(us) => timestamp(us, 1_000),
        Avro::TimestampNanos(ns) | Avro::LocalTimestampNanos(ns) => timestamp(ns, 1),
        Avro::Decimal(d) => {
            let scale = match schema {
                Schema::Decimal(d) => d.scale,
                _ => 0,
            };
            let unscaled: Vec<u8> = Vec::<u8>::try_from(&d).unwrap_or_default();
            Value::String(Arc::new(decimal_text(&unscaled, scale)))
        }
        Avro::BigDecimal(d) => Value::String(Arc::new(d.to_string())),
        Avro::Duration(d) => {
            let months: u32 = d.months().into();
            let days: u32 = d.days().into();
            let millis: u32 = d.millis().into();
            let map: HashMap<Key, Value> = [
                (key("months"), Value::Int(months.into())),
                (key("days"), Value::Int(days.into())),
                (key("millis"), Value::Int(millis.into())),
            ]
            .into_iter()
            .collect();
            Value::Map(cel::objects::Map { map: Arc::new(map) })
        }
    }
}

/// A CEL timestamp (UTC) from `n` units of `nanos_per_unit` nanoseconds since the epoch.
fn timestamp(n: i64, nanos_per_unit: i64) -> Value {
    let nanos = i128::from(n) * i128::from(nanos_per_unit);
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    match chrono::DateTime::from_timestamp(secs, sub) {
        Some(t) => Value::Timestamp(t.fixed_offset()),
        None => Value::Int(n),
    }
}

/// The decimal text of a two's complement big-endian unscaled value with `scale` digits after
/// the point (`"12.34"`), exact at any precision.
fn decimal_text(unscaled: &[u8], scale: usize) -> String {
    let n = num_bigint::BigInt::from_signed_bytes_be(unscaled);
    let digits = n.magnitude().to_string();
    let sign = if n.sign() == num_bigint::Sign::Minus {
        "-"
    } else {
        ""
    };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// The unscaled two's complement bytes of decimal text at `scale`.
fn decimal_bytes(text: &str, scale: usize) -> Result<Vec<u8>, String> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > scale {
        return Err(format!(
            "{text} has more than {scale} digits after the point (the decimal's scale)"
        ));
    }
    let digits = format!("{int}{frac:0<scale$}");
    let n: num_bigint::BigInt = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a decimal number"))?;
    Ok(n.to_signed_bytes_be())
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::UInt(u) => i64::try_from(*u).ok(),
        _ => None,
    }
}

/// A CEL value as a datum of `schema`; `at` is the field path, for errors.
fn to_avro(v: &Value, schema: &Schema, names: &Names, at: &str) -> Result<Avro, String> {
    let schema = resolve(schema, names);
    let here = if at.is_empty() { "the value" } else { at };
    let wrong = || {
        format!(
            "{here}: a {} does not fit the schema's {}",
            type_name(v),
            schema_kind(schema)
        )
    };
    Ok(match (schema, v) {
        (Schema::Null, Value::Null) => Avro::Null,
        (Schema::Boolean, Value::Bool(b)) => Avro::Boolean(*b),
        (Schema::Int, _) => Avro::Int(
            int_of(v)
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(wrong)?,
        ),
        (Schema::Long, _) => Avro::Long(int_of(v).ok_or_else(wrong)?),
        (Schema::Float, Value::Float(f)) => Avro::Float(*f as f32),
        (Schema::Float, _) => Avro::Float(int_of(v).ok_or_else(wrong)? as f32),
        (Schema::Double, Value::Float(f)) => Avro::Double(*f),
        (Schema::Double, _) => Avro::Double(int_of(v).ok_or_else(wrong)? as f64),
        (Schema::Bytes, Value::Bytes(b)) => Avro::Bytes(b.to_vec()),
        (Schema::String, Value::String(s)) => Avro::String(s.to_string()),
        (Schema::Uuid, Value::String(s)) => Avro::Uuid(
            s.parse()
                .map_err(|_| format!("{here}: '{s}' is not a UUID"))?,
        ),
        (Schema::Fixed(f), Value::Bytes(b)) if b.len() == f.size => Avro::Fixed(f.size, b.to_vec()),
        (Schema::Enum(e), Value::String(s)) => {
            let i = e
                .symbols
                .iter()
                .position(|x| x == s.as_str())
                .ok_or_else(|| {
                    format!(
                        "{here}: '{s}' is not a symbol of enum {} ({})",
                        e.name.fullname(None),
                        e.symbols.join(", ")
                    )
                })?;
            Avro::Enum(i as u32, s.to_string())
        }
        (Schema::Array(a), Value::List(items)) => Avro::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| to_avro(x, &a.items, names, &format!("{here}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        (Schema::Map(m), Value::Map(map)) => Avro::Map(
            map.map
                .iter()
                .map(|(k, x)| {
                    let k = match k {
                        Key::String(s) => s.to_string(),
                        other => format!("{other:?}"),
                    };
                    let x = to_avro(x, &m.types, names, &format!("{here}['{k}']"))?;
                    Ok((k, x))
                })
                .collect::<Result<_, String>>()?,
        ),
        (Schema::Record(r), Value::Map(map)) => {
            if let Some(extra) = map.map.keys().find_map(|k| match k {
                Key::String(s) if !r.lookup.contains_key(s.as_str()) => Some(s.to_string()),
                _ => None,
            }) {
                return Err(format!(
                    "{here}: field '{extra}' is not in record {} (fields: {})",
                    r.name.fullname(None),
                    r.fields
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let mut fields = Vec::with_capacity(r.fields.len());
            for f in &r.fields {
                let path = if at.is_empty() {
                    f.name.clone()
                } else {
                    format!("{at}.{}", f.name)
                };
                let datum = match map.map.get(&key(&f.name)) {
                    Some(x) => to_avro(x, &f.schema, names, &path)?,
                    None => match &f.default {
                        Some(d) => Avro::from(d.clone())
                            .resolve(&f.schema)
                            .map_err(|e| format!("{path}: its default: {e}"))?,
                        None if accepts_null(&f.schema) => {
                            to_avro(&Value::Null, &f.schema, names, &path)?
                        }
                        None => {
                            return Err(format!(
                                "{path}: missing, and the schema gives it no default"
                            ));
                        }
                    },
                };
                fields.push((f.name.clone(), datum));
            }
            Avro::Record(fields)
        }
        (Schema::Union(u), _) => union(u, v, names, here)?,
        (Schema::Date, _) => Avro::Date(
            int_of(v)
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(wrong)?,
        ),
        (Schema::TimeMillis, _) => Avro::TimeMillis(
            int_of(v)
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(wrong)?,
        ),
        (Schema::TimeMicros, _) => Avro::TimeMicros(int_of(v).ok_or_else(wrong)?),
        (Schema::TimestampMillis | Schema::LocalTimestampMillis, Value::Timestamp(t)) => {
            Avro::TimestampMillis(t.timestamp_millis())
        }
        (Schema::TimestampMicros | Schema::LocalTimestampMicros, Value::Timestamp(t)) => {
            Avro::TimestampMicros(t.timestamp_micros())
        }
        (Schema::TimestampNanos | Schema::LocalTimestampNanos, Value::Timestamp(t)) => {
            Avro::TimestampNanos(t.timestamp_nanos_opt().ok_or_else(wrong)?)
        }
        (Schema::TimestampMillis, _) => Avro::TimestampMillis(int_of(v).ok_or_else(wrong)?),
        (Schema::TimestampMicros, _) => Avro::TimestampMicros(int_of(v).ok_or_else(wrong)?),
        (Schema::Decimal(d), Value::String(s)) => Avro::Decimal(apache_avro::Decimal::from(
            decimal_bytes(s, d.scale).map_err(|e| format!("{here}: {e}"))?,
        )),
        (Schema::Decimal(d), _) if int_of(v).is_some() => {
            Avro::Decimal(apache_avro::Decimal::from(
                decimal_bytes(&int_of(v).unwrap_or_default().to_string(), d.scale)
                    .map_err(|e| format!("{here}: {e}"))?,
            ))
        }
        _ => return Err(wrong()),
    })
}

fn accepts_null(schema: &Schema) -> bool {
    matches!(schema, Schema::Null)
        || matches!(schema, Schema::Union(u) if u.variants().iter().any(|s| matches!(s, Schema::Null)))
}

/// The first branch of the union the value fits (null first for a null), as Confluent's
/// serializers pick it.
fn union(u: &UnionSchema, v: &Value, names: &Names, here: &str) -> Result<Avro, String> {
    for (i, branch) in u.variants().iter().enumerate() {
        if matches!(v, Value::Null) != matches!(branch, Schema::Null) {
            continue;
        }
        if let Ok(datum) = to_avro(v, branch, names, here) {
            return Ok(Avro::Union(i as u32, Box::new(datum)));
        }
    }
    Err(format!(
        "{here}: a {} fits no branch of the union [{}]",
        type_name(v),
        u.variants()
            .iter()
            .map(schema_kind)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn schema_kind(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => format!("record {}", r.name.fullname(None)),
        Schema::Enum(e) => format!("enum {}", e.name.fullname(None)),
        Schema::Fixed(f) => format!("fixed {}", f.name.fullname(None)),
        Schema::Ref { name } => name.fullname(None),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_lowercase(),
    }
}

/// Parses an Avro schema given in a manifest (JSON text).
pub fn parse_schema(text: &str) -> Result<Arc<Schema>, String> {
    Schema::parse_str(text)
        .map(Arc::new)
        .map_err(|e| format!("not an Avro schema: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
        {"name":"id","type":"long"},
        {"name":"note","type":["null","string"],"default":null},
        {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},
        {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
        {"name":"tags","type":{"type":"array","items":"string"}},
        {"name":"attrs","type":{"type":"map","values":"int"}}]}"#;

    #[test]
    fn datums_round_trip_through_cel_values() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let names = names_of(&schema);
        let datum = Avro::Record(vec![
            ("id".into(), Avro::Long(7)),
            (
                "note".into(),
                Avro::Union(1, Box::new(Avro::String("hi".into()))),
            ),
            ("status".into(), Avro::Enum(1, "PAID".into())),
            ("at".into(), Avro::TimestampMillis(1_700_000_000_123)),
            (
                "price".into(),
                Avro::Decimal(apache_avro::Decimal::from(vec![0x04, 0xd2])),
            ),
            ("tags".into(), Avro::Array(vec![Avro::String("a".into())])),
            (
                "attrs".into(),
                Avro::Map([("k".to_owned(), Avro::Int(3))].into()),
            ),
        ]);
        let bytes = apache_avro::to_avro_datum(&schema, datum).unwrap();
        let decoded = apache_avro::from_avro_datum(&schema, &mut &bytes[..], None).unwrap();
        let cel = to_cel(decoded, &schema, &names);
        let field = |f: &str| crate::values::map_field(&cel, f).cloned().unwrap();
        assert_eq!(field("price"), Value::String(Arc::new("12.34".into())));
        assert_eq!(field("status"), Value::String(Arc::new("PAID".into())));
        assert!(matches!(field("at"), Value::Timestamp(_)));
        let back = to_avro(&cel, &schema, &names, "").unwrap();
        assert_eq!(apache_avro::to_avro_datum(&schema, back).unwrap(), bytes);
    }

    #[test]
    fn a_field_the_schema_lacks_is_named() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let v = Value::Map(cel::objects::Map {
            map: Arc::new([(key("colour"), Value::Int(1))].into_iter().collect()),
        });
        let err = to_avro(&v, &schema, &names_of(&schema), "").unwrap_err();
        assert!(
            err.contains("field 'colour' is not in record shop.Order"),
            "{err}"
        );
    }

    #[test]
    fn a_schema_with_references_decodes_with_the_types_it_refers_to() {
        // As Apicurio's serializer registers a record with a nested enum: the enum in a subject
        // of its own, the record naming it.
        let main = r#"{"type":"record","name":"Total","namespace":"shop.out","fields":[
            {"name":"size","type":"Size"},{"name":"n","type":"long"}]}"#;
        let size =
            r#"{"type":"enum","name":"Size","namespace":"shop.out","symbols":["SMALL","LARGE"]}"#;
        let (schema, referenced) = Schema::parse_str_with_list(main, [size]).unwrap();
        let named = Named::with_references(Arc::new(schema), referenced);
        let inline = Schema::parse_str(&main.replace(r#""Size""#, size)).unwrap();
        let datum = Avro::Record(vec![
            ("size".into(), Avro::Enum(1, "LARGE".into())),
            ("n".into(), Avro::Long(3)),
        ]);
        let bytes = apache_avro::to_avro_datum(&inline, datum).unwrap();
        let back = named.decode(&mut &bytes[..], None).unwrap();
        let again = named.encode(back.clone()).unwrap();
        assert_eq!(
            again, bytes,
            "written back through the references, the same bytes"
        );
        let cel = to_cel(back, &named.schema, &named.names);
        let want = Value::Map(cel::objects::Map {
            map: Arc::new(
                [
                    (key("size"), Value::String(Arc::new("LARGE".to_owned()))),
                    (key("n"), Value::Int(3)),
                ]
                .into_iter()
                .collect(),
            ),
        });
        assert_eq!(cel, want);
    }

    #[test]
    fn decimals_keep_every_digit() {
        assert_eq!(
            decimal_text(&decimal_bytes("-0.05", 2).unwrap(), 2),
            "-0.05"
        );
        assert_eq!(
            decimal_text(&decimal_bytes("123456789012345678901234.5", 1).unwrap(), 1),
            "123456789012345678901234.5"
        );
        assert!(decimal_bytes("1.234", 2).is_err());
    }

    /// Context for the issue's note, not a check: CPU per record of the avro serde's datum path
    /// (decode to CEL values, encode back) against the json serde's on the same record, in this
    /// build's profile. `cargo test -p freshet-spec --lib avro_vs_json_cpu -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn avro_vs_json_cpu_per_record() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let names = names_of(&schema);
        let record = Avro::Record(vec![
            ("id".into(), Avro::Long(42)),
            (
                "note".into(),
                Avro::Union(1, Box::new(Avro::String("fragile".into()))),
            ),
            ("status".into(), Avro::Enum(1, "PAID".into())),
            ("at".into(), Avro::TimestampMillis(1_700_000_000_123)),
            (
                "price".into(),
                Avro::Decimal(apache_avro::Decimal::from(
                    decimal_bytes("12.34", 2).unwrap(),
                )),
            ),
            (
                "tags".into(),
                Avro::Array(vec![Avro::String("a".into()), Avro::String("b".into())]),
            ),
            (
                "attrs".into(),
                Avro::Map([("qty".to_owned(), Avro::Int(3))].into_iter().collect()),
            ),
        ]);
        let avro_bytes = apache_avro::to_avro_datum(&schema, record).unwrap();
        let cel = to_cel(
            apache_avro::from_avro_datum(&schema, &mut &avro_bytes[..], None).unwrap(),
            &schema,
            &names,
        );
        let json_serde = crate::values::DynSerde(crate::serdes::SerdeKind::Json);
        // The json serde writes timestamps as text: compare on the same values otherwise.
        let json_bytes = json_serde.serialize(&cel).unwrap().unwrap();
        let n = 200_000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let d = apache_avro::from_avro_datum(&schema, &mut &avro_bytes[..], None).unwrap();
            let v = to_cel(d, &schema, &names);
            let back = to_avro(&v, &schema, &names, "").unwrap();
            std::hint::black_box(apache_avro::to_avro_datum(&schema, back).unwrap());
        }
        let avro = t.elapsed() / n;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let v = json_serde.deserialize(Some(&json_bytes)).unwrap();
            std::hint::black_box(json_serde.serialize(&v).unwrap());
        }
        let json = t.elapsed() / n;
        eprintln!(
            "per record, decode + encode: avro {avro:?} ({} bytes), json {json:?} ({} bytes)",
            avro_bytes.len(),
            json_bytes.len()
        );
    }
}
