//! Where a pipeline of a declarative topology is after a step (a stream, a table, a grouped or
//! windowed stream, ...), the serdes over its CEL values, and the reading of duration fields:
//! what the stateful steps and the joins both work with.

use std::sync::Arc;

use cel::Value;
use serde_json::Value as Json;

use super::{Compiler, Stream};
use crate::dsl::{ErasedSerde, GlobalKTable, KGroupedStream, KGroupedTable, KTable, Windowing};
use crate::duration;
use crate::processor::{Datum, ProcessError, typed};
use crate::serdes::SerdeKind;
use crate::values::DynSerde;

pub(super) type Table = KTable<Value, Value>;

/// Where a pipeline is after a step.
#[derive(Clone)]
pub(super) enum Position {
    Stream(Stream),
    Table(Table),
    Grouped(Grouping),
    Windowed(Grouping, Windowing, WindowShape),
    GroupedTable(KGroupedTable<Value, Value>, SerdeKind),
    GlobalTable(GlobalKTable<Value, Value>),
}

impl Position {
    pub fn describe(&self) -> &'static str {
        match self {
            Position::Stream(_) => "a stream",
            Position::Table(_) => "a table",
            Position::Grouped(_) => "a grouped stream",
            Position::Windowed(..) => "a windowed stream",
            Position::GroupedTable(..) => "a grouped table",
            Position::GlobalTable(_) => "a global table",
        }
    }
}

/// A grouped stream with the serdes its steps chose.
#[derive(Clone)]
pub(super) struct Grouping {
    pub grouped: KGroupedStream<Value, Value>,
    pub key_kind: SerdeKind,
    pub value_kind: SerdeKind,
}

/// Time windows or sessions: decides the windowed key's serde.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum WindowShape {
    Time,
    Session,
}

/// The serde `kind` over the CEL values of declarative topologies; `what` (key, value, ...)
/// names the data in errors.
pub(super) fn erased(kind: &SerdeKind, what: &'static str) -> ErasedSerde {
    crate::dsl::erased(Arc::new(DynSerde(kind.clone())), what)
}

/// A datum of a declarative topology as the CEL value it holds.
pub(super) fn value_of(d: &Datum) -> Result<&Value, ProcessError> {
    typed::<Value>(d, "value")
}

impl Compiler {
    /// A duration field such as `10m`; `None` (reported at `place`) when missing or malformed.
    pub(super) fn duration(
        &mut self,
        v: Option<&Json>,
        place: &str,
    ) -> Option<std::time::Duration> {
        match v.and_then(Json::as_str).map(duration::parse) {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                self.error(place, e.to_string());
                None
            }
            None => {
                self.error(place, format!("expected {}", duration::EXPECTED));
                None
            }
        }
    }
}
