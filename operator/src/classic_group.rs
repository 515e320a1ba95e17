//! A classic consumer group's static members, and their removal: the two requests behind
//! Kafka's `Admin.removeMembersFromConsumerGroup` (`DescribeGroups`, then `LeaveGroup` naming
//! the members by `group.instance.id`), for the app's instances under `group.protocol=classic`
//! (or `auto` on brokers without streams groups). Why the operator removes members:
//! [`crate::group`]. librdkafka's static members send no `LeaveGroup` when they close, so
//! their partitions wait for them for `session.timeout.ms`.
//!
//! Every call blocks, over one connection to the group's coordinator.

use freshet_streams_group::{Connection, GroupError};
use kafka_protocol::messages::GroupId;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::protocol::StrBytes;

/// A member of a classic group, as `DescribeGroups` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicMember {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its static instance id, when it has one.
    pub instance_id: Option<String>,
    /// The host it connected from.
    pub client_host: String,
}

/// `DescribeGroups` v5: members carry their `group_instance_id` (v4+), flexible encoding.
const DESCRIBE_VERSION: i16 = 5;
/// `LeaveGroup` v4: members named by instance id (v3+), flexible encoding.
const LEAVE_VERSION: i16 = 4;
/// The member is not in the group (any more).
const UNKNOWN_MEMBER_ID: i16 = 25;
/// The group does not exist: nothing to remove.
const GROUP_ID_NOT_FOUND: i16 = 69;

/// The members of classic group `group`. A group that does not exist, or is not a consumer
/// group, has none.
pub fn members(conn: &mut Connection, group: &str) -> Result<Vec<ClassicMember>, GroupError> {
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
    let response = conn.send(&request, DESCRIBE_VERSION)?;
    let Some(described) = response.groups.into_iter().next() else {
        return Ok(Vec::new());
    };
    match described.error_code {
        0 => {}
        GROUP_ID_NOT_FOUND => return Ok(Vec::new()),
        code => {
            return Err(GroupError::broker(
                "describing the consumer group",
                code,
                described.error_message.as_ref(),
            ));
        }
    }
    // An empty or dead group describes with no protocol type; a streams group is not one.
    if !described.protocol_type.is_empty() && described.protocol_type.as_str() != "consumer" {
        return Ok(Vec::new());
    }
    Ok(described
        .members
        .iter()
        .map(|m| ClassicMember {
            member_id: m.member_id.as_str().to_owned(),
            instance_id: m.group_instance_id.as_ref().map(|i| i.as_str().to_owned()),
            client_host: m.client_host.as_str().to_owned(),
        })
        .collect())
}

/// Removes the static members holding `instances` from classic group `group` in one
/// `LeaveGroup`; for each, in order, whether it was removed (`false`: it was not a member any
/// more).
pub fn remove(
    conn: &mut Connection,
    group: &str,
    instances: &[&str],
) -> Result<Vec<bool>, GroupError> {
    let s = |v: &str| StrBytes::from_string(v.to_owned());
    let request = LeaveGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_members(
            instances
                .iter()
                .map(|instance| {
                    // Named by instance id alone, as Kafka's admin client does: the
                    // coordinator removes whichever member holds it now.
                    MemberIdentity::default()
                        .with_member_id(StrBytes::default())
                        .with_group_instance_id(Some(s(instance)))
                })
                .collect(),
        );
    let response = conn.send(&request, LEAVE_VERSION)?;
    if response.error_code != 0 {
        return Err(GroupError::broker(
            "removing members of the consumer group",
            response.error_code,
            None,
        ));
    }
    instances
        .iter()
        .map(|instance| {
            let answer = response
                .members
                .iter()
                .find(|r| r.group_instance_id.as_ref().map(|i| i.as_str()) == Some(*instance));
            match answer.map(|r| r.error_code) {
                Some(0) => Ok(true),
                Some(UNKNOWN_MEMBER_ID) | None => Ok(false),
                Some(code) => Err(GroupError::broker(
                    "removing a member of the consumer group",
                    code,
                    None,
                )),
            }
        })
        .collect()
}
