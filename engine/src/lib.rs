//! Freshet's stream-processing engine: Kafka Streams semantics on librdkafka and RocksDB.
//!
//! - [`dsl`]: `StreamsBuilder`, `KStream`, `KTable`, grouped and windowed streams: the Kafka
//!   Streams DSL, typed over key and value.
//! - [`processor`]: the Processor API (`Processor`, `ProcessorContext`, punctuation).
//! - [`topology`]: the processor graph, sub-topologies, tasks, `describe()`.
//! - [`runtime`]: `KafkaStreams`: stream threads, tasks, commits, rebalances, error handling.
//! - [`spec`]: declarative topologies (YAML manifests with CEL expressions).
//! - [`config`]: Kafka Streams and librdkafka properties, resolved with precedence.
//! - [`serdes`]: keys and values in the bytes Kafka's own serializers write.
//! - [`state`]: key-value, window and session stores (RocksDB, in memory) with their record
//!   cache, changelogs, checkpoints, memory budget and task directories.

pub mod config;
pub mod dsl;
pub mod expr;
pub mod http;
pub mod processor;
pub mod runtime;
pub mod serdes;
pub mod spec;
pub mod state;
pub mod topology;
