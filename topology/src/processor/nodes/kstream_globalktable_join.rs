//! The stream-globalTable join (Kafka Streams' `KStreamGlobalKTableJoin`): every instance holds
//! the whole table, so a stream joins it on any key its records can name, with no
//! co-partitioning and no repartition topic.

use std::sync::Arc;

use crate::processor::{Datum, ErasedRecord, Node, NodeContext, ProcessError};

use super::common::{
    ErasedSerde, Joiner, RecordInfo, forward_joined, is_null, store_error, with_info,
};

/// Picks the global table's key for a stream record: `(record, key, value) -> table key`.
pub type KeySelector =
    Arc<dyn Fn(&RecordInfo, &Datum, &Datum) -> Result<Datum, ProcessError> + Send + Sync>;

pub(crate) struct GlobalJoinNode {
    pub(crate) store: String,
    pub(crate) key: ErasedSerde,
    pub(crate) value: ErasedSerde,
    pub(crate) select: KeySelector,
    pub(crate) joiner: Joiner,
    pub(crate) left: bool,
}

impl GlobalJoinNode {
    fn join(
        &self,
        ctx: &mut NodeContext,
        info: &RecordInfo,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let table_key = (self.select)(info, &record.key, &record.value)?;
        let kb = if is_null(&table_key) {
            None
        } else {
            self.key.bytes(&table_key)?
        };
        let globals = ctx
            .globals
            .as_ref()
            .ok_or_else(|| ProcessError::new("global tables are not loaded in this process"))?;
        let right = match kb {
            Some(kb) => match globals.get(&self.store, &kb).map_err(store_error)? {
                Some(bytes) => Some(self.value.read(&bytes, "a global table row")?),
                None => None,
            },
            None => None,
        };
        if right.is_none() && !self.left {
            return Ok(());
        }
        let joined = (self.joiner)(info, &record.key, &record.value, right.as_ref())?;
        forward_joined(ctx, record, joined);
        Ok(())
    }
}

impl Node for GlobalJoinNode {
    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        with_info(ctx, record, |ctx, info| self.join(ctx, info, record))
    }
}
