//! A stream thread as a member of a Kafka streams group (`group.protocol=streams`, KIP-1071):
//! the topology described as Kafka Streams describes it to the broker, the thread's member and
//! its heartbeats, and the reconciliation of the tasks the broker assigns with the thread's
//! [`TaskManager`] and its consumer's assignment (partitions fetched by `assign`, never by a
//! subscription: librdkafka knows nothing of streams groups).
//!
//! Java's counterparts: `StreamThread.initBrokerTopology` (the description),
//! `StreamsMembershipManager` and `DefaultStreamsRebalanceListener` (the reconciliation).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use freshet_streams_group::StrBytes;
use freshet_streams_group::heartbeat::{
    Assignment, Member, MemberConfig, Outcome, TaskId, TaskOffsets,
};
use freshet_streams_group::messages::streams_group_heartbeat_request as hq;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use super::error::{ErrorClass, RuntimeError};
use super::failure::Failure;
use super::positions::{COMMITTED_TIMEOUT, committed_offsets};
use super::producer::StreamsProducer;
use super::repeats::Repeats;
use super::task_manager::TaskManager;
use super::{Shared, ThreadState};
use crate::config::{GroupProtocol, StreamsConfig};
use crate::topology::Topology;
use freshet_admin::group::GroupKind;
use freshet_topology::processor::SinkTarget;
use freshet_topology::topology::NodeKind;

/// How long `group.protocol=auto` waits for a broker to answer whether it runs streams groups.
const AUTO_PROBE_LIMIT: Duration = Duration::from_secs(60);

/// `group.protocol=auto`: `streams` where the brokers list StreamsGroupHeartbeat in ApiVersions
/// and the streams-group client can connect as the consumer is configured, and neither
/// `session.timeout.ms` nor `heartbeat.interval.ms` is set, unless the group exists as a classic
/// group (an application moved from Kafka Streams' default protocol, or from an earlier Freshet,
/// keeps its group and offsets); else `classic`. The choice is logged at INFO.
///
/// What the configuration alone decides is decided here, when the application is created;
/// `None` leaves the rest to [`decide_auto`], when it starts.
pub(crate) fn decide_auto_from_config(config: &StreamsConfig) -> Option<GroupProtocol> {
    // Classic session settings mean the user tuned classic membership: under streams the
    // broker would own them (group.streams.*), so auto keeps the protocol they were set for.
    if let Some((name, _)) = config
        .consumer
        .iter()
        .find(|(k, _)| k == "session.timeout.ms" || k == "heartbeat.interval.ms")
    {
        info!(
            setting = %name,
            "group.protocol=auto: using classic, since {name} is set (under streams the broker decides it: group.streams.*); remove it to use streams, or set group.protocol"
        );
        return Some(GroupProtocol::Classic);
    }
    if let Err(e) = member_security(config) {
        info!(reason = %e, "group.protocol=auto: using classic, since the streams-group client cannot connect as the consumer is configured");
        return Some(GroupProtocol::Classic);
    }
    None
}

