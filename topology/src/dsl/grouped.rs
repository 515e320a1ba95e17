//! Grouped streams and their aggregations: `groupByKey`/`groupBy`, then count, reduce,
//! aggregate, over all time or per tumbling, hopping, sliding or session window
//! (Kafka Streams' `KGroupedStream`, `TimeWindowedKStream`, `SessionWindowedKStream`).

use std::sync::Arc;

use crate::processor::{Datum, Node, ProcessError, datum, typed};
use crate::serdes::Serde;
use crate::state::window::Window;
use crate::topology::{NodeFactory, StoreDef, StoreKind};

use crate::processor::nodes::{
    Aggregation, Aggregator, ErasedSerde, Initializer, Merger, RecordInfo,
    SessionWindowAggregateNode, SlidingWindowAggregateNode, StreamAggregateNode,
    TimeWindowAggregateNode, WindowOf, WindowedKeyFn,
};
use crate::windows::{SessionWindows, SlidingWindows, TimeWindows};

use super::ktable::KTable;
use super::options::{Grouped, Materialized, StoreSpec, erased};
use super::stateful::{Windowed, WindowedSerde};
use super::{Data, KStream};

/// How an aggregation windows its records.
#[derive(Clone)]
pub enum Windowing {
    /// No windows: one aggregate per key over all time, in a key-value store.
    None,
    /// Tumbling or hopping windows of fixed size (Kafka Streams' `TimeWindows`), in a window store.
    Time(TimeWindows),
    /// Sliding windows over the records' time difference (Kafka Streams' `SlidingWindows`), in a
    /// window store.
    Sliding(SlidingWindows),
    /// Session windows separated by an inactivity gap (Kafka Streams' `SessionWindows`), in a
    /// session store; the merger combines two sessions' aggregates when a record bridges them.
    Session(SessionWindows, Merger),
}

impl Windowing {
    fn store_kind(&self) -> StoreKind {
        match self {
            Windowing::None => StoreKind::KeyValue,
            Windowing::Time(w) => StoreKind::Window {
                retention_ms: w.retention_ms(),
            },
            Windowing::Sliding(w) => StoreKind::Window {
                retention_ms: w.retention_ms(),
            },
            Windowing::Session(w, _) => StoreKind::Session {
                retention_ms: w.retention_ms(),
            },
        }
    }

    /// The windows' size and grace, for the store's format (empty without windows).
    fn describe(&self) -> String {
        match self {
            Windowing::None => String::new(),
            Windowing::Time(w) => format!(
                " windows size={}ms advance={}ms grace={}ms",
                w.size_ms, w.advance_ms, w.grace_ms
            ),
            Windowing::Sliding(w) => format!(
                " sliding difference={}ms grace={}ms",
                w.time_difference_ms, w.grace_ms
            ),
            Windowing::Session(w, _) => {
                format!(" sessions gap={}ms grace={}ms", w.gap_ms, w.grace_ms)
            }
        }
    }

    fn grace_ms(&self) -> Option<i64> {
        match self {
            Windowing::None => None,
            Windowing::Time(w) => Some(w.grace_ms),
            Windowing::Sliding(w) => Some(w.grace_ms),
            Windowing::Session(w, _) => Some(w.grace_ms),
        }
    }
}

/// What a windowed aggregation needs to say about its keys.
#[derive(Clone)]
pub struct WindowedKeys {
    /// Builds the emitted key from the record key and window.
    pub make: WindowedKeyFn,
    /// Reads the window back from an emitted key (for suppress).
    pub window_of: WindowOf,
    /// Serializes emitted keys (`windowed-<inner>` or `session-<inner>`).
    pub serde: ErasedSerde,
}

