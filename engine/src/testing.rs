//! `freshet-engine test`: a manifest run on the `TopologyTestDriver`, without a broker, with
//! input records from a JSON Lines file and, optionally, the output it must produce.
//!
//! Each line is `{"topic": .., "key": .., "value": .., "timestamp": ..}`: a string key or value
//! is written as its UTF-8 bytes, any other JSON value as its compact text, `null` as a null;
//! the timestamp defaults to 1000 plus the line's index. Outputs are compared as text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use freshet_streams::TopologyTestDriver;
use freshet_streams::config::StreamsConfig;
use freshet_streams::processor::Headers;
use freshet_streams::topology::Topology;
use serde_json::Value;

/// Why a test run could not be done or did not pass.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}, line {line}: {source}")]
    Driver {
        path: PathBuf,
        line: usize,
        source: Box<freshet_streams::test_driver::DriverError>,
    },
    #[error("topic {topic}: expected\n{expected}\ngot\n{got}")]
    Mismatch {
        topic: String,
        expected: String,
        got: String,
    },
}

/// A record as compared: key and value as text.
type KeyValue = (Option<String>, Option<String>);

/// A record of a JSON Lines file.
struct Line {
    topic: String,
    key: Option<String>,
    value: Option<String>,
    timestamp: Option<i64>,
}

fn read_lines(path: &Path) -> Result<Vec<Line>, TestError> {
    let text = std::fs::read_to_string(path).map_err(|source| TestError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut lines = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let bad = |message: String| TestError::Line {
            path: path.to_owned(),
            line: i + 1,
            message,
        };
        let v: Value = serde_json::from_str(l).map_err(|e| bad(e.to_string()))?;
        let text = |field: &str| match &v[field] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        let topic = v["topic"]
            .as_str()
            .ok_or_else(|| bad("'topic' must be a string".into()))?
            .to_owned();
        lines.push(Line {
            topic,
            key: text("key"),
            value: text("value"),
            timestamp: v["timestamp"].as_i64(),
        });
    }
    Ok(lines)
}

fn as_text(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn show(records: &[KeyValue]) -> String {
    records
        .iter()
        .map(|(k, v)| format!("  {k:?} -> {v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Pipes `input` through the topology. With `expected`, compares every topic it names (in
/// order, all records); without, prints every record written to a non-internal topic as a
/// JSON line.
pub fn run(
    topology: Topology,
    config: StreamsConfig,
    input: &Path,
    expected: Option<&Path>,
) -> Result<(), TestError> {
    // Internal topics (repartition, changelog) are not printed: the app's output is the rest.
    let internal = format!("{}-", config.application_id);
    let mut driver = TopologyTestDriver::with_resolved_config(topology, config, 0);
    let mut written: Vec<String> = Vec::new();
    for (i, l) in read_lines(input)?.into_iter().enumerate() {
        driver
            .pipe_raw(
                &l.topic,
                l.key.map(String::into_bytes),
                l.value.map(String::into_bytes),
                l.timestamp.unwrap_or(1_000 + i as i64),
                Headers::default(),
            )
            .map_err(|source| TestError::Driver {
                path: input.to_owned(),
                line: i + 1,
                source: Box::new(source),
            })?;
        written.extend(
            driver
                .written_topics()
                .into_iter()
                .filter(|t| !t.starts_with(&internal)),
        );
    }
    let Some(expected) = expected else {
        written.sort();
        written.dedup();
        for topic in written {
            for r in driver.read_raw(&topic) {
                let line = serde_json::json!({
                    "topic": topic,
                    "key": as_text(r.key),
                    "value": as_text(r.value),
                    "timestamp": r.timestamp,
                });
                println!("{line}");
            }
        }
        return Ok(());
    };
    let mut want: BTreeMap<String, Vec<KeyValue>> = BTreeMap::new();
    for l in read_lines(expected)? {
        want.entry(l.topic).or_default().push((l.key, l.value));
    }
    for (topic, want) in want {
        let got: Vec<_> = driver
            .read_raw(&topic)
            .into_iter()
            .map(|r| (as_text(r.key), as_text(r.value)))
            .collect();
        if got != want {
            return Err(TestError::Mismatch {
                topic,
                expected: show(&want),
                got: show(&got),
            });
        }
    }
    Ok(())
}
