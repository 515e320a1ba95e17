//! The topology of a StreamsApp, typed: sources, tables, global tables and pipelines of steps.
//!
//! The schema the apiserver checks is generated from these types, so `kubectl apply` refuses an
//! unknown step, a misspelled field or a wrong type with the field's path; the engine reads the
//! same types and refuses the same manifests. A step is a map with one operation key and an
//! optional `name`; its schema lists every operation as an optional property, and a `oneOf` of
//! `required` entries asks for exactly one (structural schemas allow no types inside `oneOf`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::steps::{STEP_LEVELS, Step};

/// Named inputs and the pipelines that read them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologySpec {
    /// Streams read from topics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<StreamSource>,
    /// Tables read from (compacted) topics, partitioned like them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableSource>,
    /// Tables every instance reads whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub global_tables: Vec<GlobalTableSource>,
    /// Pipelines of steps, each from a stream, a table or another pipeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pipelines: Vec<Pipeline>,
}

/// A stream read from one topic or several.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.topic) != has(self.topics)",
    "message": "give 'topic: <name>' or 'topics: [<name>, ...]'"
}]))]
pub struct StreamSource {
    /// The name pipelines read it by (`from`).
    pub name: String,
    /// The topic read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Several topics read as one stream (instead of `topic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub topics: Option<Vec<String>>,
    /// Serde of the keys (the default key serde when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_serde: Option<String>,
    /// Serde of the values (the default value serde when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_serde: Option<String>,
    /// The reader schema (Avro, JSON text) of the `avro` key serde: records are resolved
    /// against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_schema: Option<String>,
    /// The reader schema (Avro, JSON text) of the `avro` value serde.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_schema: Option<String>,
}

/// A table: the latest value per key of a topic.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TableSource {
    /// The name pipelines and joins use.
    pub name: String,
    /// The topic read.
    pub topic: String,
    /// Serde of the keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_serde: Option<String>,
    /// Serde of the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_serde: Option<String>,
    /// Name of the state store (`<topic>-STATE-STORE` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Keep the store in memory instead of RocksDB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_memory: Option<bool>,
    /// Back the store with a changelog topic (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<bool>,
}

/// A global table: every instance holds all of its topic.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalTableSource {
    /// The name joins use (`globalTable`).
    pub name: String,
    /// The topic read.
    pub topic: String,
    /// Serde of the keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_serde: Option<String>,
    /// Serde of the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_serde: Option<String>,
    /// Name of the state store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

/// Steps applied in order to a stream, a table or another pipeline's output.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pipeline {
    /// The pipeline's name: other pipelines may read it (`from`) when it ends without `to`.
    pub name: String,
    /// A declared stream, table or global table, or a pipeline.
    pub from: String,
    /// The steps; a pipeline without steps is its input under another name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
}
