//! The thread's producer (Kafka Streams' `StreamsProducer`) and its record collector: sends with
//! Java's partitioning, transactions under exactly_once_v2, and the delivery reports that fail
//! the thread or its transaction, hand refused records to `production.exception.handler` (see
//! [`refusal`](super::refusal)) and record the changelog offsets checkpoints need.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use freshet_topology::sync::Unpoisoned;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::abandonable::call_within;
use super::client_stats::ClientStatsMetrics;
use super::error::{ErrorClass, RuntimeError};
use super::failure::Failure;
use super::member_offsets::MemberIdentity;
use super::metrics::TaskLabels;
use super::refusal::{
    Kind, Origin, Plan, ProductionHandler, Refused, Sent, Watch, batches_too_large, triage,
};
use super::task_timeout::TaskTimeout;
use crate::processor::{Headers, ProduceRequest};

/// The least time a record waits for room in a full producer queue: the Java producer's
/// `max.block.ms` default.
const MAX_BLOCK: Duration = Duration::from_secs(60);

/// How long one try of a transactional call that is retried (an abort, `init_transactions`) may
/// block: short, so that a shutdown or the task timeout is noticed between tries.
const RETRIED_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a commit (or sending its offsets) may block: a commit waits for its outputs'
/// delivery. One that times out is retried (see [`Failure::Retry`]), so this only bounds how
/// long a close waits behind a commit while the brokers are away.
const TRANSACTION_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long after its own timeout a call that ignores it (sending the offsets to the
/// transaction, see [`abandonable`](super::abandonable)) is given before the producer is
/// given up on.
const UNRESPONSIVE_GRACE: Duration = Duration::from_secs(5);

/// The thread's producer and, under exactly_once_v2, the state of its transaction (Kafka
/// Streams' `StreamsProducer`): every task of the thread writes through it.
pub(crate) struct StreamsProducer {
    /// Shared only with a call that may not return (see [`abandonable`](super::abandonable)).
    pub(crate) producer: Arc<BaseProducer<DeliveryContext>>,
    /// Under exactly_once_v2: a call into the producer was given up on and may still be under
    /// way; the producer can do nothing more and is replaced, not aborted.
    abandoned: bool,
    /// Under exactly_once_v2: the producer's configuration, to replace a fenced or failed one.
    pub(crate) transactional: Option<ClientConfig>,
    pub(crate) in_transaction: bool,
    /// The offsets the last committed transactions carried, so that a commit with nothing new
    /// opens no transaction (exactly-once commits every 100 ms, busy or idle).
    pub(crate) committed: HashMap<(String, i32), i64>,
    /// Under exactly_once_v2: the offsets of a transaction whose commit timed out (the brokers
    /// away). librdkafka allows nothing but retrying that commit (or aborting), so the thread
    /// processes nothing until it goes through.
    committing: Option<Vec<(String, i32, i64)>>,
    /// `task.timeout.ms`: how long a record may wait for room in the producer's queue.
    task_timeout: Duration,
    /// The application's shutdown flag: retries stop when it closes.
    shutdown: Arc<AtomicBool>,
    /// `production.exception.handler`, for records the broker or the producer refuses.
    handler: ProductionHandler,
    /// Where the producer's statistics go, for a replaced producer too.
    stats: Option<Arc<ClientStatsMetrics>>,
    /// Under exactly_once_v2: what refusals in aborted transactions taught.
    watch: Watch,
    /// Under exactly_once_v2: refusals seen in the open transaction, learnt from when it aborts.
    pending: Vec<Refused>,
}

/// How long the producer may take to deliver what is in flight, when a refusal needs every
/// record settled (a record sent again alone, a dead letter confirmed).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

impl StreamsProducer {
    pub(crate) fn new(
        config: ClientConfig,
        stats: Option<Arc<ClientStatsMetrics>>,
        transactional: bool,
        task_timeout: Duration,
        shutdown: Arc<AtomicBool>,
        handler: ProductionHandler,
    ) -> Result<StreamsProducer, RuntimeError> {
        let producer = create_producer(
            &config,
            stats.as_ref(),
            transactional,
            task_timeout,
            &shutdown,
        )?;
        Ok(StreamsProducer {
            producer: Arc::new(producer),
            abandoned: false,
            transactional: transactional.then_some(config),
            in_transaction: false,
            committed: HashMap::new(),
            committing: None,
            task_timeout,
            shutdown,
            handler,
            stats,
            watch: Watch::default(),
            pending: Vec::new(),
        })
    }

    /// Under exactly_once_v2: a commit timed out and must be retried before anything else is
    /// sent.
    pub(crate) fn is_committing(&self) -> bool {
        self.committing.is_some()
    }

    pub(crate) fn exactly_once(&self) -> bool {
        self.transactional.is_some()
    }

    /// Sends one record `origin` produced; under exactly_once_v2 the first output after a commit
    /// begins the next transaction, and a record the broker refused in an aborted transaction is
    /// sent alone, or handed to the handler unsent (see [`Watch`]).
    pub(crate) fn send(
        &mut self,
        out: &ProduceRequest,
        origin: &Arc<Origin>,
    ) -> Result<(), Failure> {
        self.begin()?;
        let kind = Kind::of(out);
        if self.exactly_once() {
            match self.watch.plan(out) {
                Plan::Send => {}
                Plan::SendAlone { fp, size_probe } => {
                    // Alone in its batch: nothing in flight before it, delivered before the next.
                    self.settle()?;
                    self.send_unwatched(out, kind, origin)?;
                    self.settle()?;
                    self.watch.accepted(fp);
                    if size_probe {
                        return Err(Failure::Fatal(batches_too_large(&out.topic)));
                    }
                    return Ok(());
                }
                Plan::Refuse(error) => {
                    return self.refused(Refused {
                        kind,
                        origin: origin.clone(),
                        record: out.clone(),
                        error,
                    });
                }
            }
        }
        self.send_unwatched(out, kind, origin)
    }

    /// Writes a dead-letter record and waits for its delivery: a refused dead letter stops the
    /// thread rather than being handled (and perhaps dead-lettered) again.
    pub(crate) fn write_dead_letter(
        &mut self,
        out: &ProduceRequest,
        origin: &Arc<Origin>,
    ) -> Result<(), Failure> {
        self.begin()?;
        self.send_unwatched(out, Kind::DeadLetter, origin)?;
        self.settle()?;
        self.handler
            .dead_letters
            .get_or_create(&TaskLabels {
                task: origin.task.to_string(),
            })
            .inc();
        Ok(())
    }

    fn send_unwatched(
        &mut self,
        out: &ProduceRequest,
        kind: Kind,
        origin: &Arc<Origin>,
    ) -> Result<(), Failure> {
        let sent = Box::new(Sent {
            kind,
            origin: origin.clone(),
            timestamp: out.timestamp,
        });
        match send(
            &self.producer,
            out,
            sent,
            self.exactly_once(),
            self.task_timeout,
            &self.shutdown,
        ) {
            Ok(()) => Ok(()),
            // Refused before it was queued (over message.max.bytes): the transaction is intact.
            Err(SendError::Refused(error)) => self.refused(Refused {
                kind,
                origin: origin.clone(),
                record: out.clone(),
                error,
            }),
            Err(SendError::Failed(failure)) => {
                // An earlier refusal may be why (the transaction became abortable): say so.
                self.producer.poll(Duration::ZERO);
                self.check_deliveries()?;
                Err(*failure)
            }
        }
    }

    /// Hands a refused record to `production.exception.handler`: its dead letter written, then
    /// skipped or the thread stopped.
    fn refused(&mut self, refused: Refused) -> Result<(), Failure> {
        if refused.kind == Kind::DeadLetter {
            return Err(Failure::Fatal(refused.fatal()));
        }
        let verdict = self.handler.judge(&refused);
        if let Some(dead_letter) = &verdict.dead_letter {
            self.write_dead_letter(dead_letter, &refused.origin)?;
        }
        match verdict.fail {
            Some(failure) => Err(Failure::Fatal(RuntimeError::Record(failure))),
            None => Ok(()),
        }
    }

    /// Serves delivery reports and acts on failed ones (see [`check_deliveries`]).
    ///
    /// [`check_deliveries`]: StreamsProducer::check_deliveries
    pub(crate) fn poll(&mut self) -> Result<(), Failure> {
        self.producer.poll(Duration::ZERO);
        self.check_deliveries()
    }

    /// Acts on the delivery reports served so far: a failed delivery stops the thread (or, under
    /// exactly_once_v2, its transaction); refused records go to the handler — under
    /// at_least_once after those refused together are sent again one at a time, under
    /// exactly_once_v2 by aborting the transaction, which [`reset`] learns from.
    ///
    /// [`reset`]: StreamsProducer::reset
    pub(crate) fn check_deliveries(&mut self) -> Result<(), Failure> {
        if let Some(f) = self.producer.context().failure.lock_unpoisoned().take() {
            return Err(self.failure(f));
        }
        let refused = std::mem::take(&mut *self.producer.context().refused.lock_unpoisoned());
        if refused.is_empty() {
            return Ok(());
        }
        if self.exactly_once() {
            let cause = refused[0].abort_cause();
            self.pending.extend(refused);
            return Err(Failure::Transaction(cause));
        }
        self.resend_alone(refused)
    }

    /// Waits for every record in flight, then acts on their delivery reports.
    fn settle(&mut self) -> Result<(), Failure> {
        super::flush::flush(&self.producer, SETTLE_TIMEOUT)
            .map_err(|e| self.failure(RuntimeError::kafka("flushing the producer", e)))?;
        self.check_deliveries()
    }

    /// Under at_least_once: the culprit of a refusal goes to the handler; a record refused along
    /// with others (for size, the largest of them) is sent again alone, and goes to the handler
    /// if refused alone; the records refused only for their batch are sent again as usual. They
    /// may arrive after records that followed them.
    fn resend_alone(&mut self, mut refused: Vec<Refused>) -> Result<(), Failure> {
        // Every record in flight delivered or refused: each probe sent below is alone.
        self.flush_checked()?;
        refused.append(&mut self.producer.context().refused.lock_unpoisoned());
        let triage = triage(refused).map_err(Failure::Fatal)?;
        for culprit in triage.culprits {
            self.refused(culprit)?;
        }
        for probe in triage.probes {
            info!(topic = %probe.record.topic, partition = ?probe.record.partition, error = %probe.error, "sending a record refused in a batch again, alone");
            self.send_unwatched(&probe.record, probe.kind, &probe.origin)?;
            self.flush_checked()?;
            let alone = std::mem::take(&mut *self.producer.context().refused.lock_unpoisoned());
            if alone.is_empty() && triage.size_probe {
                return Err(Failure::Fatal(batches_too_large(&probe.record.topic)));
            }
            for culprit in alone {
                self.refused(culprit)?;
            }
        }
        // Refused again (a second culprit among them), they come back on the next check.
        for again in triage.bystanders {
            self.send_unwatched(&again.record, again.kind, &again.origin)?;
        }
        Ok(())
    }

    /// Waits for every record in flight; a failed delivery (other than a refusal) stops here.
    fn flush_checked(&mut self) -> Result<(), Failure> {
        super::flush::flush(&self.producer, SETTLE_TIMEOUT)
            .map_err(|e| self.failure(RuntimeError::kafka("flushing the producer", e)))?;
        match self.producer.context().failure.lock_unpoisoned().take() {
            Some(f) => Err(self.failure(f)),
            None => Ok(()),
        }
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
    /// returns how many partitions' offsets it carried. A retriable failure
    /// ([`Failure::Retry`]) leaves the transaction open: sending the offsets may be retried
    /// after more records, a commit that timed out only by itself ([`Self::is_committing`]).
    ///
    /// Under group.protocol=streams the offsets go as the thread's streams-group `member` (the
    /// consumer is in no group).
    pub(crate) fn commit_transaction<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        offsets: &[(String, i32, i64)],
        member: Option<MemberIdentity>,
    ) -> Result<usize, Failure> {
        let txn = |what: &str| {
            let what = what.to_owned();
            move |e: rdkafka::error::KafkaError| {
                Failure::of_commit(RuntimeError::kafka(what, e), true)
            }
        };
        if let Some(moved) = self.committing.take() {
            // The offsets went with the transaction before its commit timed out.
            return match self.producer.commit_transaction(TRANSACTION_CALL_TIMEOUT) {
                Ok(()) => Ok(self.committed_with(moved)),
                Err(e) => {
                    let failure = txn("committing the transaction")(e);
                    if matches!(failure, Failure::Retry(_)) {
                        self.committing = Some(moved);
                    }
                    Err(failure)
                }
            };
        }
        let moved: Vec<(String, i32, i64)> = offsets
            .iter()
            .filter(|(t, p, o)| self.committed.get(&(t.clone(), *p)) != Some(o))
            .cloned()
            .collect();
        if moved.is_empty() && !self.in_transaction {
            return Ok(0);
        }
        // Offsets alone (records filtered out, nothing produced) need a transaction too.
        self.begin()?;
        // The commit would flush anyway; flushing first tells a refused record (which the
        // handler decides on after the abort) from a transaction that failed.
        super::flush::flush(&self.producer, TRANSACTION_CALL_TIMEOUT)
            .map_err(txn("flushing the transaction"))?;
        self.check_deliveries()?;
        if !moved.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (topic, partition, offset) in &moved {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                    .map_err(|e| RuntimeError::kafka("listing the consumed offsets", e))?;
            }
            const WHAT: &str = "sending the consumed offsets to the transaction";
            let producer = Arc::clone(&self.producer);
            // Under group.protocol=streams the offsets go as the thread's streams-group member;
            // otherwise with the consumer's group metadata, whose generation fences a thread that
            // lost its partitions in a rebalance (KIP-447).
            let send: Box<dyn FnOnce() -> Result<(), RuntimeError> + Send> = match member {
                Some(member) => Box::new(move || {
                    super::member_offsets::send_offsets(
                        &producer,
                        &tpl,
                        &member,
                        TRANSACTION_CALL_TIMEOUT,
                    )
                }),
                None => {
                    let group = consumer.group_metadata().ok_or_else(|| {
                        Failure::Transaction(RuntimeError::Other(
                            "the consumer has no group metadata yet".to_owned(),
                        ))
                    })?;
                    Box::new(move || {
                        producer
                            .send_offsets_to_transaction(&tpl, &group, TRANSACTION_CALL_TIMEOUT)
                            .map_err(|e| RuntimeError::kafka(WHAT, e))
                    })
                }
            };
            let limit = TRANSACTION_CALL_TIMEOUT + UNRESPONSIVE_GRACE;
            match call_within(WHAT, limit, send) {
                Some(sent) => sent.map_err(|e| Failure::of_commit(e, true))?,
                None => {
                    self.abandoned = true;
                    return Err(Failure::Transaction(RuntimeError::Unresponsive {
                        what: WHAT.to_owned(),
                        waited_secs: limit.as_secs(),
                    }));
                }
            }
        }
        self.commit_open_transaction(moved)
    }

    /// Commits the open transaction, which carries the offsets `moved`.
    fn commit_open_transaction(
        &mut self,
        moved: Vec<(String, i32, i64)>,
    ) -> Result<usize, Failure> {
        match self.producer.commit_transaction(TRANSACTION_CALL_TIMEOUT) {
            Ok(()) => Ok(self.committed_with(moved)),
            Err(e) => {
                let failure =
                    Failure::of_commit(RuntimeError::kafka("committing the transaction", e), true);
                if matches!(failure, Failure::Retry(_)) {
                    self.committing = Some(moved);
                }
                Err(failure)
            }
        }
    }

    /// Notes a committed transaction and the offsets it carried; returns their count.
    fn committed_with(&mut self, moved: Vec<(String, i32, i64)>) -> usize {
        self.in_transaction = false;
        let n = moved.len();
        for (topic, partition, offset) in moved {
            self.committed.insert((topic, partition), offset);
        }
        n
    }

    /// After a failed transaction: aborts it, or, where the producer can do nothing more (fenced,
    /// fatal error, no transaction to abort, records refused), replaces it; the new producer's
    /// `init_transactions` with the same transactional id aborts whatever the old one left open.
    ///
    /// Refusals the transaction met are learnt from (see [`Watch::learn`]).
    pub(crate) fn reset(&mut self, thread: usize) -> Result<(), RuntimeError> {
        let Some(config) = self.transactional.clone() else {
            return Ok(());
        };
        let was_open = std::mem::take(&mut self.in_transaction);
        self.committing = None;
        // Reports not served yet arrive on this poll: refusals to learn from, and purges.
        self.producer.poll(Duration::ZERO);
        let mut refused = std::mem::take(&mut self.pending);
        refused.append(&mut self.producer.context().refused.lock_unpoisoned());
        let fatal = self.producer.client().fatal_error();
        // A refused batch leaves a gap in its partition's sequence numbers which librdkafka's
        // abort does not close (the next transaction fails out of sequence): a new producer, with
        // a new epoch, starts clean, its initialisation aborting the open transaction.
        let abandoned = std::mem::take(&mut self.abandoned);
        let aborted =
            was_open && fatal.is_none() && refused.is_empty() && !abandoned && self.abort(thread);
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
            } else if abandoned {
                warn!(
                    thread,
                    "a call into the producer did not return; replacing the producer (the new one fences it)"
                );
            } else if !refused.is_empty() {
                info!(
                    thread,
                    refused = refused.len(),
                    "the broker refused records of the transaction; replacing the producer to abort it"
                );
            }
            if self.shutdown.load(Ordering::Relaxed) {
                // Closing: the next start's init_transactions aborts what is left open.
                return Err(RuntimeError::Interrupted {
                    what: "replacing the producer".to_owned(),
                    source: Box::new(RuntimeError::Other(
                        "the transaction could not be aborted".to_owned(),
                    )),
                });
            }
            self.producer = Arc::new(create_producer(
                &config,
                self.stats.as_ref(),
                true,
                self.task_timeout,
                &self.shutdown,
            )?);
            info!(
                thread,
                "transactional producer replaced and initialised: the open transaction is aborted"
            );
        }
        self.watch.learn(refused)
    }

    /// Aborts the open transaction, retrying while the brokers are away (within
    /// `task.timeout.ms`); false when it cannot be aborted and the producer must be replaced.
    fn abort(&mut self, thread: usize) -> bool {
        let mut timeout = TaskTimeout::new("aborting the transaction", self.task_timeout)
            .interruptible(&self.shutdown);
        loop {
            // The abort purges what is still queued and waits for the purged records' delivery
            // reports, which only polls serve (one event a poll): serve them all first.
            let deadline = std::time::Instant::now() + Duration::from_secs(1);
            while self.producer.in_flight_count() > 0 && std::time::Instant::now() < deadline {
                self.producer.poll(Duration::from_millis(5));
            }
            let error = match self.producer.abort_transaction(RETRIED_CALL_TIMEOUT) {
                Ok(()) => return true,
                Err(e) => RuntimeError::kafka("aborting the transaction", e),
            };
            if error.class() != ErrorClass::Retriable {
                warn!(thread, %error, "the transaction cannot be aborted; replacing the producer");
                return false;
            }
            if let Err(error) = timeout.retry(error) {
                warn!(thread, %error, "replacing the producer");
                return false;
            }
        }
    }
}