/// A stream grouped by key, ready to aggregate.
#[derive(Clone)]
pub struct KGroupedStream<K, V> {
    stream: KStream<K, V>,
    key: ErasedSerde,
    value: ErasedSerde,
    name: Option<String>,
    repartition: bool,
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Groups by the current key; a repartition topic is inserted first if an upstream
    /// operation may have changed keys.
    pub fn group_by_key(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self.clone(),
            key: erased(grouped.key, "key"),
            value: erased(grouped.value, "value"),
            name: grouped.name,
            repartition: self.rekeyed(),
        }
    }

    /// Groups by a new key: always through a repartition topic.
    pub fn group_by<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V> {
        self.try_group_by(None, move |_, k, v| Ok(f(k, v)), grouped)
    }

    /// `group_by` with the record info in view and a fallible key function; `named` names the
    /// key-selecting node instead of a generated `KSTREAM-KEY-SELECT-NNNNNNNNNN`.
    pub fn try_group_by<K2: Data>(
        &self,
        named: Option<&str>,
        f: impl Fn(&RecordInfo, &K, &V) -> Result<K2, ProcessError> + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V> {
        let rekeyed = self.try_select_key(named, f);
        KGroupedStream {
            stream: rekeyed,
            key: erased(grouped.key, "key"),
            value: erased(grouped.value, "value"),
            name: grouped.name,
            repartition: true,
        }
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Builds a grouping over erased serdes (the declarative topology's way in).
    pub fn from_erased(
        stream: &KStream<K, V>,
        key: ErasedSerde,
        value: ErasedSerde,
        name: Option<String>,
        repartition: bool,
    ) -> Self {
        KGroupedStream {
            stream: stream.clone(),
            key,
            value,
            name,
            repartition: repartition || stream.rekeyed(),
        }
    }

    /// Counts records per key.
    pub fn count(&self, materialized: Materialized<i64>) -> KTable<K, i64> {
        self.aggregate_erased(
            None,
            StoreSpec::from_materialized(materialized),
            Windowing::None,
            None,
            Some(count_init()),
            count_add(),
        )
    }

    /// Combines values per key; the first value is the starting aggregate.
    pub fn reduce(
        &self,
        f: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        materialized: Materialized<V>,
    ) -> KTable<K, V> {
        let add: Aggregator = Arc::new(move |_, _, v, agg| {
            Ok(datum(f(
                typed::<V>(agg, "aggregate")?,
                typed::<V>(v, "value")?,
            )))
        });
        self.aggregate_erased(
            None,
            StoreSpec::from_materialized(materialized),
            Windowing::None,
            None,
            None,
            add,
        )
    }

    /// Folds values per key into an aggregate starting from `init()`.
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        f: impl Fn(&K, &V, &A) -> A + Send + Sync + 'static,
        materialized: Materialized<A>,
    ) -> KTable<K, A> {
        let (init, add) = typed_aggregator(init, f);
        self.aggregate_erased(
            None,
            StoreSpec::from_materialized(materialized),
            Windowing::None,
            None,
            Some(init),
            add,
        )
    }

    /// Windows the grouped stream in tumbling or hopping windows.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            grouped: self.clone_grouping(),
            windowing: Windowing::Time(windows),
        }
    }

    /// Windows the grouped stream in sliding windows.
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            grouped: self.clone_grouping(),
            windowing: Windowing::Sliding(windows),
        }
    }

    fn clone_grouping(&self) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self.stream.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
            name: self.name.clone(),
            repartition: self.repartition,
        }
    }

    /// The aggregation's input: the stream itself, or the stream after a repartition topic named
    /// after the grouping, else after the store (Kafka Streams' rule).
    fn input(&self, store: &str) -> KStream<K, V> {
        if !self.repartition {
            return self.stream.clone();
        }
        let name = self.name.clone().unwrap_or_else(|| store.to_owned());
        self.stream
            .repartition_erased(Some(name), None, self.key.clone(), self.value.clone())
    }

    /// Adds the aggregation: its store, its processor, and the table it produces.
    pub fn aggregate_erased<KOut, A>(
        &self,
        named: Option<&str>,
        store: StoreSpec,
        windowing: Windowing,
        windowed: Option<WindowedKeys>,
        init: Option<Initializer>,
        add: Aggregator,
    ) -> KTable<KOut, A> {
        let builder = self.stream.builder().clone();
        let prefix = match (&windowing, init.is_some()) {
            (Windowing::None, false) => "KSTREAM-REDUCE-",
            _ => "KSTREAM-AGGREGATE-",
        };
        let store_name = store
            .name
            .clone()
            .unwrap_or_else(|| builder.generated_name(&format!("{prefix}STATE-STORE-")));
        // Kafka Streams names the processor before it adds the repartition nodes.
        let name = named.map_or_else(|| builder.generated_name(prefix), str::to_owned);
        let input = self.input(&store_name);
        builder.add_store(StoreDef {
            name: store_name.clone(),
            kind: windowing.store_kind(),
            logged: store.logging,
            in_memory: store.in_memory,
            format: format!(
                "key={} value={}{}",
                self.key.name,
                store.agg.name,
                windowing.describe()
            ),
        });
        let aggregation = Aggregation {
            store: store_name.clone(),
            key: self.key.clone(),
            agg: store.agg.clone(),
            init,
            add,
            subtract: None,
        };
        let grace = windowing.grace_ms();
        let make_key = windowed.as_ref().map(|w| w.make.clone());
        let factory: NodeFactory = match windowing {
            Windowing::None => Arc::new(move || {
                Box::new(StreamAggregateNode {
                    emitter: Default::default(),
                    aggregation: aggregation.clone(),
                    store: None,
                }) as Box<dyn Node>
            }),
            Windowing::Time(windows) => {
                let windowed_key = make_key.unwrap_or_else(windowed_of_datum);
                Arc::new(move || {
                    Box::new(TimeWindowAggregateNode {
                        emitter: Default::default(),
                        aggregation: aggregation.clone(),
                        windows,
                        windowed_key: windowed_key.clone(),
                        store: None,
                        observed: i64::MIN,
                    }) as Box<dyn Node>
                })
            }
            Windowing::Sliding(windows) => {
                let windowed_key = make_key.unwrap_or_else(windowed_of_datum);
                Arc::new(move || {
                    Box::new(SlidingWindowAggregateNode {
                        aggregation: aggregation.clone(),
                        windows,
                        windowed_key: windowed_key.clone(),
                        store: None,
                        observed: i64::MIN,
                    }) as Box<dyn Node>
                })
            }
            Windowing::Session(windows, merger) => {
                let windowed_key = make_key.unwrap_or_else(windowed_of_datum);
                Arc::new(move || {
                    Box::new(SessionWindowAggregateNode {
                        aggregation: aggregation.clone(),
                        merger: merger.clone(),
                        windows,
                        windowed_key: windowed_key.clone(),
                        store: None,
                        observed: i64::MIN,
                    }) as Box<dyn Node>
                })
            }
        };
        let node = builder.add_processor(name, &[input.node()], vec![store_name.clone()], factory);
        let table = KTable::at(
            &builder,
            node,
            windowed
                .as_ref()
                .map_or_else(|| Some(self.key.clone()), |w| Some(w.serde.clone())),
            Some(store.agg),
            grace,
            windowed.as_ref().map(|w| w.window_of.clone()),
        );
        // A windowed store is keyed by window too: only an unwindowed one serves key lookups.
        if windowed.is_none() {
            table.stored_in(store_name)
        } else {
            table
        }
    }
}

