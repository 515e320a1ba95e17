//! Per-record variables: the bound values, seen by the interpreter without copying them.
//!
//! cel 0.15 evaluates `dyn Val`s, not [`cel::Value`]s, and its own conversion from a `Value`
//! copies every string and rebuilds every container. Here a bound value becomes a `dyn Val`
//! that *borrows* its strings and bytes from the record's `Value`, and only the variables the
//! expression references are converted at all. A map the expression only reads fields of
//! (`value.amount`, `value['x']`, `has(value.x)`) is not converted either: [`Fields`] looks the
//! field up in the `Value` itself and converts just that field. The variables are served by a
//! [`VariableResolver`] rather than inserted into the scope, which would allocate a `String`
//! name per variable per record.

use super::{Bindings, EvalError, Header, Var};
use cel::ExecutionError;
use cel::common::traits::Indexer;
use cel::common::types::{
    CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelList, CelMap, CelMapKey, CelNull,
    CelString, CelTimestamp, CelUInt, MAP_TYPE, Type,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::objects::{Key, KeyRef, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The variables of one evaluation, borrowing from the record for `'a`.
#[derive(Default)]
pub(crate) struct Scope<'a> {
    key: Option<Box<dyn Val + 'a>>,
    value: Option<Box<dyn Val + 'a>>,
    timestamp: Option<CelInt>,
    headers: Option<CelMap<'a>>,
    topic: Option<CelString<'a>>,
    partition: Option<CelInt>,
    offset: Option<CelInt>,
    left: Option<Box<dyn Val + 'a>>,
    right: Option<Box<dyn Val + 'a>>,
    agg: Option<Box<dyn Val + 'a>>,
}

impl<'a> Scope<'a> {
    /// Converts the variables in `used` from `bindings`; one the step did not bind is an error.
    /// Those in `fields_only` (a bit per [`Var`]) are only ever indexed by the expression.
    pub(crate) fn bind(
        used: &[Var],
        fields_only: u16,
        bindings: &Bindings<'a>,
    ) -> Result<Self, EvalError> {
        let put = |slot: &mut Option<Box<dyn Val + 'a>>,
                   var: Var,
                   value: Option<&'a Value>|
         -> Result<bool, EvalError> {
            *slot = match value {
                Some(Value::Map(map)) if fields_only & var.bit() != 0 => {
                    Some(Box::new(Fields(map)))
                }
                Some(value) => Some(borrow(value)?),
                None => None,
            };
            Ok(slot.is_some())
        };
        let mut scope = Scope::default();
        for &var in used {
            let bound = match var {
                Var::Key => put(&mut scope.key, var, bindings.key)?,
                Var::Value => put(&mut scope.value, var, bindings.value)?,
                Var::Left => put(&mut scope.left, var, bindings.left)?,
                Var::Right => put(&mut scope.right, var, bindings.right)?,
                Var::Agg => put(&mut scope.agg, var, bindings.agg)?,
                Var::Timestamp => {
                    scope.timestamp = bindings.timestamp.map(CelInt::from);
                    scope.timestamp.is_some()
                }
                Var::Headers => {
                    scope.headers = bindings.headers.map(headers);
                    scope.headers.is_some()
                }
                Var::Topic => {
                    scope.topic = bindings.topic.map(CelString::from);
                    scope.topic.is_some()
                }
                Var::Partition => {
                    scope.partition = bindings.partition.map(|p| CelInt::from(i64::from(p)));
                    scope.partition.is_some()
                }
                Var::Offset => {
                    scope.offset = bindings.offset.map(CelInt::from);
                    scope.offset.is_some()
                }
            };
            if !bound {
                return Err(EvalError {
                    message: format!("the variable '{}' is not bound for this record", var.name()),
                });
            }
        }
        Ok(scope)
    }
}

impl VariableResolver for Scope<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        fn boxed<'b>(v: &'b Option<Box<dyn Val + '_>>) -> Option<CowVal<'b, 'b>> {
            v.as_deref().map(|v| CowVal::Borrowed(v as &(dyn Val + 'b)))
        }
        fn plain<'b, T: Val + 'b>(v: &'b Option<T>) -> Option<CowVal<'b, 'b>> {
            v.as_ref().map(|v| CowVal::Borrowed(v as &(dyn Val + 'b)))
        }
        match variable {
            "value" => boxed(&self.value),
            "key" => boxed(&self.key),
            "timestamp" => plain(&self.timestamp),
            "headers" => plain(&self.headers),
            "topic" => plain(&self.topic),
            "partition" => plain(&self.partition),
            "offset" => plain(&self.offset),
            "left" => boxed(&self.left),
            "right" => boxed(&self.right),
            "agg" => boxed(&self.agg),
            _ => None,
        }
    }
}

/// Headers as a map from name to value; values are decoded as UTF-8, invalid sequences replaced
/// by U+FFFD (valid ones are borrowed, not copied), and a header without a value is `null`. A
/// repeated name keeps its last value, as Kafka's `Headers.lastHeader` does.
fn headers(headers: &[Header]) -> CelMap<'_> {
    let mut map: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> = HashMap::with_capacity(headers.len());
    for (name, value) in headers {
        let value: Box<dyn Val + '_> = match value {
            Some(bytes) => Box::new(CelString::from(String::from_utf8_lossy(bytes))),
            None => Box::new(CelNull),
        };
        map.insert(CelMapKey::String(CelString::from(name.as_str())), value);
    }
    CelMap::from(map)
}

/// `value` as a `dyn Val` borrowing its strings and bytes.
pub(crate) fn borrow(value: &Value) -> Result<Box<dyn Val + '_>, ExecutionError> {
    Ok(match value {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Int(i) => Box::new(CelInt::from(*i)),
        Value::UInt(u) => Box::new(CelUInt::from(*u)),
        Value::Float(f) => Box::new(CelDouble::from(*f)),
        Value::String(s) => Box::new(CelString::from(s.as_str())),
        Value::Bytes(b) => Box::new(CelBytes::from(b.as_slice())),
        Value::List(items) => Box::new(CelList::from(
            items
                .iter()
                .map(borrow)
                .collect::<Result<Vec<Box<dyn Val + '_>>, _>>()?,
        )),
        Value::Map(map) => {
            let mut entries: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> =
                HashMap::with_capacity(map.map.len());
            for (k, v) in map.map.iter() {
                entries.insert(map_key(k), borrow(v)?);
            }
            Box::new(CelMap::from(entries))
        }
        Value::Duration(d) => Box::new(CelDuration::from(*d)),
        Value::Timestamp(t) => Box::new(CelTimestamp::from(*t)),
        // Optionals, other opaque values and structs: cel's own (copying) conversion. A
        // `Value::Function` has no `dyn Val` form (nor can JSON or a result produce one).
        other => Box::<dyn Val>::try_from(other.clone())?,
    })
}

/// A bound map the expression only indexes: a field is looked up in the record's `Value` and
/// converted when read, so a record costs what the expression reads, not what the record holds.
///
/// The compiler only binds a variable this way when every use of it is an index or a field
/// selection, so nothing else (equality, iteration, `size`, a result) ever sees it; should
/// something copy it, it becomes an ordinary converted map.
#[derive(Debug)]
struct Fields<'a>(&'a Map);

