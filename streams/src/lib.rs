//! Freshet's stream-processing library: Kafka Streams semantics on librdkafka and RocksDB.
//!
//! - [`dsl`]: `StreamsBuilder`, `KStream`, `KTable`, grouped and windowed streams: the Kafka
//!   Streams DSL, typed over key and value.
//! - [`processor`]: the Processor API (`Processor`, `ProcessorContext`, punctuation) and the node
//!   implementations.
//! - [`topology`]: the processor graph, sub-topologies, tasks, `describe()`.
//! - [`runtime`]: `KafkaStreams`: stream threads, tasks, commits, rebalances, error handling.
//! - [`config`]: Kafka Streams and librdkafka properties, resolved with precedence.
//! - [`serdes`]: keys and values in the bytes Kafka's own serializers write.
//! - [`state`]: key-value, window and session stores (RocksDB, in memory) with their record
//!   cache, changelogs, checkpoints, memory budget and task directories.
//! - [`TopologyTestDriver`]: a topology run in-process, without a broker, for tests.
//!
//! The build side (DSL, processors, graph, serdes, config) is the `freshet-topology` crate,
//! re-exported here: the operator plans applications with it without linking this runtime.

#![warn(missing_docs)]

pub use freshet_topology::{config, dsl, processor, serdes, topology, windows};

pub mod runtime;
pub mod state;
pub mod test_driver;

pub use test_driver::TopologyTestDriver;
