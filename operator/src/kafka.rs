//! What the operator asks of Kafka for one StreamsApp, through the engine's own compiler
//! (`freshet-spec`) and admin code (`freshet-admin`), so the operator and the pods never disagree
//! on topic names or partition counts. Neither links the streams runtime or RocksDB.
//!
//! Every call here blocks (librdkafka); the controller runs them on the blocking pool. They go
//! through an app's [`AppClients`], made at its first reconcile and kept in the [`ClientCache`]:
//! a librdkafka client is threads and broker connections, and opening several per reconcile
//! (every resync, for every app) was most of what the operator did to the brokers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use freshet_admin::{self as admin, AdminError};
use freshet_crds::StreamsAppSpec;
use freshet_spec::config::StreamsConfig;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

pub use freshet_spec::Plan;

/// Compiles the spec as `freshet-engine validate` does; the error is the compiler's message.
pub fn plan(spec: &StreamsAppSpec) -> Result<Plan, freshet_spec::PlanError> {
    freshet_spec::plan(spec)
}

/// What a rollout must not change silently: the plan's internal topics and stores, digested.
pub trait StateSignature {
    /// A digest of the internal topics and stores, recorded on the StatefulSet.
    fn state_signature(&self) -> String;
}

impl StateSignature for Plan {
    fn state_signature(&self) -> String {
        crate::digest(&self.state_layout())
    }
}

/// The internal topics prepared, and which of them this call created.
pub struct Topics {
    /// Partitions of every topic the app reads or writes, sources and internal.
    pub partitions: BTreeMap<String, i32>,
    /// The internal topics this call created, with their partition counts.
    pub created: Vec<(String, i32)>,
}

/// Checks the sources and co-partitioning against the real partition counts and creates the
/// missing internal topics, with the replication factor of `config`, or min(3, brokers).
pub fn prepare(clients: &AppClients, plan: &mut Plan) -> Result<Topics, AdminError> {
    clients.drain_events();
    if plan.config.replication_factor <= 0 {
        plan.config.replication_factor = brokers(clients, &plan.config)?.clamp(1, 3);
    }
    let kafka = &clients.kafka;
    kafka.source_partitions(&plan.topology, &plan.config)?;
    let existing = kafka.partition_counts(&plan.config, &plan.internal_topics)?;
    let partitions = kafka.prepare_topics(&plan.topology, &plan.config)?;
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
    admin::client_config(config)
}

/// The librdkafka settings of a consumer in the app's group that never joins it (committed
/// offsets, watermarks, the tail probe).
fn consumer_config(config: &StreamsConfig, isolation: &str) -> ClientConfig {
    let mut c = client(config);
    c.set("group.id", &config.application_id)
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation);
    c
}

/// The Kafka clients of one app: made once, at its first reconcile, and used by every later
/// one, the lag measurement and the application reset alike.
pub struct AppClients {
    /// What they were made from: the app's Kafka settings, digested.
    settings: String,
    /// The metadata consumer (read_uncommitted, in the app's group, never subscribed: it also
    /// reads committed offsets and watermarks) and the admin client.
    kafka: admin::Clients,
    /// The read_committed consumer of the tail probe; without it the raw lag counts. Locked
    /// while a probe assigns and polls it: a reconcile cancelled when its replica stepped down
    /// may still be measuring while the next term's reconcile of the same app starts.
    stable: Mutex<Option<BaseConsumer<ProbeContext>>>,
    /// How many librdkafka clients these are: 3, or 2 without the probe's.
    count: u64,
}

impl AppClients {
    /// The metadata consumer and admin client, for the admin crate's calls (the reset).
    pub fn admin(&self) -> &admin::Clients {
        self.drain_events();
        &self.kafka
    }

    /// How long each request to Kafka may wait (`--kafka-timeout-seconds`).
    pub fn timeout(&self) -> Duration {
        self.kafka.timeout
    }

    fn new(config: &StreamsConfig, timeout: Duration) -> Result<Self, AdminError> {
        let metadata: BaseConsumer = consumer_config(config, "read_uncommitted")
            .create()
            .map_err(|e| unreachable(config, e))?;
        let admin: AdminClient<DefaultClientContext> = client(config)
            .create()
            .map_err(|e| unreachable(config, e))?;
        let stable = consumer_config(config, "read_committed")
            .set("enable.partition.eof", "true")
            // Small fetches: the probe needs one record, or the end, per partition.
            .set("fetch.wait.max.ms", "50")
            .set("max.partition.fetch.bytes", "4096")
            .create_with_context(ProbeContext)
            .inspect_err(|e| tracing::warn!(error = %e, "no read_committed client: transaction markers count as lag"))
            .ok();
        Ok(AppClients {
            settings: settings_digest(config),
            kafka: admin::Clients {
                metadata,
                admin,
                timeout,
            },
            count: 2 + u64::from(stable.is_some()),
            stable: Mutex::new(stable),
        })
    }

