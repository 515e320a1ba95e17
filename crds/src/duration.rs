//! Durations in the resource: text such as `10m`, `1d` or `PT5M`, checked by the apiserver with
//! the engine's own pattern and by the engine with the engine's own parser, so both accept the
//! same texts.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};

pub use freshet_topology::duration::{EXPECTED, PATTERN};

/// A duration as written (`500ms`, `30s`, `5m`, `1h`, `1d`, ISO-8601 `PT5M`, `P1D`); parsing it
/// again is cheap, and keeping the text shows users what they wrote.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(transparent)]
pub struct Duration(String);

impl Duration {
    /// The duration's text, checked to parse.
    pub fn new(text: impl Into<String>) -> Result<Self, freshet_topology::duration::DurationError> {
        let text = text.into();
        freshet_topology::duration::parse(&text)?;
        Ok(Duration(text))
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The length of time; the text was checked when this value was made.
    pub fn get(&self) -> std::time::Duration {
        freshet_topology::duration::parse(&self.0).unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Duration::new(text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        duration_schema()
    }
}

/// The schema of a duration field: a string the engine's parser accepts.
pub fn duration_schema() -> Schema {
    json_schema!({ "type": "string", "pattern": PATTERN })
}

/// For `Option<String>` fields read with the engine's parser (autoscaling's intervals).
pub(crate) fn optional_duration_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "nullable": true, "pattern": PATTERN })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_iso_8601_are_durations_and_prose_is_not() {
        for ok in ["500ms", "30s", "5m", "1h", "1d", "PT5M", "P1D", "0"] {
            assert!(Duration::new(ok).is_ok(), "{ok}");
        }
        for bad in ["10 minutes", "5", "", "P1Y"] {
            let err = Duration::new(bad).unwrap_err().to_string();
            assert!(err.contains("1d") && err.contains("PT5M"), "{err}");
        }
        assert_eq!(
            Duration::new("1d").unwrap().get(),
            std::time::Duration::from_secs(86_400)
        );
    }

    #[test]
    fn the_schema_pattern_is_the_parsers_own() {
        let schema = serde_json::to_value(duration_schema()).unwrap();
        assert_eq!(schema["pattern"], PATTERN);
    }
}
