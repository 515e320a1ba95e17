//! The operations a pipeline step names, one type per kind, as the manifest spells them.
//!
//! Every object here refuses unknown fields, both when the engine reads a manifest and in the
//! CRD's schema, so a misspelled field is reported where it is rather than ignored. Expressions
//! are CEL text, checked by the engine's compiler (`freshet-engine validate`), not by the
//! apiserver.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::Duration;

/// Declares the step kinds: the enum, its names and how each payload is read, written and
/// described. `split` is added by hand everywhere since its schema depends on the nesting depth.
macro_rules! step_ops {
    ($( $(#[doc = $doc:literal])+ $kind:literal => $variant:ident($ty:ty), )*) => {
        /// One operation of a pipeline, named by its key in the step (`filter: "..."`).
        #[derive(Clone, Debug, PartialEq)]
        pub enum StepOp {
            $( $(#[doc = $doc])+ $variant($ty), )*
            /// `split: [{ name, when?, to | steps }]`: sends each record down the first branch
            /// whose `when` holds; the branch without `when` (last) takes the rest.
            Split(Vec<Branch>),
        }

        impl StepOp {
            /// Every step kind, as written in manifests.
            pub const KINDS: &'static [&'static str] = &[$($kind,)* "split"];

            /// The step's kind as written (`filter`, `windowedBy`, ...).
            pub fn kind(&self) -> &'static str {
                match self {
                    $( StepOp::$variant(_) => $kind, )*
                    StepOp::Split(_) => "split",
                }
            }

            pub(crate) fn serialize_entry<M: serde::ser::SerializeMap>(
                &self,
                map: &mut M,
            ) -> Result<(), M::Error> {
                match self {
                    $( StepOp::$variant(p) => map.serialize_entry($kind, p), )*
                    StepOp::Split(b) => map.serialize_entry("split", b),
                }
            }

            /// Reads the payload of the step `kind` (one of [`StepOp::KINDS`]).
            pub(crate) fn deserialize_payload<'de, D: serde::Deserializer<'de>>(
                kind: &str,
                d: D,
            ) -> Result<StepOp, D::Error> {
                match kind {
                    $( $kind => <$ty>::deserialize(d).map(StepOp::$variant), )*
                    "split" => Vec::<Branch>::deserialize(d).map(StepOp::Split),
                    other => Err(serde::de::Error::custom(format!("unknown step '{other}'"))),
                }
            }

            /// Each kind but `split` with the schema and description of its payload.
            pub(crate) fn payload_schemas(
                generator: &mut SchemaGenerator,
            ) -> Vec<(&'static str, Schema, String)> {
                vec![$(
                    (
                        $kind,
                        generator.subschema_for::<$ty>(),
                        [$($doc),+].map(str::trim).join(" "),
                    ),
                )*]
            }
        }
    };
}

step_ops! {
    /// A CEL condition: only the records for which it is true go on (`key`, `value`,
    /// `timestamp`, `headers`, `topic`, `partition`, `offset` in scope); on a table, the rows.
    "filter" => Filter(String),
    /// A CEL condition: only the records for which it is false go on.
    "filterNot" => FilterNot(String),
    /// A CEL expression returning `{'key': ..., 'value': ...}`, the new record.
    "map" => Map(String),
    /// A CEL expression returning the new value; the key is kept.
    "mapValues" => MapValues(String),
    /// A CEL expression returning a list of `{'key': ..., 'value': ...}`, records to emit.
    "flatMap" => FlatMap(String),
    /// A CEL expression returning a list of values, each emitted with the record's key.
    "flatMapValues" => FlatMapValues(String),
    /// A CEL expression returning the new key; the value is kept.
    "selectKey" => SelectKey(String),
    /// A CEL expression logged for each record, which goes on unchanged.
    "peek" => Peek(String),
    /// The streams or pipelines to merge into this one: a name or a list of names.
    "merge" => Merge(Names),
    /// Writes the records through an internal topic (after a key change, or to change the
    /// partition count).
    "repartition" => Repartition(RepartitionStep),
    /// Writes the records to a topic; the pipeline ends here.
    "to" => To(Sink),
    /// Joins with a table (`table`), a global table (`globalTable` and `key`), a stream
    /// (`stream` and `window`), or, from a table, a table by foreign key (`table` and
    /// `foreignKey`); `value` combines `left` and `right`.
    "join" => Join(JoinStep),
    /// As `join`, keeping records without a partner (`right` is null).
    "leftJoin" => LeftJoin(JoinStep),
    /// As `join`, keeping records of either side without a partner (two tables or two
    /// windowed streams).
    "outerJoin" => OuterJoin(JoinStep),
    /// Folds this grouped stream and the streams in `with` into one aggregate per key.
    "cogroup" => Cogroup(CogroupStep),
    /// Groups by a new key: a CEL expression, or `{ key, keySerde, valueSerde }`.
    "groupBy" => GroupBy(GroupBy),
    /// Groups by the current key.
    "groupByKey" => GroupByKey(GroupByKeyStep),
    /// Windows a grouped stream: exactly one of `tumbling`, `hopping`, `sliding`, `session`.
    "windowedBy" => WindowedBy(Windows),
    /// Counts the records of each group (and window) into a table.
    "count" => Count(CountStep),
    /// Combines the values of each group: a CEL expression over `agg` and `value`, or an object
    /// (`reducer`; from a grouped table `adder` and `subtractor`).
    "reduce" => Reduce(Reduce),
    /// Folds each group's records into an aggregate from `initializer` with `aggregator`.
    "aggregate" => Aggregate(AggregateStep),
    /// Holds a windowed table's updates back until each window closes.
    "suppress" => Suppress(SuppressStep),
    /// Turns the stream into a table (the latest value per key).
    "toTable" => ToTable(ToTableStep),
    /// Turns the table into the stream of its updates.
    "toStream" => ToStream(Empty),
}

/// Stream or pipeline names: one, or a list.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum Names {
    /// One stream or pipeline.
    One(String),
    /// Several.
    Many(Vec<String>),
    /// Any other shape: the apiserver cannot check these union fields (see [`union_schema`]),
    /// so what it accepted must still read; the compiler refuses it by pipeline and step.
    Unchecked(serde_json::Value),
}

/// Where records are written: a topic by name, or one computed per record.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sink {
    /// The topic to write to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// A CEL expression returning the topic of each record (instead of `topic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_expr: Option<String>,
    /// Serde of the keys written (the default key serde when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_serde: Option<String>,
    /// Serde of the values written (the default value serde when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_serde: Option<String>,
    /// The schema the key serde writes with: Avro or JSON Schema as JSON text (`avro`,
    /// `json-schema`), `.proto` text (`protobuf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_schema: Option<String>,
    /// The schema the value serde writes with: Avro or JSON Schema as JSON text (`avro`,
    /// `json-schema`), `.proto` text (`protobuf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_schema: Option<String>,
    /// `protobuf`: the message of `keySchema` the keys are written as (full name, or relative
    /// to the file's package; the file's first message when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_message: Option<String>,
    /// `protobuf`: the message of `valueSchema` the values are written as (full name, or
    /// relative to the file's package; the file's first message when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_message: Option<String>,
}

