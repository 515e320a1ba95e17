//! `task.timeout.ms` (Kafka Streams' KIP-572): how long work that keeps failing with retriable
//! errors — a commit while the brokers are away, a record waiting for room in the producer's
//! queue — is retried before the failure is fatal. With 0 the first failure is fatal; otherwise
//! the work is retried at least once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tracing::warn;

use super::error::RuntimeError;

/// How often a retried failure is logged again while it goes on.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// One piece of work's run of retriable failures (Kafka Streams' `Task.maybeInitTaskTimeoutOrThrow`).
#[derive(Debug)]
pub(crate) struct TaskTimeout {
    what: &'static str,
    limit: Duration,
    /// When the current run of failures began, and when it was last logged.
    failing: Option<(Instant, Instant)>,
    /// The application's shutdown flag: a close does not wait out the brokers.
    shutdown: Option<Arc<AtomicBool>>,
}

impl TaskTimeout {
    /// A tracker for `what` (`"committing offsets"`), with `task.timeout.ms` as `limit`.
    pub(crate) fn new(what: &'static str, limit: Duration) -> Self {
        TaskTimeout {
            what,
            limit,
            failing: None,
            shutdown: None,
        }
    }

    /// The same, giving up at once ([`RuntimeError::Interrupted`]) once `shutdown` is set.
    pub(crate) fn interruptible(mut self, shutdown: &Arc<AtomicBool>) -> Self {
        self.shutdown = Some(shutdown.clone());
        self
    }

    /// Notes a retriable failure: `Ok` while the work may be retried (logged at first and every
    /// few seconds after), [`RuntimeError::TaskTimeout`] once it has failed for longer than
    /// `task.timeout.ms`.
    pub(crate) fn retry(&mut self, error: RuntimeError) -> Result<(), RuntimeError> {
        if self
            .shutdown
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            return Err(RuntimeError::Interrupted {
                what: self.what.to_owned(),
                source: Box::new(error),
            });
        }
        let now = Instant::now();
        let (since, logged) = self.failing.get_or_insert((now, now));
        let waited = now.duration_since(*since);
        if waited > self.limit || self.limit.is_zero() {
            self.failing = None;
            return Err(RuntimeError::TaskTimeout {
                what: self.what.to_owned(),
                waited_secs: waited.as_secs(),
                limit_ms: self.limit.as_millis() as u64,
                source: Box::new(error),
            });
        }
        if waited.is_zero() || now.duration_since(*logged) >= LOG_EVERY {
            *logged = now;
            warn!(
                what = self.what,
                error = %error,
                failing_for_s = waited.as_secs(),
                task_timeout_ms = self.limit.as_millis() as u64,
                "retrying: the brokers may be away; giving up after task.timeout.ms"
            );
        }
        Ok(())
    }

    /// The work succeeded: a later failure starts a new run.
    pub(crate) fn succeeded(&mut self) {
        if let Some((since, _)) = self.failing.take() {
            tracing::info!(
                what = self.what,
                after_s = since.elapsed().as_secs(),
                "succeeded again after retriable failures"
            );
        }
    }

    /// Whether the work is failing now.
    pub(crate) fn is_failing(&self) -> bool {
        self.failing.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    fn transient() -> RuntimeError {
        RuntimeError::kafka(
            "committing offsets",
            KafkaError::MessageProduction(RDKafkaErrorCode::AllBrokersDown),
        )
    }

    #[test]
    fn zero_fails_at_once_and_a_success_starts_over() {
        let mut none = TaskTimeout::new("committing offsets", Duration::ZERO);
        let e = none.retry(transient()).expect_err("0 ms: no retry");
        assert!(e.to_string().contains("task.timeout.ms (0 ms)"), "{e}");

        let mut t = TaskTimeout::new("committing offsets", Duration::from_millis(50));
        t.retry(transient()).expect("first failure is retried");
        assert!(t.is_failing());
        t.succeeded();
        assert!(!t.is_failing());
        t.retry(transient()).expect("a new run");
        std::thread::sleep(Duration::from_millis(60));
        let e = t.retry(transient()).expect_err("beyond the limit");
        assert!(
            matches!(&e, RuntimeError::TaskTimeout { what, .. } if what == "committing offsets"),
            "{e:?}"
        );
        assert!(
            std::error::Error::source(&e).is_some(),
            "the last error is kept"
        );

        let stop = Arc::new(AtomicBool::new(true));
        let mut closing = TaskTimeout::new("aborting the transaction", Duration::from_secs(300))
            .interruptible(&stop);
        assert!(matches!(
            closing.retry(transient()),
            Err(RuntimeError::Interrupted { .. })
        ));
    }
}
