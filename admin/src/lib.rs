//! Topic metadata and internal topic creation, done before the stream threads start, and by the
//! operator before it starts the pods. Only librdkafka's admin client and metadata calls: no
//! consumer runtime, no state.
#![warn(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use freshet_topology::config::StreamsConfig;
use freshet_topology::topology::{NodeKind, SinkTarget, TopicName, Topology};

/// How long one Kafka call waits for the cluster by default ([`Clients::timeout`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

pub mod group;
pub mod reset;

/// Why the application cannot start against this cluster.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "cannot reach Kafka at {bootstrap}: {message}. Check bootstrap.servers and that the broker is up"
    )]
    /// The brokers did not answer; `message` is librdkafka's.
    Unreachable {
        /// `bootstrap.servers` as configured.
        bootstrap: String,
        /// librdkafka's error.
        message: String,
    },
    #[error(
        "source topic '{0}' does not exist: create it first (Freshet, like Kafka Streams, never creates input topics)"
    )]
    /// A source topic does not exist; the topic's name.
    MissingTopic(String),
    #[error(
        "topics joined or aggregated together must have equal partition counts, but they have: {0}. Give them the same count, or re-key one side (selectKey) so it goes through a repartition topic sized like the other"
    )]
    /// Inputs read together have different partition counts; each topic with its count.
    NotCoPartitioned(String),
    /// The broker refused an operation for want of an ACL: the application's principal may not
    /// do `operation` on `resource`.
    #[error(
        "not authorized: the application's principal may not {operation} {resource} (no ACL allows it); grant it, as docs/security.md lists the ACLs a Kafka Streams application needs"
    )]
    NotAuthorized {
        /// The operation refused, as `kafka-acls --operation` names it (READ, CREATE...).
        operation: &'static str,
        /// The resource, e.g. `topic 'orders'`.
        resource: String,
    },
    /// The broker refused to create an internal topic.
    #[error("creating internal topic '{topic}' failed: {message}")]
    CreateFailed {
        /// The internal topic.
        topic: String,
        /// The broker's reason.
        message: String,
    },
    /// The broker refused to delete an internal topic or the application's group.
    #[error("deleting {resource} failed: {message}")]
    DeleteFailed {
        /// What was to be deleted, e.g. `topic 'app-counts-changelog'`.
        resource: String,
        /// The broker's reason.
        message: String,
    },
}

impl AdminError {
    /// Whether waiting may cure it: the brokers not answering yet, or a source topic not created
    /// yet. A misconfiguration (co-partitioning, a refused topic) needs a change instead.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AdminError::Unreachable { .. } | AdminError::MissingTopic(_)
        )
    }
}

/// The librdkafka settings of the admin calls' clients: `bootstrap.servers` and the admin
/// client's properties.
pub fn client_config(config: &StreamsConfig) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &config.bootstrap_servers);
    for (k, v) in &config.admin {
        cfg.set(k, v);
    }
    cfg
}

/// The clients the admin calls go through. Each librdkafka client is threads and broker
/// connections of its own, so a caller that asks again and again (the operator, every
/// reconcile) makes these once and reuses them; the free functions below make a set per call.
pub struct Clients {
    /// Metadata requests: partition counts.
    pub metadata: BaseConsumer,
    /// Topic creation.
    pub admin: AdminClient<DefaultClientContext>,
    /// How long one call waits for the cluster before it reports Kafka unreachable
    /// ([`DEFAULT_TIMEOUT`] unless [`Clients::with_timeout`] says otherwise).
    pub timeout: Duration,
}