/// `repartition`: the internal topic's name and size.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepartitionStep {
    /// Names the repartition topic (`<applicationId>-<name>-repartition`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Partitions of the repartition topic (those of the input when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub partitions: Option<i32>,
    /// Serde of the keys through the topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_serde: Option<String>,
    /// Serde of the values through the topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_serde: Option<String>,
    /// The schema the key serde writes with (`avro`, `json-schema`, `protobuf`), registered
    /// under `<applicationId>-<name>-repartition-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_schema: Option<String>,
    /// The schema the value serde writes with, registered under
    /// `<applicationId>-<name>-repartition-value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_schema: Option<String>,
    /// `protobuf`: the message of `keySchema` the keys are written as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_message: Option<String>,
    /// `protobuf`: the message of `valueSchema` the values are written as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_message: Option<String>,
}

/// One branch of a `split`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Branch {
    /// The branch's name (its processors are named `<split name><branch name>`).
    pub name: String,
    /// A CEL condition; the branch without one is the default and comes last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Where the branch's records go, after its `steps` if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Sink>,
    /// Steps of the branch, ending in `to` unless the branch has its own `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Step>>,
}

/// The window of a stream-stream join.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinWindow {
    /// Records join when their timestamps differ by at most this.
    pub within: Duration,
    /// How late a record may arrive and still join (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<Duration>,
}

