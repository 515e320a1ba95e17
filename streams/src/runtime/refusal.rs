//! Records the broker (or the producer itself) refuses for what they are — larger than the topic's
//! `max.message.bytes` or the producer's `message.max.bytes`, a timestamp outside the topic's
//! bounds, a corrupt batch — and what `production.exception.handler` does with them, as Kafka
//! Streams' `RecordCollectorImpl.recordSendError` does: `fail` (`DefaultProductionExceptionHandler`)
//! stops the application naming the input record whose processing produced the refused one;
//! `log-and-continue` (KIP-1348's `LogAndContinueProductionExceptionHandler`) skips it with a
//! warning and counts it in the dropped records. Either way, with
//! `errors.dead.letter.queue.topic.name`, the input record goes to the dead-letter topic with
//! KIP-1034's headers; a dead-letter record that is refused in turn stops the thread (KIP-1348:
//! no handler for it, so no loop).
//!
//! Only refusals reach the handler. Transient errors (a broker away, a timeout) are retried, never
//! a reason to drop a record, and fatal ones (fenced, not authorised) stop or recover the thread
//! as before.
//!
//! librdkafka adds two things Kafka's Java producer hides:
//! - the broker judges a batch, not a record: a batch holding one record over `max.message.bytes`
//!   fails whole, and every record in it is reported refused (Java's producer splits such a batch
//!   and tries again). A refusal shared with others names suspects, not a culprit: they are sent
//!   again one at a time, and only a record refused alone goes to the handler ([`triage`]);
//! - under exactly_once_v2 one failed delivery makes the transaction abortable, whatever the
//!   handler says. The thread aborts it and starts again from the last commit, as for any failed
//!   transaction, and the [`Watch`] keeps what the refusals taught: on the way back a suspect is
//!   sent alone (if it is refused, one more abort follows, and now it is known), and a record known
//!   to be refused goes to the handler without being sent. The transaction that commits holds
//!   every other output once and the refused record not at all.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers as _, Message};
use rdkafka::types::RDKafkaErrorCode;
use tracing::warn;

use super::error::{ErrorClass, RuntimeError};
use super::metrics::TaskLabels;
use super::task::{Failed, FailureKind, RawRecord, RecordFailure};
use crate::config::ErrorHandler;
use crate::processor::{Headers, ProduceRequest};

/// What produced a record: its task, and the input record whose processing produced it (Kafka
/// Streams' `ErrorHandlerContext`); no input record for a punctuation's or a cache flush's output.
#[derive(Debug)]
pub(crate) struct Origin {
    /// The task id, `<subtopology>_<partition>`.
    pub task: Arc<str>,
    /// The input record, as fetched.
    pub source: Option<RawRecord>,
}

impl Origin {
    /// The origin of what `task` produced from `source`.
    pub(crate) fn new(task: &Arc<str>, source: Option<RawRecord>) -> Arc<Origin> {
        Arc::new(Origin {
            task: task.clone(),
            source,
        })
    }
}

impl Origin {
    /// Splits what [`Task::process_next`](super::Task::process_next) returned into whether a
    /// record was processed (or why it failed) and the origin of what it produced, the record
    /// moved into it (copied only when it failed).
    pub(crate) fn of_step(
        task: &Arc<str>,
        step: Result<Option<RawRecord>, Failed>,
    ) -> (Result<bool, Failed>, Arc<Origin>) {
        match step {
            Ok(Some(raw)) => (Ok(true), Origin::new(task, Some(raw))),
            Ok(None) => (Ok(false), Origin::new(task, None)),
            Err(failed) => {
                let origin = Origin::new(task, Some(failed.0.clone()));
                (Err(failed), origin)
            }
        }
    }
}

/// What a record sent is, which decides what its delivery report does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A sink's output or a repartition record.
    Output,
    /// A store's changelog record: its offset goes into the task's checkpoint.
    Changelog,
    /// A dead-letter record: a refusal of it stops the thread.
    DeadLetter,
}

impl Kind {
    /// The kind of a record a task asked to have written.
    pub(crate) fn of(out: &ProduceRequest) -> Kind {
        if out.changelog {
            Kind::Changelog
        } else {
            Kind::Output
        }
    }
}

