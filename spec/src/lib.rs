//! Declarative topologies: reading a StreamsApp manifest (or just its spec) from YAML, checking
//! it (fields, CEL expressions and their types, configuration), and compiling it into the plan of
//! the application: its topology, internal topics, stores and resolved configuration.
//!
//! This crate has no runtime: the operator plans and validates applications with it, and the
//! engine runs the plan's topology on `freshet-streams`.
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

// The build side of Kafka Streams that the compiler targets, named as inside the library; the
// configuration and the graph are part of a plan, so users of the plan see them here too.
pub use freshet_topology::{config, topology};
use freshet_topology::{dsl, processor, serdes, state};

mod compile;
pub mod duration;
pub mod expr;
pub mod kafka;
pub mod plan;
pub mod registry;
pub mod secrets;
mod values;

pub use kafka::KafkaSpecError;
pub use plan::{Plan, PlanError, plan, plan_with_secrets};
pub use secrets::{SecretError, SecretFiles, SecretSource};

pub use compile::{Defaults, SpecError, SpecErrors, compile};
pub use values::DynSerde;

use freshet_crds::{StreamsApp, StreamsAppSpec};

use crate::config::{ConfigError, Layer, LayerSource, SpecFields, StreamsConfig};
use thiserror::Error;

/// A manifest that cannot be used, with the file and the place in it.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a usable StreamsApp.
    #[error("{path}: {source}")]
    Invalid {
        /// The manifest's path.
        path: PathBuf,
        /// What is wrong and where.
        source: ParseError,
    },
}

/// Manifest text that does not read as a StreamsApp (or its spec).
#[derive(Debug, Error)]
pub enum ParseError {
    /// Not YAML, or not the StreamsApp's shape. `message` says where (line and column, the
    /// field's path) and, for a mistake in the topology, adds the compiler's explanation by
    /// pipeline and step; `cause` is the YAML library's error.
    #[error("{message}")]
    Yaml {
        /// The located message users see.
        message: String,
        /// The YAML library's error.
        #[source]
        cause: serde_yaml_ng::Error,
    },
    /// A whole resource of another kind.
    #[error(
        "kind is '{kind}', expected 'StreamsApp' (or give just the spec, without apiVersion and kind)"
    )]
    WrongKind {
        /// The `kind` the document gives.
        kind: String,
    },
}

/// Reads a whole `StreamsApp` manifest (`kind: StreamsApp`) or just its `spec`.
pub fn load_manifest(path: &Path) -> Result<StreamsAppSpec, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_manifest(&text).map_err(|source| ManifestError::Invalid {
        path: path.to_owned(),
        source,
    })
}

/// Says where an error is when the YAML library did not: an unknown field is looked up by name.
fn locate(err: &serde_yaml_ng::Error, text: &str) -> String {
    let message = err.to_string();
    if let Some(at) = err.location() {
        if !message.contains("line") {
            return format!("line {}, column {}: {message}", at.line(), at.column());
        }
        return message;
    }
    let field = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    let line = field.and_then(|f| {
        text.lines().position(|l| {
            l.trim_start()
                .trim_start_matches("- ")
                .starts_with(&format!("{f}:"))
        })
    });
    match line {
        Some(n) => format!("line {}: {message}", n + 1),
        None => message,
    }
}

/// Parses manifest text; the error gives line and column and names the offending field.
pub fn parse_manifest(text: &str) -> Result<StreamsAppSpec, ParseError> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|cause| ParseError::Yaml {
            message: locate(&cause, text),
            cause,
        })?;
    let is_whole_resource = doc.get("kind").is_some() || doc.get("apiVersion").is_some();
    if is_whole_resource {
        let kind = doc.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if kind != "StreamsApp" {
            return Err(ParseError::WrongKind {
                kind: kind.to_owned(),
            });
        }
        let app: StreamsApp = serde_yaml_ng::from_str(text).map_err(|cause| ParseError::Yaml {
            message: explain(&cause, text, doc.get("spec")),
            cause,
        })?;
        Ok(app.spec)
    } else {
        serde_yaml_ng::from_str(text).map_err(|cause| ParseError::Yaml {
            message: explain(&cause, text, Some(&doc)),
            cause,
        })
    }
}