/// Keys of the typed DSL's windowed tables: `Windowed<Datum>` — the typed wrappers downcast it
/// into `Windowed<K>` through [`typed_windowed`].
fn windowed_of_datum() -> WindowedKeyFn {
    Arc::new(|key: &Datum, window: Window| {
        datum(Windowed {
            key: key.clone(),
            window,
        })
    })
}

fn count_init() -> Initializer {
    Arc::new(|| Ok(datum(0i64)))
}

fn count_add() -> Aggregator {
    Arc::new(|_, _, _, agg| Ok(datum(typed::<i64>(agg, "count")? + 1)))
}

fn typed_aggregator<K: Data, V: Data, A: Data>(
    init: impl Fn() -> A + Send + Sync + 'static,
    f: impl Fn(&K, &V, &A) -> A + Send + Sync + 'static,
) -> (Initializer, Aggregator) {
    let init: Initializer = Arc::new(move || Ok(datum(init())));
    (init, typed_add(f))
}

fn typed_add<K: Data, V: Data, A: Data>(
    f: impl Fn(&K, &V, &A) -> A + Send + Sync + 'static,
) -> Aggregator {
    Arc::new(move |_, k, v, agg| {
        Ok(datum(f(
            typed::<K>(k, "key")?,
            typed::<V>(v, "value")?,
            typed::<A>(agg, "aggregate")?,
        )))
    })
}

/// A typed view of an erased serde, for types that can be cloned out of a [`Datum`].
struct Typed<K>(ErasedSerde, std::marker::PhantomData<fn() -> K>);

