//! Tables: [`KTable`] from a topic, a stream or an aggregation; filter, mapValues, suppress,
//! toStream; and [`KGroupedTable`] aggregations with adder and subtractor.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::processor::{Datum, Node, ProcessError, datum, typed};
use crate::topology::{NodeFactory, StoreDef, StoreKind, TopicName};

use crate::processor::nodes::{
    Aggregation, Aggregator, ErasedSerde, Initializer, NullFn, Predicate, RecordInfo, SelectFn,
    SuppressNode, TableAggregateNode, TableSourceNode, Tombstone, ValueFn, WindowOf, change_serde,
    table_filter, table_group_by, table_map_values, to_stream,
};

use super::options::{Grouped, Materialized, StoreSpec, erased};
use super::{Consumed, Data, KStream, StreamsBuilder};

/// A changelog stream read as a table: the latest value per key.
pub struct KTable<K, V> {
    builder: StreamsBuilder,
    node: usize,
    key: Option<ErasedSerde>,
    value: Option<ErasedSerde>,
    /// Windowed tables: the grace period and how to read a key's window (for suppress).
    grace_ms: Option<i64>,
    window_of: Option<WindowOf>,
    /// The key-value store holding the table's rows, when it has one (joins read it).
    store: Option<String>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            builder: self.builder.clone(),
            node: self.node,
            key: self.key.clone(),
            value: self.value.clone(),
            grace_ms: self.grace_ms,
            window_of: self.window_of.clone(),
            store: self.store.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V> KTable<K, V> {
    pub(crate) fn at(
        builder: &StreamsBuilder,
        node: usize,
        key: Option<ErasedSerde>,
        value: Option<ErasedSerde>,
        grace_ms: Option<i64>,
        window_of: Option<WindowOf>,
    ) -> Self {
        KTable {
            builder: builder.clone(),
            node,
            key,
            value,
            grace_ms,
            window_of,
            store: None,
            _types: PhantomData,
        }
    }

    /// Marks the table as materialized in the key-value store `store`.
    pub(crate) fn stored_in(mut self, store: String) -> Self {
        self.store = Some(store);
        self
    }

    /// The store holding the table's rows, if the table is materialized.
    pub fn store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    pub(crate) fn node_index(&self) -> usize {
        self.node
    }

    pub(crate) fn builder(&self) -> &StreamsBuilder {
        &self.builder
    }

    pub(crate) fn serdes(&self) -> (Option<ErasedSerde>, Option<ErasedSerde>) {
        (self.key.clone(), self.value.clone())
    }

    /// The same table position with other phantom types (the declarative topology's way).
    fn with<K2, V2>(&self, node: usize, value: Option<ErasedSerde>) -> KTable<K2, V2> {
        KTable {
            builder: self.builder.clone(),
            node,
            key: self.key.clone(),
            value,
            grace_ms: self.grace_ms,
            window_of: self.window_of.clone(),
            store: None,
            _types: PhantomData,
        }
    }

    fn add(&self, prefix: &str, named: Option<&str>, factory: NodeFactory) -> usize {
        let name = named.map_or_else(|| self.builder.generated_name(prefix), str::to_owned);
        self.builder
            .add_processor(name, &[self.node], Vec::new(), factory)
    }

    /// Keeps the rows `predicate` accepts; a row that stops matching is deleted downstream.
    pub fn try_filter_erased(
        &self,
        named: Option<&str>,
        predicate: Predicate,
        keep_when: bool,
    ) -> Self {
        let factory: NodeFactory =
            Arc::new(move || Box::new(table_filter(predicate.clone(), keep_when)) as Box<dyn Node>);
        let node = self.add("KTABLE-FILTER-", named, factory);
        self.with(node, self.value.clone())
    }

    /// Maps each row's value (the old value too, so downstream subtractors see what was added).
    pub fn map_values_erased<V2>(
        &self,
        named: Option<&str>,
        f: ValueFn,
        value: Option<ErasedSerde>,
    ) -> KTable<K, V2> {
        let factory: NodeFactory =
            Arc::new(move || Box::new(table_map_values(f.clone())) as Box<dyn Node>);
        let node = self.add("KTABLE-MAPVALUES-", named, factory);
        self.with(node, value)
    }

    /// The table's updates as a stream; a deletion becomes `null()`.
    pub fn to_stream_erased<K2, V2>(&self, named: Option<&str>, null: NullFn) -> KStream<K2, V2> {
        let factory: NodeFactory =
            Arc::new(move || Box::new(to_stream(null.clone())) as Box<dyn Node>);
        let node = self.add("KTABLE-TOSTREAM-", named, factory);
        KStream::at(&self.builder, node)
    }

    /// Holds each window's updates until the window closes, then emits its final result once
    /// (`suppress(Suppressed.untilWindowCloses(unbounded()))`).
    pub fn suppress_until_window_closes(&self, named: Option<&str>) -> Result<Self, ProcessError> {
        let (Some(grace), Some(window_of), Some(key), Some(value)) = (
            self.grace_ms,
            self.window_of.clone(),
            self.key.clone(),
            self.value.clone(),
        ) else {
            return Err(ProcessError::new(
                "suppress(untilWindowCloses) needs a windowed aggregation upstream (windowedBy, then count, reduce or aggregate)",
            ));
        };
        let name = named.map_or_else(
            || self.builder.generated_name("KTABLE-SUPPRESS-"),
            str::to_owned,
        );
        // Kafka Streams names the buffer's store after the processor.
        let store = format!("{name}-STATE-STORE");
        self.builder.add_store(StoreDef {
            name: store.clone(),
            kind: StoreKind::KeyValue,
            logged: true,
            in_memory: true,
            format: format!(
                "suppress key={} value={} grace={grace}ms",
                key.name, value.name
            ),
        });
        let buffer = store.clone();
        let factory: NodeFactory = Arc::new(move || {
            Box::new(SuppressNode::new(
                grace,
                key.clone(),
                value.clone(),
                window_of.clone(),
                buffer.clone(),
            )) as Box<dyn Node>
        });
        let node = self
            .builder
            .add_processor(name, &[self.node], vec![store], factory);
        Ok(self.with(node, self.value.clone()))
    }

    /// Re-groups the rows by a new key through a repartition topic.
    pub fn group_by_erased<K2, V2>(
        &self,
        named: Option<&str>,
        select: SelectFn,
        key: ErasedSerde,
        value: ErasedSerde,
        repartition_name: Option<String>,
    ) -> KGroupedTable<K2, V2> {
        let key_for_node = key.clone();
        let factory: NodeFactory = Arc::new(move || {
            Box::new(table_group_by(select.clone(), key_for_node.clone())) as Box<dyn Node>
        });
        let node = self.add("KTABLE-SELECT-", named, factory);
        KGroupedTable {
            builder: self.builder.clone(),
            node,
            key,
            value,
            name: repartition_name,
            _types: PhantomData,
        }
    }
}

impl<K: Data, V: Data + Clone> KTable<K, V> {
    /// Keeps the rows `f` accepts (Kafka Streams' `KTable.filter`); a row that stops matching is
    /// deleted downstream (a tombstone is forwarded).
    pub fn filter(&self, f: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.try_filter(None, move |_, k, v| Ok(f(k, v)))
    }

