//! The Kafka Streams DSL in Rust: [`StreamsBuilder`] and [`KStream`], typed over key and value.
//!
//! ```no_run
//! use freshet_topology::dsl::StreamsBuilder;
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream::<String, String>("orders")
//!     .filter(|_, v| v.contains("\"eu\""))
//!     .map_values(|v| v.to_uppercase())
//!     .to("orders-eu");
//! let topology = builder.build().unwrap();
//! ```
//!
//! Every operation also has a `try_` form whose function may fail with a [`ProcessError`] and
//! sees the record's timestamp, headers and origin ([`RecordInfo`]); a failure stops the task with
//! the record's topic, partition and offset.

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::processor::{Datum, ErasedRecord, ProcessError, Processor, ProcessorNode, datum, typed};
use crate::serdes::{DefaultSerde, Serde};
use crate::topology::{
    Deserializer, NodeDef, NodeKind, RepartitionTopic, Serializer, SinkTarget, StoreDef, TopicName,
    Topology, TopologyError,
};

mod fk_join;
mod global;
mod grouped;
mod join;
mod ktable;
pub mod options;
mod stateful;
mod stream_join;

pub use global::GlobalKTable;
pub use grouped::{CogroupedKStream, KGroupedStream, TimeWindowedKStream, WindowedKeys, Windowing};
pub use join::JoinError;
pub use ktable::{KGroupedTable, KTable};
pub use options::{Consumed, Grouped, Materialized, Produced, Repartitioned, StoreSpec, erased};
pub use stateful::{Windowed, WindowedSerde};
pub use stream_join::{StreamJoinSerdes, StreamJoined};

// The function types, table updates and erased serdes the builder API takes and the nodes
// call, and the window specifications: defined beside the nodes and the windows, named here
// too so users of the DSL find them where they always were.
pub use crate::processor::nodes::{
    Aggregation, Aggregator, Change, ErasedSerde, ForeignKeyExtractor, Initializer, JoinKind,
    Joiner, KeySelector, Merger, NullFn, Op, OpNode, Predicate, RecordInfo, SelectFn, SinkNode,
    TableJoiner, ValueFn, WindowOf, WindowedKeyFn, change_serde, is_null, set_foreign_null,
};
pub use crate::windows::{JoinWindows, SessionWindows, SlidingWindows, TimeWindows};

/// Values a stream can carry.
pub trait Data: Any + Send + Sync {}
impl<T: Any + Send + Sync> Data for T {}

#[derive(Default)]
struct BuilderState {
    nodes: Vec<NodeDef>,
    repartition_topics: Vec<RepartitionTopic>,
    stores: Vec<StoreDef>,
    global_tables: Vec<crate::topology::GlobalTableDef>,
    /// Nodes whose records may have new keys (after map, selectKey, flatMap, process): grouping
    /// them needs a repartition topic first, as Kafka Streams inserts one.
    rekeyed: std::collections::HashSet<usize>,
    /// Kafka Streams numbers every generated node name from one counter.
    counter: usize,
}

impl BuilderState {
    fn next_name(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}{:010}", self.counter);
        self.counter += 1;
        name
    }

    fn add(&mut self, name: String, kind: NodeKind, parents: &[usize]) -> usize {
        let idx = self.nodes.len();
        self.nodes.push(NodeDef {
            name,
            kind,
            parents: parents.to_vec(),
            children: Vec::new(),
        });
        for &p in parents {
            self.nodes[p].children.push(idx);
        }
        idx
    }
}

/// Starts topologies: streams from topics, then operations on them.
#[derive(Clone, Default)]
pub struct StreamsBuilder {
    state: Rc<RefCell<BuilderState>>,
}

pub(crate) fn deserializer<T: Data>(serde: Arc<dyn Serde<T>>) -> Deserializer {
    Arc::new(move |bytes| serde.deserialize(bytes).map(|v| datum(v)))
}

pub(crate) fn serializer<T: Data>(serde: Arc<dyn Serde<T>>, what: &'static str) -> Serializer {
    Arc::new(move |d: &Datum| {
        let v = typed::<T>(d, what)?;
        serde.serialize(v).map_err(|e| {
            ProcessError::new(format!(
                "cannot serialize the {what} with the {} serde: {e}",
                serde.name()
            ))
        })
    })
}

