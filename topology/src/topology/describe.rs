//! Topology descriptions: Kafka Streams' text format (so the two can be compared line by line),
//! Graphviz DOT, Mermaid, and JSON (for programs and the engine's topology page).

use std::fmt::Write as _;

use super::{NodeKind, SinkTarget, TopicName, Topology};

/// Output format of `describe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DescribeFormat {
    /// Kafka Streams' `Topology.describe()` text.
    Text,
    /// Graphviz.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
    /// JSON: sub-topologies with their nodes (type, topics, stores, successors, predecessors),
    /// the stores (changelogged or not), the global stores.
    Json,
}

impl DescribeFormat {
    /// The format named `name` (`text`, `dot`, `mermaid`, `json`), as `?format=` and the CLI
    /// take it.
    pub fn parse(name: &str) -> Option<DescribeFormat> {
        match name {
            "text" => Some(DescribeFormat::Text),
            "dot" => Some(DescribeFormat::Dot),
            "mermaid" => Some(DescribeFormat::Mermaid),
            "json" => Some(DescribeFormat::Json),
            _ => None,
        }
    }
}

pub(super) fn render(topology: &Topology, format: DescribeFormat) -> String {
    match format {
        DescribeFormat::Text => text(topology),
        DescribeFormat::Dot => dot(topology),
        DescribeFormat::Mermaid => mermaid(topology),
        DescribeFormat::Json => format!("{:#}\n", json(topology)),
    }
}

/// A topic as JSON: its name as described (internal topics without the application id) and
/// whether the application owns it.
fn topic_json(topic: &TopicName) -> serde_json::Value {
    serde_json::json!({
        "name": topic.described(),
        "internal": matches!(topic, TopicName::Internal(_)),
    })
}

/// The JSON description (see [`DescribeFormat::Json`]).
pub(super) fn json(topology: &Topology) -> serde_json::Value {
    let node_names = |nodes: &[usize]| -> Vec<&str> {
        nodes
            .iter()
            .map(|&n| topology.nodes[n].name.as_str())
            .collect()
    };
    let subtopologies: Vec<serde_json::Value> = topology
        .subtopologies
        .iter()
        .map(|sub| {
            let nodes: Vec<serde_json::Value> = ordered(topology, &sub.nodes)
                .into_iter()
                .map(|n| {
                    let node = &topology.nodes[n];
                    let (kind, topics, stores): (&str, Vec<serde_json::Value>, &[String]) =
                        match &node.kind {
                            NodeKind::Source { topics, .. } => {
                                ("source", topics.iter().map(topic_json).collect(), &[])
                            }
                            NodeKind::Processor { stores, .. } => ("processor", Vec::new(), stores),
                            NodeKind::Sink { target, .. } => match target {
                                SinkTarget::Topic(t) => ("sink", vec![topic_json(t)], &[]),
                                SinkTarget::Extractor { .. } => ("sink", Vec::new(), &[]),
                            },
                        };
                    serde_json::json!({
                        "name": node.name,
                        "type": kind,
                        "topics": topics,
                        "stores": stores,
                        "successors": node_names(&node.children),
                        "predecessors": node_names(&node.parents),
                    })
                })
                .collect();
            serde_json::json!({ "id": sub.id, "nodes": nodes })
        })
        .collect();
    let stores: Vec<serde_json::Value> = topology
        .stores
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name,
                "changelog": s.logged.then(|| s.changelog().described().to_owned()),
                "inMemory": s.in_memory,
            })
        })
        .collect();
    let globals: Vec<serde_json::Value> = topology
        .global_tables
        .iter()
        .enumerate()
        .map(|(i, g)| {
            serde_json::json!({
                "id": topology.subtopologies.len() + i,
                "source": g.source,
                "topic": g.topic,
                "processor": g.processor,
                "store": g.store,
            })
        })
        .collect();
    serde_json::json!({
        "subtopologies": subtopologies,
        "stores": stores,
        "globalStores": globals,
    })
}

/// Kafka Streams orders a sub-topology's nodes by the size of their subtree (largest first),
/// then by name; successors and predecessors are listed in the same order.
fn subtree_size(topology: &Topology, node: usize) -> usize {
    1 + topology.nodes[node]
        .children
        .iter()
        .map(|&c| subtree_size(topology, c))
        .sum::<usize>()
}

fn ordered(topology: &Topology, nodes: &[usize]) -> Vec<usize> {
    let mut keyed: Vec<(usize, &str, usize)> = nodes
        .iter()
        .map(|&n| {
            (
                subtree_size(topology, n),
                topology.nodes[n].name.as_str(),
                n,
            )
        })
        .collect();
    keyed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    keyed.into_iter().map(|(_, _, n)| n).collect()
}

