//! The node implementations the DSL wires together, one file per operator as Kafka Streams keeps
//! `KStreamAggregate` apart from `KGroupedStreamImpl`: each node processes erased records and
//! knows nothing of the typed builder API in [`crate::dsl`], which only creates them.
//!
//! [`common`] holds what several nodes share (table updates, erased serdes, aggregation
//! functions, store helpers, joiner types); no node file depends on another node file except on
//! [`stateless`]'s function types.

pub mod common;
pub mod fk_join;
pub mod kstream_aggregate;
pub mod kstream_globalktable_join;
pub mod kstream_kstream_join;
pub mod kstream_ktable_join;
pub mod kstream_window_aggregate;
pub mod ktable_aggregate;
pub mod ktable_ktable_join;
pub mod ktable_source;
pub mod ktable_stateless;
pub mod session_window_aggregate;
pub mod sink;
pub mod sliding_window_aggregate;
pub mod stateless;
pub mod suppress;

pub use common::{
    Aggregation, Aggregator, Change, ErasedSerde, Initializer, JoinKind, Joiner, RecordInfo,
    TableJoiner, Tombstone, WindowedKeyFn, change_serde, is_null, set_foreign_null,
};
pub use fk_join::ForeignKeyExtractor;
pub use kstream_globalktable_join::KeySelector;
pub use ktable_stateless::{NullFn, SelectFn};
pub use session_window_aggregate::Merger;
pub use sink::SinkNode;
pub use stateless::{Op, OpNode, PairFn, PairsFn, PeekFn, Predicate, ValueFn, ValuesFn};
pub use suppress::WindowOf;

// The nodes the DSL creates; they are built only through its builder API.
pub(crate) use kstream_aggregate::StreamAggregateNode;
pub(crate) use kstream_globalktable_join::GlobalJoinNode;
pub(crate) use kstream_kstream_join::{JoinTimesByTask, JoinWindowNode, Side, StreamJoinNode};
pub(crate) use kstream_ktable_join::StreamTableJoinNode;
pub(crate) use kstream_window_aggregate::TimeWindowAggregateNode;
pub(crate) use ktable_aggregate::TableAggregateNode;
pub(crate) use ktable_ktable_join::TableTableJoinNode;
pub(crate) use ktable_source::TableSourceNode;
pub(crate) use ktable_stateless::{table_filter, table_group_by, table_map_values, to_stream};
pub(crate) use session_window_aggregate::SessionWindowAggregateNode;
pub(crate) use sliding_window_aggregate::SlidingWindowAggregateNode;
pub(crate) use suppress::SuppressNode;