/// Why `text` does not read as a spec. The types say where in the YAML; when the mistake is in
/// the topology, the compiler, reading it as written, usually says it better (by pipeline and
/// step, with the closest name and the fix), so its messages follow.
fn explain(err: &serde_yaml_ng::Error, text: &str, spec: Option<&serde_yaml_ng::Value>) -> String {
    let located = locate(err, text);
    let Some(topology) = spec.and_then(|s| s.get("topology")) else {
        return located;
    };
    let Ok(topology) = serde_json::to_value(topology) else {
        return located;
    };
    let serde = |field: &str| {
        spec.and_then(|s| s.get(field))
            .and_then(serde_yaml_ng::Value::as_str)
            .unwrap_or("bytes")
            .to_owned()
    };
    let defaults = Defaults {
        key_serde: serde("defaultKeySerde"),
        value_serde: serde("defaultValueSerde"),
        // Structure only, to locate the compiler's errors in the text: a registry that is never
        // called, so `avro` serdes compile without the configuration this check does not read.
        registry: Some(std::sync::Arc::new(crate::registry::RegistryClient::new(
            crate::registry::RegistrySettings::unused(),
        ))),
        application_id: serde("applicationId"),
    };
    match compile::compile_json(&topology, defaults) {
        Err(errors) => format!("{located}\n{errors}"),
        Ok(_) => located,
    }
}

