//! One member of a streams group (Java's `StreamsMembershipManager` and
//! `StreamsGroupHeartbeatRequestManager`, reduced to a synchronous stream thread's needs): its
//! member id and epoch, the tasks it owns, and its heartbeats to the group coordinator.
//!
//! The member joins with epoch 0 and its topology; the coordinator answers with a new epoch and,
//! when its assignment changed, the member's full sets of active, standby and warm-up tasks. The
//! caller reconciles (revokes what it lost, creates what it gained) and reports what it owns
//! with [`Member::set_owned`]: the next heartbeat, sent at once, acknowledges it, which is what
//! lets the coordinator hand the revoked tasks to their next owner.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::protocol::StrBytes;
use tracing::{debug, info, warn};

use crate::connection::{Connection, GroupError};
use crate::coordinator::find_coordinator;
use crate::messages::streams_group_heartbeat_request::{
    self as request, StreamsGroupHeartbeatRequest, TaskIds, TaskOffset,
};
use crate::messages::streams_group_heartbeat_response::StreamsGroupHeartbeatResponse;
use crate::security::Security;

/// The version of `StreamsGroupHeartbeat` sent (Kafka 4.4 answers 0-1).
pub const HEARTBEAT_VERSION: i16 = 1;

/// Kafka's error codes a member handles itself.
mod codes {
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
    /// Heartbeat statuses (`StreamsGroupHeartbeatResponse.Status`).
    pub const MISSING_INTERNAL_TOPICS: i8 = 3;
    pub const ASSIGNMENT_DELAYED: i8 = 5;
}

/// A task: a sub-topology and a partition (Kafka Streams' `TaskId`, printed `0_3`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    /// The sub-topology's id as the group knows it (its number, as a string).
    pub subtopology: String,
    /// The partition.
    pub partition: i32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// What a member says about itself when it joins.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// The group: the application id.
    pub group_id: String,
    /// The client id of the member's requests (Kafka Streams: `<client>-StreamThread-N-consumer`).
    pub client_id: String,
    /// Static membership: the member's `group.instance.id`.
    pub instance_id: Option<String>,
    /// `client.rack`.
    pub rack_id: Option<String>,
    /// The process (instance) the member's thread belongs to: one id for all its threads.
    pub process_id: String,
    /// `application.server` as host and port.
    pub user_endpoint: Option<(String, u16)>,
    /// How long the coordinator waits for the member to revoke tasks (`max.poll.interval.ms`).
    pub rebalance_timeout_ms: i32,
    /// The topology, as sent on joining.
    pub topology: request::Topology,
    /// Bounds each connect, request and response.
    pub request_timeout: Duration,
    /// How the connections are secured (as the app's other clients).
    pub security: Security,
}

/// The task offsets a member reports (Kafka Streams' task offset sums): per stateful task, the
/// sum over its changelog partitions of the position its local state reflects, and the sum of
/// those changelogs' end offsets; their difference is the task's lag, by which the broker's
/// assignor judges an instance caught up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskOffsets {
    /// Position sums, per task.
    pub offsets: BTreeMap<TaskId, i64>,
    /// End offset sums, per task (only those known).
    pub end_offsets: BTreeMap<TaskId, i64>,
}

/// How often task offsets are reported when the coordinator does not say
/// (`task_offset_interval_ms` in its heartbeat responses; Kafka's default is one minute).
const DEFAULT_TASK_OFFSET_INTERVAL: Duration = Duration::from_secs(60);

/// A member's tasks by kind: what the coordinator assigns, and what the member reports it owns
/// (Java's `StreamsRebalanceData.Assignment`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Tasks the member processes.
    pub active: BTreeSet<TaskId>,
    /// Tasks whose state the member keeps current from their changelogs, to take them over
    /// without a full restore.
    pub standby: BTreeSet<TaskId>,
    /// Tasks whose state the member restores until caught up, after which the coordinator
    /// moves the active task to it; kept like standbys.
    pub warmup: BTreeSet<TaskId>,
}

impl Assignment {
    /// Active tasks only.
    pub fn active(active: BTreeSet<TaskId>) -> Self {
        Assignment {
            active,
            ..Assignment::default()
        }
    }

    /// Whether the member has no task of any kind.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty() && self.standby.is_empty() && self.warmup.is_empty()
    }
}