/// A record's delivery opaque: what it is and where it came from.
pub(crate) struct Sent {
    pub kind: Kind,
    pub origin: Arc<Origin>,
    /// The record's timestamp: librdkafka reports none for a failed delivery.
    pub timestamp: i64,
}

/// A record the broker or the producer refused.
pub(crate) struct Refused {
    pub kind: Kind,
    pub origin: Arc<Origin>,
    /// The record as sent (its partition fixed once the partitioner chose it).
    pub record: ProduceRequest,
    pub error: KafkaError,
}

impl Refused {
    /// The refused record of a delivery report, copied out of the producer's buffers.
    pub(crate) fn delivered(sent: Sent, msg: &BorrowedMessage<'_>, error: KafkaError) -> Refused {
        let headers = msg
            .headers()
            .map(|hs| {
                Headers(
                    hs.iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect(),
                )
            })
            .unwrap_or_default();
        Refused {
            record: ProduceRequest {
                topic: msg.topic().to_owned(),
                partition: Some(msg.partition()),
                hash_len: None,
                changelog: sent.kind == Kind::Changelog,
                key: msg.key().map(<[u8]>::to_vec),
                value: msg.payload().map(<[u8]>::to_vec),
                timestamp: sent.timestamp,
                headers,
            },
            kind: sent.kind,
            origin: sent.origin,
            error,
        }
    }

    /// The failure as the handler and `/readyz` name it: the input record's place, the output's.
    pub(crate) fn failure(&self) -> RecordFailure {
        let output = match self.record.partition {
            Some(p) => format!("{}-{p}", self.record.topic),
            None => self.record.topic.clone(),
        };
        let (topic, partition, offset) = match &self.origin.source {
            Some(raw) => (raw.topic.clone(), raw.partition, raw.offset),
            None => (String::new(), -1, -1),
        };
        RecordFailure {
            task: self.origin.task.to_string(),
            kind: FailureKind::Production,
            topic,
            partition,
            offset,
            message: format!("producing to {output}: {}", self.error),
        }
    }

    /// The error that stops the thread when this record may not be refused (a dead letter).
    pub(crate) fn fatal(&self) -> RuntimeError {
        RuntimeError::Delivery {
            topic: self.record.topic.clone(),
            partition: self.record.partition.unwrap_or(-1),
            class: ErrorClass::Fatal,
            source: self.error.clone(),
        }
    }

    /// The cause a transaction this refusal broke is aborted for.
    pub(crate) fn abort_cause(&self) -> RuntimeError {
        RuntimeError::Delivery {
            topic: self.record.topic.clone(),
            partition: self.record.partition.unwrap_or(-1),
            class: ErrorClass::Abortable,
            source: self.error.clone(),
        }
    }
}

pub(crate) use super::error::is_refusal;

/// A record refused only because a record of its batch was (the broker named the other).
fn is_collateral(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::InvalidDifferentRecord)
}

/// The Java exception Kafka's producer raises for `error`, as a dead-letter record names it.
fn exception(error: &KafkaError) -> &'static str {
    use RDKafkaErrorCode as C;
    match error.rdkafka_error_code() {
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize) => {
            "org.apache.kafka.common.errors.RecordTooLargeException"
        }
        Some(C::MessageBatchTooLarge) => {
            "org.apache.kafka.common.errors.RecordBatchTooLargeException"
        }
        Some(C::InvalidMessage) => "org.apache.kafka.common.errors.CorruptRecordException",
        Some(C::InvalidTimestamp) => "org.apache.kafka.common.errors.InvalidTimestampException",
        _ => "org.apache.kafka.common.InvalidRecordException",
    }
}

/// A record's identity across attempts: the same input reprocessed after an abort produces the
/// same bytes, and the broker judges the same bytes the same way.
pub(crate) fn fingerprint(out: &ProduceRequest) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        &out.topic,
        &out.key,
        &out.value,
        out.timestamp,
        &out.headers.0,
    )
        .hash(&mut h);
    h.finish()
}

/// Whether the broker refused for size: it compares a whole batch with `max.message.bytes`.
fn is_size(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(C::MessageSizeTooLarge | C::MessageBatchTooLarge | C::InvalidMessageSize)
    )
}

