//! The thread's producer (Kafka Streams' `StreamsProducer`) and its record collector: sends with
//! Java's partitioning, transactions under exactly_once_v2, and the delivery reports that fail
//! the thread or its transaction and record the changelog offsets checkpoints need.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use freshet_topology::sync::Unpoisoned;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::error::{ErrorClass, RuntimeError, TaskError};
use crate::processor::{Headers, ProduceRequest};

/// Why the thread's loop stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Stops the thread, and with it the application.
    Fatal(RuntimeError),
    /// Under exactly_once_v2: the open transaction failed or the producer was fenced. The thread
    /// recovers (see `StreamThread::recover`) rather than stopping: nothing of the transaction
    /// is visible to read_committed readers, so starting again from the last commit loses and
    /// duplicates nothing.
    Transaction(RuntimeError),
}

impl Failure {
    /// How the thread handles a Kafka client failure in the work of a transaction (a send, a
    /// delivery, beginning or committing it), decided on the error's [`ErrorClass`]:
    /// - abortable (librdkafka's `txn_requires_abort`): abort the transaction and start again
    ///   from the last commit;
    /// - retriable or fatal under exactly_once_v2: the same, where a fatal producer (fenced, as
    ///   when another instance took over the transactional id) is replaced rather than aborted,
    ///   as Kafka Streams treats fencing as a migrated task, not a dead application;
    /// - anything under at-least-once: stop, since outputs already sent cannot be taken back
    ///   and the offsets are not committed, so a restart redoes the work.
    pub(crate) fn of(error: RuntimeError, exactly_once: bool) -> Failure {
        match (error.class(), exactly_once) {
            (ErrorClass::Abortable, _) => Failure::Transaction(error),
            (ErrorClass::Retriable | ErrorClass::Fatal, true) => Failure::Transaction(error),
            (ErrorClass::Retriable | ErrorClass::Fatal, false) => Failure::Fatal(error),
        }
    }