    /// `filter` with the record info in view and a fallible predicate; `named` names the node
    /// instead of a generated `KTABLE-FILTER-NNNNNNNNNN`.
    pub fn try_filter(
        &self,
        named: Option<&str>,
        f: impl Fn(&RecordInfo, &K, &V) -> Result<bool, ProcessError> + Send + Sync + 'static,
    ) -> Self {
        let p: Predicate =
            Arc::new(move |i, k, v| f(i, typed::<K>(k, "key")?, typed::<V>(v, "value")?));
        self.try_filter_erased(named, p, true)
    }

    /// A new value for each row, the key kept (Kafka Streams' `KTable.mapValues`); deletions stay
    /// deletions.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(&V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let g: ValueFn = Arc::new(move |_, _, v| Ok(datum(f(typed::<V>(v, "value")?))));
        self.map_values_erased(None, g, None)
    }

    /// The updates as a stream: `Some(value)`, or `None` for a deletion.
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let stream: KStream<K, Datum> =
            self.to_stream_erased(None, Arc::new(|| datum(Option::<V>::None)));
        // The typed stream carries Option<V>: present values are wrapped here, once.
        let wrap: ValueFn = Arc::new(|_, _, v: &Datum| {
            if v.downcast_ref::<Option<V>>().is_some() {
                return Ok(v.clone());
            }
            Ok(datum(Some(typed::<V>(v, "value")?.clone())))
        });
        stream.then(
            "KSTREAM-MAPVALUES-",
            None,
            crate::processor::nodes::Op::MapValues(wrap),
        )
    }
}

