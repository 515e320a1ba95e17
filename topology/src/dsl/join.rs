//! Stream-table joins (Kafka Streams' `KStreamKTableJoin`): each stream record looks up its
//! key in the table's store, as the table stands when the record is processed, and the joiner
//! builds the output value. An inner join drops records without a row; a left join passes them
//! on with no right side. The two inputs must be co-partitioned, which puts partition N of each
//! in one task; a stream whose keys changed is repartitioned to the table's partition count.

use std::sync::Arc;

use crate::processor::nodes::{
    ErasedSerde, JoinKind, Joiner, StreamTableJoinNode, TableJoiner, TableTableJoinNode,
};
use crate::processor::{Node, ProcessError, datum, typed};
use crate::topology::NodeFactory;

use super::ktable::KTable;
use super::{Data, KStream};

/// Why a join cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error(
        "the table is not materialized in a store: join the table it was derived from, or read it with toTable first"
    )]
    /// The table has no store to look rows up in (e.g. a `filter` or `mapValues` result that was
    /// not materialized).
    NotMaterialized,
    /// The table's key and value serdes are unknown, so its store cannot be read.
    #[error("the table has no key and value serdes to read its store with")]
    NoSerdes,
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Joins each record with the table's row of its key; `left` keeps records without a row.
    /// `repartition` names the topic a re-keyed stream goes through first.
    pub fn join_table_erased<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        joiner: Joiner,
        left: bool,
        named: Option<&str>,
        repartition: Option<String>,
        stream_value: ErasedSerde,
    ) -> Result<KStream<K, VR>, JoinError> {
        let store = table
            .store_name()
            .ok_or(JoinError::NotMaterialized)?
            .to_owned();
        let (Some(key), Some(value)) = table.serdes() else {
            return Err(JoinError::NoSerdes);
        };
        let builder = self.builder().clone();
        let prefix = if left {
            "KSTREAM-LEFTJOIN-"
        } else {
            "KSTREAM-JOIN-"
        };
        let mut name = named.map(str::to_owned);
        let input: KStream<K, V> = if self.rekeyed() {
            let topic = repartition.unwrap_or_else(|| {
                let join = name.get_or_insert_with(|| builder.generated_name(prefix));
                format!("{join}-left")
            });
            self.repartition_erased(Some(topic), None, key.clone(), stream_value)
        } else {
            self.clone()
        };
        // Numbered after the repartition's nodes, as Kafka Streams numbers a join.
        let name = name.unwrap_or_else(|| builder.generated_name(prefix));
        let (key_serde, store_name) = (key, store.clone());
        let factory: NodeFactory = Arc::new(move || {
            Box::new(StreamTableJoinNode {
                store_name: store_name.clone(),
                store: None,
                key: key_serde.clone(),
                value: value.clone(),
                joiner: joiner.clone(),
                left,
            }) as Box<dyn Node>
        });
        let node = builder.add_processor(name, &[input.node()], vec![store], factory);
        Ok(KStream::at(&builder, node))
    }

    /// Inner join with a table (Kafka Streams' `KStream.join(KTable, ValueJoiner)`).
    pub fn join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        stream_value: Arc<dyn crate::serdes::Serde<V>>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> Result<KStream<K, VR>, JoinError> {
        let j: Joiner = Arc::new(move |_, _, l, r| {
            let r = r.ok_or_else(|| ProcessError::new("an inner join met no row"))?;
            Ok(datum(joiner(
                typed::<V>(l, "value")?,
                typed::<VT>(r, "table value")?,
            )))
        });
        let value = super::options::erased(stream_value, "value");
        self.join_table_erased(table, j, false, None, None, value)
    }

    /// Left join with a table: records without a row join with `None`.
    pub fn left_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        stream_value: Arc<dyn crate::serdes::Serde<V>>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> Result<KStream<K, VR>, JoinError> {
        let j: Joiner = Arc::new(move |_, _, l, r| {
            let r = r.map(|r| typed::<VT>(r, "table value")).transpose()?;
            Ok(datum(joiner(typed::<V>(l, "value")?, r)))
        });
        let value = super::options::erased(stream_value, "value");
        self.join_table_erased(table, j, true, None, None, value)
    }
}

impl<K, V> KTable<K, V> {
    /// Joins this table with `other` on the key (Kafka Streams' `KTable.join`, `leftJoin`,
    /// `outerJoin`): an update on either side meets the other side's current row.
    pub fn join_table_erased<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: TableJoiner,
        kind: JoinKind,
        named: Option<&str>,
    ) -> Result<KTable<K, VR>, JoinError> {
        let (Some(left_store), Some(right_store)) = (self.store_name(), other.store_name()) else {
            return Err(JoinError::NotMaterialized);
        };
        let ((Some(key), Some(left_value)), (_, Some(right_value))) =
            (self.serdes(), other.serdes())
        else {
            return Err(JoinError::NoSerdes);
        };
        let builder = self.builder().clone();
        let prefix = match kind {
            JoinKind::Inner => "KTABLE-JOINTHIS-",
            JoinKind::Left => "KTABLE-LEFTTHIS-",
            JoinKind::Outer => "KTABLE-OUTERTHIS-",
        };
        let this_name = builder.generated_name(prefix);
        let other_name = builder.generated_name(&prefix.replace("THIS", "OTHER"));
        let side = |other_store: &str, other_value: ErasedSerde, right_side: bool| -> NodeFactory {
            let (other_store, key, joiner) = (other_store.to_owned(), key.clone(), joiner.clone());
            Arc::new(move || {
                Box::new(TableTableJoinNode {
                    other_store: other_store.clone(),
                    store: None,
                    key: key.clone(),
                    other_value: other_value.clone(),
                    joiner: joiner.clone(),
                    kind,
                    right_side,
                }) as Box<dyn Node>
            })
        };
        let this = builder.add_processor(
            this_name,
            &[self.node_index()],
            vec![right_store.to_owned()],
            side(right_store, right_value, false),
        );
        let that = builder.add_processor(
            other_name,
            &[other.node_index()],
            vec![left_store.to_owned()],
            side(left_store, left_value, true),
        );
        let merge = named.map_or_else(|| builder.generated_name("KTABLE-MERGE-"), str::to_owned);
        let pass: NodeFactory =
            Arc::new(|| Box::new(super::OpNode(super::Op::PassThrough)) as Box<dyn Node>);
        let node = builder.add_processor(merge, &[this, that], Vec::new(), pass);
        Ok(KTable::at(&builder, node, Some(key), None, None, None))
    }
}
