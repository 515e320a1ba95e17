//! The stateless stream operations (Kafka Streams' `KStreamFilter`, `KStreamMapValues`,
//! `KStreamMap`, `KStreamFlatMap`, `KStreamPeek`, `KStreamBranch`, `KStreamPassThrough`) as one
//! node over erased records, and the user function types they call.

use std::sync::Arc;

use crate::processor::{Datum, ErasedRecord, Node, NodeContext, ProcessError};

use super::common::RecordInfo;

/// Decides whether a record passes a filter or takes a branch: `(record, key, value)`.
pub type Predicate =
    Arc<dyn Fn(&RecordInfo, &Datum, &Datum) -> Result<bool, ProcessError> + Send + Sync>;
/// Computes one datum from `(record, key, value)`: a new value (`mapValues`) or key
/// (`selectKey`).
pub type ValueFn =
    Arc<dyn Fn(&RecordInfo, &Datum, &Datum) -> Result<Datum, ProcessError> + Send + Sync>;
/// Computes a new key and value from `(record, key, value)` (`map`).
pub type PairFn =
    Arc<dyn Fn(&RecordInfo, &Datum, &Datum) -> Result<(Datum, Datum), ProcessError> + Send + Sync>;
/// Computes zero or more new key-value pairs from `(record, key, value)` (`flatMap`).
pub type PairsFn = Arc<
    dyn Fn(&RecordInfo, &Datum, &Datum) -> Result<Vec<(Datum, Datum)>, ProcessError> + Send + Sync,
>;
/// Computes zero or more new values from `(record, key, value)` (`flatMapValues`).
pub type ValuesFn =
    Arc<dyn Fn(&RecordInfo, &Datum, &Datum) -> Result<Vec<Datum>, ProcessError> + Send + Sync>;
/// Observes `(record, key, value)` without changing it (`peek`).
pub type PeekFn =
    Arc<dyn Fn(&RecordInfo, &Datum, &Datum) -> Result<(), ProcessError> + Send + Sync>;

/// One stateless operation.
#[derive(Clone)]
pub enum Op {
    /// Forwards the records whose predicate result equals `keep_when` (Kafka Streams'
    /// `KStreamFilter`).
    Filter {
        /// The user's predicate.
        predicate: Predicate,
        /// `true` for `filter` (keep what the predicate accepts), `false` for `filterNot`.
        keep_when: bool,
    },
    /// Replaces the value, keeping key, timestamp and headers (`KStreamMapValues`).
    MapValues(ValueFn),
    /// Replaces key and value (`KStreamMap`).
    Map(PairFn),
    /// Replaces the key, keeping the value (`selectKey`, a `KStreamMap` in Kafka Streams).
    SelectKey(ValueFn),
    /// Forwards each pair the function returns (`KStreamFlatMap`).
    FlatMap(PairsFn),
    /// Forwards each value the function returns, with the record's key (`KStreamFlatMapValues`).
    FlatMapValues(ValuesFn),
    /// Calls the function and forwards the record unchanged (`KStreamPeek`).
    Peek(PeekFn),
    /// Branches of a split: the first whose predicate holds (a `None` predicate always holds)
    /// receives the record, by child name.
    Split(Vec<(Option<Predicate>, String)>),
    /// Forwards unchanged: merge, and the branch children of a split.
    PassThrough,
}

/// The node that runs one [`Op`] on each record, forwarding with the input's timestamp and headers.
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
