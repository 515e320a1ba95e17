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
    pub key: Arc<dyn Serde<K>>,
    pub value: Arc<dyn Serde<V>>,
    pub name: Option<String>,
}

impl<K: 'static, V: 'static> Consumed<K, V> {
    pub fn with(key: Arc<dyn Serde<K>>, value: Arc<dyn Serde<V>>) -> Self {
        Consumed {
            key,
            value,
            name: None,
        }
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How a sink writes its keys and values (Kafka Streams' `Produced`).
pub struct Produced<K, V> {
    pub key: Arc<dyn Serde<K>>,
    pub value: Arc<dyn Serde<V>>,
    pub name: Option<String>,
}

impl<K: 'static, V: 'static> Produced<K, V> {
    pub fn with(key: Arc<dyn Serde<K>>, value: Arc<dyn Serde<V>>) -> Self {
        Produced {
            key,
            value,
            name: None,
        }
    }

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
    pub name: Option<String>,
    pub partitions: Option<i32>,
    pub produced: Produced<K, V>,
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
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = Some(partitions);
        self
    }
}

/// How a grouping serializes keys and values, and names its repartition topic (`Grouped`).
pub struct Grouped<K, V> {
    pub key: Arc<dyn Serde<K>>,
    pub value: Arc<dyn Serde<V>>,
    pub name: Option<String>,
}

impl<K, V> Grouped<K, V> {
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
    pub name: Option<String>,
    pub value: Arc<dyn Serde<V>>,
    pub logging: bool,
    pub in_memory: bool,
}

impl<V> Materialized<V> {
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

    pub fn in_memory(mut self) -> Self {
        self.in_memory = true;
        self
    }

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

pub fn erased<T: Data>(serde: Arc<dyn Serde<T>>, what: &'static str) -> ErasedSerde {
    ErasedSerde {
        ser: serializer(serde.clone(), what),
        de: deserializer(serde),
    }
}

/// A store to create for an aggregation, over erased aggregates.
#[derive(Clone)]
pub struct StoreSpec {
    pub name: Option<String>,
    pub agg: ErasedSerde,
    pub logging: bool,
    pub in_memory: bool,
}

impl StoreSpec {
    pub fn from_materialized<V: Data>(m: Materialized<V>) -> Self {
        StoreSpec {
            name: m.name,
            agg: erased(m.value, "aggregate"),
            logging: m.logging,
            in_memory: m.in_memory,
        }
    }
}
