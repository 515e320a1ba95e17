//! Describing a consumer group: its state and active members, as `kafka-consumer-groups
//! --describe --members` shows them. librdkafka's DescribeConsumerGroups asks the coordinator
//! with the API of the group's protocol (DescribeGroups for a classic group,
//! ConsumerGroupDescribe for a `group.protocol=consumer` one), so active members are found
//! either way. The rdkafka crate does not wrap this call; it is made through its bindings.
//!
//! A streams group (KIP-1071, `group.protocol=streams`) is none of those: librdkafka reports it
//! as not found, so a group it calls `Dead` is asked again with `StreamsGroupDescribe`
//! (`freshet-streams-group`), lest a reset run under active streams members.

use std::ffi::{CStr, CString, c_char};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;

use crate::AdminError;

/// A group's state and members, as the coordinator reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupDescription {
    /// The state as Kafka names it: `Empty`, `Stable`, `PreparingRebalance`,
    /// `CompletingRebalance`, `Dead` (also a group that does not exist) or `Unknown`.
    pub state: String,
    /// The active members: `client.id@host (member id)` each.
    pub members: Vec<String>,
    /// Which kind of group the coordinator holds under this name.
    pub kind: GroupKind,
}

/// The kind of group a coordinator holds under a name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GroupKind {
    /// No group by this name (or a dead one).
    #[default]
    Absent,
    /// A group of the `classic` or `consumer` protocol: its members, or the offsets that
    /// members of it committed, are there.
    Consumer,
    /// A streams group (KIP-1071).
    Streams,
}

impl GroupDescription {
    /// Whether the group has active members, which a reset must not run under (they would
    /// commit over the reset offsets and recreate the deleted topics).
    pub fn is_active(&self) -> bool {
        !self.members.is_empty()
    }
}

/// Text of a C string librdkafka owns, or empty.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that outlives the call.
unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: non-null and NUL-terminated, as the caller promises.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// Describes the group `group` through `admin`'s connection, waiting at most `timeout`; a
/// streams group (KIP-1071, which librdkafka does not describe) through Freshet's client,
/// secured as `security` (the admin client's properties) says.
pub fn describe_group(
    admin: &AdminClient<DefaultClientContext>,
    bootstrap: &str,
    group: &str,
    timeout: Duration,
    security: &[(String, String)],
) -> Result<GroupDescription, AdminError> {
    let unreachable = |message: String| AdminError::Unreachable {
        bootstrap: bootstrap.to_owned(),
        message: format!("describing group '{group}': {message}"),
    };
    let name = CString::new(group).map_err(|e| unreachable(e.to_string()))?;
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    let rk = admin.inner().native_ptr();
    // SAFETY: every pointer passed is valid for the call (the client outlives this function,
    // `name` outlives the request, which copies it); everything created here is destroyed
    // here, and the result's strings are copied out before the event that owns them is.
    unsafe {
        let queue = rd::rd_kafka_queue_new(rk);
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS,
        );
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let mut groups = [name.as_ptr()];
        rd::rd_kafka_DescribeConsumerGroups(rk, groups.as_mut_ptr(), 1, options, queue);
        // The request's own timeout answers first; the margin covers the queueing.
        let event = rd::rd_kafka_queue_poll(queue, ms.saturating_add(5_000));
        let outcome = if event.is_null() {
            Err(unreachable(format!("no answer within {timeout:?}")))
        } else {
            let code = rd::rd_kafka_event_error(event);
            if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                Err(unreachable(text(rd::rd_kafka_event_error_string(event))))
            } else {
                let result = rd::rd_kafka_event_DescribeConsumerGroups_result(event);
                let mut count = 0usize;
                let descriptions =
                    rd::rd_kafka_DescribeConsumerGroups_result_groups(result, &mut count);
                if descriptions.is_null() || count == 0 {
                    Err(unreachable("the answer holds no group".to_owned()))
                } else {
                    describe_one(*descriptions, group, &unreachable)
                }
            }
        };
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_queue_destroy(queue);
        match outcome {
            Ok(d) if d.state == "Dead" && d.members.is_empty() => {
                Ok(describe_streams_group(bootstrap, group, timeout, security).unwrap_or(d))
            }
            other => other,
        }
    }
}

