//! Tests of the configuration, one file per topic; the helpers every file uses are here.

pub(super) use super::*;

/// The spec every test starts from, so that only what a test is about needs writing.
pub(super) fn spec() -> Layer {
    SpecFields {
        application_id: Some("orders-app".into()),
        bootstrap_servers: Some("kafka:9092".into()),
        ..SpecFields::default()
    }
    .into_layer()
}

pub(super) fn layer(source: LayerSource, entries: &[(&str, &str)]) -> Layer {
    Layer::new(source, entries.iter().copied())
}

pub(super) fn config(entries: &[(&str, &str)]) -> Layer {
    layer(LayerSource::Config, entries)
}

pub(super) fn resolve_ok(layers: &[Layer]) -> StreamsConfig {
    match StreamsConfig::resolve(layers) {
        Ok(config) => config,
        Err(err) => panic!("expected a configuration, got: {err}"),
    }
}

pub(super) fn resolve_err(layers: &[Layer]) -> ConfigError {
    match StreamsConfig::resolve(layers) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(err) => err,
    }
}

pub(super) fn with_config(entries: &[(&str, &str)]) -> StreamsConfig {
    resolve_ok(&[spec(), config(entries)])
}

pub(super) fn err_with_config(entries: &[(&str, &str)]) -> ConfigError {
    resolve_err(&[spec(), config(entries)])
}

/// Secrets come from the environment (a Secret in `spec.pod.env`) or `spec.kafka`, never from
/// `config`, which refuses them.
pub(super) fn with_env(entries: &[(&str, &str)]) -> StreamsConfig {
    resolve_ok(&[spec(), layer(LayerSource::Env, entries)])
}

pub(super) fn err_with_env(entries: &[(&str, &str)]) -> ConfigError {
    resolve_err(&[spec(), layer(LayerSource::Env, entries)])
}

pub(super) fn get<'a>(props: &'a [(String, String)], name: &str) -> Option<&'a str> {
    props
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

mod clients;
mod definitions;
mod environment;
mod resolution;
