//! The sources of declarative topologies: `streams` (one topic or several), `tables` and
//! `globalTables`, each with its serdes (and registry schemas), as positions the pipelines
//! start from.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::position::{self, Position};
use super::registry::Bind;
use super::{Compiler, RawTopology};
use crate::dsl::Consumed;

impl Compiler {
    pub(super) fn sources(&mut self, spec: &RawTopology) -> HashMap<String, Position> {
        let mut streams = HashMap::new();
        for (i, s) in spec.streams.iter().enumerate() {
            let place = format!("streams[{i}]");
            let Some(name) = s.get("name").and_then(Json::as_str) else {
                self.error(&place, "a stream needs a 'name'");
                continue;
            };
            let place = format!("stream '{name}'");
            self.check_fields(
                s,
                &[
                    "name",
                    "topic",
                    "topics",
                    "keySerde",
                    "valueSerde",
                    "keySchema",
                    "valueSchema",
                ],
                &place,
            );
            let topics: Vec<String> = match (s.get("topic"), s.get("topics")) {
                (Some(Json::String(t)), None) => vec![t.clone()],
                (None, Some(Json::Array(ts)))
                    if !ts.is_empty() && ts.iter().all(Json::is_string) =>
                {
                    ts.iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                }
                _ => {
                    self.error(&place, "give 'topic: <name>' or 'topics: [<name>, ...]'");
                    continue;
                }
            };
            let key = self.serde(
                s.get("keySerde").and_then(Json::as_str),
                &self.defaults.key_serde.clone(),
                &place,
                Bind::of(s, None, true),
            );
            let value = self.serde(
                s.get("valueSerde").and_then(Json::as_str),
                &self.defaults.value_serde.clone(),
                &place,
                Bind::of(s, None, false),
            );
            if streams.contains_key(name) {
                self.error(&place, "a stream of this name is declared twice");
            }
            let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            streams.insert(
                name.to_owned(),
                Position::Stream(self.builder.stream_with(&refs, Consumed::with(key, value))),
            );
        }
        for (i, t) in spec.tables.iter().enumerate() {
            let Some(name) = t.get("name").and_then(Json::as_str) else {
                self.error(format!("tables[{i}]"), "a table needs a 'name'");
                continue;
            };
            let place = format!("table '{name}'");
            self.check_fields(
                t,
                &[
                    "name",
                    "topic",
                    "keySerde",
                    "valueSerde",
                    "store",
                    "inMemory",
                    "logging",
                ],
                &place,
            );
            let Some(topic) = t.get("topic").and_then(Json::as_str) else {
                self.error(&place, "give 'topic: <name>'");
                continue;
            };
            let defaults = self.defaults.clone();
            let key_kind = self.kind_named(
                t.get("keySerde")
                    .and_then(Json::as_str)
                    .unwrap_or(&defaults.key_serde),
                &place,
            );
            let value_kind = self.kind_named(
                t.get("valueSerde")
                    .and_then(Json::as_str)
                    .unwrap_or(&defaults.value_serde),
                &place,
            );
            self.topic_only(&key_kind, &place);
            self.topic_only(&value_kind, &place);
            if value_kind.is_registry() {
                // Refused above; the store's own checks would only repeat it.
                continue;
            }
            let mut store = self.store_spec(t, &value_kind, &place);
            // Like Kafka Streams, a table's store is named after its topic unless named.
            store
                .name
                .get_or_insert_with(|| format!("{topic}-STATE-STORE"));
            if streams.contains_key(name) {
                self.error(&place, "a stream or table of this name is declared twice");
            }
            let table = self.builder.table_erased(
                topic,
                position::erased(&key_kind, "key"),
                position::erased(&value_kind, "value"),
                store,
                None,
            );
            streams.insert(name.to_owned(), Position::Table(table));
        }
        for (i, g) in spec.global_tables.iter().enumerate() {
            let Some(name) = g.get("name").and_then(Json::as_str) else {
                self.error(
                    format!("globalTables[{i}]"),
                    "a global table needs a 'name'",
                );
                continue;
            };
            let place = format!("global table '{name}'");
            self.check_fields(
                g,
                &["name", "topic", "keySerde", "valueSerde", "store"],
                &place,
            );
            let Some(topic) = g.get("topic").and_then(Json::as_str) else {
                self.error(&place, "give 'topic: <name>'");
                continue;
            };
            let defaults = self.defaults.clone();
            let key_kind = self.kind_named(
                g.get("keySerde")
                    .and_then(Json::as_str)
                    .unwrap_or(&defaults.key_serde),
                &place,
            );
            let value_kind = self.kind_named(
                g.get("valueSerde")
                    .and_then(Json::as_str)
                    .unwrap_or(&defaults.value_serde),
                &place,
            );
            self.topic_only(&key_kind, &place);
            self.topic_only(&value_kind, &place);
            if streams.contains_key(name) {
                self.error(&place, "a stream or table of this name is declared twice");
            }
            let table = self.builder.global_table_erased(
                topic,
                g.get("store").and_then(Json::as_str).map(str::to_owned),
                position::erased(&key_kind, "key"),
                position::erased(&value_kind, "value"),
            );
            streams.insert(name.to_owned(), Position::GlobalTable(table));
        }
        streams
    }
}
