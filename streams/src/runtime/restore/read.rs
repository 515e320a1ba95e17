//! Reading partitions to their end (a changelog while restoring, the global tables' topics while
//! loading) through a broker that may be away for a while.
//!
//! librdkafka reports a broker it cannot reach (transport failures, all brokers down, timeouts)
//! as errors that clear by themselves once it reconnects: those are waited out, with a warning
//! naming what is waited for, until nothing has progressed for the [`Patience`]'s limit (Kafka
//! Streams' `task.timeout.ms` for restoration: a task that cannot progress that long fails).
//! Any other error ends the read at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use tracing::warn;

use super::super::error::{ErrorClass, ReadError, Stall};
use crate::state::StateError;

/// How long a read may make no progress before it says what it waits for.
const WARN_AFTER: Duration = Duration::from_secs(5);
/// How often it says it again.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Between two tries of a request that failed at once (no broker to send it to).
const RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// How long one watermark request may take before it is tried again.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The least a read waits for a record when no error says why none comes, whatever the limit:
/// `task.timeout.ms=0` means "fail at the first error", and a first fetch may take a moment.
const MIN_SILENT_WAIT: Duration = Duration::from_secs(10);

/// How long a read waits without progress, and what it is, for logs and errors.
pub(crate) struct Patience<'a> {
    /// How long transient errors may go on before the read fails (`0`: at the first one); with
    /// no error, how long without a record (at least [`MIN_SILENT_WAIT`]).
    pub limit: Duration,
    /// What sets the limit, for the error (`task.timeout.ms`).
    pub limit_name: &'static str,
    /// What is being read, for logs (`restoring store 'counts' of task 0_1`).
    pub what: &'a str,
    /// Set by someone else to end a read early (a restoring task revoked): [`read_to_end`]
    /// returns at its next poll as if done; the caller tells the two apart by this flag.
    pub stop: Option<&'a AtomicBool>,
}

impl Patience<'_> {
    /// Logs, at most every [`WARN_EVERY`], that `waiting_for` has not progressed since `since`.
    fn warn_waiting(
        &self,
        since: Instant,
        last_warning: &mut Option<Instant>,
        waiting_for: &dyn Fn() -> String,
        last_error: Option<&KafkaError>,
    ) {
        let waited = since.elapsed();
        if waited < WARN_AFTER || last_warning.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            return;
        }
        *last_warning = Some(Instant::now());
        warn!(
            what = self.what,
            waiting_for = %waiting_for(),
            last_error = %last_error.map_or_else(|| "none".to_owned(), ToString::to_string),
            waited_s = waited.as_secs(),
            gives_up_after_s = self.limit.as_secs(),
            "{}: no progress, waiting for the broker; gives up after {} ({} s) without progress",
            self.what,
            self.limit_name,
            self.limit.as_secs()
        );
    }
}

/// Whether an error of a request (not of the poll) clears by itself once the broker is back.
fn transient(e: &KafkaError) -> bool {
    ErrorClass::of(e) == ErrorClass::Retriable
}

/// Whether an error the consumer's poll returned clears by itself once the broker is back
/// ([`ErrorClass::of_consumer`]). An offset the partition no longer holds never does: the caller
/// must know (restoration takes it for a corrupted store).
fn transient_poll(e: &KafkaError) -> bool {
    !matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset)
    ) && ErrorClass::of_consumer(e) == ErrorClass::Retriable
}

/// The low and high watermarks of `topic`-`partition`, asking again while the broker is away
/// (a retriable error) until `patience` runs out.
pub(crate) fn watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    patience: &Patience<'_>,
) -> Result<(i64, i64), ReadError> {
    let started = Instant::now();
    let mut last_warning = None;
    loop {
        let asked = Instant::now();
        match consumer.fetch_watermarks(topic, partition, REQUEST_TIMEOUT) {
            Ok(w) => return Ok(w),
            Err(e) if transient(&e) && started.elapsed() < patience.limit => {
                patience.warn_waiting(
                    started,
                    &mut last_warning,
                    &|| format!("the offsets of {topic}-{partition}"),
                    Some(&e),
                );
                if asked.elapsed() < RETRY_BACKOFF {
                    std::thread::sleep(RETRY_BACKOFF);
                }
            }
            Err(e) if transient(&e) => {
                return Err(ReadError::TimedOut {
                    seconds: started.elapsed().as_secs(),
                    limit_name: patience.limit_name,
                    source: Box::new(e),
                });
            }
            Err(e) => return Err(ReadError::Consume(e)),
        }
    }
}

/// Polls the assigned partitions until each has reached its end offset in `ends`, handing every
/// record to `apply`. A partition whose last offsets were compacted away is done once the
/// consumer's position reaches its end. Errors of a broker that is away are waited out; the
/// read fails after `patience.limit` without a record.
pub(crate) fn read_to_end(
    consumer: &BaseConsumer,
    mut ends: HashMap<(String, i32), i64>,
    patience: &Patience<'_>,
    mut apply: impl FnMut(&BorrowedMessage<'_>) -> Result<(), StateError>,
) -> Result<(), ReadError> {
    let mut last_progress = Instant::now();
    let mut last_warning = None;
    let mut last_error: Option<KafkaError> = None;
    let left = |ends: &HashMap<(String, i32), i64>| -> String {
        let mut left: Vec<String> = ends
            .iter()
            .map(|((t, p), end)| format!("{t}-{p} up to offset {end}"))
            .collect();
        left.sort();
        left.join(", ")
    };
    while !ends.is_empty() {
        if patience.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Ok(());
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                last_progress = Instant::now();
                last_error = None;
                apply(&msg).map_err(|e| ReadError::Apply(Arc::new(e)))?;
                let key = (msg.topic().to_owned(), msg.partition());
                if ends.get(&key).is_some_and(|end| msg.offset() + 1 >= *end) {
                    ends.remove(&key);
                }
                continue;
            }
            // librdkafka reconnects by itself; the error only says why nothing arrives.
            Some(Err(e)) if transient_poll(&e) && !patience.limit.is_zero() => last_error = Some(e),
            Some(Err(e)) => return Err(ReadError::Consume(e)),
            None => {
                if let Ok(positions) = consumer.position() {
                    ends.retain(|(t, p), end| {
                        positions
                            .find_partition(t, *p)
                            .and_then(|e| e.offset().to_raw())
                            .is_none_or(|pos| pos < *end)
                    });
                }
            }
        }
        if ends.is_empty() {
            break;
        }
        let limit = if last_error.is_some() {
            patience.limit
        } else {
            patience.limit.max(MIN_SILENT_WAIT)
        };
        if last_progress.elapsed() > limit {
            return Err(ReadError::Stalled(Box::new(Stall {
                seconds: last_progress.elapsed().as_secs(),
                limit_name: patience.limit_name,
                left: left(&ends),
                last_error: last_error.map(|e| e.to_string()),
            })));
        }
        patience.warn_waiting(
            last_progress,
            &mut last_warning,
            &|| left(&ends),
            last_error.as_ref(),
        );
    }
    Ok(())
}