/// The rest of `group.protocol=auto` ([`decide_auto_from_config`]): the brokers are asked, once
/// the application starts (the engine first waits for them). Brokers that do not answer within
/// [`AUTO_PROBE_LIMIT`] are an error: guessing could put this instance in another kind of group
/// than its peers. A close requested meanwhile (`shutdown`) ends the wait with
/// [`RuntimeError::Interrupted`]: a pod told to stop while it probes must not outlive its grace
/// period.
pub(crate) fn decide_auto(
    config: &StreamsConfig,
    shutdown: &AtomicBool,
) -> Result<GroupProtocol, RuntimeError> {
    let security = member_security(config)
        .map_err(|e| RuntimeError::StreamsGroupSecurity(std::sync::Arc::new(e)))?;
    let client_id = format!("{}-admin", super::client_prefix(config));
    let deadline = Instant::now() + AUTO_PROBE_LIMIT;
    let mut errors = Repeats::every(HEARTBEAT_ERROR_LOG_EVERY);
    // Made once, at the first describe: each is librdkafka threads and connections of its own.
    let mut clients: Option<freshet_admin::Clients> = None;
    loop {
        match freshet_streams_group::support::streams_group_versions(
            &config.bootstrap_servers,
            &client_id,
            Duration::from_secs(10),
            &security,
        ) {
            Ok(Some((min, max))) => match existing_group(config, &mut clients) {
                Ok(GroupKind::Consumer) => {
                    info!(
                        group = %config.application_id,
                        "group.protocol=auto: using classic; the brokers run streams groups, but the group exists as a classic group (members of it run, or its committed offsets are there): an application stays in the kind of group its other instances use. Set group.protocol=streams once no instance of it runs to move it"
                    );
                    return Ok(GroupProtocol::Classic);
                }
                Ok(_) => {
                    info!(
                        min,
                        max,
                        "group.protocol=auto: using streams; the brokers run streams groups (they list StreamsGroupHeartbeat)"
                    );
                    return Ok(GroupProtocol::Streams);
                }
                Err(e) if e.is_transient() && Instant::now() < deadline => {
                    let text = e.to_string();
                    if errors.should_log(&text) {
                        warn!(error = %text, "group.protocol=auto: the group cannot be described yet; asking again");
                    }
                    pause_unless_closing(shutdown, || RuntimeError::Admin {
                        what: "group.protocol=auto: describing the group".to_owned(),
                        source: std::sync::Arc::new(e),
                    })?;
                }
                Err(e) => {
                    return Err(RuntimeError::Admin {
                        what: format!(
                            "group.protocol=auto: describing the group {} to learn its kind",
                            config.application_id
                        ),
                        source: std::sync::Arc::new(e),
                    });
                }
            },
            Ok(None) => {
                info!(
                    "group.protocol=auto: using classic; the brokers do not list StreamsGroupHeartbeat (API key 88: Kafka 4.2+ with streams groups enabled)"
                );
                return Ok(GroupProtocol::Classic);
            }
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                let text = e.to_string();
                if errors.should_log(&text) {
                    warn!(error = %text, "group.protocol=auto: the brokers do not answer whether they run streams groups; asking again");
                }
                pause_unless_closing(shutdown, || {
                    RuntimeError::streams_group(
                        "group.protocol=auto: asking the brokers whether they run streams groups",
                        e,
                    )
                })?;
            }
            Err(e) => {
                return Err(RuntimeError::streams_group(
                    "group.protocol=auto: asking the brokers whether they run streams groups",
                    e,
                ));
            }
        }
    }
}

