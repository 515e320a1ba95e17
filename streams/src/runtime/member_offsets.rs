//! Consumed offsets sent to a transaction as a member of a streams group (exactly_once_v2 with
//! group.protocol=streams).
//!
//! The transaction's `TxnOffsetCommit` must carry the member id and epoch the group coordinator
//! knows (KIP-447 fencing: a member that lost its tasks cannot commit for them). The consumer's
//! own group metadata has neither (it is in no group: the thread's streams-group member is), so
//! the metadata is made with librdkafka's `rd_kafka_consumer_group_metadata_new_with_genid`
//! from the member's id and epoch, and passed to `rd_kafka_send_offsets_to_transaction`, which
//! the rdkafka crate only offers for metadata a consumer made.

use std::ffi::CString;
use std::time::Duration;

use rdkafka::TopicPartitionList;
use rdkafka::bindings as rd;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use super::error::{ErrorClass, RuntimeError};

/// Who commits: the thread's streams-group member, as the coordinator knows it now.
#[derive(Clone, Debug)]
pub(crate) struct MemberIdentity {
    /// The group (the application id).
    pub group_id: String,
    /// The member id.
    pub member_id: String,
    /// The member epoch (librdkafka's generation id).
    pub epoch: i32,
    /// The static member's instance id.
    pub instance_id: Option<String>,
}

/// Sends `offsets` to the producer's open transaction as `member`.
pub(crate) fn send_offsets<C: ProducerContext>(
    producer: &BaseProducer<C>,
    offsets: &TopicPartitionList,
    member: &MemberIdentity,
    timeout: Duration,
) -> Result<(), RuntimeError> {
    const WHAT: &str =
        "sending the consumed offsets to the transaction as the streams-group member";
    let text = |v: &str| {
        CString::new(v).map_err(|_| RuntimeError::Other(format!("{WHAT}: `{v}` holds a NUL byte")))
    };
    let group = text(&member.group_id)?;
    let member_id = text(&member.member_id)?;
    let instance = member.instance_id.as_deref().map(text).transpose()?;
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the strings are NUL-terminated and outlive the calls; librdkafka copies them into
    // the metadata, which is destroyed below after the call that reads it; the producer's handle
    // and the partition list are valid while borrowed; an error returned is read, then destroyed.
    unsafe {
        let metadata = rd::rd_kafka_consumer_group_metadata_new_with_genid(
            group.as_ptr(),
            member.epoch,
            member_id.as_ptr(),
            instance.as_ref().map_or(std::ptr::null(), |i| i.as_ptr()),
        );
        if metadata.is_null() {
            return Err(RuntimeError::Other(format!(
                "{WHAT}: librdkafka made no group metadata"
            )));
        }
        let error = rd::rd_kafka_send_offsets_to_transaction(
            producer.client().native_ptr(),
            offsets.ptr(),
            metadata,
            timeout_ms,
        );
        rd::rd_kafka_consumer_group_metadata_destroy(metadata);
        if error.is_null() {
            return Ok(());
        }
        let code = RDKafkaErrorCode::from(rd::rd_kafka_error_code(error));
        let class = if rd::rd_kafka_error_is_fatal(error) != 0 {
            ErrorClass::Fatal
        } else if rd::rd_kafka_error_txn_requires_abort(error) != 0 {
            ErrorClass::Abortable
        } else if rd::rd_kafka_error_is_retriable(error) != 0 {
            ErrorClass::Retriable
        } else {
            ErrorClass::Fatal
        };
        rd::rd_kafka_error_destroy(error);
        Err(RuntimeError::Kafka {
            context: WHAT.to_owned(),
            class,
            source: KafkaError::ConsumerCommit(code),
        })
    }
}
