//! The plan of an application: what a manifest compiles to before anything runs. The operator
//! reads its internal topics, stores and task counts; the engine runs its topology.

use std::collections::BTreeMap;

use freshet_crds::StreamsAppSpec;

use crate::compile::{Defaults, SpecErrors, compile};
use crate::config::{ConfigError, StreamsConfig};
use crate::topology::{StoreKind, Topology};

/// A StreamsApp's topology compiled, with the configuration it runs with.
pub struct Plan {
    /// The compiled topology: processors, sub-topologies, stores, topics.
    pub topology: Topology,
    /// The configuration resolved from the spec fields, `config` and the environment.
    pub config: StreamsConfig,
    /// Repartition, changelog and subscription topics, with the application id prefix, sorted.
    pub internal_topics: Vec<String>,
    /// State stores by name, sorted.
    pub stores: Vec<String>,
}

/// Why a spec has no plan: its configuration or its topology is wrong.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The configuration is refused (the property, the value, the layer and the fix).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `spec.kafka` is incomplete, or names a Secret that cannot be read.
    #[error(transparent)]
    Kafka(#[from] crate::KafkaSpecError),
    /// `spec.schemaRegistry` names a Secret that cannot be read, or conflicts with `config`
    /// (boxed: the error stays small enough to return by value).
    #[error(transparent)]
    Registry(#[from] Box<crate::registry::spec::RegistrySpecError>),
    /// Every problem of the topology, joined on one line (status messages are one line).
    #[error("{}", .0.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Topology(#[from] SpecErrors),
}

/// Compiles the spec as `freshet-engine validate` does, with the spec's own configuration only
/// (no command line, no environment) and placeholders for the Secrets `spec.kafka` names: what
/// the operator sees of an application's topology and configuration.
pub fn plan(spec: &StreamsAppSpec) -> Result<Plan, PlanError> {
    plan_with_secrets(spec, &crate::secrets::Placeholders)
}

/// [`plan`], with the values of the Secrets `spec.kafka` names read from `secrets`, so that the
/// plan's client properties reach the cluster.
pub fn plan_with_secrets(
    spec: &StreamsAppSpec,
    secrets: &dyn crate::SecretSource,
) -> Result<Plan, PlanError> {
    let config = match crate::resolve_config(spec, Vec::new(), Vec::new(), secrets) {
        Ok(config) => config,
        Err(crate::ResolveError::Config(e)) => return Err(e.into()),
        Err(crate::ResolveError::Kafka(e)) => return Err(e.into()),
        Err(crate::ResolveError::Registry(e)) => return Err(e.into()),
    };
    let defaults = Defaults::from_config(&config);
    let topology = compile(&spec.topology, defaults)?;
    Ok(Plan::new(topology, config))
}

impl Plan {
    /// The plan of an already compiled topology.
    pub fn new(topology: Topology, config: StreamsConfig) -> Plan {
        let mut internal_topics = topology.internal_topics(&config.application_id);
        internal_topics.sort();
        internal_topics.dedup();
        let mut stores: Vec<String> = topology.stores().iter().map(|s| s.name.clone()).collect();
        stores.sort();
        Plan {
            topology,
            config,
            internal_topics,
            stores,
        }
    }

    /// What a rollout must not change silently, one `<item>: <what>` line per item, sorted:
    /// see [`Plan::state_items`].
    pub fn state_layout(&self) -> String {
        self.state_items()
            .iter()
            .map(|(item, what)| format!("{item}: {what}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Everything a restart with the old state would misread, by item: the processing guarantee
    /// (`processing.guarantee`), each internal topic (`topic <name>`: repartition topics with
    /// their partition count, changelogs with their store) and each store (`store <name>`: its
    /// kind, key and value serdes, window size and grace). Retention, in-memory or RocksDB and
    /// anything stateless are left out: the state carries over a change of those.
    pub fn state_items(&self) -> BTreeMap<String, String> {
        let app = &self.config.application_id;
        let mut items = BTreeMap::new();
        items.insert(
            "processing.guarantee".to_owned(),
            self.config.processing_guarantee.to_string(),
        );
        for r in self.topology.repartition_topics() {
            let partitions = r
                .partitions
                .map_or("partitions as its sources".to_owned(), |n| {
                    format!("partitions {n}")
                });
            items.insert(
                format!("topic {}", r.name.resolve(app)),
                format!("repartition, {partitions}"),
            );
        }
        for store in self.topology.stores() {
            let kind = match store.kind {
                StoreKind::KeyValue => "key-value",
                StoreKind::Window { .. } => "window",
                StoreKind::Session { .. } => "session",
            };
            let format = if store.format.is_empty() {
                String::new()
            } else {
                format!(" {}", store.format)
            };
            items.insert(format!("store {}", store.name), format!("{kind}{format}"));
            if store.logged {
                items.insert(
                    format!("topic {}", store.changelog().resolve(app)),
                    format!("changelog of store {}", store.name),
                );
            }
        }
        items
    }

    /// The layout as operators before the fuller signature recorded it (internal topics and
    /// store names only): a StatefulSet they made is compared with this, so upgrading the
    /// operator holds nothing back.
    pub fn legacy_state_layout(&self) -> String {
        format!(
            "topics:{}\nstores:{}",
            self.internal_topics.join(","),
            self.stores.join(",")
        )
    }

    /// Tasks of each sub-topology: one per partition of its widest input, given the partition
    /// counts of the topics by name.
    pub fn tasks_per_subtopology(&self, counts: &BTreeMap<String, i32>) -> Vec<u32> {
        let app = &self.config.application_id;
        self.topology
            .subtopologies()
            .iter()
            .map(|sub| {
                sub.source_topics
                    .iter()
                    .filter_map(|t| counts.get(&t.resolve(app)))
                    .copied()
                    .max()
                    .unwrap_or(0)
                    .max(0) as u32
            })
            .collect()
    }
}