impl StreamsBuilder {
    /// An empty builder (Kafka Streams' `new StreamsBuilder()`).
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream of the records of `topic`, read with the types' default serdes.
    pub fn stream<K: DefaultSerde + Data, V: DefaultSerde + Data>(
        &self,
        topic: &str,
    ) -> KStream<K, V> {
        self.stream_with(
            &[topic],
            Consumed::with(K::default_serde(), V::default_serde()),
        )
    }

    /// A stream of the records of several topics, read with the given serdes.
    pub fn stream_with<K: Data, V: Data>(
        &self,
        topics: &[&str],
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let topics = topics
            .iter()
            .map(|t| TopicName::External((*t).to_owned()))
            .collect();
        self.source(
            topics,
            deserializer(consumed.key),
            deserializer(consumed.value),
            consumed.name,
        )
    }

    pub(crate) fn source<K, V>(
        &self,
        topics: Vec<TopicName>,
        key: Deserializer,
        value: Deserializer,
        name: Option<String>,
    ) -> KStream<K, V> {
        let mut st = self.state.borrow_mut();
        let name = name.unwrap_or_else(|| st.next_name("KSTREAM-SOURCE-"));
        let node = st.add(name, NodeKind::Source { topics, key, value }, &[]);
        KStream::at(self, node)
    }

    /// Adds a sink writing to the internal topic `topic` (repartition, subscription), which the
    /// application creates with `partitions`, or else as many as its readers need.
    pub(crate) fn internal_topic_sink(
        &self,
        name: String,
        topic: TopicName,
        partitions: Option<i32>,
        parents: &[usize],
        key: Serializer,
        value: Serializer,
    ) -> usize {
        let mut st = self.state.borrow_mut();
        let kind = NodeKind::Sink {
            window_suffix: 0,
            target: SinkTarget::Topic(topic.clone()),
            key,
            value,
        };
        let node = st.add(name, kind, parents);
        st.repartition_topics.push(RepartitionTopic {
            name: topic,
            partitions,
        });
        node
    }

    /// Adds a state store for [`KStream::process_with_stores`] processors (Kafka Streams'
    /// `addStateStore`).
    pub fn add_state_store(&self, store: StoreDef) {
        self.add_store(store);
    }

    /// Freezes the graph into a [`Topology`].
    pub fn build(&self) -> Result<Topology, TopologyError> {
        let st = self.state.borrow();
        Topology::new(
            st.nodes.clone(),
            st.repartition_topics.clone(),
            st.stores.clone(),
        )
        .map(|t| t.with_global_tables(st.global_tables.clone()))
    }
}

/// A stream of records typed `K`, `V`: a position in the graph that operations extend.
pub struct KStream<K, V> {
    builder: StreamsBuilder,
    node: usize,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream::at(&self.builder, self.node)
    }
}

/// Named branches of a [`KStream::split`] (Kafka Streams' `BranchedKStream`).
pub struct BranchedKStream<K, V> {
    stream: KStream<K, V>,
    prefix: String,
    branches: Vec<(Option<Predicate>, String)>,
}

impl<K, V> KStream<K, V> {
    pub(crate) fn at(builder: &StreamsBuilder, node: usize) -> Self {
        KStream {
            builder: builder.clone(),
            node,
            _types: PhantomData,
        }
    }

    /// Whether records here may have been re-keyed since they were last partitioned.
    pub(crate) fn rekeyed(&self) -> bool {
        self.builder.state.borrow().rekeyed.contains(&self.node)
    }

    pub(crate) fn node(&self) -> usize {
        self.node
    }

