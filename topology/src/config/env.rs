//! `FRESHET_*` environment variables as a configuration layer.
//!
//! Kubernetes hands configuration to a pod most easily through environment variables (credentials
//! above all, from Secrets), so every property can be set this way (the variables with a name of
//! their own are declared with their property, in `streams.rs`):
//!
//! | variable | property |
//! | --- | --- |
//! | `FRESHET_APPLICATION_ID` | `application.id` |
//! | `FRESHET_BOOTSTRAP_SERVERS` | `bootstrap.servers` |
//! | `FRESHET_NUM_STREAM_THREADS` (or `FRESHET_THREADS`) | `num.stream.threads` |
//! | `FRESHET_STATE_DIR` | `state.dir` |
//! | `FRESHET_PROCESSING_GUARANTEE` | `processing.guarantee` |
//! | `FRESHET_HTTP_PORT` | `freshet.http.port` |
//! | `FRESHET_CONFIG_<NAME>` | `<NAME>` lowercased, `_` → `.`, `__` → `_` |
//!
//! So `FRESHET_CONFIG_COMMIT_INTERVAL_MS=100` sets `commit.interval.ms`,
//! `FRESHET_CONFIG_PRODUCER_LINGER_MS=5` sets `producer.linger.ms`, and the doubled underscore
//! reaches the few names that contain one (`FRESHET_CONFIG_LOG__LEVEL` → `log_level`).
//! Other `FRESHET_*` variables are not configuration (the project's scripts use several, such as
//! `FRESHET_KAFKA_PORT`) and are left alone; [`env_warnings`] names the ones that look like a
//! misspelt configuration variable.

use super::streams::STREAMS;
use super::suggest::nearest;

/// The property a variable with a name of its own sets (declared with the property in
/// `streams.rs`), and whether it is the dedicated name (`true`) or a shorter spelling, which the
/// dedicated name beats when both are set.
fn own_variable(name: &str) -> Option<(&'static str, bool)> {
    STREAMS.iter().find_map(|def| {
        let position = def.env.iter().position(|var| *var == name)?;
        Some((def.name, position == 0))
    })
}

/// Every variable with a name of its own.
fn own_variables() -> impl Iterator<Item = &'static str> {
    STREAMS.iter().flat_map(|def| def.env.iter().copied())
}

/// The prefix of the variables that carry any property by name.
pub const CONFIG_PREFIX: &str = "FRESHET_CONFIG_";

fn generic_property(rest: &str) -> String {
    // `__` stands for `_`; a placeholder that cannot occur in a variable name keeps the two
    // replacements apart.
    rest.to_ascii_lowercase()
        .replace("__", "\u{0}")
        .replace('_', ".")
        .replace('\u{0}', "_")
}

/// The configuration carried by the environment, as (property, value) in Kafka Streams naming.
///
/// Pure, so that tests need not touch the process environment: pass `std::env::vars()`.
/// When several variables set one property the most specific wins: entries come out as
/// `FRESHET_CONFIG_*` first, then aliases, then the dedicated names, each group sorted by variable
/// name, and a later entry of a layer overrides an earlier one.
pub fn layers_from_env(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut generic = Vec::new();
    let mut aliased = Vec::new();
    let mut dedicated = Vec::new();
    for (name, value) in vars {
        if let Some((property, is_dedicated)) = own_variable(&name) {
            let group = if is_dedicated {
                &mut dedicated
            } else {
                &mut aliased
            };
            group.push((name, property.to_owned(), value));
        } else if let Some(rest) = name.strip_prefix(CONFIG_PREFIX) {
            let property = generic_property(rest);
            generic.push((name, property, value));
        }
    }
    let mut out = Vec::with_capacity(generic.len() + aliased.len() + dedicated.len());
    for mut group in [generic, aliased, dedicated] {
        group.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(
            group
                .into_iter()
                .map(|(_, property, value)| (property, value)),
        );
    }
    out
}

/// The variable a property is read from, for messages: the dedicated name (and its aliases) if it
/// has one, else `FRESHET_CONFIG_<NAME>`. A layer keeps properties, not variable names, so a value
/// set through the generic form of a property with a dedicated name is shown under the dedicated
/// name, the one the documentation leads with.
pub(crate) fn variable_for(property: &str) -> String {
    if let Some(def) = STREAMS
        .iter()
        .find(|def| def.name == property && !def.env.is_empty())
    {
        return def.env.join(" or ");
    }
    let mut var = String::from(CONFIG_PREFIX);
    for c in property.chars() {
        match c {
            '.' => var.push('_'),
            '_' => var.push_str("__"),
            c => var.push(c.to_ascii_uppercase()),
        }
    }
    var
}

/// One warning per `FRESHET_*` variable that is not configuration but is a near miss of a
/// configuration variable's name (`FRESHET_APLICATION_ID`): such a variable would otherwise be
/// silently unused. Variables far from every name are other tools' and are not mentioned.
pub fn env_warnings(vars: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    let known: Vec<&str> = own_variables().collect();
    let mut warnings: Vec<String> = vars
        .into_iter()
        .filter(|(name, _)| {
            name.starts_with("FRESHET_")
                && !name.starts_with(CONFIG_PREFIX)
                && !known.contains(&name.as_str())
        })
        .filter_map(|(name, _)| {
            nearest(&name, known.iter().copied()).map(|near| {
                format!(
                    "environment variable {name} is not read by Freshet; did you mean {near}? (any property can be set as {CONFIG_PREFIX}<NAME>)"
                )
            })
        })
        .collect();
    warnings.sort();
    warnings
}
