//! Whether the brokers run streams groups: `ApiVersions` lists `StreamsGroupHeartbeat` (API key
//! 88) only when the streams-group protocol is enabled (Kafka 4.2+ with the `streams.version`
//! feature), which is how `group.protocol=auto` chooses.

use std::time::Duration;

use kafka_protocol::messages::ApiVersionsRequest;
use kafka_protocol::protocol::StrBytes;

use crate::connection::{Connection, GroupError};
use crate::security::Security;

/// `StreamsGroupHeartbeat`'s API key.
pub const STREAMS_GROUP_HEARTBEAT_KEY: i16 = 88;

/// The `ApiVersions` version sent: 3, the first with the client's software name (brokers
/// answer every version up to their own with their full list).
const API_VERSIONS_VERSION: i16 = 3;

/// The versions of `StreamsGroupHeartbeat` the first reachable broker of `bootstrap` supports
/// (min, max), or `None` when it lists none: streams groups are not available there.
pub fn streams_group_versions(
    bootstrap: &str,
    client_id: &str,
    timeout: Duration,
    security: &Security,
) -> Result<Option<(i16, i16)>, GroupError> {
    let mut conn = Connection::connect_first(bootstrap, client_id, timeout, security)?;
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("freshet"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    let response = conn.send(&request, API_VERSIONS_VERSION)?;
    if response.error_code != 0 {
        return Err(GroupError::broker("ApiVersions", response.error_code, None));
    }
    Ok(response
        .api_keys
        .iter()
        .find(|k| k.api_key == STREAMS_GROUP_HEARTBEAT_KEY)
        .map(|k| (k.min_version, k.max_version)))
}
