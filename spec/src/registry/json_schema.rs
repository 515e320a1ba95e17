//! The `json-schema` serde: JSON documents in Confluent's wire format (`KafkaJsonSchemaSerializer`,
//! confluent-kafka's `JSONSerializer`): magic byte 0, the 4-byte schema id of a JSON Schema in the
//! registry, then the document as UTF-8 JSON.
//!
//! Reading: the id is checked to name a `JSON` schema (fetched once and cached); the document
//! becomes CEL values as the `json` serde makes them. Writing: the schema is the one the manifest
//! gives (`keySchema` / `valueSchema`: a JSON Schema as a YAML map or JSON text) or the subject's
//! latest (`use.latest.version`); its id comes from registering it under the subject
//! (`auto.register.schemas`) or looking it up. As Confluent's Java serdes with their default
//! `json.fail.invalid.schema=false`, documents are not validated against the schema here:
//! `validate` checks the fields a step writes against the schema's `properties` instead.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use cel::Value;

use super::{RegistryClient, frame, unframe};
use crate::expr::{json_to_value, value_to_json};
use crate::serdes::Serde;

/// Where a `json-schema` serde writes, and with which schema.
#[derive(Clone, Debug)]
pub struct JsonSchemaTarget {
    /// The topic written (for the subject), `None` for a serde that only reads.
    pub topic: Option<String>,
    /// Whether it serializes keys (`<topic>-key`) or values.
    pub is_key: bool,
    /// The JSON Schema given in the manifest: what a sink registers and writes with.
    pub schema: Option<Arc<serde_json::Value>>,
}

/// The `json-schema` serde over CEL values.
pub struct JsonSchemaSerde {
    client: Arc<RegistryClient>,
    target: JsonSchemaTarget,
    /// Ids already checked to be JSON Schemas.
    checked: Mutex<HashSet<u32>>,
    /// The id a sink writes with, once known.
    writer: Mutex<Option<u32>>,
}

impl JsonSchemaSerde {
    /// A `json-schema` serde over `client`'s registry.
    pub fn new(client: Arc<RegistryClient>, target: JsonSchemaTarget) -> JsonSchemaSerde {
        JsonSchemaSerde {
            client,
            target,
            checked: Mutex::new(HashSet::new()),
            writer: Mutex::new(None),
        }
    }

    fn sink_id(&self) -> Result<u32, String> {
        if let Some(id) = *lock(&self.writer) {
            return Ok(id);
        }
        // RecordNameStrategy names a JSON Schema by its `title`, as Confluent's serdes do.
        let title = self
            .target
            .schema
            .as_ref()
            .and_then(|s| s.get("title"))
            .and_then(serde_json::Value::as_str);
        let subject = super::sink_subject(
            &self.client,
            "json-schema",
            self.target.topic.as_deref(),
            self.target.is_key,
            title,
        )?;
        let id = if self.client.settings().use_latest_version {
            super::latest_of(&self.client, "json-schema", &subject)?.id
        } else {
            let schema = self.target.schema.as_ref().ok_or_else(|| {
                format!(
                    "json-schema: no schema to write subject '{subject}' with: give the step's {} (a JSON Schema) or set use.latest.version=true",
                    if self.target.is_key { "keySchema" } else { "valueSchema" }
                )
            })?;
            super::register(
                &self.client,
                "json-schema",
                &subject,
                &schema.to_string(),
                "JSON",
            )?
        };
        *lock(&self.writer) = Some(id);
        Ok(id)
    }
}

impl Serde<Value> for JsonSchemaSerde {
    fn name(&self) -> String {
        "json-schema".to_owned()
    }

    fn serialize(&self, value: &Value) -> Result<Option<Vec<u8>>, String> {
        if matches!(value, Value::Null) {
            return Ok(None);
        }
        let id = self.sink_id()?;
        let mut payload = Vec::with_capacity(64);
        value_to_json(value, &mut payload)
            .map_err(|e| format!("json-schema (schema id {id}): {e}"))?;
        Ok(Some(frame(id, &payload)))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Value, String> {
        let Some(bytes) = bytes else {
            return Ok(Value::Null);
        };
        let (id, payload) = unframe(bytes).map_err(|e| format!("json-schema: {e}"))?;
        if !lock(&self.checked).contains(&id) {
            super::fetch_by_id(&self.client, id, "JSON", "json-schema")?;
            lock(&self.checked).insert(id);
        }
        json_to_value(payload)
            .map_err(|e| format!("json-schema: the document of schema id {id} is not JSON: {e}"))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere does not make these wrong: entries are inserted whole.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Parses a JSON Schema given in a manifest: a YAML map, or JSON text.
pub fn parse_schema(given: &serde_json::Value) -> Result<Arc<serde_json::Value>, String> {
    let schema = match given {
        serde_json::Value::String(text) => serde_json::from_str(text)
            .map_err(|e| format!("not a JSON Schema (the text is not JSON: {e})"))?,
        other => other.clone(),
    };
    if !schema.is_object() && !schema.is_boolean() {
        return Err("not a JSON Schema: give an object (a YAML map or JSON text)".to_owned());
    }
    Ok(Arc::new(schema))
}

/// The properties an object JSON Schema declares, when it closes them
/// (`additionalProperties: false`): what `validate` checks written fields against.
pub fn closed_properties(schema: &serde_json::Value) -> Option<Vec<String>> {
    if schema.get("additionalProperties") != Some(&serde_json::Value::Bool(false)) {
        return None;
    }
    Some(
        schema
            .get("properties")
            .and_then(serde_json::Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_parse_from_maps_and_text_and_refuse_the_rest() {
        let map = serde_json::json!({"type": "object", "title": "Order"});
        assert_eq!(*parse_schema(&map).unwrap(), map);
        let text = serde_json::Value::String(map.to_string());
        assert_eq!(*parse_schema(&text).unwrap(), map);
        let bad = serde_json::Value::String("{nope".to_owned());
        assert!(parse_schema(&bad).unwrap_err().contains("not JSON"));
        assert!(parse_schema(&serde_json::json!(3)).is_err());
    }

    #[test]
    fn only_closed_schemas_limit_the_fields() {
        let open = serde_json::json!({"type": "object", "properties": {"a": {}}});
        assert_eq!(closed_properties(&open), None);
        let closed = serde_json::json!({"type": "object", "properties": {"a": {}},
            "additionalProperties": false});
        assert_eq!(closed_properties(&closed), Some(vec!["a".to_owned()]));
    }
}
