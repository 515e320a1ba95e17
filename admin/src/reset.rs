//! The application reset, as Kafka's `kafka-streams-application-reset` does it: the group's
//! committed offsets on the input topics moved (to the earliest offset by default), the
//! intermediate topics (user topics the application both writes and reads) skipped to their
//! end, and the internal topics (repartition and changelog) deleted. It refuses while the group
//! has active members: a running instance would commit over the new offsets and recreate the
//! deleted topics. [`plan_reset`] only reads, so a dry run prints its [`ResetPlan`];
//! [`execute_reset`] carries it out. The local state (`state.dir`) is the caller's to wipe.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use freshet_topology::config::StreamsConfig;
use freshet_topology::topology::{NodeKind, SinkTarget, TopicName, Topology};

use crate::group::{GroupDescription, describe_group};
use crate::{AdminError, Clients};

/// Where the input topics' offsets go, as the reset tool's `--to-*` and `--by-duration`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResetMode {
    /// `--to-earliest`: each partition's log start (the default, as in Kafka's tool).
    ToEarliest,
    /// `--to-latest`: each partition's end: nothing written so far is processed again.
    ToLatest,
    /// `--to-datetime`: the first offset whose timestamp is at or after this many milliseconds
    /// since the Unix epoch (the end where there is none).
    ToDatetime(i64),
    /// `--by-duration`: as [`ResetMode::ToDatetime`] with now minus this long.
    ByDuration(Duration),
    /// `--to-offset`: this offset in every partition, kept within the log's start and end.
    ToOffset(i64),
}

/// Why a reset does not run.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// The group has active members.
    #[error(
        "the consumer group {group} has {} active members ({}), state {state}: stop every instance of the application first (a static member, with a group.instance.id as pods have, stays listed until session.timeout.ms after its instance stopped; on Kubernetes: spec.suspend: true, or the operator's freshet.dev/reset annotation, which stops them for you)",
        .members.len(), .members.join(", ")
    )]
    Active {
        /// The group (the application id).
        group: String,
        /// Its state, as Kafka names it.
        state: String,
        /// The members, `client.id@host (member id)` each.
        members: Vec<String>,
    },
    /// An input topic given does not exist.
    #[error(
        "input topic '{0}' does not exist: name the topics to reset with --input-topics, or leave it out to reset the topology's source topics"
    )]
    UnknownTopic(String),
    /// Kafka refused or did not answer.
    #[error(transparent)]
    Kafka(#[from] AdminError),
}

/// One partition's committed offset, before and after the reset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetChange {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset now, if any.
    pub current: Option<i64>,
    /// The offset the reset commits.
    pub new: i64,
}

/// What a reset does, worked out without changing anything: what a dry run prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetPlan {
    /// The consumer group (the application id).
    pub group: String,
    /// Its state before the reset.
    pub group_state: String,
    /// Input topic partitions, moved as the mode says.
    pub inputs: Vec<OffsetChange>,
    /// Intermediate topic partitions, moved to their end.
    pub intermediate: Vec<OffsetChange>,
    /// Internal topics that exist and are deleted.
    pub delete_topics: Vec<String>,
}

impl std::fmt::Display for ResetPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "consumer group {} (state {})",
            self.group, self.group_state
        )?;
        for (what, changes) in [
            ("input", &self.inputs),
            ("intermediate", &self.intermediate),
        ] {
            for c in changes {
                let current = c.current.map_or("none".to_owned(), |o| o.to_string());
                writeln!(
                    f,
                    "{what} topic {} partition {}: offset {current} -> {}",
                    c.topic, c.partition, c.new
                )?;
            }
        }
        for t in &self.delete_topics {
            writeln!(f, "internal topic {t}: delete")?;
        }
        Ok(())
    }
}