/// The bytes of a record that count against `max.message.bytes`, less the framing.
fn wire_size(out: &ProduceRequest) -> usize {
    let len = |b: &Option<Vec<u8>>| b.as_ref().map_or(0, Vec::len);
    len(&out.key)
        + len(&out.value)
        + out
            .headers
            .0
            .iter()
            .map(|(k, v)| k.len() + len(v))
            .sum::<usize>()
}

/// What one round of delivery reports refused, sorted.
#[derive(Default)]
pub(crate) struct Triage {
    /// Named by the broker: the only record refused for itself in the round.
    pub culprits: Vec<Refused>,
    /// Refused along with others, in what may have been one batch: to be sent alone, to see
    /// which the broker refuses.
    pub probes: Vec<Refused>,
    /// The probe is the largest record of a batch refused for size: if it passes alone no record
    /// is too large, the batches are.
    pub size_probe: bool,
    /// Refused only for their batch (the broker named another, or a size probe is larger): sent
    /// again as usual.
    pub bystanders: Vec<Refused>,
}

/// Sorts a round of refusals; a refused dead-letter record is a fatal error.
///
/// When the broker refused a batch for size, any record in it over the limit is as large as the
/// largest: that one alone is probed, and sending the others one by one (a round trip each) is
/// spared. Other refusals shared by several records (rare: a broker names the record it refuses
/// for its timestamp or contents) probe each.
pub(crate) fn triage(refused: Vec<Refused>) -> Result<Triage, RuntimeError> {
    if let Some(dead) = refused.iter().find(|r| r.kind == Kind::DeadLetter) {
        return Err(dead.fatal());
    }
    let (bystanders, mut named): (Vec<Refused>, Vec<Refused>) =
        refused.into_iter().partition(|r| is_collateral(&r.error));
    let mut triage = Triage {
        bystanders,
        ..Triage::default()
    };
    if named.len() == 1 {
        triage.culprits = named;
    } else if !named.is_empty() && named.iter().all(|r| is_size(&r.error)) {
        let largest = (0..named.len())
            .max_by_key(|&i| wire_size(&named[i].record))
            .unwrap_or(0);
        triage.probes.push(named.swap_remove(largest));
        triage.size_probe = true;
        triage.bystanders.extend(named);
    } else {
        triage.probes = named;
    }
    Ok(triage)
}

/// The error when the broker refuses for size a batch whose largest record passes alone: the
/// producer's batches are larger than the topic allows, which no replay mends.
pub(crate) fn batches_too_large(topic: &str) -> RuntimeError {
    RuntimeError::Other(format!(
        "the broker refuses batches to {topic} for their size although each record passes alone: lower the producer's batch.size (producer.batch.size) below the topic's max.message.bytes"
    ))
}

/// `production.exception.handler` with the dead-letter topic, and the counter of what it skips.
pub(crate) struct ProductionHandler {
    pub handler: ErrorHandler,
    pub dead_letter: Option<String>,
    /// `freshet_records_dropped`, per task.
    pub dropped: Family<TaskLabels, Counter>,
    /// `freshet_dead_letter_records`, per task.
    pub dead_letters: Family<TaskLabels, Counter>,
}

/// What the handler says of a refused record.
pub(crate) struct Verdict {
    /// The record to write to the dead-letter topic, if one is configured.
    pub dead_letter: Option<ProduceRequest>,
    /// `fail`: the failure that stops the thread; `None`: skipped, processing goes on.
    pub fail: Option<RecordFailure>,
}

