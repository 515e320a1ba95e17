//! Partitions whose starting positions could not be learnt when they were assigned.
//!
//! When partitions are assigned, librdkafka reads their committed offsets (OffsetFetch) before
//! it fetches from them, and the rebalance callback reads them too, for the tasks. That read can
//! fail: a group coordinator still loading after a broker restart, a coordinator that moved,
//! offsets held by another producer's open transaction under read_committed (KIP-447's
//! `UNSTABLE_OFFSET_COMMIT`). librdkafka retries some of these itself; after a request-level
//! error it never starts the partitions at all (confluentinc/librdkafka#5586), and the thread
//! stays RUNNING while it fetches nothing — what the fault tests met after a broker restart.
//!
//! So the callback no longer drops the error: it records the partitions here and logs why, and
//! the run loop reads their committed offsets again every few seconds. Once it can, it restarts
//! them there explicitly — under the classic (eager) protocol, an `assign` with offsets, which
//! starts fetching without an OffsetFetch. Partitions that delivered records meanwhile keep
//! their position, so nothing is read twice or skipped. Under KIP-848 (`group.protocol=consumer`)
//! the assignment belongs to librdkafka's reconciliation, so the loop only reports the positions
//! once they are readable.

use std::time::{Duration, Instant};

use std::collections::HashMap;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use super::error::RuntimeError;
use super::repeats::Repeats;
use crate::config::{GroupProtocol, StreamsConfig};

/// How often the run loop reads the committed offsets again.
const RETRY_EVERY: Duration = Duration::from_secs(3);
/// How long one such read may take: the loop processes the other partitions meanwhile.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a read that keeps failing is logged again.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// How long a recovery waits for the committed offsets (it rejoins the group when they do not
/// come).
pub(crate) const COMMITTED_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the rebalance callback waits for them: the run loop reads again what does not come
/// in time, so the callback need not hold the poll long.
pub(crate) const ASSIGNED_TIMEOUT: Duration = Duration::from_secs(5);

/// The committed offsets of `partitions` (those without one are left out), read within
/// `timeout`.
pub(crate) fn committed_offsets(
    consumer: &BaseConsumer<impl ConsumerContext>,
    partitions: &TopicPartitionList,
    timeout: Duration,
) -> Result<HashMap<(String, i32), i64>, RuntimeError> {
    let tpl = consumer
        .committed_offsets(partitions.clone(), timeout)
        .map_err(|e| RuntimeError::kafka("reading the committed offsets", e))?;
    Ok(tpl
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_owned(), e.partition()), o)),
            _ => None,
        })
        .collect())
}

/// Where a partition without a committed offset starts: `auto.offset.reset` (Kafka Streams'
/// default: earliest).
pub(crate) fn reset_offset(config: &StreamsConfig) -> Offset {
    match config
        .consumer
        .iter()
        .find(|(k, _)| k == "auto.offset.reset")
        .map(|(_, v)| v.as_str())
    {
        Some("latest" | "largest" | "end") => Offset::End,
        _ => Offset::Beginning,
    }
}

/// Assigned partitions whose committed offsets were not read yet.
#[derive(Debug)]
pub(crate) struct UnknownPositions {
    partitions: Vec<(String, i32)>,
    since: Instant,
    next_try: Instant,
    failures: Repeats,
}

impl UnknownPositions {
    /// Records `partitions` (just assigned) after reading their committed offsets failed with
    /// `cause`.
    pub fn new(thread: usize, partitions: Vec<(String, i32)>, cause: &RuntimeError) -> Self {
        warn!(
            thread,
            partitions = partitions.len(),
            %cause,
            "the committed offsets of the assigned partitions could not be read; trying again every {}s, then starting the partitions there",
            RETRY_EVERY.as_secs()
        );
        UnknownPositions {
            partitions,
            since: Instant::now(),
            next_try: Instant::now() + RETRY_EVERY,
            failures: Repeats::every(LOG_EVERY),
        }
    }

    /// Adds partitions assigned later (incremental rebalancing) whose read failed too.
    pub fn extend(&mut self, partitions: Vec<(String, i32)>) {
        for p in partitions {
            if !self.partitions.contains(&p) {
                self.partitions.push(p);
            }
        }
    }

    /// Forgets revoked partitions; true when none is left.
    pub fn revoke(&mut self, revoked: &[(String, i32)]) -> bool {
        self.partitions.retain(|p| !revoked.contains(p));
        self.partitions.is_empty()
    }

    /// Whether the next read is due.
    pub fn due(&self) -> bool {
        Instant::now() >= self.next_try
    }

    /// Reads the committed offsets again and, once that works, restarts the partitions at
    /// them (see the module). Ok(true) when the positions are known now; a read that fails
    /// again is logged now and then and tried later.
    pub fn resolve(
        &mut self,
        thread: usize,
        consumer: &BaseConsumer<impl ConsumerContext>,
        config: &StreamsConfig,
        protocol: GroupProtocol,
    ) -> Result<bool, RuntimeError> {
        self.next_try = Instant::now() + RETRY_EVERY;
        let mut wanted = TopicPartitionList::new();
        for (topic, partition) in &self.partitions {
            wanted.add_partition(topic, *partition);
        }
        let committed = match committed_offsets(consumer, &wanted, READ_TIMEOUT) {
            Ok(c) => c,
            Err(e) => {
                if self.failures.should_log(&e.to_string()) {
                    warn!(thread, error = %e, waited_s = self.since.elapsed().as_secs(), "the committed offsets of the assigned partitions still cannot be read");
                }
                return Ok(false);
            }
        };
        if protocol != GroupProtocol::Classic {
            info!(
                thread,
                waited_s = self.since.elapsed().as_secs(),
                "the committed offsets of the assigned partitions are readable again"
            );
            return Ok(true);
        }
        // An eager assign replaces the whole assignment: every partition gets a position, the
        // one it has reached where it delivered records, else its committed offset.
        let assignment = consumer
            .assignment()
            .map_err(|e| RuntimeError::kafka("reading the assignment", e))?;
        let positions = consumer
            .position()
            .map_err(|e| RuntimeError::kafka("reading the fetch positions", e))?;
        let reset = reset_offset(config);
        let mut restart = TopicPartitionList::new();
        let mut from_commit = 0;
        for e in assignment.elements() {
            let key = (e.topic().to_owned(), e.partition());
            let reached = positions
                .find_partition(e.topic(), e.partition())
                .and_then(|p| p.offset().to_raw())
                .filter(|o| *o >= 0);
            let offset = match (reached, committed.get(&key)) {
                (Some(o), _) => Offset::Offset(o),
                (None, Some(o)) => {
                    from_commit += 1;
                    Offset::Offset(*o)
                }
                (None, None) if self.partitions.contains(&key) => {
                    from_commit += 1;
                    reset
                }
                // Fetching already, without a record delivered yet: where librdkafka put it.
                (None, None) => Offset::Stored,
            };
            restart
                .add_partition_offset(e.topic(), e.partition(), offset)
                .map_err(|e| RuntimeError::kafka("listing the offsets to start at", e))?;
        }
        consumer
            .assign(&restart)
            .map_err(|e| RuntimeError::kafka("restarting the partitions at their offsets", e))?;
        info!(
            thread,
            partitions = restart.count(),
            at_committed = from_commit,
            waited_s = self.since.elapsed().as_secs(),
            "committed offsets read; the assigned partitions restarted at them"
        );
        Ok(true)
    }
}