/// What a heartbeat brought.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing to do.
    Unchanged,
    /// The member's tasks are now these (all of them, not a difference).
    Assigned(Assignment),
    /// The coordinator fenced the member (its epoch is stale or it was removed): its tasks are
    /// lost (close them without committing) and it joins again with its next heartbeat.
    Fenced(GroupError),
}

/// One member of a streams group.
pub struct Member {
    config: MemberConfig,
    member_id: String,
    epoch: i32,
    endpoint_epoch: i32,
    connection: Option<Connection>,
    owned: Assignment,
    /// The tasks the last heartbeat reported; `None` before the first after joining.
    reported: Option<Assignment>,
    interval: Duration,
    last_sent: Option<Instant>,
    statuses: Vec<(i8, String)>,
    /// Task offsets to send with the next heartbeat.
    pending_offsets: Option<TaskOffsets>,
    /// The coordinator's `task_offset_interval_ms`.
    offset_interval: Duration,
    /// When task offsets were last accepted by the coordinator, and which.
    offsets_reported: Option<(Instant, TaskOffsets)>,
}

impl Member {
    /// A member that has not joined yet, with a fresh member id (the client makes it under
    /// KIP-1071).
    pub fn new(config: MemberConfig) -> Self {
        Member {
            config,
            member_id: uuid::Builder::from_random_bytes(random_bytes())
                .into_uuid()
                .to_string(),
            epoch: 0,
            endpoint_epoch: -1,
            connection: None,
            owned: Assignment::default(),
            reported: None,
            interval: Duration::from_secs(5),
            last_sent: None,
            statuses: Vec::new(),
            pending_offsets: None,
            offset_interval: DEFAULT_TASK_OFFSET_INTERVAL,
            offsets_reported: None,
        }
    }

    /// Whether task offsets should be reported with the next heartbeat: the member has joined
    /// and the coordinator's task offset interval has passed since the last report (as Java's
    /// `StreamsGroupHeartbeatRequestManager`, which sends them with the first heartbeat after
    /// the interval).
    pub fn task_offsets_due(&self) -> bool {
        self.epoch > 0
            && self.pending_offsets.is_none()
            && self
                .offsets_reported
                .as_ref()
                .is_none_or(|(t, _)| t.elapsed() >= self.offset_interval)
    }

    /// Reports `offsets` with the next heartbeat (not sent again if unchanged since the last
    /// report: the field is then null, as the protocol asks).
    pub fn report_task_offsets(&mut self, offsets: TaskOffsets) {
        self.pending_offsets = Some(offsets);
    }

    /// How often task offsets are reported: the coordinator's `task_offset_interval_ms`.
    pub fn task_offset_interval(&self) -> Duration {
        self.offset_interval
    }

    /// The task offsets the coordinator last accepted, if any.
    pub fn reported_task_offsets(&self) -> Option<&TaskOffsets> {
        self.offsets_reported.as_ref().map(|(_, o)| o)
    }

    /// The member id.
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The member epoch (0 until the coordinator accepted the member).
    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// The static member's instance id.
    pub fn instance_id(&self) -> Option<&str> {
        self.config.instance_id.as_deref()
    }

    /// The group.
    pub fn group_id(&self) -> &str {
        &self.config.group_id
    }

    /// The statuses the coordinator reported last (code, detail): missing source topics, topics
    /// partitioned wrongly, internal topics being created, a shutdown requested...
    pub fn statuses(&self) -> &[(i8, String)] {
        &self.statuses
    }

    /// Whether a heartbeat is due: joining, acknowledging a new assignment, or the coordinator's
    /// heartbeat interval elapsed.
    pub fn due(&self) -> bool {
        self.epoch == 0
            || self.reported.as_ref() != Some(&self.owned)
            || self.last_sent.is_none_or(|t| t.elapsed() >= self.interval)
    }

    /// Records the tasks the member owns after reconciling an assignment; the next heartbeat
    /// (due at once) reports them.
    pub fn set_owned(&mut self, tasks: Assignment) {
        self.owned = tasks;
    }

    /// The tasks the member owns, as last set with [`Member::set_owned`].
    pub fn owned(&self) -> &Assignment {
        &self.owned
    }