/// The topology's intermediate topics: user topics it writes to and also reads.
pub fn intermediate_topics(topology: &Topology) -> BTreeSet<String> {
    let sources: BTreeSet<String> = topology
        .source_topics()
        .into_iter()
        .filter_map(|t| match t {
            TopicName::External(t) => Some(t),
            TopicName::Internal(_) => None,
        })
        .collect();
    topology
        .nodes()
        .iter()
        .filter_map(|n| match &n.kind {
            NodeKind::Sink {
                target: SinkTarget::Topic(TopicName::External(t)),
                ..
            } if sources.contains(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// The topology's input topics: the user topics its sources read, less the intermediate ones.
/// Global tables are not among them: their offsets are never committed.
pub fn input_topics(topology: &Topology) -> BTreeSet<String> {
    let intermediate = intermediate_topics(topology);
    let globals: BTreeSet<&str> = topology
        .global_tables()
        .iter()
        .map(|g| g.topic.as_str())
        .collect();
    topology
        .source_topics()
        .into_iter()
        .filter_map(|t| match t {
            TopicName::External(t) => Some(t),
            TopicName::Internal(_) => None,
        })
        .filter(|t| !intermediate.contains(t) && !globals.contains(t.as_str()))
        .collect()
}

/// A consumer of the application's group that never subscribes: it reads and commits the
/// group's offsets as a standalone client, which the coordinator accepts only while the group
/// has no member.
fn group_consumer(config: &StreamsConfig) -> Result<BaseConsumer, AdminError> {
    let mut cfg = crate::client_config(config);
    cfg.set("group.id", &config.application_id)
        .set("enable.auto.commit", "false");
    cfg.create().map_err(|e| AdminError::Unreachable {
        bootstrap: config.bootstrap_servers.clone(),
        message: e.to_string(),
    })
}

/// The group's description, through `clients`.
pub fn describe(clients: &Clients, config: &StreamsConfig) -> Result<GroupDescription, AdminError> {
    describe_group(
        &clients.admin,
        &config.bootstrap_servers,
        &config.application_id,
        clients.timeout,
        &config.admin,
    )
}

/// Works out the reset of `topology`'s application without changing anything. `inputs`
/// replaces the topology's input topics (Kafka's `--input-topics`). Refuses while the group has
/// active members.
pub fn plan_reset(
    clients: &Clients,
    topology: &Topology,
    config: &StreamsConfig,
    mode: &ResetMode,
    inputs: Option<&[String]>,
) -> Result<ResetPlan, ResetError> {
    let group = describe(clients, config)?;
    if group.is_active() {
        return Err(ResetError::Active {
            group: config.application_id.clone(),
            state: group.state,
            members: group.members,
        });
    }
    let inputs: Vec<String> = match inputs {
        Some(given) => given.to_vec(),
        None => input_topics(topology).into_iter().collect(),
    };
    let intermediate: Vec<String> = intermediate_topics(topology).into_iter().collect();
    let internal = topology.internal_topics(&config.application_id);
    let all: Vec<String> = inputs
        .iter()
        .chain(&intermediate)
        .chain(&internal)
        .cloned()
        .collect();
    let counts = clients.partition_counts(config, &all)?;
    if let Some(missing) = inputs.iter().find(|t| !counts.contains_key(*t)) {
        return Err(ResetError::UnknownTopic(missing.clone()));
    }
    let consumer = group_consumer(config)?;
    let unreachable = |e: rdkafka::error::KafkaError| AdminError::Unreachable {
        bootstrap: config.bootstrap_servers.clone(),
        message: e.to_string(),
    };
    let changes = |topics: &[String], mode: &ResetMode| -> Result<Vec<OffsetChange>, AdminError> {
        let mut tpl = TopicPartitionList::new();
        for t in topics {
            for p in 0..counts.get(t).copied().unwrap_or(0) {
                tpl.add_partition(t, p);
            }
        }
        if tpl.count() == 0 {
            return Ok(Vec::new());
        }
        let committed = consumer
            .committed_offsets(tpl.clone(), clients.timeout)
            .map_err(unreachable)?;
        let by_time = match mode {
            ResetMode::ToDatetime(ms) => Some(*ms),
            ResetMode::ByDuration(d) => Some(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |now| now.saturating_sub(*d).as_millis() as i64),
            ),
            _ => None,
        };
        let found = match by_time {
            Some(ms) => {
                let mut wanted = TopicPartitionList::new();
                for e in tpl.elements() {
                    wanted
                        .add_partition_offset(e.topic(), e.partition(), Offset::Offset(ms))
                        .map_err(unreachable)?;
                }
                Some(
                    consumer
                        .offsets_for_times(wanted, clients.timeout)
                        .map_err(unreachable)?,
                )
            }
            None => None,
        };
        let mut out = Vec::new();
        for e in committed.elements() {
            let (low, high) = consumer
                .fetch_watermarks(e.topic(), e.partition(), clients.timeout)
                .map_err(unreachable)?;
            let new = match mode {
                ResetMode::ToEarliest => low,
                ResetMode::ToLatest => high,
                ResetMode::ToOffset(n) => (*n).clamp(low, high),
                ResetMode::ToDatetime(_) | ResetMode::ByDuration(_) => found
                    .as_ref()
                    .and_then(|f| f.find_partition(e.topic(), e.partition()))
                    .and_then(|p| match p.offset() {
                        Offset::Offset(o) => Some(o.clamp(low, high)),
                        _ => None,
                    })
                    // No record at or after the time: the end, as Kafka's tool does.
                    .unwrap_or(high),
            };
            out.push(OffsetChange {
                topic: e.topic().to_owned(),
                partition: e.partition(),
                current: match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                },
                new,
            });
        }
        Ok(out)
    };
    let input_changes = changes(&inputs, mode)?;
    let intermediate_changes = changes(&intermediate, &ResetMode::ToLatest)?;
    let mut delete_topics: Vec<String> = internal
        .into_iter()
        .filter(|t| counts.contains_key(t))
        .collect();
    delete_topics.sort();
    delete_topics.dedup();
    Ok(ResetPlan {
        group: config.application_id.clone(),
        group_state: group.state,
        inputs: input_changes,
        intermediate: intermediate_changes,
        delete_topics,
    })
}

/// Carries out `plan`: commits the new offsets as the group (the coordinator refuses while a
/// member is active, so an instance started since the plan makes this fail rather than race)
/// and deletes the internal topics.
pub fn execute_reset(
    clients: &Clients,
    config: &StreamsConfig,
    plan: &ResetPlan,
) -> Result<(), ResetError> {
    let mut tpl = TopicPartitionList::new();
    for c in plan.inputs.iter().chain(&plan.intermediate) {
        tpl.add_partition_offset(&c.topic, c.partition, Offset::Offset(c.new))
            .map_err(|e| AdminError::Unreachable {
                bootstrap: config.bootstrap_servers.clone(),
                message: e.to_string(),
            })?;
    }
    if tpl.count() > 0 {
        let consumer = group_consumer(config)?;
        if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
            // Members that joined since the plan: the coordinator refuses a standalone commit.
            let group = describe(clients, config)?;
            if group.is_active() {
                return Err(ResetError::Active {
                    group: plan.group.clone(),
                    state: group.state,
                    members: group.members,
                });
            }
            if e.rdkafka_error_code() == Some(RDKafkaErrorCode::GroupAuthorizationFailed) {
                return Err(AdminError::NotAuthorized {
                    operation: "READ",
                    resource: format!("group '{}'", plan.group),
                }
                .into());
            }
            return Err(AdminError::Unreachable {
                bootstrap: config.bootstrap_servers.clone(),
                message: format!("committing the reset offsets: {e}"),
            }
            .into());
        }
    }
    delete_topics(clients, config, &plan.delete_topics)?;
    Ok(())
}

/// Deletes the internal `topics` of `config`'s application. Only names that start with the
/// application id are deleted, whatever the list holds; a topic already gone is no error.
pub fn delete_topics(
    clients: &Clients,
    config: &StreamsConfig,
    topics: &[String],
) -> Result<(), AdminError> {
    let prefix = format!("{}-", config.application_id);
    let topics: Vec<&str> = topics
        .iter()
        .filter(|t| {
            let ours = t.starts_with(&prefix);
            if !ours {
                tracing::warn!(topic = %t, application_id = %config.application_id, "not deleted: the name does not start with the applicationId");
            }
            ours
        })
        .map(String::as_str)
        .collect();
    if topics.is_empty() {
        return Ok(());
    }
    let results = futures::executor::block_on(
        clients
            .admin
            .delete_topics(&topics, &admin_options(clients.timeout)),
    )
    .map_err(|e| AdminError::Unreachable {
        bootstrap: config.bootstrap_servers.clone(),
        message: e.to_string(),
    })?;
    judge_deletions(
        results,
        "topic",
        RDKafkaErrorCode::UnknownTopicOrPartition,
        RDKafkaErrorCode::TopicAuthorizationFailed,
    )
}

/// The outcome of a deletion request, per name: one already gone is no error, one the
/// principal may not delete names the ACL it needs, any other refusal names the resource.
fn judge_deletions(
    results: Vec<Result<String, (String, RDKafkaErrorCode)>>,
    kind: &str,
    gone: RDKafkaErrorCode,
    not_authorized: RDKafkaErrorCode,
) -> Result<(), AdminError> {
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, code)) if code == gone => {}
            Err((name, code)) if code == not_authorized => {
                return Err(AdminError::NotAuthorized {
                    operation: "DELETE",
                    resource: format!("{kind} '{name}'"),
                });
            }
            Err((name, code)) => {
                return Err(AdminError::DeleteFailed {
                    resource: format!("{kind} '{name}'"),
                    message: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Deletes the consumer group of `config`'s application; a group already gone is no error.
pub fn delete_group(clients: &Clients, config: &StreamsConfig) -> Result<(), AdminError> {
    let results = futures::executor::block_on(clients.admin.delete_groups(
        &[config.application_id.as_str()],
        &admin_options(clients.timeout),
    ))
    .map_err(|e| AdminError::Unreachable {
        bootstrap: config.bootstrap_servers.clone(),
        message: e.to_string(),
    })?;
    judge_deletions(
        results,
        "group",
        RDKafkaErrorCode::GroupIdNotFound,
        RDKafkaErrorCode::GroupAuthorizationFailed,
    )
}

fn admin_options(timeout: Duration) -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout))
}

