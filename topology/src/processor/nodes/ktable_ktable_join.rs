//! Table-table joins on the key (Kafka Streams' `KTableKTableJoin`, `KTableKTableLeftJoin`,
//! `KTableKTableOuterJoin`): an update of either side meets the other side's current row.

use crate::processor::{Datum, ErasedRecord, Node, NodeContext, ProcessError, typed};
use crate::state::StoreId;

use super::common::{
    Change, ErasedSerde, JoinKind, RecordInfo, TableJoiner, forward_change, info_of, key_bytes,
    require_store, resolve_store,
};

/// One side of a table-table join (Kafka Streams' `KTableKTableJoin`): an update of this side
/// meets the other side's current row, and the joined row's new and old values go downstream.
pub(crate) struct TableTableJoinNode {
    /// The other side's store and value serde.
    pub(crate) other_store: String,
    pub(crate) store: Option<StoreId>,
    pub(crate) key: ErasedSerde,
    pub(crate) other_value: ErasedSerde,
    pub(crate) joiner: TableJoiner,
    pub(crate) kind: JoinKind,
    /// This node handles the right table's updates (the joiner's sides swap).
    pub(crate) right_side: bool,
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
        let change = typed::<Change>(&record.value, "table update")?;
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
        forward_change(
            ctx,
            record.key.clone(),
            Change { new, old },
            record.timestamp,
            record,
        );
        Ok(())
    }
}