    /// Serves what librdkafka queued for the metadata consumer since its last use (errors of
    /// a broker that went away, mostly): never subscribed, it has no records to poll, and an
    /// unserved queue only grows.
    fn drain_events(&self) {
        for _ in 0..1000 {
            match self.kafka.metadata.poll(Duration::ZERO) {
                None => return,
                Some(Err(e)) => tracing::debug!(error = %e, "Kafka client event"),
                Some(Ok(_)) => {}
            }
        }
    }
}

/// The settings an app's clients are made from, digested: a change makes new clients.
fn settings_digest(config: &StreamsConfig) -> String {
    let mut admin = config.admin.clone();
    admin.sort();
    crate::digest(&format!(
        "{}\n{}\n{admin:?}",
        config.bootstrap_servers, config.application_id
    ))
}

/// The Kafka clients of every app the operator reconciles, by app (`namespace/name`).
pub struct ClientCache {
    apps: Mutex<HashMap<String, Arc<AppClients>>>,
    /// `freshet_operator_kafka_clients_created_total`.
    created: Counter,
    /// `freshet_operator_kafka_clients`: clients open now.
    open: Gauge,
    /// How long one call of the clients waits for the cluster (`--kafka-timeout-seconds`).
    timeout: Duration,
}

impl ClientCache {
    /// An empty cache counting into the two metrics, its clients' calls waiting at most
    /// `timeout` for the cluster.
    pub fn new(created: Counter, open: Gauge, timeout: Duration) -> Self {
        ClientCache {
            apps: Mutex::default(),
            created,
            open,
            timeout,
        }
    }

    /// The clients of `app`, made now when it has none or its Kafka settings changed (the old
    /// ones are closed off the caller's thread). Blocks: call it on the blocking pool.
    pub fn get(&self, app: &str, config: &StreamsConfig) -> Result<Arc<AppClients>, AdminError> {
        let settings = settings_digest(config);
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = apps.get(app).filter(|c| c.settings == settings) {
            return Ok(c.clone());
        }
        let made = Arc::new(AppClients::new(config, self.timeout)?);
        self.created.inc_by(made.count);
        if let Some(old) = apps.insert(app.to_owned(), made.clone()) {
            tracing::info!(app, "Kafka settings changed: new Kafka clients");
            drop(old);
        }
        self.count(&apps);
        Ok(made)
    }

    /// Closes the clients of `app` (deleted): librdkafka's destroy waits for its threads,
    /// so the last reference is dropped on the blocking pool.
    pub fn forget(&self, app: &str) {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        let gone = apps.remove(app);
        self.count(&apps);
        drop(apps);
        if let Some(clients) = gone {
            tokio::task::spawn_blocking(move || drop(clients));
        }
    }

    fn count(&self, apps: &HashMap<String, Arc<AppClients>>) {
        self.open
            .set(apps.values().map(|c| c.count).sum::<u64>() as i64);
    }
}

fn unreachable(config: &StreamsConfig, e: impl ToString) -> AdminError {
    AdminError::Unreachable {
        bootstrap: config.bootstrap_servers.clone(),
        message: e.to_string(),
    }
}

fn brokers(clients: &AppClients, config: &StreamsConfig) -> Result<i32, AdminError> {
    let metadata = clients
        .kafka
        .metadata
        .fetch_metadata(None, clients.kafka.timeout)
        .map_err(|e| unreachable(config, e))?;
    Ok(metadata.brokers().len() as i32)
}

/// The application reset: deletes the internal topics and the consumer group. Topics or a
/// group that are already gone are not an error. The broker is asked for its metadata first,
/// so an unreachable one is told within the metadata timeout, and only topics that exist are
/// deleted.
pub fn delete_app_data(clients: &AppClients, plan: &Plan) -> Result<(), AdminError> {
    let config = &plan.config;
    clients.drain_events();
    let existing = clients
        .kafka
        .partition_counts(config, &plan.internal_topics)?;
    let topics: Vec<String> = plan
        .internal_topics
        .iter()
        .filter(|t| existing.contains_key(*t))
        .cloned()
        .collect();
    freshet_admin::reset::delete_topics(&clients.kafka, config, &topics)?;
    freshet_admin::reset::delete_group(&clients.kafka, config)
}

/// Where an app stands on its inputs, summed over every input partition of its sub-topologies
/// (source and repartition topics; changelogs are not inputs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputOffsets {
    /// Log-end offsets (high watermarks) summed.
    pub end: i64,
    /// The group's committed offsets summed. A partition without one counts from where the app
    /// would start: the log start under `auto.offset.reset=earliest`, else the end.
    pub committed: i64,
    /// Of `end - committed`, the offsets that hold no record the app will ever process: the
    /// tails of partitions where a read_committed consumer starting at the committed offset
    /// reaches the end without a record. They are transaction markers (every transaction leaves
    /// one per partition, after the last record, and no consumer commits past it) and the
    /// records of aborted transactions.
    pub no_records: i64,
    /// When the committed offsets were read, in milliseconds since the Unix epoch: the moment
    /// the processing progress stands for. The rest of a measurement (watermarks, the tail
    /// probe) can take seconds, which taken as processing time would distort the rate.
    pub read_at_ms: u64,
}

