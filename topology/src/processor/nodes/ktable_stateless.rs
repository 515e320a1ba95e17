//! The stateless table operations over [`Change`] records: filter and mapValues on tables
//! (`KTableFilter`, `KTableMapValues`), back to a stream (`KTableToStream`), and the re-keying
//! that feeds a grouped table (`KTableRepartitionMap`).

use std::sync::Arc;

use crate::processor::{Datum, ErasedRecord, Node, NodeContext, ProcessError, typed};

use super::common::{Change, ErasedSerde, FnNode, RecordInfo, forward_change, info_of, key_bytes};
use super::stateless::{Predicate, ValueFn};

/// `KTable.filter` / `filterNot`: values that fail the predicate become deletions. Old values
/// are at hand (tables are materialized), so, as Kafka Streams does then, an update that neither
/// passes now nor passed before sends nothing.
pub(crate) fn table_filter(predicate: Predicate, keep_when: bool) -> impl Node {
    FnNode(move |ctx: &mut NodeContext, record: &ErasedRecord| {
        let change = typed::<Change>(&record.value, "table update")?;
        let info = info_of(ctx, record);
        let keep = |v: &Option<Datum>| -> Result<Option<Datum>, ProcessError> {
            match v {
                Some(v) if predicate(&info, &record.key, v)? == keep_when => Ok(Some(v.clone())),
                _ => Ok(None),
            }
        };
        let filtered = Change {
            new: keep(&change.new)?,
            old: keep(&change.old)?,
        };
        if filtered.new.is_none() && filtered.old.is_none() {
            return Ok(());
        }
        forward_change(ctx, record.key.clone(), filtered, record.timestamp, record);
        Ok(())
    })
}

/// `KTable.mapValues`: both the new and the old value are mapped.
pub(crate) fn table_map_values(f: ValueFn) -> impl Node {
    FnNode(move |ctx: &mut NodeContext, record: &ErasedRecord| {
        let change = typed::<Change>(&record.value, "table update")?;
        let info = info_of(ctx, record);
        let map = |v: &Option<Datum>| v.as_ref().map(|v| f(&info, &record.key, v)).transpose();
        let mapped = Change {
            new: map(&change.new)?,
            old: map(&change.old)?,
        };
        forward_change(ctx, record.key.clone(), mapped, record.timestamp, record);
        Ok(())
    })
}

/// Turns a deletion (no new value) into the stream's null.
pub type NullFn = Arc<dyn Fn() -> Datum + Send + Sync>;

/// `KTable.toStream`: each update's new value; a deletion becomes a null value.
pub(crate) fn to_stream(null: NullFn) -> impl Node {
    FnNode(move |ctx: &mut NodeContext, record: &ErasedRecord| {
        let change = typed::<Change>(&record.value, "table update")?;
        let value = change.new.clone().unwrap_or_else(|| null());
        ctx.forward(
            ErasedRecord {
                key: record.key.clone(),
                value,
                timestamp: record.timestamp,
                headers: record.headers.clone(),
            },
            None,
        );
        Ok(())
    })
}

/// Picks a table row's new group key and value.
pub type SelectFn =
    Arc<dyn Fn(&RecordInfo, &Datum, &Datum) -> Result<(Datum, Datum), ProcessError> + Send + Sync>;

/// `KTable.groupBy`: an update moves a row from its old group to its new one. When both fall in
/// one group a single update carries both values; otherwise the old group gets the subtraction
/// first and the new group the addition, as Kafka Streams sends them.
pub(crate) fn table_group_by(select: SelectFn, key_serde: ErasedSerde) -> impl Node {
    FnNode(move |ctx: &mut NodeContext, record: &ErasedRecord| {
        let change = typed::<Change>(&record.value, "table update")?;
        let info = info_of(ctx, record);
        let pick = |v: &Option<Datum>| {
            v.as_ref()
                .map(|v| select(&info, &record.key, v))
                .transpose()
        };
        let old = pick(&change.old)?;
        let new = pick(&change.new)?;
        let same_group = match (&old, &new) {
            (Some((ok, _)), Some((nk, _))) => {
                key_bytes(&key_serde, ok)? == key_bytes(&key_serde, nk)?
            }
            _ => false,
        };
        let ts = record.timestamp;
        if same_group {
            if let (Some((_, ov)), Some((nk, nv))) = (old, new) {
                let both = Change {
                    new: Some(nv),
                    old: Some(ov),
                };
                forward_change(ctx, nk, both, ts, record);
            }
            return Ok(());
        }
        if let Some((ok, ov)) = old {
            let minus = Change {
                new: None,
                old: Some(ov),
            };
            forward_change(ctx, ok, minus, ts, record);
        }
        if let Some((nk, nv)) = new {
            let plus = Change {
                new: Some(nv),
                old: None,
            };
            forward_change(ctx, nk, plus, ts, record);
        }
        Ok(())
    })
}