    /// The coordinator's connection, found and opened if there is none.
    fn coordinator(&mut self) -> Result<&mut Connection, GroupError> {
        if self
            .connection
            .as_ref()
            .is_some_and(Connection::session_expired)
        {
            debug!(group = %self.config.group_id, member = %self.member_id, "the SASL session ends: connecting again");
            self.connection = None;
        }
        if self.connection.is_none() {
            let address = find_coordinator(
                &self.config.bootstrap,
                &self.config.group_id,
                &self.config.client_id,
                self.config.request_timeout,
                &self.config.security,
            )?;
            let conn = Connection::connect_with(
                &address,
                &self.config.client_id,
                self.config.request_timeout,
                &self.config.security,
            )?;
            self.connection = Some(conn);
        }
        self.connection
            .as_mut()
            .ok_or_else(|| GroupError::Protocol("no coordinator connection".to_owned()))
    }

    fn request(&self) -> StreamsGroupHeartbeatRequest {
        let c = &self.config;
        let s = |v: &str| StrBytes::from_string(v.to_owned());
        let mut req = StreamsGroupHeartbeatRequest {
            group_id: s(&c.group_id),
            member_id: s(&self.member_id),
            member_epoch: self.epoch,
            endpoint_information_epoch: self.endpoint_epoch,
            instance_id: c.instance_id.as_deref().map(s),
            ..Default::default()
        };
        if self.epoch == 0 {
            req.topology = Some(c.topology.clone());
            req.rebalance_timeout_ms = c.rebalance_timeout_ms;
            req.process_id = Some(s(&c.process_id));
            req.user_endpoint = c
                .user_endpoint
                .as_ref()
                .map(|(host, port)| request::Endpoint {
                    host: s(host),
                    port: *port,
                });
            req.rack_id = c.rack_id.as_deref().map(s);
            req.client_tags = Some(Vec::new());
            req.active_tasks = Some(Vec::new());
            req.standby_tasks = Some(Vec::new());
            req.warmup_tasks = Some(Vec::new());
        } else if self.reported.as_ref() != Some(&self.owned) {
            req.active_tasks = Some(task_ids(&self.owned.active));
            req.standby_tasks = Some(task_ids(&self.owned.standby));
            req.warmup_tasks = Some(task_ids(&self.owned.warmup));
        }
        if self.epoch > 0
            && let Some(offsets) = &self.pending_offsets
            && self.offsets_reported.as_ref().map(|(_, o)| o) != Some(offsets)
        {
            req.task_offsets = Some(task_offsets(&offsets.offsets));
            req.task_end_offsets = Some(task_offsets(&offsets.end_offsets));
        }
        req
    }

    /// Sends a heartbeat and applies the answer. A lost or moved coordinator is an error the
    /// caller retries with the next heartbeat (the coordinator is looked up again); a fenced
    /// member is an [`Outcome::Fenced`].
    pub fn heartbeat(&mut self) -> Result<Outcome, GroupError> {
        let req = self.request();
        let sent_tasks = req.active_tasks.is_some();
        let sent_offsets = if self.epoch > 0 {
            self.pending_offsets.take()
        } else {
            None
        };
        self.last_sent = Some(Instant::now());
        let response = match self
            .coordinator()
            .and_then(|c| c.send(&req, HEARTBEAT_VERSION))
        {
            Ok(r) => r,
            Err(e) => {
                self.connection = None;
                return Err(e);
            }
        };
        let accepted = response.error_code == 0;
        if response.task_offset_interval_ms > 0 {
            self.offset_interval = Duration::from_millis(response.task_offset_interval_ms as u64);
        }
        if accepted && let Some(offsets) = sent_offsets {
            self.offsets_reported = Some((Instant::now(), offsets));
        }
        self.handle(response, sent_tasks)
    }

