//! The join steps of declarative topologies: stream-stream within a window, stream-table,
//! stream-global table, table-table by key and by foreign key (Kafka Streams' `join`,
//! `leftJoin`, `outerJoin`).

use std::collections::HashMap;
use std::sync::Arc;

use cel::Value;
use serde_json::Value as Json;

use super::position::{Position, Table, erased, value_of};
use super::{Compiler, Stream};
use crate::expr::{Bindings, Var};
use crate::processor::datum;

/// The join a step's name asks for: `join`, `leftJoin` or `outerJoin`.
fn join_kind(op: &str) -> crate::dsl::JoinKind {
    match op {
        "join" => crate::dsl::JoinKind::Inner,
        "leftJoin" => crate::dsl::JoinKind::Left,
        _ => crate::dsl::JoinKind::Outer,
    }
}

/// A joiner for joins where either side may be missing (outer joins): `left` binds as null
/// too then, as `right` already does.
fn either_side_missing(joiner: crate::dsl::Joiner) -> crate::dsl::TableJoiner {
    Arc::new(move |info, k, l, r| {
        let null = datum(Value::Null);
        joiner(info, k, l.unwrap_or(&null), r)
    })
}

impl Compiler {
    /// A join step on a stream or a table: with a stream within a window, a table, a global
    /// table, or (table to table) by key or by foreign key.
    pub(super) fn join_step(
        &mut self,
        pos: Position,
        op: &str,
        arg: &Json,
        names: (Option<&str>, &str),
        at: &str,
        positions: &HashMap<String, Position>,
    ) -> Option<Position> {
        let (named, default_name) = names;
        let defaults = self.defaults.clone();
        match (op, pos) {
            ("join" | "leftJoin" | "outerJoin", Position::Stream(s))
                if arg.get("stream").is_some() =>
            {
                self.stream_join(s, op, arg, names, at, positions)
            }
            ("join" | "leftJoin", Position::Stream(s)) => {
                self.check_fields(arg, &["table", "globalTable", "key", "value"], at);
                if let Some(global) = arg.get("globalTable").and_then(Json::as_str) {
                    return self.global_join(
                        s,
                        global,
                        arg,
                        op == "leftJoin",
                        named,
                        at,
                        positions,
                    );
                }
                let Some(table_name) = arg.get("table").and_then(Json::as_str) else {
                    self.error(at, "give 'table: <a declared table or a pipeline ending in a table>' or 'globalTable: <name>'");
                    return None;
                };
                let table = self.table_named(table_name, at, positions)?;
                let joiner = self.joiner(arg, at)?;
                let value_kind = self.kind_named(&defaults.value_serde, at);
                let topic = named.map_or_else(|| default_name.to_owned(), str::to_owned);
                match s.join_table_erased(
                    table,
                    joiner,
                    op == "leftJoin",
                    named,
                    Some(topic),
                    erased(&value_kind, "value"),
                ) {
                    Ok(joined) => Some(Position::Stream(joined)),
                    Err(e) => {
                        self.error(at, format!("table '{table_name}': {e}"));
                        None
                    }
                }
            }
            ("join" | "leftJoin" | "outerJoin", Position::Table(t))
                if arg.get("foreignKey").is_some() =>
            {
                self.foreign_key_join(t, op, arg, names, at, positions)
            }
            ("join" | "leftJoin" | "outerJoin", Position::Table(t)) => {
                self.check_fields(arg, &["table", "value"], at);
                let Some(other_name) = arg.get("table").and_then(Json::as_str) else {
                    self.error(at, "a table joins another table: give 'table: <name>'");
                    return None;
                };
                let other = self.table_named(other_name, at, positions)?;
                let joiner = self.joiner(arg, at)?;
                let (joiner, kind) = (either_side_missing(joiner), join_kind(op));
                match t.join_table_erased(other, joiner, kind, named) {
                    Ok(joined) => Some(Position::Table(joined)),
                    Err(e) => {
                        self.error(at, format!("table '{other_name}': {e}"));
                        None
                    }
                }
            }
            ("outerJoin", Position::Stream(_)) => {
                self.error(at, "a stream has no outer join with a table (Kafka Streams has none either): use leftJoin, join two tables, or outer-join a stream with `stream: <name>` and `window`");
                None
            }
            (_, pos) => {
                self.error(at, format!("'{op}' cannot follow {}", pos.describe()));
                None
            }
        }
    }