impl<'a> Fields<'a> {
    fn converted(&self) -> Box<dyn Val + 'a> {
        let mut entries: HashMap<CelMapKey<'a>, Box<dyn Val + 'a>> =
            HashMap::with_capacity(self.0.map.len());
        for (k, v) in self.0.map.iter() {
            entries.insert(map_key(k), borrow(v).unwrap_or_else(|_| Box::new(CelNull)));
        }
        Box::new(CelMap::from(entries))
    }
}

impl Val for Fields<'_> {
    fn get_type(&self) -> &Type {
        &MAP_TYPE
    }

    fn cel_type() -> &'static Type {
        &MAP_TYPE
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn equals(&self, other: &dyn Val) -> bool {
        self.converted().equals(other)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        self.converted()
    }
}

impl Indexer for Fields<'_> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        // The lookups of cel's own maps: a numeric key also finds the same number stored as the
        // other integer kind (`Map::get` does int/uint; a whole double tries both).
        let (found, name) = if let Some(s) = idx.downcast_ref::<CelString>() {
            (self.0.get(&KeyRef::String(s.inner())), None)
        } else if let Some(i) = idx.downcast_ref::<CelInt>() {
            (
                self.0.get(&KeyRef::Int(*i.inner())),
                Some(i.inner().to_string()),
            )
        } else if let Some(u) = idx.downcast_ref::<CelUInt>() {
            (
                self.0.get(&KeyRef::Uint(*u.inner())),
                Some(u.inner().to_string()),
            )
        } else if let Some(b) = idx.downcast_ref::<CelBool>() {
            (
                self.0.get(&KeyRef::Bool(*b.inner())),
                Some(b.inner().to_string()),
            )
        } else if let Some(d) = idx.downcast_ref::<CelDouble>() {
            let d = *d.inner();
            let found = if d.fract() == 0.0 && d >= -(2f64.powi(63)) && d < 2f64.powi(64) {
                if d < 0.0 {
                    self.0.get(&KeyRef::Int(d as i64))
                } else {
                    self.0.get(&KeyRef::Uint(d as u64))
                }
            } else {
                None
            };
            (found, Some(d.to_string()))
        } else {
            return Err(ExecutionError::UnexpectedType {
                got: idx.get_type().name().to_owned(),
                want: "map key".to_owned(),
            });
        };
        match found {
            Some(value) => Ok(CowVal::Owned(borrow(value)?)),
            None => Err(ExecutionError::NoSuchKey(Arc::new(name.unwrap_or_else(
                || {
                    idx.downcast_ref::<CelString>()
                        .map(|s| s.inner().to_owned())
                        .unwrap_or_default()
                },
            )))),
        }
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

fn map_key(key: &Key) -> CelMapKey<'_> {
    match key {
        Key::String(s) => CelMapKey::String(CelString::from(s.as_str())),
        Key::Int(i) => CelMapKey::Int(CelInt::from(*i)),
        Key::Uint(u) => CelMapKey::UInt(CelUInt::from(*u)),
        Key::Bool(b) => CelMapKey::Bool(CelBool::from(*b)),
    }
}