/// `join`, `leftJoin`, `outerJoin`: what to join with and how values combine.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinStep {
    /// A declared table or a pipeline ending in a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// A declared global table (with `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_table: Option<String>,
    /// A declared stream or a pipeline ending in a stream (with `window`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The window of a stream-stream join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<JoinWindow>,
    /// A CEL expression giving the global table's key each record joins on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A CEL expression giving, from a table's row, the key of the other table's row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign_key: Option<String>,
    /// A CEL expression over `left` and `right` (and `key`): the joined value (`left` when
    /// unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// One more stream of a `cogroup`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CogroupWith {
    /// A declared stream or a pipeline ending in a stream.
    pub stream: String,
    /// A CEL expression regrouping the stream by a new key (by its key when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// A CEL expression over `agg` and `value` folding this stream's records in.
    pub aggregator: String,
}

/// `cogroup`: several grouped streams folded into one aggregate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CogroupStep {
    /// A CEL expression over `agg` and `value` folding this pipeline's records in.
    pub aggregator: String,
    /// A CEL expression: the aggregate before any record.
    pub initializer: String,
    /// The other streams.
    pub with: Vec<CogroupWith>,
    /// Name of the state store (and its changelog topic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Serde of the aggregate in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_serde: Option<String>,
    /// The schema the store's registry serde writes with (`avro`, `json-schema`: JSON text;
    /// `protobuf`: `.proto` text), registered under `<applicationId>-<store>-changelog-value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_schema: Option<String>,
    /// `protobuf`: the message of `valueSchema` the aggregates are written as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_message: Option<String>,
    /// Keep the store in memory instead of RocksDB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_memory: Option<bool>,
    /// Back the store with a changelog topic (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<bool>,
}

/// `groupBy`: a CEL expression giving the new key, or the object form with serdes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum GroupBy {
    /// The CEL expression giving the new key.
    Expr(String),
    /// The key expression with serdes.
    Options(GroupByOptions),
    /// Any other shape, kept for the compiler to refuse (see [`Names::Unchecked`]).
    Unchecked(serde_json::Value),
}

/// `groupBy` with serdes for the repartition topic.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupByOptions {
    /// A CEL expression giving the new key.
    pub key: String,
    /// Serde of the new keys in the repartition topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_serde: Option<String>,
    /// Serde of the values in the repartition topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_serde: Option<String>,
    /// The schema a registry value serde writes the repartition topic with, registered under
    /// `<applicationId>-<name>-repartition-value` (the step needs a `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_schema: Option<String>,
    /// `protobuf`: the message of `valueSchema` the values are written as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_message: Option<String>,
}

/// `groupByKey`: the serdes of the grouped records.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupByKeyStep {
    /// Serde of the keys (the default key serde when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_serde: Option<String>,
    /// Serde of the values (the default value serde when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_serde: Option<String>,
    /// The schema a registry value serde writes the repartition topic with (when the stream was
    /// re-keyed), registered under `<applicationId>-<name>-repartition-value` (the step needs a
    /// `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_schema: Option<String>,
    /// `protobuf`: the message of `valueSchema` the values are written as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_message: Option<String>,
}

/// Hopping windows: `size` long, starting every `advance`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hopping {
    /// How long each window is.
    pub size: Duration,
    /// How often a window starts: more than 0 and at most `size`.
    pub advance: Duration,
}

/// `windowedBy`: one kind of window, and how late records may be.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Windows {
    /// Fixed windows of this size, one after the other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tumbling: Option<Duration>,
    /// Overlapping windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hopping: Option<Hopping>,
    /// Windows of records at most this far apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding: Option<Duration>,
    /// Sessions: activity separated by gaps longer than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Duration>,
    /// How late a record may arrive after its window ends (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<Duration>,
}

