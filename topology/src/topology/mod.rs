//! The processor graph: source, processor and sink nodes; its sub-topologies (the parts connected
//! other than through a repartition topic); tasks `<subtopology>_<partition>`; and a description
//! in Kafka Streams' own format.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use crate::processor::Node;

pub use crate::naming::{TopicName, task_id};
pub use crate::processor::{Deserializer, Serializer, SinkTarget, TopicExtractor};
pub use crate::state::{StoreDef, StoreKind};

mod describe;

pub use describe::DescribeFormat;

/// Builds a node instance for one task.
pub type NodeFactory = Arc<dyn Fn() -> Box<dyn Node> + Send + Sync>;

/// What a node is.
#[derive(Clone)]
pub enum NodeKind {
    /// Reads records from topics and deserializes them (Kafka Streams' `SourceNode`, added by
    /// `Topology.addSource`).
    Source {
        /// The topics it reads; a topic may be read by only one source in the topology.
        topics: Vec<TopicName>,
        /// Turns the record key's bytes into the node's key type.
        key: Deserializer,
        /// Turns the record value's bytes into the node's value type.
        value: Deserializer,
    },
    /// Runs user or DSL code on each record (Kafka Streams' `ProcessorNode`, added by
    /// `Topology.addProcessor`).
    Processor {
        /// Builds the node's instance, called once per task so tasks never share state.
        factory: NodeFactory,
        /// Names of the state stores the processor uses (`connectProcessorAndStateStores`); each
        /// must be one of the topology's stores, and processors sharing a store are placed in one
        /// sub-topology.
        stores: Vec<String>,
    },
    /// Serializes records and writes them to a topic (Kafka Streams' `SinkNode`, added by
    /// `Topology.addSink`).
    Sink {
        /// The topic to write to: a fixed one, or one chosen per record.
        target: SinkTarget,
        /// Turns the key into the bytes written to Kafka.
        key: Serializer,
        /// Turns the value into the bytes written to Kafka.
        value: Serializer,
        /// Trailing key bytes the partitioner ignores: a windowed key (8 bytes of window
        /// start, 16 of session end and start) lands where its inner key would.
        window_suffix: usize,
    },
}

/// The trailing bytes of a key written with the serde `name` that are its window, not its key.
pub fn window_suffix_of(serde_name: &str) -> usize {
    if serde_name.starts_with("windowed-") {
        8
    } else if serde_name.starts_with("session-") {
        16
    } else {
        0
    }
}

/// A node of the topology.
#[derive(Clone)]
pub struct NodeDef {
    /// The node's name, unique in the topology; `describe()` prints it and errors name it.
    pub name: String,
    /// Source, processor or sink, with what it needs to run.
    pub kind: NodeKind,
    /// Indices (into the topology's nodes) of the nodes that forward to this one.
    pub parents: Vec<usize>,
    /// Indices of the nodes this one forwards to, in the order records reach them.
    pub children: Vec<usize>,
}

/// A repartition topic the application creates before it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepartitionTopic {
    /// The topic's name, without the application id prefix the runtime adds.
    pub name: TopicName,
    /// Fixed partition count, or `None` for the count of the upstream sub-topology's sources.
    pub partitions: Option<i32>,
}

/// A connected part of the graph; it runs as one task per input partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubTopology {
    /// The sub-topology's number, as in task ids `<id>_<partition>` and `describe()`'s
    /// `Sub-topology: <id>`; numbered by their first node.
    pub id: usize,
    /// Node indices, in creation order.
    pub nodes: Vec<usize>,
    /// The topics its sources read; their partitions decide how many tasks it has.
    pub source_topics: BTreeSet<TopicName>,
}

/// An immutable processor graph, ready to run.
#[derive(Clone)]
pub struct Topology {
    nodes: Vec<NodeDef>,
    subtopologies: Vec<SubTopology>,
    repartition_topics: Vec<RepartitionTopic>,
    stores: Vec<StoreDef>,
    global_tables: Vec<GlobalTableDef>,
}

/// A global table: every partition of `topic`, on every instance, in the store `store`, kept by
/// the global thread rather than by tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalTableDef {
    /// The name of the global store that holds the table.
    pub store: String,
    /// The topic the table is read from; its changelog, since a global store is restored from it.
    pub topic: String,
    /// The names describe() shows for its source and its table source (as Kafka Streams').
    pub source: String,
    /// The name `describe()` shows for its table source (`KTABLE-SOURCE-...`), the processor that
    /// puts the topic's records into the store.
    pub processor: String,
}

/// A graph that cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopologyError {
    /// No node reads a topic, so the topology would never process anything.
    #[error("the topology has no source: add a stream or table to read")]
    NoSource,
    /// Two sources read the same topic; Kafka Streams refuses this too (one topic, one source).
    #[error("topic '{topic}' is read by more than one source ({first}, {second})")]
    TopicReadTwice {
        /// The topic, as `describe()` shows it.
        topic: String,
        /// The first source that reads it.
        first: String,
        /// The second source that reads it.
        second: String,
    },
    /// A processor or sink with no parent, which no record could ever reach; holds its name.
    #[error("processor '{0}' has no parent: connect it to a source")]
    Orphan(String),
    #[error(
        "processor '{processor}' uses state store '{store}', which is not defined: add it to the topology first"
    )]
    /// A processor names a store that the topology does not define.
    UnknownStore {
        /// The processor that uses the store.
        processor: String,
        /// The store's name, as the processor gives it.
        store: String,
    },
    /// Two stores have the same name; holds it.
    #[error("state store '{0}' is defined twice: give each store its own name")]
    StoreDefinedTwice(String),
}

