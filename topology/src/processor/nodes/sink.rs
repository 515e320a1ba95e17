//! The sink node (Kafka Streams' `SinkNode`): serializes records and hands them to the record
//! collector, for a fixed topic or one chosen per record.

use crate::processor::{
    ErasedRecord, Node, NodeContext, ProcessError, ProduceRequest, Serializer, SinkTarget,
};

/// Writes records to Kafka: a fixed topic or one chosen per record.
pub struct SinkNode {
    /// The topic to write to, fixed or chosen per record.
    pub target: SinkTarget,
    /// Trailing key bytes (a window) the partitioner ignores.
    pub window_suffix: usize,
    /// A fixed target's name in Kafka (application id prefix included), set when the task is built;
    /// `None` for an extractor, and then the extractor's result is used as is.
    pub resolved_topic: Option<String>,
    /// Turns the record's key into the bytes written.
    pub key: Serializer,
    /// Turns the record's value into the bytes written.
    pub value: Serializer,
}

impl Node for SinkNode {
    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let topic = match (&self.resolved_topic, &self.target) {
            (Some(t), _) => t.clone(),
            (None, SinkTarget::Extractor { extractor, .. }) => {
                let topic = extractor(record)?;
                if topic.is_empty() {
                    return Err(ProcessError::new(
                        "the topic expression returned an empty topic name",
                    ));
                }
                topic
            }
            (None, SinkTarget::Topic(t)) => t.described().to_owned(),
        };
        let key = (self.key)(&record.key)?;
        let value = (self.value)(&record.value)?;
        let hash_len = match (&key, self.window_suffix) {
            (Some(k), suffix) if suffix > 0 => Some(k.len().saturating_sub(suffix)),
            _ => None,
        };
        ctx.produce(ProduceRequest {
            partition: None,
            hash_len,
            changelog: false,
            topic,
            key,
            value,
            timestamp: record.timestamp,
            headers: (*record.headers).clone(),
        });
        Ok(())
    }
}
