//! The runtime's errors, classified as librdkafka and Kafka Streams classify them, so that a
//! caller decides on the class — retry, abort the transaction and start over from the last
//! commit, or stop — rather than on a message.

use std::sync::Arc;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::processor::ProcessError;
use crate::state::StateError;

/// What a failure asks of the thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient (a broker away, a leader moving, a timeout): trying again may succeed.
    Retriable,
    /// The open transaction cannot commit (librdkafka's `txn_requires_abort`): abort it and
    /// start again from the last committed offsets; nothing is lost or duplicated.
    Abortable,
    /// The client cannot go on (fenced, unauthorised, misconfigured, librdkafka fatal).
    Fatal,
}

impl ErrorClass {
    /// The class of a Kafka client error: a transactional call's error says it itself; for the
    /// others the code decides.
    pub fn of(error: &KafkaError) -> ErrorClass {
        if let KafkaError::Transaction(e) = error {
            return if e.is_fatal() {
                ErrorClass::Fatal
            } else if e.txn_requires_abort() {
                ErrorClass::Abortable
            } else if e.is_retriable() {
                ErrorClass::Retriable
            } else {
                ErrorClass::Fatal
            };
        }
        if let KafkaError::MessageConsumptionFatal(_) = error {
            return ErrorClass::Fatal;
        }
        match error.rdkafka_error_code() {
            Some(code) => ErrorClass::of_code(code),
            None => ErrorClass::Fatal,
        }
    }

    /// The class of an error the consumer's poll returned. librdkafka reports there what the
    /// Java consumer handles inside `poll` (a broker unreachable, every broker down, a topic not
    /// there yet) and clears by itself once the cause goes: only what cannot clear (the consumer
    /// is fatally failed, authorisation refused, a bad configuration) is fatal.
    pub fn of_consumer(error: &KafkaError) -> ErrorClass {
        use RDKafkaErrorCode as C;
        if let KafkaError::MessageConsumptionFatal(_) = error {
            return ErrorClass::Fatal;
        }
        match error.rdkafka_error_code() {
            Some(
                C::Fatal
                | C::TopicAuthorizationFailed
                | C::GroupAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::SaslAuthenticationFailed
                | C::Authentication
                | C::InvalidConfig
                | C::UnsupportedVersion
                | C::UnsupportedFeature
                | C::InconsistentGroupProtocol
                | C::InvalidGroupId
                | C::FencedInstanceId,
            ) => ErrorClass::Fatal,
            _ => ErrorClass::Retriable,
        }
    }

    /// The class of an error code outside a transactional call.
    pub fn of_code(code: RDKafkaErrorCode) -> ErrorClass {
        use RDKafkaErrorCode as C;
        match code {
            C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::OperationTimedOut
            | C::MessageTimedOut
            | C::RequestTimedOut
            | C::QueueFull
            | C::NotLeaderForPartition
            | C::LeaderNotAvailable
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::NetworkException
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::UnknownTopicOrPartition
            | C::Resolve
            | C::WaitingForCoordinator
            | C::OutOfOrderSequenceNumber => ErrorClass::Retriable,
            C::ProducerFenced
            | C::InvalidProducerEpoch
            | C::Fatal
            | C::TransactionalIdAuthorizationFailed
            | C::TopicAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::Authentication
            | C::UnsupportedVersion
            | C::InvalidConfig => ErrorClass::Fatal,
            _ => ErrorClass::Fatal,
        }
    }
}

/// Whether `error` refuses a record for what it is, which `production.exception.handler` decides
/// on: too large (for the topic, a batch, or the producer), a timestamp out of the topic's
/// bounds, a corrupt or invalid record, or sharing a batch with one.
pub(crate) fn is_refusal(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::MessageBatchTooLarge
                | C::InvalidMessageSize
                | C::InvalidMessage
                | C::InvalidTimestamp
                | C::InvalidRecord
                | C::InvalidDifferentRecord
        )
    )
}