impl ProductionHandler {
    /// Judges a refused record (a dead-letter record is never brought here): logs and counts it
    /// when skipped, and builds its dead letter.
    pub(crate) fn judge(&self, refused: &Refused) -> Verdict {
        let failure = refused.failure();
        let dead_letter = self.dead_letter.as_deref().map(|topic| {
            super::dead_letter_of(
                topic,
                refused.origin.source.as_ref(),
                refused.record.timestamp,
                &failure,
                exception(&refused.error),
            )
        });
        match self.handler {
            ErrorHandler::LogAndContinue => {
                warn!(
                    task = %failure.task, topic = %failure.topic, partition = failure.partition,
                    offset = failure.offset, output = %refused.record.topic, error = %refused.error,
                    dead_letter = ?self.dead_letter,
                    "production failed; skipping the record (log-and-continue)"
                );
                self.dropped
                    .get_or_create(&TaskLabels {
                        task: failure.task.clone(),
                    })
                    .inc();
                Verdict {
                    dead_letter,
                    fail: None,
                }
            }
            ErrorHandler::Fail => Verdict {
                dead_letter,
                fail: Some(failure),
            },
        }
    }
}

/// Fingerprints kept at most before the knowledge is dropped: refusals are rare, and what they
/// taught matters only until the transaction that replays them commits.
const WATCH_LIMIT: usize = 10_000;

/// Under exactly_once_v2: what the refusals of aborted transactions taught, by [`fingerprint`].
#[derive(Default)]
pub(crate) struct Watch {
    /// Refused along with others: sent alone when met again; `true` for a size probe.
    probes: HashMap<u64, bool>,
    /// Refused alone: handed to the handler when met again, never sent.
    refused: HashMap<u64, KafkaError>,
}

/// What to do with a record about to be sent under exactly_once_v2.
pub(crate) enum Plan {
    /// Nothing known of it.
    Send,
    /// A probe: alone in its batch, delivered before anything else is sent.
    SendAlone {
        /// Its fingerprint.
        fp: u64,
        /// The largest of a batch refused for size (see [`Triage::size_probe`]).
        size_probe: bool,
    },
    /// Known to be refused: to the handler, unsent, with the error it was refused with.
    Refuse(KafkaError),
}

impl Watch {
    /// What to do with `out`; no hashing while nothing is known.
    pub(crate) fn plan(&self, out: &ProduceRequest) -> Plan {
        if self.probes.is_empty() && self.refused.is_empty() {
            return Plan::Send;
        }
        let fp = fingerprint(out);
        if let Some(error) = self.refused.get(&fp) {
            Plan::Refuse(error.clone())
        } else if let Some(&size_probe) = self.probes.get(&fp) {
            Plan::SendAlone { fp, size_probe }
        } else {
            Plan::Send
        }
    }

    /// A probe sent alone was delivered.
    pub(crate) fn accepted(&mut self, fp: u64) {
        self.probes.remove(&fp);
    }