    pub(crate) fn builder(&self) -> &StreamsBuilder {
        &self.builder
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Adds a node after this one; `named` overrides the generated `<prefix>NNNNNNNNNN` name.
    fn then<K2, V2>(&self, prefix: &str, named: Option<&str>, op: Op) -> KStream<K2, V2> {
        let mut st = self.builder.state.borrow_mut();
        let name = named.map_or_else(|| st.next_name(prefix), str::to_owned);
        let changes_key = matches!(op, Op::Map(_) | Op::SelectKey(_) | Op::FlatMap(_));
        let factory: crate::topology::NodeFactory = Arc::new(move || Box::new(OpNode(op.clone())));
        let node = st.add(
            name,
            NodeKind::Processor {
                factory,
                stores: Vec::new(),
            },
            &[self.node],
        );
        if changes_key || st.rekeyed.contains(&self.node) {
            st.rekeyed.insert(node);
        }
        KStream::at(&self.builder, node)
    }

    /// The name of the node this stream ends at.
    pub fn node_name(&self) -> String {
        self.builder.state.borrow().nodes[self.node].name.clone()
    }

    fn typed2<T>(
        f: impl Fn(&RecordInfo, &K, &V) -> Result<T, ProcessError> + Send + Sync + 'static,
    ) -> impl Fn(&RecordInfo, &Datum, &Datum) -> Result<T, ProcessError> + Send + Sync + 'static
    {
        move |info, k, v| f(info, typed::<K>(k, "key")?, typed::<V>(v, "value")?)
    }

    // ---- filter / filterNot ----

    /// Keeps the records `f` accepts (Kafka Streams' `filter`).
    pub fn filter(&self, f: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        self.try_filter(None, move |_, k, v| Ok(f(k, v)))
    }

    /// Drops the records `f` accepts (Kafka Streams' `filterNot`).
    pub fn filter_not(&self, f: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        self.try_filter_not(None, move |_, k, v| Ok(f(k, v)))
    }

    /// `filter` with the record's timestamp, headers and origin in view, and a fallible predicate:
    /// an `Err` is a processing error for the record. `named` names the node instead of a generated
    /// `KSTREAM-FILTER-NNNNNNNNNN` (Kafka Streams' `Named`).
    pub fn try_filter(
        &self,
        named: Option<&str>,
        f: impl Fn(&RecordInfo, &K, &V) -> Result<bool, ProcessError> + Send + Sync + 'static,
    ) -> KStream<K, V> {
        let predicate = Arc::new(Self::typed2(f));
        self.then(
            "KSTREAM-FILTER-",
            named,
            Op::Filter {
                predicate,
                keep_when: true,
            },
        )
    }

    /// `filter_not` with the record info in view and a fallible predicate; `named` as in
    /// [`KStream::try_filter`].
    pub fn try_filter_not(
        &self,
        named: Option<&str>,
        f: impl Fn(&RecordInfo, &K, &V) -> Result<bool, ProcessError> + Send + Sync + 'static,
    ) -> KStream<K, V> {
        let predicate = Arc::new(Self::typed2(f));
        self.then(
            "KSTREAM-FILTER-",
            named,
            Op::Filter {
                predicate,
                keep_when: false,
            },
        )
    }

    // ---- map / mapValues / selectKey ----

    /// A new key and value for each record (Kafka Streams' `map`). The stream counts as re-keyed: a
    /// later grouping or join repartitions it.
    pub fn map<K2: Data, V2: Data>(
        &self,
        f: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        self.try_map(None, move |_, k, v| Ok(f(k, v)))
    }

    /// `map` with the record info in view and a fallible function; `named` names the node instead
    /// of a generated `KSTREAM-MAP-NNNNNNNNNN`.
    pub fn try_map<K2: Data, V2: Data>(
        &self,
        named: Option<&str>,
        f: impl Fn(&RecordInfo, &K, &V) -> Result<(K2, V2), ProcessError> + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let g = Self::typed2(f);
        let op = Op::Map(Arc::new(move |i, k, v| {
            g(i, k, v).map(|(k2, v2)| (datum(k2), datum(v2)))
        }));
        self.then("KSTREAM-MAP-", named, op)
    }

    /// A new value for each record, the key kept (Kafka Streams' `mapValues`): no repartition
    /// follows.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(&V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.try_map_values(None, move |_, _, v| Ok(f(v)))
    }

    /// `mapValues` with the key in view (Kafka Streams' `ValueMapperWithKey`).
    pub fn try_map_values<V2: Data>(
        &self,
        named: Option<&str>,
        f: impl Fn(&RecordInfo, &K, &V) -> Result<V2, ProcessError> + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let g = Self::typed2(f);
        let op = Op::MapValues(Arc::new(move |i, k, v| g(i, k, v).map(datum)));
        self.then("KSTREAM-MAPVALUES-", named, op)
    }