/// Waits a second before `decide_auto` asks again, unless the application is closing: then
/// the wait ends with [`RuntimeError::Interrupted`] carrying `last`, the error it would retry.
fn pause_unless_closing(
    shutdown: &AtomicBool,
    last: impl FnOnce() -> RuntimeError,
) -> Result<(), RuntimeError> {
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if shutdown.load(Ordering::Relaxed) {
            return Err(RuntimeError::Interrupted {
                what: "deciding group.protocol=auto".to_owned(),
                source: Box::new(last()),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// How the members' connections are secured: from the main consumer's properties, as
/// librdkafka secures the consumer's own.
fn member_security(
    config: &StreamsConfig,
) -> Result<freshet_streams_group::Security, freshet_streams_group::SecurityError> {
    freshet_streams_group::Security::from_properties(
        config
            .consumer
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// The kind of group the coordinator holds under the application id.
fn existing_group(
    config: &StreamsConfig,
    clients: &mut Option<freshet_admin::Clients>,
) -> Result<GroupKind, freshet_admin::AdminError> {
    let clients = match clients {
        Some(c) => c,
        None => clients.insert(freshet_admin::Clients::new(config)?),
    };
    Ok(freshet_admin::reset::describe(clients, config)?.kind)
}

/// How the stream threads join the group, once `group.protocol` is decided.
pub(crate) struct Membership {
    /// `classic`, `consumer` or `streams`; never `auto`.
    pub protocol: GroupProtocol,
    /// Under `streams`: how the members' connections are secured, read from the main
    /// consumer's properties (as librdkafka secures the consumer's own).
    pub security: freshet_streams_group::Security,
    /// The start of the stream threads' client ids (`<prefix>-StreamThread-<n>-consumer`):
    /// `client.id` if set; else, under `streams`, `<application.id>-<process id>` as Kafka
    /// Streams names them (what the group's description shows); else the application id.
    pub thread_client_prefix: String,
}

impl Membership {
    pub(crate) fn new(
        config: &StreamsConfig,
        protocol: GroupProtocol,
        process_id: &str,
    ) -> Result<Self, RuntimeError> {
        let streams = protocol == GroupProtocol::Streams;
        let security = if streams {
            member_security(config)
                .map_err(|e| RuntimeError::StreamsGroupSecurity(std::sync::Arc::new(e)))?
        } else {
            freshet_streams_group::Security::plaintext()
        };
        let thread_client_prefix = match &config.client_id {
            None if streams => format!("{}-{process_id}", config.application_id),
            _ => super::client_prefix(config).to_owned(),
        };
        Ok(Membership {
            protocol,
            security,
            thread_client_prefix,
        })
    }
}

/// A process id as Kafka Streams makes one (`UUID.randomUUID()`, printed with hyphens).
pub(crate) fn process_id() -> String {
    let hex = crate::state::random_id();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn key_values(configs: BTreeMap<&str, String>) -> Vec<hq::KeyValue> {
    configs
        .into_iter()
        .map(|(k, v)| hq::KeyValue {
            key: s(k),
            value: s(&v),
        })
        .collect()
}

/// Kafka Streams' `InternalTopicConfig` defaults: every internal topic keeps the producer's
/// timestamps.
const TIMESTAMP_TYPE: (&str, &str) = ("message.timestamp.type", "CreateTime");

/// A repartition topic's configs (Kafka Streams' `RepartitionTopicConfig`): deleted through the
/// purge of consumed records, never by retention.
fn repartition_configs() -> Vec<hq::KeyValue> {
    key_values(BTreeMap::from([
        ("cleanup.policy", "delete".to_owned()),
        ("retention.ms", "-1".to_owned()),
        ("segment.bytes", "52428800".to_owned()),
        (TIMESTAMP_TYPE.0, TIMESTAMP_TYPE.1.to_owned()),
    ]))
}

/// The topology as a Kafka Streams 4.x member sends it on joining (`initBrokerTopology`): per
/// sub-topology, its user source topics, the repartition topics it reads (with their partition
/// counts where fixed) and writes, its stores' changelogs with their configs, and the groups of
/// topics that must be co-partitioned. Lists are sorted, as Java sorts them.
pub(crate) fn topology_description(topology: &Topology, config: &StreamsConfig) -> hq::Topology {
    let app = &config.application_id;
    let replication = i16::try_from(config.replication_factor).unwrap_or(-1);
    let repartition: BTreeMap<String, Option<i32>> = topology
        .repartition_topics()
        .iter()
        .map(|r| (r.name.resolve(app), r.partitions))
        .collect();
    let additional = config
        .window_store_changelog_additional_retention
        .as_millis() as i64;
    let mut subtopologies = Vec::new();
    for sub in topology.subtopologies() {
        let sources: BTreeSet<String> = sub.source_topics.iter().map(|t| t.resolve(app)).collect();
        let user_sources: Vec<StrBytes> = sources
            .iter()
            .filter(|t| !repartition.contains_key(*t))
            .map(|t| s(t))
            .collect();
        let repartition_sources: Vec<hq::TopicInfo> = sources
            .iter()
            .filter_map(|t| repartition.get(t).map(|p| (t, p)))
            .map(|(t, partitions)| hq::TopicInfo {
                name: s(t),
                partitions: partitions.unwrap_or(0),
                replication_factor: replication,
                topic_configs: repartition_configs(),
            })
            .collect();
        let sinks: BTreeSet<String> = sub
            .nodes
            .iter()
            .filter_map(|n| match &topology.nodes()[*n].kind {
                NodeKind::Sink {
                    target: SinkTarget::Topic(t),
                    ..
                } => Some(t.resolve(app)),
                _ => None,
            })
            .filter(|t| repartition.contains_key(t))
            .collect();
        let mut changelogs: Vec<hq::TopicInfo> = topology
            .stores_of(sub)
            .into_iter()
            .filter(|st| st.logged)
            .map(|st| {
                let mut configs = BTreeMap::from([(TIMESTAMP_TYPE.0, TIMESTAMP_TYPE.1.to_owned())]);
                match st.changelog_retention_ms(additional) {
                    None => {
                        configs.insert("cleanup.policy", "compact".to_owned());
                    }
                    Some(retention) => {
                        configs.insert("cleanup.policy", "compact,delete".to_owned());
                        configs.insert("retention.ms", retention.to_string());
                    }
                }
                hq::TopicInfo {
                    name: s(&st.changelog().resolve(app)),
                    partitions: 0,
                    replication_factor: replication,
                    topic_configs: key_values(configs),
                }
            })
            .collect();
        changelogs.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        // A sub-topology with state reads partition N of each of its topics in one task: they
        // are co-partitioned (what Freshet's admin checks before starting).
        let copartition_groups = if sources.len() > 1 && !topology.stores_of(sub).is_empty() {
            vec![hq::CopartitionGroup {
                source_topics: (0..user_sources.len() as i16).collect(),
                source_topic_regex: vec![],
                repartition_source_topics: (0..repartition_sources.len() as i16).collect(),
            }]
        } else {
            vec![]
        };
        subtopologies.push(hq::Subtopology {
            subtopology_id: s(&sub.id.to_string()),
            source_topics: user_sources,
            source_topic_regex: vec![],
            state_changelog_topics: changelogs,
            repartition_sink_topics: sinks.iter().map(|t| s(t)).collect(),
            repartition_source_topics: repartition_sources,
            copartition_groups,
        });
    }
    subtopologies.sort_by(|a, b| a.subtopology_id.as_str().cmp(b.subtopology_id.as_str()));
    hq::Topology {
        epoch: 0,
        subtopologies,
    }
}

/// A setting of the main consumer, if the user set it.
fn consumer_setting<'a>(config: &'a StreamsConfig, name: &str) -> Option<&'a str> {
    config
        .consumer
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Where a partition without a committed offset starts (`auto.offset.reset`; Kafka Streams'
/// default: earliest).
pub(crate) fn reset_offset(config: &StreamsConfig) -> Offset {
    match consumer_setting(config, "auto.offset.reset") {
        Some("latest" | "largest" | "end") => Offset::End,
        _ => Offset::Beginning,
    }
}

/// How long reading the changelogs' end offsets for the task offsets report may take.
const END_OFFSET_TIMEOUT: Duration = Duration::from_secs(5);

/// The task offsets the thread reports (Kafka Streams' task offset sums): per stateful task it
/// runs, restores or keeps as a standby, the sum of its changelog positions, and the sum of those
/// changelogs' end offsets (read from the brokers in one ListOffsets round, as the consumer's
/// isolation level sees them; when they cannot be read now the report goes without end
/// offsets). Tasks without a logged store report nothing, as in Kafka Streams.
fn task_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tasks: &TaskManager,
    thread: usize,
) -> TaskOffsets {
    let mut out = TaskOffsets::default();
    let mut changelogs: Vec<(TaskId, Vec<(String, i32)>)> = Vec::new();
    let mut tpl = TopicPartitionList::new();
    let actives = tasks.values().map(|t| (&t.id, t.changelog_positions()));
    let actives = actives.map(|(id, p)| (id.as_str(), p));
    let standbys = tasks
        .standbys
        .values()
        .map(|t| (t.id.as_str(), t.changelog_positions()));
    let restoring = tasks.restoring_positions();
    for (id, positions) in actives.chain(standbys).chain(restoring) {
        let Some(id) = task_id(id) else {
            continue;
        };
        if positions.is_empty() {
            continue;
        }
        out.offsets
            .insert(id.clone(), positions.iter().map(|(_, p)| p).sum());
        for ((topic, partition), _) in &positions {
            // ListOffsets with the timestamp -1 (Offset::End): the end offset.
            if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::End) {
                debug!(thread, %topic, error = %e, "no end offset for the task offsets report");
            }
        }
        changelogs.push((id, positions.into_iter().map(|(k, _)| k).collect()));
    }
    if changelogs.is_empty() {
        return out;
    }
    let ends = match consumer.offsets_for_times(tpl, END_OFFSET_TIMEOUT) {
        Ok(ends) => ends,
        Err(e) => {
            debug!(thread, error = %e, "no end offsets for the task offsets report");
            return out;
        }
    };
    'tasks: for (id, partitions) in changelogs {
        let mut sum = 0;
        for (topic, partition) in partitions {
            match ends
                .find_partition(&topic, partition)
                .filter(|e| e.error().is_ok())
                .map(|e| e.offset())
            {
                Some(Offset::Offset(end)) => sum += end,
                _ => continue 'tasks,
            }
        }
        out.end_offsets.insert(id, sum);
    }
    out
}

/// A task id as the group knows it, from `<subtopology>_<partition>`.
fn task_id(id: &str) -> Option<TaskId> {
    let (sub, partition) = id.split_once('_')?;
    Some(TaskId {
        subtopology: sub.to_owned(),
        partition: partition.parse().ok()?,
    })
}

/// How often the same retriable heartbeat error is logged again while it goes on.
const HEARTBEAT_ERROR_LOG_EVERY: Duration = Duration::from_secs(30);
/// How soon a failed heartbeat is tried again.
const HEARTBEAT_RETRY: Duration = Duration::from_millis(500);

/// One stream thread's membership of the streams group.
pub(crate) struct GroupMember {
    thread: usize,
    pub member: Member,
    /// Sub-topology id → its source topics (user and repartition), resolved.
    sources: HashMap<String, Vec<String>>,
    errors: Repeats,
    failed_at: Option<Instant>,
    /// An assignment whose new tasks could not start yet (their committed offsets could not be
    /// read: an open transaction holds them, or the coordinator is away), and when to try again.
    pending: Option<(Assignment, Instant)>,
    /// The warm-up tasks of the last assignment: kept as standbys, reported as warm-ups.
    warmup: BTreeSet<TaskId>,
    /// Whether the tasks being started had to wait for their committed offsets (said once they
    /// are read).
    waited_for_offsets: bool,
}

impl GroupMember {
    /// The member of thread `thread` (0-based), not joined yet.
    pub fn new(thread: usize, shared: &Shared, topology: &Topology) -> Self {
        let c = &shared.config;
        let app = &c.application_id;
        let user_endpoint = c.application_server.as_deref().and_then(|a| {
            let (host, port) = a.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        });
        let rebalance_timeout_ms = consumer_setting(c, "max.poll.interval.ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(300_000);
        let config = MemberConfig {
            bootstrap: c.bootstrap_servers.clone(),
            group_id: app.clone(),
            client_id: format!(
                "{}-StreamThread-{}-consumer",
                shared.membership().thread_client_prefix,
                thread + 1
            ),
            instance_id: shared
                .instance_base
                .as_ref()
                .map(|base| crate::config::thread_instance_id(base, thread + 1)),
            rack_id: consumer_setting(c, "client.rack").map(str::to_owned),
            process_id: shared.group_process_id.clone(),
            user_endpoint,
            rebalance_timeout_ms,
            topology: topology_description(topology, c),
            request_timeout: Duration::from_secs(30),
            security: shared.membership().security.clone(),
        };
        let sources = topology
            .subtopologies()
            .iter()
            .map(|sub| {
                (
                    sub.id.to_string(),
                    sub.source_topics.iter().map(|t| t.resolve(app)).collect(),
                )
            })
            .collect();
        GroupMember {
            thread,
            member: Member::new(config),
            sources,
            errors: Repeats::every(HEARTBEAT_ERROR_LOG_EVERY),
            failed_at: None,
            pending: None,
            warmup: BTreeSet::new(),
            waited_for_offsets: false,
        }
    }

    /// The partitions `tasks` read.
    fn partitions_of(&self, tasks: &BTreeSet<TaskId>) -> Vec<(String, i32)> {
        tasks
            .iter()
            .flat_map(|t| {
                self.sources
                    .get(&t.subtopology)
                    .into_iter()
                    .flatten()
                    .map(move |topic| (topic.clone(), t.partition))
            })
            .collect()
    }

    /// Sends a heartbeat if one is due and applies what it brings: revokes (after a commit) and
    /// creates tasks, and moves the consumer's assignment with them.
    pub fn maintain<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        tasks: &mut TaskManager,
        output: &mut StreamsProducer,
        shared: &Shared,
    ) -> Result<(), Failure> {
        if let Some((target, at)) = self.pending.take() {
            if Instant::now() >= at {
                return self.reconcile(consumer, tasks, output, shared, target);
            }
            self.pending = Some((target, at));
        }
        if !self.member.due()
            || self
                .failed_at
                .is_some_and(|t| t.elapsed() < HEARTBEAT_RETRY)
        {
            return Ok(());
        }
        if self.member.task_offsets_due() {
            self.member
                .report_task_offsets(task_offsets(consumer, tasks, self.thread));
        }
        let outcome = match self.member.heartbeat() {
            Ok(o) => {
                self.failed_at = None;
                o
            }
            Err(e) => {
                let error = RuntimeError::streams_group("streams-group heartbeat", e);
                if error.class() != ErrorClass::Retriable {
                    return Err(Failure::Fatal(error));
                }
                self.failed_at = Some(Instant::now());
                let text = error.to_string();
                if self.errors.should_log(&text) {
                    warn!(thread = self.thread, error = %text, "streams-group heartbeat failed; trying again");
                }
                return Ok(());
            }
        };
        match outcome {
            Outcome::Unchanged => Ok(()),
            Outcome::Assigned(target) => {
                self.pending = None;
                self.reconcile(consumer, tasks, output, shared, target)
            }
            Outcome::Fenced(error) => {
                warn!(thread = self.thread, %error, "fenced: closing every task without a commit and joining again");
                shared.metrics.rebalances.inc();
                shared.set_thread_state(self.thread, ThreadState::Rebalancing);
                if output.exactly_once() {
                    output.reset(self.thread)?;
                    tasks.close_all_dirty()?;
                } else {
                    tasks.close_all();
                }
                tasks.publish();
                consumer
                    .unassign()
                    .map_err(|e| RuntimeError::kafka("unassigning the partitions", e))?;
                Ok(())
            }
        }
    }

    /// What the thread owns: its active tasks, and its standbys, as warm-ups where the last
    /// assignment named them so.
    fn owned(&self, tasks: &TaskManager) -> Assignment {
        // A task still restoring is this member's as much as a running one (Java's too).
        let mut owned = Assignment::active(
            tasks
                .ids()
                .iter()
                .chain(&tasks.restoring_ids())
                .filter_map(|id| task_id(id))
                .collect(),
        );
        for id in tasks.standbys.ids().iter().filter_map(|id| task_id(id)) {
            if self.warmup.contains(&id) {
                owned.warmup.insert(id);
            } else {
                owned.standby.insert(id);
            }
        }
        owned
    }

    /// Closes the standbys no longer assigned (each with its checkpoint) and opens the new ones
    /// (from their checkpoints). A standby that cannot be opened is left out, and so reported
    /// as not owned.
    fn reconcile_standbys(&self, tasks: &mut TaskManager, target: &Assignment) {
        let keep: BTreeSet<TaskId> = target.standby.union(&target.warmup).cloned().collect();
        for id in tasks.standbys.ids() {
            // A standby that became active stays until create_tasks promotes it.
            if task_id(&id).is_some_and(|t| !keep.contains(&t) && !target.active.contains(&t)) {
                tasks.standbys.close(&id);
            }
        }
        for t in &keep {
            let id = t.to_string();
            if tasks.standbys.contains(&id) {
                continue;
            }
            let Ok(subtopology) = t.subtopology.parse::<usize>() else {
                warn!(thread = self.thread, task = %id, "a standby task of an unknown sub-topology; ignored");
                continue;
            };
            if let Err(e) = tasks.standbys.add(&id, subtopology, t.partition) {
                warn!(thread = self.thread, task = %id, error = %e, "opening the standby task failed; it is reported as not owned");
            }
        }
    }

    fn reconcile<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        tasks: &mut TaskManager,
        output: &mut StreamsProducer,
        shared: &Shared,
        target: Assignment,
    ) -> Result<(), Failure> {
        self.warmup = target.warmup.clone();
        let owned = self.owned(tasks);
        if owned == target {
            self.member.set_owned(target);
            return Ok(());
        }
        shared.metrics.rebalances.inc();
        shared.set_thread_state(self.thread, ThreadState::Rebalancing);
        let revoked: BTreeSet<TaskId> = owned.active.difference(&target.active).cloned().collect();
        let added: BTreeSet<TaskId> = target.active.difference(&owned.active).cloned().collect();
        let names =
            |set: &BTreeSet<TaskId>| set.iter().map(ToString::to_string).collect::<Vec<_>>();
        info!(
            thread = self.thread,
            epoch = self.member.epoch(),
            revoked = ?names(&revoked),
            added = ?names(&added),
            standby = ?names(&target.standby),
            warmup = ?names(&target.warmup),
            "streams-group assignment"
        );
        if !revoked.is_empty() {
            // Outputs first, then offsets, as the member they were processed under; a failed
            // commit leaves the records to the next owner, which reprocesses them.
            let mut dirty = false;
            if let Err(e) = tasks.commit(
                consumer,
                output,
                &shared.config,
                false,
                Some(&mut self.member),
            ) {
                let e = e.into_error();
                warn!(thread = self.thread, error = %e, "commit before revocation failed; the next owner reprocesses from the last commit");
                if output.exactly_once() {
                    output.reset(self.thread)?;
                    dirty = true;
                }
            }
            let partitions = self.partitions_of(&revoked);
            tasks.revoke(&partitions, dirty);
            output.committed.retain(|k, _| !partitions.contains(k));
            let mut tpl = TopicPartitionList::new();
            for (topic, partition) in &partitions {
                tpl.add_partition(topic, *partition);
            }
            consumer
                .incremental_unassign(&tpl)
                .map_err(|e| RuntimeError::kafka("unassigning revoked partitions", e))?;
        }
        // After the revocations: an active task revoked here may stay as a standby, opened from
        // the checkpoint its close just wrote.
        self.reconcile_standbys(tasks, &target);
        if !added.is_empty() {
            let partitions = self.partitions_of(&added);
            let mut tpl = TopicPartitionList::new();
            for (topic, partition) in &partitions {
                tpl.add_partition(topic, *partition);
            }
            let committed = match committed_offsets(consumer, &tpl, COMMITTED_TIMEOUT) {
                Ok(c) => c,
                // As the classic path does (runtime::positions): the new tasks wait, the others
                // go on, and the member acknowledges only the tasks it runs meanwhile.
                Err(e) if e.class() == ErrorClass::Retriable => {
                    let text = e.to_string();
                    if self.errors.should_log(&text) {
                        warn!(thread = self.thread, error = %text, "the committed offsets of newly assigned tasks could not be read (an open transaction holds them, or the coordinator is away); trying again, then starting the tasks there");
                    }
                    self.pending = Some((target, Instant::now() + HEARTBEAT_RETRY));
                    self.waited_for_offsets = true;
                    tasks.publish();
                    let owned = self.owned(tasks);
                    self.member.set_owned(owned);
                    shared.set_thread_state(self.thread, ThreadState::Running);
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            };
            if std::mem::take(&mut self.waited_for_offsets) {
                info!(
                    thread = self.thread,
                    "committed offsets read; the assigned partitions started at them"
                );
            }
            tasks.create_tasks(&partitions, &committed)?;
            let reset = reset_offset(&shared.config);
            let mut tpl = TopicPartitionList::new();
            for (topic, partition) in &partitions {
                let offset = committed
                    .get(&(topic.clone(), *partition))
                    .map_or(reset, |o| Offset::Offset(*o));
                tpl.add_partition_offset(topic, *partition, offset)
                    .map_err(|e| RuntimeError::kafka("listing the partitions to assign", e))?;
            }
            consumer
                .incremental_assign(&tpl)
                .map_err(|e| RuntimeError::kafka("assigning partitions", e))?;
            // The new tasks restore off this thread; their partitions wait, paused.
            tasks.pause_restoring(consumer);
        }
        tasks.publish();
        let owned = self.owned(tasks);
        self.member.set_owned(owned);
        // The acknowledging heartbeat also tells the assignor where the tasks' state stands now
        // (besides every task offset interval).
        self.member
            .report_task_offsets(task_offsets(consumer, tasks, self.thread));
        shared.set_thread_state(self.thread, ThreadState::Running);
        Ok(())
    }

    /// Reports the task offsets with the next heartbeat (tasks just created after their
    /// restore, whose positions the assignor should know without waiting for the interval).
    pub fn report_task_offsets<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        tasks: &TaskManager,
    ) {
        self.member
            .report_task_offsets(task_offsets(consumer, tasks, self.thread));
    }

    /// Leaves the group after the thread's last commit.
    pub fn leave(&mut self) {
        self.member.leave();
    }
}
