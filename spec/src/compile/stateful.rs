//! The stateful steps of declarative topologies: grouping, windows, aggregations, tables,
//! suppress. A pipeline moves through positions — a stream, a grouped stream, a windowed one, a
//! table, a grouped table — and each step says which positions it accepts.

use std::collections::HashMap;
use std::sync::Arc;

use cel::Value;
use serde_json::Value as Json;

use super::position::{Grouping, Position, WindowShape, erased, value_of};
use super::registry::Bind;
use super::{Compiler, Stream};
use crate::dsl::{
    Aggregator, Initializer, KGroupedStream, KGroupedTable, Merger, SessionWindows, SlidingWindows,
    StoreSpec, TimeWindows, WindowOf, WindowedKeyFn, WindowedKeys, Windowing,
};
use crate::expr::{Bindings, Var};
use crate::processor::{Datum, ProcessError, datum};
use crate::serdes::SerdeKind;
use crate::state::window::Window;
use crate::values::{cel_null, map_field, windowed_value};

const AGG_VARS: &[Var] = &[
    Var::Key,
    Var::Value,
    Var::Agg,
    Var::Timestamp,
    Var::Headers,
    Var::Topic,
    Var::Partition,
    Var::Offset,
];

/// `fields` and the store options every aggregation step takes.
fn with_store_fields(fields: &[&'static str]) -> Vec<&'static str> {
    let mut all = fields.to_vec();
    all.extend([
        "store",
        "valueSerde",
        "valueSchema",
        "valueMessage",
        "inMemory",
        "logging",
    ]);
    all
}

fn windowed_keys(key_kind: &SerdeKind, shape: WindowShape, span_ms: Option<i64>) -> WindowedKeys {
    let make: WindowedKeyFn = Arc::new(move |k: &Datum, w: Window| {
        let key = k.downcast_ref::<Value>().cloned().unwrap_or(Value::Null);
        // Time windows carry their size: `end` is start + size (sliding: + time difference).
        let end = span_ms.map_or(w.end, |s| w.start + s);
        datum(windowed_value(key, w.start, end))
    });
    let window_of: WindowOf = Arc::new(|k: &Datum| {
        let v = value_of(k)?;
        let field = |f: &str| match map_field(v, f) {
            Some(Value::Int(i)) => Ok(*i),
            _ => Err(ProcessError::new("a windowed key lost its window")),
        };
        Ok(Window {
            start: field("start")?,
            end: field("end")?,
        })
    });
    let kind = match shape {
        WindowShape::Time => SerdeKind::Windowed(Box::new(key_kind.clone())),
        WindowShape::Session => SerdeKind::Session(Box::new(key_kind.clone())),
    };
    WindowedKeys {
        make,
        window_of,
        serde: erased(&kind, "key"),
    }
}

impl Compiler {
    /// An aggregator from an expression over `agg` and `value`.
    fn aggregator(&mut self, source: &Json, place: &str) -> Option<Aggregator> {
        let e = self.expr_with(source, place, AGG_VARS)?;
        Some(Arc::new(move |info, k, v, agg| {
            let (k, v, agg) = (value_of(k)?, value_of(v)?, value_of(agg)?);
            let bindings = Bindings {
                agg: Some(agg),
                ..super::bindings(info, k, v)
            };
            e.eval_with(&bindings).map(datum)
        }))
    }

    /// The aggregator in `arg`'s `field`, which must be there.
    fn aggregator_at(&mut self, arg: &Json, field: &str, at: &str) -> Option<Aggregator> {
        let place = format!("{at}, {field}");
        let Some(source) = arg.get(field) else {
            self.error(
                &place,
                format!("give '{field}: <expression over agg and value>'"),
            );
            return None;
        };
        self.aggregator(source, &place)
    }

    /// The initializer in `arg`'s `initializer`, which must be there.
    fn initializer_at(&mut self, arg: &Json, at: &str) -> Option<Initializer> {
        let place = format!("{at}, initializer");
        let Some(source) = arg.get("initializer") else {
            self.error(
                &place,
                "give 'initializer: <expression>', the aggregate before any record",
            );
            return None;
        };
        self.initializer(source, &place)
    }

    fn initializer(&mut self, source: &Json, place: &str) -> Option<Initializer> {
        let e = self.expr_with(source, place, &[])?;
        Some(Arc::new(move || {
            e.eval_with(&Bindings::default()).map(datum)
        }))
    }

    fn merger(&mut self, source: &Json, place: &str) -> Option<Merger> {
        let e = self.expr_with(source, place, &[Var::Key, Var::Left, Var::Right])?;
        Some(Arc::new(move |k, a, b| {
            let bindings = Bindings {
                key: Some(value_of(k)?),
                left: Some(value_of(a)?),
                right: Some(value_of(b)?),
                ..Bindings::default()
            };
            e.eval_with(&bindings).map(datum)
        }))
    }

    /// Store options of an aggregation or table step: `store`, `valueSerde`, `inMemory`,
    /// `logging`, and for a registry serde (`avro`, `json-schema`, `protobuf`) `valueSchema` and
    /// `valueMessage` as a `to` step gives them. A registry serde writes the store's bytes (in
    /// RocksDB and in the changelog) in Confluent's framing, under the changelog's subject
    /// `<application.id>-<store>-changelog-value`, as Kafka Streams with Confluent's serdes does.
    pub(super) fn store_spec(
        &mut self,
        arg: &Json,
        default_value: &SerdeKind,
        at: &str,
    ) -> StoreSpec {
        let name = arg.get("store").and_then(Json::as_str).map(str::to_owned);
        let kind_name = arg
            .get("valueSerde")
            .and_then(Json::as_str)
            .map_or_else(|| default_value.to_string(), str::to_owned);
        // A name that does not parse is reported once, by `serde` below.
        let registry = kind_name
            .parse::<SerdeKind>()
            .is_ok_and(|k| k.is_registry());
        let changelog = match (&name, registry) {
            (Some(store), true) => Some(format!(
                "{}-{store}-changelog",
                self.defaults.application_id
            )),
            (None, true) => {
                // A generated name moves whenever a step is added before this one: the
                // changelog, its subject and the schemas registered under it would move too.
                self.error(
                    at,
                    format!(
                        "a store of {kind_name} values needs a name: give 'store: <name>' (its changelog <application.id>-<name>-changelog names the subject the schema is registered under)"
                    ),
                );
                None
            }
            (_, false) => None,
        };
        let bind = Bind {
            topic: changelog.as_deref(),
            is_key: false,
            schema: arg.get("valueSchema"),
            message: arg.get("valueMessage"),
        };
        let serde = self.serde(Some(&kind_name), &kind_name, at, bind);
        self.check_aggregate_fields(arg, &kind_name, at);
        StoreSpec {
            name,
            agg: crate::dsl::erased(serde, "aggregate"),
            logging: arg.get("logging").and_then(Json::as_bool).unwrap_or(true),
            in_memory: arg.get("inMemory").and_then(Json::as_bool).unwrap_or(false),
        }
    }

    /// The value serde of a grouping (`groupBy`, `groupByKey`), which serves only its
    /// repartition topic `<application.id>-<name>-repartition` (the store has its own). A registry
    /// serde registers under that topic's subject, with `valueSchema` / `valueMessage` as a `to`
    /// step gives them, so the grouping needs the step's `name`: without one the topic would be
    /// named after the store, which the next step decides.
    fn grouping_value(
        &mut self,
        opts: &Json,
        named: Option<&str>,
        at: &str,
    ) -> (SerdeKind, crate::dsl::ErasedSerde) {
        let name = opts
            .get("valueSerde")
            .and_then(Json::as_str)
            .map_or_else(|| self.defaults.value_serde.clone(), str::to_owned);
        let kind = self.kind_named(&name, at);
        if !kind.is_registry() {
            if opts.get("valueSchema").is_some() {
                self.error(
                    at,
                    format!(
                        "'valueSchema' is for the avro, json-schema and protobuf serdes; this one is {kind}"
                    ),
                );
            }
            let value = erased(&kind, "value");
            return (kind, value);
        }
        let topic = match named {
            Some(n) => Some(format!("{}-{n}-repartition", self.defaults.application_id)),
            None => {
                self.error(
                    at,
                    format!(
                        "a grouping of {kind} values needs the step's 'name': its repartition topic <application.id>-<name>-repartition names the subject the schema is registered under"
                    ),
                );
                None
            }
        };
        let bind = Bind {
            topic: topic.as_deref(),
            is_key: false,
            schema: opts.get("valueSchema"),
            message: opts.get("valueMessage"),
        };
        let serde = self.serde(Some(&name), &name, at, bind);
        (kind, crate::dsl::erased(serde, "value"))
    }

    fn kind(&mut self, arg: &Json, field: &str, default: &str, at: &str) -> SerdeKind {
        let name = arg.get(field).and_then(Json::as_str).unwrap_or(default);
        let kind = self.kind_named(name, at);
        self.topic_only(&kind, at);
        kind
    }

    pub(super) fn kind_named(&mut self, name: &str, at: &str) -> SerdeKind {
        name.parse::<SerdeKind>().unwrap_or_else(|e| {
            self.error(at, e.to_string());
            SerdeKind::Bytes
        })
    }

    fn windows(&mut self, arg: &Json, at: &str) -> Option<(Windowing, WindowShape, Option<i64>)> {
        self.check_fields(
            arg,
            &["tumbling", "hopping", "sliding", "session", "grace"],
            at,
        );
        let dur =
            |c: &mut Self, v: Option<&Json>, what: &str| c.duration(v, &format!("{at}, {what}"));
        let grace = match arg.get("grace") {
            Some(g) => dur(self, Some(g), "grace")?,
            None => std::time::Duration::ZERO,
        };
        let kinds: Vec<&str> = ["tumbling", "hopping", "sliding", "session"]
            .into_iter()
            .filter(|k| arg.get(*k).is_some())
            .collect();
        match kinds.as_slice() {
            ["tumbling"] => {
                let size = dur(self, arg.get("tumbling"), "tumbling")?;
                let w = TimeWindows::tumbling(size, grace);
                Some((Windowing::Time(w), WindowShape::Time, Some(w.size_ms)))
            }
            ["hopping"] => {
                let h = &arg["hopping"];
                self.check_fields(h, &["size", "advance"], &format!("{at}, hopping"));
                let size = dur(self, h.get("size"), "hopping size")?;
                let advance = dur(self, h.get("advance"), "hopping advance")?;
                if advance > size || advance.is_zero() {
                    self.error(
                        at,
                        "a hopping window's advance must be more than 0 and at most its size",
                    );
                }
                let w = TimeWindows::hopping(size, advance, grace);
                Some((Windowing::Time(w), WindowShape::Time, Some(w.size_ms)))
            }
            ["sliding"] => {
                let diff = dur(self, arg.get("sliding"), "sliding")?;
                let w = SlidingWindows::new(diff, grace);
                Some((
                    Windowing::Sliding(w),
                    WindowShape::Time,
                    Some(w.time_difference_ms),
                ))
            }
            ["session"] => {
                let gap = dur(self, arg.get("session"), "session")?;
                let count_merger: Merger = Arc::new(|_, a, b| add_values(a, b));
                Some((
                    Windowing::Session(SessionWindows::new(gap, grace), count_merger),
                    WindowShape::Session,
                    None,
                ))
            }
            _ => {
                self.error(
                    at,
                    "give exactly one of tumbling: <duration>, hopping: {size, advance}, sliding: <duration>, session: <gap>",
                );
                None
            }
        }
    }

    /// Applies a stateful or table step to `pos`; `None` when the step was refused.
    /// `names`: the step's own `name`, and the name an internal topic gets without one
    /// (`<pipeline>-<step>`).
    pub(super) fn stateful_step(
        &mut self,
        pos: Position,
        op: &str,
        arg: &Json,
        names: (Option<&str>, &str),
        at: &str,
        positions: &HashMap<String, Position>,
    ) -> Option<Position> {
        let (named, _) = names;
        let defaults = self.defaults.clone();
        match (op, pos) {
            (
                "join" | "leftJoin" | "outerJoin",
                pos @ (Position::Stream(_) | Position::Table(_)),
            ) => self.join_step(pos, op, arg, names, at, positions),
            ("cogroup", Position::Grouped(g)) => self.cogroup(arg, named, at, &g, positions),
            ("groupByKey", Position::Stream(s)) => {
                self.check_fields(
                    arg,
                    &["keySerde", "valueSerde", "valueSchema", "valueMessage"],
                    at,
                );
                let key_kind = self.kind(arg, "keySerde", &defaults.key_serde, at);
                let (value_kind, value) = self.grouping_value(arg, named, at);
                let grouped = KGroupedStream::from_erased(
                    &s,
                    erased(&key_kind, "key"),
                    value,
                    named.map(str::to_owned),
                    false,
                );
                Some(Position::Grouped(Grouping {
                    grouped,
                    key_kind,
                    value_kind,
                }))
            }
            ("groupBy", Position::Stream(s)) => {
                let (expr_src, opts) = match arg {
                    Json::String(_) => (arg, &Json::Null),
                    Json::Object(o) => (o.get("key").unwrap_or(&Json::Null), arg),
                    _ => (&Json::Null, &Json::Null),
                };
                if opts.is_object() {
                    self.check_fields(
                        opts,
                        &[
                            "key",
                            "keySerde",
                            "valueSerde",
                            "valueSchema",
                            "valueMessage",
                        ],
                        at,
                    );
                }
                let e = self.expr(expr_src, at)?;
                let key_kind = self.kind(opts, "keySerde", &defaults.key_serde, at);
                let (value_kind, value) = self.grouping_value(opts, named, at);
                let rekeyed: Stream = s.try_select_key(None, move |info, k, v| e.eval(info, k, v));
                let grouped = KGroupedStream::from_erased(
                    &rekeyed,
                    erased(&key_kind, "key"),
                    value,
                    named.map(str::to_owned),
                    true,
                );
                Some(Position::Grouped(Grouping {
                    grouped,
                    key_kind,
                    value_kind,
                }))
            }
            ("groupBy", Position::Table(t)) => {
                let e = self.expr(arg, at)?;
                let key_kind = self.kind_named(&defaults.key_serde, at);
                let value_kind = self.kind_named(&defaults.value_serde, at);
                let select: crate::dsl::SelectFn = Arc::new(move |info, k, v| {
                    let nk = e.eval(info, value_of(k)?, value_of(v)?)?;
                    Ok((datum(nk), v.clone()))
                });
                let grouped = t.group_by_erased(
                    None,
                    select,
                    erased(&key_kind, "key"),
                    erased(&value_kind, "value"),
                    named.map(str::to_owned),
                );
                Some(Position::GroupedTable(grouped, value_kind))
            }
            ("windowedBy", Position::Grouped(g)) => {
                let (windowing, shape, _) = self.windows(arg, at)?;
                Some(Position::Windowed(g, windowing, shape))
            }
            ("count" | "reduce" | "aggregate", Position::Grouped(g)) => {
                self.aggregation(op, arg, named, at, &g, Windowing::None, None)
            }
            ("count" | "reduce" | "aggregate", Position::Windowed(g, windowing, shape)) => {
                let span = match &windowing {
                    Windowing::Time(w) => Some(w.size_ms),
                    Windowing::Sliding(w) => Some(w.time_difference_ms),
                    _ => None,
                };
                let keys = windowed_keys(&g.key_kind, shape, span);
                self.aggregation(op, arg, named, at, &g, windowing, Some(keys))
            }
            ("count" | "reduce" | "aggregate", Position::GroupedTable(gt, value_kind)) => {
                self.table_aggregation(op, arg, named, at, &gt, &value_kind)
            }
            ("toStream", Position::Table(t)) => {
                Some(Position::Stream(t.to_stream_erased(named, cel_null())))
            }
            ("toTable", Position::Stream(s)) => {
                self.check_fields(
                    arg,
                    &[
                        "store",
                        "keySerde",
                        "valueSerde",
                        "valueSchema",
                        "valueMessage",
                        "inMemory",
                        "logging",
                    ],
                    at,
                );
                let key_kind = self.kind(arg, "keySerde", &defaults.key_serde, at);
                let value_kind = self.kind_named(&defaults.value_serde, at);
                let spec = self.store_spec(arg, &value_kind, at);
                Some(Position::Table(s.to_table_erased(
                    named,
                    spec,
                    erased(&key_kind, "key"),
                )))
            }
            ("suppress", Position::Table(t)) => {
                self.check_fields(arg, &["untilWindowCloses"], at);
                if arg.get("untilWindowCloses").and_then(Json::as_bool) != Some(true) {
                    self.error(
                        at,
                        "only `suppress: { untilWindowCloses: true }` is supported",
                    );
                    return None;
                }
                match t.suppress_until_window_closes(named) {
                    Ok(t) => Some(Position::Table(t)),
                    Err(e) => {
                        self.error(at, e.to_string());
                        None
                    }
                }
            }
            ("filter" | "filterNot", Position::Table(t)) => {
                let e = self.expr(arg, at)?;
                let p: crate::dsl::Predicate =
                    Arc::new(move |info, k, v| e.eval_bool(info, value_of(k)?, value_of(v)?));
                Some(Position::Table(t.try_filter_erased(
                    named,
                    p,
                    op == "filter",
                )))
            }
            ("mapValues", Position::Table(t)) => {
                let e = self.expr(arg, at)?;
                let f: crate::dsl::ValueFn =
                    Arc::new(move |info, k, v| e.eval(info, value_of(k)?, value_of(v)?).map(datum));
                Some(Position::Table(t.map_values_erased(named, f, None)))
            }
            (op, pos) => {
                let hint = match (op, &pos) {
                    (_, Position::Table(_)) => "; a table becomes a stream with `toStream: {}`",
                    ("count" | "reduce" | "aggregate", Position::Stream(_)) => {
                        "; group it first with `groupByKey: {}` or `groupBy: <expression>`"
                    }
                    (_, Position::Grouped(_) | Position::Windowed(..)) => {
                        "; follow a grouping with count, reduce or aggregate"
                    }
                    _ => "",
                };
                self.error(at, format!("'{op}' cannot follow {}{hint}", pos.describe()));
                None
            }
        }
    }

    /// `cogroup: { aggregator, with: [{ stream, groupBy?, aggregator }], initializer, store }`:
    /// this pipeline's grouped stream and the listed streams fold into one aggregate per key.
    fn cogroup(
        &mut self,
        arg: &Json,
        named: Option<&str>,
        at: &str,
        g: &Grouping,
        positions: &HashMap<String, Position>,
    ) -> Option<Position> {
        self.check_fields(
            arg,
            &with_store_fields(&["aggregator", "with", "initializer"]),
            at,
        );
        let add = self.aggregator_at(arg, "aggregator", at)?;
        let init = self.initializer_at(arg, at)?;
        let mut cogrouped = g.grouped.cogroup_erased::<Value>(add);
        let Some(others) = arg
            .get("with")
            .and_then(Json::as_array)
            .filter(|w| !w.is_empty())
        else {
            self.error(at, "give 'with: [{ stream: <name>, aggregator: <expression> }, ...]', the other streams to fold in");
            return None;
        };
        for (i, other) in others.iter().enumerate() {
            let wat = format!("{at}, with[{i}]");
            self.check_fields(other, &["stream", "groupBy", "aggregator"], &wat);
            let Some(name) = other.get("stream").and_then(Json::as_str) else {
                self.error(&wat, "give 'stream: <a stream or pipeline name>'");
                continue;
            };
            let Some(Position::Stream(stream)) = positions.get(name) else {
                self.error(
                    &wat,
                    format!("'{name}' is not a declared stream or a pipeline ending in a stream"),
                );
                continue;
            };
            let (stream, rekeyed) = match other.get("groupBy") {
                Some(e) => {
                    let Some(e) = self.expr(e, &format!("{wat}, groupBy")) else {
                        continue;
                    };
                    (
                        stream.try_select_key(None, move |info, k, v| e.eval(info, k, v)),
                        true,
                    )
                }
                None => (stream.clone(), false),
            };
            let value_kind = self.kind_named(&self.defaults.value_serde.clone(), &wat);
            let grouped = KGroupedStream::from_erased(
                &stream,
                erased(&g.key_kind, "key"),
                erased(&value_kind, "value"),
                None,
                rekeyed,
            );
            let Some(add) = self.aggregator_at(other, "aggregator", &wat) else {
                continue;
            };
            cogrouped = cogrouped.with_erased(&grouped, add);
        }
        let default = self.kind_named(&self.defaults.value_serde.clone(), at);
        let spec = self.store_spec(arg, &default, at);
        Some(Position::Table(
            cogrouped.aggregate_erased(named, spec, init),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn aggregation(
        &mut self,
        op: &str,
        arg: &Json,
        named: Option<&str>,
        at: &str,
        g: &Grouping,
        windowing: Windowing,
        windowed: Option<WindowedKeys>,
    ) -> Option<Position> {
        let (init, add, value_kind, windowing) = match op {
            "count" => {
                self.check_fields(arg, &["store", "inMemory", "logging"], at);
                let init: Initializer = Arc::new(|| Ok(datum(Value::Int(0))));
                let add: Aggregator =
                    Arc::new(|_, _, _, agg| add_values(agg, &datum(Value::Int(1))));
                (Some(init), add, SerdeKind::Long, windowing)
            }
            "reduce" => {
                let source = match arg {
                    Json::Object(o) => {
                        self.check_fields(arg, &with_store_fields(&["reducer"]), at);
                        o.get("reducer").unwrap_or(&Json::Null)
                    }
                    other => other,
                };
                let add = self.aggregator(source, at)?;
                if matches!(windowing, Windowing::Session(..)) {
                    // A session reduce merges sessions with the reducer itself.
                    let reducer = add.clone();
                    let merger: Merger = Arc::new(move |k, a, b| {
                        let info = crate::dsl::RecordInfo {
                            timestamp: 0,
                            headers: &crate::processor::Headers::default(),
                            meta: None,
                        };
                        reducer(&info, k, b, a)
                    });
                    let Windowing::Session(w, _) = windowing else {
                        return None;
                    };
                    (
                        None,
                        add,
                        g.value_kind.clone(),
                        Windowing::Session(w, merger),
                    )
                } else {
                    (None, add, g.value_kind.clone(), windowing)
                }
            }
            _ => {
                self.check_fields(
                    arg,
                    &with_store_fields(&["initializer", "aggregator", "merger"]),
                    at,
                );
                let init = self.initializer_at(arg, at)?;
                let add = self.aggregator_at(arg, "aggregator", at)?;
                let windowing = match windowing {
                    Windowing::Session(w, _) => {
                        let Some(m) = arg.get("merger") else {
                            self.error(at, "a session aggregation needs a 'merger' expression over left and right (two session aggregates)");
                            return None;
                        };
                        let merger = self.merger(m, &format!("{at}, merger"))?;
                        Windowing::Session(w, merger)
                    }
                    other => other,
                };
                let default = self.kind_named(&self.defaults.value_serde.clone(), at);
                (Some(init), add, default, windowing)
            }
        };
        let spec = self.store_spec(arg, &value_kind, at);
        let table = g
            .grouped
            .aggregate_erased(named, spec, windowing, windowed, init, add);
        Some(Position::Table(table))
    }

    fn table_aggregation(
        &mut self,
        op: &str,
        arg: &Json,
        named: Option<&str>,
        at: &str,
        gt: &KGroupedTable<Value, Value>,
        value_kind: &SerdeKind,
    ) -> Option<Position> {
        let (init, add, subtract, kind) = match op {
            "count" => {
                self.check_fields(arg, &["store", "inMemory", "logging"], at);
                let init: Initializer = Arc::new(|| Ok(datum(Value::Int(0))));
                let add: Aggregator =
                    Arc::new(|_, _, _, agg| add_values(agg, &datum(Value::Int(1))));
                let sub: Aggregator =
                    Arc::new(|_, _, _, agg| add_values(agg, &datum(Value::Int(-1))));
                (Some(init), add, sub, SerdeKind::Long)
            }
            "reduce" => {
                self.check_fields(arg, &with_store_fields(&["adder", "subtractor"]), at);
                let add = self.aggregator_at(arg, "adder", at)?;
                let sub = self.aggregator_at(arg, "subtractor", at)?;
                (None, add, sub, value_kind.clone())
            }
            _ => {
                self.check_fields(
                    arg,
                    &with_store_fields(&["initializer", "aggregator", "subtractor"]),
                    at,
                );
                let init = self.initializer_at(arg, at)?;
                let add = self.aggregator_at(arg, "aggregator", at)?;
                if arg.get("subtractor").is_none() {
                    self.error(at, "a table aggregation needs a 'subtractor' (the aggregator's inverse): an update takes the old value out before adding the new one");
                    return None;
                }
                let sub = self.aggregator_at(arg, "subtractor", at)?;
                (
                    Some(init),
                    add,
                    sub,
                    self.kind_named(&self.defaults.value_serde.clone(), at),
                )
            }
        };
        let spec = self.store_spec(arg, &kind, at);
        Some(Position::Table(
            gt.aggregate_erased(named, spec, init, add, subtract),
        ))
    }
}

/// `a + b` over numbers as expressions add them: integers stay integers, a double makes the
/// sum a double (counts and session-count merges).
fn add_values(a: &Datum, b: &Datum) -> Result<Datum, ProcessError> {
    let int = |v: &Value| match v {
        Value::Int(i) => Some(*i),
        Value::UInt(u) => i64::try_from(*u).ok(),
        _ => None,
    };
    let (a, b) = (value_of(a)?, value_of(b)?);
    let sum =
        match (int(a), int(b), a, b) {
            (Some(x), Some(y), _, _) => Value::Int(x.checked_add(y).ok_or_else(|| {
                ProcessError::new(format!("{x} + {y} overflows a 64-bit integer"))
            })?),
            (_, _, Value::Float(x), Value::Float(y)) => Value::Float(x + y),
            (Some(x), _, _, Value::Float(y)) => Value::Float(x as f64 + y),
            (_, Some(y), Value::Float(x), _) => Value::Float(x + y as f64),
            _ => {
                return Err(ProcessError::new(format!(
                    "cannot add {a:?} and {b:?}: an aggregate here must be a number"
                )));
            }
        };
    Ok(datum(sum))
}