/// A failure of the stream runtime, with its cause.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// A call of a Kafka client failed, with what the runtime was doing.
    #[error("{context}: {source}")]
    Kafka {
        /// What the runtime was doing (`committing`, `polling`, `beginning a transaction`...).
        context: String,
        /// What the error asks of the thread, from [`ErrorClass::of`].
        class: ErrorClass,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// A record the broker refused after it was sent (its delivery report).
    #[error("producing to {topic}-{partition} failed: {source}")]
    Delivery {
        /// The topic the record was sent to.
        topic: String,
        /// Its partition.
        partition: i32,
        /// What the error asks of the thread, from [`ErrorClass::of`].
        class: ErrorClass,
        /// The error the delivery report carried.
        #[source]
        source: KafkaError,
    },
    /// A task's processors or stores failed outside a record (flush, checkpoint, wipe,
    /// punctuation).
    #[error(transparent)]
    Task(#[from] TaskError),
    /// A record failed and its handler says fail.
    #[error(transparent)]
    Record(#[from] super::RecordFailure),
    /// A task's stores could not be opened or restored.
    #[error("task {task}: {source}")]
    Restore {
        /// The task id, `<subtopology>_<partition>`.
        task: String,
        /// Why its stores could not be opened or restored.
        #[source]
        source: RestoreError,
    },
    /// The global tables could not be loaded.
    #[error(transparent)]
    Global(#[from] GlobalError),
    /// A retriable failure went on longer than `task.timeout.ms` (Kafka Streams' task timeout,
    /// KIP-572): the broker stayed away, or kept refusing, for that long.
    #[error(
        "{what} kept failing for {waited_secs} s, longer than task.timeout.ms ({limit_ms} ms); the last error: {source}. Check that the brokers are up and reachable, or raise task.timeout.ms"
    )]
    TaskTimeout {
        /// What the runtime kept trying (`committing offsets`, `committing the transaction`...).
        what: String,
        /// How long it kept failing, in seconds.
        waited_secs: u64,
        /// `task.timeout.ms`.
        limit_ms: u64,
        /// The last failure.
        #[source]
        source: Box<RuntimeError>,
    },
    /// Work retried while the brokers were away was given up because the application is closing.
    #[error("{what} given up: the application is closing; the last error: {source}")]
    Interrupted {
        /// What the runtime was retrying.
        what: String,
        /// The last failure.
        #[source]
        source: Box<RuntimeError>,
    },
    /// A call into the Kafka client did not return long after its own timeout (librdkafka waits
    /// for a group coordinator that is away, confluentinc/librdkafka#5456): the client is
    /// replaced.
    #[error(
        "{what} did not return within {waited_secs} s (librdkafka keeps waiting for a group coordinator that is away)"
    )]
    Unresponsive {
        /// The call given up on.
        what: String,
        /// How long it was waited for, in seconds.
        waited_secs: u64,
    },
    /// The broker refused an operation for want of an ACL: the principal may not do
    /// `operation` on `resource`. Fatal: only a new ACL helps.
    #[error(
        "not authorized: the application's principal may not {operation} {resource} (no ACL allows it; {source}); grant it, as docs/security.md lists the ACLs a Kafka Streams application needs"
    )]
    NotAuthorized {
        /// The operation refused, as `kafka-acls --operation` names it (READ, WRITE...).
        operation: &'static str,
        /// The resource, e.g. `topic 'orders'` or `group 'orders-app'`.
        resource: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// A request of the streams-group protocol (KIP-1071) failed: a heartbeat, an offset commit,
    /// finding the coordinator.
    #[error("{what}: {source}")]
    StreamsGroup {
        /// What the runtime was doing.
        what: String,
        /// Retriable (the coordinator moved or is away) or fatal.
        class: ErrorClass,
        /// The protocol client's error.
        #[source]
        source: std::sync::Arc<freshet_streams_group::GroupError>,
    },
    /// The main consumer's security settings, which the streams-group members' connections
    /// follow, name what they cannot do or a certificate they cannot read.
    #[error("group.protocol=streams: {0}")]
    StreamsGroupSecurity(#[source] std::sync::Arc<freshet_streams_group::SecurityError>),
    /// An admin request failed (describing the group, for `group.protocol=auto`).
    #[error("{what}: {source}")]
    Admin {
        /// What the runtime was doing.
        what: String,
        /// The admin client's error.
        #[source]
        source: std::sync::Arc<freshet_admin::AdminError>,
    },
    /// A failure the runtime describes itself (a missing output topic, transactions that keep
    /// failing, global tables that cannot load).
    #[error("{0}")]
    Other(String),
}

impl RuntimeError {
    /// A failed streams-group request, classed by whether trying again can help.
    pub(crate) fn streams_group(
        what: impl Into<String>,
        source: freshet_streams_group::GroupError,
    ) -> RuntimeError {
        RuntimeError::StreamsGroup {
            what: what.into(),
            class: if source.is_retriable() {
                ErrorClass::Retriable
            } else {
                ErrorClass::Fatal
            },
            source: std::sync::Arc::new(source),
        }
    }

    /// A failed produce to `topic`: a refused authorisation names the ACL it lacks (WRITE on the
    /// topic; IDEMPOTENT_WRITE on the cluster for an idempotent producer on brokers before
    /// Kafka 3.0), anything else is `otherwise`.
    pub(crate) fn producing(
        topic: &str,
        error: KafkaError,
        otherwise: impl FnOnce(KafkaError) -> RuntimeError,
    ) -> RuntimeError {
        let missing = match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::TopicAuthorizationFailed) => {
                Some(("WRITE", format!("topic '{topic}'")))
            }
            Some(RDKafkaErrorCode::ClusterAuthorizationFailed) => {
                Some(("IDEMPOTENT_WRITE", "the cluster".to_owned()))
            }
            _ => None,
        };
        Self::not_authorized_or(missing, error, otherwise)
    }

    /// `NotAuthorized` for the `(operation, resource)` a refused authorisation lacks, else
    /// `otherwise(error)`.
    fn not_authorized_or(
        missing: Option<(&'static str, String)>,
        error: KafkaError,
        otherwise: impl FnOnce(KafkaError) -> RuntimeError,
    ) -> RuntimeError {
        match missing {
            Some((operation, resource)) => RuntimeError::NotAuthorized {
                operation,
                resource,
                source: error,
            },
            None => otherwise(error),
        }
    }

    /// A failed poll of the main consumer of group `group`, reading `topics`: a refused
    /// authorisation names the ACL it lacks, anything else is `otherwise`.
    pub(crate) fn consuming(
        group: &str,
        topics: &[String],
        error: KafkaError,
        otherwise: impl FnOnce(KafkaError) -> RuntimeError,
    ) -> RuntimeError {
        let missing = match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::GroupAuthorizationFailed) => {
                Some(("READ", format!("group '{group}'")))
            }
            Some(RDKafkaErrorCode::TopicAuthorizationFailed) => Some((
                "READ",
                match topics {
                    [one] => format!("topic '{one}'"),
                    _ => format!("one of the topics {}", topics.join(", ")),
                },
            )),
            _ => None,
        };
        Self::not_authorized_or(missing, error, otherwise)
    }
}