/// `count`: where the counts are kept.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CountStep {
    /// Name of the state store (and its changelog topic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Keep the store in memory instead of RocksDB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_memory: Option<bool>,
    /// Back the store with a changelog topic (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<bool>,
}

/// `reduce`: a CEL expression over `agg` and `value`, or the object form.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum Reduce {
    /// The CEL reducer over `agg` and `value`.
    Expr(String),
    /// The reducer(s) with store options.
    Options(ReduceOptions),
    /// Any other shape, kept for the compiler to refuse (see [`Names::Unchecked`]).
    Unchecked(serde_json::Value),
}

/// `reduce` with store options; a grouped table reduces with `adder` and `subtractor`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReduceOptions {
    /// A CEL expression over `agg` and `value` (a grouped stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reducer: Option<String>,
    /// A CEL expression over `agg` and `value` adding a new row (a grouped table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adder: Option<String>,
    /// A CEL expression over `agg` and `value` taking an old row out (a grouped table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtractor: Option<String>,
    /// Name of the state store (and its changelog topic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Serde of the aggregate in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_serde: Option<String>,
    /// The schema the store's registry serde writes with (`avro`, `json-schema`: JSON text;
    /// `protobuf`: `.proto` text), registered under `<applicationId>-<store>-changelog-value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_schema: Option<String>,
    /// `protobuf`: the message of `valueSchema` the aggregates are written as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_message: Option<String>,
    /// Keep the store in memory instead of RocksDB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_memory: Option<bool>,
    /// Back the store with a changelog topic (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<bool>,
}

/// `aggregate`: the fold and where its result is kept.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AggregateStep {
    /// A CEL expression: the aggregate before any record.
    pub initializer: String,
    /// A CEL expression over `agg` and `value`: the new aggregate.
    pub aggregator: String,
    /// For session windows: a CEL expression over `left` and `right` merging two sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merger: Option<String>,
    /// For a grouped table: a CEL expression over `agg` and `value` taking an old value out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtractor: Option<String>,
    /// Name of the state store (and its changelog topic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Serde of the aggregate in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_serde: Option<String>,
    /// The schema the store's registry serde writes with (`avro`, `json-schema`: JSON text;
    /// `protobuf`: `.proto` text), registered under `<applicationId>-<store>-changelog-value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_schema: Option<String>,
    /// `protobuf`: the message of `valueSchema` the aggregates are written as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_message: Option<String>,
    /// Keep the store in memory instead of RocksDB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_memory: Option<bool>,
    /// Back the store with a changelog topic (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<bool>,
}

/// `suppress`: only `untilWindowCloses: true` is supported.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuppressStep {
    /// Emit each window's final result once, when the window closes.
    pub until_window_closes: bool,
}

/// `toTable`: the table's store and serdes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToTableStep {
    /// Name of the state store (and its changelog topic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Serde of the keys (the default key serde when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_serde: Option<String>,
    /// Serde of the values in the store (the default value serde when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_serde: Option<String>,
    /// The schema the store's registry serde writes with (`avro`, `json-schema`: JSON text;
    /// `protobuf`: `.proto` text), registered under `<applicationId>-<store>-changelog-value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_schema: Option<String>,
    /// `protobuf`: the message of `valueSchema` the values are written as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_message: Option<String>,
    /// Keep the store in memory instead of RocksDB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_memory: Option<bool>,
    /// Back the store with a changelog topic (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<bool>,
}

/// A step without options: written `{}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A field taking either a string or another shape. Structural schemas cannot type a union of a
/// string and an object or a list, and CEL rules cannot read an untyped node, so the apiserver
/// keeps this value as written and the types read any shape there ([`Names::Unchecked`]): an
/// object the apiserver admitted must never fail to read in the operator (one unreadable object
/// stops a whole watch). The compiler checks the shape, by pipeline and step.
fn union_schema() -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

