//! Binding the schema-registry serdes (`avro`, `json-schema`, `protobuf`) to their topic, their
//! registry and the schema the manifest gives, and checking at `validate` that a `to` step writes
//! only fields its output schema has.

use std::sync::Arc;

use cel::Value;
use serde_json::Value as Json;

use super::Compiler;
use crate::serdes::Serde;
use crate::values::DynSerde;

/// What a topic serde is bound to: the topic it writes (for the subject), the schema the
/// manifest gives (`keySchema` / `valueSchema`) and the Protobuf message to write
/// (`keyMessage` / `valueMessage`).
pub(crate) struct Bind<'a> {
    pub topic: Option<&'a str>,
    pub is_key: bool,
    pub schema: Option<&'a Json>,
    pub message: Option<&'a Json>,
}

impl<'a> Bind<'a> {
    /// The key's or the value's binding as a source or a step `arg` gives it.
    pub fn of(arg: &'a Json, topic: Option<&'a str>, is_key: bool) -> Bind<'a> {
        let (schema, message) = if is_key {
            ("keySchema", "keyMessage")
        } else {
            ("valueSchema", "valueMessage")
        };
        Bind {
            topic,
            is_key,
            schema: arg.get(schema),
            message: arg.get(message),
        }
    }
}

impl Compiler {
    pub(super) fn serde(
        &mut self,
        name: Option<&str>,
        default: &str,
        place: &str,
        bind: Bind,
    ) -> Arc<dyn Serde<Value>> {
        use crate::serdes::SerdeKind;
        let kind = self.kind_named(name.unwrap_or(default), place);
        let (field, message_field) = if bind.is_key {
            ("keySchema", "keyMessage")
        } else {
            ("valueSchema", "valueMessage")
        };
        let message = match bind.message {
            None => None,
            Some(Json::String(name)) if matches!(kind, SerdeKind::Protobuf) => Some(name.clone()),
            Some(Json::String(_)) => {
                self.error(
                    place,
                    format!("'{message_field}' is for the protobuf serde; this one is {kind}"),
                );
                None
            }
            Some(_) => {
                self.error(
                    place,
                    format!("'{message_field}' is the full name of a message of the schema, a string such as shop.Order"),
                );
                None
            }
        };
        if !kind.is_registry() {
            if bind.schema.is_some() {
                self.error(
                    place,
                    format!(
                        "'{field}' is for the avro, json-schema and protobuf serdes; this one is {kind}"
                    ),
                );
            }
            return Arc::new(DynSerde(kind));
        }
        let Some(client) = self.defaults.registry.clone() else {
            self.error(
                place,
                format!(
                    "the {kind} serde needs a schema registry: set schema.registry.url (spec.config) to the registry's Confluent-compatible API"
                ),
            );
            return Arc::new(DynSerde(kind));
        };
        let (topic, is_key) = (bind.topic.map(str::to_owned), bind.is_key);
        let parsed = match (&kind, bind.schema) {
            (_, None) => Ok(None),
            (SerdeKind::Avro, Some(given)) => {
                let text = match given {
                    Json::String(text) => Some(text.clone()),
                    obj @ Json::Object(_) => Some(obj.to_string()),
                    _ => None,
                };
                match text {
                    Some(text) => crate::registry::avro::parse_schema(&text).map(|s| {
                        Some(Arc::new(crate::registry::avro::AvroSerde::new(
                            client.clone(),
                            crate::registry::avro::AvroTarget {
                                topic: topic.clone(),
                                is_key,
                                schema: Some(s),
                            },
                        )) as Arc<dyn Serde<Value>>)
                    }),
                    None => Err("give an Avro schema (JSON text or a YAML map)".to_owned()),
                }
            }
            (SerdeKind::JsonSchema, Some(given)) => {
                crate::registry::json_schema::parse_schema(given).map(|s| {
                    Some(Arc::new(crate::registry::json_schema::JsonSchemaSerde::new(
                        client.clone(),
                        crate::registry::json_schema::JsonSchemaTarget {
                            topic: topic.clone(),
                            is_key,
                            schema: Some(s),
                        },
                    )) as Arc<dyn Serde<Value>>)
                })
            }
            (_, Some(given)) => match given {
                Json::String(text) => {
                    crate::registry::protobuf::ProtobufSchema::parse(text)
                        .map_err(|e| e.to_string())
                        .map(|s| {
                            // A message the schema lacks would fail every record: say so now.
                            if let Err(e) = s.message_named(message.as_deref()) {
                                self.error(place, format!("{message_field}: {e}"));
                            }
                            Some(Arc::new(crate::registry::protobuf::ProtobufSerde::new(
                                client.clone(),
                                crate::registry::protobuf::ProtobufTarget {
                                    topic: topic.clone(),
                                    is_key,
                                    schema: Some(Arc::new(s)),
                                    message: message.clone(),
                                },
                            )) as Arc<dyn Serde<Value>>)
                        })
                }
                _ => Err("give the .proto text of the schema (a YAML string)".to_owned()),
            },
        };
        match parsed {
            Ok(Some(serde)) => serde,
            Err(e) => {
                self.error(place, format!("{field}: {e}"));
                Arc::new(DynSerde(kind))
            }
            Ok(None) => match kind {
                SerdeKind::Avro => Arc::new(crate::registry::avro::AvroSerde::new(
                    client,
                    crate::registry::avro::AvroTarget {
                        topic,
                        is_key,
                        schema: None,
                    },
                )),
                SerdeKind::JsonSchema => {
                    Arc::new(crate::registry::json_schema::JsonSchemaSerde::new(
                        client,
                        crate::registry::json_schema::JsonSchemaTarget {
                            topic,
                            is_key,
                            schema: None,
                        },
                    ))
                }
                _ => Arc::new(crate::registry::protobuf::ProtobufSerde::new(
                    client,
                    crate::registry::protobuf::ProtobufTarget {
                        topic,
                        is_key,
                        schema: None,
                        message,
                    },
                )),
            },
        }
    }

