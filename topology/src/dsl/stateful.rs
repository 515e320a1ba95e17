//! What the DSL's stateful operations share: windowed keys and their serdes, and the builder
//! calls that add stores and processors. The erased serdes, aggregation functions and table
//! updates the nodes work with live in [`crate::processor::nodes`].

use std::sync::Arc;

use crate::state::window::Window;
use crate::topology::{NodeFactory, NodeKind, StoreDef};

use super::StreamsBuilder;

/// A key with the time window it belongs to (Kafka Streams' `Windowed<K>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record's key, as grouped.
    pub key: K,
    /// The window the aggregate is for, in ms since the Unix epoch.
    pub window: Window,
}

/// Kafka Streams' `TimeWindowedSerde` (`session: false`: inner key bytes, then the window start)
/// or `SessionWindowedSerde` (`session: true`: inner key bytes, then the end, then the start).
pub struct WindowedSerde<K> {
    /// Serde of the inner key.
    pub inner: Arc<dyn crate::serdes::Serde<K>>,
    /// `true` for the session layout (end and start), `false` for the time-window layout (start
    /// only).
    pub session: bool,
}

impl<K> crate::serdes::Serde<Windowed<K>> for WindowedSerde<K> {
    fn name(&self) -> String {
        let prefix = if self.session { "session" } else { "windowed" };
        format!("{prefix}-{}", self.inner.name())
    }

    fn serialize(&self, value: &Windowed<K>) -> Result<Option<Vec<u8>>, String> {
        let kb = self.inner.serialize(&value.key)?.unwrap_or_default();
        let w = value.window;
        Ok(Some(if self.session {
            crate::serdes::encode_session(&kb, w.start, w.end)
        } else {
            crate::serdes::encode_windowed(&kb, w.start)
        }))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Windowed<K>, String> {
        let bytes = bytes.ok_or("a windowed key cannot be null")?;
        let (kb, window) = if self.session {
            let (kb, start, end) =
                crate::serdes::decode_session(bytes).map_err(|e| e.to_string())?;
            (kb, Window { start, end })
        } else {
            // The end is not in the bytes; Kafka Streams' deserializer needs the window size
            // for it too.
            let (kb, start) = crate::serdes::decode_windowed(bytes).map_err(|e| e.to_string())?;
            (kb, Window { start, end: start })
        };
        Ok(Windowed {
            key: self.inner.deserialize(Some(kb))?,
            window,
        })
    }
}

impl StreamsBuilder {
    /// Adds a store definition (once per name).
    pub(crate) fn add_store(&self, def: StoreDef) {
        let mut st = self.state.borrow_mut();
        if !st.stores.iter().any(|s| s.name == def.name) {
            st.stores.push(def);
        }
    }

    /// Takes the next generated name with `prefix`.
    pub(crate) fn generated_name(&self, prefix: &str) -> String {
        self.state.borrow_mut().next_name(prefix)
    }

    /// Adds a processor node after `parents`, connected to `stores`.
    pub(crate) fn add_processor(
        &self,
        name: String,
        parents: &[usize],
        stores: Vec<String>,
        factory: NodeFactory,
    ) -> usize {
        self.state
            .borrow_mut()
            .add(name, NodeKind::Processor { factory, stores }, parents)
    }
}