impl<K: Data + Clone> Serde<K> for Typed<K> {
    fn name(&self) -> String {
        std::any::type_name::<K>().to_owned()
    }

    fn serialize(&self, value: &K) -> Result<Option<Vec<u8>>, String> {
        self.0
            .bytes(&datum(value.clone()))
            .map_err(|e| e.to_string())
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<K, String> {
        let d = (self.0.de)(bytes)?;
        typed::<K>(&d, "key").cloned().map_err(|e| e.to_string())
    }
}

/// Typed windowed keys for the Rust DSL: `Windowed<K>` with Kafka Streams' byte layout.
fn typed_windowed<K: Data + Clone>(key: ErasedSerde, session: bool) -> WindowedKeys {
    let key: Arc<dyn Serde<K>> = Arc::new(Typed::<K>(key, std::marker::PhantomData));
    let make: WindowedKeyFn = Arc::new(|k: &Datum, window: Window| match typed::<K>(k, "key") {
        Ok(k) => datum(Windowed {
            key: k.clone(),
            window,
        }),
        // Unreachable for well-typed programs; the sink reports the mismatch.
        Err(_) => k.clone(),
    });
    let window_of: WindowOf =
        Arc::new(|k: &Datum| typed::<Windowed<K>>(k, "windowed key").map(|w| w.window));
    let serde: Arc<dyn Serde<Windowed<K>>> = Arc::new(WindowedSerde {
        inner: key,
        session,
    });
    WindowedKeys {
        make,
        window_of,
        serde: erased(serde, "key"),
    }
}

/// A grouped stream in time windows (tumbling, hopping or sliding).
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windowing: Windowing,
}

impl<K: Data + Clone, V: Data> TimeWindowedKStream<K, V> {
    /// Counts the records per key and window (Kafka Streams' `windowedBy(..).count()`); the table
    /// emits updated counts, collapsed per key until the next commit while the store caches.
    pub fn count(&self, materialized: Materialized<i64>) -> KTable<Windowed<K>, i64> {
        self.grouped.aggregate_erased(
            None,
            StoreSpec::from_materialized(materialized),
            self.windowing.clone(),
            Some(typed_windowed::<K>(self.grouped.key.clone(), false)),
            Some(count_init()),
            count_add(),
        )
    }

    /// Folds the records of each key and window into an aggregate, starting from `init` in every
    /// new window (Kafka Streams' `windowedBy(..).aggregate(initializer, aggregator,
    /// materialized)`).
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        f: impl Fn(&K, &V, &A) -> A + Send + Sync + 'static,
        materialized: Materialized<A>,
    ) -> KTable<Windowed<K>, A> {
        let (init, add) = typed_aggregator(init, f);
        self.grouped.aggregate_erased(
            None,
            StoreSpec::from_materialized(materialized),
            self.windowing.clone(),
            Some(typed_windowed::<K>(self.grouped.key.clone(), false)),
            Some(init),
            add,
        )
    }
}

impl<K: Data + Clone, V: Data> KGroupedStream<K, V> {
    /// Counts per session of activity (sessions separated by the inactivity gap).
    pub fn session_count(
        &self,
        windows: SessionWindows,
        materialized: Materialized<i64>,
    ) -> KTable<Windowed<K>, i64> {
        let merger: Merger =
            Arc::new(|_, a, b| Ok(datum(typed::<i64>(a, "count")? + typed::<i64>(b, "count")?)));
        self.aggregate_erased(
            None,
            StoreSpec::from_materialized(materialized),
            Windowing::Session(windows, merger),
            Some(typed_windowed::<K>(self.key.clone(), true)),
            Some(count_init()),
            count_add(),
        )
    }
}

/// Several grouped streams folded into one aggregate per key, each with its own aggregator
/// (Kafka Streams' `CogroupedKStream`). The streams must be co-partitioned; a stream whose keys
/// changed goes through its own repartition topic first.
pub struct CogroupedKStream<K, A> {
    inputs: Vec<(KGroupedStream<K, Datum>, Aggregator)>,
    _types: std::marker::PhantomData<fn() -> A>,
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    fn erase_value(&self) -> KGroupedStream<K, Datum> {
        KGroupedStream {
            stream: KStream::at(self.stream.builder(), self.stream.node()),
            key: self.key.clone(),
            value: self.value.clone(),
            name: self.name.clone(),
            repartition: self.repartition,
        }
    }

