//! The stateless operations as graph nodes, over erased records.

use std::sync::Arc;

use crate::processor::{
    Datum, ErasedRecord, Node, NodeContext, ProcessError, ProduceRequest, RecordMeta,
};
use crate::topology::{Serializer, SinkTarget};

/// What an operation's function sees besides key and value.
pub struct RecordInfo<'a> {
    pub timestamp: i64,
    pub headers: &'a crate::processor::Headers,
    /// Topic, partition and offset of the input record this one derives from.
    pub meta: Option<&'a RecordMeta>,
}

pub type Predicate =
    Arc<dyn Fn(&RecordInfo, &Datum, &Datum) -> Result<bool, ProcessError> + Send + Sync>;
pub type ValueFn =
    Arc<dyn Fn(&RecordInfo, &Datum, &Datum) -> Result<Datum, ProcessError> + Send + Sync>;
pub type PairFn =
    Arc<dyn Fn(&RecordInfo, &Datum, &Datum) -> Result<(Datum, Datum), ProcessError> + Send + Sync>;
pub type PairsFn = Arc<
    dyn Fn(&RecordInfo, &Datum, &Datum) -> Result<Vec<(Datum, Datum)>, ProcessError> + Send + Sync,
>;
pub type ValuesFn =
    Arc<dyn Fn(&RecordInfo, &Datum, &Datum) -> Result<Vec<Datum>, ProcessError> + Send + Sync>;
pub type PeekFn =
    Arc<dyn Fn(&RecordInfo, &Datum, &Datum) -> Result<(), ProcessError> + Send + Sync>;

/// One stateless operation.
#[derive(Clone)]
pub enum Op {
    Filter {
        predicate: Predicate,
        keep_when: bool,
    },
    MapValues(ValueFn),
    Map(PairFn),
    SelectKey(ValueFn),
    FlatMap(PairsFn),
    FlatMapValues(ValuesFn),
    Peek(PeekFn),
    /// Branches of a split: the first whose predicate holds (a `None` predicate always holds)
    /// receives the record, by child name.
    Split(Vec<(Option<Predicate>, String)>),
    /// Forwards unchanged: merge, and the branch children of a split.
    PassThrough,
}

pub struct OpNode(pub Op);

impl Node for OpNode {
    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let info = RecordInfo {
            timestamp: record.timestamp,
            headers: &record.headers,
            meta: ctx.meta.as_ref(),
        };
        let (k, v) = (&record.key, &record.value);
        let with = |key: Datum, value: Datum| ErasedRecord {
            key,
            value,
            timestamp: record.timestamp,
            headers: record.headers.clone(),
        };
        match &self.0 {
            Op::Filter {
                predicate,
                keep_when,
            } => {
                if predicate(&info, k, v)? == *keep_when {
                    ctx.forward(record.clone(), None);
                }
            }
            Op::MapValues(f) => {
                let value = f(&info, k, v)?;
                ctx.forward(with(k.clone(), value), None);
            }
            Op::Map(f) => {
                let (key, value) = f(&info, k, v)?;
                ctx.forward(with(key, value), None);
            }
            Op::SelectKey(f) => {
                let key = f(&info, k, v)?;
                ctx.forward(with(key, v.clone()), None);
            }
            Op::FlatMap(f) => {
                for (key, value) in f(&info, k, v)? {
                    ctx.forward(with(key, value), None);
                }
            }
            Op::FlatMapValues(f) => {
                for value in f(&info, k, v)? {
                    ctx.forward(with(k.clone(), value), None);
                }
            }
            Op::Peek(f) => {
                f(&info, k, v)?;
                ctx.forward(record.clone(), None);
            }
            Op::Split(branches) => {
                for (predicate, child) in branches {
                    let taken = match predicate {
                        None => true,
                        Some(p) => p(&info, k, v)?,
                    };
                    if taken {
                        ctx.forward(record.clone(), Some(child));
                        break;
                    }
                }
            }
            Op::PassThrough => ctx.forward(record.clone(), None),
        }
        Ok(())
    }
}

/// Writes records to Kafka: a fixed topic or one chosen per record.
pub struct SinkNode {
    pub target: SinkTarget,
    /// Trailing key bytes (a window) the partitioner ignores.
    pub window_suffix: usize,
    pub resolved_topic: Option<String>,
    pub key: Serializer,
    pub value: Serializer,
}

impl Node for SinkNode {
    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let topic = match (&self.resolved_topic, &self.target) {
            (Some(t), _) => t.clone(),
            (None, SinkTarget::Extractor { extractor, .. }) => {
                let topic = extractor(record)?;
                if topic.is_empty() {
                    return Err(ProcessError::new(
                        "the topic expression returned an empty topic name",
                    ));
                }
                topic
            }
            (None, SinkTarget::Topic(t)) => t.described().to_owned(),
        };
        let key = (self.key)(&record.key)?;
        let value = (self.value)(&record.value)?;
        let hash_len = match (&key, self.window_suffix) {
            (Some(k), suffix) if suffix > 0 => Some(k.len().saturating_sub(suffix)),
            _ => None,
        };
        ctx.produce(ProduceRequest {
            partition: None,
            hash_len,
            changelog: false,
            topic,
            key,
            value,
            timestamp: record.timestamp,
            headers: (*record.headers).clone(),
        });
        Ok(())
    }
}