/// Milliseconds since the Unix epoch of an ISO-8601 date-time (UTC when it names no zone).
pub fn parse_datetime(text: &str) -> Option<i64> {
    let dt = iso8601::datetime(text.trim()).ok()?;
    let iso8601::Date::YMD { year, month, day } = dt.date else {
        return None;
    };
    let t = dt.time;
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let seconds =
        days * 86_400 + i64::from(t.hour) * 3_600 + i64::from(t.minute) * 60 + i64::from(t.second)
            - i64::from(t.tz_offset_hours) * 3_600
            - i64::from(t.tz_offset_minutes) * 60;
    Some(seconds * 1_000 + i64::from(t.millisecond))
}

/// Days from 1970-01-01 to the proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl ResetMode {
    /// The mode an annotation names: `to-earliest` (or `earliest`), `to-latest` (`latest`),
    /// `to-datetime=<ISO-8601>`, `by-duration=<duration>` or `to-offset=<n>`, as the reset
    /// tool's options. `None` for anything else.
    pub fn parse(text: &str) -> Option<ResetMode> {
        let (name, value) = match text.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (text, None),
        };
        match (name.trim(), value) {
            ("" | "to-earliest" | "earliest", None) => Some(ResetMode::ToEarliest),
            ("to-latest" | "latest", None) => Some(ResetMode::ToLatest),
            ("to-datetime", Some(v)) => parse_datetime(v).map(ResetMode::ToDatetime),
            ("by-duration", Some(v)) => freshet_topology::duration::parse(v)
                .ok()
                .map(ResetMode::ByDuration),
            ("to-offset", Some(v)) => v.trim().parse().ok().map(ResetMode::ToOffset),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_as_kafkas_tool_takes_them() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000"), Some(0));
        assert_eq!(
            parse_datetime("2026-12-07T04:30:00.000Z"),
            Some(1_796_617_800_000)
        );
        assert_eq!(
            parse_datetime("2026-12-07T05:30:00.250+01:00"),
            Some(1_796_617_800_250)
        );
        assert_eq!(parse_datetime("yesterday"), None);
    }

    #[test]
    fn annotation_modes() {
        assert_eq!(ResetMode::parse(""), Some(ResetMode::ToEarliest));
        assert_eq!(ResetMode::parse("latest"), Some(ResetMode::ToLatest));
        assert_eq!(
            ResetMode::parse("by-duration=1h"),
            Some(ResetMode::ByDuration(Duration::from_secs(3600)))
        );
        assert_eq!(
            ResetMode::parse("to-datetime=1970-01-01T00:00:01.000Z"),
            Some(ResetMode::ToDatetime(1000))
        );
        assert_eq!(
            ResetMode::parse("to-offset=7"),
            Some(ResetMode::ToOffset(7))
        );
        assert_eq!(ResetMode::parse("yesterday"), None);
    }
}
