//! How Kafka Streams names what it creates: internal topics (named without the application id,
//! which the runtime prefixes) and tasks. The operator and the engine both name through here,
//! so they never disagree.

/// A topic a source reads or a sink writes. Internal topics are named without the application id,
/// as Kafka Streams' description shows them; the runtime prefixes `<application.id>-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopicName {
    /// A topic the application does not own (user input or output), named as is.
    External(String),
    /// A topic the application creates (repartition, changelog, subscription), named without the
    /// `<application.id>-` prefix.
    Internal(String),
}

impl TopicName {
    /// The topic's name in Kafka.
    pub fn resolve(&self, application_id: &str) -> String {
        match self {
            TopicName::External(t) => t.clone(),
            TopicName::Internal(t) => format!("{application_id}-{t}"),
        }
    }

    /// The name as Kafka Streams' `describe()` prints it.
    pub fn described(&self) -> &str {
        match self {
            TopicName::External(t) | TopicName::Internal(t) => t,
        }
    }
}

/// Task ids as Kafka Streams writes them.
pub fn task_id(subtopology: usize, partition: i32) -> String {
    format!("{subtopology}_{partition}")
}