/// Creates the thread's producer; a transactional one is initialised, which fences any producer
/// with the same transactional id and aborts the transaction it left open.
/// `init_transactions` is retried while the brokers are away, within `task_timeout`.
fn create_producer(
    config: &ClientConfig,
    stats: Option<&Arc<ClientStatsMetrics>>,
    transactional: bool,
    task_timeout: Duration,
    shutdown: &Arc<AtomicBool>,
) -> Result<BaseProducer<DeliveryContext>, RuntimeError> {
    let producer: BaseProducer<DeliveryContext> = config
        .create_with_context(DeliveryContext {
            stats: stats.cloned(),
            ..DeliveryContext::default()
        })
        .map_err(|e| RuntimeError::kafka("creating the producer", e))?;
    if transactional {
        let mut timeout =
            TaskTimeout::new("initialising the producer's transactions", task_timeout)
                .interruptible(shutdown);
        while let Err(e) = producer.init_transactions(RETRIED_CALL_TIMEOUT) {
            let error = RuntimeError::kafka("initialising the producer's transactions", e);
            if error.class() != ErrorClass::Retriable {
                return Err(error);
            }
            timeout.retry(error)?;
        }
        timeout.succeeded();
    }
    Ok(producer)
}

/// Records the first failed delivery, on which the thread stops or recovers, and the records
/// refused, for `production.exception.handler`. Also notes the offsets of delivered changelog
/// records, which checkpoints record.
#[derive(Default)]
pub(crate) struct DeliveryContext {
    pub(crate) failure: Mutex<Option<RuntimeError>>,
    pub(crate) refused: Mutex<Vec<Refused>>,
    pub(crate) changelog_offsets: Mutex<HashMap<(String, i32), i64>>,
    /// Partition counts of the topics windowed keys went to, for choosing their partitions.
    partition_counts: Mutex<HashMap<String, i32>>,
    /// Where librdkafka's statistics go (`statistics.interval.ms`).
    pub(crate) stats: Option<Arc<ClientStatsMetrics>>,
}

