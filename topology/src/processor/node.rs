//! The erased node interface every processor, DSL operation and sink implements.

use std::time::Duration;

use super::{ErasedRecord, Headers, ProcessError, ProduceRequest, PunctuationId, PunctuationType};
use crate::state::TaskStores;

/// Where the record being processed came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub headers: Headers,
}

/// A record a node forwards: to every child, or to the child of that name.
pub struct Forward {
    pub record: ErasedRecord,
    pub child: Option<String>,
}

/// A punctuation a node asked for.
#[derive(Clone, Debug)]
pub struct ScheduledPunctuation {
    pub id: PunctuationId,
    pub interval: Duration,
    pub kind: PunctuationType,
}

/// Where wall-clock time comes from: the system clock when running, a clock the test driver
/// moves by hand when testing (as Kafka's `TopologyTestDriver.advanceWallClockTime`).
#[derive(Clone, Debug, Default)]
pub enum WallClock {
    #[default]
    System,
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
    pub task_id: String,
    pub meta: Option<RecordMeta>,
    pub stream_time: i64,
    pub forwards: Vec<Forward>,
    pub produced: Vec<ProduceRequest>,
    pub scheduled: Vec<ScheduledPunctuation>,
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
    pub fn new(task_id: impl Into<String>) -> Self {
        NodeContext {
            task_id: task_id.into(),
            outer_join_emit_interval_ms: 1000,
            ..Default::default()
        }
    }

    pub fn forward(&mut self, record: ErasedRecord, child: Option<&str>) {
        self.forwards.push(Forward {
            record,
            child: child.map(str::to_owned),
        });
    }

    pub fn produce(&mut self, request: ProduceRequest) {
        self.produced.push(request);
    }

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
    fn init(&mut self, _ctx: &mut NodeContext) {}

    fn process(&mut self, ctx: &mut NodeContext, record: &ErasedRecord)
    -> Result<(), ProcessError>;

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

    fn close(&mut self) {}
}