/// Successors and predecessors are listed in the order they were connected, as Kafka Streams
/// lists them.
fn names(topology: &Topology, nodes: &[usize]) -> String {
    if nodes.is_empty() {
        return "none".to_owned();
    }
    nodes
        .iter()
        .map(|&n| topology.nodes[n].name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn topic_list(topics: &[TopicName]) -> String {
    let names: Vec<&str> = topics.iter().map(TopicName::described).collect();
    format!("[{}]", names.join(", "))
}

fn text(topology: &Topology) -> String {
    // Kafka Streams writes "Topologies:\n " and then "  Sub-topology: N" per sub-topology, so the
    // first heading is indented by three spaces and the others by two.
    let mut out = String::from("Topologies:\n ");
    for sub in &topology.subtopologies {
        let _ = writeln!(out, "  Sub-topology: {}", sub.id);
        for n in ordered(topology, &sub.nodes) {
            let node = &topology.nodes[n];
            let children = names(topology, &node.children);
            let parents = names(topology, &node.parents);
            match &node.kind {
                NodeKind::Source { topics, .. } => {
                    let _ = writeln!(
                        out,
                        "    Source: {} (topics: {})\n      --> {children}",
                        node.name,
                        topic_list(topics)
                    );
                }
                NodeKind::Processor { stores, .. } => {
                    let _ = writeln!(
                        out,
                        "    Processor: {} (stores: [{}])\n      --> {children}\n      <-- {parents}",
                        node.name,
                        stores.join(", ")
                    );
                }
                NodeKind::Sink { target, .. } => {
                    let what = match target {
                        SinkTarget::Topic(t) => format!("topic: {}", t.described()),
                        SinkTarget::Extractor { label, .. } => format!("extractor class: {label}"),
                    };
                    let _ = writeln!(out, "    Sink: {} ({what})\n      <-- {parents}", node.name);
                }
            }
        }
        out.push('\n');
    }
    // Kafka Streams numbers a global store's sub-topology among the others by its source's name;
    // here it follows them, which is where Kafka Streams puts it when the global table's source
    // is numbered after the other sub-topologies' first sources.
    for (i, g) in topology.global_tables.iter().enumerate() {
        let _ = writeln!(
            out,
            "  Sub-topology: {} for global store (will not generate tasks)\n    Source: {} (topics: [{}])\n      --> {}\n    Processor: {} (stores: [{}])\n      --> none\n      <-- {}",
            topology.subtopologies.len() + i,
            g.source,
            g.topic,
            g.processor,
            g.processor,
            g.store,
            g.source
        );
    }
    out
}

fn topics_of(kind: &NodeKind) -> Vec<String> {
    match kind {
        NodeKind::Source { topics, .. } => {
            topics.iter().map(|t| t.described().to_owned()).collect()
        }
        NodeKind::Sink {
            target: SinkTarget::Topic(t),
            ..
        } => vec![t.described().to_owned()],
        _ => Vec::new(),
    }
}

fn dot(topology: &Topology) -> String {
    let mut out = String::from(
        "digraph topology {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n",
    );
    for sub in &topology.subtopologies {
        let _ = writeln!(
            out,
            "  subgraph cluster_{0} {{\n    label=\"Sub-topology {0}\";",
            sub.id
        );
        for &n in &sub.nodes {
            let _ = writeln!(out, "    \"{}\";", topology.nodes[n].name);
        }
        out.push_str("  }\n");
    }
    for node in &topology.nodes {
        for &c in &node.children {
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\";",
                node.name, topology.nodes[c].name
            );
        }
        let is_source = matches!(node.kind, NodeKind::Source { .. });
        for topic in topics_of(&node.kind) {
            let _ = writeln!(
                out,
                "  \"topic:{topic}\" [shape=ellipse, label=\"{topic}\"];"
            );
            if is_source {
                let _ = writeln!(out, "  \"topic:{topic}\" -> \"{}\";", node.name);
            } else {
                let _ = writeln!(out, "  \"{}\" -> \"topic:{topic}\";", node.name);
            }
        }
    }
    out.push_str("}\n");
    out
}

fn mermaid(topology: &Topology) -> String {
    // Mermaid ids cannot contain '-'; number the nodes instead.
    let mut out = String::from("flowchart LR\n");
    for sub in &topology.subtopologies {
        let _ = writeln!(out, "  subgraph sub{0}[\"Sub-topology {0}\"]", sub.id);
        for &n in &sub.nodes {
            let _ = writeln!(out, "    n{n}[\"{}\"]", topology.nodes[n].name);
        }
        out.push_str("  end\n");
    }
    let mut topic_ids: Vec<String> = Vec::new();
    for (i, node) in topology.nodes.iter().enumerate() {
        for &c in &node.children {
            let _ = writeln!(out, "  n{i} --> n{c}");
        }
        let is_source = matches!(node.kind, NodeKind::Source { .. });
        for topic in topics_of(&node.kind) {
            let t = match topic_ids.iter().position(|x| *x == topic) {
                Some(p) => p,
                None => {
                    topic_ids.push(topic.clone());
                    let _ = writeln!(out, "  t{}[(\"{topic}\")]", topic_ids.len() - 1);
                    topic_ids.len() - 1
                }
            };
            if is_source {
                let _ = writeln!(out, "  t{t} --> n{i}");
            } else {
                let _ = writeln!(out, "  n{i} --> t{t}");
            }
        }
    }
    out
}