impl<K, V> KStream<K, V> {
    /// Reads the stream as a table: each record an update of its key (a null value deletes).
    pub fn to_table_erased(
        &self,
        named: Option<&str>,
        store: StoreSpec,
        key: ErasedSerde,
    ) -> KTable<K, V> {
        let builder = self.builder().clone();
        let store_name = store
            .name
            .clone()
            .unwrap_or_else(|| builder.generated_name("KSTREAM-TOTABLE-STATE-STORE-"));
        builder.add_store(StoreDef {
            name: store_name.clone(),
            kind: StoreKind::KeyValue,
            logged: store.logging,
            in_memory: store.in_memory,
            format: format!("key={} value={}", key.name, store.agg.name),
        });
        let (k, v) = (key.clone(), store.agg.clone());
        let sn = store_name.clone();
        let factory: NodeFactory = Arc::new(move || {
            Box::new(TableSourceNode {
                emitter: Default::default(),
                store_name: sn.clone(),
                key: k.clone(),
                value: v.clone(),
                store: None,
            }) as Box<dyn Node>
        });
        let name = named.map_or_else(|| builder.generated_name("KSTREAM-TOTABLE-"), str::to_owned);
        let node = builder.add_processor(name, &[self.node()], vec![store_name.clone()], factory);
        KTable::at(&builder, node, Some(key), Some(store.agg), None, None).stored_in(store_name)
    }
}

impl StreamsBuilder {
    /// A table of `topic`'s records, materialized in a store (Kafka Streams' `builder.table`).
    pub fn table<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<V>,
    ) -> KTable<K, V> {
        let key = erased(consumed.key, "key");
        let value = erased(materialized.value.clone(), "value");
        let spec = StoreSpec::from_materialized(materialized);
        self.table_erased(topic, key, value, spec, consumed.name)
    }

    /// `table` over erased serdes.
    pub fn table_erased<K, V>(
        &self,
        topic: &str,
        key: ErasedSerde,
        value: ErasedSerde,
        store: StoreSpec,
        source_name: Option<String>,
    ) -> KTable<K, V> {
        let source_name = source_name.unwrap_or_else(|| self.generated_name("KSTREAM-SOURCE-"));
        let store_name = store
            .name
            .clone()
            .unwrap_or_else(|| format!("{topic}-STATE-STORE-{:010}", self.state.borrow().counter));
        // A null value deletes the key, whatever the value serde can read.
        let value_de = value.de.clone();
        let read_value: crate::topology::Deserializer = Arc::new(move |bytes| match bytes {
            None => Ok(datum(Tombstone)),
            Some(_) => value_de(bytes),
        });
        let stream: KStream<K, V> = self.source(
            vec![TopicName::External(topic.to_owned())],
            key.de.clone(),
            read_value,
            Some(source_name),
        );
        let spec = StoreSpec {
            name: Some(store_name),
            agg: value,
            ..store
        };
        let name = self.generated_name("KTABLE-SOURCE-");
        stream.to_table_erased(Some(&name), spec, key)
    }
}

