//! Records as Kafka sees them: headers, and what a task asks to have written to a topic (a
//! sink's output or a store's changelog). Below the processor API and the stores, which both
//! produce them.

/// Record headers, in order; a header may have no value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, Option<Vec<u8>>)>);

impl Headers {
    /// The last value of header `name`, as Kafka's `Headers.lastHeader`.
    pub fn last(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Appends a header with a value (Kafka's `Headers.add`); earlier headers of the same name
    /// stay.
    pub fn add(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.0.push((name.into(), Some(value.into())));
    }
}

/// A record a sink wants written to Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceRequest {
    /// The topic's name in Kafka (internal topics already prefixed with the application id).
    pub topic: String,
    /// A fixed partition (a changelog's is its task's); `None` partitions by key.
    pub partition: Option<i32>,
    /// Partition by the first `n` key bytes only (a windowed key's inner key), as Java's
    /// partitioner would; `None` leaves it to the producer's partitioner.
    pub hash_len: Option<usize>,
    /// A changelog record, whose offset the task's checkpoint records.
    pub changelog: bool,
    /// The key's bytes; `None` for a null key.
    pub key: Option<Vec<u8>>,
    /// The value's bytes; `None` for a null value (a tombstone).
    pub value: Option<Vec<u8>>,
    /// The record's timestamp, in ms since the Unix epoch.
    pub timestamp: i64,
    /// The headers written with the record.
    pub headers: Headers,
}