    /// A new key for each record, the value kept (Kafka Streams' `selectKey`). The stream counts as
    /// re-keyed: a later grouping or join repartitions it.
    pub fn select_key<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        self.try_select_key(None, move |_, k, v| Ok(f(k, v)))
    }

    /// `select_key` with the record info in view and a fallible function; `named` names the node
    /// instead of a generated `KSTREAM-KEY-SELECT-NNNNNNNNNN`.
    pub fn try_select_key<K2: Data>(
        &self,
        named: Option<&str>,
        f: impl Fn(&RecordInfo, &K, &V) -> Result<K2, ProcessError> + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        let g = Self::typed2(f);
        let op = Op::SelectKey(Arc::new(move |i, k, v| g(i, k, v).map(datum)));
        self.then("KSTREAM-KEY-SELECT-", named, op)
    }

    // ---- flatMap / flatMapValues ----

    /// Zero or more records for each record (Kafka Streams' `flatMap`); re-keys the stream.
    pub fn flat_map<K2: Data, V2: Data>(
        &self,
        f: impl Fn(&K, &V) -> Vec<(K2, V2)> + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        self.try_flat_map(None, move |_, k, v| Ok(f(k, v)))
    }

    /// `flat_map` with the record info in view and a fallible function; `named` names the node
    /// instead of a generated `KSTREAM-FLATMAP-NNNNNNNNNN`.
    pub fn try_flat_map<K2: Data, V2: Data>(
        &self,
        named: Option<&str>,
        f: impl Fn(&RecordInfo, &K, &V) -> Result<Vec<(K2, V2)>, ProcessError> + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let g = Self::typed2(f);
        let op = Op::FlatMap(Arc::new(move |i, k, v| {
            g(i, k, v).map(|pairs| {
                pairs
                    .into_iter()
                    .map(|(k2, v2)| (datum(k2), datum(v2)))
                    .collect()
            })
        }));
        self.then("KSTREAM-FLATMAP-", named, op)
    }

    /// Zero or more values for each record, each with the record's key (Kafka Streams'
    /// `flatMapValues`).
    pub fn flat_map_values<V2: Data>(
        &self,
        f: impl Fn(&V) -> Vec<V2> + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.try_flat_map_values(None, move |_, _, v| Ok(f(v)))
    }

    /// `flat_map_values` with the key and record info in view and a fallible function; `named`
    /// names the node instead of a generated `KSTREAM-FLATMAPVALUES-NNNNNNNNNN`.
    pub fn try_flat_map_values<V2: Data>(
        &self,
        named: Option<&str>,
        f: impl Fn(&RecordInfo, &K, &V) -> Result<Vec<V2>, ProcessError> + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let g = Self::typed2(f);
        let op = Op::FlatMapValues(Arc::new(move |i, k, v| {
            g(i, k, v).map(|vs| vs.into_iter().map(datum).collect())
        }));
        self.then("KSTREAM-FLATMAPVALUES-", named, op)
    }

    // ---- peek ----

    /// Calls `f` on each record and forwards it unchanged (Kafka Streams' `peek`), e.g. for
    /// logging.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        self.try_peek(None, move |_, k, v| {
            f(k, v);
            Ok(())
        })
    }

    /// `peek` with the record info in view and a fallible function; `named` names the node instead
    /// of a generated `KSTREAM-PEEK-NNNNNNNNNN`.
    pub fn try_peek(
        &self,
        named: Option<&str>,
        f: impl Fn(&RecordInfo, &K, &V) -> Result<(), ProcessError> + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.then("KSTREAM-PEEK-", named, Op::Peek(Arc::new(Self::typed2(f))))
    }

    // ---- split / merge ----

    /// Splits the stream by predicates; each record goes to the first branch it matches.
    /// `named` prefixes the branch names, as Kafka Streams' `split(Named.as(..))`.
    pub fn split(&self, named: Option<&str>) -> BranchedKStream<K, V> {
        // Kafka Streams numbers the split node even when it is named: later generated names keep
        // the numbers they have there.
        let generated = self.builder.state.borrow_mut().next_name("KSTREAM-BRANCH-");
        let prefix = named.map_or(generated, str::to_owned);
        BranchedKStream {
            stream: self.clone(),
            prefix,
            branches: Vec::new(),
        }
    }

    /// Records of both streams, as they arrive.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        self.merge_named(other, None)
    }

    /// `merge` with the node named `named` instead of a generated `KSTREAM-MERGE-NNNNNNNNNN`. Both
    /// streams must come from the same builder (it panics otherwise).
    pub fn merge_named(&self, other: &KStream<K, V>, named: Option<&str>) -> KStream<K, V> {
        assert!(
            Rc::ptr_eq(&self.builder.state, &other.builder.state),
            "merge: streams of two builders"
        );
        let mut st = self.builder.state.borrow_mut();
        let name = named.map_or_else(|| st.next_name("KSTREAM-MERGE-"), str::to_owned);
        let factory: crate::topology::NodeFactory = Arc::new(|| Box::new(OpNode(Op::PassThrough)));
        let node = st.add(
            name,
            NodeKind::Processor {
                factory,
                stores: Vec::new(),
            },
            &[self.node, other.node],
        );
        if st.rekeyed.contains(&self.node) || st.rekeyed.contains(&other.node) {
            st.rekeyed.insert(node);
        }
        KStream::at(&self.builder, node)
    }

    // ---- repartition / to ----

    /// Writes the stream through a repartition topic `<application.id>-<name>-repartition`, so
    /// records are partitioned by their current key; created at start with `partitions`, or with
    /// the upstream sources' partition count.
    pub fn repartition(&self, repartitioned: Repartitioned<K, V>) -> KStream<K, V> {
        let key = ErasedSerde {
            name: repartitioned.produced.key.name(),
            ser: serializer(repartitioned.produced.key, "key"),
            de: deserializer(repartitioned.consumed.key),
        };
        let value = ErasedSerde {
            name: repartitioned.produced.value.name(),
            ser: serializer(repartitioned.produced.value, "value"),
            de: deserializer(repartitioned.consumed.value),
        };
        self.repartition_erased(repartitioned.name, repartitioned.partitions, key, value)
    }

    /// `repartition` with serdes over erased data (table updates travel this way too).
    pub(crate) fn repartition_erased<K2, V2>(
        &self,
        name: Option<String>,
        partitions: Option<i32>,
        key: ErasedSerde,
        value: ErasedSerde,
    ) -> KStream<K2, V2> {
        // The filter, sink and source of a repartition take three numbers from the counter, named
        // or not, as in Kafka Streams.
        let generated = {
            let mut st = self.builder.state.borrow_mut();
            let first = st.next_name("KSTREAM-REPARTITION-");
            st.next_name("");
            st.next_name("");
            first
        };
        let base = name.unwrap_or(generated);
        let topic = TopicName::Internal(format!("{base}-repartition"));
        let filter = self.then::<K, V>(
            "",
            Some(&format!("{base}-repartition-filter")),
            Op::PassThrough,
        );
        self.builder.internal_topic_sink(
            format!("{base}-repartition-sink"),
            topic.clone(),
            partitions,
            &[filter.node],
            key.ser,
            value.ser,
        );
        self.builder.source(
            vec![topic],
            key.de,
            value.de,
            Some(format!("{base}-repartition-source")),
        )
    }

    /// Writes to `topic` with the types' default serdes.
    pub fn to(&self, topic: &str)
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.to_with(topic, Produced::default());
    }

    /// Writes to the existing topic `topic` with these serdes and sink name (Kafka Streams'
    /// `to(topic, Produced)`).
    pub fn to_with(&self, topic: &str, produced: Produced<K, V>) {
        let target = SinkTarget::Topic(TopicName::External(topic.to_owned()));
        self.sink(target, produced);
    }

    /// Writes each record to the topic `extractor` chooses for it (Kafka Streams'
    /// `TopicNameExtractor`); the topics must exist.
    pub fn to_dynamic(
        &self,
        label: &str,
        extractor: impl Fn(&K, &V, &RecordInfo) -> Result<String, ProcessError> + Send + Sync + 'static,
        produced: Produced<K, V>,
    ) {
        let extractor: crate::topology::TopicExtractor = Arc::new(move |r: &ErasedRecord| {
            let info = RecordInfo {
                timestamp: r.timestamp,
                headers: &r.headers,
                meta: None,
            };
            extractor(
                typed::<K>(&r.key, "key")?,
                typed::<V>(&r.value, "value")?,
                &info,
            )
        });
        self.sink(
            SinkTarget::Extractor {
                extractor,
                label: label.to_owned(),
            },
            produced,
        );
    }

    fn sink(&self, target: SinkTarget, produced: Produced<K, V>) {
        let mut st = self.builder.state.borrow_mut();
        let name = produced
            .name
            .clone()
            .unwrap_or_else(|| st.next_name("KSTREAM-SINK-"));
        let kind = NodeKind::Sink {
            target,
            window_suffix: crate::topology::window_suffix_of(&produced.key.name()),
            key: serializer(produced.key, "key"),
            value: serializer(produced.value, "value"),
        };
        st.add(name, kind, &[self.node]);
    }

    // ---- Processor API ----

    /// Adds a user [`Processor`], one instance per task from `supplier`.
    pub fn process<KOut: Data, VOut: Data, P>(
        &self,
        named: Option<&str>,
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) -> KStream<KOut, VOut>
    where
        P: Processor<K, V, KOut, VOut> + 'static,
    {
        self.process_with_stores(named, &[], supplier)
    }

    /// Adds a user [`Processor`] connected to the named state stores (added with
    /// [`StreamsBuilder::add_state_store`]); it reaches them through its context.
    pub fn process_with_stores<KOut: Data, VOut: Data, P>(
        &self,
        named: Option<&str>,
        stores: &[&str],
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) -> KStream<KOut, VOut>
    where
        P: Processor<K, V, KOut, VOut> + 'static,
    {
        let mut st = self.builder.state.borrow_mut();
        let name = named.map_or_else(|| st.next_name("KSTREAM-PROCESSOR-"), str::to_owned);
        let factory: crate::topology::NodeFactory = Arc::new(move || {
            Box::new(ProcessorNode::<P, K, V, KOut, VOut> {
                processor: supplier(),
                _types: PhantomData,
            })
        });
        let node = st.add(
            name,
            NodeKind::Processor {
                factory,
                stores: stores.iter().map(|s| (*s).to_owned()).collect(),
            },
            &[self.node],
        );
        st.rekeyed.insert(node);
        KStream::at(&self.builder, node)
    }
}

