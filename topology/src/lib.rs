//! Kafka Streams topologies without a runtime: everything needed to build, check and describe an
//! application, and nothing that runs it (no RocksDB, no Kafka client).
//!
//! The operator plans applications with this crate alone; `freshet-streams` re-exports its
//! modules and adds the runtime, so users see one library.
//!
//! - [`dsl`]: `StreamsBuilder`, `KStream`, `KTable`, grouped and windowed streams, typed over key
//!   and value, with their option types in [`dsl::options`].
//! - [`processor`]: the Processor API, and in [`processor::nodes`] the node implementations the
//!   DSL wires together, one file per operator.
//! - [`windows`]: the window specifications of windowed aggregations and joins.
//! - [`topology`]: the processor graph, sub-topologies, tasks, `describe()`.
//! - [`config`]: Kafka Streams and librdkafka properties, resolved with precedence.
//! - [`serdes`]: keys and values in the bytes Kafka's own serializers write.
//! - [`state`]: the store interfaces a task's processors see, in-memory stores, the record cache
//!   and the window key layout (RocksDB stores live in `freshet-streams`).

#![warn(missing_docs)]

pub mod config;
pub mod dsl;
pub mod duration;
pub mod naming;
pub mod processor;
pub mod record;
pub mod serdes;
pub mod state;
pub mod sync;
pub mod topology;
pub mod windows;
