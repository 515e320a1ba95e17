//! Serdes whose schemas live in a schema registry with Confluent's REST API, in Confluent's wire
//! format: magic byte 0, the schema id (4 bytes, big-endian), then the payload.
//!
//! The registry client ([`client`]) fetches writer schemas by id and caches them, registers or
//! looks up the schemas it writes with, and retries an unreachable registry within
//! `task.timeout.ms`; [`avro`], [`json_schema`] and [`protobuf`] turn their data into CEL values
//! and back.

pub mod avro;
pub mod client;
pub mod json_schema;
pub mod protobuf;
pub mod spec;

use std::sync::Arc;
use std::time::Duration;

pub use client::{RegisteredSchema, RegistryClient, RegistryError, SchemaReference};

use crate::config::StreamsConfig;

/// Why a schema-registry serde (`avro`, `json-schema`, `protobuf`) was used where no subject is
/// bound to it (the key serde of a grouping, which serves both its repartition topic and the
/// store; keys of tables; source tables).
pub(crate) const UNBOUND: &str = "the avro, json-schema and protobuf serdes serve topics (sources, `to` and `repartition` steps), the values of named groupings (their repartition topic) and of named stores (aggregations and toTable, with `store`), with schema.registry.url set; the serdes of groupBy and groupByKey keys, of table keys and of source tables take json, string, long, ...";

/// The first byte of Confluent's wire format.
pub const MAGIC_BYTE: u8 = 0;

/// How a serializer names the subject it registers or looks up its schema under, as Confluent's
/// `key.subject.name.strategy` / `value.subject.name.strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` / `<topic>-value` (Confluent's default).
    TopicName,
    /// The record's full name.
    RecordName,
    /// `<topic>-<record's full name>`.
    TopicRecordName,
}

impl SubjectNameStrategy {
    fn parse(name: &str) -> SubjectNameStrategy {
        match name {
            "RecordNameStrategy" => SubjectNameStrategy::RecordName,
            "TopicRecordNameStrategy" => SubjectNameStrategy::TopicRecordName,
            _ => SubjectNameStrategy::TopicName,
        }
    }

    /// The subject for a record of `record_name` (a full name, when the schema is a named type)
    /// written to `topic`.
    pub fn subject(
        self,
        topic: &str,
        is_key: bool,
        record_name: Option<&str>,
    ) -> Result<String, String> {
        let record = || {
            record_name.ok_or_else(|| {
                format!(
                    "{self:?}Strategy needs a named schema (a record, enum or fixed) to name the subject"
                )
            })
        };
        Ok(match self {
            SubjectNameStrategy::TopicName => {
                format!("{topic}-{}", if is_key { "key" } else { "value" })
            }
            SubjectNameStrategy::RecordName => record()?.to_owned(),
            SubjectNameStrategy::TopicRecordName => format!("{topic}-{}", record()?),
        })
    }
}

/// The registry settings of an application, from Confluent's property names (no `Debug`: it
/// holds the basic-auth password).
#[derive(Clone)]
pub struct RegistrySettings {
    /// The base URL of the registry's Confluent-compatible API.
    pub url: String,
    /// `user:password` for basic auth, when `basic.auth.credentials.source` asks for it.
    pub user_info: Option<String>,
    /// `auto.register.schemas`.
    pub auto_register: bool,
    /// `use.latest.version`.
    pub use_latest_version: bool,
    /// `key.subject.name.strategy`.
    pub key_strategy: SubjectNameStrategy,
    /// `value.subject.name.strategy`.
    pub value_strategy: SubjectNameStrategy,
    /// How long an unreachable registry is retried (`task.timeout.ms`).
    pub timeout: Duration,
    /// CA certificates (PEM) to trust instead of the system's
    /// (`schema.registry.ssl.truststore.certificates`).
    pub trusted_pem: Option<String>,
}

impl RegistrySettings {
    /// Settings of a client that is never called (for checking a manifest's structure).
    pub(crate) fn unused() -> RegistrySettings {
        RegistrySettings {
            url: "http://schema-registry.invalid".to_owned(),
            user_info: None,
            auto_register: true,
            use_latest_version: false,
            key_strategy: SubjectNameStrategy::TopicName,
            value_strategy: SubjectNameStrategy::TopicName,
            timeout: Duration::ZERO,
            trusted_pem: None,
        }
    }