impl<K: Data, V: Data> BranchedKStream<K, V> {
    /// A branch taking the records `predicate` accepts (that no earlier branch took).
    pub fn branch(
        self,
        name: &str,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.try_branch(name, move |_, k, v| Ok(predicate(k, v)))
    }

    /// `branch` with the record info in view and a fallible predicate; `name` is appended to the
    /// split's name to name the branch.
    pub fn try_branch(
        mut self,
        name: &str,
        predicate: impl Fn(&RecordInfo, &K, &V) -> Result<bool, ProcessError> + Send + Sync + 'static,
    ) -> Self {
        let p: Predicate = Arc::new(KStream::<K, V>::typed2(predicate));
        self.branches
            .push((Some(p), format!("{}{name}", self.prefix)));
        self
    }

    /// Adds the default branch (records no other branch took) and returns every branch's
    /// stream by its full name (`<split name><branch name>`).
    pub fn default_branch(mut self, name: &str) -> BTreeMap<String, KStream<K, V>> {
        self.branches.push((None, format!("{}{name}", self.prefix)));
        self.finish()
    }

    /// Returns the branches; records no branch matches are dropped.
    pub fn no_default_branch(self) -> BTreeMap<String, KStream<K, V>> {
        self.finish()
    }

    fn finish(self) -> BTreeMap<String, KStream<K, V>> {
        let split =
            self.stream
                .then::<K, V>("", Some(&self.prefix), Op::Split(self.branches.clone()));
        self.branches
            .iter()
            .map(|(_, child)| {
                // Each branch takes a number from the counter, as in Kafka Streams.
                self.stream.builder.state.borrow_mut().next_name("");
                (child.clone(), split.then("", Some(child), Op::PassThrough))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::DescribeFormat;

    #[test]
    fn names_and_structure_follow_kafka_streams() {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("input")
            .filter(|_, v| !v.is_empty())
            .map_values(|v| v.len() as i64)
            .to("output");
        let text = builder.build().unwrap().describe(DescribeFormat::Text);
        assert_eq!(
            text,
            "Topologies:\n   Sub-topology: 0\n    Source: KSTREAM-SOURCE-0000000000 (topics: [input])\n      --> KSTREAM-FILTER-0000000001\n    Processor: KSTREAM-FILTER-0000000001 (stores: [])\n      --> KSTREAM-MAPVALUES-0000000002\n      <-- KSTREAM-SOURCE-0000000000\n    Processor: KSTREAM-MAPVALUES-0000000002 (stores: [])\n      --> KSTREAM-SINK-0000000003\n      <-- KSTREAM-FILTER-0000000001\n    Sink: KSTREAM-SINK-0000000003 (topic: output)\n      <-- KSTREAM-MAPVALUES-0000000002\n\n"
        );
    }

    #[test]
    fn a_repartition_cuts_the_graph_into_two_subtopologies() {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("input")
            .select_key(|_, v| v.clone())
            .repartition(
                Repartitioned::default()
                    .named("by-value")
                    .with_partitions(4),
            )
            .to("output");
        let topology = builder.build().unwrap();
        assert_eq!(topology.subtopologies().len(), 2);
        assert_eq!(
            topology.repartition_topics(),
            [RepartitionTopic {
                name: TopicName::Internal("by-value-repartition".into()),
                partitions: Some(4)
            }]
        );
        assert_eq!(
            TopicName::Internal("by-value-repartition".into()).resolve("app"),
            "app-by-value-repartition"
        );
    }

    /// Kafka Streams 4.4.0's `describe()` of the same topologies, captured from
    /// `kafka-streams-4.4.0.jar` by `scripts/reference.sh describe branch-by-region` and
    /// `... describe dsl-repartition` (tests/reference/streams).
    const KAFKA_STREAMS_SPLIT: &str = "Topologies:\n   Sub-topology: 0\n    Source: KSTREAM-SOURCE-0000000000 (topics: [branch-orders])\n      --> KSTREAM-FILTER-0000000001\n    Processor: KSTREAM-FILTER-0000000001 (stores: [])\n      --> by-region-\n      <-- KSTREAM-SOURCE-0000000000\n    Processor: by-region- (stores: [])\n      --> by-region-eu, by-region-us, by-region-other\n      <-- KSTREAM-FILTER-0000000001\n    Processor: by-region-eu (stores: [])\n      --> KSTREAM-SINK-0000000006\n      <-- by-region-\n    Processor: by-region-other (stores: [])\n      --> KSTREAM-SINK-0000000008\n      <-- by-region-\n    Processor: by-region-us (stores: [])\n      --> KSTREAM-SINK-0000000007\n      <-- by-region-\n    Sink: KSTREAM-SINK-0000000006 (topic: branch-orders-eu)\n      <-- by-region-eu\n    Sink: KSTREAM-SINK-0000000007 (topic: branch-orders-us)\n      <-- by-region-us\n    Sink: KSTREAM-SINK-0000000008 (topic: branch-orders-other)\n      <-- by-region-other\n\n";
    const KAFKA_STREAMS_REPARTITION: &str = "Topologies:\n   Sub-topology: 0\n    Source: KSTREAM-SOURCE-0000000000 (topics: [input])\n      --> KSTREAM-KEY-SELECT-0000000001\n    Processor: KSTREAM-KEY-SELECT-0000000001 (stores: [])\n      --> by-value-repartition-filter\n      <-- KSTREAM-SOURCE-0000000000\n    Processor: by-value-repartition-filter (stores: [])\n      --> by-value-repartition-sink\n      <-- KSTREAM-KEY-SELECT-0000000001\n    Sink: by-value-repartition-sink (topic: by-value-repartition)\n      <-- by-value-repartition-filter\n\n  Sub-topology: 1\n    Source: by-value-repartition-source (topics: [by-value-repartition])\n      --> KSTREAM-SINK-0000000005\n    Sink: KSTREAM-SINK-0000000005 (topic: output)\n      <-- by-value-repartition-source\n\n";

    #[test]
    fn split_is_described_exactly_as_kafka_streams_describes_it() {
        let builder = StreamsBuilder::new();
        let branches = builder
            .stream::<String, String>("branch-orders")
            .filter(|_, _| true)
            .split(Some("by-region-"))
            .branch("eu", |_, _| true)
            .branch("us", |_, _| true)
            .default_branch("other");
        branches["by-region-eu"].to("branch-orders-eu");
        branches["by-region-us"].to("branch-orders-us");
        branches["by-region-other"].to("branch-orders-other");
        let text = builder.build().unwrap().describe(DescribeFormat::Text);
        assert_eq!(text, KAFKA_STREAMS_SPLIT);
    }

    #[test]
    fn repartition_is_described_exactly_as_kafka_streams_describes_it() {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("input")
            .select_key(|_, v| v.clone())
            .repartition(Repartitioned::default().named("by-value"))
            .to("output");
        let text = builder.build().unwrap().describe(DescribeFormat::Text);
        assert_eq!(text, KAFKA_STREAMS_REPARTITION);
    }
}