/// Why a task's stores could not be opened or restored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RestoreError {
    /// The topology has state stores but `state.dir` could not be set up when the application
    /// was created (see [`KafkaStreams::error`](super::KafkaStreams::error) for why).
    #[error("the topology has state stores but no state directory was set up")]
    NoStateDirectory,
    /// The assignment named a sub-topology id the topology does not have (an assignment made
    /// for another version of the application); holds the id.
    #[error("sub-topology {0} is not in the topology")]
    UnknownSubtopology(usize),
    /// The task directory could not be locked, or a store opened or written.
    #[error("{0}")]
    State(#[source] Arc<StateError>),
    /// A RocksDB store without a checkpoint could not be deleted before it is rebuilt from the
    /// changelog's start (its files may hold anything written up to a crash).
    #[error("removing {path} to restore it: {source}")]
    RemoveStore {
        /// The store's directory.
        path: String,
        /// Why it could not be removed.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The restore consumer (Kafka Streams' restore consumer, `<client id>-restore-consumer`)
    /// could not be created from its librdkafka properties (`restore.consumer.*`, `consumer.*`).
    #[error("creating the restore consumer: {0}")]
    Consumer(#[source] KafkaError),
    /// One store's changelog partition could not be restored; names the store and partition.
    #[error("restoring store '{store}' from {topic}-{partition}: {source}")]
    Store {
        /// The store's name.
        store: String,
        /// Its changelog topic, `<application.id>-<store>-changelog`.
        topic: String,
        /// The changelog partition, the task's partition.
        partition: i32,
        /// What went wrong.
        #[source]
        source: Box<RestoreError>,
    },
    /// The changelog partition's watermarks, where restoration starts and stops, could not be
    /// fetched.
    #[error("reading the changelog's start and end offsets: {0}")]
    EndOffset(#[source] ReadError),
    /// Assigning the changelog partition to the restore consumer, or releasing it.
    #[error("{0}")]
    Assign(#[source] KafkaError),
    /// The changelog could not be read to its end, or a record applied.
    #[error("reading the changelog: {0}")]
    Read(#[source] ReadError),
    /// A store's local state does not fit its changelog (Kafka Streams'
    /// `TaskCorruptedException`). The task's stores are then wiped and restored from the
    /// changelog's start; this error ends the task only when that keeps happening
    /// ([`RestoreError::StillCorrupted`]).
    #[error("{0}")]
    Corrupted(Box<Corruption>),
    /// The task's stores were found corrupted again after each of `wipes` wipes.
    #[error(
        "the local state was wiped {wipes} times and found corrupted again each time; the last: {last}"
    )]
    StillCorrupted {
        /// How many times the task's stores were wiped.
        wipes: usize,
        /// The last corruption found.
        #[source]
        last: Box<Corruption>,
    },
    /// A RocksDB store could not be opened, and wiping it to restore it from its changelog did
    /// not help: the volume is likely read-only or failing.
    #[error("{0}")]
    Unopenable(Box<Unopenable>),
    /// A store without a changelog (`logging: false`) could not be opened: wiping it would lose
    /// its data for good, so it is left as it is.
    #[error(
        "state store '{store}' in {path} cannot be opened: {source}. It has no changelog (logging: false) to restore it from, so Freshet leaves it alone: delete the directory to start the store empty, or fix the volume"
    )]
    UnloggedUnopenable {
        /// The store's name.
        store: String,
        /// Its directory.
        path: String,
        /// Why it could not be opened.
        #[source]
        source: Arc<StateError>,
    },
    /// Under exactly_once_v2 the task's `.checkpoint` is deleted once its stores are restored,
    /// so a crash mid-transaction restores from the changelog again; the delete failed.
    #[error("deleting the checkpoint before processing: {0}")]
    DeleteCheckpoint(#[source] Arc<StateError>),
    /// The thread that restores the task's stores off the stream thread could not be started
    /// (the process is out of threads or memory: see `ulimit -u` and the pod's limits).
    #[error("starting the task's restore thread: {0}")]
    Spawn(#[source] Arc<std::io::Error>),
}

impl From<StateError> for RestoreError {
    fn from(e: StateError) -> Self {
        RestoreError::State(Arc::new(e))
    }
}

/// A store RocksDB could not open, even after it was wiped (or could not be wiped).
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "state store '{store}' in {path} cannot be opened ({first}); {then}: {source}. The state volume may be read-only or failing: check it (kernel log, mount options), or give this instance a new volume; the store is restored from its changelog there"
)]
pub struct Unopenable {
    /// The store's name.
    pub store: String,
    /// Its directory.
    pub path: String,
    /// Why it could not be opened the first time.
    pub first: Arc<StateError>,
    /// What was tried next: wiping it, or opening it again once wiped.
    pub then: &'static str,
    /// Why that failed.
    #[source]
    pub source: Arc<StateError>,
}

/// Partitions that were not read to their end because nothing arrived for too long.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no progress for {seconds}s ({limit_name}); still to read: {left}{}", last_error.as_ref().map_or_else(String::new, |e| format!("; last error: {e}")))]
pub struct Stall {
    /// How long nothing was read, in seconds.
    pub seconds: u64,
    /// What set the limit (`task.timeout.ms`).
    pub limit_name: &'static str,
    /// The partitions not read to their end, as `<topic>-<partition> up to offset <end>`.
    pub left: String,
    /// The last (transient) client error seen meanwhile, if any: usually why.
    pub last_error: Option<String>,
}

/// Why a store's local state cannot be trusted, as Kafka Streams' `TaskCorruptedException` says
/// of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorruptionReason {
    /// The checkpoint names an offset at or past the changelog's end: the changelog was
    /// truncated, or deleted and recreated, since the checkpoint was written.
    CheckpointBeyondEnd,
    /// Records the store still needs were deleted from the changelog (its start moved past the
    /// checkpoint, or the broker answered `OFFSET_OUT_OF_RANGE` while restoring).
    OffsetOutOfRange,
}

