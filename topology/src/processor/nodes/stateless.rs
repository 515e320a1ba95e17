//! The stateless stream operations (Kafka Streams' `KStreamFilter`, `KStreamMapValues`,
//! `KStreamMap`, `KStreamFlatMap`, `KStreamPeek`, `KStreamBranch`, `KStreamPassThrough`) as one
//! node over erased records, and the user function types they call.

use std::sync::Arc;

use crate::processor::{Datum, ErasedRecord, Node, NodeContext, ProcessError};

use super::common::RecordInfo;

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
