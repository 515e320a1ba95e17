//! The options of DSL operations, as Kafka Streams has them: how sources read
//! ([`Consumed`]), sinks write ([`Produced`]), groupings and repartitions name and size their
//! topics ([`Grouped`], [`Repartitioned`]), and stores are named and kept ([`Materialized`],
//! [`StoreSpec`]).

use std::sync::Arc;

use crate::serdes::{DefaultSerde, Serde};

use super::{Data, deserializer, serializer};
use crate::processor::nodes::ErasedSerde;

/// How a source reads its keys and values (Kafka Streams' `Consumed`).
pub struct Consumed<K, V> {
    /// Deserializes the record keys.
    pub key: Arc<dyn Serde<K>>,
    /// Deserializes the record values.
    pub value: Arc<dyn Serde<V>>,
    /// The source node's name; `None` for a generated `KSTREAM-SOURCE-NNNNNNNNNN`.
    pub name: Option<String>,
}

impl<K: 'static, V: 'static> Consumed<K, V> {
    /// Reads with these serdes (Kafka Streams' `Consumed.with(keySerde, valueSerde)`).
    pub fn with(key: Arc<dyn Serde<K>>, value: Arc<dyn Serde<V>>) -> Self {
        Consumed {
            key,
            value,
            name: None,
        }
    }

    /// Names the source node (Kafka Streams' `Consumed.as` / `withName`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How a sink writes its keys and values (Kafka Streams' `Produced`).
pub struct Produced<K, V> {
    /// Serializes the record keys; a windowed key serde makes the sink partition by the inner key.
    pub key: Arc<dyn Serde<K>>,
    /// Serializes the record values.
    pub value: Arc<dyn Serde<V>>,
    /// The sink node's name; `None` for a generated `KSTREAM-SINK-NNNNNNNNNN`.
    pub name: Option<String>,
}

impl<K: 'static, V: 'static> Produced<K, V> {
    /// Writes with these serdes (Kafka Streams' `Produced.with(keySerde, valueSerde)`).
    pub fn with(key: Arc<dyn Serde<K>>, value: Arc<dyn Serde<V>>) -> Self {
        Produced {
            key,
            value,
            name: None,
        }
    }

    /// Names the sink node (Kafka Streams' `Produced.as` / `withName`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl<K: DefaultSerde, V: DefaultSerde> Default for Produced<K, V> {
    fn default() -> Self {
        Produced::with(K::default_serde(), V::default_serde())
    }
}

/// How `repartition` names and sizes its topic (Kafka Streams' `Repartitioned`).
pub struct Repartitioned<K, V> {
    /// Base of the topic and node names: the topic is `<application.id>-<name>-repartition`; `None`
    /// for a generated `KSTREAM-REPARTITION-NNNNNNNNNN`.
    pub name: Option<String>,
    /// Partition count the topic is created with; `None` for the upstream sub-topology's source
    /// partition count.
    pub partitions: Option<i32>,
    /// Serdes the records are written to the topic with (its name is not used).
    pub produced: Produced<K, V>,
    /// Serdes the records are read back with (its name is not used).
    pub consumed: Consumed<K, V>,
}

impl<K: DefaultSerde, V: DefaultSerde> Default for Repartitioned<K, V> {
    fn default() -> Self {
        Repartitioned {
            name: None,
            partitions: None,
            produced: Produced::default(),
            consumed: Consumed::with(K::default_serde(), V::default_serde()),
        }
    }
}

impl<K, V> Repartitioned<K, V> {
    /// Names the topic `<application.id>-<name>-repartition` and its nodes `<name>-repartition-*`
    /// (Kafka Streams' `Repartitioned.as`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Creates the topic with this many partitions (Kafka Streams'
    /// `Repartitioned.withNumberOfPartitions`).
    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = Some(partitions);
        self
    }
}