/// The streams group `group`, if there is one: `None` when the coordinator knows no streams
/// group by that name or cannot be asked (a broker before Kafka 4.2, or security settings the
/// streams-group client cannot use — then a warning says so). `security` is the client's
/// properties, which the streams-group connection follows (TLS, SASL).
fn describe_streams_group(
    bootstrap: &str,
    group: &str,
    timeout: Duration,
    security: &[(String, String)],
) -> Option<GroupDescription> {
    use freshet_streams_group::{Connection, Security, coordinator, describe};
    const GROUP_ID_NOT_FOUND: i16 = 69;
    let client = "freshet-admin";
    let security = match Security::from_properties(
        security.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(group, error = %e, "could not ask for a streams group of this name (KIP-1071); taking the group as empty");
            return None;
        }
    };
    let described = coordinator::find_coordinator(bootstrap, group, client, timeout, &security)
        .and_then(|address| Connection::connect_with(&address, client, timeout, &security))
        .and_then(|mut conn| describe::describe_group(&mut conn, group));
    match described {
        Ok(g) => Some(GroupDescription {
            state: g.group_state.as_str().to_owned(),
            members: g
                .members
                .iter()
                .map(|m| {
                    format!(
                        "{}@{} ({})",
                        m.client_id.as_str(),
                        m.client_host.as_str(),
                        m.member_id.as_str()
                    )
                })
                .collect(),
            kind: GroupKind::Streams,
        }),
        Err(e) if e.code() == Some(GROUP_ID_NOT_FOUND) => None,
        Err(e) => {
            tracing::warn!(group, error = %e, "could not ask for a streams group of this name (KIP-1071); taking the group as empty");
            None
        }
    }
}

/// The description `d` holds.
///
/// # Safety
/// `d` is a valid group description owned by a live result event.
unsafe fn describe_one(
    d: *const rd::rd_kafka_ConsumerGroupDescription_t,
    group: &str,
    unreachable: &dyn Fn(String) -> AdminError,
) -> Result<GroupDescription, AdminError> {
    // SAFETY: `d` is valid, as the caller promises; the strings are copied out.
    unsafe {
        let error = rd::rd_kafka_ConsumerGroupDescription_error(d);
        if !error.is_null() {
            let code = rd::rd_kafka_error_code(error);
            return match code {
                // A group that does not exist has no members.
                rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND => {
                    Ok(GroupDescription {
                        state: "Dead".to_owned(),
                        members: Vec::new(),
                        kind: GroupKind::Absent,
                    })
                }
                rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED => {
                    Err(AdminError::NotAuthorized {
                        operation: "DESCRIBE",
                        resource: format!("group '{group}'"),
                    })
                }
                _ => Err(unreachable(text(rd::rd_kafka_error_string(error)))),
            };
        }
        use rd::rd_kafka_consumer_group_state_t as S;
        let state = match rd::rd_kafka_ConsumerGroupDescription_state(d) {
            S::RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY => "Empty",
            S::RD_KAFKA_CONSUMER_GROUP_STATE_STABLE => "Stable",
            S::RD_KAFKA_CONSUMER_GROUP_STATE_PREPARING_REBALANCE => "PreparingRebalance",
            S::RD_KAFKA_CONSUMER_GROUP_STATE_COMPLETING_REBALANCE => "CompletingRebalance",
            S::RD_KAFKA_CONSUMER_GROUP_STATE_DEAD => "Dead",
            _ => "Unknown",
        }
        .to_owned();
        let members = (0..rd::rd_kafka_ConsumerGroupDescription_member_count(d))
            .map(|i| {
                let m = rd::rd_kafka_ConsumerGroupDescription_member(d, i);
                format!(
                    "{}@{} ({})",
                    text(rd::rd_kafka_MemberDescription_client_id(m)),
                    text(rd::rd_kafka_MemberDescription_host(m)),
                    text(rd::rd_kafka_MemberDescription_consumer_id(m)),
                )
            })
            .collect();
        let kind = if state == "Dead" {
            GroupKind::Absent
        } else {
            GroupKind::Consumer
        };
        Ok(GroupDescription {
            state,
            members,
            kind,
        })
    }
}
