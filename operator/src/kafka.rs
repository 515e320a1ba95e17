//! What the operator asks of Kafka for one StreamsApp, through the engine's own compiler
//! (`freshet-spec`) and admin code (`freshet-admin`), so the operator and the pods never disagree
//! on topic names or partition counts. Neither links the streams runtime or RocksDB.
//!
//! Every call here blocks (librdkafka); the controller runs them on the blocking pool.

use std::collections::BTreeMap;
use std::time::Duration;

use freshet_admin::{self as admin, AdminError};
use freshet_crds::StreamsAppSpec;
use freshet_spec::config::StreamsConfig;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(10);

pub use freshet_spec::Plan;

/// Compiles the spec as `freshet-engine validate` does; the error is the compiler's message.
pub fn plan(spec: &StreamsAppSpec) -> Result<Plan, String> {
    freshet_spec::plan(spec).map_err(|e| e.to_string())
}

/// What a rollout must not change silently: the plan's internal topics and stores, digested.
pub trait StateSignature {
    fn state_signature(&self) -> String;
}

impl StateSignature for Plan {
    fn state_signature(&self) -> String {
        crate::digest(&self.state_layout())
    }
}

/// The internal topics prepared, and which of them this call created.
pub struct Topics {
    pub partitions: BTreeMap<String, i32>,
    pub created: Vec<(String, i32)>,
}

/// Checks the sources and co-partitioning against the real partition counts and creates the
/// missing internal topics, with the replication factor of `config`, or min(3, brokers).
pub fn prepare(plan: &mut Plan) -> Result<Topics, AdminError> {
    if plan.config.replication_factor <= 0 {
        plan.config.replication_factor = brokers(&plan.config)?.clamp(1, 3);
    }
    admin::source_partitions(&plan.topology, &plan.config)?;
    let existing = admin::partition_counts(&plan.config, &plan.internal_topics)?;
    let partitions = admin::prepare_topics(&plan.topology, &plan.config)?;
    let created = plan
        .internal_topics
        .iter()
        .filter(|t| !existing.contains_key(*t))
        .filter_map(|t| partitions.get(t).map(|n| (t.clone(), *n)))
        .collect();
    Ok(Topics {
        partitions,
        created,
    })
}

fn client(config: &StreamsConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers);
    for (k, v) in &config.admin {
        c.set(k, v);
    }
    c
}

fn unreachable(config: &StreamsConfig, e: impl ToString) -> AdminError {
    AdminError::Unreachable {
        bootstrap: config.bootstrap_servers.clone(),
        message: e.to_string(),
    }
}

fn brokers(config: &StreamsConfig) -> Result<i32, AdminError> {
    let consumer: BaseConsumer = client(config)
        .create()
        .map_err(|e| unreachable(config, e))?;
    let metadata = consumer
        .fetch_metadata(None, TIMEOUT)
        .map_err(|e| unreachable(config, e))?;
    Ok(metadata.brokers().len() as i32)
}

/// The application reset: deletes the internal topics and the consumer group. Topics or a
/// group that are already gone are not an error.
pub fn delete_app_data(plan: &Plan) -> Result<(), AdminError> {
    let config = &plan.config;
    let admin: AdminClient<DefaultClientContext> = client(config)
        .create()
        .map_err(|e| unreachable(config, e))?;
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let topics: Vec<&str> = plan.internal_topics.iter().map(String::as_str).collect();
    let failed = |topic: &str, message: String| AdminError::CreateFailed {
        topic: topic.to_owned(),
        message: format!("deleting it: {message}"),
    };
    if !topics.is_empty() {
        let results = futures::executor::block_on(admin.delete_topics(&topics, &options))
            .map_err(|e| unreachable(config, e))?;
        for r in results {
            match r {
                Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((t, code)) => return Err(failed(&t, code.to_string())),
            }
        }
    }
    let results = futures::executor::block_on(
        admin.delete_groups(&[config.application_id.as_str()], &options),
    )
    .map_err(|e| unreachable(config, e))?;
    for r in results {
        match r {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::GroupIdNotFound)) => {}
            Err((g, code)) => return Err(failed(&format!("group {g}"), code.to_string())),
        }
    }
    Ok(())
}

/// Log-end and committed offsets of the application's group summed over every input partition
/// of its sub-topologies (source and repartition topics; changelogs are not inputs). A
/// partition without a committed offset counts from where the app would start: the log start
/// under `auto.offset.reset=earliest`, else the end.
pub fn offsets(plan: &Plan, partitions: &BTreeMap<String, i32>) -> Result<(i64, i64), AdminError> {
    let config = &plan.config;
    let consumer: BaseConsumer = client(config)
        .set("group.id", &config.application_id)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| unreachable(config, e))?;
    let app = &config.application_id;
    let mut tpl = TopicPartitionList::new();
    for t in plan.topology.source_topics() {
        let name = t.resolve(app);
        for p in 0..partitions.get(&name).copied().unwrap_or(0) {
            tpl.add_partition(&name, p);
        }
    }
    let from_start = config
        .consumer
        .iter()
        .find(|(k, _)| k == "auto.offset.reset")
        .is_none_or(|(_, v)| v == "earliest" || v == "smallest");
    let committed = consumer
        .committed_offsets(tpl, TIMEOUT)
        .map_err(|e| unreachable(config, e))?;
    let (mut end, mut done) = (0i64, 0i64);
    for e in committed.elements() {
        let (low, high) = consumer
            .fetch_watermarks(e.topic(), e.partition(), TIMEOUT)
            .map_err(|err| unreachable(config, err))?;
        end += high;
        done += match e.offset() {
            Offset::Offset(o) => o.clamp(low, high),
            _ if from_start => low,
            _ => high,
        };
    }
    Ok((end, done))
}