impl DeliveryContext {
    /// Forgets failures and changelog offsets of an aborted transaction.
    pub(crate) fn clear(&self) {
        self.failure.lock_unpoisoned().take();
        self.refused.lock_unpoisoned().clear();
        self.changelog_offsets.lock_unpoisoned().clear();
    }
}

impl ClientContext for DeliveryContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        if let Some(stats) = &self.stats {
            stats.record(&statistics);
        }
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Sent>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Sent>) {
        if let (Ok(msg), Kind::Changelog) = (result, sent.kind) {
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
            if super::refusal::is_refusal(err) {
                self.refused
                    .lock_unpoisoned()
                    .push(Refused::delivered(*sent, msg, err.clone()));
                return;
            }
            let mut failure = self.failure.lock_unpoisoned();
            failure.get_or_insert_with(|| {
                RuntimeError::producing(msg.topic(), err.clone(), |source| RuntimeError::Delivery {
                    topic: msg.topic().to_owned(),
                    partition: msg.partition(),
                    class: ErrorClass::of(&source),
                    source,
                })
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

/// Why [`send`] did not queue a record.
enum SendError {
    /// The producer refused the record itself (larger than `message.max.bytes`); nothing was
    /// queued, so an open transaction is not affected.
    Refused(rdkafka::error::KafkaError),
    /// Any other failure, as the thread handles it (under exactly-once, the transaction's).
    Failed(Box<Failure>),
}

impl SendError {
    fn failed(failure: Failure) -> SendError {
        SendError::Failed(Box::new(failure))
    }
}

/// Sends one record, waiting for queue space rather than dropping it: a full queue (a burst, or
/// the brokers away) is waited out for up to `task.timeout.ms`, and at least a minute (the Java
/// producer's `max.block.ms`): a full queue under load is no failure. Under exactly-once
/// (`transactional`) a failed send fails the transaction, not the thread.
fn send(
    producer: &BaseProducer<DeliveryContext>,
    out: &ProduceRequest,
    sent: Box<Sent>,
    transactional: bool,
    task_timeout: Duration,
    shutdown: &AtomicBool,
) -> Result<(), SendError> {
    let queue_timeout = task_timeout.max(MAX_BLOCK);
    let mut waiting: Option<(std::time::Instant, bool)> = None;
    let partition = match out.partition {
        Some(p) => Some(p),
        None => {
            partition_by_prefix(producer, out).map_err(|e| SendError::failed(Failure::Fatal(e)))?
        }
    };
    let mut record: BaseRecord<'_, [u8], [u8], Box<Sent>> =
        BaseRecord::with_opaque_to(&out.topic, sent).timestamp(out.timestamp);
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
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                let (since, warned) = waiting.get_or_insert((std::time::Instant::now(), false));
                let waited = since.elapsed();
                if waited > queue_timeout || shutdown.load(Ordering::Relaxed) {
                    return Err(SendError::failed(Failure::Fatal(
                        RuntimeError::TaskTimeout {
                            what: format!(
                                "waiting for room in the producer's queue ({})",
                                out.topic
                            ),
                            waited_secs: waited.as_secs(),
                            limit_ms: queue_timeout.as_millis() as u64,
                            source: Box::new(RuntimeError::kafka(
                                format!("producing to {}", out.topic),
                                e,
                            )),
                        },
                    )));
                }
                if !*warned && waited > Duration::from_secs(5) {
                    *warned = true;
                    warn!(topic = %out.topic, "the producer's queue has been full for 5 s: the brokers may be away; waiting");
                }
                producer.poll(Duration::from_millis(50));
                record = back;
            }
            Err((e, _)) if super::refusal::is_refusal(&e) => return Err(SendError::Refused(e)),
            Err((e, _)) => {
                let error = RuntimeError::producing(&out.topic, e, |e| {
                    RuntimeError::kafka(format!("producing to {}", out.topic), e)
                });
                return Err(SendError::failed(Failure::of(error, transactional)));
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
        assert!(matches!(
            Failure::of(transient(), false),
            Failure::Transaction(_)
        ));
        assert!(matches!(
            Failure::of_commit(transient(), true),
            Failure::Retry(_)
        ));
        assert!(matches!(
            Failure::of_commit(fenced(), true),
            Failure::Transaction(_)
        ));
        assert!(matches!(Failure::of(fenced(), false), Failure::Fatal(_)));
    }
}