/// How a grouping serializes keys and values, and names its repartition topic (`Grouped`).
pub struct Grouped<K, V> {
    /// Serializes keys into the repartition topic and reads them back; also the key serde of the
    /// aggregation's store.
    pub key: Arc<dyn Serde<K>>,
    /// Serializes values into the repartition topic and reads them back.
    pub value: Arc<dyn Serde<V>>,
    /// Names the repartition topic `<application.id>-<name>-repartition`, when the grouping needs
    /// one; `None` names it after the aggregation's store, as Kafka Streams does.
    pub name: Option<String>,
}

impl<K, V> Grouped<K, V> {
    /// Groups with these serdes (Kafka Streams' `Grouped.with(keySerde, valueSerde)`).
    pub fn with(key: Arc<dyn Serde<K>>, value: Arc<dyn Serde<V>>) -> Self {
        Grouped {
            key,
            value,
            name: None,
        }
    }

    /// Names the repartition topic `<application.id>-<name>-repartition`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl<K: DefaultSerde, V: DefaultSerde> Default for Grouped<K, V> {
    fn default() -> Self {
        Grouped::with(K::default_serde(), V::default_serde())
    }
}

/// How a store is named, read and kept (`Materialized`).
pub struct Materialized<V> {
    /// The store's name, which also names its changelog; `None` for a generated
    /// `...-STATE-STORE-NNNNNNNNNN`, as Kafka Streams generates it.
    pub name: Option<String>,
    /// Serializes the stored values (the store's key serde is the stream's or the grouping's).
    pub value: Arc<dyn Serde<V>>,
    /// Whether writes go to a changelog topic `<application.id>-<store>-changelog`, from which the
    /// store is restored; `true` by default.
    pub logging: bool,
    /// An in-memory store instead of a RocksDB one (Kafka Streams' `Stores.inMemoryKeyValueStore`);
    /// `false` by default.
    pub in_memory: bool,
}

impl<V> Materialized<V> {
    /// A RocksDB store, logged, with a generated name, storing values with `value`
    /// (Kafka Streams' `Materialized.with`).
    pub fn with(value: Arc<dyn Serde<V>>) -> Self {
        Materialized {
            name: None,
            value,
            logging: true,
            in_memory: false,
        }
    }

    /// Names the store, and so its changelog `<application.id>-<name>-changelog`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Keeps the store in memory rather than in RocksDB; a logged one is rebuilt from its changelog
    /// at every start.
    pub fn in_memory(mut self) -> Self {
        self.in_memory = true;
        self
    }

    /// Does not log the store to a changelog (Kafka Streams' `withLoggingDisabled`): writes are
    /// cheaper, but the store's content is lost when its task moves or the instance restarts.
    pub fn without_logging(mut self) -> Self {
        self.logging = false;
        self
    }
}

impl<V: DefaultSerde> Default for Materialized<V> {
    fn default() -> Self {
        Materialized::with(V::default_serde())
    }
}

/// Erases a typed serde for the node implementations; `what` ("key", "value", "aggregate") names
/// the datum in serialization errors.
pub fn erased<T: Data>(serde: Arc<dyn Serde<T>>, what: &'static str) -> ErasedSerde {
    ErasedSerde {
        name: serde.name(),
        ser: serializer(serde.clone(), what),
        de: deserializer(serde),
    }
}

/// A store to create for an aggregation, over erased aggregates.
#[derive(Clone)]
pub struct StoreSpec {
    /// The store's name; `None` for a generated one.
    pub name: Option<String>,
    /// Serde of the aggregates the store holds.
    pub agg: ErasedSerde,
    /// Whether the store has a changelog.
    pub logging: bool,
    /// An in-memory store instead of a RocksDB one.
    pub in_memory: bool,
}

impl StoreSpec {
    /// The spec of a `Materialized`, with its value serde erased.
    pub fn from_materialized<V: Data>(m: Materialized<V>) -> Self {
        StoreSpec {
            name: m.name,
            agg: erased(m.value, "aggregate"),
            logging: m.logging,
            in_memory: m.in_memory,
        }
    }
}