/// A table grouped by a new key, ready to aggregate with adder and subtractor.
#[derive(Clone)]
pub struct KGroupedTable<K, V> {
    builder: StreamsBuilder,
    node: usize,
    key: ErasedSerde,
    value: ErasedSerde,
    name: Option<String>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Re-groups rows by the key and value `f` picks (`KTable.groupBy`).
    pub fn group_by<K2: Data, V2: Data>(
        &self,
        f: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
        grouped: Grouped<K2, V2>,
    ) -> KGroupedTable<K2, V2> {
        let select: SelectFn = Arc::new(move |_, k, v| {
            let (k2, v2) = f(typed::<K>(k, "key")?, typed::<V>(v, "value")?);
            Ok((datum(k2), datum(v2)))
        });
        self.group_by_erased(
            None,
            select,
            erased(grouped.key, "key"),
            erased(grouped.value, "value"),
            grouped.name,
        )
    }
}

impl<K, V> KGroupedTable<K, V> {
    /// Adds the aggregation: the repartition topic (named after the grouping, else the store),
    /// the store, and the processor that subtracts old values and adds new ones.
    pub fn aggregate_erased<A>(
        &self,
        named: Option<&str>,
        store: StoreSpec,
        init: Option<Initializer>,
        add: Aggregator,
        subtract: Aggregator,
    ) -> KTable<K, A> {
        let builder = &self.builder;
        let prefix = if init.is_some() {
            "KTABLE-AGGREGATE-"
        } else {
            "KTABLE-REDUCE-"
        };
        let store_name = store
            .name
            .clone()
            .unwrap_or_else(|| builder.generated_name(&format!("{prefix}STATE-STORE-")));
        let at: KStream<Datum, Datum> = KStream::at(builder, self.node);
        let topic_name = self.name.clone().unwrap_or_else(|| store_name.clone());
        let repartitioned: KStream<Datum, Datum> = at.repartition_erased(
            Some(topic_name),
            None,
            self.key.clone(),
            change_serde(self.value.clone()),
        );
        builder.add_store(StoreDef {
            name: store_name.clone(),
            kind: StoreKind::KeyValue,
            logged: store.logging,
            in_memory: store.in_memory,
            format: format!("key={} value={}", self.key.name, store.agg.name),
        });
        let aggregation = Aggregation {
            store: store_name.clone(),
            key: self.key.clone(),
            agg: store.agg.clone(),
            init,
            add,
            subtract: Some(subtract),
        };
        let factory: NodeFactory = Arc::new(move || {
            Box::new(TableAggregateNode {
                emitter: Default::default(),
                aggregation: aggregation.clone(),
                store: None,
            }) as Box<dyn Node>
        });
        let name = named.map_or_else(|| builder.generated_name(prefix), str::to_owned);
        let node = builder.add_processor(
            name,
            &[repartitioned.node()],
            vec![store_name.clone()],
            factory,
        );
        KTable::at(
            builder,
            node,
            Some(self.key.clone()),
            Some(store.agg),
            None,
            None,
        )
        .stored_in(store_name)
    }
}

impl<K: Data, V: Data> KGroupedTable<K, V> {
    /// Folds rows into an aggregate per group: `add` for new values, `subtract` for replaced
    /// or deleted ones.
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, &V, &A) -> A + Send + Sync + 'static,
        subtract: impl Fn(&K, &V, &A) -> A + Send + Sync + 'static,
        materialized: Materialized<A>,
    ) -> KTable<K, A> {
        type Fold<K, V, A> = Arc<dyn Fn(&K, &V, &A) -> A + Send + Sync>;
        let fold = |f: Fold<K, V, A>| -> Aggregator {
            Arc::new(move |_, k, v, agg| {
                Ok(datum(f(
                    typed::<K>(k, "key")?,
                    typed::<V>(v, "value")?,
                    typed::<A>(agg, "aggregate")?,
                )))
            })
        };
        let init: Initializer = Arc::new(move || Ok(datum(init())));
        self.aggregate_erased(
            None,
            StoreSpec::from_materialized(materialized),
            Some(init),
            fold(Arc::new(add)),
            fold(Arc::new(subtract)),
        )
    }

    /// Rows per group.
    pub fn count(&self, materialized: Materialized<i64>) -> KTable<K, i64> {
        self.aggregate(|| 0i64, |_, _, n| n + 1, |_, _, n| n - 1, materialized)
    }
}