impl InputOffsets {
    /// Records waiting: log-end minus committed offsets, less those that hold no record.
    pub fn lag(&self) -> i64 {
        (self.end - self.committed - self.no_records).max(0)
    }
}

/// The tail probe's client context: the end of a partition is what the probe looks for, not an
/// error to log (librdkafka also reports it as a client-level error event).
struct ProbeContext;

impl ClientContext for ProbeContext {
    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::PartitionEOF(_)
            | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF) => {}
            e => tracing::warn!(error = %e, reason, "tail probe client"),
        }
    }
}

impl ConsumerContext for ProbeContext {}

/// How long the tail probe may take, across all partitions.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The application's [`InputOffsets`]. Partitions whose lag may be only transaction markers are
/// probed: read under read_committed from the committed offset, a tail that yields no record
/// before the end of the partition is counted in `no_records`. Only the partitions whose last
/// stable offset equals the log end are probed (an open transaction's records may still
/// commit); a partition that does not answer within [`PROBE_TIMEOUT`] counts as lag.
pub fn offsets(
    clients: &AppClients,
    plan: &Plan,
    partitions: &BTreeMap<String, i32>,
) -> Result<InputOffsets, AdminError> {
    let config = &plan.config;
    // The log end and the last stable offset come from ListOffsets under each isolation level.
    let uncommitted = &clients.kafka.metadata;
    let stable = clients.stable.lock().unwrap_or_else(|p| p.into_inner());
    let stable = stable.as_ref();
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
    let committed = uncommitted
        .committed_offsets(tpl, clients.kafka.timeout)
        .map_err(|e| unreachable(config, e))?;
    let mut totals = InputOffsets {
        read_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        ..InputOffsets::default()
    };
    // Partitions to probe: (topic, partition) → (committed, lag).
    let mut probe: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
    for e in committed.elements() {
        let (low, high) = uncommitted
            .fetch_watermarks(e.topic(), e.partition(), clients.kafka.timeout)
            .map_err(|err| unreachable(config, err))?;
        let done = match e.offset() {
            Offset::Offset(o) => o.clamp(low, high),
            _ if from_start => low,
            _ => high,
        };
        totals.end += high;
        totals.committed += done;
        if done < high
            && let Some(stable) = stable
        {
            let (_, last_stable) = stable
                .fetch_watermarks(e.topic(), e.partition(), clients.kafka.timeout)
                .map_err(|err| unreachable(config, err))?;
            if last_stable == high {
                probe.insert((e.topic().to_owned(), e.partition()), (done, high - done));
            }
        }
    }
    if let Some(stable) = stable {
        totals.no_records = probe_tails(stable, probe);
    }
    Ok(totals)
}

/// Reads each partition from its committed offset under read_committed until a record or the
/// partition's end arrives; the sum of the lags of those that ended without a record. One topic
/// at a time, since librdkafka's end-of-partition event names only the partition. A partition
/// that does not answer counts nothing, so the lag it could not explain stays lag.
fn probe_tails(
    consumer: &BaseConsumer<ProbeContext>,
    probe: BTreeMap<(String, i32), (i64, i64)>,
) -> i64 {
    let deadline = std::time::Instant::now() + PROBE_TIMEOUT;
    // What the client queued since its last probe (a broker's error while idle) would end the
    // first topic's probe early.
    for _ in 0..1000 {
        if consumer.poll(Duration::ZERO).is_none() {
            break;
        }
    }
    let mut by_topic: BTreeMap<String, BTreeMap<i32, (i64, i64)>> = BTreeMap::new();
    for ((topic, partition), at) in probe {
        by_topic.entry(topic).or_default().insert(partition, at);
    }
    let mut no_records = 0;
    for (topic, mut waiting) in by_topic {
        let mut tpl = TopicPartitionList::new();
        for (partition, (from, _)) in &waiting {
            if let Err(e) = tpl.add_partition_offset(&topic, *partition, Offset::Offset(*from)) {
                tracing::debug!(topic, error = %e, "tail probe skipped");
                continue;
            }
        }
        if let Err(e) = consumer.assign(&tpl) {
            tracing::debug!(topic, error = %e, "tail probe: assign failed; the lag counts as it is");
            continue;
        }
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match consumer.poll(left) {
                None => break,
                // A record: this partition has work; its lag counts.
                Some(Ok(m)) if m.topic() == topic => {
                    waiting.remove(&m.partition());
                }
                Some(Ok(_)) => {}
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    if let Some((_, lag)) = waiting.remove(&partition) {
                        no_records += lag;
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(topic, error = %e, "tail probe: the lag counts as it is");
                    break;
                }
            }
        }
    }
    let _ = consumer.unassign();
    no_records
}