impl CorruptionReason {
    /// The `reason` label of `freshet_task_corrupted_total`.
    pub fn label(self) -> &'static str {
        match self {
            CorruptionReason::CheckpointBeyondEnd => "checkpoint_beyond_changelog_end",
            CorruptionReason::OffsetOutOfRange => "offset_out_of_range",
        }
    }
}

/// A store whose local state does not fit its changelog partition.
#[derive(Clone, Debug, thiserror::Error)]
#[error(
    "store '{store}': {}; changelog {topic}-{partition} holds offsets {start} to {end} (end exclusive){}",
    checkpointed.map_or_else(|| "restoring from the changelog's start".to_owned(), |c| format!("its checkpoint says offset {c}")),
    match reason {
        CorruptionReason::CheckpointBeyondEnd => ": the checkpoint is beyond the changelog's end (truncated or recreated)",
        CorruptionReason::OffsetOutOfRange => ": records the store needs were deleted from the changelog (offset out of range)",
    }
)]
pub struct Corruption {
    /// The store's name.
    pub store: String,
    /// Its changelog topic.
    pub topic: String,
    /// The changelog partition, the task's partition.
    pub partition: i32,
    /// The offset the checkpoint says the store reflects (`None`: restoring from the start).
    pub checkpointed: Option<i64>,
    /// The changelog partition's start (low watermark) when it was found.
    pub start: i64,
    /// Its end (high watermark, exclusive).
    pub end: i64,
    /// Which of the two.
    pub reason: CorruptionReason,
}