    /// Starts a cogroup with this stream's aggregator.
    pub fn cogroup_erased<A>(&self, add: Aggregator) -> CogroupedKStream<K, A> {
        CogroupedKStream {
            inputs: vec![(self.erase_value(), add)],
            _types: std::marker::PhantomData,
        }
    }

    /// Starts a cogroup (Kafka Streams' `KGroupedStream.cogroup(aggregator)`): `f` folds this
    /// stream's values into the shared aggregate; add more streams with [`CogroupedKStream::with`].
    pub fn cogroup<A: Data>(
        &self,
        f: impl Fn(&K, &V, &A) -> A + Send + Sync + 'static,
    ) -> CogroupedKStream<K, A> {
        self.cogroup_erased(typed_add(f))
    }
}

impl<K: Data, A> CogroupedKStream<K, A> {
    /// Adds another grouped stream with its aggregator.
    pub fn with_erased<V2: Data>(mut self, other: &KGroupedStream<K, V2>, add: Aggregator) -> Self {
        self.inputs.push((other.erase_value(), add));
        self
    }

    /// Folds every stream's records into one aggregate per key, starting from `init`.
    pub fn aggregate_erased(
        &self,
        named: Option<&str>,
        store: StoreSpec,
        init: Initializer,
    ) -> KTable<K, A> {
        let builder = self.inputs[0].0.stream.builder().clone();
        let store_name = store
            .name
            .clone()
            .unwrap_or_else(|| builder.generated_name("COGROUPKSTREAM-AGGREGATE-STATE-STORE-"));
        builder.add_store(StoreDef {
            name: store_name.clone(),
            kind: StoreKind::KeyValue,
            logged: store.logging,
            in_memory: store.in_memory,
            format: format!("key={} value={}", self.inputs[0].0.key.name, store.agg.name),
        });
        let mut aggregators = Vec::new();
        for (i, (grouped, add)) in self.inputs.iter().enumerate() {
            let name = builder.generated_name("COGROUPKSTREAM-AGGREGATE-");
            let topic = grouped
                .name
                .clone()
                .unwrap_or_else(|| format!("{store_name}-cogroup-{i}"));
            let input = grouped.input(&topic);
            let aggregation = Aggregation {
                store: store_name.clone(),
                key: grouped.key.clone(),
                agg: store.agg.clone(),
                init: Some(init.clone()),
                add: add.clone(),
                subtract: None,
            };
            let factory: NodeFactory = Arc::new(move || {
                Box::new(StreamAggregateNode {
                    emitter: Default::default(),
                    aggregation: aggregation.clone(),
                    store: None,
                }) as Box<dyn Node>
            });
            aggregators.push(builder.add_processor(
                name,
                &[input.node()],
                vec![store_name.clone()],
                factory,
            ));
        }
        let merge = named.map_or_else(
            || builder.generated_name("COGROUPKSTREAM-MERGE-"),
            str::to_owned,
        );
        let factory: NodeFactory =
            Arc::new(|| Box::new(super::OpNode(super::Op::PassThrough)) as Box<dyn Node>);
        let node = builder.add_processor(merge, &aggregators, Vec::new(), factory);
        KTable::at(
            &builder,
            node,
            Some(self.inputs[0].0.key.clone()),
            Some(store.agg),
            None,
            None,
        )
        .stored_in(store_name)
    }
}

impl<K: Data, A: Data> CogroupedKStream<K, A> {
    /// Adds another grouped stream with its own aggregator (Kafka Streams'
    /// `CogroupedKStream.cogroup`); its keys must be of the same type and co-partitioned.
    pub fn with<V2: Data>(
        self,
        other: &KGroupedStream<K, V2>,
        f: impl Fn(&K, &V2, &A) -> A + Send + Sync + 'static,
    ) -> Self {
        self.with_erased(other, typed_add(f))
    }

    /// Folds every stream's records into one aggregate per key, starting from `init`, in one store
    /// (Kafka Streams' `CogroupedKStream.aggregate(initializer, materialized)`).
    pub fn aggregate(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        materialized: Materialized<A>,
    ) -> KTable<K, A> {
        let init: Initializer = Arc::new(move || Ok(datum(init())));
        self.aggregate_erased(None, StoreSpec::from_materialized(materialized), init)
    }
}