    /// The settings `config` gives, or `None` without `schema.registry.url`.
    pub fn from_config(config: &StreamsConfig) -> Option<RegistrySettings> {
        let url = config.schema_registry_url.clone()?;
        let user_info = match config.basic_auth_credentials_source.as_deref() {
            Some("USER_INFO") => config.basic_auth_user_info.clone(),
            Some("URL") => url
                .split_once("://")
                .and_then(|(_, rest)| rest.split_once('@'))
                .map(|(user, _)| user.to_owned()),
            _ => None,
        };
        Some(RegistrySettings {
            url,
            user_info,
            auto_register: config.auto_register_schemas,
            use_latest_version: config.use_latest_version,
            key_strategy: SubjectNameStrategy::parse(&config.key_subject_name_strategy),
            value_strategy: SubjectNameStrategy::parse(&config.value_subject_name_strategy),
            timeout: config.task_timeout,
            trusted_pem: config.schema_registry_ssl_truststore_certificates.clone(),
        })
    }
}

/// The schema with id `id` for the `serde` named (`avro`, `json-schema`, `protobuf`), which
/// reads registry schemas of type `schema_type` (`AVRO`, `JSON`, `PROTOBUF`): errors name the id
/// and say what to do.
pub(crate) fn fetch_by_id(
    client: &RegistryClient,
    id: u32,
    schema_type: &str,
    serde: &str,
) -> Result<Arc<RegisteredSchema>, String> {
    let registered = client.schema_by_id(id).map_err(|e| {
        let hint = if e.code() == Some(40403) {
            " (no schema has this id: was the record written against another registry?)"
        } else {
            ""
        };
        format!("{serde}: schema id {id}: {e}{hint}")
    })?;
    let found = registered.schema_type.as_deref().unwrap_or("AVRO");
    if found != schema_type {
        return Err(format!(
            "{serde}: schema id {id} is a {found} schema, not {schema_type}: read this topic with the matching serde (avro, json-schema, protobuf)"
        ));
    }
    Ok(registered)
}

/// A schema reference that could not be followed.
#[derive(Debug, thiserror::Error)]
#[error("schema id {id} refers to '{name}' in subject '{subject}' version {version}: {source}")]
pub struct ReferenceError {
    /// The id of the schema that refers.
    pub id: u32,
    /// The referenced type.
    pub name: String,
    /// The subject and version that should define it.
    pub subject: String,
    /// The version of `subject`.
    pub version: i64,
    /// Why the registry did not give it.
    #[source]
    pub source: RegistryError,
}

/// The texts of the schemas `registered` (schema id `id`) refers to, and those they refer to,
/// each after the ones it needs: what parsing it needs beside its own text.
pub fn referenced_texts(
    client: &RegistryClient,
    registered: &RegisteredSchema,
    id: u32,
) -> Result<Vec<String>, ReferenceError> {
    Ok(referenced_schemas(client, registered, id)?
        .into_iter()
        .map(|(_, text)| text)
        .collect())
}

