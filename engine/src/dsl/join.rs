//! Stream-table joins (Kafka Streams' `KStreamKTableJoin`): each stream record looks up its
//! key in the table's store, as the table stands when the record is processed, and the joiner
//! builds the output value. An inner join drops records without a row; a left join passes them
//! on with no right side. The two inputs must be co-partitioned, which puts partition N of each
//! in one task; a stream whose keys changed is repartitioned to the table's partition count.

use std::sync::Arc;

use crate::processor::{Datum, ErasedRecord, Node, NodeContext, ProcessError, datum, typed};
use crate::state::StoreId;
use crate::topology::NodeFactory;

use super::ktable::KTable;
use super::stateful::{ErasedSerde, info_of, key_bytes, require_store, resolve_store, store_error};
use super::{Data, KStream, RecordInfo};

/// Builds a joined value: `(record, key, left value, right value)`; `None` on the right in a
/// left join without a row.
pub type Joiner = Arc<
    dyn Fn(&RecordInfo, &Datum, &Datum, Option<&Datum>) -> Result<Datum, ProcessError>
        + Send
        + Sync,
>;

/// Why a join cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error(
        "the table is not materialized in a store: join the table it was derived from, or read it with toTable first"
    )]
    NotMaterialized,
    #[error("the table has no key and value serdes to read its store with")]
    NoSerdes,
}

struct StreamTableJoinNode {
    store_name: String,
    store: Option<StoreId>,
    key: ErasedSerde,
    value: ErasedSerde,
    joiner: Joiner,
    left: bool,
}

impl Node for StreamTableJoinNode {
    fn init(&mut self, ctx: &mut NodeContext) {
        self.store = resolve_store(ctx, &self.store_name);
    }

    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let store = require_store(self.store, &self.store_name)?;
        // A record without a key has no row to meet; Kafka Streams drops it too.
        let Some(kb) = key_bytes(&self.key, &record.key)? else {
            return Ok(());
        };
        let right = match ctx.stores.get(store, &kb).map_err(store_error)? {
            Some(row) => Some(self.value.read(&row.value, "a table row")?),
            None => None,
        };
        if right.is_none() && !self.left {
            return Ok(());
        }
        let joined = (self.joiner)(
            &info_of(ctx, record),
            &record.key,
            &record.value,
            right.as_ref(),
        )?;
        ctx.forward(
            ErasedRecord {
                key: record.key.clone(),
                value: joined,
                timestamp: record.timestamp,
                headers: record.headers.clone(),
            },
            None,
        );
        Ok(())
    }
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
        let name = named.map_or_else(|| builder.generated_name(prefix), str::to_owned);
        let input: KStream<K, V> = if self.rekeyed() {
            let topic = repartition.unwrap_or_else(|| format!("{name}-left"));
            self.repartition_erased(Some(topic), None, key.clone(), stream_value)
        } else {
            self.clone()
        };
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
        let value = super::grouped::erased(stream_value, "value");
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
        let value = super::grouped::erased(stream_value, "value");
        self.join_table_erased(table, j, true, None, None, value)
    }
}