    /// Learns from the refusals of a transaction being aborted.
    pub(crate) fn learn(&mut self, refused: Vec<Refused>) -> Result<(), RuntimeError> {
        if refused.is_empty() {
            return Ok(());
        }
        if self.probes.len() + self.refused.len() > WATCH_LIMIT {
            *self = Watch::default();
        }
        let triage = triage(refused)?;
        for r in &triage.culprits {
            let fp = fingerprint(&r.record);
            self.probes.remove(&fp);
            self.refused.insert(fp, r.error.clone());
        }
        for r in &triage.probes {
            self.probes
                .insert(fingerprint(&r.record), triage.size_probe);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(kind: Kind, value: &[u8], code: RDKafkaErrorCode) -> Refused {
        Refused {
            kind,
            origin: Origin::new(&Arc::from("0_0"), None),
            record: ProduceRequest {
                topic: "out".into(),
                partition: Some(0),
                hash_len: None,
                changelog: false,
                key: None,
                value: Some(value.to_vec()),
                timestamp: 1,
                headers: Headers::default(),
            },
            error: KafkaError::MessageProduction(code),
        }
    }

    #[test]
    fn a_record_refused_alone_is_named_and_a_shared_refusal_probed() {
        use RDKafkaErrorCode as C;
        let alone = triage(vec![refused(Kind::Output, b"big", C::MessageSizeTooLarge)]).unwrap();
        assert_eq!(
            (alone.culprits.len(), alone.probes.len()),
            (1, 0),
            "refused alone: the culprit"
        );
        let batch = triage(vec![
            refused(Kind::Output, b"small", C::MessageSizeTooLarge),
            refused(Kind::Output, b"the big one", C::MessageSizeTooLarge),
            refused(Kind::Output, b"tiny", C::MessageSizeTooLarge),
        ])
        .unwrap();
        assert_eq!(
            (
                batch.culprits.len(),
                batch.probes.len(),
                batch.bystanders.len()
            ),
            (0, 1, 2),
            "a batch refused for size: its largest record probed"
        );
        assert!(batch.size_probe);
        assert_eq!(
            batch.probes[0].record.value.as_deref(),
            Some(&b"the big one"[..])
        );
        let named = triage(vec![
            refused(Kind::Output, b"late", C::InvalidTimestamp),
            refused(Kind::Output, b"fine", C::InvalidDifferentRecord),
        ])
        .unwrap();
        assert_eq!(
            (
                named.culprits.len(),
                named.probes.len(),
                named.bystanders.len()
            ),
            (1, 0, 1),
            "the broker named one record of the batch"
        );
        let unnamed = triage(vec![
            refused(Kind::Output, b"a", C::InvalidRecord),
            refused(Kind::Output, b"b", C::InvalidRecord),
        ])
        .unwrap();
        assert_eq!((unnamed.probes.len(), unnamed.size_probe), (2, false));
        assert!(
            triage(vec![refused(
                Kind::DeadLetter,
                b"x",
                C::MessageSizeTooLarge
            )])
            .is_err()
        );
    }

    #[test]
    fn the_failure_names_the_input_record_or_says_there_was_none() {
        let mut r = refused(Kind::Output, b"big", RDKafkaErrorCode::MessageSizeTooLarge);
        let none = r.failure();
        assert_eq!((none.partition, none.offset), (-1, -1));
        assert!(
            none.to_string().contains("punctuation or a cache flush")
                && none.message.contains("out-0"),
            "{none}"
        );
        let raw = RawRecord {
            topic: "orders".into(),
            partition: 2,
            offset: 42,
            timestamp: 7,
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            headers: Headers::default(),
        };
        r.origin = Origin::new(&Arc::from("0_2"), Some(raw));
        let named = r.failure();
        assert_eq!(
            named.to_string(),
            "task 0_2: production failed for the record at orders-2 offset 42: producing to out-0: Message production error: MessageSizeTooLarge (Broker: Message size too large)"
        );
        let handler = ProductionHandler {
            handler: ErrorHandler::LogAndContinue,
            dead_letter: Some("dlq".into()),
            dropped: Family::default(),
            dead_letters: Family::default(),
        };
        let verdict = handler.judge(&r);
        assert!(verdict.fail.is_none());
        let dead = verdict.dead_letter.expect("a dead letter");
        assert_eq!(
            (dead.key.as_deref(), dead.value.as_deref(), dead.timestamp),
            (Some(&b"k"[..]), Some(&b"v"[..]), 7),
            "the input record, not the refused output"
        );
        assert_eq!(
            dead.headers.last("__streams.errors.exception"),
            Some(&b"org.apache.kafka.common.errors.RecordTooLargeException"[..])
        );
        assert_eq!(
            dead.headers.last("__streams.errors.offset"),
            Some(&b"42"[..])
        );
        assert_eq!(
            handler
                .dropped
                .get_or_create(&TaskLabels { task: "0_2".into() })
                .get(),
            1
        );
    }

    #[test]
    fn the_watch_probes_alone_and_refuses_what_was_refused_alone() {
        use RDKafkaErrorCode as C;
        let mut watch = Watch::default();
        let big = || refused(Kind::Output, b"big", C::MessageSizeTooLarge);
        let small = || refused(Kind::Output, b"s", C::MessageSizeTooLarge);
        assert!(matches!(watch.plan(&big().record), Plan::Send));
        watch.learn(vec![big(), small()]).unwrap();
        let Plan::SendAlone { fp, size_probe } = watch.plan(&big().record) else {
            panic!("the largest is sent alone");
        };
        assert!(size_probe);
        assert!(
            matches!(watch.plan(&small().record), Plan::Send),
            "the smaller one goes as usual"
        );
        watch.accepted(fp);
        assert!(matches!(watch.plan(&big().record), Plan::Send));
        watch.learn(vec![big()]).unwrap();
        assert!(matches!(watch.plan(&big().record), Plan::Refuse(_)));
    }
}