/// Why a spec's configuration cannot be resolved.
#[derive(Debug, Error)]
pub enum ResolveError {
    /// A property is refused (the property, the value unless secret, the layer and the fix).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `spec.kafka` is incomplete or names a Secret that cannot be read.
    #[error(transparent)]
    Kafka(#[from] KafkaSpecError),
    /// `spec.schemaRegistry` names a Secret that cannot be read, or conflicts with `config`
    /// (boxed: the error stays small enough to return by value).
    #[error(transparent)]
    Registry(#[from] Box<registry::spec::RegistrySpecError>),
}

/// The application's configuration from its spec, as every layer stacks: `flags` (command
/// line) over `env` (`FRESHET_*` variables, see `config::layers_from_env`) over the spec's own
/// fields, `spec.kafka` and `spec.schemaRegistry` (their secrets read from `secrets`) over its
/// `config` map. The engine
/// and the operator resolve a spec the same way.
pub fn resolve_config(
    spec: &StreamsAppSpec,
    flags: Vec<(String, String)>,
    env: Vec<(String, String)>,
    secrets: &dyn SecretSource,
) -> Result<StreamsConfig, ResolveError> {
    let guarantee = spec.processing_guarantee.map(|g| {
        match g {
            freshet_crds::ProcessingGuarantee::AtLeastOnce => "at_least_once",
            freshet_crds::ProcessingGuarantee::ExactlyOnceV2 => "exactly_once_v2",
        }
        .to_owned()
    });
    let fields = SpecFields {
        application_id: Some(spec.application_id.clone()),
        bootstrap_servers: kafka::bootstrap_servers(&spec.bootstrap_servers, spec.kafka.as_ref())?,
        num_stream_threads: spec.num_stream_threads,
        state_dir: spec.state_dir.clone(),
        processing_guarantee: guarantee,
        default_key_serde: spec.default_key_serde.clone(),
        default_value_serde: spec.default_value_serde.clone(),
    };
    let mut kafka = match &spec.kafka {
        Some(k) => kafka::client_properties(k, secrets)?,
        None => Vec::new(),
    };
    if let Some(r) = &spec.schema_registry {
        kafka.extend(
            registry::spec::registry_properties(r, &spec.config, secrets).map_err(Box::new)?,
        );
    }
    let layers = [
        Layer::new(LayerSource::Flag, flags),
        Layer::new(LayerSource::Env, env),
        fields.into_layer(),
        Layer::new(LayerSource::Spec, kafka),
        Layer::new(LayerSource::Config, spec.config.clone()),
    ];
    Ok(StreamsConfig::resolve(&layers)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "applicationId: a\nbootstrapServers: localhost:9092\ntopology:\n  streams: [{name: s, topic: t}]\n";

    #[test]
    fn a_bare_spec_and_a_whole_resource_both_load() {
        assert_eq!(parse_manifest(SPEC).unwrap().application_id, "a");
        let whole = format!(
            "apiVersion: freshet.dev/v1alpha1\nkind: StreamsApp\nmetadata: {{name: x}}\nspec:\n{}",
            SPEC.lines().map(|l| format!("  {l}\n")).collect::<String>()
        );
        assert_eq!(
            parse_manifest(&whole).unwrap().bootstrap_servers,
            "localhost:9092"
        );
    }

    #[test]
    fn errors_name_the_field_and_the_line() {
        let err = parse_manifest(&SPEC.replace("applicationId", "applicationID"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("applicationID") && err.contains("line 1"),
            "{err}"
        );
        let err = parse_manifest("kind: Deployment\n").unwrap_err();
        assert!(matches!(&err, ParseError::WrongKind { kind } if kind == "Deployment"));
        let err = err.to_string();
        assert!(err.contains("expected 'StreamsApp'"), "{err}");
    }

    const TYPED: &str = r#"
applicationId: a
bootstrapServers: localhost:9092
defaultKeySerde: string
defaultValueSerde: json
autoscaling: { enabled: true, catchUpDuration: 1d, window: PT5M }
topology:
  streams: [{ name: s, topic: t }]
  pipelines:
    - name: p
      from: s
      steps:
        - filter: "value.amount > 0"
        - split:
            - name: a
              when: "value.region == 'eu'"
              steps:
                - mapValues: "value"
                - to: { topic: eu }
            - { name: rest, to: { topic: rest } }
    - name: w
      from: s
      steps:
        - groupByKey: {}
        - windowedBy: { tumbling: 1d, grace: PT5M }
        - count: {}
        - toStream: {}
        - to: { topic: counts, keySerde: windowed-string, valueSerde: long }
"#;

    fn compiled(text: &str) -> Result<crate::topology::Topology, SpecErrors> {
        let spec = parse_manifest(text).expect("parses");
        let defaults = Defaults {
            key_serde: "string".into(),
            value_serde: "json".into(),
            registry: None,
            application_id: "app".into(),
        };
        compile(&spec.topology, defaults)
    }

    #[test]
    fn typed_steps_parse_and_compile_with_days_and_iso_durations() {
        let spec = parse_manifest(TYPED).unwrap();
        let steps = &spec.topology.pipelines[1].steps;
        let freshet_crds::StepOp::WindowedBy(w) = &steps[1].op else {
            panic!("windowedBy parsed as {:?}", steps[1].op);
        };
        assert_eq!(w.tumbling.as_ref().unwrap().get().as_secs(), 86_400);
        assert_eq!(w.grace.as_ref().unwrap().get().as_secs(), 300);
        let auto = spec.autoscaling.as_ref().unwrap();
        let catch_up = duration::parse(auto.catch_up_duration.as_deref().unwrap()).unwrap();
        assert_eq!(catch_up.as_secs(), 86_400);
        compiled(TYPED).expect("compiles");
    }

    #[test]
    fn an_unknown_step_or_field_is_refused_where_it_is() {
        let err = parse_manifest(&TYPED.replace("mapValues:", "mapValue:"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("step 1 (mapValue)") && err.contains("did you mean 'mapValues'"),
            "{err}"
        );
        let err = parse_manifest(&TYPED.replace("when:", "wehn:"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("wehn") && err.contains("line"), "{err}");
        let err =
            parse_manifest(&TYPED.replace("filter: \"value.amount > 0\"", "filter: { when: x }"))
                .unwrap_err()
                .to_string();
        assert!(err.contains("step 1 (filter)"), "{err}");
        let Err(err) = compiled(&TYPED.replace("- groupByKey: {}", "- groupBy: { kee: key }"))
        else {
            panic!("a groupBy with an unknown field compiled");
        };
        let err = err.to_string();
        assert!(
            err.contains("pipeline 'w', step 1 (groupBy)") && err.contains("'kee'"),
            "{err}"
        );
        let err = parse_manifest(&TYPED.replace("tumbling: 1d", "tumbling: 10 minutes"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("10 minutes") && err.contains("PT5M"), "{err}");
    }

    #[test]
    fn splits_nested_past_the_typed_depth_are_refused() {
        let inner = |indent: usize, body: &str| {
            let pad = " ".repeat(indent);
            format!("{pad}- split:\n{pad}    - name: b\n{pad}      steps:\n{body}")
        };
        let to = |indent: usize| format!("{}- to: {{ topic: out }}\n", " ".repeat(indent));
        // Three levels of steps: a split in a split is fine.
        let two = inner(8, &inner(14, &to(20)));
        let text = |steps: &str| {
            format!(
                "applicationId: a\nbootstrapServers: b:9092\ntopology:\n  streams: [{{ name: s, topic: t }}]\n  pipelines:\n    - name: p\n      from: s\n      steps:\n{steps}"
            )
        };
        compiled(&text(&two)).expect("two splits deep compile");
        let three = inner(8, &inner(14, &inner(20, &to(26))));
        let Err(err) = compiled(&text(&three)) else {
            panic!("a split three deep compiled");
        };
        let err = err.to_string();
        assert!(
            err.contains("pipeline 'p', step 1 (split), branch 'b', step 1 (split), branch 'b', step 1 (split)")
                && err.contains("3 levels deep at most"),
            "{err}"
        );
    }
}