    /// The table a join step names: a declared table or a pipeline ending in one.
    fn table_named<'p>(
        &mut self,
        name: &str,
        at: &str,
        positions: &'p HashMap<String, Position>,
    ) -> Option<&'p Table> {
        match positions.get(name) {
            Some(Position::Table(t)) => Some(t),
            _ => {
                self.error(
                    at,
                    format!("'{name}' is not a declared table or a pipeline ending in a table"),
                );
                None
            }
        }
    }

    /// The joiner of a join step: its `value` expression over `left` and `right` (`null` when
    /// a left join finds no row), `left` itself when there is none.
    fn joiner(&mut self, arg: &Json, at: &str) -> Option<crate::dsl::Joiner> {
        let e = self.expr_with(
            arg.get("value").unwrap_or(&Json::String("left".into())),
            &format!("{at}, value"),
            &[
                Var::Key,
                Var::Left,
                Var::Right,
                Var::Timestamp,
                Var::Headers,
                Var::Topic,
                Var::Partition,
                Var::Offset,
            ],
        )?;
        Some(Arc::new(move |info, k, l, r| {
            let null = Value::Null;
            let bindings = Bindings {
                left: Some(value_of(l)?),
                right: Some(match r {
                    Some(r) => value_of(r)?,
                    None => &null,
                }),
                key: Some(value_of(k)?),
                ..super::bindings(info, &null, &null)
            };
            e.eval_with(&bindings).map(datum)
        }))
    }

    /// `join | leftJoin | outerJoin: { stream, window: { within, grace }, value }`: records of
    /// the two streams with the same key whose timestamps differ by at most `within` join;
    /// `left` or `right` is null in the results of a left or outer join that found no partner.
    fn stream_join(
        &mut self,
        stream: Stream,
        op: &str,
        arg: &Json,
        names: (Option<&str>, &str),
        at: &str,
        positions: &HashMap<String, Position>,
    ) -> Option<Position> {
        self.check_fields(arg, &["stream", "window", "value"], at);
        let other_name = arg.get("stream").and_then(Json::as_str).unwrap_or_default();
        let Some(Position::Stream(other)) = positions.get(other_name) else {
            self.error(
                at,
                format!("'{other_name}' is not a declared stream or a pipeline ending in a stream"),
            );
            return None;
        };
        let Some(window) = arg.get("window") else {
            self.error(
                at,
                "a stream-stream join needs 'window: { within: <duration>, grace: <duration> }'",
            );
            return None;
        };
        let wat = format!("{at}, window");
        self.check_fields(window, &["within", "grace"], &wat);
        let within = self.duration(window.get("within"), &format!("{wat}, within"));
        let grace = match window.get("grace") {
            Some(g) => self.duration(Some(g), &format!("{wat}, grace")),
            None => Some(std::time::Duration::ZERO),
        };
        let joiner = self.joiner(arg, at);
        let (within, grace, joiner) = (within?, grace?, joiner?);
        let (joiner, kind) = (either_side_missing(joiner), join_kind(op));
        let defaults = self.defaults.clone();
        let key_kind = self.kind_named(&defaults.key_serde, at);
        let value_kind = self.kind_named(&defaults.value_serde, at);
        let serdes = crate::dsl::StreamJoinSerdes {
            key: erased(&key_kind, "key"),
            this_value: erased(&value_kind, "value"),
            other_value: erased(&value_kind, "value"),
        };
        let (named, default_name) = names;
        let base = named.unwrap_or(default_name);
        Some(Position::Stream(stream.join_stream_erased(
            other,
            joiner,
            kind,
            crate::dsl::JoinWindows::of_time_difference_and_grace(within, grace),
            Some(base),
            serdes,
        )))
    }

    /// `join | leftJoin: { table, foreignKey, value }` from a table: each row joins the row of
    /// `table` whose key `foreignKey` computes from it (`key` and `value` in scope).
    fn foreign_key_join(
        &mut self,
        left: Table,
        op: &str,
        arg: &Json,
        names: (Option<&str>, &str),
        at: &str,
        positions: &HashMap<String, Position>,
    ) -> Option<Position> {
        self.check_fields(arg, &["table", "foreignKey", "value"], at);
        if op == "outerJoin" {
            self.error(
                at,
                "a foreign-key join is inner (join) or left (leftJoin); Kafka Streams has no outer one",
            );
            return None;
        }
        let other_name = arg.get("table").and_then(Json::as_str).unwrap_or_default();
        let right = self.table_named(other_name, at, positions)?;
        let extract = self.expr(arg.get("foreignKey")?, &format!("{at}, foreignKey"));
        let joiner = self.joiner(arg, at);
        let (extract, joiner) = (extract?, joiner?);
        let extractor: crate::dsl::ForeignKeyExtractor =
            Arc::new(move |info, k, v| extract.eval(info, value_of(k)?, value_of(v)?).map(datum));
        let (named, default_name) = names;
        match left.join_foreign_key_erased(
            right,
            extractor,
            joiner,
            op == "leftJoin",
            Some(named.unwrap_or(default_name)),
        ) {
            Ok(joined) => Some(Position::Table(joined)),
            Err(e) => {
                self.error(at, format!("table '{other_name}': {e}"));
                None
            }
        }
    }

    /// `join | leftJoin: { globalTable, key, value }`: `key` picks the global table's key from
    /// the record (`key` and `value` in scope).
    #[allow(clippy::too_many_arguments)]
    fn global_join(
        &mut self,
        stream: Stream,
        global: &str,
        arg: &Json,
        left: bool,
        named: Option<&str>,
        at: &str,
        positions: &HashMap<String, Position>,
    ) -> Option<Position> {
        let Some(Position::GlobalTable(table)) = positions.get(global) else {
            self.error(at, format!("'{global}' is not a declared global table"));
            return None;
        };
        let Some(key_src) = arg.get("key") else {
            self.error(
                at,
                "a global table join needs 'key: <expression>', the table key each record joins on",
            );
            return None;
        };
        let select = self.expr(key_src, &format!("{at}, key"))?;
        let select: crate::dsl::KeySelector =
            Arc::new(move |info, k, v| select.eval(info, value_of(k)?, value_of(v)?).map(datum));
        let joiner = self.joiner(arg, at)?;
        Some(Position::Stream(
            stream.join_global_erased(table, select, joiner, left, named),
        ))
    }
}
