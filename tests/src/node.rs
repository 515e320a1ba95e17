//! The node a test's pods run on: the real node when the tests run with `FRESHET_NODE=kubelet`
//! (a kubelet and containerd, [`crate::kubelet`]), else a test node of the test's own
//! ([`crate::test_node`], each pod's container a local process). Either way, a test starts one
//! for its namespaces, reaches a pod's container through it (process id, SIGKILL, log), and
//! nothing the node ran keeps running once it is dropped.

use kube::Client;

use crate::kubelet::{self, Kubelet};
use crate::test_node::TestNode;

/// A node running the pods of some namespaces, for one test.
pub enum Node {
    /// The test node: pods as local processes.
    Test(TestNode),
    /// The real node: pods as containers of the images.
    Kubelet(Kubelet),
}

impl Node {
    /// A node for the pods of `namespaces`: a test node registered as `name`, or (with
    /// `FRESHET_NODE=kubelet`) the real node, whatever `name` says.
    pub async fn start(client: Client, name: &str, namespaces: &[&str]) -> Node {
        if kubelet::selected() {
            Node::Kubelet(Kubelet::start(client, namespaces).await)
        } else {
            Node::Test(TestNode::start(client, name, namespaces).await)
        }
    }

    /// The test node, whatever node the cluster has: for suites whose pods need what only the
    /// host offers (the secured brokers of [`crate::brokers`] listen on loopback, out of the real
    /// node's reach). With the real node, `namespaces` stay closed to it (see [`crate::kubelet`]),
    /// so its scheduler leaves their pods to this node.
    pub async fn start_local(client: Client, name: &str, namespaces: &[&str]) -> Node {
        Node::Test(TestNode::start(client, name, namespaces).await)
    }

    /// True on the real node (containers of the images, a kubelet's semantics).
    pub fn is_real(&self) -> bool {
        matches!(self, Node::Kubelet(_))
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        match self {
            Node::Test(n) => &n.name,
            Node::Kubelet(n) => &n.name,
        }
    }

    /// SIGKILLs the container process of pod `namespace/name`; false when it runs nothing.
    pub fn kill_container(&self, namespace: &str, name: &str) -> bool {
        match self {
            Node::Test(n) => n.kill_container(namespace, name),
            Node::Kubelet(n) => n.kill_container(namespace, name),
        }
    }

    /// The host's process id of pod `namespace/name`'s container, while it runs.
    pub fn pid(&self, namespace: &str, name: &str) -> Option<u32> {
        match self {
            Node::Test(n) => n.pid(namespace, name),
            Node::Kubelet(n) => n.pid(namespace, name),
        }
    }

    /// The log of pod `namespace/name`'s container, its last restart's and before.
    pub async fn log(&self, namespace: &str, name: &str) -> String {
        match self {
            Node::Test(n) => {
                std::fs::read_to_string(n.log_path(namespace, name)).unwrap_or_default()
            }
            Node::Kubelet(n) => n.log(namespace, name).await,
        }
    }
}
