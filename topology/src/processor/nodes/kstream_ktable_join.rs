//! Stream-table joins (Kafka Streams' `KStreamKTableJoin`): each stream record looks up its
//! key in the table's store, as the table stands when the record is processed, and the joiner
//! builds the output value. An inner join drops records without a row; a left join passes them
//! on with no right side. The two inputs must be co-partitioned, which puts partition N of each
//! in one task; a stream whose keys changed is repartitioned to the table's partition count.

use crate::processor::{ErasedRecord, Node, NodeContext, ProcessError};
use crate::state::StoreId;

use super::common::{
    ErasedSerde, Joiner, forward_joined, info_of, key_bytes, require_store, resolve_store,
};

pub(crate) struct StreamTableJoinNode {
    pub(crate) store_name: String,
    pub(crate) store: Option<StoreId>,
    pub(crate) key: ErasedSerde,
    pub(crate) value: ErasedSerde,
    pub(crate) joiner: Joiner,
    pub(crate) left: bool,
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
