//! Flushing the stream thread's producer as soon as its records are delivered.
//!
//! rust-rdkafka's `BaseProducer::flush` calls `rd_kafka_flush` without waiting, then serves
//! delivery reports with `BaseProducer::poll` for up to 100 ms at a time; that poll returns only
//! when its timeout has passed, even after the last report. Every flush with a record in flight
//! therefore took 100 ms or a multiple of it, and `linger.ms` (100 ms, as in Kafka Streams) held
//! the records meanwhile, since librdkafka ignores it only while a `rd_kafka_flush` call lasts.
//! Under exactly_once_v2 that flush opens every commit, so each record waited for it: measured
//! with a commit interval of 100 ms, flushes took 100 to 200 ms and the p99 end-to-end latency
//! was about 510 ms (Java Kafka Streams: 130 ms). At-least-once commits flush too.
//!
//! Here a scoped thread holds `rd_kafka_flush` for the whole wait, so librdkafka sends at once,
//! while the caller serves the delivery reports in 1 ms steps: `BaseProducer` receives them as
//! events, and a record counts as in flight until its report's event is served, which
//! `rd_kafka_flush` cannot do itself.

use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

/// How long each serving of delivery reports lasts while the flush waits.
const SERVE_STEP: Duration = Duration::from_millis(1);

/// The producer's librdkafka handle, moved to the thread that waits for the flush.
struct Handle(*mut rd::rd_kafka_t);

// SAFETY: librdkafka's handles may be used from any thread; `rd_kafka_flush` only waits on the
// handle's message count (delivery reports are events here, served by the caller), and the
// producer outlives the scoped thread that uses the handle.
unsafe impl Send for Handle {}

/// Waits until every record `producer` has in flight is delivered or refused, at most
/// `timeout`, serving their delivery reports on the calling thread; `KafkaError::Flush` when
/// some remain at the timeout.
pub(crate) fn flush<C: ProducerContext>(
    producer: &BaseProducer<C>,
    timeout: Duration,
) -> KafkaResult<()> {
    producer.poll(Duration::ZERO);
    if producer.in_flight_count() == 0 {
        return Ok(());
    }
    let handle = Handle(producer.client().native_ptr());
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let code = std::thread::scope(|scope| {
        let waiter = std::thread::Builder::new()
            .name("freshet-flush".to_owned())
            .spawn_scoped(scope, move || {
                let handle = handle;
                // SAFETY: see `Handle`; the producer is borrowed for the whole scope.
                unsafe { rd::rd_kafka_flush(handle.0, timeout_ms) }
            });
        let Ok(waiter) = waiter else {
            // No thread to be had (the process at its limit): flush the slow way.
            return None;
        };
        while !waiter.is_finished() {
            producer.poll(SERVE_STEP);
        }
        Some(waiter.join())
    });
    let Some(code) = code else {
        return producer.flush(timeout);
    };
    producer.poll(Duration::ZERO);
    match code {
        Ok(rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR) => Ok(()),
        Ok(code) => Err(KafkaError::Flush(RDKafkaErrorCode::from(code))),
        // The waiting thread only calls librdkafka, which does not panic; if it did, the
        // records' fate is unknown, as after a timeout.
        Err(_) => Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)),
    }
}
