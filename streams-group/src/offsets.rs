//! Offset commits as a member of a streams group: `OffsetCommit` v9 carrying the member id and
//! epoch, which the group coordinator checks against the member's current ones (a commit with
//! epoch -1 is refused while the group has members). librdkafka knows nothing of streams groups
//! and would commit with no member, so the member's commits go through here.

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::connection::{Connection, GroupError};

/// The version of `OffsetCommit` sent: 9, the last naming topics (10 takes topic ids), and the
/// first whose member epoch a KIP-848/KIP-1071 coordinator checks.
pub const OFFSET_COMMIT_VERSION: i16 = 9;

/// Commits `offsets` (topic, partition, next offset to read) for `group` as member `member_id`
/// at `member_epoch`. The first partition the broker refuses fails the whole commit.
pub fn commit_offsets(
    conn: &mut Connection,
    group: &str,
    member_id: &str,
    member_epoch: i32,
    offsets: &[(String, i32, i64)],
) -> Result<(), GroupError> {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset) in offsets {
        let entry = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(-1);
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_generation_id_or_member_epoch(member_epoch)
        .with_member_id(StrBytes::from_string(member_id.to_owned()))
        .with_topics(topics);
    let response = conn.send(&request, OFFSET_COMMIT_VERSION)?;
    for topic in &response.topics {
        for p in &topic.partitions {
            if p.error_code != 0 {
                return Err(GroupError::broker("committing offsets", p.error_code, None));
            }
        }
    }
    Ok(())
}
