//! Stream-stream windowed joins (Kafka Streams' `KStreamKStreamJoin`, 3.x semantics and later).
//!
//! Each side keeps its recent records in a window store (duplicates retained) for as long as a
//! record of the other side could still join them: the time difference plus the grace period.
//! A record joins every record of the other side with the same key whose timestamp lies within
//! the time difference; the result carries the later timestamp of the two.
//!
//! Left and outer joins do not emit "no partner" results at once, as Kafka Streams did before
//! 3.1: an unmatched record waits in a store shared by both sides, keyed by time and side, until
//! stream time passes its window's end plus grace; only then is it emitted with a null partner,
//! unless a partner arrived meanwhile. Stream time here is the join's own: the largest timestamp
//! either side has seen in this task. Expired records are looked for at most once per
//! `__emit.interval.ms.kstreams.outer.join.spurious.results.fix__` of wall-clock time.

use std::sync::Arc;

use crate::processor::nodes::{
    ErasedSerde, JoinKind, JoinTimesByTask, JoinWindowNode, Side, StreamJoinNode, TableJoiner,
};
use crate::processor::{Node, datum, typed};
use crate::serdes::Serde;
use crate::topology::{NodeFactory, StoreDef, StoreKind};
use crate::windows::JoinWindows;

use super::options::erased;
use super::{Data, KStream};

/// The serdes a stream-stream join stores its two sides with.
#[derive(Clone)]
pub struct StreamJoinSerdes {
    /// Serde of the join key, for both sides' stores.
    pub key: ErasedSerde,
    /// Serde of this stream's values, for its window store.
    pub this_value: ErasedSerde,
    /// Serde of the other stream's values, for its window store.
    pub other_value: ErasedSerde,
}

/// The serdes a typed stream-stream join stores its sides with (Kafka Streams'
/// `StreamJoined.with(keySerde, valueSerde, otherValueSerde)`).
pub struct StreamJoined<K, V, VO> {
    /// Serde of the join key.
    pub key: Arc<dyn Serde<K>>,
    /// Serde of this stream's values.
    pub value: Arc<dyn Serde<V>>,
    /// Serde of the other stream's values.
    pub other_value: Arc<dyn Serde<VO>>,
}

impl<K, V, VO> StreamJoined<K, V, VO> {
    /// Joins with these serdes (Kafka Streams' `StreamJoined.with(keySerde, valueSerde,
    /// otherValueSerde)`).
    pub fn with(
        key: Arc<dyn Serde<K>>,
        value: Arc<dyn Serde<V>>,
        other_value: Arc<dyn Serde<VO>>,
    ) -> Self {
        StreamJoined {
            key,
            value,
            other_value,
        }
    }
}