    /// The error, whichever way the thread handles it.
    pub(crate) fn into_error(self) -> RuntimeError {
        match self {
            Failure::Fatal(e) | Failure::Transaction(e) => e,
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

/// How long a transactional call may block: `init_transactions` may first wait for the broker to
/// abort what a dead predecessor left open, and a commit waits for its outputs' delivery.
const TRANSACTION_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The thread's producer and, under exactly_once_v2, the state of its transaction (Kafka
/// Streams' `StreamsProducer`): every task of the thread writes through it.
pub(crate) struct StreamsProducer {
    pub(crate) producer: BaseProducer<DeliveryContext>,
    /// Under exactly_once_v2: the producer's configuration, to replace a fenced or failed one.
    pub(crate) transactional: Option<ClientConfig>,
    pub(crate) in_transaction: bool,
    /// The offsets the last committed transactions carried, so that a commit with nothing new
    /// opens no transaction (exactly-once commits every 100 ms, busy or idle).
    pub(crate) committed: HashMap<(String, i32), i64>,
}

impl StreamsProducer {
    pub(crate) fn new(
        config: ClientConfig,
        transactional: bool,
    ) -> Result<StreamsProducer, RuntimeError> {
        let producer = create_producer(&config, transactional)?;
        Ok(StreamsProducer {
            producer,
            transactional: transactional.then_some(config),
            in_transaction: false,
            committed: HashMap::new(),
        })
    }

    pub(crate) fn exactly_once(&self) -> bool {
        self.transactional.is_some()
    }

    /// Sends one record; under exactly_once_v2 the first output after a commit begins the next
    /// transaction.
    pub(crate) fn send(&mut self, out: &ProduceRequest) -> Result<(), Failure> {
        self.begin()?;
        send(&self.producer, out, self.exactly_once())
    }

    pub(crate) fn begin(&mut self) -> Result<(), Failure> {
        if self.exactly_once() && !self.in_transaction {
            self.producer.begin_transaction().map_err(|e| {
                Failure::of(RuntimeError::kafka("beginning a transaction", e), true)
            })?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// How the thread handles `error` of this producer (see [`Failure::of`]).
    pub(crate) fn failure(&self, error: RuntimeError) -> Failure {
        Failure::of(error, self.exactly_once())
    }

    /// Commits the open transaction with the consumed `offsets` that moved since the last one;
    /// returns how many partitions' offsets it carried.
    pub(crate) fn commit_transaction<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        offsets: &[(String, i32, i64)],
    ) -> Result<usize, Failure> {
        let moved: Vec<&(String, i32, i64)> = offsets
            .iter()
            .filter(|(t, p, o)| self.committed.get(&(t.clone(), *p)) != Some(o))
            .collect();
        if moved.is_empty() && !self.in_transaction {
            return Ok(0);
        }
        // Offsets alone (records filtered out, nothing produced) need a transaction too.
        self.begin()?;
        let txn = |what: &str| {
            let what = what.to_owned();
            move |e: rdkafka::error::KafkaError| Failure::of(RuntimeError::kafka(what, e), true)
        };
        if !moved.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (topic, partition, offset) in &moved {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                    .map_err(|e| RuntimeError::kafka("listing the consumed offsets", e))?;
            }
            // The group metadata carries the consumer's generation: a thread that lost its
            // partitions in a rebalance cannot commit offsets for them (KIP-447 fencing).
            let group = consumer.group_metadata().ok_or_else(|| {
                Failure::Transaction(RuntimeError::Other(
                    "the consumer has no group metadata yet".to_owned(),
                ))
            })?;
            self.producer
                .send_offsets_to_transaction(&tpl, &group, TRANSACTION_CALL_TIMEOUT)
                .map_err(txn("sending the consumed offsets to the transaction"))?;
        }
        self.producer
            .commit_transaction(TRANSACTION_CALL_TIMEOUT)
            .map_err(txn("committing the transaction"))?;
        self.in_transaction = false;
        for (topic, partition, offset) in moved.iter() {
            self.committed.insert((topic.clone(), *partition), *offset);
        }
        Ok(moved.len())
    }

    /// After a failed transaction: aborts it, or, where the producer can do nothing more (fenced,
    /// fatal error, no transaction to abort), replaces it; the new producer's `init_transactions`
    /// with the same transactional id aborts whatever the old one left open.
    pub(crate) fn reset(&mut self, thread: usize) -> Result<(), RuntimeError> {
        let Some(config) = self.transactional.clone() else {
            return Ok(());
        };
        let was_open = std::mem::take(&mut self.in_transaction);
        let fatal = self.producer.client().fatal_error();
        let aborted = was_open
            && fatal.is_none()
            && match self.producer.abort_transaction(TRANSACTION_CALL_TIMEOUT) {
                Ok(()) => true,
                Err(e) => {
                    warn!(thread, error = %e, "aborting the transaction failed; replacing the producer");
                    false
                }
            };
        if aborted {
            // Purged records report their failure on this poll; the context ignores purges.
            self.producer.poll(Duration::ZERO);
            self.producer.context().clear();
            info!(thread, "transaction aborted");
        } else {
            if let Some((code, reason)) = fatal {
                warn!(
                    thread,
                    ?code,
                    reason,
                    "the producer is in a fatal state (fenced or failed); replacing it"
                );
            }
            self.producer = create_producer(&config, true)?;
            info!(thread, "transactional producer replaced and initialised");
        }
        Ok(())
    }
}

/// Creates the thread's producer; a transactional one is initialised, which fences any producer
/// with the same transactional id and aborts the transaction it left open.
fn create_producer(
    config: &ClientConfig,
    transactional: bool,
) -> Result<BaseProducer<DeliveryContext>, RuntimeError> {
    let producer: BaseProducer<DeliveryContext> = config
        .create_with_context(DeliveryContext::default())
        .map_err(|e| RuntimeError::kafka("creating the producer", e))?;
    if transactional {
        producer
            .init_transactions(TRANSACTION_CALL_TIMEOUT)
            .map_err(|e| RuntimeError::kafka("initialising the producer's transactions", e))?;
    }
    Ok(producer)
}

/// Records the first failed delivery; the thread stops on it (production.exception.handler=fail).
/// Also notes the offsets of delivered changelog records, which checkpoints record.
#[derive(Default)]
pub(crate) struct DeliveryContext {
    pub(crate) failure: Mutex<Option<RuntimeError>>,
    pub(crate) changelog_offsets: Mutex<HashMap<(String, i32), i64>>,
    /// Partition counts of the topics windowed keys went to, for choosing their partitions.
    partition_counts: Mutex<HashMap<String, i32>>,
}

impl DeliveryContext {
    /// Forgets failures and changelog offsets of an aborted transaction.
    pub(crate) fn clear(&self) {
        self.failure.lock_unpoisoned().take();
        self.changelog_offsets.lock_unpoisoned().clear();
    }
}

/// The delivery opaque of a changelog record.
const CHANGELOG: usize = 1;

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, kind: usize) {
        if let (Ok(msg), CHANGELOG) = (result, kind) {
            let mut offsets = self.changelog_offsets.lock_unpoisoned();
            let entry = offsets
                .entry((msg.topic().to_owned(), msg.partition()))
                .or_insert(msg.offset());
            *entry = (*entry).max(msg.offset());
        }
        if let Err((err, msg)) = result {
            // Records purged by an aborted transaction (or a producer being dropped) did not fail:
            // the abort is already being handled.
            if matches!(
                err.rdkafka_error_code(),
                Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
            ) {
                return;
            }
            let mut failure = self.failure.lock_unpoisoned();
            failure.get_or_insert_with(|| RuntimeError::Delivery {
                topic: msg.topic().to_owned(),
                partition: msg.partition(),
                class: ErrorClass::of(err),
                source: err.clone(),
            });
        }
    }
}

fn owned_headers(headers: &Headers) -> Option<OwnedHeaders> {
    if headers.0.is_empty() {
        return None;
    }
    let mut out = OwnedHeaders::new_with_capacity(headers.0.len());
    for (k, v) in &headers.0 {
        out = out.insert(Header {
            key: k,
            value: v.as_deref(),
        });
    }
    Some(out)
}

/// Sends one record, waiting for queue space rather than dropping it.
/// The partition Java's partitioner gives the first `hash_len` bytes of the record's key.
fn partition_by_prefix(
    producer: &BaseProducer<DeliveryContext>,
    out: &ProduceRequest,
) -> Result<Option<i32>, RuntimeError> {
    let (Some(len), Some(key)) = (out.hash_len, &out.key) else {
        return Ok(None);
    };
    let mut counts = producer.context().partition_counts.lock_unpoisoned();
    let count = match counts.get(&out.topic) {
        Some(c) => *c,
        None => {
            let metadata = producer
                .client()
                .fetch_metadata(Some(&out.topic), Duration::from_secs(15))
                .map_err(|e| {
                    RuntimeError::kafka(format!("reading the partitions of {}", out.topic), e)
                })?;
            let c = metadata
                .topics()
                .first()
                .filter(|t| t.error().is_none())
                .map(|t| t.partitions().len() as i32)
                .filter(|c| *c > 0)
                .ok_or_else(|| {
                    RuntimeError::Other(format!(
                        "topic {} does not exist: create it (Freshet never creates output topics)",
                        out.topic
                    ))
                })?;
            counts.insert(out.topic.clone(), c);
            c
        }
    };
    Ok(Some(super::partitioner::partition_for(
        &key[..len.min(key.len())],
        count,
    )))
}

/// Under exactly-once (`transactional`) a refused record fails the transaction, not the thread.
pub(crate) fn send(
    producer: &BaseProducer<DeliveryContext>,
    out: &ProduceRequest,
    transactional: bool,
) -> Result<(), Failure> {
    let partition = match out.partition {
        Some(p) => Some(p),
        None => partition_by_prefix(producer, out)?,
    };
    loop {
        let opaque = if out.changelog { CHANGELOG } else { 0 };
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&out.topic, opaque).timestamp(out.timestamp);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(k) = &out.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &out.value {
            record = record.payload(v.as_slice());
        }
        if let Some(h) = owned_headers(&out.headers) {
            record = record.headers(h);
        }
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                producer.poll(Duration::from_millis(50));
            }
            Err((e, _)) => {
                let error = RuntimeError::kafka(format!("producing to {}", out.topic), e);
                return Err(Failure::of(error, transactional));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::KafkaError;

    #[test]
    fn the_error_class_decides_between_recovering_and_stopping() {
        let transient = || {
            RuntimeError::kafka(
                "producing",
                KafkaError::MessageProduction(RDKafkaErrorCode::AllBrokersDown),
            )
        };
        let fenced = || {
            RuntimeError::kafka(
                "producing",
                KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced),
            )
        };
        assert!(matches!(
            Failure::of(transient(), true),
            Failure::Transaction(_)
        ));
        assert!(matches!(
            Failure::of(fenced(), true),
            Failure::Transaction(_)
        ));
        assert!(matches!(Failure::of(transient(), false), Failure::Fatal(_)));
        assert!(matches!(Failure::of(fenced(), false), Failure::Fatal(_)));
    }
}