    fn handle(
        &mut self,
        response: StreamsGroupHeartbeatResponse,
        sent_tasks: bool,
    ) -> Result<Outcome, GroupError> {
        let statuses: Vec<(i8, String)> = response
            .status
            .iter()
            .flatten()
            .map(|s| (s.status_code, s.status_detail.as_str().to_owned()))
            .collect();
        if statuses != self.statuses {
            for (code, detail) in &statuses {
                // Internal topics being created and an assignment delayed on purpose are part of
                // a normal start; the others (a stale topology, source topics missing or
                // partitioned wrongly, a shutdown requested) need the user.
                if matches!(
                    *code,
                    codes::MISSING_INTERNAL_TOPICS | codes::ASSIGNMENT_DELAYED
                ) {
                    info!(group = %self.config.group_id, member = %self.member_id, code, %detail, "the group coordinator reports a status");
                } else {
                    warn!(group = %self.config.group_id, member = %self.member_id, code, %detail, "the group coordinator reports a status");
                }
            }
            self.statuses = statuses;
        }
        match response.error_code {
            0 => {}
            codes::FENCED_MEMBER_EPOCH | codes::UNKNOWN_MEMBER_ID => {
                let error = GroupError::broker(
                    "heartbeat",
                    response.error_code,
                    response.error_message.as_ref(),
                );
                warn!(group = %self.config.group_id, member = %self.member_id, epoch = self.epoch, %error, "fenced by the group coordinator; the member's tasks are lost and it joins again");
                self.epoch = 0;
                self.offsets_reported = None;
                self.owned = Assignment::default();
                self.reported = None;
                return Ok(Outcome::Fenced(error));
            }
            code @ (codes::NOT_COORDINATOR
            | codes::COORDINATOR_NOT_AVAILABLE
            | codes::COORDINATOR_LOAD_IN_PROGRESS) => {
                self.connection = None;
                return Err(GroupError::broker(
                    "heartbeat",
                    code,
                    response.error_message.as_ref(),
                ));
            }
            code => {
                return Err(GroupError::broker(
                    "heartbeat",
                    code,
                    response.error_message.as_ref(),
                ));
            }
        }
        if self.epoch != response.member_epoch {
            debug!(group = %self.config.group_id, member = %self.member_id, from = self.epoch, to = response.member_epoch, "member epoch");
        }
        if self.epoch == 0 {
            info!(group = %self.config.group_id, member = %self.member_id, epoch = response.member_epoch, "joined the streams group");
            self.reported = Some(Assignment::default());
        } else if sent_tasks {
            self.reported = Some(self.owned.clone());
        }
        self.epoch = response.member_epoch;
        self.endpoint_epoch = response.endpoint_information_epoch;
        if response.heartbeat_interval_ms > 0 {
            self.interval = Duration::from_millis(response.heartbeat_interval_ms as u64);
        }
        // All three or none, as Java's StreamsMembershipManager insists.
        match (
            response.active_tasks,
            response.standby_tasks,
            response.warmup_tasks,
        ) {
            (None, None, None) => Ok(Outcome::Unchanged),
            (Some(active), Some(standby), Some(warmup)) => Ok(Outcome::Assigned(Assignment {
                active: task_set(&active),
                standby: task_set(&standby),
                warmup: task_set(&warmup),
            })),
            (active, standby, warmup) => Err(GroupError::Protocol(format!(
                "a heartbeat response must carry the active, standby and warm-up tasks all or none; it carried active: {}, standby: {}, warm-up: {}",
                active.is_some(),
                standby.is_some(),
                warmup.is_some()
            ))),
        }
    }

    /// Leaves the group (epoch -1), or, for a static member, says it will be back (-2) so that
    /// its tasks wait for it; errors are only logged (the session times out anyway).
    pub fn leave(&mut self) {
        if self.epoch == 0 || self.connection.is_none() {
            return;
        }
        let mut req = self.request();
        req.member_epoch = if self.config.instance_id.is_some() {
            -2
        } else {
            -1
        };
        req.topology = None;
        if let Some(conn) = self.connection.as_mut()
            && let Err(e) = conn.send(&req, HEARTBEAT_VERSION)
        {
            warn!(group = %self.config.group_id, member = %self.member_id, error = %e, "leaving the streams group");
        }
        self.epoch = 0;
        self.offsets_reported = None;
        self.owned = Assignment::default();
        self.reported = None;
    }

    /// Commits `offsets` (topic, partition, next offset) as this member at its current epoch.
    pub fn commit_offsets(&mut self, offsets: &[(String, i32, i64)]) -> Result<(), GroupError> {
        let (group, member, epoch) = (
            self.config.group_id.clone(),
            self.member_id.clone(),
            self.epoch,
        );
        let result = self
            .coordinator()
            .and_then(|c| crate::offsets::commit_offsets(c, &group, &member, epoch, offsets));
        if let Err(GroupError::Io { .. }) = &result {
            self.connection = None;
        }
        result
    }
}

/// Tasks grouped by sub-topology, as the heartbeat carries them.
fn task_ids(tasks: &BTreeSet<TaskId>) -> Vec<TaskIds> {
    let mut out: Vec<TaskIds> = Vec::new();
    for t in tasks {
        match out.last_mut() {
            Some(last) if last.subtopology_id.as_str() == t.subtopology => {
                last.partitions.push(t.partition)
            }
            _ => out.push(TaskIds {
                subtopology_id: StrBytes::from_string(t.subtopology.clone()),
                partitions: vec![t.partition],
            }),
        }
    }
    out
}

