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
use super::stateful::{ErasedSerde, info_of, key_bytes, require_store, resolve_store};
use super::{Data, KStream, RecordInfo};

/// Builds a joined value: `(record, key, left value, right value)`; `None` on the right in a
/// left join without a row.
pub type Joiner = Arc<
    dyn Fn(&RecordInfo, &Datum, &Datum, Option<&Datum>) -> Result<Datum, ProcessError>
        + Send
        + Sync,
>;

/// Forwards a stream record's joined value, with the record's key, timestamp and headers.
pub(crate) fn forward_joined(ctx: &mut NodeContext, record: &ErasedRecord, joined: Datum) {
    ctx.forward(
        ErasedRecord {
            key: record.key.clone(),
            value: joined,
            timestamp: record.timestamp,
            headers: record.headers.clone(),
        },
        None,
    );
}

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
        let right = self
            .value
            .load(ctx, store, &kb, "a table row")?
            .map(|(row, _)| row);
        if right.is_none() && !self.left {
            return Ok(());
        }
        let joined = (self.joiner)(
            &info_of(ctx, record),
            &record.key,
            &record.value,
            right.as_ref(),
        )?;
        forward_joined(ctx, record, joined);
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

/// Which rows a table-table join keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    /// Keys with a row on both sides.
    Inner,
    /// Every key of the left table; the right side may be missing.
    Left,
    /// Every key of either table; either side may be missing.
    Outer,
}

/// Joins `(record, key, left, right)` where either side may be missing (outer joins).
pub type TableJoiner = Arc<
    dyn Fn(&RecordInfo, &Datum, Option<&Datum>, Option<&Datum>) -> Result<Datum, ProcessError>
        + Send
        + Sync,
>;

/// One side of a table-table join (Kafka Streams' `KTableKTableJoin`): an update of this side
/// meets the other side's current row, and the joined row's new and old values go downstream.
struct TableTableJoinNode {
    /// The other side's store and value serde.
    other_store: String,
    store: Option<StoreId>,
    key: ErasedSerde,
    other_value: ErasedSerde,
    joiner: TableJoiner,
    kind: JoinKind,
    /// This node handles the right table's updates (the joiner's sides swap).
    right_side: bool,
}

impl TableTableJoinNode {
    fn joined(
        &self,
        info: &RecordInfo,
        key: &Datum,
        mine: Option<&Datum>,
        other: Option<&Datum>,
    ) -> Result<Option<Datum>, ProcessError> {
        let (left, right) = if self.right_side {
            (other, mine)
        } else {
            (mine, other)
        };
        let keep = match self.kind {
            JoinKind::Inner => left.is_some() && right.is_some(),
            JoinKind::Left => left.is_some(),
            JoinKind::Outer => left.is_some() || right.is_some(),
        };
        keep.then(|| (self.joiner)(info, key, left, right))
            .transpose()
    }
}

impl Node for TableTableJoinNode {
    fn init(&mut self, ctx: &mut NodeContext) {
        self.store = resolve_store(ctx, &self.other_store);
    }

    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let store = require_store(self.store, &self.other_store)?;
        let Some(kb) = key_bytes(&self.key, &record.key)? else {
            return Ok(());
        };
        let change = typed::<super::Change>(&record.value, "table update")?;
        let other = self
            .other_value
            .load(ctx, store, &kb, "a table row")?
            .map(|(row, _)| row);
        let info = info_of(ctx, record);
        let new = self.joined(&info, &record.key, change.new.as_ref(), other.as_ref())?;
        let old = self.joined(&info, &record.key, change.old.as_ref(), other.as_ref())?;
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        super::stateful::forward_change(
            ctx,
            record.key.clone(),
            super::Change { new, old },
            record.timestamp,
            record,
        );
        Ok(())
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
