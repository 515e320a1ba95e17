//! Why a stream thread's loop stops, and how it goes on: the failure classes the thread's
//! recovery (`StreamThread::recover`, Kafka Streams' handling of a corrupted task) is decided
//! on, from a Kafka client error's [`ErrorClass`] and the processing guarantee.

use super::error::{ErrorClass, RuntimeError, TaskError};

/// Why the thread's loop stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Stops the thread, and with it the application.
    Fatal(RuntimeError),
    /// Under exactly_once_v2: the open transaction failed or the producer was fenced; under
    /// at-least-once: records could not be delivered for a retriable reason (their delivery
    /// timed out while the brokers were away). The thread recovers (see
    /// `StreamThread::recover`, Kafka Streams' handling of a corrupted task) rather than
    /// stopping: it starts again from the last commit, which under exactly-once loses and
    /// duplicates nothing (nothing of the transaction is visible to read_committed readers) and
    /// under at-least-once loses nothing.
    Transaction(RuntimeError),
    /// A commit failed for a retriable reason (the brokers away, the coordinator moving):
    /// nothing is lost and nothing needs undoing; the thread tries again a moment later, until
    /// `task.timeout.ms` says the failure has gone on too long. Under exactly_once_v2 the
    /// transaction stays open (see `StreamsProducer::is_committing`).
    Retry(RuntimeError),
}

impl Failure {
    /// How the thread handles a Kafka client failure in the work of a transaction (a send, a
    /// delivery, beginning or committing it), decided on the error's [`ErrorClass`]:
    /// - abortable (librdkafka's `txn_requires_abort`): abort the transaction and start again
    ///   from the last commit;
    /// - retriable or fatal under exactly_once_v2: the same, where a fatal producer (fenced, as
    ///   when another instance took over the transactional id) is replaced rather than aborted,
    ///   as Kafka Streams treats fencing as a migrated task, not a dead application;
    /// - retriable under at-least-once (a delivery timed out while the brokers were away): start
    ///   again from the last commit, as Kafka Streams does with a `TaskCorruptedException`;
    /// - fatal under at-least-once: stop, since outputs already sent cannot be taken back and
    ///   the offsets are not committed, so a restart redoes the work.
    pub(crate) fn of(error: RuntimeError, exactly_once: bool) -> Failure {
        match (error.class(), exactly_once) {
            (ErrorClass::Abortable | ErrorClass::Retriable, _) => Failure::Transaction(error),
            (ErrorClass::Fatal, true) => Failure::Transaction(error),
            (ErrorClass::Fatal, false) => Failure::Fatal(error),
        }
    }

    /// A commit's failure: retriable errors are retried later ([`Failure::Retry`]), the others
    /// handled as [`Failure::of`] says.
    pub(crate) fn of_commit(error: RuntimeError, exactly_once: bool) -> Failure {
        match error.class() {
            ErrorClass::Retriable => Failure::Retry(error),
            _ => Failure::of(error, exactly_once),
        }
    }

    /// The error, whichever way the thread handles it.
    pub(crate) fn into_error(self) -> RuntimeError {
        match self {
            Failure::Fatal(e) | Failure::Transaction(e) | Failure::Retry(e) => e,
        }
    }
}

impl From<RuntimeError> for Failure {
    fn from(error: RuntimeError) -> Self {
        Failure::Fatal(error)
    }
}

/// A task's failure outside a record (a flush, a checkpoint) stops the thread.
impl From<TaskError> for Failure {
    fn from(error: TaskError) -> Self {
        Failure::Fatal(RuntimeError::Task(error))
    }
}