impl Clients {
    /// A metadata consumer and an admin client for `config`'s cluster. Nothing is connected
    /// yet (librdkafka connects on the first request), so this fails only on bad settings.
    pub fn new(config: &StreamsConfig) -> Result<Self, AdminError> {
        let unreachable = |e: rdkafka::error::KafkaError| AdminError::Unreachable {
            bootstrap: config.bootstrap_servers.clone(),
            message: e.to_string(),
        };
        Ok(Clients {
            metadata: client_config(config).create().map_err(unreachable)?,
            admin: client_config(config).create().map_err(unreachable)?,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// These clients, each call waiting at most `timeout` for the cluster.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Partition counts of `topics` (absent topics are missing from the map).
    pub fn partition_counts(
        &self,
        config: &StreamsConfig,
        topics: &[String],
    ) -> Result<HashMap<String, i32>, AdminError> {
        let metadata = self
            .metadata
            .fetch_metadata(None, self.timeout)
            .map_err(|e| AdminError::Unreachable {
                bootstrap: config.bootstrap_servers.clone(),
                message: e.to_string(),
            })?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && topics.iter().any(|n| n == t.name()))
            .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
            .collect())
    }

    /// [`source_partitions`] through these clients.
    pub fn source_partitions(
        &self,
        topology: &Topology,
        config: &StreamsConfig,
    ) -> Result<BTreeMap<String, i32>, AdminError> {
        let counts = sources_and(self, topology, config, &[])?;
        check_co_partitioning(topology, &config.application_id, &counts)?;
        Ok(counts)
    }

    /// [`prepare_topics`] through these clients.
    pub fn prepare_topics(
        &self,
        topology: &Topology,
        config: &StreamsConfig,
    ) -> Result<BTreeMap<String, i32>, AdminError> {
        prepare_with(self, topology, config)
    }
}

/// Partition counts of `topics` (absent topics are missing from the map).
pub fn partition_counts(
    config: &StreamsConfig,
    topics: &[String],
) -> Result<HashMap<String, i32>, AdminError> {
    Clients::new(config)?.partition_counts(config, topics)
}

/// Partition counts of the topology's input topics (not its repartition topics); a source topic
/// that does not exist is an error, and so are inputs joined or aggregated together whose
/// partition counts differ.
pub fn source_partitions(
    topology: &Topology,
    config: &StreamsConfig,
) -> Result<BTreeMap<String, i32>, AdminError> {
    Clients::new(config)?.source_partitions(topology, config)
}

/// Partition counts of the source topics and of `others` that exist, in one metadata request;
/// a missing source topic is an error.
fn sources_and(
    clients: &Clients,
    topology: &Topology,
    config: &StreamsConfig,
    others: &[String],
) -> Result<BTreeMap<String, i32>, AdminError> {
    let external: Vec<String> = topology
        .source_topics()
        .iter()
        .filter(|t| matches!(t, TopicName::External(_)))
        .map(|t| t.resolve(&config.application_id))
        .chain(topology.global_tables().iter().map(|g| g.topic.clone()))
        .collect();
    let all: Vec<String> = external.iter().chain(others).cloned().collect();
    let counts: BTreeMap<String, i32> = clients
        .partition_counts(config, &all)?
        .into_iter()
        .collect();
    match external.iter().find(|t| !counts.contains_key(*t)) {
        Some(missing) => Err(missing_source(clients, missing)),
        None => Ok(counts),
    }
}

/// Why a source topic is not in the cluster's metadata: the listing of every topic leaves out
/// the topics the principal may not describe, so the topic is asked for by name, and a refusal
/// says which ACL is missing instead of a topic that does exist being waited for.
fn missing_source(clients: &Clients, topic: &str) -> AdminError {
    let refused = clients
        .metadata
        .fetch_metadata(Some(topic), clients.timeout)
        .ok()
        .and_then(|m| m.topics().first().and_then(|t| t.error()))
        .is_some_and(|e| RDKafkaErrorCode::from(e) == RDKafkaErrorCode::TopicAuthorizationFailed);
    if refused {
        AdminError::NotAuthorized {
            operation: "READ",
            resource: format!("topic '{topic}'"),
        }
    } else {
        AdminError::MissingTopic(topic.to_owned())
    }
}

/// Checks the source topics exist and creates the repartition topics, each with its fixed
/// partition count or that of the sources upstream of it. Returns every input topic's count.
pub fn prepare_topics(
    topology: &Topology,
    config: &StreamsConfig,
) -> Result<BTreeMap<String, i32>, AdminError> {
    Clients::new(config)?.prepare_topics(topology, config)
}

fn prepare_with(
    clients: &Clients,
    topology: &Topology,
    config: &StreamsConfig,
) -> Result<BTreeMap<String, i32>, AdminError> {
    let app = &config.application_id;
    let internal = topology.internal_topics(app);
    let mut counts = sources_and(clients, topology, config, &internal)?;
    // Sub-topologies in order: a repartition topic's writer comes before its reader, so the
    // upstream counts are known when it is created.
    for r in topology.repartition_topics() {
        let name = r.name.resolve(app);
        if counts.contains_key(&name) {
            continue;
        }
        // A repartition topic read beside other inputs (a join's re-keyed side) takes their
        // partition count, so the two are co-partitioned; otherwise its writer's.
        let partitions = match r.partitions {
            Some(p) => p,
            None => co_readers_partitions(topology, &r.name, app, &counts)
                .or_else(|| upstream_partitions(topology, &r.name, app, &counts))
                .unwrap_or(1),
        };
        create_topic(clients, config, &name, partitions, &repartition_settings())?;
        counts.insert(name, partitions);
    }
    check_co_partitioning(topology, app, &counts)?;
    // A changelog has a partition per task of the sub-topology that owns the store.
    for store in topology.stores().iter().filter(|s| s.logged) {
        let name = store.changelog().resolve(app);
        if counts.contains_key(&name) {
            continue;
        }
        let Some(sub) = topology.subtopology_of_store(&store.name) else {
            continue;
        };
        let partitions = sub
            .source_topics
            .iter()
            .filter_map(|t| counts.get(&t.resolve(app)).copied())
            .max()
            .unwrap_or(1);
        let additional = config
            .window_store_changelog_additional_retention
            .as_millis() as i64;
        let settings = match store.changelog_retention_ms(additional) {
            None => vec![("cleanup.policy", "compact".to_owned())],
            Some(retention) => vec![
                ("cleanup.policy", "compact,delete".to_owned()),
                ("retention.ms", retention.to_string()),
            ],
        };
        create_topic(clients, config, &name, partitions, &settings)?;
        counts.insert(name, partitions);
    }
    await_metadata(clients, config, &internal, &counts)?;
    Ok(counts)
}

/// Waits until the broker's metadata lists every internal topic with its partitions: a topic
/// the controller has just created can be unknown to the broker for a moment, and a restore
/// consumer reading its end offsets then would fail with "Unknown partition".
fn await_metadata(
    clients: &Clients,
    config: &StreamsConfig,
    internal: &[String],
    counts: &BTreeMap<String, i32>,
) -> Result<(), AdminError> {
    let deadline = std::time::Instant::now() + clients.timeout;
    loop {
        let seen = clients.partition_counts(config, internal)?;
        let missing: Vec<&String> = internal
            .iter()
            .filter(|t| counts.get(*t).is_some_and(|n| seen.get(*t) != Some(n)))
            .collect();
        let Some(first) = missing.first() else {
            return Ok(());
        };
        if std::time::Instant::now() >= deadline {
            return Err(AdminError::CreateFailed {
                topic: (*first).clone(),
                message: format!(
                    "the broker's metadata did not list it with {} partitions within {:?}",
                    counts[*first], clients.timeout
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Repartition topics are deleted through the purge of committed records (Kafka Streams'
/// settings): unlimited retention, delete policy.
fn repartition_settings() -> Vec<(&'static str, String)> {
    vec![
        ("cleanup.policy", "delete".to_owned()),
        ("retention.ms", "-1".to_owned()),
    ]
}

/// The partition count of the other topics read by the sub-topology that reads `topic`, when
/// they are known and agree.
fn co_readers_partitions(
    topology: &Topology,
    topic: &TopicName,
    app: &str,
    counts: &BTreeMap<String, i32>,
) -> Option<i32> {
    let reader = topology
        .subtopologies()
        .iter()
        .find(|s| s.source_topics.contains(topic))?;
    if topology.stores_of(reader).is_empty() {
        return None;
    }
    let others: Vec<i32> = reader
        .source_topics
        .iter()
        .filter(|t| *t != topic)
        .filter_map(|t| counts.get(&t.resolve(app)).copied())
        .collect();
    others.iter().max().copied()
}

/// A sub-topology with state reads partition N of each of its topics in one task: they must have
/// equal partition counts (Kafka Streams throws a TopologyException otherwise).
fn check_co_partitioning(
    topology: &Topology,
    app: &str,
    counts: &BTreeMap<String, i32>,
) -> Result<(), AdminError> {
    for sub in topology.subtopologies() {
        if topology.stores_of(sub).is_empty() || sub.source_topics.len() < 2 {
            continue;
        }
        let sized: Vec<(String, i32)> = sub
            .source_topics
            .iter()
            .filter_map(|t| {
                let name = t.resolve(app);
                counts.get(&name).map(|c| (name, *c))
            })
            .collect();
        if sized.windows(2).any(|w| w[0].1 != w[1].1) {
            return Err(AdminError::NotCoPartitioned(
                sized
                    .iter()
                    .map(|(t, c)| format!("{t} ({c})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
    }
    Ok(())
}

/// The largest partition count among the sources of the sub-topology that writes `topic`.
fn upstream_partitions(
    topology: &Topology,
    topic: &TopicName,
    app: &str,
    counts: &BTreeMap<String, i32>,
) -> Option<i32> {
    let writer = topology.subtopologies().iter().find(|s| {
        s.nodes.iter().any(|&n| {
            matches!(&topology.nodes()[n].kind,
                NodeKind::Sink { target: SinkTarget::Topic(t), .. } if t == topic)
        })
    })?;
    writer
        .source_topics
        .iter()
        .filter_map(|t| counts.get(&t.resolve(app)).copied())
        .max()
}

fn create_topic(
    clients: &Clients,
    config: &StreamsConfig,
    name: &str,
    partitions: i32,
    settings: &[(&str, String)],
) -> Result<(), AdminError> {
    let failed = |message: String| AdminError::CreateFailed {
        topic: name.to_owned(),
        message,
    };
    let replication = if config.replication_factor > 0 {
        TopicReplication::Fixed(config.replication_factor)
    } else {
        TopicReplication::Fixed(-1)
    };
    let mut topic = NewTopic::new(name, partitions, replication);
    for (k, v) in settings {
        topic = topic.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(clients.timeout));
    let results = futures::executor::block_on(clients.admin.create_topics([&topic], &options))
        .map_err(|e| failed(e.to_string()))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic = name, partitions, "created internal topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((
                _,
                RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed,
            )) => {
                return Err(AdminError::NotAuthorized {
                    operation: "CREATE",
                    resource: format!("topic '{name}'"),
                });
            }
            Err((_, code)) => return Err(failed(code.to_string())),
        }
    }
    Ok(())
}
