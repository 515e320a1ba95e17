//! `StreamsGroupDescribe`: a streams group as its coordinator sees it (members, their tasks, the
//! topology it was initialised with), the request behind `kafka-streams-groups.sh --describe`.

use kafka_protocol::protocol::StrBytes;

use crate::connection::{Connection, GroupError};
use crate::messages::streams_group_describe_request::StreamsGroupDescribeRequest;
use crate::messages::streams_group_describe_response::DescribedGroup;

/// The version of `StreamsGroupDescribe` sent (Kafka 4.4 answers 0-1).
pub const DESCRIBE_VERSION: i16 = 1;

/// Describes `group`, asked of its coordinator at the other end of `conn`.
pub fn describe_group(conn: &mut Connection, group: &str) -> Result<DescribedGroup, GroupError> {
    let request = StreamsGroupDescribeRequest {
        group_ids: vec![StrBytes::from_string(group.to_owned())],
        ..Default::default()
    };
    let response = conn.send(&request, DESCRIBE_VERSION)?;
    let described =
        response.groups.into_iter().next().ok_or_else(|| {
            GroupError::Protocol("StreamsGroupDescribe answered no group".to_owned())
        })?;
    if described.error_code != 0 {
        return Err(GroupError::broker(
            "describing the streams group",
            described.error_code,
            described.error_message.as_ref(),
        ));
    }
    Ok(described)
}
