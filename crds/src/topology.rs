//! The topology of a StreamsApp, typed: sources, tables, global tables and pipelines of steps.
//!
//! The schema the apiserver checks is generated from these types, so `kubectl apply` refuses an
//! unknown step, a misspelled field or a wrong type with the field's path; the engine reads the
//! same types and refuses the same manifests. A step is a map with one operation key and an
//! optional `name`; its schema lists every operation as an optional property, and a `oneOf` of
//! `required` entries asks for exactly one (structural schemas allow no types inside `oneOf`).

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::steps::{Sink, StepOp};

/// Levels of steps the schema types: a pipeline's steps, a `split` branch's steps, and those of
/// a branch of a split inside a branch. A `split` at the last level is refused (by the
/// apiserver as an unknown field, by `freshet-engine validate` with this limit).
pub const STEP_LEVELS: usize = 3;

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
    use crate::steps::GroupBy;

    fn step(yaml: &str) -> Result<Step, String> {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
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
        let err = step("mapValue: value").unwrap_err();
        assert!(err.contains("did you mean 'mapValues'"), "{err}");
        let err = step("{ filter: a, map: b }").unwrap_err();
        assert!(err.contains("one operation per step"), "{err}");
        let err = step("{ name: x }").unwrap_err();
        assert!(err.contains("names no operation"), "{err}");
        let err = step("split: [{ name: a, wehn: x, to: { topic: t } }]").unwrap_err();
        assert!(err.contains("wehn"), "{err}");
        let err = step("windowedBy: { tumbling: 10 minutes }").unwrap_err();
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