impl Topology {
    /// Checks the graph and splits it into sub-topologies.
    pub fn new(
        nodes: Vec<NodeDef>,
        repartition_topics: Vec<RepartitionTopic>,
        stores: Vec<StoreDef>,
    ) -> Result<Topology, TopologyError> {
        for (i, store) in stores.iter().enumerate() {
            if stores[..i].iter().any(|s| s.name == store.name) {
                return Err(TopologyError::StoreDefinedTwice(store.name.clone()));
            }
        }
        for node in &nodes {
            if let NodeKind::Processor { stores: used, .. } = &node.kind
                && let Some(missing) = used.iter().find(|u| !stores.iter().any(|s| &s.name == *u))
            {
                return Err(TopologyError::UnknownStore {
                    processor: node.name.clone(),
                    store: missing.clone(),
                });
            }
        }
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
            stores,
            global_tables: Vec::new(),
        })
    }

    /// Every node, in creation order; [`NodeDef::parents`] and [`NodeDef::children`] index this
    /// slice.
    pub fn nodes(&self) -> &[NodeDef] {
        &self.nodes
    }

    /// The sub-topologies, by id: the parts of the graph connected other than through a repartition
    /// topic.
    pub fn subtopologies(&self) -> &[SubTopology] {
        &self.subtopologies
    }

    /// The repartition topics the application must create before it starts.
    pub fn repartition_topics(&self) -> &[RepartitionTopic] {
        &self.repartition_topics
    }

    /// Every state store, in definition order.
    pub fn stores(&self) -> &[StoreDef] {
        &self.stores
    }

    /// Adds the global tables (their stores are read, never written, by the tasks' processors).
    pub fn with_global_tables(mut self, global_tables: Vec<GlobalTableDef>) -> Self {
        self.global_tables = global_tables;
        self
    }

    /// The global tables (Kafka Streams' `GlobalKTable`s), each kept by the global thread.
    pub fn global_tables(&self) -> &[GlobalTableDef] {
        &self.global_tables
    }

    /// The stores the nodes of `sub` use, in definition order.
    pub fn stores_of(&self, sub: &SubTopology) -> Vec<&StoreDef> {
        self.stores
            .iter()
            .filter(|s| {
                sub.nodes.iter().any(|&n| {
                    matches!(&self.nodes[n].kind, NodeKind::Processor { stores, .. } if stores.contains(&s.name))
                })
            })
            .collect()
    }

    /// The sub-topology whose nodes use store `name`.
    pub fn subtopology_of_store(&self, name: &str) -> Option<&SubTopology> {
        self.subtopologies
            .iter()
            .find(|sub| self.stores_of(sub).iter().any(|s| s.name == name))
    }

    /// Every topic any source reads.
    pub fn source_topics(&self) -> BTreeSet<TopicName> {
        self.subtopologies
            .iter()
            .flat_map(|s| s.source_topics.iter().cloned())
            .collect()
    }

    /// The application's internal topics: repartition (and subscription) topics and the
    /// changelogs of logged stores, with the application id prefix.
    pub fn internal_topics(&self, app: &str) -> Vec<String> {
        self.repartition_topics
            .iter()
            .map(|r| r.name.resolve(app))
            .chain(
                self.stores
                    .iter()
                    .filter(|s| s.logged)
                    .map(|s| s.changelog().resolve(app)),
            )
            .collect()
    }

    /// The description Kafka Streams' `Topology.describe()` prints, or a picture of it.
    pub fn describe(&self, format: DescribeFormat) -> String {
        describe::render(self, format)
    }

    /// [`DescribeFormat::Json`]'s description as a value, to add to.
    pub fn describe_json(&self) -> serde_json::Value {
        describe::json(self)
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

/// Connected components over parent/child edges and shared stores (processors that share a store
/// must run in one task), numbered by their first node.
fn split_subtopologies(nodes: &[NodeDef]) -> Vec<SubTopology> {
    let store_users = |n: usize| -> Vec<usize> {
        let NodeKind::Processor { stores, .. } = &nodes[n].kind else {
            return Vec::new();
        };
        (0..nodes.len())
            .filter(|&m| {
                matches!(&nodes[m].kind, NodeKind::Processor { stores: other, .. } if other.iter().any(|s| stores.contains(s)))
            })
            .collect()
    };
    let mut component = vec![usize::MAX; nodes.len()];
    let mut next = 0;
    for start in 0..nodes.len() {
        if component[start] != usize::MAX {
            continue;
        }
        let mut stack = vec![start];
        component[start] = next;
        while let Some(n) = stack.pop() {
            for m in nodes[n]
                .parents
                .iter()
                .chain(&nodes[n].children)
                .copied()
                .chain(store_users(n))
            {
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
