//! Global tables (Kafka Streams' `GlobalKTable`) and the stream-globalTable join: every
//! instance holds the whole table, so a stream joins it on any key its records can name, with no
//! co-partitioning and no repartition topic.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::processor::Node;
use crate::processor::nodes::{ErasedSerde, GlobalJoinNode, Joiner, KeySelector};
use crate::topology::{GlobalTableDef, NodeFactory};

use super::{KStream, StreamsBuilder};

/// A table fully held by every instance, kept by the global thread.
pub struct GlobalKTable<K, V> {
    store: String,
    key: ErasedSerde,
    value: ErasedSerde,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        GlobalKTable {
            store: self.store.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
            _types: PhantomData,
        }
    }
}

impl StreamsBuilder {
    /// A global table of `topic`, in the store `store` (Kafka Streams' `builder.globalTable`).
    pub fn global_table_erased<K, V>(
        &self,
        topic: &str,
        store: Option<String>,
        key: ErasedSerde,
        value: ErasedSerde,
    ) -> GlobalKTable<K, V> {
        // Named and numbered as Kafka Streams' builder.globalTable names them: the store (unless
        // named), then the source and the table source that describe() shows.
        let mut st = self.state.borrow_mut();
        let store = store.unwrap_or_else(|| st.next_name(&format!("{topic}-STATE-STORE-")));
        let source = st.next_name("KSTREAM-SOURCE-");
        let processor = st.next_name("KTABLE-SOURCE-");
        if !st.global_tables.iter().any(|g| g.store == store) {
            st.global_tables.push(GlobalTableDef {
                store: store.clone(),
                topic: topic.to_owned(),
                source,
                processor,
            });
        }
        GlobalKTable {
            store,
            key,
            value,
            _types: PhantomData,
        }
    }
}

impl<K, V> KStream<K, V> {
    /// Joins each record with the global table's row of the key `select` picks; `left` keeps
    /// records without a row (the joiner sees `None`).
    pub fn join_global_erased<KG, VG, VR>(
        &self,
        table: &GlobalKTable<KG, VG>,
        select: KeySelector,
        joiner: Joiner,
        left: bool,
        named: Option<&str>,
    ) -> KStream<K, VR> {
        let builder = self.builder().clone();
        // Kafka Streams names inner and left global-table joins alike.
        let name = named.map_or_else(
            || builder.generated_name("KSTREAM-LEFTJOIN-"),
            str::to_owned,
        );
        let (store, key, value) = (table.store.clone(), table.key.clone(), table.value.clone());
        let factory: NodeFactory = Arc::new(move || {
            Box::new(GlobalJoinNode {
                store: store.clone(),
                key: key.clone(),
                value: value.clone(),
                select: select.clone(),
                joiner: joiner.clone(),
                left,
            }) as Box<dyn Node>
        });
        let node = builder.add_processor(name, &[self.node()], Vec::new(), factory);
        KStream::at(&builder, node)
    }
}