/// Tasks as the response carries them, by sub-topology.
fn task_set(
    tasks: &[crate::messages::streams_group_heartbeat_response::TaskIds],
) -> BTreeSet<TaskId> {
    tasks
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| TaskId {
                subtopology: t.subtopology_id.as_str().to_owned(),
                partition: *p,
            })
        })
        .collect()
}

/// Task offsets as the heartbeat carries them, by sub-topology and partition.
fn task_offsets(offsets: &BTreeMap<TaskId, i64>) -> Vec<TaskOffset> {
    offsets
        .iter()
        .map(|(t, offset)| TaskOffset {
            subtopology_id: StrBytes::from_string(t.subtopology.clone()),
            partition: t.partition,
            offset: *offset,
        })
        .collect()
}

/// 16 random bytes from the standard library's randomly keyed hasher (no extra crate for an id
/// made once per member).
fn random_bytes() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_grouped_by_subtopology_in_order() {
        let t = |s: &str, p| TaskId {
            subtopology: s.to_owned(),
            partition: p,
        };
        let set: BTreeSet<TaskId> = [t("1", 0), t("0", 2), t("0", 0)].into_iter().collect();
        let ids = task_ids(&set);
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0].subtopology_id.as_str(), "0");
        assert_eq!(ids[0].partitions, vec![0, 2]);
        assert_eq!(ids[1].partitions, vec![0]);
        assert_eq!(t("0", 2).to_string(), "0_2");
    }

    fn member() -> Member {
        Member::new(MemberConfig {
            bootstrap: "127.0.0.1:1".to_owned(),
            group_id: "app".to_owned(),
            client_id: "app-StreamThread-1-consumer".to_owned(),
            instance_id: None,
            rack_id: None,
            process_id: "p".to_owned(),
            user_endpoint: None,
            rebalance_timeout_ms: 300_000,
            topology: request::Topology::default(),
            request_timeout: Duration::from_secs(1),
            security: Security::plaintext(),
        })
    }

    fn response_tasks(
        partitions: &[i32],
    ) -> Option<Vec<crate::messages::streams_group_heartbeat_response::TaskIds>> {
        Some(vec![
            crate::messages::streams_group_heartbeat_response::TaskIds {
                subtopology_id: StrBytes::from_static_str("0"),
                partitions: partitions.to_vec(),
            },
        ])
    }

    #[test]
    fn standby_and_warmup_tasks_are_assigned_and_reported_as_owned() {
        let t = |p| TaskId {
            subtopology: "0".to_owned(),
            partition: p,
        };
        let mut m = member();
        let response = StreamsGroupHeartbeatResponse {
            member_epoch: 3,
            active_tasks: response_tasks(&[0]),
            standby_tasks: response_tasks(&[1, 2]),
            warmup_tasks: response_tasks(&[3]),
            ..Default::default()
        };
        let assignment = match m.handle(response, false) {
            Ok(Outcome::Assigned(a)) => a,
            other => panic!("{other:?}"),
        };
        assert_eq!(assignment.active, [t(0)].into());
        assert_eq!(assignment.standby, [t(1), t(2)].into());
        assert_eq!(assignment.warmup, [t(3)].into());
        m.set_owned(assignment);
        assert!(m.due(), "the new ownership is acknowledged at once");
        let req = m.request();
        let partitions = |ids: Option<Vec<TaskIds>>| -> Vec<i32> {
            ids.into_iter()
                .flatten()
                .flat_map(|t| t.partitions)
                .collect()
        };
        assert_eq!(partitions(req.active_tasks), vec![0]);
        assert_eq!(partitions(req.standby_tasks), vec![1, 2]);
        assert_eq!(partitions(req.warmup_tasks), vec![3]);
    }

    #[test]
    fn a_response_with_some_task_kinds_only_is_refused() {
        let mut m = member();
        let response = StreamsGroupHeartbeatResponse {
            member_epoch: 3,
            active_tasks: response_tasks(&[0]),
            ..Default::default()
        };
        match m.handle(response, false) {
            Err(GroupError::Protocol(text)) => assert!(text.contains("all or none"), "{text}"),
            other => panic!("{other:?}"),
        }
        let response = StreamsGroupHeartbeatResponse {
            member_epoch: 3,
            ..Default::default()
        };
        assert!(matches!(m.handle(response, false), Ok(Outcome::Unchanged)));
    }
}