    /// With `validate`: a field the last `mapValues` writes that the `to` step's output schema
    /// lacks (which would fail every record at run time).
    pub(super) fn check_output_fields(&mut self, arg: &Json, at: &str) {
        let Some((fields, step)) = self.value_fields.take() else {
            return;
        };
        let serde = arg
            .get("valueSerde")
            .and_then(Json::as_str)
            .unwrap_or(&self.defaults.value_serde)
            .to_owned();
        self.check_written_fields(arg, &serde, &fields, &step, at);
    }

    /// With `validate`: a field the last `mapValues` writes that a `repartition` step's
    /// `valueSchema` lacks; the value keeps its shape through the topic, so a later `to` step
    /// is checked too.
    pub(super) fn check_repartition_fields(&mut self, arg: &Json, at: &str) {
        let kept = self.value_fields.clone();
        self.check_output_fields(arg, at);
        self.value_fields = kept;
    }

    /// With `validate`: a field an aggregation's expressions write (map literals in
    /// `initializer`, `aggregator`, `reducer`, `adder`, `subtractor`, `merger`) that the store's
    /// `valueSchema` lacks, as [`Compiler::check_output_fields`] holds a `to` step's.
    pub(super) fn check_aggregate_fields(&mut self, arg: &Json, serde: &str, at: &str) {
        if arg.get("valueSchema").is_none() {
            return;
        }
        let fields = [
            "initializer",
            "aggregator",
            "reducer",
            "adder",
            "subtractor",
            "merger",
        ];
        for field in fields {
            let Some(text) = arg.get(field).and_then(Json::as_str) else {
                continue;
            };
            // An expression that does not compile was reported where it is compiled.
            let Ok(expr) = crate::expr::Expr::compile(text, ALL_VARS) else {
                continue;
            };
            if let Some(fields) = expr.literal_map_keys() {
                self.check_written_fields(arg, serde, &fields, &format!("{at}, {field}"), at);
            }
        }
    }

    /// Reports each of `fields` (written by `step`) that `arg`'s `valueSchema` for `serde` lacks:
    /// an Avro record's fields, a closed JSON Schema's `properties` (`additionalProperties:
    /// false`), a Protobuf message's fields (the `valueMessage`).
    fn check_written_fields(
        &mut self,
        arg: &Json,
        serde: &str,
        fields: &[String],
        step: &str,
        at: &str,
    ) {
        let Some(given) = arg.get("valueSchema") else {
            return;
        };
        let text = match given {
            Json::String(text) => text.clone(),
            other => other.to_string(),
        };
        let declared: Option<(String, Vec<String>)> = match serde {
            "avro" => match crate::registry::avro::parse_schema(&text).as_deref() {
                Ok(apache_avro::Schema::Record(record)) => Some((
                    format!("record {}", record.name.fullname(None)),
                    record.fields.iter().map(|f| f.name.clone()).collect(),
                )),
                _ => None,
            },
            "json-schema" => crate::registry::json_schema::parse_schema(given)
                .ok()
                .and_then(|s| crate::registry::json_schema::closed_properties(&s))
                .map(|props| ("closed JSON Schema".to_owned(), props)),
            "protobuf" => crate::registry::protobuf::written_fields(
                &text,
                arg.get("valueMessage").and_then(Json::as_str),
            )
            .map(|(name, fields)| (format!("message {name}"), fields)),
            _ => None,
        };
        let Some((what, known)) = declared else {
            return;
        };
        for field in fields.iter().filter(|f| !known.contains(f)) {
            self.error(
                at,
                format!(
                    "{step} writes field '{field}', which the valueSchema's {what} lacks (its fields: {})",
                    known.join(", ")
                ),
            );
        }
    }
}