impl JsonSchema for Names {
    fn schema_name() -> Cow<'static, str> {
        "Names".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        union_schema()
    }
}

impl JsonSchema for GroupBy {
    fn schema_name() -> Cow<'static, str> {
        "GroupBy".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        union_schema()
    }
}

impl JsonSchema for Reduce {
    fn schema_name() -> Cow<'static, str> {
        "Reduce".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        union_schema()
    }
}

/// Levels of steps the schema types: a pipeline's steps, a `split` branch's steps, and those of
/// a branch of a split inside a branch. A `split` at the last level is refused (by the
/// apiserver as an unknown field, by `freshet-engine validate` with this limit).
pub const STEP_LEVELS: usize = 3;

/// A step: one operation (`filter: "value.amount > 0"`) and, optionally, a `name` for its
/// processor and internal topics.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Names the step's processor and, for steps that make them, its internal topics and
    /// stores (`<pipeline>-<position>` otherwise).
    pub name: Option<String>,
    /// What the step does.
    pub op: StepOp,
}

impl Step {
    /// The steps of the branches of this step (empty unless it is a `split`).
    pub fn branch_steps(&self) -> impl Iterator<Item = (&str, &[Step])> {
        let branches = match &self.op {
            StepOp::Split(b) => b.as_slice(),
            _ => &[],
        };
        branches
            .iter()
            .map(|b| (b.name.as_str(), b.steps.as_deref().unwrap_or_default()))
    }
}

impl Serialize for Step {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1 + usize::from(self.name.is_some())))?;
        if let Some(name) = &self.name {
            map.serialize_entry("name", name)?;
        }
        self.op.serialize_entry(&mut map)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(StepVisitor)
    }
}

struct StepVisitor;

impl<'de> Visitor<'de> for StepVisitor {
    type Value = Step;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a step: a map with one operation, such as `filter: \"<expression>\"`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
        use serde::de::Error;
        let mut name = None;
        let mut op: Option<StepOp> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "name" {
                name = Some(map.next_value::<String>()?);
                continue;
            }
            if let Some(first) = &op {
                return Err(A::Error::custom(format!(
                    "one operation per step, found {} and {key}",
                    first.kind()
                )));
            }
            let Some(kind) = StepOp::KINDS.iter().find(|k| **k == key) else {
                return Err(A::Error::custom(unknown_step(&key)));
            };
            op = Some(map.next_value_seed(Payload(kind))?);
        }
        let op = op.ok_or_else(|| {
            A::Error::custom(format!(
                "the step names no operation (one of {})",
                StepOp::KINDS.join(", ")
            ))
        })?;
        Ok(Step { name, op })
    }
}

/// The payload of the step `.0`.
struct Payload(&'static str);

impl<'de> DeserializeSeed<'de> for Payload {
    type Value = StepOp;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<StepOp, D::Error> {
        StepOp::deserialize_payload(self.0, d)
    }
}

/// `unknown step 'x'`, with the closest kind when one is close.
fn unknown_step(word: &str) -> String {
    let closest = StepOp::KINDS
        .iter()
        .map(|k| {
            (
                strsim::levenshtein(&word.to_lowercase(), &k.to_lowercase()),
                k,
            )
        })
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d);
    match closest {
        Some((_, k)) => format!("unknown step '{word}': did you mean '{k}'?"),
        None => format!(
            "unknown step '{word}' (steps: {})",
            StepOp::KINDS.join(", ")
        ),
    }
}

impl JsonSchema for Step {
    fn schema_name() -> Cow<'static, str> {
        "Step".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        step_schema(generator, 1)
    }
}

