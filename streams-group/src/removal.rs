//! Removing members that will not come back: what `kafka-consumer-groups --delete ... --members`
//! and Java's `Admin.removeMembersFromConsumerGroup` do for classic groups, for a streams group.
//!
//! A static member (one with a `group.instance.id`, as each pod of a StatefulSet is) that closes
//! leaves with epoch -2: the coordinator keeps its tasks for it until its session times out, so
//! that a restarted pod finds them again. A pod removed by a scale-down never comes back, and its
//! tasks would wait out the whole session timeout (45 s by default). Whoever knows it is gone —
//! the operator, once the pod no longer exists — removes it with a heartbeat of epoch -1 in its
//! name, and the coordinator moves its tasks at once (to their standbys where there are some).

use kafka_protocol::protocol::StrBytes;

use crate::connection::{Connection, GroupError};
use crate::heartbeat::HEARTBEAT_VERSION;
use crate::messages::streams_group_heartbeat_request::StreamsGroupHeartbeatRequest;

/// The epoch of a heartbeat that leaves the group for good (Kafka's `LEAVE_GROUP_MEMBER_EPOCH`).
const LEAVE_FOR_GOOD: i32 = -1;
/// The member is not in the group (any more).
const UNKNOWN_MEMBER_ID: i16 = 25;
/// The instance id now belongs to another member: the instance came back meanwhile.
const FENCED_INSTANCE_ID: i16 = 82;

/// What became of one member asked to be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The coordinator removed it; its tasks are assigned anew.
    Removed,
    /// It was not in the group any more (its session had expired, or it was removed before).
    AlreadyGone,
    /// Its instance id belongs to a newer member: the instance came back, and is left alone.
    CameBack,
}

/// Removes the member `member_id` (static instance `instance_id`, if any) from streams group
/// `group`, asking its coordinator at the other end of `conn`.
pub fn remove_member(
    conn: &mut Connection,
    group: &str,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<Removal, GroupError> {
    let s = |v: &str| StrBytes::from_string(v.to_owned());
    let request = StreamsGroupHeartbeatRequest {
        group_id: s(group),
        member_id: s(member_id),
        member_epoch: LEAVE_FOR_GOOD,
        instance_id: instance_id.map(s),
        ..Default::default()
    };
    let response = conn.send(&request, HEARTBEAT_VERSION)?;
    match response.error_code {
        0 => Ok(Removal::Removed),
        UNKNOWN_MEMBER_ID => Ok(Removal::AlreadyGone),
        FENCED_INSTANCE_ID => Ok(Removal::CameBack),
        code => Err(GroupError::broker(
            "removing a member of the streams group",
            code,
            response.error_message.as_ref(),
        )),
    }
}