/// Every variable an aggregation's expressions may use, to read their map literals.
const ALL_VARS: &[crate::expr::Var] = {
    use crate::expr::Var;
    &[
        Var::Key,
        Var::Value,
        Var::Agg,
        Var::Timestamp,
        Var::Headers,
        Var::Topic,
        Var::Partition,
        Var::Offset,
        Var::Left,
        Var::Right,
    ]
};

#[cfg(test)]
mod tests {
    use super::super::{Defaults, compile_json};
    use crate::registry::{RegistryClient, RegistrySettings};
    use std::sync::Arc;

    /// The compiler's errors for a `mapValues` writing `a` and `colour`, then a `to` step with
    /// `serde` and `schema` (nothing is called: the registry is a stand-in never reached).
    fn errors(serde: &str, schema: &str) -> String {
        let topology = serde_json::json!({
            "streams": [{"name": "s", "topic": "in"}],
            "pipelines": [{"name": "p", "from": "s", "steps": [
                {"mapValues": "{'a': 1, 'colour': 'red'}"},
                {"to": {"topic": "out", "valueSerde": serde, "valueSchema": schema}}]}]});
        compile_errors(&topology)
    }

    /// The compiler's errors for `topology`, with a registry stand-in never reached.
    fn compile_errors(topology: &serde_json::Value) -> String {
        let defaults = Defaults {
            key_serde: "string".into(),
            value_serde: "json".into(),
            registry: Some(Arc::new(RegistryClient::new(RegistrySettings::unused()))),
            application_id: "app".into(),
        };
        match compile_json(topology, defaults) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_field_a_closed_json_schema_lacks_is_an_error() {
        let closed = r#"{"type":"object","additionalProperties":false,"properties":{"a":{}}}"#;
        let err = errors("json-schema", closed);
        assert!(
            err.contains("writes field 'colour', which the valueSchema's closed JSON Schema lacks"),
            "{err}"
        );
        // An open schema lets any field through, as JSON Schema does.
        let open = r#"{"type":"object","properties":{"a":{}}}"#;
        assert_eq!(errors("json-schema", open), "");
    }

    #[test]
    fn a_field_the_protobuf_message_lacks_is_an_error() {
        let proto = "syntax = \"proto3\";\nmessage Out { int64 a = 1; }\n";
        let err = errors("protobuf", proto);
        assert!(
            err.contains("writes field 'colour', which the valueSchema's message Out lacks"),
            "{err}"
        );
        let err = errors("protobuf", "message {");
        assert!(err.contains("valueSchema: not a Protobuf schema"), "{err}");
    }

    #[test]
    fn the_protobuf_message_written_must_be_in_the_schema() {
        let proto = "syntax = \"proto3\";\npackage p;\nmessage A { message B { int64 a = 1; } }\n";
        let compile = |message: &str, serde: &str| {
            let topology = serde_json::json!({
                "streams": [{"name": "s", "topic": "in"}],
                "pipelines": [{"name": "p", "from": "s", "steps": [
                    {"mapValues": "{'a': 1}"},
                    {"to": {"topic": "out", "valueSerde": serde, "valueSchema": proto,
                            "valueMessage": message}}]}]});
            compile_errors(&topology)
        };
        // A nested message, by full name or within the package; its fields are what validate
        // holds the mapValues to.
        assert_eq!(compile("p.A.B", "protobuf"), "");
        assert_eq!(compile("A.B", "protobuf"), "");
        let err = compile("A.C", "protobuf");
        assert!(
            err.contains(
                "valueMessage: the schema has no message 'A.C' (its messages: p.A, p.A.B)"
            ),
            "{err}"
        );
        let err = compile("A", "protobuf");
        assert!(
            err.contains("writes field 'a', which the valueSchema's message p.A lacks"),
            "{err}"
        );
        let err = compile("A.B", "json");
        assert!(
            err.contains("'valueMessage' is for the protobuf serde; this one is json"),
            "{err}"
        );
    }

    #[test]
    fn a_schema_for_a_serde_without_one_is_refused() {
        let err = errors("json", "{}");
        assert!(
            err.contains("'valueSchema' is for the avro, json-schema and protobuf serdes"),
            "{err}"
        );
    }

    /// A grouped aggregation whose store value is written with `serde` and `schema`, compiled
    /// with `registry` (a stand-in never reached) or without one.
    fn store_errors(aggregate: serde_json::Value, registry: bool) -> String {
        let topology = serde_json::json!({
            "streams": [{"name": "s", "topic": "in"}],
            "pipelines": [{"name": "p", "from": "s", "steps": [
                {"groupByKey": {}},
                {"aggregate": aggregate},
                {"toStream": {}},
                {"to": {"topic": "out", "valueSerde": "json"}}]}]});
        let defaults = Defaults {
            key_serde: "string".into(),
            value_serde: "json".into(),
            registry: registry.then(|| Arc::new(RegistryClient::new(RegistrySettings::unused()))),
            application_id: "app".into(),
        };
        match compile_json(&topology, defaults) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    const SPEND: &str = r#"{"type":"record","name":"Spend","namespace":"shop","fields":[{"name":"count","type":"long"},{"name":"last","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;

    #[test]
    fn a_store_takes_a_registry_serde_with_its_schema_and_a_name() {
        let aggregate = |store: Option<&str>, aggregator: &str| {
            let mut a = serde_json::json!({
                "initializer": "{'count': 0, 'last': 0}",
                "aggregator": aggregator,
                "valueSerde": "avro",
                "valueSchema": SPEND,
            });
            if let Some(store) = store {
                a["store"] = store.into();
            }
            a
        };
        let good = "{'count': agg.count + 1, 'last': timestamp}";
        assert_eq!(store_errors(aggregate(Some("spend"), good), true), "");
        // validate holds the aggregator's map literal to the record, as a `to` step's mapValues.
        let bad = "{'count': agg.count + 1, 'last': timestamp, 'colour': 'red'}";
        let err = store_errors(aggregate(Some("spend"), bad), true);
        assert!(
            err.contains("aggregator writes field 'colour', which the valueSchema's record shop.Spend lacks (its fields: count, last)"),
            "{err}"
        );
        let err = store_errors(aggregate(None, good), true);
        assert!(
            err.contains("a store of avro values needs a name: give 'store: <name>'"),
            "{err}"
        );
        let err = store_errors(aggregate(Some("spend"), good), false);
        assert!(
            err.contains("the avro serde needs a schema registry: set schema.registry.url"),
            "{err}"
        );
        // A schema for a serde that has none is refused here as on a `to` step.
        let mut json = aggregate(Some("spend"), good);
        json["valueSerde"] = "json".into();
        let err = store_errors(json, true);
        assert!(
            err.contains("'valueSchema' is for the avro, json-schema and protobuf serdes"),
            "{err}"
        );
    }

    #[test]
    fn a_repartition_step_holds_the_value_to_its_schema() {
        let topology = serde_json::json!({
            "streams": [{"name": "s", "topic": "in"}],
            "pipelines": [{"name": "p", "from": "s", "steps": [
                {"mapValues": "{'count': 1, 'last': 0, 'colour': 'red'}"},
                {"repartition": {"name": "r", "valueSerde": "avro", "valueSchema": SPEND}},
                {"to": {"topic": "out", "valueSerde": "json"}}]}]});
        let err = compile_errors(&topology);
        assert!(
            err.contains("step 2 (repartition): pipeline 'p', step 1 (mapValues) writes field 'colour', which the valueSchema's record shop.Spend lacks"),
            "{err}"
        );
    }

    #[test]
    fn a_grouping_of_registry_values_needs_a_name_and_keeps_keys_off_the_registry() {
        let compile = |grouping: serde_json::Value| {
            let topology = serde_json::json!({
                "streams": [{"name": "s", "topic": "in"}],
                "pipelines": [{"name": "p", "from": "s", "steps": [
                    grouping,
                    {"count": {"store": "c"}},
                    {"toStream": {}},
                    {"to": {"topic": "out", "valueSerde": "long"}}]}]});
            compile_errors(&topology)
        };
        let by = |extra: serde_json::Value| {
            let mut g =
                serde_json::json!({"key": "value.who", "valueSerde": "avro", "valueSchema": SPEND});
            for (k, v) in extra.as_object().unwrap() {
                g[k] = v.clone();
            }
            g
        };
        assert_eq!(
            compile(serde_json::json!({"name": "g", "groupBy": by(serde_json::json!({}))})),
            ""
        );
        let err = compile(serde_json::json!({"groupBy": by(serde_json::json!({}))}));
        assert!(
            err.contains("a grouping of avro values needs the step's 'name'"),
            "{err}"
        );
        // A key serde serves both the repartition topic and the store: two subjects, refused.
        let err = compile(
            serde_json::json!({"name": "g", "groupBy": by(serde_json::json!({"keySerde": "avro"}))}),
        );
        assert!(
            err.contains("the serdes of groupBy and groupByKey keys"),
            "{err}"
        );
    }
}