/// The schema of a step at nesting `level` (1: a pipeline's steps).
fn step_schema(generator: &mut SchemaGenerator, level: usize) -> Schema {
    let mut properties = serde_json::Map::new();
    properties.insert(
        "name".into(),
        serde_json::json!({
            "type": "string",
            "description": "Names the step's processor (and its internal topics)."
        }),
    );
    let mut kinds = Vec::new();
    for (kind, schema, description) in StepOp::payload_schemas(generator) {
        properties.insert(kind.into(), described(schema, &description));
        kinds.push(kind);
    }
    if level < STEP_LEVELS {
        let branch = branch_schema(generator, level + 1);
        properties.insert(
            "split".into(),
            serde_json::json!({
                "type": "array",
                "minItems": 1,
                "items": branch,
                "description": "Sends each record down the first branch whose `when` holds; the branch without `when` (last) takes the rest."
            }),
        );
        kinds.push("split");
    }
    let one_of: Vec<_> = kinds
        .iter()
        .map(|k| serde_json::json!({ "required": [k] }))
        .collect();
    json_schema!({
        "type": "object",
        "description": "One operation, such as `filter: \"<expression>\"`, and an optional `name`.",
        "properties": properties,
        "oneOf": one_of,
    })
}

/// A split branch whose steps are at `level`.
fn branch_schema(generator: &mut SchemaGenerator, level: usize) -> serde_json::Value {
    let to = generator.subschema_for::<Sink>();
    serde_json::json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": { "type": "string", "description": "The branch's name." },
            "when": {
                "type": "string",
                "description": "A CEL condition; the branch without one is the default and comes last."
            },
            "to": described(to, "Where the branch's records go, after its `steps` if any."),
            "steps": {
                "type": "array",
                "items": step_schema(generator, level),
                "description": "Steps of the branch, ending in `to` unless the branch has its own `to`."
            }
        }
    })
}

fn described(schema: Schema, description: &str) -> serde_json::Value {
    let mut value = schema.to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("description".into(), description.into());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(yaml: &str) -> Result<Step, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(yaml)
    }

    /// The message of the error reading `yaml` as a step.
    fn refusal(yaml: &str) -> String {
        step(yaml).expect_err(yaml).to_string()
    }

    #[test]
    fn a_step_reads_its_one_operation_and_name_and_writes_them_back() {
        let s = step("{ name: big, filter: \"value.amount > 100\" }").unwrap();
        assert_eq!(s.name.as_deref(), Some("big"));
        assert_eq!(s.op, StepOp::Filter("value.amount > 100".into()));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "name": "big", "filter": "value.amount > 100" })
        );
        let s = step("groupBy: { key: value.customer, keySerde: string }").unwrap();
        assert!(
            matches!(s.op, StepOp::GroupBy(GroupBy::Options(_))),
            "{s:?}"
        );
    }

    #[test]
    fn unknown_steps_fields_and_operation_counts_are_refused() {
        let err = refusal("mapValue: value");
        assert!(err.contains("did you mean 'mapValues'"), "{err}");
        let err = refusal("{ filter: a, map: b }");
        assert!(err.contains("one operation per step"), "{err}");
        let err = refusal("{ name: x }");
        assert!(err.contains("names no operation"), "{err}");
        let err = refusal("split: [{ name: a, wehn: x, to: { topic: t } }]");
        assert!(err.contains("wehn"), "{err}");
        let err = refusal("windowedBy: { tumbling: 10 minutes }");
        assert!(err.contains("not a duration"), "{err}");
    }

    #[test]
    fn union_fields_read_any_shape_the_apiserver_admits() {
        // The schema cannot check these, so the types must not refuse them either.
        let s = step("groupBy: { kee: value.customer }").unwrap();
        assert!(
            matches!(s.op, StepOp::GroupBy(GroupBy::Unchecked(_))),
            "{s:?}"
        );
    }

    #[test]
    fn the_step_schema_types_splits_down_to_the_last_level() {
        let mut generator = SchemaGenerator::default();
        let schema = step_schema(&mut generator, 1).to_value();
        let mut level = &schema;
        for _ in 1..STEP_LEVELS {
            assert!(level["properties"]["filter"]["description"].is_string());
            level = &level["properties"]["split"]["items"]["properties"]["steps"]["items"];
        }
        assert!(level["properties"]["to"].is_object());
        assert!(level["properties"].get("split").is_none(), "{level}");
        let one_of = level["oneOf"].as_array().unwrap();
        assert_eq!(one_of.len(), StepOp::KINDS.len() - 1);
    }
}