/// The names a join's stores get: Kafka Streams' `StreamJoined.withStoreName` when a base is
/// given, else derived from the generated processor names.
fn store_names(base: Option<&str>, join_this: &str, join_other: &str) -> [String; 3] {
    match base {
        Some(b) => [
            format!("{b}-this-join-store"),
            format!("{b}-other-join-store"),
            format!("{b}-outer-shared-join-store"),
        ],
        None => [
            format!("{join_this}-store"),
            format!("{join_other}-store"),
            format!(
                "{}-store",
                join_this
                    .replace("JOINTHIS", "OUTERSHARED")
                    .replace("OUTERTHIS", "OUTERSHARED")
            ),
        ],
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Joins this stream with `other` on the key, records within `windows` of each other
    /// (Kafka Streams' `KStream.join/leftJoin/outerJoin(KStream, ValueJoiner, JoinWindows,
    /// StreamJoined)`). `store_base` names the stores (`<base>-this-join-store` ...) and the
    /// repartition topics of re-keyed sides (`<base>-left-repartition`, `-right-`).
    pub fn join_stream_erased<VO: Data, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: TableJoiner,
        kind: JoinKind,
        windows: JoinWindows,
        store_base: Option<&str>,
        serdes: StreamJoinSerdes,
    ) -> KStream<K, VR> {
        let builder = self.builder().clone();
        let StreamJoinSerdes {
            key,
            this_value,
            other_value,
        } = serdes;
        let base_or = |side: &str| store_base.map(|b| format!("{b}-{side}"));
        let this: KStream<K, V> = if self.rekeyed() {
            self.repartition_erased(base_or("left"), None, key.clone(), this_value.clone())
        } else {
            self.clone()
        };
        let that: KStream<K, VO> = if other.rekeyed() {
            other.repartition_erased(base_or("right"), None, key.clone(), other_value.clone())
        } else {
            other.clone()
        };
        let left_outer = kind != JoinKind::Inner;
        let right_outer = kind == JoinKind::Outer;
        let this_windowed = builder.generated_name("KSTREAM-WINDOWED-");
        let other_windowed = builder.generated_name("KSTREAM-WINDOWED-");
        let join_this = builder.generated_name(if right_outer {
            "KSTREAM-OUTERTHIS-"
        } else {
            "KSTREAM-JOINTHIS-"
        });
        let join_other = builder.generated_name(if left_outer {
            "KSTREAM-OUTEROTHER-"
        } else {
            "KSTREAM-JOINOTHER-"
        });
        let merge = builder.generated_name("KSTREAM-MERGE-");
        let [this_store, other_store, shared_store] =
            store_names(store_base, &join_this, &join_other);
        let retention_ms = windows.retention_ms();
        for (name, value) in [(&this_store, &this_value), (&other_store, &other_value)] {
            builder.add_store(StoreDef {
                kind: StoreKind::Window { retention_ms },
                format: format!(
                    "key={} value={} join before={}ms after={}ms grace={}ms",
                    key.name, value.name, windows.before_ms, windows.after_ms, windows.grace_ms
                ),
                ..StoreDef::key_value(name.clone())
            });
        }
        let shared_store = left_outer.then(|| {
            builder.add_store(StoreDef::key_value(shared_store.clone()));
            shared_store
        });
        let window_node = |store: &str, value: &ErasedSerde| -> NodeFactory {
            let (store, key, value) = (store.to_owned(), key.clone(), value.clone());
            Arc::new(move || {
                Box::new(JoinWindowNode {
                    store_name: store.clone(),
                    store: None,
                    key: key.clone(),
                    value: value.clone(),
                    seq: 0,
                }) as Box<dyn Node>
            })
        };
        let this_w = builder.add_processor(
            this_windowed,
            &[this.node()],
            vec![this_store.clone()],
            window_node(&this_store, &this_value),
        );
        let that_w = builder.add_processor(
            other_windowed,
            &[that.node()],
            vec![other_store.clone()],
            window_node(&other_store, &other_value),
        );
        let by_task: JoinTimesByTask = Arc::default();
        let join_node = |side: Side, outer: bool, other_store: &str| -> NodeFactory {
            let (other_store, shared_store) = (other_store.to_owned(), shared_store.clone());
            let (key, left_value, right_value) =
                (key.clone(), this_value.clone(), other_value.clone());
            let (joiner, by_task) = (joiner.clone(), by_task.clone());
            Arc::new(move || {
                Box::new(StreamJoinNode {
                    side,
                    outer,
                    windows,
                    other_store_name: other_store.clone(),
                    other_store: None,
                    shared_store_name: shared_store.clone(),
                    shared_store: None,
                    key: key.clone(),
                    left_value: left_value.clone(),
                    right_value: right_value.clone(),
                    joiner: joiner.clone(),
                    by_task: by_task.clone(),
                    times: None,
                }) as Box<dyn Node>
            })
        };
        let with_shared = |store: &str| -> Vec<String> {
            std::iter::once(store.to_owned())
                .chain(shared_store.iter().cloned())
                .collect()
        };
        let this_j = builder.add_processor(
            join_this,
            &[this_w],
            with_shared(&other_store),
            join_node(Side::Left, left_outer, &other_store),
        );
        let that_j = builder.add_processor(
            join_other,
            &[that_w],
            with_shared(&this_store),
            join_node(Side::Right, right_outer, &this_store),
        );
        let pass: NodeFactory =
            Arc::new(|| Box::new(super::OpNode(super::Op::PassThrough)) as Box<dyn Node>);
        let node = builder.add_processor(merge, &[this_j, that_j], Vec::new(), pass);
        KStream::at(&builder, node)
    }

    /// Joins with `other` within `windows` (inner, left or outer by `kind`), storing both sides
    /// with `serdes` (key, this value, other value: Kafka Streams' `StreamJoined.with`); the
    /// joiner gets `None` for a side without a partner.
    pub fn join_windowed<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        kind: JoinKind,
        windows: JoinWindows,
        serdes: StreamJoined<K, V, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let j: TableJoiner = Arc::new(move |_, _, l, r| {
            let l = l.map(|l| typed::<V>(l, "left value")).transpose()?;
            let r = r.map(|r| typed::<VO>(r, "right value")).transpose()?;
            Ok(datum(joiner(l, r)))
        });
        let serdes = StreamJoinSerdes {
            key: erased(serdes.key, "key"),
            this_value: erased(serdes.value, "value"),
            other_value: erased(serdes.other_value, "value"),
        };
        self.join_stream_erased(other, j, kind, windows, None, serdes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retention_covers_both_directions_and_grace() {
        let w = JoinWindows::of_time_difference_and_grace(
            Duration::from_secs(5),
            Duration::from_secs(1),
        );
        assert_eq!(w.retention_ms(), 11_000);
        assert_eq!(
            store_names(
                None,
                "KSTREAM-OUTERTHIS-0000000004",
                "KSTREAM-OUTEROTHER-0000000005"
            )[2],
            "KSTREAM-OUTERSHARED-0000000004-store"
        );
    }
}
