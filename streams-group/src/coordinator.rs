//! Finding a group's coordinator (`FindCoordinator`, key type group), as every group member does
//! before its first heartbeat and again when the coordinator moves.

use std::time::Duration;

use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use crate::connection::{Connection, GroupError};
use crate::security::Security;

/// The `host:port` of the coordinator of `group`, asked of the first reachable broker of
/// `bootstrap` (a comma-separated list, as `bootstrap.servers`) over connections secured with
/// `security`.
pub fn find_coordinator(
    bootstrap: &str,
    group: &str,
    client_id: &str,
    timeout: Duration,
    security: &Security,
) -> Result<String, GroupError> {
    let mut conn = Connection::connect_first(bootstrap, client_id, timeout, security)?;
    ask(&mut conn, group)
}

/// Asks the broker at the other end of `conn` where `group`'s coordinator is.
pub fn ask(conn: &mut Connection, group: &str) -> Result<String, GroupError> {
    // Version 4+ asks for a batch of keys; one key here.
    let request = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![StrBytes::from_string(group.to_owned())]);
    let response = conn.send(&request, 4)?;
    let coordinator = response.coordinators.into_iter().next().ok_or_else(|| {
        GroupError::Protocol("FindCoordinator answered no coordinator".to_owned())
    })?;
    if coordinator.error_code != 0 {
        return Err(GroupError::broker(
            "finding the group coordinator",
            coordinator.error_code,
            coordinator.error_message.as_ref(),
        ));
    }
    let address = format!("{}:{}", coordinator.host.as_str(), coordinator.port);
    debug!(group, %address, node = coordinator.node_id.0, "group coordinator found");
    Ok(address)
}
