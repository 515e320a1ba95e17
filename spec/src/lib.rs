//! Declarative topologies: reading a StreamsApp manifest (or just its spec) from YAML, checking
//! it (fields, CEL expressions and their types, configuration), and compiling it into the plan of
//! the application: its topology, internal topics, stores and resolved configuration.
//!
//! This crate has no runtime: the operator plans and validates applications with it, and the
//! engine runs the plan's topology on `freshet-streams`.

use std::path::{Path, PathBuf};

// The build side of Kafka Streams that the compiler targets, named as inside the library; the
// configuration and the graph are part of a plan, so users of the plan see them here too.
pub use freshet_topology::{config, topology};
use freshet_topology::{dsl, processor, serdes, state};

mod compile;
pub mod duration;
pub mod expr;
pub mod plan;
mod values;

pub use plan::{Plan, PlanError, plan};

pub use compile::{Defaults, SpecError, SpecErrors, compile};
pub use values::DynSerde;

use freshet_crds::{StreamsApp, StreamsAppSpec};

use crate::config::{ConfigError, Layer, LayerSource, SpecFields, StreamsConfig};
use thiserror::Error;

/// A manifest that cannot be used, with the file and the place in it.
#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Reads a whole `StreamsApp` manifest (`kind: StreamsApp`) or just its `spec`.
pub fn load_manifest(path: &Path) -> Result<StreamsAppSpec, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_manifest(&text).map_err(|message| ManifestError::Invalid {
        path: path.to_owned(),
        message,
    })
}

/// Says where an error is when the YAML library did not: an unknown field is looked up by name.
fn locate(err: serde_yaml_ng::Error, text: &str) -> String {
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
pub fn parse_manifest(text: &str) -> Result<StreamsAppSpec, String> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| locate(e, text))?;
    let is_whole_resource = doc.get("kind").is_some() || doc.get("apiVersion").is_some();
    if is_whole_resource {
        let kind = doc.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if kind != "StreamsApp" {
            return Err(format!(
                "kind is '{kind}', expected 'StreamsApp' (or give just the spec, without apiVersion and kind)"
            ));
        }
        let app: StreamsApp = serde_yaml_ng::from_str(text).map_err(|e| locate(e, text))?;
        Ok(app.spec)
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| locate(e, text))
    }
}

/// The application's configuration from its spec, as every layer stacks: `flags` (command
/// line) over `env` (`FRESHET_*` variables, see `config::layers_from_env`) over the spec's own
/// fields over its `config` map. The engine and the operator resolve a spec the same way.
pub fn resolve_config(
    spec: &StreamsAppSpec,
    flags: Vec<(String, String)>,
    env: Vec<(String, String)>,
) -> Result<StreamsConfig, ConfigError> {
    let guarantee = spec.processing_guarantee.map(|g| {
        match g {
            freshet_crds::ProcessingGuarantee::AtLeastOnce => "at_least_once",
            freshet_crds::ProcessingGuarantee::ExactlyOnceV2 => "exactly_once_v2",
        }
        .to_owned()
    });
    let fields = SpecFields {
        application_id: Some(spec.application_id.clone()),
        bootstrap_servers: Some(spec.bootstrap_servers.clone()),
        num_stream_threads: spec.num_stream_threads,
        state_dir: spec.state_dir.clone(),
        processing_guarantee: guarantee,
        default_key_serde: spec.default_key_serde.clone(),
        default_value_serde: spec.default_value_serde.clone(),
    };
    let layers = [
        Layer::new(LayerSource::Flag, flags),
        Layer::new(LayerSource::Env, env),
        fields.into_layer(),
        Layer::new(LayerSource::Config, spec.config.clone()),
    ];
    StreamsConfig::resolve(&layers)
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
        let err = parse_manifest(&SPEC.replace("applicationId", "applicationID")).unwrap_err();
        assert!(
            err.contains("applicationID") && err.contains("line 1"),
            "{err}"
        );
        let err = parse_manifest("kind: Deployment\n").unwrap_err();
        assert!(err.contains("expected 'StreamsApp'"), "{err}");
    }
}