/// [`referenced_texts`] with the name each is referred to by (an Avro type's full name, a
/// Protobuf import's file name).
pub fn referenced_schemas(
    client: &RegistryClient,
    registered: &RegisteredSchema,
    id: u32,
) -> Result<Vec<(String, String)>, ReferenceError> {
    fn walk(
        client: &RegistryClient,
        refs: &[client::SchemaReference],
        id: u32,
        seen: &mut Vec<(String, i64)>,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), ReferenceError> {
        for r in refs {
            let at = (r.subject.clone(), r.version);
            if seen.contains(&at) {
                continue;
            }
            seen.push(at);
            let found = client
                .version(&r.subject, r.version)
                .map_err(|source| ReferenceError {
                    id,
                    name: r.name.clone(),
                    subject: r.subject.clone(),
                    version: r.version,
                    source,
                })?;
            walk(client, &found.references, id, seen, out)?;
            out.push((r.name.clone(), found.schema.clone()));
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(
        client,
        &registered.references,
        id,
        &mut Vec::new(),
        &mut out,
    )?;
    Ok(out)
}

/// The subject a sink of `serde` writing `topic` registers or looks up its schema under.
pub(crate) fn sink_subject(
    client: &RegistryClient,
    serde: &str,
    topic: Option<&str>,
    is_key: bool,
    record_name: Option<&str>,
) -> Result<String, String> {
    let settings = client.settings();
    let topic = topic.ok_or_else(|| {
        format!(
            "{serde}: this serde only reads (no topic to name the subject after); write with a `to` step"
        )
    })?;
    let strategy = if is_key {
        settings.key_strategy
    } else {
        settings.value_strategy
    };
    strategy
        .subject(topic, is_key, record_name)
        .map_err(|e| format!("{serde}: {e}"))
}

/// The latest schema of `subject` (`use.latest.version`).
pub(crate) fn latest_of(
    client: &RegistryClient,
    serde: &str,
    subject: &str,
) -> Result<Arc<RegisteredSchema>, String> {
    client
        .latest(subject)
        .map_err(|e| format!("{serde}: the latest schema of subject '{subject}': {e}"))
}

/// The id of schema `text` (of type `schema_type`) under `subject`: registered there with
/// `auto.register.schemas`, else looked up.
pub(crate) fn register(
    client: &RegistryClient,
    serde: &str,
    subject: &str,
    text: &str,
    schema_type: &str,
) -> Result<u32, String> {
    client.id_for(subject, text, schema_type).map_err(|e| {
        let hint = match e.code() {
            Some(409) => {
                " (the schema is incompatible with the subject's earlier versions under its compatibility level)"
            }
            Some(40401 | 40403) => {
                " (auto.register.schemas is false and the schema is not registered under this subject)"
            }
            _ => "",
        };
        format!("{serde}: registering the schema under subject '{subject}': {e}{hint}")
    })
}

/// Splits Confluent's framing off `bytes`: the schema id and the payload.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    match bytes {
        [MAGIC_BYTE, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [other, ..] if *other != MAGIC_BYTE => Err(format!(
            "not in Confluent's wire format: the first byte is {other}, not the magic byte 0 (was it written without a schema registry serializer?)"
        )),
        _ => Err(format!(
            "not in Confluent's wire format: {} bytes, shorter than the 5-byte header",
            bytes.len()
        )),
    }
}

/// Confluent's framing of `payload` written with schema `id`.
pub fn frame(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The CEL type of `v`, as error messages of the registry serdes name it.
pub(crate) fn type_name(v: &cel::Value) -> &'static str {
    match v {
        cel::Value::List(_) => "list",
        cel::Value::Map(_) => "map",
        cel::Value::Int(_) => "int",
        cel::Value::UInt(_) => "uint",
        cel::Value::Float(_) => "double",
        cel::Value::String(_) => "string",
        cel::Value::Bytes(_) => "bytes",
        cel::Value::Bool(_) => "bool",
        cel::Value::Null => "null",
        cel::Value::Timestamp(_) => "timestamp",
        cel::Value::Duration(_) => "duration",
        _ => "an unsupported type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips_and_refuses_other_bytes() {
        let framed = frame(258, b"xy");
        assert_eq!(framed, [0, 0, 0, 1, 2, b'x', b'y']);
        assert_eq!(unframe(&framed).unwrap(), (258, &b"xy"[..]));
        assert!(unframe(b"{\"a\":1}").unwrap_err().contains("magic byte"));
        assert!(unframe(&[0, 0, 1]).unwrap_err().contains("5-byte header"));
    }

    #[test]
    fn subjects_follow_confluents_strategies() {
        let s = SubjectNameStrategy::TopicName;
        assert_eq!(s.subject("t", false, Some("a.R")).unwrap(), "t-value");
        assert_eq!(s.subject("t", true, None).unwrap(), "t-key");
        let s = SubjectNameStrategy::RecordName;
        assert_eq!(s.subject("t", false, Some("a.R")).unwrap(), "a.R");
        assert!(s.subject("t", false, None).is_err());
        let s = SubjectNameStrategy::TopicRecordName;
        assert_eq!(s.subject("t", false, Some("a.R")).unwrap(), "t-a.R");
    }
}