/// Why partitions could not be read to their end (a changelog, or a global table's topic).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// The consumer returned an error while polling.
    #[error("{0}")]
    Consume(#[source] KafkaError),
    /// The consumer's position stopped moving before the end offsets were reached, for longer
    /// than the limit (for restoration `task.timeout.ms`); transient client errors meanwhile
    /// were waited out.
    #[error("{0}")]
    Stalled(Box<Stall>),
    /// A request kept failing with a transient error (the broker away) for longer than the limit.
    #[error("the broker did not answer for {seconds}s ({limit_name}): {source}")]
    TimedOut {
        /// How long it was tried, in seconds.
        seconds: u64,
        /// What set the limit (`task.timeout.ms`).
        limit_name: &'static str,
        /// The last error (boxed: a client error is large, and this one rare).
        #[source]
        source: Box<KafkaError>,
    },
    /// A record read could not be applied to its store.
    #[error("{0}")]
    Apply(#[source] Arc<StateError>),
}

/// Why the global tables could not be loaded, or their thread started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GlobalError {
    /// The global consumer (Kafka Streams' `<client id>-global-consumer`) could not be created
    /// from its librdkafka properties (`global.consumer.*`, `consumer.*`).
    #[error("creating the global consumer: {0}")]
    Consumer(#[source] KafkaError),
    /// The metadata of a global table's topic could not be fetched.
    #[error("global table topic {topic}: {source}")]
    Metadata {
        /// The global table's source topic.
        topic: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// A global table's topic does not exist or has no partitions; holds the topic. The runtime
    /// does not create source topics, global ones included.
    #[error("global table topic '{0}' does not exist: create it first")]
    MissingTopic(String),
    /// A partition's watermarks, which bound the initial load, could not be fetched.
    #[error("global table topic {topic}-{partition}: {source}")]
    Watermarks {
        /// The global table's source topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// Assigning the topics' partitions to the global consumer.
    #[error("{0}")]
    Assign(#[source] KafkaError),
    /// The topics could not be read to their end before the stream threads start.
    #[error("loading global tables: {0}")]
    Load(#[source] ReadError),
    /// The OS refused to start the global thread (Kafka Streams' `GlobalStreamThread`), which
    /// keeps the tables up to date after the load.
    #[error("starting the global thread: {0}")]
    Spawn(#[source] Arc<std::io::Error>),
}

/// A task's processors or stores failed, naming the node, store or task.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TaskError {
    /// A processor failed on a record, on what another forwarded to it, or on a flush.
    #[error("{node}: {source}")]
    Process {
        /// The processor node's name (`KSTREAM-MAP-0000000001`, or the one it was given).
        node: String,
        /// The processor's error.
        #[source]
        source: ProcessError,
    },
    /// A processor's punctuation (a `Punctuator` it scheduled) failed.
    #[error("{node} (punctuation): {source}")]
    Punctuate {
        /// The processor node's name.
        node: String,
        /// The processor's error.
        #[source]
        source: ProcessError,
    },
    /// A store failed (writing a record cache out).
    #[error("{0}")]
    Store(#[source] Arc<StateError>),
    /// The stores could not be flushed or the task's `.checkpoint` file written.
    #[error("checkpoint: {0}")]
    Checkpoint(#[source] Arc<StateError>),
    /// A dirty close (Kafka Streams' handling of a `TaskCorruptedException` under exactly-once)
    /// could not delete the task's local stores.
    #[error("wiping its stores: {0}")]
    Wipe(#[source] Arc<StateError>),
    /// One of the above outside record processing, with the task it happened in.
    #[error("task {task}: {source}")]
    InTask {
        /// The task id, `<subtopology>_<partition>`.
        task: String,
        /// The error.
        #[source]
        source: Box<TaskError>,
    },
}

impl TaskError {
    /// This error, naming the task `task`.
    pub fn in_task(self, task: &str) -> TaskError {
        TaskError::InTask {
            task: task.to_owned(),
            source: Box::new(self),
        }
    }
}

impl RuntimeError {
    /// A Kafka client error while doing `context`, classified.
    pub fn kafka(context: impl Into<String>, source: KafkaError) -> Self {
        RuntimeError::Kafka {
            context: context.into(),
            class: ErrorClass::of(&source),
            source,
        }
    }

    /// Whether the broker or the producer refused a record for what it is (too large, an invalid
    /// timestamp): `production.exception.handler` decides on it, and under exactly_once_v2 the
    /// transaction it broke is aborted and replayed without it.
    pub fn is_refusal(&self) -> bool {
        matches!(self, RuntimeError::Delivery { source, .. } if is_refusal(source))
    }

    /// What the failure asks of the thread; errors outside the Kafka clients are fatal.
    pub fn class(&self) -> ErrorClass {
        match self {
            RuntimeError::Kafka { class, .. }
            | RuntimeError::Delivery { class, .. }
            | RuntimeError::StreamsGroup { class, .. } => *class,
            _ => ErrorClass::Fatal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_are_retriable_and_fencing_is_fatal() {
        let transport = KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure);
        assert_eq!(ErrorClass::of(&transport), ErrorClass::Retriable);
        let down = KafkaError::MessageProduction(RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(ErrorClass::of(&down), ErrorClass::Retriable);
        let fenced = KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced);
        assert_eq!(ErrorClass::of(&fenced), ErrorClass::Fatal);
        let fatal = KafkaError::MessageConsumptionFatal(RDKafkaErrorCode::BrokerTransportFailure);
        assert_eq!(ErrorClass::of(&fatal), ErrorClass::Fatal);
        assert_eq!(
            ErrorClass::of_consumer(&KafkaError::MessageConsumption(
                RDKafkaErrorCode::AllBrokersDown
            )),
            ErrorClass::Retriable
        );
        assert_eq!(
            ErrorClass::of_consumer(&KafkaError::MessageConsumption(
                RDKafkaErrorCode::TopicAuthorizationFailed
            )),
            ErrorClass::Fatal
        );
        let e = RuntimeError::kafka("consuming", transport);
        assert_eq!(e.class(), ErrorClass::Retriable);
        assert!(e.to_string().starts_with("consuming: "), "{e}");
        assert!(std::error::Error::source(&e).is_some(), "the cause is kept");
    }

    #[test]
    fn task_errors_name_the_task_and_node_and_keep_the_cause() {
        let e = TaskError::Process {
            node: "KSTREAM-MAP-0000000001".into(),
            source: ProcessError::new("boom"),
        }
        .in_task("0_1");
        assert_eq!(e.to_string(), "task 0_1: KSTREAM-MAP-0000000001: boom");
        let inner = std::error::Error::source(&e).expect("the node's error is kept");
        assert!(
            std::error::Error::source(inner).is_some(),
            "and the processor's"
        );
        let r = RuntimeError::from(e);
        assert_eq!(r.class(), ErrorClass::Fatal);
        assert_eq!(r.to_string(), "task 0_1: KSTREAM-MAP-0000000001: boom");
    }
}
