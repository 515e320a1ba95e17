//! The processor graph: source, processor and sink nodes; its sub-topologies (the parts connected
//! other than through a repartition topic); tasks `<subtopology>_<partition>`; and a description
//! in Kafka Streams' own format.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use crate::processor::{Datum, ErasedRecord, Node, ProcessError};

mod describe;

pub use describe::DescribeFormat;

/// Builds a node instance for one task.
pub type NodeFactory = Arc<dyn Fn() -> Box<dyn Node> + Send + Sync>;
/// Bytes (or a null) to a key or value.
pub type Deserializer = Arc<dyn Fn(Option<&[u8]>) -> Result<Datum, String> + Send + Sync>;
/// A key or value to bytes (or a null).
pub type Serializer = Arc<dyn Fn(&Datum) -> Result<Option<Vec<u8>>, ProcessError> + Send + Sync>;
/// Chooses a record's output topic (Kafka Streams' `TopicNameExtractor`).
pub type TopicExtractor = Arc<dyn Fn(&ErasedRecord) -> Result<String, ProcessError> + Send + Sync>;

/// A topic a source reads or a sink writes. Internal topics are named without the application id,
/// as Kafka Streams' description shows them; the runtime prefixes `<application.id>-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopicName {
    External(String),
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

/// Where a sink writes.
#[derive(Clone)]
pub enum SinkTarget {
    Topic(TopicName),
    /// A topic chosen per record; the label names the extractor in descriptions.
    Extractor {
        extractor: TopicExtractor,
        label: String,
    },
}

/// What a node is.
#[derive(Clone)]
pub enum NodeKind {
    Source {
        topics: Vec<TopicName>,
        key: Deserializer,
        value: Deserializer,
    },
    Processor {
        factory: NodeFactory,
        stores: Vec<String>,
    },
    Sink {
        target: SinkTarget,
        key: Serializer,
        value: Serializer,
    },
}

/// A node of the topology.
#[derive(Clone)]
pub struct NodeDef {
    pub name: String,
    pub kind: NodeKind,
    pub parents: Vec<usize>,
    pub children: Vec<usize>,
}

/// A repartition topic the application creates before it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepartitionTopic {
    pub name: TopicName,
    /// Fixed partition count, or `None` for the count of the upstream sub-topology's sources.
    pub partitions: Option<i32>,
}

/// A connected part of the graph; it runs as one task per input partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubTopology {
    pub id: usize,
    /// Node indices, in creation order.
    pub nodes: Vec<usize>,
    pub source_topics: BTreeSet<TopicName>,
}

/// An immutable processor graph, ready to run.
#[derive(Clone)]
pub struct Topology {
    nodes: Vec<NodeDef>,
    subtopologies: Vec<SubTopology>,
    repartition_topics: Vec<RepartitionTopic>,
}

/// A graph that cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopologyError {
    #[error("the topology has no source: add a stream or table to read")]
    NoSource,
    #[error("topic '{topic}' is read by more than one source ({first}, {second})")]
    TopicReadTwice {
        topic: String,
        first: String,
        second: String,
    },
    #[error("processor '{0}' has no parent: connect it to a source")]
    Orphan(String),
}

impl Topology {
    /// Checks the graph and splits it into sub-topologies.
    pub fn new(
        nodes: Vec<NodeDef>,
        repartition_topics: Vec<RepartitionTopic>,
    ) -> Result<Topology, TopologyError> {
        let mut readers: HashMap<&TopicName, &str> = HashMap::new();
        let mut has_source = false;
        for node in &nodes {
            match &node.kind {
                NodeKind::Source { topics, .. } => {
                    has_source = true;
                    for topic in topics {
                        if let Some(first) = readers.insert(topic, &node.name) {
                            return Err(TopologyError::TopicReadTwice {
                                topic: topic.described().to_owned(),
                                first: first.to_owned(),
                                second: node.name.clone(),
                            });
                        }
                    }
                }
                _ if node.parents.is_empty() => {
                    return Err(TopologyError::Orphan(node.name.clone()));
                }
                _ => {}
            }
        }
        if !has_source {
            return Err(TopologyError::NoSource);
        }
        let subtopologies = split_subtopologies(&nodes);
        Ok(Topology {
            nodes,
            subtopologies,
            repartition_topics,
        })
    }

    pub fn nodes(&self) -> &[NodeDef] {
        &self.nodes
    }

    pub fn subtopologies(&self) -> &[SubTopology] {
        &self.subtopologies
    }

    pub fn repartition_topics(&self) -> &[RepartitionTopic] {
        &self.repartition_topics
    }

    /// Every topic any source reads.
    pub fn source_topics(&self) -> BTreeSet<TopicName> {
        self.subtopologies
            .iter()
            .flat_map(|s| s.source_topics.iter().cloned())
            .collect()
    }

    /// The description Kafka Streams' `Topology.describe()` prints, or a picture of it.
    pub fn describe(&self, format: DescribeFormat) -> String {
        describe::render(self, format)
    }

    /// A one-line summary for logs.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for s in &self.subtopologies {
            let topics: Vec<_> = s.source_topics.iter().map(TopicName::described).collect();
            let _ = write!(
                out,
                "[{}: {} nodes from {:?}] ",
                s.id,
                s.nodes.len(),
                topics
            );
        }
        out.trim_end().to_owned()
    }
}

/// Task ids as Kafka Streams writes them.
pub fn task_id(subtopology: usize, partition: i32) -> String {
    format!("{subtopology}_{partition}")
}

/// Connected components over parent/child edges, numbered by their first node.
fn split_subtopologies(nodes: &[NodeDef]) -> Vec<SubTopology> {
    let mut component = vec![usize::MAX; nodes.len()];
    let mut next = 0;
    for start in 0..nodes.len() {
        if component[start] != usize::MAX {
            continue;
        }
        let mut stack = vec![start];
        component[start] = next;
        while let Some(n) = stack.pop() {
            for &m in nodes[n].parents.iter().chain(&nodes[n].children) {
                if component[m] == usize::MAX {
                    component[m] = next;
                    stack.push(m);
                }
            }
        }
        next += 1;
    }
    (0..next)
        .map(|id| {
            let members: Vec<usize> = (0..nodes.len()).filter(|&n| component[n] == id).collect();
            let source_topics = members
                .iter()
                .filter_map(|&n| match &nodes[n].kind {
                    NodeKind::Source { topics, .. } => Some(topics.iter().cloned()),
                    _ => None,
                })
                .flatten()
                .collect();
            SubTopology {
                id,
                nodes: members,
                source_topics,
            }
        })
        .collect()
}
