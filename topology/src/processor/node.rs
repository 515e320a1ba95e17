//! The erased node interface every processor, DSL operation and sink implements.

use std::time::Duration;

use super::{ErasedRecord, Headers, ProcessError, ProduceRequest, PunctuationId, PunctuationType};
use crate::state::TaskStores;

/// Where the record being processed came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    /// The topic the record was read from (the runtime's name, application id prefix included).
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// Its timestamp, in ms since the Unix epoch.
    pub timestamp: i64,
    /// Its headers, as read.
    pub headers: Headers,
}

/// A record a node forwards: to every child, or to the child of that name.
pub struct Forward {
    /// The record forwarded.
    pub record: ErasedRecord,
    /// The name of the only child to receive it (Kafka Streams' `To.child`), or `None` for every
    /// child.
    pub child: Option<String>,
}

/// A punctuation a node asked for.
#[derive(Clone, Debug)]
pub struct ScheduledPunctuation {
    /// The id the node will be called back with in [`Node::punctuate`].
    pub id: PunctuationId,
    /// How often it fires (ms resolution; at least 1 ms).
    pub interval: Duration,
    /// On stream time or on the wall clock.
    pub kind: PunctuationType,
}

/// Where wall-clock time comes from: the system clock when running, a clock the test driver
/// moves by hand when testing (as Kafka's `TopologyTestDriver.advanceWallClockTime`).
#[derive(Clone, Debug, Default)]
pub enum WallClock {
    /// The system clock (when running).
    #[default]
    System,
    /// A clock in ms since the Unix epoch, moved by the test driver.
    Manual(std::sync::Arc<std::sync::atomic::AtomicI64>),
}

impl WallClock {
    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match self {
            WallClock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            WallClock::Manual(ms) => ms.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// The runtime side of a node's context: collects what the node emits while it runs.
#[derive(Default)]
pub struct NodeContext {
    /// The task's id, `<subtopology>_<partition>`.
    pub task_id: String,
    /// The record being processed; `None` during a punctuation.
    pub meta: Option<RecordMeta>,
    /// The task's stream time in ms: the largest record timestamp it has seen.
    pub stream_time: i64,
    /// What the current node forwarded; the task delivers it to the children after the node
    /// returns.
    pub forwards: Vec<Forward>,
    /// Records for Kafka (sinks' output), collected by the task after each record or punctuation.
    pub produced: Vec<ProduceRequest>,
    /// Punctuations asked for; the task registers those asked for during [`Node::init`].
    pub scheduled: Vec<ScheduledPunctuation>,
    /// Set by a node to ask for a commit before the commit interval elapses
    /// (Kafka Streams' `ProcessorContext.commit()`); the task clears it when read.
    pub commit_requested: bool,
    /// The task's state stores.
    pub stores: TaskStores,
    /// The process's global tables, for reading.
    pub globals: Option<std::sync::Arc<crate::state::GlobalStores>>,
    /// Records dropped because their window had closed, since the task last counted them.
    pub late_dropped: u64,
    /// How often left and outer stream-stream joins look for expired unjoined records
    /// (`__emit.interval.ms.kstreams.outer.join.spurious.results.fix__`).
    pub outer_join_emit_interval_ms: i64,
    /// The clock wall-clock punctuations and time-based emission read.
    pub wall_clock: WallClock,
    next_punctuation: usize,
}

impl NodeContext {
    /// A context for task `task_id`, with no stores and the default outer-join emit interval (1000
    /// ms).
    pub fn new(task_id: impl Into<String>) -> Self {
        NodeContext {
            task_id: task_id.into(),
            outer_join_emit_interval_ms: 1000,
            ..Default::default()
        }
    }

    /// Forwards `record` to every child, or to the child named `child` only.
    pub fn forward(&mut self, record: ErasedRecord, child: Option<&str>) {
        self.forwards.push(Forward {
            record,
            child: child.map(str::to_owned),
        });
    }

    /// Hands a record to the task for writing to Kafka.
    pub fn produce(&mut self, request: ProduceRequest) {
        self.produced.push(request);
    }

    /// Asks for a punctuation every `interval`; returns the id [`Node::punctuate`] receives.
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> PunctuationId {
        let id = PunctuationId(self.next_punctuation);
        self.next_punctuation += 1;
        self.scheduled
            .push(ScheduledPunctuation { id, interval, kind });
        id
    }
}

/// One node of a task's processor graph. Nodes are created per task from the topology's
/// factories, so a node may keep per-task state in `self`.
pub trait Node: Send {
    /// Called once per task before the first record: look up stores, schedule punctuations.
    fn init(&mut self, _ctx: &mut NodeContext) {}

    /// Called for each record that reaches the node; results are forwarded through `ctx`. An error
    /// fails the record, which `processing.exception.handler` then skips or stops the task on.
    fn process(&mut self, ctx: &mut NodeContext, record: &ErasedRecord)
    -> Result<(), ProcessError>;

    /// Called when the punctuation `id` is due, with the stream time or wall-clock time (ms) it
    /// fired at; `ctx.meta` is `None`.
    fn punctuate(
        &mut self,
        _ctx: &mut NodeContext,
        _id: PunctuationId,
        _timestamp: i64,
    ) -> Result<(), ProcessError> {
        Ok(())
    }

    /// Before a commit: forward what the node held back (updates a record cache collapsed).
    fn flush(&mut self, _ctx: &mut NodeContext) -> Result<(), ProcessError> {
        Ok(())
    }

    /// Called when the task closes.
    fn close(&mut self) {}
}
